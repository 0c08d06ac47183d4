//! Video sources: anything that yields frames with a capture time, either raw I420 (cameras,
//! JPEG streams, the test pattern: the encoder turns them into H.264) or H.264 access units
//! that are already browser-safe (RTSP passthrough: sent as they are). The WebRTC side does not
//! care which source it is.
//!
//! A source blocks in [`Source::next_frame`] until its next frame is due. It skips bad frames
//! by itself (logging them) and returns an error only when its connection or device is gone;
//! the caller then reopens it with backoff while the WebRTC session stays up.

pub mod camera_controls;
pub mod esp32_push;
pub mod esp32_tcp;
pub mod file;
pub mod http;
pub mod pacer;
pub mod push_access;
pub mod rtsp;
pub mod supervisor;
pub mod test_pattern;
pub mod url;
pub mod v4l2;
pub mod v4l2_format;

use std::time::Duration;

use crate::image::I420Frame;

pub use push_access::{Cidr, PushAccess};
pub use test_pattern::TestPattern;
pub use url::{SourceUrl, V4l2Device, SOURCE_FORMS};

/// One H.264 access unit from a source that is already encoded: Annex-B with start codes,
/// SPS and PPS in front of every IDR.
#[derive(Debug, Clone)]
pub struct H264AccessUnit {
    /// Shared, not copied, between the sender and the snapshots' [`crate::pipeline::snapshot::KeptGop`].
    pub data: bytes::Bytes,
    pub keyframe: bool,
}

/// What a source produced.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Raw pixels, to be encoded.
    Raw(I420Frame),
    /// Browser-safe H.264, passed through without re-encoding.
    H264(H264AccessUnit),
}

/// One frame as captured.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    pub payload: Payload,
    /// Wall-clock capture time, microseconds since the UNIX epoch.
    pub capture_us: u64,
    /// Frame number since the source started, from 0.
    pub index: u32,
}

impl CapturedFrame {
    /// A raw frame (the common case).
    pub fn raw(frame: I420Frame, capture_us: u64, index: u32) -> Self {
        CapturedFrame {
            payload: Payload::Raw(frame),
            capture_us,
            index,
        }
    }
}

/// A producer of frames. Runs on a blocking thread, never on the async executor.
pub trait Source: Send {
    /// Frame size the source produces (its best knowledge: a JPEG stream knows only after its
    /// first frame; the encoder follows the frames' own size).
    fn dimensions(&self) -> (u32, u32);
    /// Nominal frame rate.
    fn fps(&self) -> u32;
    /// Block until the next frame is available. An error means the device or connection is
    /// gone (not a single bad frame: those are skipped inside the source).
    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame>;
    /// How the source is running, for logs and state reports, when there is something to
    /// say (an RTSP camera: "passthrough (Constrained Baseline 3.1, 1280x720)" or
    /// "re-encoding (High 4.0, 1920x1080; High profile, B-frames)").
    fn detail(&self) -> Option<String> {
        None
    }
}

/// What a source needs to know to start.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub url: SourceUrl,
    /// Requested size (test pattern, V4L2 format choice; others report their own).
    pub width: u32,
    pub height: u32,
    /// Requested frame rate (test pattern, V4L2, `file:` playback rate).
    pub fps: u32,
    /// How often to fetch from pull sources that give one JPEG per request
    /// (`esp32-tcp://`, HTTP snapshot URLs).
    pub poll_fps: u32,
    /// A read that waits longer than this means the device stalled: reconnect.
    pub read_timeout: Duration,
    pub camera_id: String,
    /// A camera's own controls: what it offers, and the values control wants on it (only
    /// cameras opened through nokhwa use it).
    pub controls: camera_controls::CameraControlLink,
}

impl SourceSpec {
    /// A spec with the defaults the binary uses.
    pub fn new(url: SourceUrl, camera_id: impl Into<String>) -> Self {
        SourceSpec {
            url,
            width: 1280,
            height: 720,
            fps: 30,
            poll_fps: 10,
            read_timeout: Duration::from_secs(5),
            camera_id: camera_id.into(),
            controls: camera_controls::CameraControlLink::default(),
        }
    }
}

/// Open the source `spec.url` names.
pub fn open(spec: &SourceSpec) -> anyhow::Result<Box<dyn Source>> {
    match &spec.url {
        SourceUrl::TestPattern => Ok(Box::new(TestPattern::new(
            spec.width,
            spec.height,
            spec.fps,
            crate::barcode::tag_for(&spec.camera_id),
        )?)),
        SourceUrl::File { path } => Ok(Box::new(file::FileSource::open(path, spec)?)),
        SourceUrl::Esp32Tcp { host, port } => {
            Ok(Box::new(esp32_tcp::Esp32Tcp::open(host, *port, spec)?))
        }
        SourceUrl::Esp32Push { bind, access } => Ok(Box::new(esp32_push::Esp32Push::open(
            *bind,
            access.clone(),
            spec,
        )?)),
        SourceUrl::Http { .. } => Ok(Box::new(http::HttpSource::new(spec)?)),
        SourceUrl::Rtsp { url } => Ok(Box::new(rtsp::RtspSource::open(url, spec)?)),
        SourceUrl::V4l2(device) => Ok(Box::new(v4l2::V4l2Source::open(spec, device)?)),
    }
}
