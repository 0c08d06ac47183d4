//! Requests from [`crate::SfuHandle`] to the driver loop, each with its reply channel.

use tokio::sync::{mpsc, oneshot};

use crate::{PeerAnswer, PeerId, SfuError, SfuStats, ViewerAccess, WatchMessage};

pub(crate) enum Command {
    Publish {
        camera: String,
        offer: String,
        reply: oneshot::Sender<Result<PeerAnswer, SfuError>>,
    },
    Subscribe {
        camera: String,
        offer: String,
        access: ViewerAccess,
        reply: oneshot::Sender<Result<PeerAnswer, SfuError>>,
    },
    /// A viewer's re-offer with new ICE credentials (an ICE restart).
    RestartIce {
        peer: PeerId,
        offer: String,
        reply: oneshot::Sender<Result<PeerAnswer, SfuError>>,
    },
    AddCandidate {
        peer: PeerId,
        candidate: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Close {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
    /// An API caller's control command: `ticket` gets the ticket at once, `reply` the
    /// answer when it comes.
    Control {
        camera: String,
        command: String,
        access: ViewerAccess,
        caller: String,
        ticket: oneshot::Sender<PeerId>,
        reply: oneshot::Sender<String>,
    },
    /// The caller behind the ticket stopped waiting (timed out).
    ForgetControl {
        ticket: PeerId,
    },
    /// A new watcher: its messages go to `messages`, its id to `reply`.
    Watch {
        camera: String,
        access: ViewerAccess,
        messages: mpsc::Sender<WatchMessage>,
        reply: oneshot::Sender<PeerId>,
    },
    WatcherControl {
        watcher: PeerId,
        text: String,
    },
    Unwatch {
        watcher: PeerId,
    },
    /// Close every peer, stop the loop; the reply comes once the sockets are closed.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}
