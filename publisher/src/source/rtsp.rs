//! `rtsp://[USER:PASS@]HOST[:PORT]/PATH[?transport=udp]`: an IP camera's H.264 over RTSP,
//! through the `retina` client (RTP over the RTSP TCP connection by default, UDP on request).
//! A camera that offers no H.264 but JPEG over RTP (RFC 2435, "MJPEG over RTSP") is taken
//! too: retina rebuilds each JPEG from its packets, and it is decoded and re-encoded like any
//! MJPEG source.
//!
//! Browser-safe H.264 (Baseline, Constrained Baseline, Main without B-frames) is handed on
//! as it is, with SPS and PPS before every IDR: no decode, no re-encode. Anything else is
//! decoded here and re-encoded by the publisher. [`route`] decides, per SPS; the path taken
//! is logged and reported by [`Source::detail`].
//!
//! retina is async; the [`Source`] contract is blocking. Each source runs one thread
//! (`sl-rtsp`) with a single-threaded tokio runtime that connects, reads and routes frames;
//! [`Source::next_frame`] takes them from a short channel. When the consumer falls behind
//! (or has not started yet) the newest frames are dropped, passthrough then resumes at the
//! next keyframe. Any failure (refused, 401, 404, connection lost, no video for the read
//! timeout: RTCP and other media keep the session up but do not count) ends the thread; `next_frame` then returns the error and the caller reopens the
//! source with backoff. Dropping the source stops the thread (and TEARDOWNs the session)
//! without waiting for it.

pub(crate) mod decode;
pub mod route;
pub mod target;

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionGroup, SessionOptions, SetupOptions,
    TcpTransportOptions, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use tracing::{debug, info, warn};

use super::{CapturedFrame, H264AccessUnit, Payload, Source, SourceSpec};
use crate::barcode::now_us;
use crate::h264::nal::{nal_type, split_annex_b, NAL_IDR};
use crate::image::JpegDecoder;
use decode::H264Decoder;
use route::{Path, Route, Router};
use target::{Target, Transport};

/// The source thread's name (fits Linux's 15-byte limit; benchmarks find it by this name).
pub const THREAD_NAME: &str = "sl-rtsp";
/// Frames waiting for the consumer. Short: a late frame is worth less than a fresh one.
const QUEUE: usize = 3;
/// Longest wait for each RTSP request (DESCRIBE, SETUP, PLAY) to be answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dropped source gives its TEARDOWN before the thread ends.
const TEARDOWN_WAIT: Duration = Duration::from_secs(1);

/// What the source thread tells the consumer besides frames.
struct Status {
    dimensions: (u32, u32),
    fps: u32,
    /// "passthrough (Constrained Baseline 3.1, 1280x720)" once known.
    path: Option<String>,
    /// Why the thread ended.
    error: Option<String>,
}

/// An RTSP camera. See the module docs.
pub struct RtspSource {
    shown: String,
    frames: Receiver<CapturedFrame>,
    status: Arc<Mutex<Status>>,
    /// Dropping it tells the thread to stop.
    _stop: tokio::sync::oneshot::Sender<()>,
    index: u32,
}

impl RtspSource {
    /// Start connecting to `spec.url` (an `rtsp://` URL) in the background. Fails only on a
    /// malformed URL; connection errors come from [`Source::next_frame`].
    pub fn open(url: &str, spec: &SourceSpec) -> anyhow::Result<Self> {
        let target = Target::parse(url).map_err(|e| anyhow!(e))?;
        let status = Arc::new(Mutex::new(Status {
            dimensions: (spec.width, spec.height),
            fps: spec.fps,
            path: None,
            error: None,
        }));
        let (tx, frames) = mpsc::sync_channel(QUEUE);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shown = target.shown.clone();
        let worker = Worker {
            target,
            read_timeout: spec.read_timeout,
            status: Arc::clone(&status),
        };
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || worker.run(tx, stopped))
            .map_err(|e| anyhow!("{shown}: starting the RTSP thread: {e}"))?;
        Ok(RtspSource {
            shown,
            frames,
            status,
            _stop: stop,
            index: 0,
        })
    }

    /// The path taken, once the first SPS arrived ("passthrough (Main 4.0, 1920x1080)").
    pub fn path(&self) -> Option<String> {
        lock(&self.status).path.clone()
    }
}

impl Source for RtspSource {
    fn dimensions(&self) -> (u32, u32) {
        lock(&self.status).dimensions
    }

    fn fps(&self) -> u32 {
        lock(&self.status).fps
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        match self.frames.recv() {
            Ok(mut frame) => {
                frame.index = self.index;
                self.index = self.index.wrapping_add(1);
                Ok(frame)
            }
            // The thread ended (and says why).
            Err(_) => Err(anyhow!(lock(&self.status)
                .error
                .clone()
                .unwrap_or_else(|| format!("{}: the RTSP session ended", self.shown)))),
        }
    }

    fn detail(&self) -> Option<String> {
        self.path()
    }
}

fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    // A panic elsewhere while holding it leaves plain data behind: still usable.
    status.lock().unwrap_or_else(|p| p.into_inner())
}

/// The source thread: connect, play, route frames until something fails or the source is
/// dropped.
struct Worker {
    target: Target,
    read_timeout: Duration,
    status: Arc<Mutex<Status>>,
}

impl Worker {
    fn run(self, tx: SyncSender<CapturedFrame>, stopped: tokio::sync::oneshot::Receiver<()>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                lock(&self.status).error =
                    Some(format!("{}: tokio runtime: {e}", self.target.shown));
                return;
            }
        };
        runtime.block_on(async {
            let group = Arc::new(SessionGroup::default());
            let result = tokio::select! {
                r = self.stream(&tx, Arc::clone(&group)) => r,
                _ = stopped => Ok(()),
            };
            if let Err(e) = result {
                warn!("{e:#}");
                lock(&self.status).error = Some(format!("{e:#}"));
            }
            // The consumer learns of the end now, not after the TEARDOWN below.
            drop(tx);
            // The session was dropped with the future above; retina sends its TEARDOWN from
            // a task on this runtime, so keep the runtime up for it a little.
            let _ = tokio::time::timeout(TEARDOWN_WAIT, group.await_teardown()).await;
        });
    }

    async fn stream(
        &self,
        tx: &SyncSender<CapturedFrame>,
        group: Arc<SessionGroup>,
    ) -> anyhow::Result<()> {
        let t = &self.target;
        let creds = t.user.as_ref().map(|u| Credentials {
            username: u.clone(),
            password: t.password.clone().unwrap_or_default(),
        });
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("sightline/{}", env!("CARGO_PKG_VERSION")))
            .session_group(group);
        let mut session = within(t, "DESCRIBE", Session::describe(t.url.clone(), options)).await?;
        let offered: Vec<(&str, &str)> = session
            .streams()
            .iter()
            .map(|s| (s.media(), s.encoding_name()))
            .collect();
        let (video, codec) = pick_video(&offered).ok_or_else(|| {
            let offered: Vec<String> = offered.iter().map(|(m, e)| format!("{m}/{e}")).collect();
            anyhow!(
                "{}: no H.264 or JPEG video in the stream (it offers: {})",
                t.shown,
                offered.join(", ")
            )
        })?;
        let transport = match t.transport {
            Transport::Tcp => retina::client::Transport::Tcp(TcpTransportOptions::default()),
            Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::SIMPLE);
        within(t, "SETUP", session.setup(video, setup)).await?;
        let playing = within(t, "PLAY", session.play(PlayOptions::default())).await?;
        let mut demuxed = playing.demuxed().map_err(|e| explain(t, "PLAY", &e))?;
        info!("{}: playing over {:?}", t.shown, t.transport);

        let mut pump = Pump::new(t.shown.clone(), codec, Arc::clone(&self.status));
        // Only video moves the deadline: a camera whose encoder hangs may go on answering
        // keepalives and sending RTCP sender reports, and must still be reconnected.
        let mut video_deadline = tokio::time::Instant::now() + self.read_timeout;
        loop {
            let item = tokio::time::timeout_at(video_deadline, demuxed.next())
                .await
                .map_err(|_| anyhow!("{}: no video for {:?}", t.shown, self.read_timeout))?;
            match item {
                None => bail!("{}: the camera ended the stream", t.shown),
                Some(Err(e)) => return Err(explain(t, "receiving", &e)),
                Some(Ok(CodecItem::VideoFrame(frame))) => {
                    video_deadline = tokio::time::Instant::now() + self.read_timeout;
                    let arrived = frame.end_ctx().received();
                    if frame.loss() > 0 {
                        debug!(
                            "{}: {} RTP packets lost before this frame",
                            t.shown,
                            frame.loss()
                        );
                    }
                    if !pump.push(frame.into_data(), arrived, tx)? {
                        return Ok(()); // the source was dropped
                    }
                }
                Some(Ok(_)) => {} // RTCP, other media: not video, the deadline stands
            }
        }
    }
}

/// Run one RTSP request with a time limit, turning errors into clear messages.
async fn within<T>(
    t: &Target,
    step: &str,
    request: impl std::future::Future<Output = Result<T, retina::Error>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| {
            anyhow!(
                "{}: no answer to {step} within {REQUEST_TIMEOUT:?}",
                t.shown
            )
        })?
        .map_err(|e| explain(t, step, &e))
}

/// A retina error in words a camera owner acts on.
fn explain(t: &Target, step: &str, e: &retina::Error) -> anyhow::Error {
    match e.status_code() {
        Some(401) => anyhow!(
            "{}: RTSP 401 Unauthorized on {step}: check the user and password in the URL",
            t.shown
        ),
        Some(404) => anyhow!(
            "{}: RTSP 404 Not Found on {step}: no stream at {}",
            t.shown,
            t.path()
        ),
        Some(code) => anyhow!("{}: RTSP {code} on {step}: {}", t.shown, first_line(e)),
        None => anyhow!("{}: {step}: {}", t.shown, first_line(e)),
    }
}

/// retina's messages carry connection context on further lines; the first says what.
fn first_line(e: &retina::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// The video codecs taken from a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    /// JPEG over RTP (RFC 2435).
    Jpeg,
}

/// The stream to play among `(media, encoding)` offers: the first H.264 video, else the
/// first JPEG video.
fn pick_video(offered: &[(&str, &str)]) -> Option<(usize, Codec)> {
    let find = |name: &str| {
        offered
            .iter()
            .position(|(m, e)| *m == "video" && e.eq_ignore_ascii_case(name))
    };
    find("h264")
        .map(|i| (i, Codec::H264))
        .or_else(|| find("jpeg").map(|i| (i, Codec::Jpeg)))
}

/// Routes access units (or decodes JPEGs) and hands them to the consumer.
struct Pump {
    shown: String,
    codec: Codec,
    router: Router,
    decoder: Option<H264Decoder>,
    jpeg: JpegDecoder,
    /// The JPEGs' size once seen (a change is reported as a new path).
    jpeg_size: Option<(u32, u32)>,
    status: Arc<Mutex<Status>>,
    dropped: u64,
}

impl Pump {
    fn new(shown: String, codec: Codec, status: Arc<Mutex<Status>>) -> Self {
        Pump {
            shown,
            codec,
            router: Router::new(),
            decoder: None,
            jpeg: JpegDecoder::new(),
            jpeg_size: None,
            status,
            dropped: 0,
        }
    }

    /// `Ok(false)` when the consumer is gone.
    fn push(
        &mut self,
        data: Vec<u8>,
        arrived: Instant,
        tx: &SyncSender<CapturedFrame>,
    ) -> anyhow::Result<bool> {
        // Wall clock at arrival of the frame's last packet.
        let capture_us = now_us().saturating_sub(arrived.elapsed().as_micros() as u64);
        let payload = match self.codec {
            Codec::H264 => self.h264(data)?,
            Codec::Jpeg => self.jpeg(&data),
        };
        let Some(payload) = payload else {
            return Ok(true);
        };
        let frame = CapturedFrame {
            payload,
            capture_us,
            index: 0, // numbered by the consumer, in the order it takes them
        };
        match tx.try_send(frame) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                if self.dropped == 1 || self.dropped.is_multiple_of(300) {
                    debug!(
                        "{}: consumer behind, {} frames dropped",
                        self.shown, self.dropped
                    );
                }
                self.router.frame_lost();
                Ok(true)
            }
            Err(TrySendError::Disconnected(_)) => Ok(false),
        }
    }

    /// A JPEG rebuilt from RTP: decoded, or skipped (with a debug line) when it is damaged.
    fn jpeg(&mut self, data: &[u8]) -> Option<Payload> {
        let frame = match self.jpeg.decode(data) {
            Ok(frame) => frame,
            Err(e) => {
                debug!("{}: skipping a JPEG that did not decode: {e:#}", self.shown);
                return None;
            }
        };
        let size = (frame.width, frame.height);
        if self.jpeg_size != Some(size) {
            self.jpeg_size = Some(size);
            let description = format!("re-encoding (MJPEG over RTP, {}x{})", size.0, size.1);
            info!("{}: {description}", self.shown);
            let mut status = lock(&self.status);
            status.path = Some(description);
            status.dimensions = size;
        }
        Some(Payload::Raw(frame))
    }

    /// An H.264 access unit, routed: passed on, decoded, or dropped (`None`).
    fn h264(&mut self, data: Vec<u8>) -> anyhow::Result<Option<Payload>> {
        let (route, keyframe) = {
            let nals = split_annex_b(&data);
            let keyframe = nals.iter().any(|n| nal_type(n) == Some(NAL_IDR));
            (self.router.route(&nals), keyframe)
        };
        if let Some(change) = self.router.take_change() {
            self.on_path_change(change)?;
        }
        Ok(match route {
            Route::Drop => None,
            Route::Pass => Some(Payload::H264(H264AccessUnit {
                data: data.into(),
                keyframe,
            })),
            Route::Decode => {
                let decoder = match &mut self.decoder {
                    Some(d) => d,
                    None => self.decoder.insert(H264Decoder::new()?),
                };
                match decoder.decode(&data) {
                    Ok(frame) => frame.map(Payload::Raw),
                    Err(e) => {
                        debug!(
                            "{}: skipping an access unit the decoder refused: {e}",
                            self.shown
                        );
                        None
                    }
                }
            }
        })
    }

    fn on_path_change(&mut self, description: String) -> anyhow::Result<()> {
        info!("{}: {description}", self.shown);
        if self.router.path() == Some(Path::Passthrough) {
            self.decoder = None;
        } else {
            // A fresh decoder for the new stream parameters.
            self.decoder = Some(H264Decoder::new()?);
        }
        let mut status = lock(&self.status);
        status.path = Some(description);
        if let Some(sps) = self.router.sps() {
            status.dimensions = (sps.width & !1, sps.height & !1);
            if let Some(fps) = sps.fps.filter(|f| (1.0..=240.0).contains(f)) {
                status.fps = fps.round() as u32;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceUrl;

    fn spec(url: &str) -> SourceSpec {
        let mut spec = SourceSpec::new(SourceUrl::Rtsp { url: url.into() }, "cam");
        spec.read_timeout = Duration::from_secs(2);
        spec
    }

    #[test]
    fn a_malformed_url_fails_at_open() {
        let err = RtspSource::open("rtsp://u:pw@cam/s?transport=carrier-pigeon", &spec("x"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("use tcp or udp"), "{err}");
    }

    #[test]
    fn a_refused_connection_is_an_error_from_next_frame_not_a_hang() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("rtsp://admin:hunter2@127.0.0.1:{port}/cam");
        let mut source = RtspSource::open(&url, &spec(&url)).unwrap();
        assert_eq!(
            source.dimensions(),
            (1280, 720),
            "the spec's size until known"
        );
        let err = source.next_frame().unwrap_err().to_string();
        assert!(err.contains("DESCRIBE"), "{err}");
        assert!(
            err.contains(&format!("admin:***@127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        // It stays failed: the caller reopens.
        assert!(source.next_frame().is_err());
        assert_eq!(source.detail(), None);
    }

    #[test]
    fn h264_is_preferred_and_jpeg_taken_when_alone() {
        let audio = ("audio", "PCMA");
        let h264 = ("video", "H264");
        let jpeg = ("video", "JPEG");
        assert_eq!(pick_video(&[audio, jpeg, h264]), Some((2, Codec::H264)));
        assert_eq!(pick_video(&[audio, jpeg]), Some((1, Codec::Jpeg)));
        assert_eq!(pick_video(&[audio, ("video", "H265")]), None);
        assert_eq!(pick_video(&[("audio", "jpeg")]), None, "only video counts");
        assert_eq!(pick_video(&[]), None);
    }

    #[test]
    fn rebuilt_jpegs_are_decoded_and_damaged_ones_skipped() {
        let status = Arc::new(Mutex::new(Status {
            dimensions: (1280, 720),
            fps: 30,
            path: None,
            error: None,
        }));
        let mut pump = Pump::new("rtsp://cam/mjpeg".into(), Codec::Jpeg, Arc::clone(&status));
        let (tx, rx) = mpsc::sync_channel(4);
        let good = crate::image::jpeg_out::encode_jpeg(&crate::image::I420Frame::black(64, 48), 80)
            .unwrap();
        for bad in [&b""[..], b"not a jpeg", &good[..good.len() / 2]] {
            assert!(pump.push(bad.to_vec(), Instant::now(), &tx).unwrap());
        }
        assert!(rx.try_recv().is_err(), "damaged JPEGs are skipped");
        assert_eq!(lock(&status).path, None);
        assert!(pump.push(good.clone(), Instant::now(), &tx).unwrap());
        let frame = rx.try_recv().expect("a decoded frame");
        let Payload::Raw(raw) = frame.payload else {
            panic!("JPEG is decoded, never passed through");
        };
        assert_eq!((raw.width, raw.height), (64, 48));
        let status = lock(&status);
        assert_eq!(status.dimensions, (64, 48));
        assert_eq!(
            status.path.as_deref(),
            Some("re-encoding (MJPEG over RTP, 64x48)")
        );
    }
}
