//! `bench simd`: our hand-written image steps against maintained SIMD crates, side by side
//! (issue 12): scaling a frame's planes (`image::scale` against `fast_image_resize`) and a
//! USB camera's YUYV → I420 (`image::yuyv` against `yuvutils-rs`). Same inputs, CPU ms per
//! frame on this thread (the median of 15 batches, as `bench image`; both sides allocate
//! their output, as the publisher does), and how far the two outputs are apart, so a faster
//! crate that computes something else is not taken for a win. Ratios are ours ÷ the crate's:
//! above 1, the crate is faster.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use sightline_publisher::image::{yuyv_to_i420, I420Frame, Scaler};
use yuvutils_rs::{yuyv422_to_yuv420, YuvChromaSubsampling, YuvPackedImage, YuvPlanarImageMut};

use crate::image_bench::{camera_like, per_frame};

pub fn run() -> anyhow::Result<()> {
    println!(
        "## Hand-written image steps against SIMD crates (issue 12), CPU ms per frame, one thread"
    );
    let hd = camera_like(1920, 1080);
    let p720 = camera_like(1280, 720);
    let p360 = camera_like(640, 360);
    let mut ours = Scaler::new();
    let mut theirs = Resizer::new();
    for (src, (w, h), alg) in [
        (&p720, (640, 360), FilterType::Box),
        (&p720, (320, 180), FilterType::Box),
        (&hd, (1280, 720), FilterType::Box),
        (&hd, (640, 360), FilterType::Box),
        (&p360, (1280, 720), FilterType::Bilinear),
    ] {
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(alg));
        let mine = per_frame(|| {
            std::hint::black_box(ours.scale(src, w, h).unwrap());
        });
        let crate_ms = per_frame(|| {
            std::hint::black_box(resize_i420(&mut theirs, src, w, h, &options));
        });
        let a = ours.scale(src, w, h)?;
        let b = resize_i420(&mut theirs, src, w, h, &options);
        println!(
            "scale {}x{} -> {w}x{h}: ours {mine:.3} ms, fast_image_resize ({alg:?}) {crate_ms:.3} ms \
             ({:.2}x); luma apart by {:.2} on average, {} at most",
            src.width,
            src.height,
            mine / crate_ms,
            mean_abs(&a.y, &b.y),
            max_abs(&a.y, &b.y),
        );
    }

    for (w, h) in [(640u32, 480u32), (1280, 720), (1920, 1080)] {
        let yuyv = yuyv_like(w, h);
        let stride = 2 * w as usize;
        let mine = per_frame(|| {
            std::hint::black_box(yuyv_to_i420(&yuyv, w, h, stride).unwrap());
        });
        let crate_ms = per_frame(|| {
            std::hint::black_box(yuyv_with_crate(&yuyv, w, h));
        });
        let a = yuyv_to_i420(&yuyv, w, h, stride)?;
        let b = yuyv_with_crate(&yuyv, w, h);
        let differ = a.y.iter().zip(&b.y).filter(|(x, y)| x != y).count();
        println!(
            "YUYV -> I420 {w}x{h}: ours {mine:.3} ms, yuvutils-rs {crate_ms:.3} ms ({:.2}x); \
             {:.2} % of luma samples differ (up to {}), chroma up to {}",
            mine / crate_ms,
            differ as f64 * 100.0 / a.y.len() as f64,
            max_abs(&a.y, &b.y),
            max_abs(&a.u, &b.u).max(max_abs(&a.v, &b.v)),
        );
    }
    Ok(())
}

/// Each plane of `src` resized on its own, as the crate works on single planes.
fn resize_i420(
    resizer: &mut Resizer,
    src: &I420Frame,
    w: u32,
    h: u32,
    options: &ResizeOptions,
) -> I420Frame {
    let (cw, ch) = (src.width.div_ceil(2), src.height.div_ceil(2));
    let mut plane = |data: &[u8], sw: u32, sh: u32, dw: u32, dh: u32| {
        let from = ImageRef::new(sw, sh, data, PixelType::U8).expect("plane size");
        let mut to = Image::new(dw, dh, PixelType::U8);
        resizer.resize(&from, &mut to, options).expect("resize");
        to.into_vec()
    };
    I420Frame {
        width: w,
        height: h,
        y: plane(&src.y, src.width, src.height, w, h),
        u: plane(&src.u, cw, ch, w.div_ceil(2), h.div_ceil(2)),
        v: plane(&src.v, cw, ch, w.div_ceil(2), h.div_ceil(2)),
    }
}

fn yuyv_with_crate(data: &[u8], w: u32, h: u32) -> I420Frame {
    let packed = YuvPackedImage {
        yuy: data,
        yuy_stride: 2 * w,
        width: w,
        height: h,
    };
    let mut planar = YuvPlanarImageMut::alloc(w, h, YuvChromaSubsampling::Yuv420);
    yuyv422_to_yuv420(&mut planar, &packed).expect("yuyv");
    I420Frame {
        width: w,
        height: h,
        y: planar.y_plane.borrow().to_vec(),
        u: planar.u_plane.borrow().to_vec(),
        v: planar.v_plane.borrow().to_vec(),
    }
}

/// A camera-like picture packed as a USB camera sends it.
fn yuyv_like(w: u32, h: u32) -> Vec<u8> {
    let f = camera_like(w, h);
    let (wu, cw) = (w as usize, w as usize / 2);
    let mut out = Vec::with_capacity(wu * h as usize * 2);
    for row in 0..h as usize {
        let c = (row / 2) * cw;
        for pair in 0..cw {
            out.extend_from_slice(&[
                f.y[row * wu + 2 * pair],
                f.u[c + pair],
                f.y[row * wu + 2 * pair + 1],
                f.v[c + pair],
            ]);
        }
    }
    out
}

fn max_abs(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn mean_abs(a: &[u8], b: &[u8]) -> f64 {
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len().max(1) as f64
}
