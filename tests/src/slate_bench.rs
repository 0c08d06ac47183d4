//! `bench slate`: what the slate costs while a 720p camera's source is lost (issue 14,
//! item 10): the bytes of its keyframe and of its deltas, and the bit rate over a minute
//! of loss at one slate a second, with no viewer joining and with one joining (a PLI) every
//! ten seconds; for the dimmed last picture and for the grey slate. Also the time to render
//! it (once per loss).

use std::time::{Duration, Instant};

use sightline_publisher::h264::encoder::KeyframeRequest;
use sightline_publisher::pipeline::{slate, EncodeSettings, FrameEncoder, Vp8Demand, Vp8Lane};
use sightline_publisher::source::supervisor::SourceFrame;
use sightline_publisher::source::CapturedFrame;

use crate::image_bench::camera_like;

/// The camera's bit rate before the loss (the demo's 720p default).
const BITRATE: u32 = 2_000_000;
const LOSS_SECONDS: u32 = 60;

pub fn run() -> anyhow::Result<()> {
    println!("## The slate while a 1280x720 source is lost (issue 14), one slate a second");
    let picture = camera_like(1280, 720);
    let t = Instant::now();
    let dimmed = slate::render(Some(&picture), (0, 0));
    let render_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("render the dimmed slate (once per loss): {render_ms:.2} ms");
    let grey = slate::render(None, (1280, 720));
    for (what, slate) in [
        ("last picture dimmed", &dimmed),
        ("grey, no picture", &grey),
    ] {
        for pli_every in [None, Some(10)] {
            let (idr, deltas, total) = lose(&picture, slate, pli_every)?;
            let joins = match pli_every {
                None => "no viewer joins".to_string(),
                Some(s) => format!("a viewer joins every {s} s"),
            };
            println!(
                "{what}, {joins}: keyframe {idr} B, deltas {deltas} B each, \
                 {:.1} kbit/s over {LOSS_SECONDS} s",
                total as f64 * 8.0 / f64::from(LOSS_SECONDS) / 1e3
            );
        }
    }
    Ok(())
}

/// Encode a second of the camera, then a minute of slates: (first slate's bytes, the
/// median delta's bytes, all the slates' bytes).
fn lose(
    picture: &sightline_publisher::image::I420Frame,
    slate: &sightline_publisher::image::I420Frame,
    pli_every: Option<u32>,
) -> anyhow::Result<(usize, usize, usize)> {
    let requests = KeyframeRequest::default();
    let settings = EncodeSettings {
        bitrate: BITRATE,
        keyframe_interval: Duration::ZERO,
    };
    let vp8 = Vp8Lane::new(Vp8Demand::default(), KeyframeRequest::default(), 0);
    let mut encoder = FrameEncoder::new(settings, requests.clone(), vp8);
    for seq in 0..30 {
        let frame = SourceFrame {
            captured: CapturedFrame::raw(picture.clone(), seq * 33_333, seq as u32),
            seq,
            resumed: false,
        };
        encoder.process(frame, 30);
    }
    let mut sizes = Vec::new();
    for second in 0..LOSS_SECONDS {
        if pli_every.is_some_and(|p| second > 0 && second % p == 0) {
            requests.request();
        }
        let out = encoder
            .slate(slate, 30)
            .ok_or_else(|| anyhow::anyhow!("the encoder gave no slate"))?;
        sizes.push((out.keyframe, out.data.len()));
    }
    let mut deltas: Vec<usize> = sizes.iter().filter(|s| !s.0).map(|s| s.1).collect();
    deltas.sort_unstable();
    let median = deltas.get(deltas.len() / 2).copied().unwrap_or(0);
    Ok((sizes[0].1, median, sizes.iter().map(|s| s.1).sum()))
}
