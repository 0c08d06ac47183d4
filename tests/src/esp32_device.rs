//! Fake ESP32-CAM devices for source tests, on plain threads (independent of the test's
//! async runtime, like a real device).
//!
//! - [`Esp32Server`]: pull mode, the seed's firmware: listens, answers every connection with
//!   one JPEG and closes.
//! - [`PushDevice`]: push mode: connects out to the publisher and sends JPEGs, one per
//!   connection or several on one connection, reconnecting whenever the connection drops.
//!
//! Both send barcode JPEGs numbered 0, 1, 2... ([`barcode_jpeg`]), so a viewer can check
//! which frames arrived. A test injects bad input with `inject`: the next connection (pull)
//! or the next send (push) uses the injected [`Reply`] instead of a good frame; good frames
//! keep their numbering around it.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::jpeg_fixture::barcode_jpeg;

/// How often the device threads look at their stop flag.
const POLL: Duration = Duration::from_millis(10);

/// One answer from a fake device.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Send these bytes as they are (garbage, a truncated or corrupt JPEG, nothing at all).
    Bytes(Vec<u8>),
    /// Send these bytes, then go silent for `hold` (a device stalled mid-frame), then close.
    Stall { bytes: Vec<u8>, hold: Duration },
}

/// The pictures a device sends.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// Barcode tag (use `barcode::tag_for(camera_id)` so viewers accept the frames).
    pub tag: u16,
}

/// State shared by a device thread and its handle.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Good frames sent so far (= the number of the next one).
    frames: AtomicU32,
    /// Connections accepted or made.
    connections: AtomicU32,
    injected: Mutex<VecDeque<Reply>>,
}

impl Shared {
    fn next_injected(&self) -> Option<Reply> {
        self.injected.lock().unwrap().pop_front()
    }

    fn next_good(&self, picture: Picture) -> Vec<u8> {
        let n = self.frames.fetch_add(1, Ordering::Relaxed);
        barcode_jpeg(picture.width, picture.height, n, picture.tag)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleep up to `d`, waking early when stopped.
    fn sleep(&self, d: Duration) {
        let end = std::time::Instant::now() + d;
        while !self.stopped() {
            let now = std::time::Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep(POLL.min(end - now));
        }
    }
}

/// Handle API common to both devices.
pub struct Device {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Device {
    /// Use these replies, in order, before the next good frames.
    pub fn inject(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.injected.lock().unwrap().extend(replies);
    }

    /// True once every injected reply has been used.
    pub fn injected_done(&self) -> bool {
        self.shared.injected.lock().unwrap().is_empty()
    }

    /// Good frames sent so far (the next good frame has this number).
    pub fn frames_sent(&self) -> u32 {
        self.shared.frames.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pull mode: an ESP32-CAM serving one JPEG per TCP connection.
pub struct Esp32Server {
    pub device: Device,
    addr: SocketAddr,
}

impl Esp32Server {
    /// Listen on a free loopback port.
    pub fn start(picture: Picture) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-esp32".into())
            .spawn(move || serve(listener, &s, picture))?;
        Ok(Esp32Server {
            device: Device {
                shared,
                thread: Some(thread),
            },
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serve(listener: TcpListener, shared: &Arc<Shared>, picture: Picture) {
    while !shared.stopped() {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nonblocking(false);
        let reply = shared
            .next_injected()
            .unwrap_or_else(|| Reply::Bytes(shared.next_good(picture)));
        // Its own thread, so a stalling reply does not hold up the next connection.
        let s = Arc::clone(shared);
        std::thread::spawn(move || {
            let _ = answer(stream, reply, &s);
        });
    }
}

/// Send one reply on a connection and close it.
fn answer(mut stream: TcpStream, reply: Reply, shared: &Shared) -> std::io::Result<()> {
    match reply {
        Reply::Bytes(b) => stream.write_all(&b)?,
        Reply::Stall { bytes, hold } => {
            stream.write_all(&bytes)?;
            stream.flush()?;
            shared.sleep(hold);
        }
    }
    stream.shutdown(Shutdown::Both)
}

/// How a pushing device uses its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMode {
    /// Connect, send one JPEG, close (the seed's push mode).
    OnePerConnection,
    /// Stay connected and send JPEG after JPEG.
    Persistent,
}

/// Push mode: a device behind NAT connecting out to `target` and sending at `fps`.
pub struct PushDevice {
    pub device: Device,
}

impl PushDevice {
    /// Start pushing; connection attempts repeat until the publisher listens.
    pub fn start(target: SocketAddr, mode: PushMode, fps: u32, picture: Picture) -> Self {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let period = Duration::from_secs(1) / fps.max(1);
        let thread = std::thread::Builder::new()
            .name("fake-esp32-push".into())
            .spawn(move || push(target, mode, period, &s, picture))
            .expect("spawning the push device");
        PushDevice {
            device: Device {
                shared,
                thread: Some(thread),
            },
        }
    }
}

fn push(target: SocketAddr, mode: PushMode, period: Duration, shared: &Shared, picture: Picture) {
    let mut conn: Option<TcpStream> = None;
    while !shared.stopped() {
        if conn.is_none() {
            match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(s) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    conn = Some(s);
                }
                Err(_) => {
                    shared.sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let stream = conn.as_mut().expect("connected above");
        let (bytes, hold) = match shared.next_injected() {
            Some(Reply::Bytes(b)) => (b, None),
            Some(Reply::Stall { bytes, hold }) => (bytes, Some(hold)),
            None => (shared.next_good(picture), None),
        };
        let sent = stream.write_all(&bytes).and_then(|_| stream.flush());
        if let Some(hold) = hold {
            shared.sleep(hold);
        }
        // A stall ends its connection; so does a failed send (the publisher dropped us) and,
        // in one-per-connection mode, every send.
        if sent.is_err() || hold.is_some() || mode == PushMode::OnePerConnection {
            if let Some(s) = conn.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        shared.sleep(period);
    }
}

/// A free loopback port to listen on (bound, read, released: tiny race, fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Bad JPEG data made from a good JPEG, for bad-input tests.
pub mod bad {
    /// The first half of `jpeg`: no end marker.
    pub fn truncated(jpeg: &[u8]) -> Vec<u8> {
        jpeg[..jpeg.len() / 2].to_vec()
    }

    /// `jpeg` with its framing intact but its frame header broken (zero colour components),
    /// so it splits as a JPEG and fails to decode.
    pub fn corrupt(jpeg: &[u8]) -> Vec<u8> {
        let mut j = jpeg.to_vec();
        let sof = j
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .expect("a baseline JPEG has SOF0");
        j[sof + 9] = 0;
        j
    }

    /// Bytes that are no JPEG at all (with a stray SOI-lookalike half marker at the end).
    pub fn garbage(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 7 + 3) as u8 & 0x7f)
            .chain([0xff])
            .collect()
    }
}
