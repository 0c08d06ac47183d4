//! Local cameras through nokhwa: V4L2 on Linux, Media Foundation on Windows, AVFoundation on
//! macOS ([`BACKEND`]; Cargo.toml turns on the matching nokhwa feature per target, so a build
//! needs no flag). The module keeps its V4L2 name, the system it was written and tested
//! on; only Linux's backend has run here. A nokhwa camera cannot leave the thread
//! that opened it, so each source runs a capture thread that opens the device, negotiates
//! the mode ([`choose_mode`]), converts every buffer to I420 (MJPEG with [`JpegDecoder`],
//! YUYV with [`yuyv_to_i420`]) and hands frames over a one-slot channel. [`Source::next_frame`]
//! waits on that channel with the read timeout, so a camera that stalls is noticed even while
//! the capture thread sits in a blocking read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};
use nokhwa::Camera;

use super::camera_controls::{CameraControlLink, HardwareControls};
use super::v4l2_format::{choose_mode, describe_modes, find_device, Mode, PixelFormat};
use super::{CapturedFrame, Source, SourceSpec, V4l2Device};
use crate::barcode::now_us;
use crate::image::I420Frame;
use crate::image::{yuyv_to_i420, JpegDecoder};

/// nokhwa's capture backend on this system.
#[cfg(target_os = "linux")]
const BACKEND: ApiBackend = ApiBackend::Video4Linux;
#[cfg(target_os = "windows")]
const BACKEND: ApiBackend = ApiBackend::MediaFoundation;
#[cfg(target_os = "macos")]
const BACKEND: ApiBackend = ApiBackend::AVFoundation;
#[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
const BACKEND: ApiBackend = ApiBackend::Auto;

/// How `--list-cameras` and the logs name a camera: `v4l2:` on Linux, as the docs always
/// had it, and `camera:` elsewhere (`--source` takes either).
const SCHEME: &str = if cfg!(target_os = "linux") {
    "v4l2"
} else {
    "camera"
};

/// Every format nokhwa knows, so listing and opening see all modes a device offers.
const ALL_FORMATS: [FrameFormat; 6] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::GRAY,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];

/// A camera as found on this machine.
#[derive(Debug, Clone)]
pub struct CameraListing {
    pub index: u32,
    pub name: String,
    /// The device's modes, or why it could not be asked.
    pub modes: Result<Vec<Mode>, String>,
}

/// Every V4L2 camera with its modes (for `--list-cameras`).
pub fn list_cameras() -> anyhow::Result<Vec<CameraListing>> {
    let mut out = Vec::new();
    for (index, name) in devices()? {
        let modes = open_camera(index)
            .and_then(|mut cam| modes_of(&mut cam))
            .map_err(|e| format!("{e:#}"));
        out.push(CameraListing { index, name, modes });
    }
    Ok(out)
}

/// `--list-cameras` output.
pub fn format_listing(cameras: &[CameraListing]) -> String {
    if cameras.is_empty() {
        return if cfg!(target_os = "linux") {
            "no cameras found (no V4L2 devices under /dev/video*)\n".to_owned()
        } else {
            "no cameras found\n".to_owned()
        };
    }
    let mut s = String::new();
    for cam in cameras {
        s.push_str(&format!("{SCHEME}:{}  {}\n", cam.index, cam.name));
        match &cam.modes {
            Ok(modes) if modes.is_empty() => s.push_str("    (no capture formats)\n"),
            Ok(modes) => {
                for line in describe_modes(modes) {
                    s.push_str(&format!("    {line}\n"));
                }
            }
            Err(e) => s.push_str(&format!("    (cannot open: {e})\n")),
        }
    }
    s
}

/// A running V4L2 capture.
pub struct V4l2Source {
    /// `v4l2:INDEX (NAME)`, for logs and errors.
    label: String,
    mode: Mode,
    frames: Receiver<anyhow::Result<CapturedFrame>>,
    stop: Arc<AtomicBool>,
    read_timeout: Duration,
}

impl V4l2Source {
    /// Find the device, negotiate its mode and start capturing. Fails if the device is
    /// missing, busy, or offers neither MJPEG nor YUYV.
    pub fn open(spec: &SourceSpec, device: &V4l2Device) -> anyhow::Result<Self> {
        let (setup_tx, setup_rx) = mpsc::sync_channel(1);
        let (frame_tx, frames) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let (device, request) = (device.clone(), (spec.width, spec.height, spec.fps));
        let thread_stop = stop.clone();
        let controls = spec.controls.clone();
        std::thread::Builder::new()
            .name("v4l2-capture".into())
            .spawn(move || {
                capture_thread(device, request, setup_tx, frame_tx, thread_stop, controls)
            })
            .context("v4l2: starting the capture thread")?;
        let (label, mode) = setup_rx
            .recv()
            .context("v4l2: the capture thread ended while opening the camera")??;
        tracing::info!(source = %label, %mode, "v4l2 camera capturing");
        Ok(V4l2Source {
            label,
            mode,
            frames,
            stop,
            read_timeout: spec.read_timeout,
        })
    }

    /// The negotiated capture mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // The thread sees the flag (or the closed channel) after its current read.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Source for V4l2Source {
    fn dimensions(&self) -> (u32, u32) {
        (self.mode.width & !1, self.mode.height & !1)
    }

    fn fps(&self) -> u32 {
        self.mode.fps
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        match self.frames.recv_timeout(self.read_timeout) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => anyhow::bail!(
                "{}: no frame for {:?}, the camera stalled",
                self.label,
                self.read_timeout
            ),
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("{}: the capture thread ended", self.label)
            }
        }
    }
}

type Setup = anyhow::Result<(String, Mode)>;

fn capture_thread(
    device: V4l2Device,
    (width, height, fps): (u32, u32, u32),
    setup: SyncSender<Setup>,
    frames: SyncSender<anyhow::Result<CapturedFrame>>,
    stop: Arc<AtomicBool>,
    controls: CameraControlLink,
) {
    let opened = (|| -> anyhow::Result<(Camera, String, Mode)> {
        let found = devices()?;
        let index = find_device(&found, &device)?;
        let name = found
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        let label = format!("{SCHEME}:{index} ({name})");
        let mut camera = open_camera(index).with_context(|| format!("{label}: opening"))?;
        let modes = modes_of(&mut camera).with_context(|| format!("{label}: listing formats"))?;
        let mode = choose_mode(&modes, width, height, fps).with_context(|| {
            format!(
                "{label}: offers neither MJPEG nor YUYV ({})",
                describe_modes(&modes).join("; ")
            )
        })?;
        let wanted = to_nokhwa(mode);
        camera
            .set_camera_requset(RequestedFormat::with_formats(
                RequestedFormatType::Exact(wanted),
                &[wanted.format()],
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{label}: setting {mode}"))?;
        camera
            .open_stream()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{label}: starting the stream"))?;
        Ok((camera, label, mode))
    })();
    let (mut camera, label, mode) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = setup.send(Err(e));
            return;
        }
    };
    if setup.send(Ok((label.clone(), mode))).is_err() {
        return;
    }
    // The camera's own controls carry out the image settings it has; the rest stay in
    // software. A device whose controls cannot be read gets them all in software.
    let offered = match camera.camera_controls() {
        Ok(list) => HardwareControls::from_device(&list),
        Err(e) => {
            tracing::warn!(source = %label, "cannot read the camera's controls ({e}); adjusting the picture in software");
            HardwareControls::default()
        }
    };
    tracing::info!(source = %label, "camera controls used: {}", offered.describe());
    controls.offer(offered);
    let mut applied = 0;
    let mut decoder = JpegDecoder::new();
    let mut index: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some((generation, values)) = controls.wanted_since(applied) {
            applied = generation;
            for (control, value) in values {
                if let Err(e) = camera.set_camera_control(control, value.into()) {
                    tracing::warn!(source = %label, "setting {control:?} to {value:?}: {e}");
                }
            }
        }
        let raw = match camera.frame_raw() {
            Ok(raw) => raw,
            Err(e) => {
                let _ = frames.send(Err(anyhow::anyhow!("{label}: reading a frame: {e}")));
                return;
            }
        };
        let capture_us = now_us();
        let frame = match convert(&raw, mode, &mut decoder) {
            Ok(f) => f,
            Err(e) => {
                // One bad buffer (a corrupt MJPEG frame): skip it, the stream goes on.
                tracing::warn!(source = %label, "skipping a bad frame: {e:#}");
                continue;
            }
        };
        if frames
            .send(Ok(CapturedFrame::raw(frame, capture_us, index)))
            .is_err()
        {
            return;
        }
        index = index.wrapping_add(1);
    }
}

/// One camera buffer → I420.
fn convert(raw: &[u8], mode: Mode, decoder: &mut JpegDecoder) -> anyhow::Result<I420Frame> {
    match mode.format {
        PixelFormat::Mjpeg => decoder.decode(raw),
        PixelFormat::Yuyv => {
            // nokhwa does not pass on the row pitch; the buffer holds `height` rows of it.
            let stride = raw.len() / mode.height.max(1) as usize;
            yuyv_to_i420(raw, mode.width, mode.height, stride)
        }
        other => anyhow::bail!("{other} frames are not supported"),
    }
}

/// `(index, name)` of every camera the backend finds.
fn devices() -> anyhow::Result<Vec<(u32, String)>> {
    #[cfg(target_os = "macos")]
    nokhwa::nokhwa_initialize(|granted| {
        if !granted {
            tracing::warn!("camera access was not granted to this program");
        }
    });
    let found = nokhwa::query(BACKEND)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("listing cameras")?;
    Ok(found
        .iter()
        .filter_map(|info| match info.index() {
            CameraIndex::Index(i) => Some((*i, info.human_name())),
            CameraIndex::String(_) => None,
        })
        .collect())
}

fn open_camera(index: u32) -> anyhow::Result<Camera> {
    Camera::with_backend(
        CameraIndex::Index(index),
        RequestedFormat::with_formats(RequestedFormatType::None, &ALL_FORMATS),
        BACKEND,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn modes_of(camera: &mut Camera) -> anyhow::Result<Vec<Mode>> {
    let formats = camera
        .compatible_camera_formats()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(formats.iter().map(from_nokhwa).collect())
}

fn from_nokhwa(f: &CameraFormat) -> Mode {
    Mode {
        format: match f.format() {
            FrameFormat::MJPEG => PixelFormat::Mjpeg,
            FrameFormat::YUYV => PixelFormat::Yuyv,
            FrameFormat::NV12 => PixelFormat::Nv12,
            FrameFormat::GRAY => PixelFormat::Gray,
            FrameFormat::RAWRGB => PixelFormat::Rgb,
            FrameFormat::RAWBGR => PixelFormat::Bgr,
        },
        width: f.width(),
        height: f.height(),
        fps: f.frame_rate(),
    }
}

fn to_nokhwa(m: Mode) -> CameraFormat {
    let format = match m.format {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb => FrameFormat::RAWRGB,
        PixelFormat::Bgr => FrameFormat::RAWBGR,
    };
    CameraFormat::new_from(m.width, m.height, format, m.fps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_survive_the_round_trip_through_nokhwa_types() {
        for format in [
            PixelFormat::Mjpeg,
            PixelFormat::Yuyv,
            PixelFormat::Nv12,
            PixelFormat::Gray,
            PixelFormat::Rgb,
            PixelFormat::Bgr,
        ] {
            let m = Mode {
                format,
                width: 1280,
                height: 720,
                fps: 30,
            };
            assert_eq!(from_nokhwa(&to_nokhwa(m)), m);
        }
    }

    #[test]
    fn buffers_convert_by_their_mode() {
        let mut dec = JpegDecoder::new();
        let yuyv = Mode {
            format: PixelFormat::Yuyv,
            width: 4,
            height: 2,
            fps: 30,
        };
        let f = convert(
            &[16, 128, 235, 128, 16, 128, 235, 128].repeat(2),
            yuyv,
            &mut dec,
        )
        .unwrap();
        assert_eq!(f.y, [16, 235, 16, 235, 16, 235, 16, 235]);
        // A short buffer is an error, not a panic.
        assert!(convert(&[0; 7], yuyv, &mut dec).is_err());
        let mjpeg = Mode {
            format: PixelFormat::Mjpeg,
            ..yuyv
        };
        let err = convert(b"garbage", mjpeg, &mut dec)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a JPEG"), "{err}");
        let nv12 = Mode {
            format: PixelFormat::Nv12,
            ..yuyv
        };
        assert!(convert(&[0; 12], nv12, &mut dec).is_err());
    }

    #[test]
    fn an_empty_machine_lists_no_cameras() {
        assert!(format_listing(&[]).contains("no cameras found"));
        let listing = format_listing(&[
            CameraListing {
                index: 0,
                name: "Cam".into(),
                modes: Ok(vec![Mode {
                    format: PixelFormat::Mjpeg,
                    width: 640,
                    height: 480,
                    fps: 30,
                }]),
            },
            CameraListing {
                index: 1,
                name: "Meta".into(),
                modes: Err("busy".into()),
            },
        ]);
        assert_eq!(
            listing,
            "v4l2:0  Cam\n    MJPEG 640x480 @ 30 fps\nv4l2:1  Meta\n    (cannot open: busy)\n"
        );
    }

    /// On a machine without cameras (CI, these machines) opening fails cleanly, naming the
    /// source. Skipped where a camera exists.
    #[test]
    fn a_missing_camera_is_a_clear_error() {
        if !devices().unwrap_or_default().is_empty() {
            return;
        }
        let spec = SourceSpec::new(super::super::SourceUrl::V4l2(V4l2Device::Index(7)), "cam");
        let err = match V4l2Source::open(&spec, &V4l2Device::Index(7)) {
            Ok(_) => panic!("opened a camera that does not exist"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("v4l2:7") && err.contains("no cameras found"),
            "{err}"
        );
    }
}
