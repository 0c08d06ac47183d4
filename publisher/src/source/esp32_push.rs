//! `esp32-push://ADDR:PORT`: devices behind NAT/CGNAT connect out to us and push JPEGs (the
//! seed's push mode): one JPEG then close, or several JPEGs on one connection.
//!
//! A listener thread accepts one device connection at a time, cuts what it sends into JPEGs
//! with the [splitter](crate::mjpeg::splitter) and queues them (a short queue that drops the
//! oldest, so a slow consumer sees fresh frames). When the connection closes, or stalls (no
//! byte for the read timeout, mid-frame or between frames), it is dropped and the next
//! device is accepted. Garbage and truncated JPEGs are logged and skipped there; JPEGs that
//! do not decode are logged and skipped in `next_frame`.
//!
//! `next_frame` blocks until a frame arrives. If none comes for the read timeout it returns
//! an error (`no frame for …`) so the caller can report the source lost, but the listener
//! keeps running: calling `next_frame` again waits for the next frame. Dropping the source
//! stops the listener thread and closes the port before `drop` returns, so opening the same
//! address again works at once.
//!
//! `open` only binds (an address in use is its one error) and returns at once. Until the
//! first frame, `dimensions` is the configured size; after, the size of the last frame (the
//! encoder follows the frames' own size).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{CapturedFrame, Source, SourceSpec};
use crate::barcode;
use crate::image::I420Frame;
use crate::image::JpegDecoder;
use crate::mjpeg::{JpegSplitter, DEFAULT_MAX_FRAME};

/// Frames held for a slow consumer before the oldest is dropped.
const QUEUE: usize = 4;
/// How often the listener thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A JPEG as it arrived.
struct Pushed {
    jpeg: Vec<u8>,
    received_us: u64,
}

/// Frames handed from the listener thread to `next_frame`.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Pushed>,
    /// Set when the listener thread ended on its own (it should not): why.
    failed: Option<String>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn push(&self, p: Pushed, name: &str) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.frames.len() >= QUEUE {
            q.frames.pop_front();
            tracing::debug!("{name}: consumer is slow, oldest pushed frame dropped");
        }
        q.frames.push_back(p);
        self.ready.notify_one();
    }

    fn fail(&self, why: String) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.failed = Some(why);
        self.ready.notify_all();
    }

    /// The next pushed JPEG, waiting until `deadline`. `Ok(None)` on timeout.
    fn pop_until(&self, deadline: Instant) -> Result<Option<Pushed>, String> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(p) = q.frames.pop_front() {
                return Ok(Some(p));
            }
            if let Some(why) = &q.failed {
                return Err(why.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            q = self
                .ready
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The listening ESP32 push source.
pub struct Esp32Push {
    name: String,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    read_timeout: Duration,
    fps: u32,
    decoder: JpegDecoder,
    width: u32,
    height: u32,
    index: u32,
}

impl Esp32Push {
    /// Bind `bind` and start accepting devices (in the background: this returns at once).
    pub fn open(bind: SocketAddr, spec: &SourceSpec) -> anyhow::Result<Self> {
        let name = spec.url.to_string();
        let listener = TcpListener::bind(bind).with_context(|| format!("{name}: listening"))?;
        let local_addr = listener.local_addr().context("listener address")?;
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        let read_timeout = spec.read_timeout.max(Duration::from_millis(1));
        let shared = Arc::new(Shared::default());
        let thread = {
            let (shared, name) = (Arc::clone(&shared), name.clone());
            std::thread::Builder::new()
                .name("sl-esp32-push".into())
                .spawn(move || listen(listener, &shared, &name, read_timeout))
                .context("starting the listener thread")?
        };
        tracing::info!("{name}: waiting for devices on {local_addr}");
        Ok(Esp32Push {
            name,
            local_addr,
            shared,
            thread: Some(thread),
            read_timeout,
            fps: spec.fps.clamp(1, 240),
            decoder: JpegDecoder::new(),
            width: spec.width,
            height: spec.height,
            index: 0,
        })
    }

    /// The address really listened on (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Wait for a pushed JPEG that decodes, skipping ones that do not.
    fn next_decoded(&mut self) -> anyhow::Result<(I420Frame, u64)> {
        let deadline = Instant::now() + self.read_timeout;
        loop {
            let pushed = match self.shared.pop_until(deadline) {
                Ok(Some(p)) => p,
                Ok(None) => bail!("{}: no frame for {:?}", self.name, self.read_timeout),
                Err(why) => bail!("{}: listener stopped: {why}", self.name),
            };
            match self.decoder.decode(&pushed.jpeg) {
                Ok(frame) => return Ok((frame, pushed.received_us)),
                Err(e) => tracing::warn!(
                    "{}: pushed JPEG ({} bytes) skipped: {e:#}",
                    self.name,
                    pushed.jpeg.len()
                ),
            }
        }
    }
}

impl Source for Esp32Push {
    fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        let (frame, at) = self.next_decoded()?;
        if (frame.width, frame.height) != (self.width, self.height) {
            // The encoder follows the frames' size; just keep `dimensions` true.
            tracing::info!(
                "{}: {}x{} frames (was {}x{})",
                self.name,
                frame.width,
                frame.height,
                self.width,
                self.height
            );
            (self.width, self.height) = (frame.width, frame.height);
        }
        let index = self.index;
        self.index = self.index.wrapping_add(1);
        Ok(CapturedFrame::raw(frame, at, index))
    }
}

impl Drop for Esp32Push {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Ends within about one POLL: the port is free once this returns.
            let _ = t.join();
        }
    }
}

/// The listener thread: accept a device, serve it until it closes or stalls, repeat.
fn listen(listener: TcpListener, shared: &Shared, name: &str, read_timeout: Duration) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                tracing::debug!("{name}: device {peer} connected");
                if let Err(e) = serve(stream, shared, name, read_timeout) {
                    tracing::warn!("{name}: device {peer}: {e:#}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: wait and keep listening.
                tracing::warn!("{name}: accept: {e}");
                std::thread::sleep(POLL * 4);
            }
        }
    }
    // Ending because of the stop flag is not a failure: the source is being dropped.
    if !shared.stop.load(Ordering::Relaxed) {
        shared.fail("listener thread ended".into());
    }
}

/// Read one device's connection: JPEGs go to the queue, problems to the log. Returns when the
/// device closes (Ok), or with an error when it stalls or the connection fails.
fn serve(
    mut stream: TcpStream,
    shared: &Shared,
    name: &str,
    read_timeout: Duration,
) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    // Short reads so the stop flag is seen; the stall timeout is counted separately.
    stream.set_read_timeout(Some(read_timeout.min(POLL * 2)))?;
    let mut splitter = JpegSplitter::new(DEFAULT_MAX_FRAME);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last_data = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => {
                if let Some(e) = splitter.finish() {
                    tracing::warn!("{name}: at connection close: {e}");
                }
                return Ok(());
            }
            Ok(n) => {
                last_data = Instant::now();
                splitter.push(&chunk[..n]);
                while let Some(item) = splitter.next() {
                    match item {
                        Ok(jpeg) => shared.push(
                            Pushed {
                                jpeg,
                                received_us: barcode::now_us(),
                            },
                            name,
                        ),
                        Err(e) => tracing::warn!("{name}: {e}"),
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if last_data.elapsed() >= read_timeout {
                    let where_ = if splitter.in_frame() {
                        format!("mid-frame after {} bytes", splitter.buffered())
                    } else {
                        "between frames".to_owned()
                    };
                    bail!("stalled {where_}: nothing for {read_timeout:?}; connection dropped");
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => bail!("reading: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceUrl;
    use jpeg_encoder::{ColorType, Encoder};
    use std::io::Write;

    fn grey_jpeg(level: u8) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new(&mut out, 90)
            .encode(&[level; 32 * 16], 32, 16, ColorType::Luma)
            .unwrap();
        out
    }

    fn spec(bind: SocketAddr) -> SourceSpec {
        let mut s = SourceSpec::new(SourceUrl::Esp32Push { bind }, "t");
        s.read_timeout = Duration::from_millis(300);
        s
    }

    fn luma(f: &CapturedFrame) -> u8 {
        match &f.payload {
            crate::source::Payload::Raw(r) => r.y[0],
            _ => unreachable!(),
        }
    }

    /// Connect to `addr`, write each chunk, close.
    fn device(addr: SocketAddr, chunks: Vec<Vec<u8>>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for c in chunks {
                s.write_all(&c).unwrap();
            }
        })
    }

    #[test]
    fn frames_garbage_silence_and_a_second_device() {
        let mut src = Esp32Push::open(
            "127.0.0.1:0".parse().unwrap(),
            &spec("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let addr = src.local_addr();
        // No frame yet: the configured size.
        assert_eq!(src.dimensions(), (1280, 720));
        let (dark, light) = (grey_jpeg(30), grey_jpeg(200));
        let mut corrupt = dark.clone();
        let sof = corrupt.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        corrupt[sof + 9] = 0;
        // One connection: garbage, a frame, a corrupt frame, a truncated one, a frame.
        device(
            addr,
            vec![
                b"junk".to_vec(),
                dark.clone(),
                corrupt,
                light[..light.len() / 2].to_vec(),
                light.clone(),
            ],
        )
        .join()
        .unwrap();
        let a = src.next_frame().unwrap();
        assert_eq!(
            src.dimensions(),
            (32, 16),
            "the frames' own size from now on"
        );
        let b = src.next_frame().unwrap();
        assert!(luma(&a) < 60 && luma(&b) > 150, "{} {}", luma(&a), luma(&b));
        assert_eq!((a.index, b.index), (0, 1));
        // Silence: an error naming the source, and the source still works afterwards.
        let err = src.next_frame().unwrap_err();
        assert!(format!("{err:#}").contains("no frame for"), "{err:#}");
        device(addr, vec![dark.clone()]).join().unwrap();
        assert_eq!(src.next_frame().unwrap().index, 2);
    }

    #[test]
    fn a_stalled_device_is_dropped_and_the_port_can_be_reopened() {
        let mut src = Esp32Push::open(
            "127.0.0.1:0".parse().unwrap(),
            &spec("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let addr = src.local_addr();
        let jpeg = grey_jpeg(100);
        // Half a frame, then silence with the connection held open.
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled.write_all(&jpeg[..jpeg.len() / 2]).unwrap();
        // A second device waits in the backlog until the stalled one is dropped.
        let second = device(addr, vec![jpeg.clone()]);
        // The stalled one is dropped after the read timeout (300 ms); meanwhile `next_frame`
        // may report silence.
        let t0 = Instant::now();
        let got = loop {
            match src.next_frame() {
                Ok(f) => break f,
                Err(e) if t0.elapsed() < Duration::from_secs(5) => {
                    assert!(format!("{e:#}").contains("no frame for"), "{e:#}")
                }
                Err(e) => panic!("{e:#}"),
            }
        };
        assert_eq!(got.index, 0);
        second.join().unwrap();
        drop(stalled);
        drop(src);
        // Dropping the source freed the port at once.
        let again = Esp32Push::open(addr, &spec(addr)).unwrap();
        assert_eq!(again.local_addr(), addr);
    }
}
