//! An incremental JPEG splitter: feed it bytes as they arrive from a socket or a file, take
//! out whole JPEGs (`FFD8` … `FFD9`).
//!
//! It walks the JPEG marker structure rather than searching for the next `FFD9`: segment
//! lengths are followed, so an `FFD9` inside a segment (an EXIF thumbnail, say) does not end
//! the frame early, and in the entropy-coded data after `SOS` the byte stuffing rules
//! (`FF00`, `FFD0`–`FFD7` restart markers, `FF` fill bytes) tell data from markers.
//! Anything it cannot place is reported, never fatal: bytes before a `SOI` are garbage, a new
//! `SOI` in the middle of a frame means the frame was cut short, a broken marker structure
//! makes it resynchronise at the next `SOI`, and a frame growing past `max_frame` bytes is
//! dropped so a device that never sends `EOI` cannot fill memory.

use std::fmt;

/// Default largest JPEG accepted: generous for 4K MJPEG at high quality.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

const SOI: u8 = 0xd8;
const EOI: u8 = 0xd9;
const SOS: u8 = 0xda;

/// Why bytes were skipped instead of coming out as a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// Bytes outside any JPEG (before a `SOI`, or between frames).
    Garbage { bytes: usize },
    /// A frame that ended (new `SOI`, or end of stream) before its `EOI`.
    Truncated { bytes: usize },
    /// A frame whose marker structure is broken (`why` says how).
    Corrupt { bytes: usize, why: &'static str },
    /// A frame that grew past the size limit without ending.
    Oversize { bytes: usize, max: usize },
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::Garbage { bytes } => write!(f, "skipped {bytes} bytes that are no JPEG"),
            SplitError::Truncated { bytes } => {
                write!(f, "JPEG cut short after {bytes} bytes (no end marker)")
            }
            SplitError::Corrupt { bytes, why } => {
                write!(f, "corrupt JPEG ({why}), skipped {bytes} bytes")
            }
            SplitError::Oversize { bytes, max } => {
                write!(f, "JPEG larger than {max} bytes, skipped {bytes} bytes")
            }
        }
    }
}

impl std::error::Error for SplitError {}

/// Where the parser is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Looking for a `SOI`; everything before it is garbage.
    Hunting,
    /// At a marker (`at` points at its `FF`).
    Markers,
    /// In entropy-coded data after `SOS`, scanning for the next real marker.
    Entropy,
}

/// Splits a byte stream into JPEGs. Push bytes with [`push`](Self::push), then call
/// [`next`](Self::next) until it returns `None`; at the end of the stream call
/// [`finish`](Self::finish) to learn about a frame left unfinished.
#[derive(Debug)]
pub struct JpegSplitter {
    /// Unconsumed input. In a frame, `buf[0]` is its `SOI`.
    buf: Vec<u8>,
    mode: Mode,
    /// Parse position inside `buf` (only ever moves forward within one frame).
    at: usize,
    max_frame: usize,
    /// Garbage bytes dropped since the last report.
    garbage: usize,
    /// Dropping the rest of an oversize frame: its tail is not reported again as garbage.
    discarding: bool,
}

impl Default for JpegSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl JpegSplitter {
    /// A splitter that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        JpegSplitter {
            buf: Vec::new(),
            mode: Mode::Hunting,
            at: 0,
            max_frame: max_frame.max(4),
            garbage: 0,
            discarding: false,
        }
    }

    /// Add bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held and not yet returned (a frame in progress).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True while a frame has started and not ended.
    pub fn in_frame(&self) -> bool {
        self.mode != Mode::Hunting
    }

    /// The next whole JPEG, or a report of skipped bytes, or `None` when more input is needed.
    #[allow(clippy::should_implement_trait)] // needs `&mut self` between pushes, not an Iterator
    pub fn next(&mut self) -> Option<Result<Vec<u8>, SplitError>> {
        loop {
            match self.mode {
                Mode::Hunting => {
                    if let Some(report) = self.hunt() {
                        return Some(Err(report));
                    }
                    if self.mode == Mode::Hunting {
                        return None;
                    }
                }
                Mode::Markers => match self.marker() {
                    Step::More => return self.check_size(),
                    Step::Continue => {}
                    Step::Done(result) => return Some(result),
                },
                Mode::Entropy => {
                    if !self.entropy() {
                        return self.check_size();
                    }
                }
            }
        }
    }

    /// The stream ended: report a frame in progress (truncated) or trailing garbage, and
    /// reset for reuse.
    pub fn finish(&mut self) -> Option<SplitError> {
        let report = if self.in_frame() {
            Some(SplitError::Truncated {
                bytes: self.buf.len(),
            })
        } else {
            let bytes = self.garbage + self.buf.len();
            (bytes > 0).then_some(SplitError::Garbage { bytes })
        };
        *self = JpegSplitter::new(self.max_frame);
        report
    }

    /// Find a `SOI`. Drops what comes before it; reports the garbage once a frame starts.
    fn hunt(&mut self) -> Option<SplitError> {
        let found = self.buf.windows(2).position(|w| w == [0xff, SOI]);
        let cut = match found {
            Some(p) => p,
            // Keep a trailing FF: it may be the first half of a SOI.
            None => self.buf.len() - usize::from(self.buf.last() == Some(&0xff)),
        };
        self.garbage += cut;
        self.buf.drain(..cut);
        found?;
        self.mode = Mode::Markers;
        self.at = 2;
        let discarding = std::mem::take(&mut self.discarding);
        let garbage = std::mem::take(&mut self.garbage);
        // The tail of a dropped oversize frame was already reported with it.
        (garbage > 0 && !discarding).then_some(SplitError::Garbage { bytes: garbage })
    }

    /// Parse one marker at `at`.
    fn marker(&mut self) -> Step {
        let b = &self.buf;
        let Some(&first) = b.get(self.at) else {
            return Step::More;
        };
        if first != 0xff {
            return self.resync("data where a marker should be");
        }
        let Some(&m) = b.get(self.at + 1) else {
            return Step::More;
        };
        match m {
            0xff => self.at += 1, // fill byte before a marker
            EOI => {
                let end = self.at + 2;
                let frame = self.buf.drain(..end).collect();
                self.mode = Mode::Hunting;
                self.at = 0;
                return Step::Done(Ok(frame));
            }
            SOI => return self.restart_at(self.at),
            0x00 => return self.resync("stuffed zero where a marker should be"),
            // Markers without a length.
            0x01 | 0xd0..=0xd7 => self.at += 2,
            _ => {
                let (Some(&hi), Some(&lo)) = (b.get(self.at + 2), b.get(self.at + 3)) else {
                    return Step::More;
                };
                let len = u16::from_be_bytes([hi, lo]) as usize;
                if len < 2 {
                    return self.resync("segment length below 2");
                }
                self.at += 2 + len;
                if m == SOS {
                    self.mode = Mode::Entropy;
                }
            }
        }
        Step::Continue
    }

    /// Scan entropy-coded data for the next marker. False when more input is needed.
    fn entropy(&mut self) -> bool {
        loop {
            // `at` may lie past the end while an SOS header is still arriving.
            if self.at >= self.buf.len() {
                return false;
            }
            let Some(rel) = self.buf[self.at..].iter().position(|&x| x == 0xff) else {
                // Nothing but data so far: continue after it next time.
                self.at = self.buf.len();
                return false;
            };
            let p = self.at + rel;
            let Some(&next) = self.buf.get(p + 1) else {
                self.at = p;
                return false;
            };
            match next {
                0x00 | 0xd0..=0xd7 => self.at = p + 2, // stuffing or restart marker: still data
                0xff => self.at = p + 1,               // fill byte
                _ => {
                    self.at = p;
                    self.mode = Mode::Markers;
                    return true;
                }
            }
        }
    }

    /// A `SOI` inside a frame at `p`: the frame before it was cut short.
    fn restart_at(&mut self, p: usize) -> Step {
        self.buf.drain(..p);
        self.at = 2;
        self.mode = Mode::Markers;
        Step::Done(Err(SplitError::Truncated { bytes: p }))
    }

    /// The frame's structure is broken: drop its `SOI` and hunt for the next one.
    fn resync(&mut self, why: &'static str) -> Step {
        let next_soi = self.buf[2..]
            .windows(2)
            .position(|w| w == [0xff, SOI])
            .map(|p| p + 2);
        let bytes = next_soi.unwrap_or(self.buf.len());
        self.buf.drain(..bytes);
        self.mode = Mode::Hunting;
        self.at = 0;
        Step::Done(Err(SplitError::Corrupt { bytes, why }))
    }

    /// After running out of input inside a frame: drop the frame if it is already too big.
    fn check_size(&mut self) -> Option<Result<Vec<u8>, SplitError>> {
        let held = self.buf.len().max(self.at);
        if held <= self.max_frame {
            return None;
        }
        // `at` may point past the end (a segment length not yet satisfied): what is missing
        // is discarded as garbage when it arrives, until the next SOI.
        let bytes = self.buf.len();
        self.buf.clear();
        self.mode = Mode::Hunting;
        self.at = 0;
        self.discarding = true;
        Some(Err(SplitError::Oversize {
            bytes,
            max: self.max_frame,
        }))
    }
}

enum Step {
    /// Need more input.
    More,
    /// Keep parsing.
    Continue,
    /// A frame or a report.
    Done(Result<Vec<u8>, SplitError>),
}

/// Split a whole buffer (a file) into JPEGs and reports, in stream order.
pub fn split_all(data: &[u8], max_frame: usize) -> Vec<Result<Vec<u8>, SplitError>> {
    let mut s = JpegSplitter::new(max_frame);
    s.push(data);
    let mut out = Vec::new();
    while let Some(item) = s.next() {
        out.push(item);
    }
    out.extend(s.finish().map(Err));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally valid minimal JPEG: SOI, an APP0-like segment, SOS header, entropy data
    /// (with stuffing, a restart marker and fill), EOI. `tag` varies the payload.
    fn jpeg(tag: u8) -> Vec<u8> {
        let mut j = vec![0xff, SOI];
        j.extend_from_slice(&[0xff, 0xe0, 0x00, 0x06, b'J', b'F', tag, 0x00]);
        j.extend_from_slice(&[0xff, SOS, 0x00, 0x04, 0x01, 0x02]);
        j.extend_from_slice(&[0x12, 0xff, 0x00, tag, 0xff, 0xd3, 0x34, 0xff, 0xff, 0xd9]);
        j
    }

    /// Feed `data` in chunks of `chunk` bytes; collect everything that comes out.
    fn run(data: &[u8], chunk: usize, max: usize) -> Vec<Result<Vec<u8>, SplitError>> {
        let mut s = JpegSplitter::new(max);
        let mut out = Vec::new();
        for c in data.chunks(chunk.max(1)) {
            s.push(c);
            while let Some(item) = s.next() {
                out.push(item);
            }
        }
        out.extend(s.finish().map(Err));
        out
    }

    fn frames(items: &[Result<Vec<u8>, SplitError>]) -> Vec<Vec<u8>> {
        items.iter().filter_map(|r| r.clone().ok()).collect()
    }

    #[test]
    fn back_to_back_frames_come_out_whole_at_any_chunk_size() {
        let mut stream = Vec::new();
        for t in 0..3 {
            stream.extend(jpeg(t));
        }
        for chunk in [1, 2, 3, 7, 1000] {
            let out = run(&stream, chunk, 1024);
            assert_eq!(
                out,
                vec![Ok(jpeg(0)), Ok(jpeg(1)), Ok(jpeg(2))],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn an_eoi_inside_a_segment_does_not_end_the_frame() {
        // An APP1 segment holding a thumbnail with its own SOI/EOI.
        let mut j = vec![
            0xff, SOI, 0xff, 0xe1, 0x00, 0x08, 0xff, SOI, 0x00, 0x00, 0xff, EOI,
        ];
        j.extend_from_slice(&jpeg(9)[2..]);
        assert_eq!(run(&j, 3, 1024), vec![Ok(j.clone())]);
    }

    #[test]
    fn garbage_between_frames_is_reported_and_skipped() {
        let mut stream = b"HTTP junk".to_vec();
        stream.extend(jpeg(1));
        stream.extend([0x00, 0xff, 0x12, 0xff]);
        stream.extend(jpeg(2));
        stream.extend(b"tail");
        for chunk in [1, 5, 1000] {
            let out = run(&stream, chunk, 1024);
            assert_eq!(
                out,
                vec![
                    Err(SplitError::Garbage { bytes: 9 }),
                    Ok(jpeg(1)),
                    Err(SplitError::Garbage { bytes: 4 }),
                    Ok(jpeg(2)),
                    Err(SplitError::Garbage { bytes: 4 }),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_frame_cut_short_by_the_next_soi_is_truncated() {
        let good = jpeg(5);
        let cut = &good[..good.len() - 6]; // ends inside the entropy data
        let mut stream = cut.to_vec();
        stream.extend(&good);
        let out = run(&stream, 4, 1024);
        assert_eq!(
            out,
            vec![Err(SplitError::Truncated { bytes: cut.len() }), Ok(good)]
        );
    }

    #[test]
    fn a_truncated_last_frame_is_reported_at_finish() {
        let good = jpeg(1);
        let mut stream = good.clone();
        stream.extend(&good[..10]);
        let out = run(&stream, 3, 1024);
        assert_eq!(
            out,
            vec![Ok(good), Err(SplitError::Truncated { bytes: 10 })]
        );
        // A stream of only a SOI.
        assert_eq!(
            run(&[0xff, SOI], 1, 1024),
            vec![Err(SplitError::Truncated { bytes: 2 })]
        );
    }

    #[test]
    fn a_broken_marker_structure_resyncs_at_the_next_soi() {
        // After SOI comes data instead of a marker.
        let mut stream = vec![0xff, SOI, 0x12, 0x34, 0x56];
        stream.extend(jpeg(3));
        let out = run(&stream, 2, 1024);
        assert!(matches!(out[0], Err(SplitError::Corrupt { .. })), "{out:?}");
        assert_eq!(frames(&out), vec![jpeg(3)]);
        // A segment length of 1.
        let mut stream = vec![0xff, SOI, 0xff, 0xe0, 0x00, 0x01];
        stream.extend(jpeg(4));
        let out = run(&stream, 1000, 1024);
        assert!(matches!(out[0], Err(SplitError::Corrupt { .. })), "{out:?}");
        assert_eq!(frames(&out), vec![jpeg(4)]);
    }

    #[test]
    fn an_oversize_frame_is_dropped_and_the_next_one_still_comes() {
        // A frame whose entropy data never ends, streamed in small pieces, then a good one.
        let mut stream = jpeg(1)[..14].to_vec();
        stream.extend(std::iter::repeat_n(0x11, 500));
        stream.extend(jpeg(2));
        for chunk in [16, 64] {
            let out = run(&stream, chunk, 100);
            assert!(
                matches!(out[0], Err(SplitError::Oversize { max: 100, .. })),
                "{out:?}"
            );
            assert_eq!(frames(&out), vec![jpeg(2)], "chunk {chunk}");
            // Memory stays bounded: nothing held once the good frame came out.
        }
        // A segment that claims 60 kB while the limit is 100 bytes.
        let mut stream = vec![0xff, SOI, 0xff, 0xe1, 0xea, 0x60];
        stream.extend(std::iter::repeat_n(0x22, 300));
        stream.extend(jpeg(7));
        let out = run(&stream, 32, 100);
        assert!(
            matches!(out[0], Err(SplitError::Oversize { .. })),
            "{out:?}"
        );
        assert_eq!(frames(&out), vec![jpeg(7)]);
    }

    #[test]
    fn memory_is_bounded_while_a_frame_streams_in() {
        let mut s = JpegSplitter::new(1000);
        s.push(&jpeg(1)[..14]);
        assert!(s.next().is_none());
        for _ in 0..100 {
            s.push(&[0x55; 50]);
            while s.next().is_some() {}
            assert!(s.buffered() <= 1000 + 50);
        }
    }

    #[test]
    fn pure_garbage_yields_no_frame_and_a_report() {
        let out = split_all(b"no jpeg here at all \xff", 1024);
        assert_eq!(out, vec![Err(SplitError::Garbage { bytes: 21 })]);
        assert!(split_all(b"", 1024).is_empty());
    }

    #[test]
    fn reports_read_well() {
        let e = SplitError::Oversize { bytes: 5, max: 4 };
        assert!(e.to_string().contains("larger than 4 bytes"));
    }
}
