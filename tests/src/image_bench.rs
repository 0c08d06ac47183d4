//! `bench image`: what viewers' picture changes cost the publisher per frame (issue 4):
//! software scaling (`image::scale`), the image controls (`image::adjust`) and the whole
//! per-frame step the encode thread runs (`control::FrameTransform`: scale + adjust +
//! re-burning the test pattern's barcode).
//!
//! Frames look like a camera's (lit gradient, texture, sensor noise). Figures are CPU ms
//! per frame on this thread (/proc/thread-self/schedstat), the median of 15 batches.

use std::time::{Duration, Instant};

use sightline_publisher::control::{FrameTransform, PipelineSettings};
use sightline_publisher::image::I420Frame;
use sightline_publisher::image::{Adjuster, ImageAdjust, Scaler};

const BATCHES: usize = 15;

pub fn run() -> anyhow::Result<()> {
    println!("## Picture changes in software (issue 4), CPU ms per frame, one thread");
    let hd = camera_like(1920, 1080);
    let p720 = camera_like(1280, 720);
    let p360 = camera_like(640, 360);

    let mut scaler = Scaler::new();
    for (src, (w, h), path) in [
        (&p720, (640, 360), "2x2 box"),
        (&p720, (320, 180), "area"),
        (&hd, (1280, 720), "area"),
        (&hd, (640, 360), "area, 3:1"),
        (&p360, (1280, 720), "bilinear"),
    ] {
        let ms = per_frame(|| {
            std::hint::black_box(scaler.scale(src, w, h).unwrap());
        });
        println!(
            "scale {}x{} -> {w}x{h} ({path}): {ms:.3} ms",
            src.width, src.height
        );
    }

    let mut adjuster = Adjuster::new();
    let a = |b, c, s, k| ImageAdjust {
        brightness: b,
        contrast: c,
        saturation: s,
        sharpness: k,
    };
    for (what, adjust) in [
        ("brightness+contrast (luma table)", a(20, 30, 0, 0)),
        ("saturation (chroma table)", a(0, 0, 40, 0)),
        ("sharpness (3x3 Laplacian)", a(0, 0, 0, 50)),
        ("all four", a(20, 30, 40, 50)),
    ] {
        let mut frame = p720.clone();
        let ms = per_frame(|| adjuster.apply(&mut frame, &adjust));
        println!("adjust 1280x720, {what}: {ms:.3} ms");
    }

    // The encode thread's whole step; it takes the frame by value, so each run includes a
    // copy of the input, measured alone first.
    let copy = per_frame(|| {
        std::hint::black_box(p720.clone());
    });
    println!("(copy of a 1280x720 frame: {copy:.3} ms, included below)");
    let mut transform = FrameTransform::new();
    let mut capture_us = 0;
    for (what, target, adjust) in [
        ("defaults (nothing to do)", None, ImageAdjust::IDENTITY),
        ("-> 640x360", Some((640, 360)), ImageAdjust::IDENTITY),
        (
            "-> 640x360 + all four controls",
            Some((640, 360)),
            a(20, 30, 40, 50),
        ),
        ("1280x720 + all four controls", None, a(20, 30, 40, 50)),
    ] {
        let settings = PipelineSettings {
            version: 1,
            target_size: target,
            fps: 0,
            bitrate: 1_000_000,
            adjust,
            motion: None,
        };
        let ms = per_frame(|| {
            capture_us += 33_333;
            std::hint::black_box(transform.apply(p720.clone(), capture_us, 30, &settings));
        });
        println!("FrameTransform 1280x720 {what}: {ms:.3} ms");
    }
    Ok(())
}

/// Median CPU ms per call of `f` over [`BATCHES`] batches sized to ~20 ms each.
pub fn per_frame(mut f: impl FnMut()) -> f64 {
    // Warm up and size the batches.
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < Duration::from_millis(20) || n < 3 {
        f();
        n += 1;
    }
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let (t, cpu0) = (Instant::now(), thread_cpu());
            for _ in 0..n {
                f();
            }
            let spent = match (thread_cpu(), cpu0) {
                (Some(b), Some(a)) => b - a,
                _ => t.elapsed(),
            };
            spent.as_secs_f64() * 1e3 / f64::from(n)
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A lit gradient with texture and per-pixel noise in luma, smooth chroma.
pub fn camera_like(w: u32, h: u32) -> I420Frame {
    let (wu, hu) = (w as usize, h as usize);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 9) as i32 - 4
    };
    let y = (0..wu * hu)
        .map(|i| {
            let (x, y) = (i % wu, i / wu);
            let base = 40 + (x * 120 / wu + y * 60 / hu) as i32;
            let texture = ((x / 7 + y / 5) % 4) as i32 * 6;
            (base + texture + noise()).clamp(16, 235) as u8
        })
        .collect();
    let (cw, ch) = (wu / 2, hu / 2);
    let u = (0..cw * ch)
        .map(|i| (110 + (i % cw) * 30 / cw) as u8)
        .collect();
    let v = (0..cw * ch)
        .map(|i| (140 - (i / cw) * 20 / ch) as u8)
        .collect();
    I420Frame {
        width: w,
        height: h,
        y,
        u,
        v,
    }
}
