//! V4L2 camera decisions as plain code: which device a `v4l2:` source names, which capture
//! mode (pixel format, size, rate) to ask for, and how `--list-cameras` shows a device's
//! modes. The nokhwa I/O in [`super::v4l2`] only feeds these functions what the device
//! reports.

use std::collections::BTreeMap;
use std::fmt;

use super::url::V4l2Device;

/// Pixel formats a camera may offer. Only MJPEG and YUYV are captured; the others are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
    Nv12,
    Gray,
    Rgb,
    Bgr,
}

impl PixelFormat {
    /// Whether the publisher converts this format (MJPEG and YUYV: what USB cameras offer).
    pub fn supported(self) -> bool {
        matches!(self, PixelFormat::Mjpeg | PixelFormat::Yuyv)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Mjpeg => "MJPEG",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Gray => "GRAY",
            PixelFormat::Rgb => "RGB3",
            PixelFormat::Bgr => "BGR3",
        })
    }
}

/// One capture mode a camera offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {} fps",
            self.format, self.width, self.height, self.fps
        )
    }
}

/// Above this many pixels MJPEG is preferred: YUYV at 1280×720 is ~55 MB/s, more than USB 2
/// cameras send at full rate, so they cap it at a few frames per second.
const YUYV_MAX_PIXELS: u64 = 640 * 480;

/// Pick the mode closest to the requested size and rate: first the nearest size (any
/// supported format), then the format (MJPEG above 640×480, YUYV at or below it, unless the
/// preferred one cannot reach the requested rate and the other does better), then the rate
/// (the lowest one at or above the request, else the highest). `None` when the camera offers
/// neither MJPEG nor YUYV.
pub fn choose_mode(modes: &[Mode], width: u32, height: u32, fps: u32) -> Option<Mode> {
    let usable: Vec<Mode> = modes
        .iter()
        .copied()
        .filter(|m| m.format.supported() && m.width > 0 && m.height > 0 && m.fps > 0)
        .collect();
    let distance = |m: &Mode| m.width.abs_diff(width) as u64 + m.height.abs_diff(height) as u64;
    // Nearest size; between equally near ones the larger (more detail, never upscaled).
    let size = usable
        .iter()
        .min_by_key(|m| {
            (
                distance(m),
                std::cmp::Reverse(m.width as u64 * m.height as u64),
            )
        })
        .map(|m| (m.width, m.height))?;
    let at_size = |format: PixelFormat| -> Option<Mode> {
        let rates = usable
            .iter()
            .filter(|m| m.format == format && (m.width, m.height) == size);
        let reaching = rates.clone().filter(|m| m.fps >= fps).min_by_key(|m| m.fps);
        reaching.or_else(|| rates.max_by_key(|m| m.fps)).copied()
    };
    let high_res = size.0 as u64 * size.1 as u64 > YUYV_MAX_PIXELS;
    let (preferred, other) = if high_res {
        (PixelFormat::Mjpeg, PixelFormat::Yuyv)
    } else {
        (PixelFormat::Yuyv, PixelFormat::Mjpeg)
    };
    match (at_size(preferred), at_size(other)) {
        (Some(p), Some(o)) if p.fps < fps && o.fps > p.fps => Some(o),
        (Some(p), _) => Some(p),
        (None, o) => o,
    }
}

/// Resolve `v4l2:INDEX` / `v4l2:NAME` against the devices found (`(index, name)` pairs, the
/// index being N of `/dev/videoN`). A name matches case-insensitively as a substring; the
/// first match wins.
pub fn find_device(devices: &[(u32, String)], want: &V4l2Device) -> anyhow::Result<u32> {
    let known = || {
        if devices.is_empty() {
            "no cameras found".to_owned()
        } else {
            let names: Vec<String> = devices.iter().map(|(i, n)| format!("{i}: {n}")).collect();
            format!("cameras: {}", names.join(", "))
        }
    };
    match want {
        V4l2Device::Index(i) => {
            if devices.iter().any(|(d, _)| d == i) {
                Ok(*i)
            } else {
                anyhow::bail!("v4l2:{i}: no such camera ({})", known())
            }
        }
        V4l2Device::Name(name) => {
            let needle = name.to_lowercase();
            devices
                .iter()
                .find(|(_, n)| n.to_lowercase().contains(&needle))
                .map(|(i, _)| *i)
                .ok_or_else(|| anyhow::anyhow!("v4l2:{name}: no camera name matches ({})", known()))
        }
    }
}

/// `--list-cameras` lines for one device's modes: one line per format and size with its
/// rates, largest size first, unsupported formats marked.
pub fn describe_modes(modes: &[Mode]) -> Vec<String> {
    // Keyed by format, then size from the largest down.
    type Key = (PixelFormat, std::cmp::Reverse<(u32, u32)>);
    let mut grouped: BTreeMap<Key, Vec<u32>> = BTreeMap::new();
    for m in modes {
        grouped
            .entry((m.format, std::cmp::Reverse((m.width, m.height))))
            .or_default()
            .push(m.fps);
    }
    grouped
        .into_iter()
        .map(|((format, std::cmp::Reverse((w, h))), mut rates)| {
            rates.sort_unstable_by(|a, b| b.cmp(a));
            rates.dedup();
            let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
            let note = if format.supported() {
                ""
            } else {
                " (not supported)"
            };
            format!("{format} {w}x{h} @ {} fps{note}", rates.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use PixelFormat::*;

    fn m(format: PixelFormat, width: u32, height: u32, fps: u32) -> Mode {
        Mode {
            format,
            width,
            height,
            fps,
        }
    }

    /// A typical USB 2 webcam: YUYV full rate only at small sizes, MJPEG everywhere.
    fn webcam() -> Vec<Mode> {
        vec![
            m(Yuyv, 640, 480, 30),
            m(Yuyv, 640, 480, 15),
            m(Yuyv, 320, 240, 30),
            m(Yuyv, 1280, 720, 10),
            m(Yuyv, 1280, 720, 5),
            m(Yuyv, 1920, 1080, 5),
            m(Mjpeg, 640, 480, 30),
            m(Mjpeg, 320, 240, 30),
            m(Mjpeg, 1280, 720, 30),
            m(Mjpeg, 1280, 720, 60),
            m(Mjpeg, 1920, 1080, 30),
            m(Nv12, 1280, 720, 30),
        ]
    }

    #[test]
    fn high_resolutions_take_mjpeg() {
        assert_eq!(
            choose_mode(&webcam(), 1280, 720, 30),
            Some(m(Mjpeg, 1280, 720, 30))
        );
        assert_eq!(
            choose_mode(&webcam(), 1920, 1080, 30),
            Some(m(Mjpeg, 1920, 1080, 30))
        );
        // The lowest rate at or above the request.
        assert_eq!(
            choose_mode(&webcam(), 1280, 720, 50),
            Some(m(Mjpeg, 1280, 720, 60))
        );
    }

    #[test]
    fn small_sizes_take_yuyv_when_it_keeps_up() {
        assert_eq!(
            choose_mode(&webcam(), 640, 480, 30),
            Some(m(Yuyv, 640, 480, 30))
        );
        assert_eq!(
            choose_mode(&webcam(), 640, 480, 15),
            Some(m(Yuyv, 640, 480, 15))
        );
        assert_eq!(
            choose_mode(&webcam(), 320, 240, 25),
            Some(m(Yuyv, 320, 240, 30))
        );
    }

    #[test]
    fn small_sizes_switch_to_mjpeg_when_yuyv_is_too_slow() {
        let modes = vec![
            m(Yuyv, 640, 480, 15),
            m(Yuyv, 640, 480, 10),
            m(Mjpeg, 640, 480, 30),
        ];
        assert_eq!(
            choose_mode(&modes, 640, 480, 30),
            Some(m(Mjpeg, 640, 480, 30))
        );
        // ...but not when MJPEG is no faster.
        let modes = vec![m(Yuyv, 640, 480, 15), m(Mjpeg, 640, 480, 15)];
        assert_eq!(
            choose_mode(&modes, 640, 480, 30),
            Some(m(Yuyv, 640, 480, 15))
        );
    }

    #[test]
    fn high_resolutions_fall_back_to_yuyv_only_when_it_is_faster() {
        let modes = vec![m(Yuyv, 1280, 720, 30), m(Mjpeg, 1280, 720, 15)];
        assert_eq!(
            choose_mode(&modes, 1280, 720, 30),
            Some(m(Yuyv, 1280, 720, 30))
        );
        let modes = vec![m(Yuyv, 1280, 720, 10)];
        assert_eq!(
            choose_mode(&modes, 1280, 720, 30),
            Some(m(Yuyv, 1280, 720, 10))
        );
    }

    #[test]
    fn the_nearest_size_wins_when_the_request_is_not_offered() {
        // 800x600 is nearer 640x480 (distance 280) than 1280x720 (600).
        assert_eq!(
            choose_mode(&webcam(), 800, 600, 30),
            Some(m(Yuyv, 640, 480, 30))
        );
        assert_eq!(
            choose_mode(&webcam(), 1280, 800, 30),
            Some(m(Mjpeg, 1280, 720, 30))
        );
        // Equally near: the larger size.
        let modes = vec![m(Yuyv, 100, 100, 30), m(Yuyv, 300, 300, 30)];
        assert_eq!(
            choose_mode(&modes, 200, 200, 30),
            Some(m(Yuyv, 300, 300, 30))
        );
    }

    #[test]
    fn cameras_without_mjpeg_or_yuyv_have_no_mode() {
        assert_eq!(choose_mode(&[], 640, 480, 30), None);
        assert_eq!(choose_mode(&[m(Nv12, 640, 480, 30)], 640, 480, 30), None);
        // Nonsense entries from a driver are ignored.
        assert_eq!(
            choose_mode(&[m(Yuyv, 0, 480, 30), m(Mjpeg, 640, 480, 0)], 640, 480, 30),
            None
        );
    }

    #[test]
    fn devices_are_found_by_index_or_name() {
        let devices = vec![
            (0, "Integrated Camera: Integrated C".to_owned()),
            (2, "HD Pro Webcam C920".to_owned()),
        ];
        assert_eq!(find_device(&devices, &V4l2Device::Index(2)).unwrap(), 2);
        assert_eq!(
            find_device(&devices, &V4l2Device::Name("c920".into())).unwrap(),
            2
        );
        assert_eq!(
            find_device(&devices, &V4l2Device::Name("CAMERA".into())).unwrap(),
            0
        );
        let err = find_device(&devices, &V4l2Device::Index(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such camera") && err.contains("2: HD Pro"),
            "{err}"
        );
        let err = find_device(&devices, &V4l2Device::Name("brio".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("v4l2:brio") && err.contains("no camera name"),
            "{err}"
        );
        let err = find_device(&[], &V4l2Device::Index(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no cameras found"), "{err}");
    }

    #[test]
    fn modes_are_listed_grouped_by_format_and_size() {
        let lines = describe_modes(&webcam());
        assert_eq!(lines[0], "MJPEG 1920x1080 @ 30 fps");
        assert_eq!(lines[1], "MJPEG 1280x720 @ 60, 30 fps");
        assert!(lines.contains(&"YUYV 640x480 @ 30, 15 fps".to_owned()));
        assert!(lines.contains(&"NV12 1280x720 @ 30 fps (not supported)".to_owned()));
        assert_eq!(lines.len(), 9);
    }
}
