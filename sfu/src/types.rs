//! The types the SFU's public API speaks: peer ids, viewer access, answers, counters,
//! events and errors. Shared by the core (which produces them) and the driver (which hands
//! them to callers), so they live apart from both.

/// Identifies one peer connection (a publisher's or a viewer's) inside the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}

/// `peer-7`, as [`PeerId`] displays (control messages name viewers so).
impl std::str::FromStr for PeerId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("peer-").unwrap_or("x").parse().map(PeerId)
    }
}

/// What a viewer may do on its control channel; decided by signaling per viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerAccess {
    /// Watch, read the camera's state, pause/resume its own video. Commands that change the
    /// camera are refused with `forbidden`.
    ViewOnly,
    /// Everything, including changing the camera's settings.
    Control,
}

/// The video codecs the SFU forwards. Each camera's publisher sends H.264, and VP8 too
/// while viewers that can decode only VP8 watch (browsers without H.264, such as Debian's
/// Firefox ESR); each viewer gets one of them, chosen from its offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    Vp8,
}

impl VideoCodec {
    pub const ALL: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

    /// Its place in per-codec arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The SDP answer for a new peer, and the candidates it advertises.
#[derive(Debug, Clone)]
pub struct PeerAnswer {
    pub peer: PeerId,
    /// For a viewer, the codec it gets (H.264 whenever its offer has it); for a publisher,
    /// H.264.
    pub codec: VideoCodec,
    pub sdp: String,
    /// The SFU's host candidates as `candidate:...` strings (also inside `sdp`), so signaling
    /// can trickle them too.
    pub candidates: Vec<String>,
}

/// Counters for tests, `/api/stats` and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SfuStats {
    /// Live `Rtc` instances.
    pub peers: usize,
    pub publishers: usize,
    pub viewers: usize,
    /// Media tracks (m-lines carrying video) across all peers.
    pub tracks: usize,
    /// Video frames received from publishers (whether or not anyone watches): an on-demand
    /// publisher that is idle sends none.
    pub frames_received: u64,
    /// Video frames written to viewers.
    pub frames_forwarded: u64,
    /// RTP packets sent to viewers (media and RTX).
    pub packets_forwarded: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests_sent: u64,
    /// NACKs sent to publishers: packets lost on their way in, asked for again (as str0m
    /// reports them, every second). Publishers must offer RTX for str0m to ask.
    pub nacks_sent: u64,
    /// Frames from publishers that came after packets lost beyond NACK repair: each breaks
    /// viewers' pictures until the next keyframe.
    pub frames_after_loss: u64,
    /// Keyframe requests from viewers (PLI/FIR) received, before coalescing.
    pub keyframe_requests_received: u64,
    /// Viewers started at once from the camera's last keyframe and the frames since, kept
    /// at the SFU, instead of a keyframe asked of the publisher.
    pub gop_replays: u64,
    /// Frames a watcher (an MSE viewer) could not take because its queue was full; it then
    /// waits for the next keyframe.
    pub watcher_frames_dropped: u64,
    /// Packets an ICE-TCP viewer could not take because its connection's send queue was
    /// full (256 KiB); it then waits for the next keyframe.
    pub tcp_packets_dropped: u64,
    /// Open ICE-TCP connections, including ones still doing ICE.
    pub tcp_connections: usize,
    /// Threads each frame's viewers are shared out to (`--media-threads`).
    pub media_threads: usize,
    /// Each forwarded frame's time in the SFU, from its last packet in to its last copy out.
    pub forward_dwell: crate::histogram::DwellHistogram,
    /// Each viewer's time from its offer answered to its first frame written to it.
    pub first_frame: crate::histogram::FirstFrameHistogram,
    /// Control commands (data channels and the REST door) by type and result.
    pub control_commands: Vec<ControlCount>,
    /// Per camera the SFU has seen a peer of since it started, by camera id.
    pub cameras: std::collections::BTreeMap<String, CameraStats>,
}

/// How many control commands of one `command` type ended with `result`: `ok`, an error code
/// (`forbidden`, `invalid_value`, …; the relay's own refusals too), or `unanswered` (relayed
/// and no answer within 30 s). Messages that were no command count as `invalid`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ControlCount {
    pub command: String,
    pub result: String,
    pub count: u64,
}

/// One camera's counters (totals since the SFU started, over every publisher and viewer
/// the camera has had) and its viewers now.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CameraStats {
    /// Viewers now (WebRTC and watchers).
    pub viewers: usize,
    /// Frames, keyframes and payload bytes received from its publishers: the ingest frame
    /// rate and bitrate are their rates.
    pub frames_received: u64,
    pub keyframes_received: u64,
    pub bytes_received: u64,
    /// Frames and keyframes written to viewers (one per viewer per frame).
    pub frames_forwarded: u64,
    pub keyframes_forwarded: u64,
    /// Keyframe requests: received from viewers (before coalescing), sent to publishers.
    pub keyframe_requests_received: u64,
    pub keyframe_requests_sent: u64,
    /// NACKs received from viewers (as str0m reports them, every second), and the
    /// retransmissions (RTX) sent to answer them.
    pub nacks_received: u64,
    pub rtx_sent: u64,
    /// RTP packets and bytes (SRTP, as sent) to viewers, media and RTX.
    pub packets_sent: u64,
    pub bytes_sent: u64,
}

/// Something the SFU tells signaling without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// The peer's media connected (ICE + DTLS up).
    PeerConnected { peer: PeerId },
    /// The peer was removed: ICE timed out, DTLS failed, or it was closed.
    PeerClosed { peer: PeerId, reason: String },
    /// A publisher's H.264 sequence parameter set (the NAL unit, without start code), when
    /// its first keyframe brings one and whenever it changes. The picture size is in it; the
    /// SFU passes it on without reading it (signaling does, for cameras that announced no
    /// size, like WHIP's).
    SequenceParameters { peer: PeerId, sps: Vec<u8> },
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    #[error("the SFU has stopped")]
    Stopped,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// One camera frame for a watcher (see [`crate::SfuHandle::watch`]).
#[derive(Debug, Clone)]
pub struct WatchFrame {
    /// One H.264 access unit, Annex-B, as the publisher sent it (shared by every watcher).
    pub data: std::sync::Arc<[u8]>,
    /// An IDR: decoding may start here.
    pub keyframe: bool,
    /// On the camera's timeline, 90 kHz: continuous across publisher changes, as viewers'
    /// RTP time is.
    pub rtp_time: u32,
    /// When its packets reached the SFU.
    pub received: std::time::Instant,
}

/// What a watcher receives.
#[derive(Debug, Clone)]
pub enum WatchMessage {
    /// The next frame. The first one, and the first after frames were lost (the watcher's
    /// queue was full), is a keyframe.
    Frame(WatchFrame),
    /// A control message, exactly as a viewer's `control` data channel carries it
    /// (`welcome` first, then the camera's capabilities and state, answers to this
    /// watcher's commands, the publisher's broadcasts).
    Control(std::sync::Arc<str>),
}
