//! `esp32-tcp://HOST:PORT`: an ESP32-CAM that serves one JPEG per TCP connection (the seed's
//! relay behaviour): connect, read until the device closes, decode, and again at the poll
//! rate.
//!
//! What counts as what:
//! - Connection refused or unreachable, a connect that takes longer than the read timeout, a
//!   device that stalls (no byte for the read timeout, mid-frame or before it), or one that
//!   never closes (more than [`MAX_RESPONSE`] bytes): an error from `next_frame`; the caller
//!   reopens the source with backoff.
//! - Garbage, a truncated or a corrupt JPEG, an empty connection: that one frame is skipped
//!   and logged with the source's name, and polling goes on. Bytes around the JPEG (some
//!   firmwares send a length or a header first) are skipped by the splitter.
//! - No decodable frame at all for the read timeout: an error too, so the source shows as
//!   lost rather than frozen.
//!
//! `open` is eager: it fetches the first frame (to learn the picture size the encoder needs)
//! and fails if the device cannot be reached or sends nothing decodable within the read
//! timeout.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::pacer::Pacer;
use super::{CapturedFrame, Source, SourceSpec};
use crate::barcode;
use crate::image::I420Frame;
use crate::image::JpegDecoder;
use crate::mjpeg::{JpegSplitter, DEFAULT_MAX_FRAME};

/// Most bytes read from one connection: a device that keeps sending is not a one-JPEG server.
pub const MAX_RESPONSE: usize = DEFAULT_MAX_FRAME;

/// What one connection brought.
enum Fetched {
    Jpeg(Vec<u8>),
    /// Nothing usable; why, for the log.
    Nothing(String),
}

/// The polling ESP32 TCP source.
pub struct Esp32Tcp {
    name: String,
    host: String,
    port: u16,
    read_timeout: Duration,
    poll_fps: u32,
    pacer: Pacer,
    decoder: JpegDecoder,
    width: u32,
    height: u32,
    index: u32,
    /// The decoded frame `open` fetched, not yet returned.
    pending: Option<(I420Frame, u64)>,
    /// Since when every fetch has failed to give a decodable frame.
    bad_since: Option<Instant>,
}

impl Esp32Tcp {
    /// Connect once and fetch the first frame; see the module docs.
    pub fn open(host: &str, port: u16, spec: &SourceSpec) -> anyhow::Result<Self> {
        let mut src = Esp32Tcp {
            name: spec.url.to_string(),
            host: host.to_owned(),
            port,
            read_timeout: spec.read_timeout.max(Duration::from_millis(1)),
            poll_fps: spec.poll_fps.clamp(1, 240),
            pacer: Pacer::new(spec.poll_fps.clamp(1, 240)),
            decoder: JpegDecoder::new(),
            width: 0,
            height: 0,
            index: 0,
            pending: None,
            bad_since: None,
        };
        let (frame, at) = src.fetch_good()?;
        (src.width, src.height) = (frame.width, frame.height);
        tracing::info!("{}: {}x{} frames", src.name, src.width, src.height);
        src.pending = Some((frame, at));
        Ok(src)
    }

    /// Poll until a frame decodes. Errors: the device is gone or stalled, or nothing
    /// decodable came for the read timeout.
    fn fetch_good(&mut self) -> anyhow::Result<(I420Frame, u64)> {
        loop {
            self.pacer.wait();
            let why = match self.fetch()? {
                Fetched::Jpeg(jpeg) => {
                    let at = barcode::now_us();
                    match self.decoder.decode(&jpeg) {
                        Ok(frame) => {
                            self.bad_since = None;
                            return Ok((frame, at));
                        }
                        Err(e) => format!("a bad JPEG ({} bytes): {e:#}", jpeg.len()),
                    }
                }
                Fetched::Nothing(why) => why,
            };
            tracing::warn!("{}: frame skipped: {why}", self.name);
            let since = *self.bad_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.read_timeout {
                bail!(
                    "{}: no decodable frame for {:?} (last: {why})",
                    self.name,
                    self.read_timeout
                );
            }
        }
    }

    /// One connection: connect, read to the end, pick the JPEG out of what came.
    fn fetch(&self) -> anyhow::Result<Fetched> {
        let mut stream = self.connect()?;
        stream
            .set_read_timeout(Some(self.read_timeout))
            .context("setting the read timeout")?;
        let mut data = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    bail!(
                        "{}: device stalled: nothing for {:?} after {} bytes",
                        self.name,
                        self.read_timeout,
                        data.len()
                    )
                }
                Err(e) => bail!("{}: reading after {} bytes: {e}", self.name, data.len()),
            }
            if data.len() > MAX_RESPONSE {
                bail!(
                    "{}: device sent more than {MAX_RESPONSE} bytes without closing \
                     (an MJPEG stream? use http:// for those)",
                    self.name
                );
            }
        }
        Ok(pick_jpeg(&data))
    }

    fn connect(&self) -> anyhow::Result<TcpStream> {
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("{}: resolving {}", self.name, self.host))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.read_timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(anyhow!("{}: connecting to {addr}: {e}", self.name)),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("{}: {} has no address", self.name, self.host)))
    }
}

/// The JPEG in one connection's bytes (the last whole one if there are several), or why
/// there is none.
fn pick_jpeg(data: &[u8]) -> Fetched {
    if data.is_empty() {
        return Fetched::Nothing("the device closed without sending anything".into());
    }
    let mut splitter = JpegSplitter::new(MAX_RESPONSE);
    splitter.push(data);
    let mut jpeg = None;
    let mut problems = Vec::new();
    while let Some(item) = splitter.next() {
        match item {
            Ok(j) => jpeg = Some(j),
            Err(e) => problems.push(e.to_string()),
        }
    }
    problems.extend(splitter.finish().map(|e| e.to_string()));
    match jpeg {
        Some(j) => {
            if !problems.is_empty() {
                tracing::debug!("around the JPEG: {}", problems.join("; "));
            }
            Fetched::Jpeg(j)
        }
        None => Fetched::Nothing(format!(
            "no JPEG in {} bytes: {}",
            data.len(),
            problems.join("; ")
        )),
    }
}

impl Source for Esp32Tcp {
    fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn fps(&self) -> u32 {
        self.poll_fps
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        let (frame, at) = match self.pending.take() {
            Some(p) => p,
            None => self.fetch_good()?,
        };
        if (frame.width, frame.height) != (self.width, self.height) {
            // The encoder follows the frames' size; just keep `dimensions` true.
            tracing::info!(
                "{}: picture size changed from {}x{} to {}x{}",
                self.name,
                self.width,
                self.height,
                frame.width,
                frame.height
            );
            (self.width, self.height) = (frame.width, frame.height);
        }
        let index = self.index;
        self.index = self.index.wrapping_add(1);
        Ok(CapturedFrame::raw(frame, at, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jpeg_is_picked_out_of_what_a_connection_sent() {
        let jpeg = vec![0xff, 0xd8, 0xff, 0xfe, 0x00, 0x03, 0x07, 0xff, 0xd9];
        // A 4-byte length some firmwares send first, then the JPEG.
        let mut data = (jpeg.len() as u32).to_le_bytes().to_vec();
        data.extend(&jpeg);
        assert!(matches!(pick_jpeg(&data), Fetched::Jpeg(j) if j == jpeg));
        for (bad, want) in [
            (&b""[..], "closed without"),
            (b"garbage", "no JPEG in 7 bytes"),
            (&jpeg[..6], "cut short"),
        ] {
            match pick_jpeg(bad) {
                Fetched::Nothing(why) => assert!(why.contains(want), "{why}"),
                Fetched::Jpeg(_) => panic!("{bad:?} is no JPEG"),
            }
        }
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;
    use crate::source::{Payload, SourceUrl};
    use jpeg_encoder::{ColorType, Encoder};
    use std::io::Write;
    use std::net::{SocketAddr, TcpListener};

    fn grey_jpeg(level: u8) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new(&mut out, 90)
            .encode(&[level; 32 * 16], 32, 16, ColorType::Luma)
            .unwrap();
        out
    }

    /// A device answering connection `i` with `replies[i]` (then closing); `None` = stall
    /// with half a JPEG sent.
    fn device(replies: Vec<Option<Vec<u8>>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for r in replies {
                let (mut s, _) = l.accept().unwrap();
                match r {
                    Some(bytes) => s.write_all(&bytes).unwrap(),
                    None => {
                        s.write_all(&grey_jpeg(1)[..100]).unwrap();
                        held.push(s);
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        });
        addr
    }

    fn open(addr: SocketAddr) -> anyhow::Result<Esp32Tcp> {
        let url = SourceUrl::Esp32Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        };
        let mut spec = SourceSpec::new(url, "t");
        spec.read_timeout = Duration::from_millis(300);
        spec.poll_fps = 50;
        Esp32Tcp::open(&addr.ip().to_string(), addr.port(), &spec)
    }

    fn luma(f: &CapturedFrame) -> u8 {
        match &f.payload {
            Payload::Raw(r) => r.y[0],
            _ => unreachable!(),
        }
    }

    #[test]
    fn bad_replies_are_skipped_and_a_stall_is_an_error() {
        let corrupt = {
            let mut j = grey_jpeg(1);
            let sof = j.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
            j[sof + 9] = 0;
            j
        };
        let addr = device(vec![
            Some(grey_jpeg(30)),
            Some(b"garbage".to_vec()),
            Some(Vec::new()),
            Some(corrupt),
            Some(grey_jpeg(200)[..300].to_vec()),
            Some(grey_jpeg(200)),
            None,
        ]);
        let mut src = open(addr).unwrap();
        assert_eq!(src.dimensions(), (32, 16));
        let a = src.next_frame().unwrap();
        let b = src.next_frame().unwrap();
        assert!(luma(&a) < 60 && luma(&b) > 150, "{} {}", luma(&a), luma(&b));
        assert_eq!((a.index, b.index), (0, 1));
        let err = src.next_frame().unwrap_err();
        assert!(format!("{err:#}").contains("stalled"), "{err:#}");
        assert!(
            format!("{err:#}").contains(&format!("esp32-tcp://{addr}")),
            "{err:#}"
        );
    }

    #[test]
    fn a_refused_connection_fails_open() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = open(addr).err().unwrap();
        assert!(format!("{err:#}").contains("connecting"), "{err:#}");
    }

    #[test]
    fn nothing_decodable_for_the_read_timeout_is_an_error() {
        let addr = device(
            vec![Some(grey_jpeg(30))]
                .into_iter()
                .chain(std::iter::repeat_n(Some(b"x".to_vec()), 100))
                .collect(),
        );
        let mut src = open(addr).unwrap();
        src.next_frame().unwrap();
        let err = src.next_frame().unwrap_err();
        assert!(format!("{err:#}").contains("no decodable frame"), "{err:#}");
    }
}
