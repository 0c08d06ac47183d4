//! MJPEG framing: how JPEGs are laid out in the byte streams and files sources read.
//!
//! - [`splitter`]: an incremental `SOI`…`EOI` splitter for raw byte streams (ESP32 sockets,
//!   plain concatenated JPEG files), skipping garbage and bounding frame size.
//! - [`length_prefixed`]: the seed's `movie.Mjpeg` file layout (5-digit ASCII length, then
//!   the JPEG).
//! - [`multipart`]: `multipart/x-mixed-replace` framing of MJPEG over HTTP, tolerant of the
//!   ways cameras bend it.
//!
//! Parsers only: no I/O, no decoding. Sources feed them bytes and decode what comes out.

pub mod length_prefixed;
pub mod multipart;
pub mod splitter;

pub use splitter::{JpegSplitter, SplitError, DEFAULT_MAX_FRAME};

/// How JPEGs are laid out in an MJPEG file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileLayout {
    /// Each JPEG preceded by its length as 5 ASCII digits (`movie.Mjpeg`).
    LengthPrefixed,
    /// JPEGs back to back (what `cat *.jpg` or many recorders write).
    Concatenated,
}

impl FileLayout {
    /// Tell the layouts apart by the first bytes: a length field followed by a JPEG `SOI`
    /// means length-prefixed; anything else is read as concatenated JPEGs (the splitter
    /// skips leading junk).
    pub fn detect(data: &[u8]) -> FileLayout {
        if length_prefixed::header_at(data, 0) {
            FileLayout::LengthPrefixed
        } else {
            FileLayout::Concatenated
        }
    }
}

/// The JPEGs of a whole MJPEG file, in order, and a description of everything skipped.
#[derive(Debug, Default)]
pub struct FileFrames {
    pub frames: Vec<Vec<u8>>,
    pub problems: Vec<String>,
}

/// Split a whole file in `layout` into JPEGs (not yet decoded: corrupt JPEG data inside a
/// well-framed frame shows only when decoding).
pub fn split_file(data: &[u8], layout: FileLayout) -> FileFrames {
    let mut out = FileFrames::default();
    match layout {
        FileLayout::LengthPrefixed => {
            for item in length_prefixed::frames(data) {
                match item {
                    Ok(range) => out.frames.push(data[range].to_vec()),
                    Err(e) => out.problems.push(e.to_string()),
                }
            }
        }
        FileLayout::Concatenated => {
            for item in splitter::split_all(data, DEFAULT_MAX_FRAME) {
                match item {
                    Ok(frame) => out.frames.push(frame),
                    Err(e) => out.problems.push(e.to_string()),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(tag: u8) -> Vec<u8> {
        vec![0xff, 0xd8, 0xff, 0xfe, 0x00, 0x03, tag, 0xff, 0xd9]
    }

    #[test]
    fn both_layouts_are_detected_and_split() {
        let mut prefixed = Vec::new();
        let mut plain = Vec::new();
        for t in 0..3 {
            prefixed.extend(b"00009");
            prefixed.extend(jpeg(t));
            plain.extend(jpeg(t));
        }
        let want: Vec<_> = (0..3).map(jpeg).collect();
        for (data, layout) in [
            (&prefixed, FileLayout::LengthPrefixed),
            (&plain, FileLayout::Concatenated),
        ] {
            assert_eq!(FileLayout::detect(data), layout);
            let got = split_file(data, layout);
            assert_eq!(got.frames, want, "{layout:?}");
            assert!(got.problems.is_empty(), "{:?}", got.problems);
        }
    }

    #[test]
    fn a_file_of_junk_has_no_frames_and_says_why() {
        let junk = b"this is a text file, not a movie\n";
        assert_eq!(FileLayout::detect(junk), FileLayout::Concatenated);
        let got = split_file(junk, FileLayout::Concatenated);
        assert!(got.frames.is_empty());
        assert_eq!(got.problems.len(), 1, "{:?}", got.problems);
        // Digits at the start but no JPEG after them: not length-prefixed.
        assert_eq!(
            FileLayout::detect(b"12345 not a jpeg"),
            FileLayout::Concatenated
        );
    }
}
