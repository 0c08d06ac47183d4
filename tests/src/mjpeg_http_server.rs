//! A small HTTP camera for source tests. It serves what ESP32-CAMs and IP cameras serve:
//! - `GET /stream`: a `multipart/x-mixed-replace` MJPEG stream in the ESP32 CameraWebServer
//!   layout (`\r\n--BOUNDARY\r\n`, `Content-Type`, `Content-Length`, blank line, JPEG) at
//!   the configured rate;
//! - `GET /snapshot.jpg`: one JPEG per request;
//! - anything else: 404.
//!
//! Every JPEG carries the publisher's frame barcode (`jpeg_fixture::barcode_jpeg`) with the
//! next frame number, shared by both paths, so a viewer at the far end can check it sees the
//! camera's frames in order. Faulty output ([`Fault`]) never uses up a frame number: a source
//! that skips exactly the bad output shows no gap at all.
//!
//! It misbehaves on demand: [`MjpegHttpServer::inject`] queues faults the next stream frames
//! (or snapshot requests) carry out. Plain threads and blocking sockets, on 127.0.0.1.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::jpeg_fixture::barcode_jpeg;

/// How the camera behaves when nothing is injected.
#[derive(Debug, Clone)]
pub struct MjpegServerConfig {
    pub width: u32,
    pub height: u32,
    /// Stream frame rate.
    pub fps: u32,
    /// Barcode tag (use `barcode::tag_for(camera_id)`).
    pub tag: u16,
    /// The boundary named in the stream's `Content-Type`.
    pub boundary: String,
    /// Send `Content-Length` with each part (the ESP32 does; many IP cameras do not).
    pub content_length: bool,
    /// Require HTTP Basic auth with this user and password.
    pub credentials: Option<(String, String)>,
}

impl MjpegServerConfig {
    pub fn new(width: u32, height: u32, fps: u32, tag: u16) -> Self {
        MjpegServerConfig {
            width,
            height,
            fps,
            tag,
            // The ESP32 CameraWebServer's boundary.
            boundary: "123456789000000000000987654321".into(),
            content_length: true,
            credentials: None,
        }
    }
}

/// Bad output, carried out once by the next stream frame or snapshot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A part (or snapshot) whose body starts like a JPEG and then is noise.
    CorruptJpeg,
    /// A part holding the first half of a JPEG, with an honest `Content-Length` for the half.
    TruncatedJpeg,
    /// A good frame whose `Content-Length` claims 1000 bytes more than its body.
    LyingLength,
    /// This many bytes of noise between two parts.
    Garbage(usize),
    /// The next this many frames go out under another boundary than the header named.
    WrongBoundary(u32),
    /// Send the headers and half of the next frame, then nothing for this long, then close.
    StallMidFrame(Duration),
    /// Answer the next request with this HTTP status.
    Status(u16),
}

struct Shared {
    config: MjpegServerConfig,
    stop: AtomicBool,
    faults: Mutex<VecDeque<Fault>>,
    next_frame: AtomicU32,
    stream_connections: AtomicU32,
    snapshot_requests: AtomicU32,
}

/// A running test camera. Stops when dropped.
pub struct MjpegHttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl MjpegHttpServer {
    /// Listen on a free port of 127.0.0.1.
    pub fn start(config: MjpegServerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            stop: AtomicBool::new(false),
            faults: Mutex::new(VecDeque::new()),
            next_frame: AtomicU32::new(0),
            stream_connections: AtomicU32::new(0),
            snapshot_requests: AtomicU32::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("mjpeg-http-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(MjpegHttpServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT/stream`, with `user:pass@` if given.
    pub fn stream_url(&self, credentials: Option<(&str, &str)>) -> String {
        self.url("/stream", credentials)
    }

    /// `http://127.0.0.1:PORT/snapshot.jpg`, with `user:pass@` if given.
    pub fn snapshot_url(&self, credentials: Option<(&str, &str)>) -> String {
        self.url("/snapshot.jpg", credentials)
    }

    pub fn url(&self, path: &str, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@{}{path}", self.addr),
            None => format!("http://{}{path}", self.addr),
        }
    }

    /// Queue faults, carried out in order by the next frames or requests.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.faults.lock().unwrap().extend(faults);
    }

    /// True once every injected fault has been carried out.
    pub fn faults_done(&self) -> bool {
        self.shared.faults.lock().unwrap().is_empty()
    }

    /// The frame number the next good JPEG will carry.
    pub fn next_frame_number(&self) -> u32 {
        self.shared.next_frame.load(Ordering::SeqCst)
    }

    /// How many `/stream` requests were answered with a stream.
    pub fn stream_connections(&self) -> u32 {
        self.shared.stream_connections.load(Ordering::SeqCst)
    }

    /// How many `/snapshot.jpg` requests were answered with a JPEG.
    pub fn snapshot_requests(&self) -> u32 {
        self.shared.snapshot_requests.load(Ordering::SeqCst)
    }
}

impl Drop for MjpegHttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("mjpeg-http-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, &s) {
                            tracing::debug!("test camera connection ended: {e}");
                        }
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                tracing::warn!("test camera accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The request line's path and whether its `Authorization` header is acceptable.
fn read_request(stream: &TcpStream, shared: &Shared) -> std::io::Result<(String, bool)> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let expected = shared.config.credentials.as_ref().map(|(u, p)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    let mut authorized = expected.is_none();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("authorization")
                && Some(value.trim()) == expected.as_deref()
            {
                authorized = true;
            }
        }
    }
    Ok((path, authorized))
}

fn serve(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let (path, authorized) = read_request(&stream, shared)?;
    if !authorized {
        return respond_status(
            &mut stream,
            401,
            "Unauthorized",
            "WWW-Authenticate: Basic realm=\"camera\"\r\n",
        );
    }
    let path = path.split('?').next().unwrap_or("");
    if path != "/stream" && path != "/snapshot.jpg" {
        return respond_status(&mut stream, 404, "Not Found", "");
    }
    if let Some(status) = take_fault(shared, |f| matches!(f, Fault::Status(_))) {
        let Fault::Status(code) = status else {
            unreachable!()
        };
        return respond_status(&mut stream, code, "Injected", "");
    }
    if path == "/stream" {
        stream_frames(stream, shared)
    } else {
        snapshot(stream, shared)
    }
}

fn respond_status(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    extra: &str,
) -> std::io::Result<()> {
    let body = format!("{code} {reason}\n");
    write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The next queued fault if `wanted` accepts it.
fn take_fault(shared: &Shared, wanted: impl Fn(&Fault) -> bool) -> Option<Fault> {
    let mut faults = shared.faults.lock().unwrap();
    faults.front().filter(|f| wanted(f))?;
    faults.pop_front()
}

fn good_jpeg(shared: &Shared) -> Vec<u8> {
    let c = &shared.config;
    let n = shared.next_frame.fetch_add(1, Ordering::SeqCst);
    barcode_jpeg(c.width, c.height, n, c.tag)
}

/// A JPEG for faults (never counted as a frame).
fn spare_jpeg(shared: &Shared) -> Vec<u8> {
    let c = &shared.config;
    barcode_jpeg(c.width, c.height, u32::MAX, c.tag)
}

/// `SOI`, then noise: no JPEG decoder can take it for a picture.
fn corrupt_jpeg(len: usize) -> Vec<u8> {
    let mut body = vec![0xff, 0xd8];
    let mut x: u32 = 0x1234_5678;
    body.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    body
}

fn stream_frames(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let c = &shared.config;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary={}\r\n\
         Access-Control-Allow-Origin: *\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        c.boundary
    )?;
    stream.flush()?;
    shared.stream_connections.fetch_add(1, Ordering::SeqCst);
    let period = Duration::from_secs_f64(1.0 / c.fps.max(1) as f64);
    let mut due = Instant::now();
    let mut wrong_boundary_left = 0u32;
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        due = (due + period).max(Instant::now() - period);
        let boundary = if wrong_boundary_left > 0 {
            wrong_boundary_left -= 1;
            "wrong-boundary-0000"
        } else {
            c.boundary.as_str()
        };
        let fault = take_fault(shared, |f| !matches!(f, Fault::Status(_)));
        match fault {
            None => write_part(&mut stream, boundary, &good_jpeg(shared), None, c)?,
            Some(Fault::CorruptJpeg) => {
                write_part(&mut stream, boundary, &corrupt_jpeg(4000), None, c)?;
            }
            Some(Fault::TruncatedJpeg) => {
                let jpeg = spare_jpeg(shared);
                write_part(&mut stream, boundary, &jpeg[..jpeg.len() / 2], None, c)?;
            }
            Some(Fault::LyingLength) => {
                // A whole, good frame: a tolerant reader still shows it.
                let jpeg = good_jpeg(shared);
                write_part(&mut stream, boundary, &jpeg, Some(jpeg.len() + 1000), c)?;
            }
            Some(Fault::Garbage(n)) => {
                stream.write_all(&corrupt_jpeg(n)[2..])?;
                write_part(&mut stream, boundary, &good_jpeg(shared), None, c)?;
            }
            Some(Fault::WrongBoundary(n)) => {
                wrong_boundary_left = n;
                continue;
            }
            Some(Fault::StallMidFrame(pause)) => {
                let jpeg = spare_jpeg(shared);
                let mut head = Vec::new();
                part_header(&mut head, boundary, jpeg.len(), c);
                stream.write_all(&head)?;
                stream.write_all(&jpeg[..jpeg.len() / 2])?;
                stream.flush()?;
                let until = Instant::now() + pause;
                while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
            Some(Fault::Status(_)) => unreachable!("status faults are taken per request"),
        }
        stream.flush()?;
    }
    Ok(())
}

fn part_header(out: &mut Vec<u8>, boundary: &str, len: usize, c: &MjpegServerConfig) {
    out.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Type: image/jpeg\r\n").as_bytes());
    if c.content_length {
        out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"X-Timestamp: 0.000000\r\n\r\n");
}

/// One part: headers (with `claimed_len` or the body's length) and body, in one write.
fn write_part(
    stream: &mut TcpStream,
    boundary: &str,
    body: &[u8],
    claimed_len: Option<usize>,
    c: &MjpegServerConfig,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 200);
    part_header(&mut out, boundary, claimed_len.unwrap_or(body.len()), c);
    out.extend_from_slice(body);
    stream.write_all(&out)
}

fn snapshot(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let body = match take_fault(shared, |f| {
        matches!(f, Fault::CorruptJpeg | Fault::TruncatedJpeg)
    }) {
        Some(Fault::CorruptJpeg) => corrupt_jpeg(4000),
        Some(_) => {
            let jpeg = spare_jpeg(shared);
            jpeg[..jpeg.len() / 2].to_vec()
        }
        None => {
            shared.snapshot_requests.fetch_add(1, Ordering::SeqCst);
            good_jpeg(shared)
        }
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.flush()
}
