//! Checks on the order of the frames a viewer decodes, shared by the end-to-end tests.

use std::time::Duration;

use anyhow::{bail, Context};
use sightline_publisher::barcode::tag_for;

use crate::{DecodedFrame, HeadlessViewer};

/// Longest wait for any one frame of a live 30 fps camera.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// The viewer's next frame must be a keyframe, and the `n` after it must follow with no gap
/// in frame numbers, all from `camera` with a readable barcode. Returns the `n + 1` frames.
pub async fn in_order_from_keyframe(
    viewer: &mut HeadlessViewer,
    camera: &str,
    n: usize,
) -> anyhow::Result<Vec<DecodedFrame>> {
    let first = viewer
        .next_frame(Duration::from_secs(10))
        .await
        .context("first frame")?;
    if !first.keyframe {
        bail!("a viewer's first frame is not a keyframe: {first:?}");
    }
    let mut frames = vec![first];
    while frames.len() <= n {
        let i = frames.len();
        let f = viewer.next_frame(FRAME_TIMEOUT).await?;
        let stats = viewer.stats();
        let (Some(prev), Some(stamp)) = (frames[i - 1].stamp, f.stamp) else {
            bail!("frame {i} or the one before has no readable barcode; {stats:?}");
        };
        if stamp.tag != tag_for(camera) {
            bail!("frame {i} is not from {camera}: {stamp:?}");
        }
        if stamp.frame != prev.frame + 1 {
            bail!(
                "frame {i}: number {} after {}, frames are missing; {stats:?}",
                stamp.frame,
                prev.frame
            );
        }
        frames.push(f);
    }
    Ok(frames)
}

/// Read frames until `n` in a row carry consecutive frame numbers of `camera` (whatever came
/// before: a restart, a reconnect), and return those `n`.
pub async fn next_consecutive(
    viewer: &mut HeadlessViewer,
    camera: &str,
    n: usize,
) -> anyhow::Result<Vec<DecodedFrame>> {
    let mut run: Vec<DecodedFrame> = Vec::new();
    while run.len() < n {
        let f = viewer.next_frame(Duration::from_secs(10)).await?;
        let Some(stamp) = f.stamp else {
            run.clear();
            continue;
        };
        if stamp.tag != tag_for(camera) {
            bail!("a frame not from {camera}: {stamp:?}");
        }
        match run.last().and_then(|p| p.stamp) {
            Some(prev) if stamp.frame == prev.frame + 1 => run.push(f),
            _ => run = vec![f],
        }
    }
    Ok(run)
}
