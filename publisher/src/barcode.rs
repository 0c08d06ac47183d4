//! A block barcode burned into each test-pattern frame so a headless viewer can read back
//! which frame it decoded, when it was captured and from which camera.
//!
//! Layout: 128 bits = frame (32) + capture_us (64) + tag (16) + CRC-16 (16), most significant
//! bit first, written as 16×16 luma blocks (macroblock aligned, so H.264 codes each bit in
//! its own macroblock) of 16 for 0 and 235 for 1, left to right then top to bottom starting
//! at the top-left corner. `width / 16` blocks per row, as many rows as 128 bits need
//! (1 row at 1920 wide, 7 rows at 320 wide). The reader averages each block's central 8×8
//! pixels, where compression ringing at block edges does not reach.

use crate::image::I420Frame;

/// What the barcode carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Frame number since the source started, from 0.
    pub frame: u32,
    /// Capture time, microseconds since the UNIX epoch (wall clock).
    pub capture_us: u64,
    /// A short tag naming the camera (see [`tag_for`]).
    pub tag: u16,
}

/// Side of one barcode block in pixels (one H.264 macroblock).
pub const BLOCK: usize = 16;
/// Bits in a barcode: 112 payload + 16 check.
pub const BITS: usize = 128;
/// Luma of a 0 bit and a 1 bit (the video-range extremes).
const LUMA_ZERO: u8 = 16;
const LUMA_ONE: u8 = 235;
/// Centre averages between these are neither a clear 0 nor a clear 1: the frame holds no
/// barcode (noise, picture content) and is rejected rather than guessed at.
const AMBIGUOUS: std::ops::RangeInclusive<u32> = 80..=170;

/// How many block rows the barcode takes for a frame `width` pixels wide, or `None` if the
/// frame is too narrow to hold one at all.
pub fn rows_for_width(width: usize) -> Option<usize> {
    let per_row = width / BLOCK;
    (per_row > 0).then(|| BITS.div_ceil(per_row))
}

/// Height in pixels of the barcode strip at the top of a frame `width` wide (0 if none fits).
pub fn strip_height(width: usize) -> usize {
    rows_for_width(width).map_or(0, |r| r * BLOCK)
}

/// Burn `stamp` into the luma plane (top rows) of `frame`. The strip's chroma is set to
/// neutral grey so the blocks are pure black/white. Frames too small to hold the barcode are
/// left untouched.
pub fn burn(frame: &mut I420Frame, stamp: &Stamp) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let strip = strip_height(w);
    if strip == 0 || strip > h || frame.y.len() < w * h {
        return;
    }
    let bits = encode_bits(stamp);
    let per_row = w / BLOCK;
    for (i, bit) in bits.iter().enumerate() {
        let (bx, by) = ((i % per_row) * BLOCK, (i / per_row) * BLOCK);
        let value = if *bit { LUMA_ONE } else { LUMA_ZERO };
        for row in by..by + BLOCK {
            frame.y[row * w + bx..row * w + bx + BLOCK].fill(value);
        }
    }
    // Unused blocks at the end of the last row: a fixed 0 so they compress to nothing.
    let last_row = (BITS / per_row) * BLOCK;
    let used_in_last = BITS % per_row;
    if used_in_last != 0 {
        for row in last_row..last_row + BLOCK {
            frame.y[row * w + used_in_last * BLOCK..(row + 1) * w].fill(LUMA_ZERO);
        }
    }
    let (cw, ch) = (w / 2, strip / 2);
    if frame.u.len() >= cw * ch && frame.v.len() >= cw * ch {
        frame.u[..cw * ch].fill(128);
        frame.v[..cw * ch].fill(128);
    }
}

/// Read a stamp back from a decoded luma plane. `None` if none is found or its check fails.
pub fn read(y: &[u8], stride: usize, width: usize, height: usize) -> Option<Stamp> {
    let strip = strip_height(width);
    if strip == 0 || strip > height || stride < width {
        return None;
    }
    // The last pixel the reader touches must exist.
    if y.len() < (strip - 1) * stride + width {
        return None;
    }
    let per_row = width / BLOCK;
    let mut bits = [false; BITS];
    for (i, bit) in bits.iter_mut().enumerate() {
        let (bx, by) = ((i % per_row) * BLOCK, (i / per_row) * BLOCK);
        let mut sum = 0u32;
        for row in by + 4..by + 12 {
            let start = row * stride + bx + 4;
            sum += y[start..start + 8].iter().map(|&p| p as u32).sum::<u32>();
        }
        let avg = sum / 64;
        if AMBIGUOUS.contains(&avg) {
            return None;
        }
        *bit = avg > *AMBIGUOUS.end();
    }
    decode_bits(&bits)
}

/// The tag for a camera id (a stable 16-bit hash): 32-bit FNV-1a folded to 16 bits.
pub fn tag_for(camera_id: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in camera_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ (h & 0xffff)) as u16
}

/// Wall clock now, microseconds since the UNIX epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn payload_bytes(stamp: &Stamp) -> [u8; 14] {
    let mut p = [0u8; 14];
    p[..4].copy_from_slice(&stamp.frame.to_be_bytes());
    p[4..12].copy_from_slice(&stamp.capture_us.to_be_bytes());
    p[12..].copy_from_slice(&stamp.tag.to_be_bytes());
    p
}

fn encode_bits(stamp: &Stamp) -> [bool; BITS] {
    let mut bytes = [0u8; 16];
    let payload = payload_bytes(stamp);
    bytes[..14].copy_from_slice(&payload);
    bytes[14..].copy_from_slice(&crc16(&payload).to_be_bytes());
    let mut bits = [false; BITS];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    bits
}

fn decode_bits(bits: &[bool; BITS]) -> Option<Stamp> {
    let mut bytes = [0u8; 16];
    for (i, &bit) in bits.iter().enumerate() {
        if bit {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let check = u16::from_be_bytes([bytes[14], bytes[15]]);
    if crc16(&bytes[..14]) != check {
        return None;
    }
    Some(Stamp {
        frame: u32::from_be_bytes(bytes[..4].try_into().ok()?),
        capture_us: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
        tag: u16::from_be_bytes(bytes[12..14].try_into().ok()?),
    })
}

/// CRC-16/CCITT-FALSE with the output inverted: the non-zero init and the final xor mean an
/// all-black (all 0) or all-white (all 1) strip never passes the check.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc ^ 0xa5a5
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [(u32, u32); 5] = [
        (320, 240),
        (640, 360),
        (1280, 720),
        (1920, 1080),
        (330, 250),
    ];

    fn stamp() -> Stamp {
        Stamp {
            frame: 0xdead_beef,
            capture_us: 1_700_000_000_123_456,
            tag: tag_for("cam-1"),
        }
    }

    #[test]
    fn round_trips_at_several_sizes() {
        for (w, h) in SIZES {
            let mut f = I420Frame::black(w, h);
            burn(&mut f, &stamp());
            assert_eq!(
                read(&f.y, w as usize, w as usize, h as usize),
                Some(stamp()),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn round_trips_with_a_padded_stride() {
        let (w, h) = (640usize, 360usize);
        let mut f = I420Frame::black(w as u32, h as u32);
        burn(&mut f, &stamp());
        let stride = w + 32;
        let mut padded = vec![99u8; stride * h];
        for r in 0..h {
            padded[r * stride..r * stride + w].copy_from_slice(&f.y[r * w..(r + 1) * w]);
        }
        assert_eq!(read(&padded, stride, w, h), Some(stamp()));
    }

    #[test]
    fn blank_and_noisy_frames_have_no_barcode() {
        for (w, h) in SIZES {
            let (wu, hu) = (w as usize, h as usize);
            for fill in [0u8, 16, 128, 235, 255] {
                assert_eq!(read(&vec![fill; wu * hu], wu, wu, hu), None);
            }
            // Deterministic pseudo-random noise (xorshift).
            let mut s = 0x1234_5678u32;
            let noise: Vec<u8> = (0..wu * hu)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    s as u8
                })
                .collect();
            assert_eq!(read(&noise, wu, wu, hu), None);
        }
    }

    #[test]
    fn a_flipped_bit_is_rejected() {
        let (w, h) = (640usize, 360usize);
        let mut f = I420Frame::black(w as u32, h as u32);
        burn(&mut f, &stamp());
        let per_row = w / BLOCK;
        for bit in [0, 37, 100, 127] {
            let mut y = f.y.clone();
            let (bx, by) = ((bit % per_row) * BLOCK, (bit / per_row) * BLOCK);
            for row in by..by + BLOCK {
                for p in &mut y[row * w + bx..row * w + bx + BLOCK] {
                    *p = if *p == LUMA_ONE { LUMA_ZERO } else { LUMA_ONE };
                }
            }
            assert_eq!(read(&y, w, w, h), None, "bit {bit}");
        }
    }

    #[test]
    fn too_small_or_short_input_is_none_not_a_panic() {
        assert_eq!(read(&[0; 100], 10, 10, 10), None);
        assert_eq!(read(&[], 640, 640, 360), None);
        let mut f = I420Frame::black(8, 8);
        burn(&mut f, &stamp());
        assert_eq!(f, I420Frame::black(8, 8));
    }

    #[test]
    fn tag_is_stable_and_spreads() {
        assert_eq!(tag_for("cam-1"), tag_for("cam-1"));
        assert_ne!(tag_for("cam-1"), tag_for("cam-2"));
        // FNV-1a("") = 0x811c9dc5 → 0x811c ^ 0x9dc5.
        assert_eq!(tag_for(""), 0x811c ^ 0x9dc5);
    }

    #[test]
    fn strip_height_fits_every_supported_size() {
        assert_eq!(strip_height(1920), 16 * 2); // 120 per row → 2 rows
        assert_eq!(strip_height(320), 16 * 7);
        assert_eq!(strip_height(0), 0);
    }
}
