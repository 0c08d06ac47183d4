//! `esp32-push://ADDR:PORT`: devices behind NAT/CGNAT connect out to us and push JPEGs (the
//! seed's push mode): one JPEG then close, or several JPEGs on one connection.
//!
//! Only devices the URL's [access](super::PushAccess) admits count: `?allow=CIDR,...` checks
//! the address, `?key=K` wants the line `KEY K` first (read by a short-lived thread per
//! connection, at most [`MAX_PENDING_KEYS`] at once, each within
//! [`KEY_TIMEOUT`](super::push_access::KEY_TIMEOUT)); with neither, only loopback devices.
//! A refused connection is logged (address and reason) and closed; it never becomes video
//! and never holds up the device being served.
//!
//! A listener thread accepts devices and checks them; a serving thread takes the admitted
//! ones one at a time, cuts what each sends into JPEGs
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{CapturedFrame, PushAccess, Source, SourceSpec};
use crate::barcode;
use crate::image::I420Frame;
use crate::image::JpegDecoder;
use crate::mjpeg::{JpegSplitter, DEFAULT_MAX_FRAME};

/// Frames held for a slow consumer before the oldest is dropped.
const QUEUE: usize = 4;
/// How often the listener thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Connections whose key line is being read at once; more are refused until one is done.
pub const MAX_PENDING_KEYS: usize = 8;
/// Admitted devices waiting to be served; beyond that, new ones wait in the backlog.
const ADMITTED: usize = 8;

/// A device connection that passed the access checks, waiting to be served.
struct Admitted {
    stream: TcpStream,
    peer: SocketAddr,
    /// What came after the key line (the start of the first JPEG).
    first: Vec<u8>,
}

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
    admitted: Mutex<VecDeque<Admitted>>,
    admitted_ready: Condvar,
    /// Key lines being read right now.
    pending_keys: AtomicUsize,
}

impl Shared {
    fn admit(&self, device: Admitted) {
        let mut q = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(device);
        self.admitted_ready.notify_one();
    }

    fn admitted_len(&self) -> usize {
        self.admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The next admitted device, waiting for one; `None` once the source is stopping.
    fn next_admitted(&self) -> Option<Admitted> {
        let mut q = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(device) = q.pop_front() {
                return Some(device);
            }
            q = self
                .admitted_ready
                .wait_timeout(q, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

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
    /// The listener and the serving thread.
    threads: Vec<JoinHandle<()>>,
    read_timeout: Duration,
    fps: u32,
    decoder: JpegDecoder,
    width: u32,
    height: u32,
    index: u32,
}

impl Esp32Push {
    /// Bind `bind` and start accepting the devices `access` admits (in the background: this
    /// returns at once).
    pub fn open(bind: SocketAddr, access: PushAccess, spec: &SourceSpec) -> anyhow::Result<Self> {
        let name = spec.url.to_string();
        let listener = TcpListener::bind(bind).with_context(|| format!("{name}: listening"))?;
        let local_addr = listener.local_addr().context("listener address")?;
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        let read_timeout = spec.read_timeout.max(Duration::from_millis(1));
        let shared = Arc::new(Shared::default());
        let serving = {
            let (shared, name) = (Arc::clone(&shared), name.clone());
            std::thread::Builder::new()
                .name("sl-esp32-serve".into())
                .spawn(move || serve_admitted(&shared, &name, read_timeout))
                .context("starting the serving thread")?
        };
        let listening = {
            let (shared, name) = (Arc::clone(&shared), name.clone());
            let access = Arc::new(access.clone());
            std::thread::Builder::new()
                .name("sl-esp32-push".into())
                .spawn(move || listen(listener, &shared, &name, &access))
        };
        let listening = match listening {
            Ok(t) => t,
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                let _ = serving.join();
                return Err(e).context("starting the listener thread");
            }
        };
        let threads = vec![listening, serving];
        tracing::info!("{name}: waiting for devices on {local_addr}");
        if access.loopback_only() {
            let note = "only devices on this machine (loopback) may push; add ?allow=CIDR \
                        (e.g. ?allow=192.168.1.0/24) or ?key=KEY to the source URL to accept others";
            if bind.ip().is_loopback() {
                tracing::info!("{name}: {note}");
            } else {
                tracing::warn!("{name}: {note}");
            }
        }
        Ok(Esp32Push {
            name,
            local_addr,
            shared,
            threads,
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
        // Both end within about one POLL: the port is free once this returns. Key checks
        // still running end by their deadline; what they admit then is dropped unserved.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The listener thread: accept devices and check them, handing the admitted ones to the
/// serving thread.
fn listen(listener: TcpListener, shared: &Arc<Shared>, name: &str, access: &Arc<PushAccess>) {
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.admitted_len() >= ADMITTED {
            // Enough waiting: leave the rest in the backlog for now.
            std::thread::sleep(POLL);
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => check(stream, peer, shared, name, access),
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

/// Admit a new connection, refuse it, or (with a key) start reading its key line. A refused
/// connection is closed here, by dropping it.
fn check(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    name: &str,
    access: &Arc<PushAccess>,
) {
    if !access.admits_address(peer.ip()) {
        tracing::warn!(
            "{name}: refused device {peer}: {}",
            access.address_refusal()
        );
        return;
    }
    if access.key.is_none() {
        shared.admit(Admitted {
            stream,
            peer,
            first: Vec::new(),
        });
        return;
    }
    if shared.pending_keys.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_KEYS {
        shared.pending_keys.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!(
            "{name}: refused device {peer}: {MAX_PENDING_KEYS} connections are already sending their key"
        );
        return;
    }
    let since = Instant::now();
    let pending = Arc::clone(shared);
    let (shared, name, access) = (Arc::clone(shared), name.to_owned(), Arc::clone(access));
    let spawned = std::thread::Builder::new()
        .name("sl-esp32-key".into())
        .spawn(move || {
            let mut stream = stream;
            let checked = stream
                .set_nonblocking(false)
                .map_err(|e| format!("socket: {e}"))
                .and_then(|()| access.check_key_line(&mut stream, since));
            shared.pending_keys.fetch_sub(1, Ordering::Relaxed);
            match checked {
                Ok(first) => shared.admit(Admitted {
                    stream,
                    peer,
                    first,
                }),
                Err(why) => tracing::warn!("{name}: refused device {peer}: {why}"),
            }
        });
    if let Err(e) = spawned {
        // The closure (and the stream in it) is gone: the connection is closed.
        pending.pending_keys.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!("starting a key check thread: {e}");
    }
}

/// The serving thread: serve each admitted device until it closes or stalls, in turn.
fn serve_admitted(shared: &Shared, name: &str, read_timeout: Duration) {
    while let Some(device) = shared.next_admitted() {
        let peer = device.peer;
        tracing::debug!("{name}: device {peer} connected");
        if let Err(e) = serve(device.stream, &device.first, shared, name, read_timeout) {
            tracing::warn!("{name}: device {peer}: {e:#}");
        }
    }
}

/// Read one device's connection: JPEGs go to the queue, problems to the log. Returns when the
/// device closes (Ok), or with an error when it stalls or the connection fails.
fn serve(
    mut stream: TcpStream,
    first: &[u8],
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
    let mut first = Some(first).filter(|f| !f.is_empty());
    while !shared.stop.load(Ordering::Relaxed) {
        // What came with the key line first, then the socket.
        let read = match first.take() {
            Some(bytes) => {
                chunk[..bytes.len()].copy_from_slice(bytes);
                Ok(bytes.len())
            }
            None => stream.read(&mut chunk),
        };
        match read {
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
        let url = SourceUrl::Esp32Push {
            bind,
            access: PushAccess::default(),
        };
        let mut s = SourceSpec::new(url, "t");
        s.read_timeout = Duration::from_millis(300);
        s
    }

    fn luma(f: &CapturedFrame) -> u8 {
        match &f.payload {
            crate::source::Payload::Raw(r) => r.y[0],
            _ => unreachable!(),
        }
    }

    /// A source on a free loopback port admitting what `query` (`allow=...&key=...`) says.
    fn open_with(query: &str) -> Esp32Push {
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let access = PushAccess::from_query(query).unwrap();
        Esp32Push::open(bind, access, &spec(bind)).unwrap()
    }

    /// Connect, write `bytes`, and wait (up to 3 s) for the listener to close the
    /// connection: true if it did (a refused device), false if it kept it open.
    fn closed_after_sending(addr: SocketAddr, bytes: &[u8]) -> bool {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(bytes);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => panic!("the listener sent something"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            // Reset: closed with our bytes unread.
            Err(_) => true,
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
        let mut src = open_with("");
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
        let mut src = open_with("");
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
        let again = Esp32Push::open(addr, PushAccess::default(), &spec(addr)).unwrap();
        assert_eq!(again.local_addr(), addr);
    }

    #[test]
    fn a_device_with_the_key_streams_and_strangers_never_become_video() {
        let mut src = open_with("key=s3cret");
        let addr = src.local_addr();
        let (dark, light) = (grey_jpeg(30), grey_jpeg(200));
        // Strangers first: a wrong key, no key line (a JPEG straight away), an endless line.
        let mut wrong = b"KEY guess\n".to_vec();
        wrong.extend_from_slice(&light);
        assert!(closed_after_sending(addr, &wrong), "wrong key");
        assert!(closed_after_sending(addr, &light), "no key line");
        let long = format!("KEY {}", "k".repeat(4096));
        assert!(
            closed_after_sending(addr, long.as_bytes()),
            "oversized key line"
        );
        device(addr, vec![b"KEY s3cre".to_vec()]).join().unwrap(); // half a key, then close
                                                                   // None of them produced a frame.
        let err = src.next_frame().unwrap_err();
        assert!(format!("{err:#}").contains("no frame for"), "{err:#}");
        // The key line and the first JPEG in one write, then another JPEG.
        let mut first = b"KEY s3cret\n".to_vec();
        first.extend_from_slice(&dark);
        device(addr, vec![first, light.clone()]).join().unwrap();
        let a = src.next_frame().unwrap();
        let b = src.next_frame().unwrap();
        assert!(luma(&a) < 60 && luma(&b) > 150, "{} {}", luma(&a), luma(&b));
        // A stranger holding a connection open without a key does not hold up the device.
        let mut silent = TcpStream::connect(addr).unwrap();
        silent.write_all(b"KEY ").unwrap();
        device(addr, vec![b"KEY s3cret\r\n".to_vec(), dark.clone()])
            .join()
            .unwrap();
        assert!(luma(&src.next_frame().unwrap()) < 60);
        drop(silent);
    }

    #[test]
    fn allow_admits_its_ranges_only() {
        let jpeg = grey_jpeg(100);
        // Loopback is outside 10.0.0.0/8: refused before a byte is read.
        let mut src = open_with("allow=10.0.0.0/8");
        assert!(closed_after_sending(src.local_addr(), &jpeg));
        assert!(src.next_frame().is_err());
        drop(src);
        // Inside 127.0.0.0/8: streams.
        let mut src = open_with("allow=10.0.0.0/8,127.0.0.0/8");
        device(src.local_addr(), vec![jpeg.clone()]).join().unwrap();
        assert_eq!(src.next_frame().unwrap().index, 0);
        drop(src);
        // Both: the range and the key.
        let mut src = open_with("allow=127.0.0.1&key=k");
        assert!(closed_after_sending(src.local_addr(), &jpeg));
        let mut keyed = b"KEY k\n".to_vec();
        keyed.extend_from_slice(&jpeg);
        device(src.local_addr(), vec![keyed]).join().unwrap();
        assert_eq!(src.next_frame().unwrap().index, 0);
    }
}
