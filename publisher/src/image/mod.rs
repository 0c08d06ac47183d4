//! Raw camera formats → I420: JPEG (every MJPEG source) and YUYV (V4L2 cameras). Straight
//! from YCbCr to I420, never through RGB. Then, on viewers' request, I420 → I420: [`scale`]
//! (another picture size) and [`adjust`] (brightness, contrast, saturation, sharpness).
//! [`jpeg_out`] goes the other way, I420 → JPEG, for snapshots.
//! [`frame`] is the picture they all work on, [`I420Frame`], the one raw format from the
//! sources to the encoder.

pub mod adjust;
mod chroma;
pub mod frame;
pub mod jpeg;
pub mod jpeg_out;
pub mod scale;
pub mod yuyv;

pub use adjust::{Adjuster, ImageAdjust};
pub use frame::I420Frame;
pub use jpeg::{decode_jpeg, JpegDecoder};
pub use scale::{scale_i420, Scaler};
pub use yuyv::yuyv_to_i420;

#[cfg(test)]
mod jpeg_tests;
