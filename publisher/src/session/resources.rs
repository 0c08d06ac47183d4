//! Everything a session owns that must be released when it ends: the peer connection, the
//! encode thread, the spawned tasks. Separate because release has two paths that must stay
//! in step: an orderly [`Resources::teardown`] and the [`Drop`] that runs when the session's
//! future is dropped mid-way (the publisher task aborted), so reconnects never leak threads,
//! tasks or sockets.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{debug, warn};
use webrtc::peer_connection::PeerConnection;

use super::direct::DirectPeers;
use crate::pipeline::EncodeThread;

#[derive(Default)]
pub(super) struct Resources {
    pub(super) pc: Option<Arc<dyn PeerConnection>>,
    /// The connections of viewers served directly (P2P).
    pub(super) direct: DirectPeers,
    pub(super) encode: Option<EncodeThread>,
    pub(super) tasks: Vec<JoinHandle<()>>,
    /// Media got flowing (the peer connection reached `connected`).
    pub(super) connected: bool,
    /// The server removed our camera from its registry: do not reconnect.
    pub(super) removed: bool,
}

impl Resources {
    /// Orderly shutdown: stop tasks (dropping the frame receiver), stop the encode thread
    /// (which lets go of the source's frames), close the peer connection. (The WebSocket
    /// belongs to the session and closes when it is dropped.)
    pub(super) async fn teardown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.stop_encoding().await;
        self.direct.close_all().await;
        if let Some(pc) = self.pc.take() {
            if let Err(e) = pc.close().await {
                debug!("closing the peer connection: {e}");
            }
        }
    }

    /// Stop the encode thread, if one runs, and wait for it.
    pub(super) async fn stop_encoding(&mut self) {
        if let Some(encode) = self.encode.take() {
            if let Err(e) = encode.stop().await {
                warn!("encode thread ended with an error: {e:#}");
            }
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        // Only reached with something left when the session future was dropped (the
        // publisher task aborted): release what we can without awaiting.
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(encode) = self.encode.take() {
            encode.request_stop();
        }
        self.direct.abandon();
        if let Some(pc) = self.pc.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}
