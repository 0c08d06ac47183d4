//! VP8 encoding and decoding with the system's libvpx, through a small C shim of our own
//! (`shim.c`, compiled by `build.rs` with the `vp8` feature).
//!
//! Why a shim rather than Rust mirrors of libvpx's structs: their layout is versioned with
//! the library's ABI, and a Rust copy that drifts from the installed headers corrupts memory
//! silently. The shim keeps every libvpx struct on the C side behind an opaque handle and
//! exposes plain functions of ints, pointers and lengths.
//!
//! The encoder is set up for live video like the H.264 one: one pass, no lag, CBR, no dropped
//! frames, error resilient, keyframes on request (with only very rare automatic ones). Each
//! call yields one compressed VP8 frame. The decoder exists so tests (here and in other
//! crates) can prove the frames really decode.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use crate::h264::encoder::EncodedFrame;
use crate::image::I420Frame;

/// Largest width or height a VP8 frame header can carry (14 bits).
const MAX_DIM: u32 = 16383;

/// The time base of the timestamps handed to libvpx: the RTP video clock, so a frame rate
/// never needs a new time base.
const CLOCK_HZ: u64 = 90_000;

/// Room for the shim's error messages (it truncates, always NUL-terminated).
const ERR_LEN: usize = 256;

/// What the VP8 encoder is asked to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp8Settings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
}

/// The C shim's functions (see `shim.c` for what each does).
mod ffi {
    use std::ffi::{c_char, c_int};
    use std::marker::{PhantomData, PhantomPinned};

    /// `sl_vp8_enc`: opaque, only ever behind a pointer.
    #[repr(C)]
    pub struct Enc {
        _data: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `sl_vp8_dec`: opaque, only ever behind a pointer.
    #[repr(C)]
    pub struct Dec {
        _data: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    extern "C" {
        pub fn sl_vp8_enc_new(
            width: c_int,
            height: c_int,
            fps: c_int,
            bitrate_kbps: c_int,
            err: *mut c_char,
            errlen: c_int,
        ) -> *mut Enc;
        pub fn sl_vp8_enc_error(enc: *const Enc) -> *const c_char;
        pub fn sl_vp8_enc_set_bitrate(enc: *mut Enc, kbps: c_int) -> c_int;
        #[allow(clippy::too_many_arguments)]
        pub fn sl_vp8_enc_encode(
            enc: *mut Enc,
            y: *const u8,
            u: *const u8,
            v: *const u8,
            y_stride: c_int,
            uv_stride: c_int,
            pts: i64,
            duration: i64,
            force_keyframe: c_int,
            out: *mut *const u8,
            out_len: *mut usize,
            is_keyframe: *mut c_int,
        ) -> c_int;
        pub fn sl_vp8_enc_free(enc: *mut Enc);

        pub fn sl_vp8_dec_new(err: *mut c_char, errlen: c_int) -> *mut Dec;
        pub fn sl_vp8_dec_error(dec: *const Dec) -> *const c_char;
        pub fn sl_vp8_dec_decode(
            dec: *mut Dec,
            data: *const u8,
            len: usize,
            width: *mut c_int,
            height: *mut c_int,
        ) -> c_int;
        pub fn sl_vp8_dec_copy(dec: *mut Dec, y: *mut u8, u: *mut u8, v: *mut u8) -> c_int;
        pub fn sl_vp8_dec_free(dec: *mut Dec);
    }
}

/// The message the shim wrote into `buf` (zero-filled before the call).
fn message(buf: &[u8]) -> String {
    match CStr::from_bytes_until_nul(buf) {
        Ok(s) if !s.is_empty() => s.to_string_lossy().into_owned(),
        _ => "unknown error".to_owned(),
    }
}

/// Copy a message the shim owns.
///
/// # Safety
/// `ptr` is null or a NUL-terminated string that lives across the call.
unsafe fn owned_message(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: per the function's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    if s.is_empty() {
        "unknown error".to_owned()
    } else {
        s.to_string_lossy().into_owned()
    }
}

fn check_size(width: u32, height: u32) -> anyhow::Result<()> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        anyhow::bail!("vp8 encoder: {width}x{height} must be even and non-zero");
    }
    if width > MAX_DIM || height > MAX_DIM {
        anyhow::bail!("vp8 encoder: {width}x{height} is larger than VP8's {MAX_DIM}x{MAX_DIM}");
    }
    Ok(())
}

fn check_bitrate(bitrate: u32) -> anyhow::Result<()> {
    if !(10_000..=100_000_000).contains(&bitrate) {
        anyhow::bail!("vp8 encoder: bitrate {bitrate} bit/s is outside 10k..100M");
    }
    Ok(())
}

/// libvpx takes kilobits per second.
fn kbps(bitrate: u32) -> c_int {
    // At most 100_000 after check_bitrate: fits.
    bitrate.div_ceil(1000) as c_int
}

/// The publisher's VP8 encoder: I420 frames in, one compressed VP8 frame out per call.
pub struct Vp8Encoder {
    raw: NonNull<ffi::Enc>,
    settings: Vp8Settings,
    /// Frames handed to libvpx so far; the next frame's timestamp is derived from it, so
    /// timestamps never drift from whole-frame rounding.
    frames: u64,
    /// A keyframe was asked for and not produced yet.
    keyframe_wanted: bool,
}

// SAFETY: the handle is owned exclusively (no aliases, all use through &mut self) and libvpx
// encoder contexts carry no thread affinity, so moving one to another thread is sound.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    pub fn new(settings: Vp8Settings) -> anyhow::Result<Self> {
        let Vp8Settings {
            width,
            height,
            fps,
            bitrate,
        } = settings;
        check_size(width, height)?;
        if !(1..=240).contains(&fps) {
            anyhow::bail!("vp8 encoder: fps {fps} is outside 1..=240");
        }
        check_bitrate(bitrate)?;
        let mut err = [0u8; ERR_LEN];
        // SAFETY: plain integers; `err` is writable for ERR_LEN bytes during the call.
        let raw = unsafe {
            ffi::sl_vp8_enc_new(
                width as c_int,
                height as c_int,
                fps as c_int,
                kbps(bitrate),
                err.as_mut_ptr().cast::<c_char>(),
                ERR_LEN as c_int,
            )
        };
        let raw = NonNull::new(raw)
            .ok_or_else(|| anyhow::anyhow!("creating the VP8 encoder: {}", message(&err)))?;
        Ok(Vp8Encoder {
            raw,
            settings,
            frames: 0,
            keyframe_wanted: false,
        })
    }

    pub fn settings(&self) -> &Vp8Settings {
        &self.settings
    }

    /// Change the target bitrate while encoding, without a new encoder or a keyframe:
    /// libvpx's `vpx_codec_enc_config_set` with only the target changed; its rate control
    /// re-plans from the next frame.
    pub fn set_bitrate(&mut self, bitrate: u32) -> anyhow::Result<()> {
        check_bitrate(bitrate)?;
        // SAFETY: `raw` is a live encoder owned by self.
        let rc = unsafe { ffi::sl_vp8_enc_set_bitrate(self.raw.as_ptr(), kbps(bitrate)) };
        if rc != 0 {
            anyhow::bail!("vp8 encoder: {}", self.last_error());
        }
        self.settings.bitrate = bitrate;
        Ok(())
    }

    /// Make the next encoded frame a keyframe (on PLI/FIR or a new viewer).
    pub fn force_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }

    /// Encode one frame. `Ok(None)` when libvpx produced nothing to send (it is set never to
    /// drop frames, so this should not happen; a pending keyframe request is kept then).
    pub fn encode(&mut self, frame: &I420Frame) -> anyhow::Result<Option<EncodedFrame>> {
        let (w, h) = (self.settings.width, self.settings.height);
        if (frame.width, frame.height) != (w, h) {
            anyhow::bail!(
                "vp8 encoder: frame is {}x{}, encoder is {w}x{h}",
                frame.width,
                frame.height
            );
        }
        // libvpx reads through raw pointers: the planes must really be this big.
        let (wu, hu) = (w as usize, h as usize);
        let chroma = (wu / 2) * (hu / 2);
        if frame.y.len() < wu * hu || frame.u.len() < chroma || frame.v.len() < chroma {
            anyhow::bail!("vp8 encoder: frame planes are shorter than {w}x{h} I420");
        }
        let fps = u64::from(self.settings.fps);
        let pts = self.frames * CLOCK_HZ / fps;
        let next = (self.frames + 1) * CLOCK_HZ / fps;
        let mut out: *const u8 = std::ptr::null();
        let mut out_len = 0usize;
        let mut is_key: c_int = 0;
        // SAFETY: `raw` is live; the planes are at least as long as the strides and the
        // encoder's size demand (checked above) and outlive the call, which only reads them;
        // the out-pointers point to locals.
        let rc = unsafe {
            ffi::sl_vp8_enc_encode(
                self.raw.as_ptr(),
                frame.y.as_ptr(),
                frame.u.as_ptr(),
                frame.v.as_ptr(),
                w as c_int,
                (w / 2) as c_int,
                i64::try_from(pts)?,
                i64::try_from(next - pts)?,
                c_int::from(self.keyframe_wanted),
                &mut out,
                &mut out_len,
                &mut is_key,
            )
        };
        if rc != 0 {
            anyhow::bail!("vp8 encoder: {}", self.last_error());
        }
        self.frames += 1;
        if out.is_null() || out_len == 0 {
            return Ok(None);
        }
        // SAFETY: on success the shim's buffer holds `out_len` bytes and stays untouched
        // until the next call on this encoder, which cannot happen while this borrow lives.
        let data = unsafe { std::slice::from_raw_parts(out, out_len) }.to_vec();
        self.keyframe_wanted = false;
        Ok(Some(EncodedFrame {
            data: data.into(),
            keyframe: is_key != 0,
        }))
    }

    fn last_error(&self) -> String {
        // SAFETY: `raw` is live; the message lives in it until the next call.
        unsafe { owned_message(ffi::sl_vp8_enc_error(self.raw.as_ptr())) }
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from sl_vp8_enc_new and is freed exactly once, here.
        unsafe { ffi::sl_vp8_enc_free(self.raw.as_ptr()) }
    }
}

/// A VP8 decoder, for tests and checks: compressed frames in, I420 pictures with tight
/// strides out. Bad input is an error, never a crash; after one, decoding resumes cleanly at
/// the next keyframe.
pub struct Vp8Decoder {
    raw: NonNull<ffi::Dec>,
}

// SAFETY: as for the encoder: exclusively owned, used through &mut self, no thread affinity.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    pub fn new() -> anyhow::Result<Self> {
        let mut err = [0u8; ERR_LEN];
        // SAFETY: `err` is writable for ERR_LEN bytes during the call.
        let raw =
            unsafe { ffi::sl_vp8_dec_new(err.as_mut_ptr().cast::<c_char>(), ERR_LEN as c_int) };
        let raw = NonNull::new(raw)
            .ok_or_else(|| anyhow::anyhow!("creating the VP8 decoder: {}", message(&err)))?;
        Ok(Vp8Decoder { raw })
    }

    /// Decode one compressed frame. `Ok(None)` when it carries no picture to show.
    pub fn decode(&mut self, data: &[u8]) -> anyhow::Result<Option<I420Frame>> {
        if data.is_empty() {
            anyhow::bail!("vp8 decoder: empty frame");
        }
        let (mut w, mut h): (c_int, c_int) = (0, 0);
        // SAFETY: `raw` is live; `data` is readable for its length during the call; the
        // out-pointers point to locals.
        let rc = unsafe {
            ffi::sl_vp8_dec_decode(self.raw.as_ptr(), data.as_ptr(), data.len(), &mut w, &mut h)
        };
        match rc {
            0 => return Ok(None),
            1 => {}
            _ => anyhow::bail!("vp8 decoder: {}", self.last_error()),
        }
        let (width, height) = (u32::try_from(w)?, u32::try_from(h)?);
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            anyhow::bail!("vp8 decoder: {width}x{height} picture is not even-sized I420");
        }
        let (wu, hu) = (width as usize, height as usize);
        let chroma = (wu / 2) * (hu / 2);
        let mut frame = I420Frame {
            width,
            height,
            y: vec![0; wu * hu],
            u: vec![0; chroma],
            v: vec![0; chroma],
        };
        // SAFETY: the decode above succeeded with this size, so the shim holds a picture of
        // it; the planes are exactly the tight sizes the shim writes (even size: (w+1)/2 is
        // w/2).
        let rc = unsafe {
            ffi::sl_vp8_dec_copy(
                self.raw.as_ptr(),
                frame.y.as_mut_ptr(),
                frame.u.as_mut_ptr(),
                frame.v.as_mut_ptr(),
            )
        };
        if rc != 0 {
            anyhow::bail!("vp8 decoder: copying the picture failed");
        }
        Ok(Some(frame))
    }

    fn last_error(&self) -> String {
        // SAFETY: `raw` is live; the message lives in it until the next call.
        unsafe { owned_message(ffi::sl_vp8_dec_error(self.raw.as_ptr())) }
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from sl_vp8_dec_new and is freed exactly once, here.
        unsafe { ffi::sl_vp8_dec_free(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests;
