//! `http://` and `https://` sources: a `multipart/x-mixed-replace` MJPEG stream (ESP32
//! CameraWebServer `/stream`, most IP cameras) or a URL that answers one JPEG per request
//! (a snapshot URL such as the ESP32's `/capture`), polled at `poll_fps`. Which of the two
//! it is comes from the response's `Content-Type`, so one `--source` form covers both.
//!
//! A blocking client (ureq) fits: sources run on their own thread. Credentials in the URL
//! (`http://user:pass@cam/stream`) go out as HTTP Basic auth; logs and errors only ever show
//! the URL with the password masked. Connecting is lazy (the first [`Source::next_frame`]),
//! so opening never blocks and a camera that is down is just a source error the caller
//! retries with backoff.
//!
//! Bad frames (a corrupt or truncated JPEG, a part that is not a JPEG, bytes outside any
//! part) are skipped and logged; the stream goes on. A connection that fails, ends, or
//! stalls for longer than the read timeout (even in the middle of a frame) is an error.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use ureq::http::StatusCode;

use super::{CapturedFrame, Source, SourceSpec};
use crate::barcode::now_us;
use crate::image::JpegDecoder;
use crate::mjpeg::multipart::{boundary_from_content_type, Event, MultipartParser, Part};

/// Largest JPEG (stream part or snapshot) accepted: generous for 4K at high quality.
pub const MAX_JPEG: usize = 16 * 1024 * 1024;
/// Bytes asked for per read of a stream.
const READ_CHUNK: usize = 64 * 1024;
/// Problems (skipped frames or bytes) logged one by one before the log thins out to one line
/// per hundred.
const LOG_EVERY_SKIP_UNTIL: u64 = 10;

/// An HTTP MJPEG stream or snapshot URL.
pub struct HttpSource {
    /// The URL as given, credentials included (only ever sent to the camera).
    url: String,
    /// The URL with the password masked, for logs and errors.
    name: String,
    agent: ureq::Agent,
    read_timeout: Duration,
    size: (u32, u32),
    fps: u32,
    poll_interval: Duration,
    decoder: JpegDecoder,
    conn: Option<Connection>,
    index: u32,
    skipped: u64,
}

/// An open connection: which kind of URL it turned out to be.
enum Connection {
    Stream(Box<Stream>),
    Snapshot {
        /// When the next snapshot is due.
        next_due: Instant,
        /// The first response's JPEG, not yet given out.
        pending: Option<Vec<u8>>,
    },
}

/// An MJPEG stream being read.
struct Stream {
    body: ureq::BodyReader<'static>,
    parser: MultipartParser,
    /// Read buffer.
    chunk: Vec<u8>,
}

impl Stream {
    fn new(body: ureq::BodyReader<'static>, parser: MultipartParser) -> Box<Self> {
        Box::new(Stream {
            body,
            parser,
            chunk: vec![0; READ_CHUNK],
        })
    }
}

/// What one GET returned.
enum Answer {
    Stream(Box<Stream>),
    Jpeg(Vec<u8>),
}

impl HttpSource {
    /// A source for `spec.url` (which must be [`super::SourceUrl::Http`]). Does not connect.
    pub fn new(spec: &SourceSpec) -> anyhow::Result<Self> {
        let super::SourceUrl::Http { url } = &spec.url else {
            bail!("not an HTTP source: {}", spec.url);
        };
        let t = Some(spec.read_timeout);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_resolve(t)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            // Statuses are turned into our own messages, which say what to check.
            .http_status_as_error(false)
            .user_agent(concat!("sightline-publisher/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let poll_fps = spec.poll_fps.clamp(1, 240);
        Ok(HttpSource {
            url: url.clone(),
            name: spec.url.to_string(),
            agent,
            read_timeout: spec.read_timeout,
            size: (spec.width, spec.height),
            fps: spec.fps.max(1),
            poll_interval: Duration::from_secs_f64(1.0 / poll_fps as f64),
            decoder: JpegDecoder::new(),
            conn: None,
            index: 0,
            skipped: 0,
        })
    }

    /// GET the URL and tell what came back. Error statuses become messages naming the
    /// status and what to check.
    fn get(&self) -> anyhow::Result<Answer> {
        let name = &self.name;
        let response = self
            .agent
            .get(&self.url)
            .header(
                "Accept",
                "multipart/x-mixed-replace, image/jpeg;q=0.9, */*;q=0.5",
            )
            .call()
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if !status.is_success() {
            bail!("{}", status_message(status, name));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned();
        let lower = content_type.to_ascii_lowercase();
        let mut body = response.into_body().into_with_config().reader();
        if lower.starts_with("multipart/") {
            let boundary = boundary_from_content_type(&content_type);
            if boundary.is_none() {
                tracing::warn!(source = %name, "`{content_type}` names no boundary: learning it from the stream");
            }
            return Ok(Answer::Stream(Stream::new(
                body,
                MultipartParser::new(boundary.as_deref(), MAX_JPEG),
            )));
        }
        // A JPEG, or an unlabelled body (some cameras send `application/octet-stream` or
        // nothing): the first bytes say which.
        let mut head = Vec::with_capacity(READ_CHUNK);
        (&mut body)
            .take(2)
            .read_to_end(&mut head)
            .map_err(|e| self.read_error(e))?;
        if head.starts_with(&[0xff, 0xd8]) || lower.starts_with("image/") {
            (&mut body)
                .take(MAX_JPEG as u64 + 1 - head.len() as u64)
                .read_to_end(&mut head)
                .map_err(|e| self.read_error(e))?;
            if head.len() > MAX_JPEG {
                bail!("{name}: the snapshot is larger than {} MiB", MAX_JPEG >> 20);
            }
            return Ok(Answer::Jpeg(head));
        }
        if head.starts_with(b"--") || head.starts_with(b"\r\n") {
            tracing::warn!(source = %name, "Content-Type `{content_type}`, but the body looks multipart: reading it as an MJPEG stream");
            let mut parser = MultipartParser::new(None, MAX_JPEG);
            parser.push(&head);
            return Ok(Answer::Stream(Stream::new(body, parser)));
        }
        bail!(
            "{name} answered with Content-Type `{content_type}`: neither an MJPEG stream \
             (multipart/x-mixed-replace) nor a JPEG; check the URL"
        )
    }

    fn connect(&mut self) -> anyhow::Result<()> {
        match self.get()? {
            Answer::Stream(stream) => {
                tracing::info!(source = %self.name, boundary = ?stream.parser.boundary(), "MJPEG stream");
                self.conn = Some(Connection::Stream(stream));
                Ok(())
            }
            Answer::Jpeg(jpeg) => {
                tracing::info!(source = %self.name, poll = ?self.poll_interval, "JPEG snapshot URL: polling");
                self.conn = Some(Connection::Snapshot {
                    next_due: Instant::now() + self.poll_interval,
                    pending: Some(jpeg),
                });
                Ok(())
            }
        }
    }

    /// Decode a JPEG into a frame, or log why it is skipped.
    fn frame_from(&mut self, jpeg: &[u8], what: &str) -> Option<CapturedFrame> {
        let capture_us = now_us();
        match self.decoder.decode(jpeg) {
            Ok(frame) => {
                self.size = (frame.width, frame.height);
                let f = CapturedFrame::raw(frame, capture_us, self.index);
                self.index = self.index.wrapping_add(1);
                Some(f)
            }
            Err(e) => {
                self.log_problem(format_args!(
                    "skipped {what} of {} bytes: {e:#}",
                    jpeg.len()
                ));
                None
            }
        }
    }

    /// Log a problem the stream survived (a skipped frame or bytes, a boundary change): each of the first few,
    /// then one in a hundred, so a camera that is broken for good does not flood the log.
    fn log_problem(&mut self, what: std::fmt::Arguments<'_>) {
        self.skipped += 1;
        let n = self.skipped;
        if n <= LOG_EVERY_SKIP_UNTIL || n.is_multiple_of(100) {
            tracing::warn!(source = %self.name, problems_so_far = n, "{what}");
        }
    }

    fn part_frame(&mut self, part: Part) -> Option<CapturedFrame> {
        if !part.body.starts_with(&[0xff, 0xd8]) {
            let ct = part.content_type.as_deref().unwrap_or("none");
            self.log_problem(format_args!(
                "skipped a part of {} bytes (Content-Type {ct}): not a JPEG",
                part.body.len()
            ));
            return None;
        }
        if let Some(n) = part.content_length.filter(|n| *n != part.body.len()) {
            tracing::debug!(source = %self.name, "a part's Content-Length said {n}, its body has {}", part.body.len());
        }
        self.frame_from(&part.body, "a stream part")
    }

    fn next_stream_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        loop {
            let Some(Connection::Stream(stream)) = self.conn.as_mut() else {
                bail!("internal: not a stream");
            };
            match stream.parser.next_event() {
                Some(Event::Part(part)) => {
                    if let Some(f) = self.part_frame(part) {
                        return Ok(f);
                    }
                }
                Some(Event::Skipped { bytes, reason }) => {
                    self.log_problem(format_args!(
                        "skipped {bytes} bytes of the stream: {reason}"
                    ));
                }
                Some(Event::BoundaryChanged { from, to }) => {
                    let from = from.as_deref().unwrap_or("(none)");
                    self.log_problem(format_args!(
                        "the stream switched boundary from `{from}` to `{to}`: following it"
                    ));
                }
                None => {
                    let Stream {
                        body,
                        parser,
                        chunk,
                    } = &mut **stream;
                    let n = match body.read(chunk) {
                        Ok(n) => n,
                        Err(e) => return Err(self.read_error(e)),
                    };
                    if n == 0 {
                        bail!(
                            "{}: the camera ended the stream ({} bytes of an unfinished part)",
                            self.name,
                            parser.buffered()
                        );
                    }
                    parser.push(&chunk[..n]);
                }
            }
        }
    }

    fn next_snapshot_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        loop {
            let Some(Connection::Snapshot { next_due, pending }) = self.conn.as_mut() else {
                bail!("internal: not a snapshot URL");
            };
            let jpeg = match pending.take() {
                Some(jpeg) => jpeg,
                None => {
                    let due = *next_due;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    // Keep the schedule, unless fetching fell a whole period behind.
                    let mut next = due + self.poll_interval;
                    if next < Instant::now() {
                        next = Instant::now() + self.poll_interval;
                    }
                    *next_due = next;
                    match self.get()? {
                        Answer::Jpeg(jpeg) => jpeg,
                        Answer::Stream(..) => {
                            bail!(
                                "{}: the snapshot URL now answers with a stream; reconnecting",
                                self.name
                            )
                        }
                    }
                }
            };
            if let Some(f) = self.frame_from(&jpeg, "a snapshot") {
                return Ok(f);
            }
        }
    }

    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        match e {
            ureq::Error::Timeout(_) => {
                anyhow!("{}: no answer within {:?}", self.name, self.read_timeout)
            }
            ureq::Error::HostNotFound => anyhow!("{}: host not found", self.name),
            other => anyhow!("{}: request failed: {other}", self.name),
        }
    }

    fn read_error(&self, e: std::io::Error) -> anyhow::Error {
        let timed_out = matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) || e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
        if timed_out {
            anyhow!(
                "{}: no data for {:?}: the camera stalled",
                self.name,
                self.read_timeout
            )
        } else {
            anyhow::Error::new(e).context(format!("{}: reading failed", self.name))
        }
    }
}

impl Source for HttpSource {
    fn dimensions(&self) -> (u32, u32) {
        self.size
    }

    fn fps(&self) -> u32 {
        match self.conn {
            Some(Connection::Snapshot { .. }) => {
                (1.0 / self.poll_interval.as_secs_f64()).round() as u32
            }
            _ => self.fps,
        }
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        let result = match self.conn {
            None => self.connect().and_then(|()| self.next_frame()),
            Some(Connection::Stream(_)) => self.next_stream_frame(),
            Some(Connection::Snapshot { .. }) => self.next_snapshot_frame(),
        };
        if result.is_err() {
            // Whatever failed, the next call starts with a fresh connection.
            self.conn = None;
        }
        result
    }

    /// Which kind of URL it turned out to be, once connected.
    fn detail(&self) -> Option<String> {
        match self.conn.as_ref()? {
            Connection::Stream(_) => Some("MJPEG stream".into()),
            Connection::Snapshot { .. } => Some(format!(
                "JPEG snapshot every {} ms",
                self.poll_interval.as_millis()
            )),
        }
    }
}

/// The error for a status that is not 2xx: the status, the URL (password masked) and what
/// to check.
pub fn status_message(status: StatusCode, name: &str) -> String {
    let reason = status
        .canonical_reason()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let hint = match status.as_u16() {
        401 => "check the user and password in the URL",
        403 => "the camera refuses this user",
        404 => "check the path (an ESP32 CameraWebServer streams at :81/stream and gives snapshots at /capture)",
        s if (500..600).contains(&s) => "the camera reported an error; it is retried",
        _ => "the camera refused the request",
    };
    format!("HTTP {}{reason} from {name}: {hint}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_name_the_status_the_url_and_what_to_check() {
        let m = status_message(StatusCode::UNAUTHORIZED, "http://admin:***@cam/stream");
        assert_eq!(
            m,
            "HTTP 401 Unauthorized from http://admin:***@cam/stream: check the user and password in the URL"
        );
        assert!(status_message(StatusCode::NOT_FOUND, "http://cam/x")
            .starts_with("HTTP 404 Not Found from http://cam/x: check the path"));
        assert!(
            status_message(StatusCode::INTERNAL_SERVER_ERROR, "http://cam/x")
                .starts_with("HTTP 500 Internal Server Error from")
        );
        assert!(
            status_message(StatusCode::from_u16(599).unwrap(), "u").starts_with("HTTP 599 from u")
        );
    }

    #[test]
    fn opening_does_not_connect_and_the_name_hides_the_password() {
        let spec = SourceSpec::new(
            "http://admin:hunter2@127.0.0.1:9/stream".parse().unwrap(),
            "cam",
        );
        let source = HttpSource::new(&spec).unwrap();
        assert_eq!(source.name, "http://admin:***@127.0.0.1:9/stream");
        assert_eq!(source.dimensions(), (spec.width, spec.height));
        assert_eq!(source.detail(), None, "stream or snapshots: not known yet");
    }
}
