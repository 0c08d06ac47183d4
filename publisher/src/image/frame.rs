//! Raw video frames as they travel from a source to the encoder.
//! In `image/` because every conversion there makes or takes one; the sources, the
//! encoder and the barcode use it from here.

/// A planar I420 (YUV 4:2:0) frame with tight strides: `y` is `width*height` bytes, `u` and
/// `v` are `(width/2)*(height/2)` each. Width and height are even.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl I420Frame {
    /// A black frame.
    pub fn black(width: u32, height: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        I420Frame {
            width,
            height,
            y: vec![16; w * h],
            u: vec![128; (w / 2) * (h / 2)],
            v: vec![128; (w / 2) * (h / 2)],
        }
    }
}
