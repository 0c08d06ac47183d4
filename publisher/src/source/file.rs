//! `file:PATH`: an MJPEG file played in a loop at the configured frame rate.
//!
//! Both layouts are read: the seed's `movie.Mjpeg` (each JPEG preceded by its 5-digit ASCII
//! length) and plain concatenated JPEGs; [`FileLayout::detect`] tells them apart. The file is
//! read into memory once at open (it is looped forever, and MJPEG files of this kind are
//! small); JPEGs are decoded as they are played, not cached, so memory stays at the file's
//! size. A frame that does not decode, or has a different size than the first good one, is
//! skipped with a warning (once: it is remembered). A file without a single decodable frame
//! is an error at open.

use std::path::Path;

use anyhow::{bail, Context};

use super::pacer::Pacer;
use super::{CapturedFrame, Source, SourceSpec};
use crate::barcode;
use crate::image::I420Frame;
use crate::image::JpegDecoder;
use crate::mjpeg::{split_file, FileLayout};

/// Largest file accepted (it is held in memory).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// At most this many framing problems are logged one by one at open.
const PROBLEMS_LOGGED: usize = 10;

/// A looping MJPEG file.
pub struct FileSource {
    name: String,
    layout: FileLayout,
    frames: Vec<Vec<u8>>,
    /// Frames known not to decode (or of the wrong size): skipped without a new warning.
    bad: Vec<bool>,
    /// Next frame to play.
    pos: usize,
    decoder: JpegDecoder,
    width: u32,
    height: u32,
    fps: u32,
    pacer: Pacer,
    index: u32,
    /// The first good frame, decoded at open to learn the size: played first.
    first: Option<I420Frame>,
}

impl FileSource {
    /// Read and check the file `spec.url` names (a `SourceUrl::File`).
    pub fn open(path: &Path, spec: &SourceSpec) -> anyhow::Result<Self> {
        let name = spec.url.to_string();
        let size = std::fs::metadata(path)
            .with_context(|| format!("{name}: cannot open"))?
            .len();
        if size > MAX_FILE_BYTES {
            bail!("{name}: {size} bytes is larger than the {MAX_FILE_BYTES}-byte limit");
        }
        let data = std::fs::read(path).with_context(|| format!("{name}: reading"))?;
        Self::from_bytes(name, &data, spec.fps)
    }

    /// A source over file contents already in memory (`name` is for logs and errors).
    pub fn from_bytes(name: String, data: &[u8], fps: u32) -> anyhow::Result<Self> {
        if !(1..=240).contains(&fps) {
            bail!("{name}: fps {fps} is outside 1..=240");
        }
        let layout = FileLayout::detect(data);
        let split = split_file(data, layout);
        for p in split.problems.iter().take(PROBLEMS_LOGGED) {
            tracing::warn!("{name}: {p}");
        }
        if split.problems.len() > PROBLEMS_LOGGED {
            tracing::warn!(
                "{name}: {} more framing problems",
                split.problems.len() - PROBLEMS_LOGGED
            );
        }
        if split.frames.is_empty() {
            let why = split
                .problems
                .first()
                .map_or("the file is empty", |p| p.as_str());
            bail!("{name}: no JPEG frame found ({layout:?} layout; {why})");
        }
        let count = split.frames.len();
        let mut src = FileSource {
            name,
            layout,
            bad: vec![false; count],
            frames: split.frames,
            pos: 0,
            decoder: JpegDecoder::new(),
            width: 0,
            height: 0,
            fps,
            pacer: Pacer::new(fps),
            index: 0,
            first: None,
        };
        let mut last_err = None;
        for i in 0..count {
            match src.decoder.decode(&src.frames[i]) {
                Ok(frame) => {
                    (src.width, src.height) = (frame.width, frame.height);
                    src.first = Some(frame);
                    src.pos = (i + 1) % count;
                    break;
                }
                Err(e) => {
                    tracing::warn!("{}: frame {i} does not decode, skipped: {e:#}", src.name);
                    src.bad[i] = true;
                    last_err = Some(e);
                }
            }
        }
        if src.first.is_none() {
            let e = last_err.map(|e| format!("{e:#}")).unwrap_or_default();
            bail!("{}: none of its {count} frames decodes ({e})", src.name);
        }
        tracing::info!(
            "{}: {count} frames, {:?} layout, {}x{} at {fps} fps",
            src.name,
            src.layout,
            src.width,
            src.height
        );
        Ok(src)
    }

    /// The layout the file was read in.
    pub fn layout(&self) -> FileLayout {
        self.layout
    }

    /// JPEGs found in the file (decodable or not).
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Decode frames from `pos` on until one is good, marking bad ones. At most one lap.
    fn next_good(&mut self) -> anyhow::Result<I420Frame> {
        for _ in 0..self.frames.len() {
            let i = self.pos;
            self.pos = (self.pos + 1) % self.frames.len();
            if self.bad[i] {
                continue;
            }
            match self.decoder.decode(&self.frames[i]) {
                Ok(f) if (f.width, f.height) == (self.width, self.height) => return Ok(f),
                Ok(f) => tracing::warn!(
                    "{}: frame {i} is {}x{}, not {}x{} like the first: skipped",
                    self.name,
                    f.width,
                    f.height,
                    self.width,
                    self.height
                ),
                Err(e) => {
                    tracing::warn!("{}: frame {i} does not decode, skipped: {e:#}", self.name)
                }
            }
            self.bad[i] = true;
        }
        bail!("{}: no frame decodes any more", self.name)
    }
}

impl Source for FileSource {
    fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        self.pacer.wait();
        let frame = match self.first.take() {
            Some(f) => f,
            None => self.next_good()?,
        };
        let index = self.index;
        self.index = self.index.wrapping_add(1);
        Ok(CapturedFrame::raw(frame, barcode::now_us(), index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder};

    /// A grey JPEG of luma `level` (decodes to about `level` after the video-range map).
    fn grey_jpeg(w: u16, h: u16, level: u8) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new(&mut out, 90)
            .encode(&vec![level; w as usize * h as usize], w, h, ColorType::Luma)
            .unwrap();
        out
    }

    fn mean_y(f: &I420Frame) -> u32 {
        (f.y.iter().map(|&p| p as u64).sum::<u64>() / f.y.len() as u64) as u32
    }

    fn levels(src: &mut FileSource, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| match src.next_frame().unwrap().payload {
                super::super::Payload::Raw(f) => mean_y(&f) / 20,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn both_layouts_play_in_order_and_loop() {
        let jpegs: Vec<_> = [40u8, 100, 160].map(|l| grey_jpeg(32, 16, l)).into();
        let plain = jpegs.concat();
        let mut prefixed = Vec::new();
        for j in &jpegs {
            prefixed.extend(format!("{:05}", j.len()).bytes());
            prefixed.extend(j);
        }
        for (data, layout) in [
            (plain, FileLayout::Concatenated),
            (prefixed, FileLayout::LengthPrefixed),
        ] {
            let mut src = FileSource::from_bytes("file:t".into(), &data, 240).unwrap();
            assert_eq!(src.layout(), layout);
            assert_eq!(src.dimensions(), (32, 16));
            let got = levels(&mut src, 5);
            assert!(got[0] < got[1] && got[1] < got[2], "{got:?}");
            assert_eq!((got[3], got[4]), (got[0], got[1]), "loops: {got:?}");
        }
    }

    #[test]
    fn corrupt_and_odd_sized_frames_are_skipped() {
        let good_a = grey_jpeg(32, 16, 40);
        let good_b = grey_jpeg(32, 16, 160);
        let mut corrupt = grey_jpeg(32, 16, 100);
        // Framing intact, header broken: the frame declares zero colour components.
        let sof = corrupt.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        corrupt[sof + 9] = 0;
        let other_size = grey_jpeg(64, 16, 100);
        let mut data = Vec::new();
        for j in [&corrupt, &good_a, &other_size, &good_b] {
            data.extend(j);
        }
        let mut src = FileSource::from_bytes("file:t".into(), &data, 240).unwrap();
        assert_eq!(src.frame_count(), 4);
        assert_eq!(src.dimensions(), (32, 16));
        let got = levels(&mut src, 4);
        assert_eq!(got[0], got[2], "{got:?}");
        assert_eq!(got[1], got[3], "{got:?}");
        assert_ne!(got[0], got[1], "{got:?}");
    }

    #[test]
    fn a_file_without_a_decodable_frame_is_an_error_at_open() {
        let cases: [(&[u8], &str); 3] = [
            (b"", "no JPEG"),
            (b"just some text", "no JPEG"),
            (
                &[0xff, 0xd8, 0xff, 0xfe, 0x00, 0x03, 0x01, 0xff, 0xd9],
                "none of its 1",
            ),
        ];
        for (data, want) in cases {
            let err = FileSource::from_bytes("file:bad.mjpeg".into(), data, 30)
                .err()
                .unwrap();
            let msg = format!("{err:#}");
            assert!(
                msg.contains(want) && msg.contains("file:bad.mjpeg"),
                "{msg}"
            );
        }
        let spec = SourceSpec::new(
            super::super::SourceUrl::File {
                path: "/nonexistent/x.mjpeg".into(),
            },
            "c",
        );
        let err = FileSource::open(Path::new("/nonexistent/x.mjpeg"), &spec)
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("file:/nonexistent/x.mjpeg"),
            "{err:#}"
        );
    }
}
