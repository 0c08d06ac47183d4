//! `bench mjpeg`: what MJPEG sources cost the publisher (issue 3).
//!
//! (a) JPEG decoder comparison, CPU ms per frame, one thread: zune-jpeg to interleaved YCbCr,
//!     jpeg-decoder to RGB (its YCbCr pass-through panics), and the publisher's `JpegDecoder` (zune-jpeg plus the
//!     YCbCr → video-range I420 step) at 640×480 and 1280×720, 4:2:2 (what UVC webcams and
//!     the OV2640 of an ESP32-CAM send) and 4:2:0.
//! (b) 640×480 MJPEG → I420 → H.264 with the publisher's `Encoder`: frames/s flat out, and
//!     CPU % of one core paced at 30 fps.
//! (c) the same at 1280×720, paced at 30 fps.
//!
//! The JPEGs look like a camera's: a lit gradient background, smooth texture, moving
//! shapes and per-pixel sensor noise, quality 80, 30 distinct frames looped.
//! CPU is this thread's time on CPU (/proc/thread-self/schedstat) over the run.

use std::time::{Duration, Instant};

use jpeg_encoder::{ColorType, Encoder as JpegEncoder, SamplingFactor};
use sightline_publisher::h264::encoder::{Encoder, EncoderSettings};
use sightline_publisher::image::JpegDecoder;

const QUALITY: u8 = 80;
const DISTINCT_FRAMES: u32 = 30;

pub fn run() -> anyhow::Result<()> {
    println!("## MJPEG sources (issue 3)");
    for (w, h) in [(640, 480), (1280, 720)] {
        for (sampling, label) in [
            (SamplingFactor::R_4_2_2, "4:2:2"),
            (SamplingFactor::R_4_2_0, "4:2:0"),
        ] {
            decoders(w, h, sampling, label)?;
        }
    }
    pipeline(640, 480, 1_000_000, true)?;
    pipeline(1280, 720, 2_000_000, false)?;
    Ok(())
}

/// (a): each decoder over the same frames.
fn decoders(w: u32, h: u32, sampling: SamplingFactor, label: &str) -> anyhow::Result<()> {
    let jpegs = camera_like_jpegs(w, h, sampling);
    let avg_kb = jpegs.iter().map(Vec::len).sum::<usize>() as f64 / jpegs.len() as f64 / 1e3;
    let rounds = if w > 640 { 4 } else { 8 };
    let time = |f: &mut dyn FnMut(&[u8]) -> anyhow::Result<usize>| -> anyhow::Result<f64> {
        // One warm-up pass, then the timed ones.
        for j in &jpegs {
            f(j)?;
        }
        // CPU time, not wall time: other work on a busy machine does not count.
        let (t, cpu0) = (Instant::now(), thread_cpu());
        let mut sink = 0usize;
        for _ in 0..rounds {
            for j in &jpegs {
                sink = sink.wrapping_add(f(j)?);
            }
        }
        std::hint::black_box(sink);
        let spent = match (thread_cpu(), cpu0) {
            (Some(b), Some(a)) => b - a,
            _ => t.elapsed(),
        };
        Ok(spent.as_secs_f64() * 1000.0 / (rounds * jpegs.len()) as f64)
    };
    let zune = time(&mut |j| {
        use zune_jpeg::zune_core::{
            bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
        };
        let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(j), opts);
        Ok(d.decode().map_err(|e| anyhow::anyhow!("{e:?}"))?.len())
    })?;
    let jpeg_decoder = time(&mut |j| {
        // RGB: its YCbCr pass-through (`ColorTransform::None`) panics in 0.3.2.
        Ok(jpeg_decoder::Decoder::new(j).decode()?.len())
    })?;
    let mut ours = JpegDecoder::new();
    let publisher = time(&mut |j| Ok(ours.decode(j)?.y.len()))?;
    println!(
        "decode {w}x{h} {label} q{QUALITY} ({avg_kb:.0} kB/frame), CPU ms per frame: \
         zune-jpeg {zune:.2} | jpeg-decoder (to RGB) {jpeg_decoder:.2} | \
         publisher JpegDecoder (zune-jpeg + I420) {publisher:.2}"
    );
    Ok(())
}

/// (b)/(c): decode + encode, flat out, then paced at 30 fps.
fn pipeline(w: u32, h: u32, bitrate: u32, flat_out: bool) -> anyhow::Result<()> {
    let jpegs = camera_like_jpegs(w, h, SamplingFactor::R_4_2_2);
    let mut encoder = Encoder::new(EncoderSettings {
        width: w,
        height: h,
        fps: 30,
        bitrate,
        keyframe_interval: Duration::from_secs(10),
    })?;
    let mut decoder = JpegDecoder::new();
    // Decode and encode one frame; the encoded size comes back.
    let mut step = |i: usize| -> anyhow::Result<usize> {
        let frame = decoder.decode(&jpegs[i % jpegs.len()])?;
        Ok(encoder.encode(&frame)?.map_or(0, |out| out.data.len()))
    };
    // Warm up (first IDR, allocations).
    for i in 0..10 {
        step(i)?;
    }
    if flat_out {
        let n = 150;
        let t = Instant::now();
        for i in 0..n {
            step(i)?;
        }
        let fps = n as f64 / t.elapsed().as_secs_f64();
        println!("{w}x{h} MJPEG → I420 → H.264 flat out: {fps:.0} frames/s (target ≥ 30)");
    }
    let seconds = 6u32;
    let period = Duration::from_secs(1) / 30;
    let frames = 30 * seconds;
    let mut bytes = 0;
    let cpu0 = thread_cpu();
    let start = Instant::now();
    for i in 0..frames {
        let due = start + period * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        bytes += step(i as usize)?;
    }
    let wall = start.elapsed();
    let cpu = thread_cpu().zip(cpu0).map(|(a, b)| a - b);
    let Some(cpu) = cpu else {
        println!("{w}x{h} paced: no /proc/thread-self/schedstat, CPU unknown");
        return Ok(());
    };
    let target = if w > 640 { "< 100 %" } else { "< 50 %" };
    println!(
        "{w}x{h} MJPEG → I420 → H.264 paced at 30 fps for {:.1} s: {:.1} % of one core \
         ({:.2} ms CPU per frame, {:.0} kbit/s out; target {target})",
        wall.as_secs_f64(),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        cpu.as_secs_f64() * 1000.0 / frames as f64,
        bytes as f64 * 8.0 / wall.as_secs_f64() / 1000.0,
    );
    Ok(())
}

/// `DISTINCT_FRAMES` camera-like JPEGs of one scene in motion.
pub fn camera_like_jpegs(w: u32, h: u32, sampling: SamplingFactor) -> Vec<Vec<u8>> {
    (0..DISTINCT_FRAMES)
        .map(|i| {
            let px = camera_like_picture(w as usize, h as usize, i);
            let mut out = Vec::new();
            let mut enc = JpegEncoder::new(&mut out, QUALITY);
            enc.set_sampling_factor(sampling);
            enc.encode(&px, w as u16, h as u16, ColorType::Ycbcr)
                .expect("encoding a bench JPEG");
            out
        })
        .collect()
}

/// Full-range interleaved YCbCr: a lit gradient, a smooth "foliage" texture, a moving disc
/// and bar, and ±6 of per-pixel noise like a small sensor's.
fn camera_like_picture(w: usize, h: usize, frame: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ ((frame as u64) << 32);
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 13) as i32 - 6
    };
    let t = frame as f32 / DISTINCT_FRAMES as f32;
    let (cx, cy, r) = (w as f32 * (0.2 + 0.6 * t), h as f32 * 0.6, h as f32 * 0.15);
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let light = 60.0 + 120.0 * (1.0 - fy) * (0.6 + 0.4 * fx);
            let texture = 25.0 * ((fx * 37.0 + fy * 11.0 + t).sin() * (fy * 23.0 - fx * 7.0).cos())
                + 10.0 * (fx * 90.0).sin() * (fy * 70.0).sin();
            let (mut l, mut cb, mut cr) = (light + texture, 118.0 + 20.0 * fy, 136.0 - 15.0 * fx);
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            if dx * dx + dy * dy < r * r {
                (l, cb, cr) = (170.0 + 20.0 * (dy / r), 90.0, 170.0);
            }
            let bar = (t * h as f32 * 0.8) as usize;
            if y >= bar && y < bar + h / 20 && x > w / 3 {
                (l, cb, cr) = (40.0, 160.0, 110.0);
            }
            let l = (l as i32 + noise()).clamp(0, 255) as u8;
            px.extend_from_slice(&[l, cb as u8, cr as u8]);
        }
    }
    px
}

/// CPU time of the calling thread (Linux: /proc/thread-self/schedstat, nanoseconds on CPU).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}
