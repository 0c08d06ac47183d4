//! The seed's `movie.Mjpeg` layout: each JPEG preceded by its length as 5 ASCII decimal
//! digits (`"05019"` then 5019 bytes of JPEG), frame after frame, nothing else.
//!
//! Readers of this layout usually accept leading spaces in the length (`" 5019"`), so this
//! one does too. A length field that is not a number breaks the chain; rather than give up on
//! the rest of the file, the parser resynchronises at the next place that looks like a frame
//! header (a length field directly followed by a JPEG `SOI`).

use std::fmt;
use std::ops::Range;

/// Bytes in the length field.
pub const LENGTH_DIGITS: usize = 5;

/// Something wrong in the file, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LengthError {
    /// The 5 bytes at `offset` are not a decimal length. Parsing went on at `resumed_at`
    /// (`None`: nothing further looked like a frame).
    BadLength {
        offset: usize,
        field: [u8; LENGTH_DIGITS],
        resumed_at: Option<usize>,
    },
    /// A length of zero.
    Empty { offset: usize },
    /// The length at `offset` runs past the end of the data.
    PastEnd {
        offset: usize,
        declared: usize,
        available: usize,
    },
    /// Fewer than 5 bytes left at `offset`: a length field cut short.
    TruncatedHeader { offset: usize, bytes: usize },
}

impl fmt::Display for LengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthError::BadLength {
                offset,
                field,
                resumed_at,
            } => {
                write!(
                    f,
                    "bad frame length {:?} at byte {offset}",
                    String::from_utf8_lossy(field)
                )?;
                match resumed_at {
                    Some(at) => write!(f, "; resumed at byte {at}"),
                    None => write!(f, "; no frame after it"),
                }
            }
            LengthError::Empty { offset } => write!(f, "zero frame length at byte {offset}"),
            LengthError::PastEnd {
                offset,
                declared,
                available,
            } => write!(
                f,
                "frame at byte {offset} declares {declared} bytes but only {available} remain"
            ),
            LengthError::TruncatedHeader { offset, bytes } => write!(
                f,
                "{bytes} stray bytes at the end (byte {offset}), too short for a frame length"
            ),
        }
    }
}

impl std::error::Error for LengthError {}

/// Parse a 5-byte length field: digits, optionally after leading spaces, at least one digit.
pub fn parse_length(field: &[u8]) -> Option<usize> {
    if field.len() != LENGTH_DIGITS {
        return None;
    }
    let digits = &field[field.iter().take_while(|&&b| b == b' ').count()..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + (d - b'0') as usize))
}

/// True if a frame header starts at `at`: a valid length field followed by a JPEG `SOI`.
pub fn header_at(data: &[u8], at: usize) -> bool {
    let Some(field) = data.get(at..at + LENGTH_DIGITS) else {
        return false;
    };
    parse_length(field).is_some_and(|n| n >= 2)
        && data.get(at + LENGTH_DIGITS..at + LENGTH_DIGITS + 2) == Some(&[0xff, 0xd8][..])
}

/// Iterates over the frames of a length-prefixed buffer: the byte range of each JPEG, or a
/// report of what was skipped.
pub struct LengthPrefixedFrames<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The frames of `data` in the length-prefixed layout.
pub fn frames(data: &[u8]) -> LengthPrefixedFrames<'_> {
    LengthPrefixedFrames { data, pos: 0 }
}

impl Iterator for LengthPrefixedFrames<'_> {
    type Item = Result<Range<usize>, LengthError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        let offset = self.pos;
        let rest = data.len().checked_sub(offset).filter(|&n| n > 0)?;
        if rest < LENGTH_DIGITS {
            self.pos = data.len();
            // A final newline or padding is harmless; anything else is worth a report.
            if data[offset..].iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            return Some(Err(LengthError::TruncatedHeader {
                offset,
                bytes: rest,
            }));
        }
        let field = &data[offset..offset + LENGTH_DIGITS];
        let Some(len) = parse_length(field) else {
            let resumed_at = (offset + 1..data.len()).find(|&p| header_at(data, p));
            self.pos = resumed_at.unwrap_or(data.len());
            let mut f = [0; LENGTH_DIGITS];
            f.copy_from_slice(field);
            return Some(Err(LengthError::BadLength {
                offset,
                field: f,
                resumed_at,
            }));
        };
        let start = offset + LENGTH_DIGITS;
        if len == 0 {
            self.pos = start;
            return Some(Err(LengthError::Empty { offset }));
        }
        let available = data.len() - start;
        if len > available {
            self.pos = data.len();
            return Some(Err(LengthError::PastEnd {
                offset,
                declared: len,
                available,
            }));
        }
        self.pos = start + len;
        Some(Ok(start..start + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut j = vec![0xff, 0xd8];
        j.resize(len - 2, tag);
        j.extend([0xff, 0xd9]);
        j
    }

    fn file(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend(format!("{:05}", f.len()).bytes());
            out.extend(f);
        }
        out
    }

    fn collect(data: &[u8]) -> Vec<Result<Vec<u8>, LengthError>> {
        frames(data)
            .map(|r| r.map(|range| data[range].to_vec()))
            .collect()
    }

    #[test]
    fn frames_come_out_in_order() {
        let fs = vec![frame(1, 10), frame(2, 300), frame(3, 99_999)];
        let data = file(&fs);
        assert_eq!(collect(&data), fs.into_iter().map(Ok).collect::<Vec<_>>());
        assert!(collect(b"").is_empty());
    }

    #[test]
    fn length_fields_parse_strictly() {
        assert_eq!(parse_length(b"05019"), Some(5019));
        assert_eq!(parse_length(b" 5019"), Some(5019));
        assert_eq!(parse_length(b"99999"), Some(99_999));
        for bad in [
            &b"5019 "[..],
            b"-5019",
            b"50x19",
            b"     ",
            b"\xff\xd8\xff\xe0\x00",
            b"123",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_length_digits_resync_at_the_next_frame_header() {
        let mut data = file(&[frame(1, 20)]);
        data.extend(b"12x45 junk junk ");
        data.extend(file(&[frame(2, 30), frame(3, 40)]));
        let out = collect(&data);
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0], Ok(frame(1, 20)));
        assert_eq!(
            out[1],
            Err(LengthError::BadLength {
                offset: 25,
                field: *b"12x45",
                resumed_at: Some(25 + 16),
            })
        );
        assert_eq!(out[2..], [Ok(frame(2, 30)), Ok(frame(3, 40))]);
        assert!(out[1].as_ref().unwrap_err().to_string().contains("12x45"));
    }

    #[test]
    fn bad_length_with_nothing_after_ends_the_file() {
        let out = collect(b"hello world");
        assert_eq!(
            out,
            vec![Err(LengthError::BadLength {
                offset: 0,
                field: *b"hello",
                resumed_at: None
            })]
        );
    }

    #[test]
    fn a_length_past_the_end_is_reported_once() {
        let mut data = file(&[frame(1, 20)]);
        data.extend(b"00500");
        data.extend(&frame(2, 100));
        let out = collect(&data);
        assert_eq!(
            out,
            vec![
                Ok(frame(1, 20)),
                Err(LengthError::PastEnd {
                    offset: 25,
                    declared: 500,
                    available: 100
                })
            ]
        );
    }

    #[test]
    fn zero_lengths_and_stray_tails() {
        let mut data = b"00000".to_vec();
        data.extend(file(&[frame(1, 12)]));
        data.extend(b"0\n");
        assert_eq!(
            collect(&data),
            vec![
                Err(LengthError::Empty { offset: 0 }),
                Ok(frame(1, 12)),
                Err(LengthError::TruncatedHeader {
                    offset: 22,
                    bytes: 2
                }),
            ]
        );
        // A trailing newline alone is fine.
        let mut data = file(&[frame(1, 12)]);
        data.push(b'\n');
        assert_eq!(collect(&data), vec![Ok(frame(1, 12))]);
    }

    #[test]
    fn header_detection_needs_digits_and_a_soi() {
        let data = file(&[frame(1, 12)]);
        assert!(header_at(&data, 0));
        assert!(!header_at(&data, 1));
        assert!(!header_at(b"00012abc", 0));
        assert!(!header_at(b"0001", 0));
    }
}
