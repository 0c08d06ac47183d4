//! An incremental `multipart/x-mixed-replace` parser: the framing of MJPEG-over-HTTP (ESP32
//! CameraWebServer `/stream`, most IP cameras). Feed it bytes as they arrive
//! ([`MultipartParser::push`]), take out [`Event`]s ([`MultipartParser::next_event`]).
//!
//! Real cameras bend the format, so the parser is tolerant where that costs nothing:
//! - the boundary is matched with or without its leading `--`, whatever the header said
//!   (`boundary=frame` with `--frame` lines, `boundary=--frame` with `--frame` lines...);
//! - the CRLF before a boundary line may be missing, and so may the blank line after the
//!   part headers when the body starts with a JPEG `SOI`;
//! - a part's `Content-Length` is used when present so a frame comes out as soon as its last
//!   byte arrives (not one frame later, when the next boundary shows up); when it is absent,
//!   or lies (a boundary shows up inside the declared length), the body ends at the boundary;
//! - a stream that switches to another boundary than the header named (or names none) is
//!   followed: a line `--TOKEN` followed by part headers or a JPEG is taken as the new
//!   boundary ([`Event::BoundaryChanged`]);
//! - bytes outside any part are skipped and reported, and a part growing past `max_part`
//!   bytes is dropped, so a broken device cannot fill memory.
//!
//! The parser never fails: it reports what it skipped and goes on. Whether a part's body is
//! a usable JPEG is for the caller's decoder to say.

use std::collections::VecDeque;

use memchr::memmem;

use super::splitter::JpegSplitter;

/// Default largest part accepted: generous for 4K MJPEG at high quality.
pub const DEFAULT_MAX_PART: usize = 16 * 1024 * 1024;
/// Part headers are a few short lines; more than this is not a header block.
const MAX_HEADER_BLOCK: usize = 8 * 1024;
/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;
/// Bytes at the end of the buffer that are searched again when more data arrives, so a
/// delimiter line split across two reads is still found: `--`, a boundary, `--`, a little
/// white space, CRLF and the start of what follows it.
const RESCAN_TAIL: usize = 2 + MAX_BOUNDARY + 2 + 16 + 2 + 8;

/// One part of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's `Content-Type`, lower-cased, if it had one.
    pub content_type: Option<String>,
    /// The part's `Content-Length`, if it had a valid one (it may differ from the body's
    /// length when the camera lied: the body then ends at the boundary).
    pub content_length: Option<usize>,
    pub body: Vec<u8>,
}

/// Why bytes were thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Bytes outside any part (between parts, or while no boundary was found).
    Garbage,
    /// A part larger than the parser's `max_part`.
    Oversize,
    /// A part whose header block did not end within 8 KiB.
    HeadersTooLong,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Garbage => "bytes outside any part",
            SkipReason::Oversize => "a part larger than the size limit",
            SkipReason::HeadersTooLong => "part headers that never end",
        })
    }
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Part(Part),
    /// `bytes` were skipped (logged by the caller; the stream goes on).
    Skipped {
        bytes: usize,
        reason: SkipReason,
    },
    /// The stream uses another boundary than the one expected; the parser now follows it.
    BoundaryChanged {
        from: Option<String>,
        to: String,
    },
}

/// The boundary named by a `Content-Type` such as
/// `multipart/x-mixed-replace; boundary="--frame"`, without quotes and leading dashes
/// (`frame`). `None` if there is no usable `boundary` parameter.
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value
            .trim()
            .trim_matches('"')
            .trim_start_matches('-')
            .trim();
        let ok =
            !value.is_empty() && value.len() <= MAX_BOUNDARY && value.bytes().all(is_boundary_char);
        ok.then(|| value.to_owned())
    })
}

/// Incremental parser state. Every offset is relative to `pos`, the first unparsed byte.
pub struct MultipartParser {
    /// The boundary token without leading dashes; `None` until one is known.
    boundary: Option<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    max_part: usize,
    events: VecDeque<Event>,
    /// A part has been seen: bytes before the first boundary are a legal preamble, bytes
    /// after it are garbage worth reporting.
    seen_part: bool,
}

enum State {
    /// Looking for a delimiter line. `garbage`: non-blank bytes skipped so far (searched
    /// bytes are dropped, so every search starts at `pos`).
    Seek { garbage: usize },
    /// After a delimiter line: reading part headers.
    Headers {
        content_type: Option<String>,
        content_length: Option<usize>,
        header_bytes: usize,
    },
    /// Reading a body that starts at `pos`.
    Body(Body),
}

/// A body being read.
struct Body {
    content_type: Option<String>,
    content_length: Option<usize>,
    /// Bytes of it already searched for a delimiter.
    scanned: usize,
    /// Without a `Content-Length`, a body that starts like a JPEG is also followed marker
    /// by marker, so it comes out as soon as its `EOI` arrives rather than one frame later,
    /// when the next boundary does. `None` once the JPEG structure turned out broken (the
    /// boundary alone then ends the body).
    jpeg_end: Option<Box<JpegEnd>>,
}

struct JpegEnd {
    splitter: JpegSplitter,
    /// Body bytes given to the splitter so far.
    fed: usize,
}

impl MultipartParser {
    /// A parser for parts separated by `boundary` (as the response header named it; leading
    /// dashes are ignored). `None`: learn it from the first delimiter line in the stream.
    pub fn new(boundary: Option<&str>, max_part: usize) -> Self {
        MultipartParser {
            boundary: boundary
                .map(|b| b.trim_start_matches('-').as_bytes().to_vec())
                .filter(|b| !b.is_empty()),
            buf: Vec::new(),
            pos: 0,
            state: State::Seek { garbage: 0 },
            max_part: max_part.max(1),
            events: VecDeque::new(),
            seen_part: false,
        }
    }

    /// The boundary currently followed.
    pub fn boundary(&self) -> Option<String> {
        self.boundary
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// Bytes received but not yet given out as a part or skipped.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Add bytes as they arrived.
    pub fn push(&mut self, data: &[u8]) {
        // Drop what was consumed once it is most of the buffer: amortised O(1) per byte.
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next part or report, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if !self.step() {
                return self.events.pop_front();
            }
        }
    }

    /// Advance the state machine once. `false`: nothing more can be done without more bytes.
    fn step(&mut self) -> bool {
        match std::mem::replace(&mut self.state, State::Seek { garbage: 0 }) {
            State::Seek { garbage } => self.seek(garbage),
            State::Headers {
                content_type,
                content_length,
                header_bytes,
            } => self.headers(content_type, content_length, header_bytes),
            State::Body(body) => self.body(body),
        }
    }

    fn seek(&mut self, garbage: usize) -> bool {
        let hay = &self.buf[self.pos..];
        match scan(hay, 0, self.boundary.as_deref()) {
            Scan::Found(delim) => {
                let garbage = garbage + non_blank(&hay[..delim.start]);
                if garbage > 0 && self.seen_part {
                    self.events.push_back(Event::Skipped {
                        bytes: garbage,
                        reason: SkipReason::Garbage,
                    });
                }
                self.adopt(delim.adopted);
                self.pos += delim.next;
                self.state = State::Headers {
                    content_type: None,
                    content_length: None,
                    header_bytes: 0,
                };
                true
            }
            Scan::NeedMore { resume_at } => {
                // Bytes before `resume_at` cannot start a delimiter: drop them now.
                let mut garbage = garbage + non_blank(&hay[..resume_at]);
                self.pos += resume_at;
                if garbage >= self.max_part {
                    self.events.push_back(Event::Skipped {
                        bytes: garbage,
                        reason: SkipReason::Garbage,
                    });
                    garbage = 0;
                }
                self.state = State::Seek { garbage };
                false
            }
        }
    }

    fn headers(
        &mut self,
        mut content_type: Option<String>,
        mut content_length: Option<usize>,
        mut header_bytes: usize,
    ) -> bool {
        let hay = &self.buf[self.pos..];
        let keep = |content_type, content_length, header_bytes| State::Headers {
            content_type,
            content_length,
            header_bytes,
        };
        if hay.is_empty() {
            self.state = keep(content_type, content_length, header_bytes);
            return false;
        }
        // No blank line before the JPEG: the body starts here.
        if hay.starts_with(&[0xff, 0xd8]) {
            self.start_body(content_type, content_length);
            return true;
        }
        let Some(nl) = memchr::memchr(b'\n', hay) else {
            if header_bytes + hay.len() > MAX_HEADER_BLOCK {
                return self.headers_too_long(header_bytes + hay.len());
            }
            self.state = keep(content_type, content_length, header_bytes);
            return false;
        };
        let line = trim_line(&hay[..nl]);
        if line.is_empty() {
            self.pos += nl + 1;
            self.start_body(content_type, content_length);
            return true;
        }
        match header_line(line) {
            Some((name, value)) => {
                if name.eq_ignore_ascii_case("content-type") {
                    content_type = Some(value.to_ascii_lowercase());
                } else if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse::<usize>().ok();
                }
                header_bytes += nl + 1;
                if header_bytes > MAX_HEADER_BLOCK {
                    return self.headers_too_long(header_bytes);
                }
                self.pos += nl + 1;
                self.state = keep(content_type, content_length, header_bytes);
            }
            // Not a header: the blank line is missing and the body is not a JPEG. Let the
            // body scan find where it ends and the decoder judge it.
            None => self.start_body(content_type, content_length),
        }
        true
    }

    fn headers_too_long(&mut self, bytes: usize) -> bool {
        self.events.push_back(Event::Skipped {
            bytes,
            reason: SkipReason::HeadersTooLong,
        });
        self.state = State::Seek { garbage: 0 };
        true
    }

    fn start_body(&mut self, content_type: Option<String>, content_length: Option<usize>) {
        // A length past the limit is a lie or an attack: scan for the boundary instead.
        let content_length = content_length.filter(|n| *n <= self.max_part);
        let jpeg_end = content_length.is_none().then(|| {
            Box::new(JpegEnd {
                splitter: JpegSplitter::new(self.max_part),
                fed: 0,
            })
        });
        self.state = State::Body(Body {
            content_type,
            content_length,
            scanned: 0,
            jpeg_end,
        });
    }

    fn body(&mut self, mut state: Body) -> bool {
        let Body {
            content_length,
            scanned,
            ..
        } = state;
        let all = &self.buf[self.pos..];
        // With a declared length, only the declared bytes can hold a (premature) delimiter.
        let hay = match content_length {
            Some(n) if all.len() >= n => &all[..n],
            _ => all,
        };
        match scan(hay, scanned, self.boundary.as_deref()) {
            Scan::Found(delim) => {
                // The body ends at the delimiter (no length, or the length lied): leave the
                // delimiter for `seek`, which also takes up a new boundary.
                let body = hay[..delim.start].to_vec();
                self.pos += delim.start;
                self.emit(state, body);
                true
            }
            Scan::NeedMore { .. } if content_length.is_some_and(|n| hay.len() == n) => {
                let n = hay.len();
                let body = hay.to_vec();
                self.pos += n;
                self.emit(state, body);
                true
            }
            Scan::NeedMore { resume_at } => {
                if let Some(n) = jpeg_length(&mut state.jpeg_end, hay) {
                    let body = hay[..n].to_vec();
                    self.pos += n;
                    self.emit(state, body);
                    return true;
                }
                if hay.len() > self.max_part {
                    self.events.push_back(Event::Skipped {
                        bytes: resume_at,
                        reason: SkipReason::Oversize,
                    });
                    self.pos += resume_at;
                    self.state = State::Seek { garbage: 0 };
                    return true;
                }
                state.scanned = resume_at;
                self.state = State::Body(state);
                false
            }
        }
    }

    fn emit(&mut self, state: Body, body: Vec<u8>) {
        self.seen_part = true;
        // An empty part (two delimiters in a row) carries nothing worth reporting.
        if !body.is_empty() {
            self.events.push_back(Event::Part(Part {
                content_type: state.content_type,
                content_length: state.content_length,
                body,
            }));
        }
        self.state = State::Seek { garbage: 0 };
    }

    fn adopt(&mut self, adopted: Option<Vec<u8>>) {
        let Some(to) = adopted else { return };
        let from = self.boundary();
        self.boundary = Some(to);
        self.events.push_back(Event::BoundaryChanged {
            from,
            to: self.boundary().unwrap_or_default(),
        });
    }
}

/// Give the body's new bytes (`hay` is the whole body so far) to the JPEG follower: the
/// JPEG's length once its `EOI` has arrived. Drops the follower when the body is no JPEG.
fn jpeg_length(jpeg_end: &mut Option<Box<JpegEnd>>, hay: &[u8]) -> Option<usize> {
    let end = jpeg_end.as_mut()?;
    if hay.len() <= end.fed {
        return None;
    }
    if end.fed == 0 && hay.len() >= 2 && !hay.starts_with(&[0xff, 0xd8]) {
        *jpeg_end = None;
        return None;
    }
    end.splitter.push(&hay[end.fed..]);
    end.fed = hay.len();
    match end.splitter.next() {
        Some(Ok(jpeg)) => Some(jpeg.len()),
        Some(Err(_)) => {
            *jpeg_end = None;
            None
        }
        None => None,
    }
}

/// A delimiter line found in a buffer.
#[derive(Debug, PartialEq, Eq)]
struct Delim {
    /// Where the delimiter starts, including the line break before it (which belongs to the
    /// delimiter, not to the body before it).
    start: usize,
    /// First byte after the delimiter line.
    next: usize,
    /// Set when the line names another boundary than the expected one.
    adopted: Option<Vec<u8>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Found(Delim),
    /// No complete delimiter yet; none can start before `resume_at`, so searching may
    /// resume there when more bytes arrive.
    NeedMore {
        resume_at: usize,
    },
}

/// The first delimiter line in `hay` at or after `from`: the expected boundary, or a line that
/// looks like the start of a part under another boundary.
fn scan(hay: &[u8], from: usize, boundary: Option<&[u8]>) -> Scan {
    let from = from.min(hay.len());
    let tail = hay.len().saturating_sub(RESCAN_TAIL).max(from);
    let mut expected = None;
    let mut incomplete = None;
    if let Some(core) = boundary {
        for i in memmem::find_iter(&hay[from..], core).map(|i| i + from) {
            match delimiter_at(hay, i, core) {
                Line::Complete(d) => {
                    expected = Some(d);
                    break;
                }
                Line::Incomplete(start) => {
                    incomplete = Some(start);
                    break;
                }
                Line::No => {}
            }
        }
    }
    let limit = expected
        .as_ref()
        .map(|d| d.start)
        .or(incomplete)
        .unwrap_or(hay.len());
    if let Some(other) = other_boundary_line(hay, from, limit, boundary) {
        return Scan::Found(other);
    }
    match (expected, incomplete) {
        (Some(d), _) => Scan::Found(d),
        (None, Some(start)) => Scan::NeedMore {
            resume_at: start.min(tail),
        },
        (None, None) => Scan::NeedMore { resume_at: tail },
    }
}

enum Line {
    Complete(Delim),
    /// Might be a delimiter starting here once more bytes arrive.
    Incomplete(usize),
    No,
}

/// Is the boundary found at `hay[i..]` a delimiter line? It must be preceded by `--` or
/// stand at the start of a line, and be followed (after an optional closing `--` and white
/// space) by a line break.
fn delimiter_at(hay: &[u8], i: usize, core: &[u8]) -> Line {
    let mut d = i;
    while d > 0 && hay[d - 1] == b'-' && i - d < 4 {
        d -= 1;
    }
    let line_start = d == 0 || hay[d - 1] == b'\n';
    if i - d < 2 && !line_start {
        return Line::No;
    }
    let mut start = d;
    if start > 0 && hay[start - 1] == b'\n' {
        start -= 1;
        if start > 0 && hay[start - 1] == b'\r' {
            start -= 1;
        }
    }
    match line_end(hay, i + core.len(), true) {
        End::At(next) => Line::Complete(Delim {
            start,
            next,
            adopted: None,
        }),
        End::Incomplete => Line::Incomplete(start),
        End::No => Line::No,
    }
}

enum End {
    At(usize),
    Incomplete,
    No,
}

/// After a boundary at `hay[j..]`: optional `--` (closing delimiter), a little white space,
/// then LF, CRLF or a lone CR. Gives the index after the line break.
fn line_end(hay: &[u8], j: usize, allow_close: bool) -> End {
    let rest = &hay[j.min(hay.len())..];
    let mut k = 0;
    if allow_close {
        if rest.starts_with(b"--") {
            k = 2;
        } else if rest.len() < 2 && b"--".starts_with(rest) && !rest.is_empty() {
            return End::Incomplete;
        }
    }
    while k < rest.len() && k < 20 && (rest[k] == b' ' || rest[k] == b'\t') {
        k += 1;
    }
    match rest.get(k) {
        None => End::Incomplete,
        Some(b'\n') => End::At(j + k + 1),
        Some(b'\r') => match rest.get(k + 1) {
            None => End::Incomplete,
            Some(b'\n') => End::At(j + k + 2),
            Some(_) => End::At(j + k + 1),
        },
        Some(_) => End::No,
    }
}

/// A line `--TOKEN` (TOKEN not the expected boundary) at a line start in `hay[from..limit]`,
/// followed by part headers (`Content-...`) or straight by a JPEG: a camera that uses another
/// boundary than it announced. Requiring what follows keeps JPEG bytes from passing for one.
fn other_boundary_line(
    hay: &[u8],
    from: usize,
    limit: usize,
    expected: Option<&[u8]>,
) -> Option<Delim> {
    // Line starts: after each LF from just before `from` (and `from` itself at the start).
    let lo = from.saturating_sub(1);
    let hi = limit.clamp(lo, hay.len());
    let starts = std::iter::once(0)
        .filter(|_| from == 0)
        .chain(memchr::memchr_iter(b'\n', &hay[lo..hi]).map(move |n| lo + n + 1));
    for p in starts {
        if p >= limit || p < from || !hay[p..].starts_with(b"--") {
            continue;
        }
        let token_start = p + 2;
        let token_len = hay[token_start..]
            .iter()
            .take(MAX_BOUNDARY + 1)
            .take_while(|b| is_boundary_char(**b))
            .count();
        if token_len == 0 || token_len > MAX_BOUNDARY {
            continue;
        }
        let token = trim_dashes(&hay[token_start..token_start + token_len]);
        if token.is_empty() || expected == Some(token) || token.ends_with(b"--") {
            continue;
        }
        let End::At(next) = line_end(hay, token_start + token_len, false) else {
            continue;
        };
        let after = &hay[next..];
        let looks_like_part = after.len() >= 8 && after[..8].eq_ignore_ascii_case(b"content-")
            || after.starts_with(&[0xff, 0xd8])
            || after.starts_with(b"\r\n\xff\xd8")
            || after.starts_with(b"\n\xff\xd8");
        if !looks_like_part {
            continue;
        }
        let mut start = p;
        if start > 0 && hay[start - 1] == b'\n' {
            start -= 1;
            if start > 0 && hay[start - 1] == b'\r' {
                start -= 1;
            }
        }
        return Some(Delim {
            start,
            next,
            adopted: Some(token.to_vec()),
        });
    }
    None
}

/// RFC 2046 `bchars` without the space (no camera puts spaces in a boundary).
fn is_boundary_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b)
}

fn trim_dashes(mut s: &[u8]) -> &[u8] {
    while let [b'-', rest @ ..] = s {
        s = rest;
    }
    s
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// `Name: value` of printable ASCII, or `None` if the line is not a header.
fn header_line(line: &[u8]) -> Option<(&str, &str)> {
    if !line
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t')
    {
        return None;
    }
    let line = std::str::from_utf8(line).ok()?;
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains(' ') {
        return None;
    }
    Some((name, value.trim()))
}

/// Bytes that are not white space (line breaks between parts are not garbage).
fn non_blank(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| !b.is_ascii_whitespace()).count()
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
