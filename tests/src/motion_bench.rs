//! `bench motion`: what the motion detector (`pipeline::motion`, `ai_model: "motion"`) costs
//! per frame of a 1280×720 camera-like picture, still and with a box moving through it, and
//! what that is of one core at 30 fps (issue 14: under 3 %).

use sightline_publisher::pipeline::motion::MotionDetector;

use crate::image_bench::{camera_like, per_frame};

pub fn run() -> anyhow::Result<()> {
    println!("## Motion detection (issue 14), CPU per 1280x720 frame, one thread");
    let still = camera_like(1280, 720);
    // Two pictures the box alternates between, so every frame has motion to find.
    let moved: Vec<_> = [200usize, 260]
        .iter()
        .map(|&x| {
            let mut f = still.clone();
            for row in 300..380 {
                f.y[row * 1280 + x..row * 1280 + x + 80].fill(220);
            }
            f
        })
        .collect();
    for (what, frames) in [
        ("still picture", vec![&still]),
        ("a moving box", moved.iter().collect()),
    ] {
        let mut detector = MotionDetector::default();
        let (mut ts, mut i, mut events) = (0u64, 0usize, 0usize);
        let ms = per_frame(|| {
            ts += 33;
            i += 1;
            events += detector
                .observe(frames[i % frames.len()], ts, 0.5)
                .is_some() as usize;
        });
        println!(
            "{what}: {ms:.3} ms a frame, {:.2} % of a core at 30 fps ({events} events)",
            ms * 30.0 / 10.0
        );
    }
    Ok(())
}
