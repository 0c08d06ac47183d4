//! The MSE door's media side: a camera's H.264 access units (as the SFU forwards them,
//! never decoded) muxed into fragmented MP4 that a browser's Media Source Extensions play.
//!
//! `h264` reads NAL units and the picture size; `fmp4` writes the boxes (`mp4-atom`);
//! `muxer` is the per-viewer state machine between them. The socket around it is
//! `server::mse`.

mod fmp4;
pub(crate) mod h264;
mod muxer;

pub use muxer::{Muxed, Muxer};
