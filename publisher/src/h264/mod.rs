//! Everything the publisher knows about H.264 itself, apart from where frames come from and
//! where they go: the openh264 [`encoder`] (Constrained Baseline 42e01f, what every viewer
//! can decode), Annex-B [`nal`] unit splitting, and the SPS [`profile`] check
//! (read with `h264-reader`) that decides whether a camera's own H.264 can pass through untouched.
//!
//! Separate because these are codec facts: the source (RTSP passthrough), the pipeline
//! (encoding) and the tests all use them, and none of them needs anything above it.

pub mod encoder;
pub mod nal;
pub mod profile;
