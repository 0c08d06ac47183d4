//! An MJPEG movie with camera-like sensor noise, for tests and benchmarks that need the
//! encoder to spend real bits: the test pattern compresses to a few hundred kbit/s whatever
//! the target, so a bitrate set above that could never be reached with it.

use sightline_publisher::image::I420Frame;

use crate::jpeg_fixture::encode_i420;

/// Per-pixel noise amplitude (luma steps, ±): a small sensor in dim light.
const NOISE: i32 = 12;

/// `frames` JPEGs of `width`×`height` (even), concatenated (the `file:` source's plain
/// layout): a moving gradient with fresh noise in every frame, so every frame costs bits.
pub fn noisy_movie(width: u32, height: u32, frames: u32) -> Vec<u8> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for n in 0..frames {
        out.extend(encode_i420(&noisy_picture(width, height, n, &mut rng)));
    }
    out
}

fn noisy_picture(width: u32, height: u32, frame: u32, rng: &mut XorShift) -> I420Frame {
    let (w, h) = (width as usize, height as usize);
    let mut f = I420Frame::black(width, height);
    for row in 0..h {
        for col in 0..w {
            let base = 60 + ((col + 2 * row + frame as usize * 6) % 120) as i32;
            let noise = (rng.next() % (2 * NOISE as u64 + 1)) as i32 - NOISE;
            f.y[row * w + col] = (base + noise).clamp(16, 235) as u8;
        }
    }
    for (i, (u, v)) in f.u.iter_mut().zip(f.v.iter_mut()).enumerate() {
        let wobble = ((i + frame as usize) % 24) as u8;
        *u = 116 + wobble;
        *v = 140 - wobble;
    }
    f
}

/// A tiny deterministic generator: the movie is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movie_of_distinct_noisy_jpegs() {
        let movie = noisy_movie(64, 48, 3);
        let starts = movie.windows(2).filter(|w| w == &[0xff, 0xd8]).count();
        assert!(starts >= 3, "three JPEGs");
        let a = sightline_publisher::image::decode_jpeg(&encode_i420(&noisy_picture(
            64,
            48,
            0,
            &mut XorShift(1),
        )))
        .unwrap();
        assert_eq!((a.width, a.height), (64, 48));
        // Noise: neighbouring pixels of the smooth gradient differ a lot somewhere.
        let jumps = a.y.windows(2).filter(|p| p[0].abs_diff(p[1]) > 8).count();
        assert!(jumps > 100, "{jumps}");
    }
}
