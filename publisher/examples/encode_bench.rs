//! Encode time per frame for the test pattern: `cargo run --release -p sightline-publisher
//! --example encode_bench -- [WIDTH HEIGHT BITRATE FRAMES]` (default 1280 720 2000000 300).

use std::time::{Duration, Instant};

use sightline_publisher::encoder::{Encoder, EncoderSettings};
use sightline_publisher::source::TestPattern;

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (w, h, bitrate, frames) = (
        arg(0, 1280) as u32,
        arg(1, 720) as u32,
        arg(2, 2_000_000) as u32,
        arg(3, 300) as u32,
    );
    let pattern = TestPattern::new(w, h, 30, 1)?;
    let mut enc = Encoder::new(EncoderSettings {
        width: w,
        height: h,
        fps: 30,
        bitrate,
        keyframe_interval: Duration::from_secs(10),
    })?;
    // Render outside the timed region: this measures the encoder alone.
    let input: Vec<_> = (0..frames.min(60)).map(|i| pattern.render(i, 0)).collect();
    let (mut render, mut encode, mut bytes) = (Duration::ZERO, Duration::ZERO, 0usize);
    for i in 0..frames {
        let t = Instant::now();
        let _ = pattern.render(i, 0);
        render += t.elapsed();
        let t = Instant::now();
        if let Some(f) = enc.encode(&input[i as usize % input.len()])? {
            bytes += f.data.len();
        }
        encode += t.elapsed();
    }
    let n = frames.max(1) as f64;
    println!(
        "{w}x{h} @ {bitrate} bit/s, {frames} frames: encode {:.2} ms/frame ({:.0} fps), \
         test-pattern render {:.3} ms/frame, {:.0} kbit/s at 30 fps",
        encode.as_secs_f64() * 1000.0 / n,
        n / encode.as_secs_f64(),
        render.as_secs_f64() * 1000.0 / n,
        bytes as f64 * 8.0 * 30.0 / n / 1000.0
    );
    Ok(())
}
