//! Which way each access unit from the camera goes: passed through as it is (browser-safe
//! H.264), decoded for re-encoding, or dropped (nothing decodable yet). Decided from the SPS
//! (see [`crate::h264::profile`]) and re-decided whenever the camera sends a different one; a
//! Main stream whose SPS does not say whether it has B-frames is watched slice by slice.
//! Plain state, driven by tests without a camera.

use crate::h264::nal::{nal_type, NAL_IDR, NAL_SPS};
use crate::h264::profile::{parse_sps, slice_type, SliceType, Sps, Verdict};

/// The two ways through the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Passthrough,
    ReEncode,
}

/// What to do with one access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Hand it on as H.264.
    Pass,
    /// Feed it to the decoder.
    Decode,
    /// Skip it: no SPS seen yet, or waiting for a keyframe to (re)start from.
    Drop,
}

/// Routing state for one RTSP session.
#[derive(Debug, Default)]
pub struct Router {
    path: Option<Path>,
    /// The SPS the decision was made from (bytes, to notice a change cheaply).
    sps_nal: Vec<u8>,
    sps: Option<Sps>,
    /// Main profile without a bitstream restriction: look at slice types.
    watch_for_b: bool,
    /// A gap or a switch: nothing until the next IDR.
    need_keyframe: bool,
    description: Option<String>,
    changed: bool,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Route one access unit, given as its NAL units (no start codes).
    pub fn route(&mut self, nals: &[&[u8]]) -> Route {
        let keyframe = nals.iter().any(|n| nal_type(n) == Some(NAL_IDR));
        if let Some(sps) = nals.iter().find(|n| nal_type(n) == Some(NAL_SPS)) {
            if **sps != self.sps_nal[..] {
                self.decide(sps, keyframe);
            }
        }
        match self.path {
            None => Route::Drop,
            Some(Path::Passthrough) => {
                if self.watch_for_b && nals.iter().any(|n| slice_type(n) == Some(SliceType::B)) {
                    let summary = self.sps.as_ref().map(Sps::summary).unwrap_or_default();
                    self.set(
                        Path::ReEncode,
                        format!("re-encoding ({summary}; B-frames appeared)"),
                    );
                    self.watch_for_b = false;
                    // The decoder has not seen this GOP's references.
                    self.need_keyframe = true;
                    return Route::Drop;
                }
                self.gate(keyframe, Route::Pass)
            }
            Some(Path::ReEncode) => self.gate(keyframe, Route::Decode),
        }
    }

    /// An access unit that was routed `Pass` could not be handed on (the consumer was
    /// behind): later P frames would reference it, so restart from the next keyframe. (A
    /// decoded frame can simply be skipped: the decoder saw it.)
    pub fn frame_lost(&mut self) {
        if self.path == Some(Path::Passthrough) {
            self.need_keyframe = true;
        }
    }

    pub fn path(&self) -> Option<Path> {
        self.path
    }

    /// The SPS in force, if it could be read.
    pub fn sps(&self) -> Option<&Sps> {
        self.sps.as_ref()
    }

    /// "passthrough (Constrained Baseline 3.1, 640x480)", "re-encoding (High 4.0, ...)".
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The new description if the path changed since the last call (to log it once).
    pub fn take_change(&mut self) -> Option<String> {
        if std::mem::take(&mut self.changed) {
            self.description.clone()
        } else {
            None
        }
    }

    fn gate(&mut self, keyframe: bool, route: Route) -> Route {
        if self.need_keyframe && !keyframe {
            return Route::Drop;
        }
        self.need_keyframe = false;
        route
    }

    fn decide(&mut self, sps_nal: &[u8], keyframe: bool) {
        self.sps_nal = sps_nal.to_vec();
        self.watch_for_b = false;
        let (path, description) = match parse_sps(sps_nal) {
            Ok(sps) => {
                let summary = sps.summary();
                let decided = match sps.verdict() {
                    Verdict::Passthrough => (Path::Passthrough, format!("passthrough ({summary})")),
                    Verdict::PassthroughUnlessBFrames => {
                        self.watch_for_b = true;
                        (
                            Path::Passthrough,
                            format!("passthrough ({summary}; re-encodes if B-frames appear)"),
                        )
                    }
                    Verdict::ReEncode(_) => (
                        Path::ReEncode,
                        format!("re-encoding ({summary}; {})", reasons(&sps)),
                    ),
                };
                self.sps = Some(sps);
                decided
            }
            // openh264 may still make sense of it; if not, frames are skipped and logged.
            Err(e) => {
                self.sps = None;
                (Path::ReEncode, format!("re-encoding (unreadable SPS: {e})"))
            }
        };
        // Switching paths mid-GOP would hand on (or decode) P frames whose references the
        // other path never saw.
        if self.path.is_some_and(|p| p != path) && !keyframe {
            self.need_keyframe = true;
        }
        self.set(path, description);
    }

    fn set(&mut self, path: Path, description: String) {
        if self.path != Some(path) || self.description.as_deref() != Some(&description) {
            self.changed = true;
        }
        self.path = Some(path);
        self.description = Some(description);
    }
}

/// Why a stream is not browser-safe, in words ("High profile, B-frames").
fn reasons(sps: &Sps) -> String {
    let mut why = Vec::new();
    if !matches!(sps.profile_idc, 66 | 77) {
        why.push(format!("{} profile", sps.profile_name()));
    }
    if sps.max_num_reorder_frames.unwrap_or(0) > 0 {
        why.push("B-frames".into());
    }
    if !sps.frame_mbs_only {
        why.push("interlaced".into());
    }
    why.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::profile::fixtures::{
        hex, X264_CONSTRAINED_BASELINE, X264_HIGH_B_FRAMES, X264_MAIN_NO_B,
    };

    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
    const P: &[u8] = &[0x41, 0x9a, 0x23, 0x18];
    const B: &[u8] = &[0x01, 0x9e, 0x62, 0x44];

    fn keyframe(sps: &[u8]) -> Vec<&[u8]> {
        vec![sps, PPS, IDR]
    }

    /// A Main SPS with the VUI cut off: no bitstream restriction, so B-frames are unknown.
    fn main_without_vui() -> Vec<u8> {
        let full = hex(X264_MAIN_NO_B);
        let cut = (1..full.len())
            .find(|&n| parse_sps(&full[..n]).is_ok())
            .unwrap();
        let sps = full[..cut].to_vec();
        assert_eq!(parse_sps(&sps).unwrap().max_num_reorder_frames, None);
        sps
    }

    #[test]
    fn nothing_goes_through_before_the_first_sps() {
        let mut r = Router::new();
        assert_eq!(r.route(&[P]), Route::Drop);
        assert_eq!(r.route(&[IDR]), Route::Drop);
        assert_eq!(r.path(), None);
        assert_eq!(r.take_change(), None);
    }

    #[test]
    fn constrained_baseline_is_passed_through_and_logged_once() {
        let sps = hex(X264_CONSTRAINED_BASELINE);
        let mut r = Router::new();
        assert_eq!(r.route(&keyframe(&sps)), Route::Pass);
        assert_eq!(
            r.take_change().as_deref(),
            Some("passthrough (Constrained Baseline 2.1, 320x240)")
        );
        for _ in 0..5 {
            assert_eq!(r.route(&[P]), Route::Pass);
        }
        // The same SPS again with the next IDR: no new decision, nothing to log.
        assert_eq!(r.route(&keyframe(&sps)), Route::Pass);
        assert_eq!(r.take_change(), None);
        assert_eq!(
            (r.sps().unwrap().width, r.sps().unwrap().height),
            (320, 240)
        );
    }

    #[test]
    fn high_with_b_frames_is_decoded() {
        let sps = hex(X264_HIGH_B_FRAMES);
        let mut r = Router::new();
        assert_eq!(r.route(&keyframe(&sps)), Route::Decode);
        assert_eq!(r.route(&[B]), Route::Decode);
        assert_eq!(r.route(&[P]), Route::Decode);
        assert_eq!(
            r.description(),
            Some("re-encoding (High 2.0, 320x240; High profile, B-frames)")
        );
    }

    #[test]
    fn a_lost_passthrough_frame_waits_for_the_next_keyframe() {
        let sps = hex(X264_CONSTRAINED_BASELINE);
        let mut r = Router::new();
        r.route(&keyframe(&sps));
        r.frame_lost();
        assert_eq!(r.route(&[P]), Route::Drop);
        assert_eq!(r.route(&[P]), Route::Drop);
        assert_eq!(r.route(&keyframe(&sps)), Route::Pass);
        assert_eq!(r.route(&[P]), Route::Pass);
    }

    #[test]
    fn a_lost_decoded_frame_needs_no_keyframe() {
        let sps = hex(X264_HIGH_B_FRAMES);
        let mut r = Router::new();
        r.route(&keyframe(&sps));
        r.frame_lost();
        assert_eq!(r.route(&[P]), Route::Decode);
    }

    #[test]
    fn main_without_vui_passes_until_a_b_slice_then_restarts_decoding_at_an_idr() {
        let sps = main_without_vui();
        let mut r = Router::new();
        assert_eq!(r.route(&keyframe(&sps)), Route::Pass);
        assert!(r
            .take_change()
            .unwrap()
            .starts_with("passthrough (Main 2.1"));
        assert_eq!(r.route(&[P]), Route::Pass);
        assert_eq!(r.route(&[B]), Route::Drop);
        assert_eq!(r.path(), Some(Path::ReEncode));
        assert_eq!(
            r.take_change().as_deref(),
            Some("re-encoding (Main 2.1, 320x240; B-frames appeared)")
        );
        assert_eq!(
            r.route(&[P]),
            Route::Drop,
            "no references for the decoder yet"
        );
        assert_eq!(r.route(&keyframe(&sps)), Route::Decode);
        assert_eq!(r.route(&[B]), Route::Decode);
        // The same SPS does not bring passthrough back: B-frames were seen.
        assert_eq!(r.path(), Some(Path::ReEncode));
    }

    #[test]
    fn a_new_sps_changes_the_path_at_its_keyframe() {
        let cb = hex(X264_CONSTRAINED_BASELINE);
        let high = hex(X264_HIGH_B_FRAMES);
        let mut r = Router::new();
        assert_eq!(r.route(&keyframe(&cb)), Route::Pass);
        r.take_change();
        assert_eq!(r.route(&keyframe(&high)), Route::Decode);
        assert!(r.take_change().unwrap().starts_with("re-encoding (High"));
        assert_eq!(r.route(&keyframe(&cb)), Route::Pass);
        assert!(r.take_change().unwrap().starts_with("passthrough"));
        // An SPS change without an IDR (unusual) waits for one before switching over.
        assert_eq!(r.route(&[&high[..], PPS, P]), Route::Drop);
        assert_eq!(r.route(&keyframe(&high)), Route::Decode);
    }

    #[test]
    fn an_unreadable_sps_goes_to_the_decoder() {
        let mut r = Router::new();
        assert_eq!(r.route(&[&[0x67, 0x42][..], PPS, IDR]), Route::Decode);
        assert!(r
            .description()
            .unwrap()
            .starts_with("re-encoding (unreadable SPS"));
        assert!(r.sps().is_none());
    }
}
