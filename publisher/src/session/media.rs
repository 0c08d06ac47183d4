//! The media side of a connected peer: the task that hands each encoded access unit to the
//! video track (RTP time following capture time) and the task that turns PLI/FIR from the
//! SFU into encoder keyframes. Separate from [`super::peer`], which builds the connection,
//! because these run only once it is up, for the rest of the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::Sample;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use super::direct::{Outlets, Sink};
use super::keyframe_feedback::is_keyframe_request;
use super::peer;
use super::Session;
use crate::h264::encoder::KeyframeRequest;
use crate::pipeline::OutFrame;

/// Encoded frames buffered between the encode thread and the track writer.
const FRAME_QUEUE: usize = 4;

impl Session<'_> {
    /// Connected: the track writer and the keyframe-request listener run for the rest of the
    /// session; the encode thread comes and goes with the capture ([`Self::sync`]).
    pub(super) async fn start_media(&mut self) {
        let payload_type = peer::payload_type(self.peer.sender.as_ref(), &peer::h264_codec()).await;
        let (tx, rx) = mpsc::channel(FRAME_QUEUE);
        self.frames = Some(tx);
        let sfu = Sink {
            track: Arc::clone(&self.peer.track),
            ssrc: self.peer.ssrc,
            payload_type,
        };
        let mut sfu_vp8 = None;
        if let Some(vp8) = &self.peer.vp8 {
            sfu_vp8 = Some(Sink {
                track: Arc::clone(&vp8.track),
                ssrc: vp8.ssrc,
                payload_type: peer::payload_type(vp8.sender.as_ref(), &peer::vp8_codec()).await,
            });
            self.res
                .tasks
                .push(tokio::spawn(listen_for_keyframe_requests(
                    Arc::clone(&vp8.track),
                    self.vp8_keyframes.clone(),
                )));
        }
        let direct = Arc::clone(&self.res.direct.outlets);
        let fps = self.config.fps;
        self.res
            .tasks
            .push(tokio::spawn(write_frames(sfu, sfu_vp8, direct, rx, fps)));
        self.res
            .tasks
            .push(tokio::spawn(listen_for_keyframe_requests(
                Arc::clone(&self.peer.track),
                self.keyframes.clone(),
            )));
        info!(camera = %self.config.camera_id, payload_type, vp8 = self.peer.vp8.is_some(), "media connected");
    }
}

/// Hand each access unit to the SFU's track, and to each direct viewer's that takes it
/// ([`super::direct::Gate`]), as one sample; the packetizer splits it into RTP. A frame's
/// VP8 twin, while there is one, goes to the SFU's VP8 track.
async fn write_frames(
    sfu: Sink,
    sfu_vp8: Option<Sink>,
    direct: Outlets,
    mut frames: mpsc::Receiver<OutFrame>,
    fps: u32,
) {
    let mut failures = 0u64;
    let mut last_capture_us: Option<u64> = None;
    let mut targets = Vec::new();
    while let Some(frame) = frames.recv().await {
        // RTP time follows capture time, so a camera slower than its nominal rate or a
        // pause while the source was lost plays at the right speed. (The packetizer advances
        // the clock after a sample, so each step uses the interval before it: exact for a
        // steady rate, one frame late where the rate changes.)
        let duration = sample_duration(last_capture_us, frame.capture_us, fps);
        last_capture_us = Some(frame.capture_us);
        let vp8 = frame.vp8.zip(sfu_vp8.as_ref());
        let keyframe = frame.encoded.keyframe;
        let h264 = frame.encoded.data;
        // The SFU's track, then the direct viewers' (cloned out: the lock is not held
        // across a write), then the SFU's VP8 track.
        targets.clear();
        targets.push((sfu.clone(), h264.clone()));
        for o in direct.lock().unwrap().iter_mut() {
            if o.gate.passes(keyframe) {
                targets.push((o.sink.clone(), h264.clone()));
            }
        }
        if let Some((f, sink)) = vp8 {
            targets.push((sink.clone(), f.data));
        }
        for (
            Sink {
                track,
                ssrc,
                payload_type,
            },
            data,
        ) in targets.drain(..)
        {
            let sample = Sample {
                data,
                duration,
                ..Sample::new(Instant::now())
            };
            if let Err(e) = track
                .sample_writer(ssrc, payload_type)
                .write_sample(&sample)
                .await
            {
                failures += 1;
                // Log the first and then every 100th, not 30 lines a second.
                if failures == 1 || failures.is_multiple_of(100) {
                    // webrtc-rs puts the whole packet, payload and all, in some of its
                    // errors' text: the start says what went wrong.
                    let error: String = e.to_string().chars().take(120).collect();
                    warn!(
                        failures,
                        frame = frame.index,
                        "writing a sample failed: {error}"
                    );
                }
            }
        }
    }
}

/// How far RTP time advances for a frame captured at `capture_us`: the time since the frame
/// before, kept within 1 ms..1 s (clocks can step; a long loss need not be replayed), or one
/// nominal frame period for the first frame.
fn sample_duration(last_capture_us: Option<u64>, capture_us: u64, fps: u32) -> Duration {
    let nominal = Duration::from_secs(1) / fps.max(1);
    match last_capture_us {
        Some(last) if capture_us > last => Duration::from_micros(capture_us - last)
            .clamp(Duration::from_millis(1), Duration::from_secs(1)),
        Some(_) => Duration::from_millis(1),
        None => nominal,
    }
}

/// Turn PLI/FIR from the SFU (or a direct viewer) into encoder keyframes.
pub(super) async fn listen_for_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    keyframes: KeyframeRequest,
) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    debug!("keyframe requested by the receiver");
                    keyframes.request();
                }
            }
            Some(_) => {}
            // Not bound (yet, or any more): look again shortly. The task is aborted at teardown.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_time_follows_capture_time() {
        let ms = Duration::from_millis;
        assert_eq!(
            sample_duration(None, 5_000, 30),
            Duration::from_secs(1) / 30
        );
        assert_eq!(sample_duration(Some(1_000_000), 1_100_000, 30), ms(100));
        assert_eq!(sample_duration(Some(1_000_000), 1_000_000, 30), ms(1));
        assert_eq!(sample_duration(Some(2_000_000), 1_000_000, 30), ms(1));
        assert_eq!(sample_duration(Some(0), 60_000_000, 30), ms(1000));
    }
}
