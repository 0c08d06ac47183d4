//! Video sources: anything that yields raw I420 frames with a capture time. The encoder thread
//! pulls from a [`Source`]; a source blocks in [`Source::next_frame`] until its next frame is
//! due (a camera waits for the sensor, the test pattern sleeps to keep its frame rate).

pub mod test_pattern;

use crate::frame::I420Frame;

pub use test_pattern::TestPattern;

/// The source names `--source` accepts.
pub const SUPPORTED_SOURCES: &[&str] = &["test-pattern"];

/// One frame as captured.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    pub frame: I420Frame,
    /// Wall-clock capture time, microseconds since the UNIX epoch.
    pub capture_us: u64,
    /// Frame number since the source started, from 0.
    pub index: u32,
}

/// A producer of raw frames. Runs on the encoder's blocking thread, never on the executor.
pub trait Source: Send {
    /// Frame size the source produces.
    fn dimensions(&self) -> (u32, u32);
    /// Nominal frame rate.
    fn fps(&self) -> u32;
    /// Block until the next frame is available. An error ends the stream.
    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame>;
}

/// What a source needs to know to start.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub kind: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub camera_id: String,
}

/// Check a source name without opening it (the binary calls this before connecting).
pub fn check_kind(kind: &str) -> anyhow::Result<()> {
    if SUPPORTED_SOURCES.contains(&kind) {
        Ok(())
    } else {
        anyhow::bail!(
            "unknown source `{kind}`; supported sources: {}",
            SUPPORTED_SOURCES.join(", ")
        )
    }
}

/// Open the source `spec.kind` names.
pub fn open(spec: &SourceSpec) -> anyhow::Result<Box<dyn Source>> {
    check_kind(&spec.kind)?;
    match spec.kind.as_str() {
        "test-pattern" => Ok(Box::new(TestPattern::new(
            spec.width,
            spec.height,
            spec.fps,
            crate::barcode::tag_for(&spec.camera_id),
        )?)),
        other => anyhow::bail!("source `{other}` is listed but not wired up"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_source_names_the_supported_ones() {
        let err = check_kind("webcam").unwrap_err().to_string();
        assert!(
            err.contains("webcam") && err.contains("test-pattern"),
            "{err}"
        );
        assert!(check_kind("test-pattern").is_ok());
    }
}
