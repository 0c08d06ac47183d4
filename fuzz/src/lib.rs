//! Fuzz targets for every parser of outside input, as functions of the raw bytes: each must
//! refuse bad input with an error and never panic, hang or allocate without bound.
//!
//! | target | what it feeds |
//! | --- | --- |
//! | `signaling_json` | the signaling messages of clients and of the server |
//! | `control_message` | control messages (data channel, REST door) and the relay's reading of them |
//! | `sdp_offer` | offers, ICE restarts and trickled candidates, at the SFU core's boundary |
//! | `mjpeg` | MJPEG framing: multipart streams, length-prefixed files, the JPEG splitter, JPEG decoding |
//! | `h264` | Annex-B splitting, NAL types, SPS parsing, slice types, RBSP bit reading |
//! | `urls_and_tokens` | source URLs, RTSP targets, content types, auth tokens, durations, bitrates |
//!
//! `tests/corpora.rs` replays the corpora in `corpus/TARGET/` and runs a short mutation pass
//! from them; `scripts/fuzz` runs them coverage-guided (`libfuzzer/`, cargo-fuzz).

use std::cell::RefCell;
use std::str::FromStr;

use sightline_protocol::control;
use sightline_protocol::wire::{parse_client_message, parse_server_message};
use sightline_publisher::h264::{nal, profile};
use sightline_publisher::mjpeg::{length_prefixed, multipart, split_file, splitter, FileLayout};
use sightline_publisher::source::rtsp::target::Target as RtspTarget;
use sightline_publisher::source::url::{redact, SourceUrl};
use sightline_sfu::fuzzing::OfferTarget;
use sightline_signaling::auth::token::{parse_ttl, TokenKeys};

/// A target: takes any bytes, refuses what it must, never panics.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("signaling_json", signaling_json),
    ("control_message", control_message),
    ("sdp_offer", sdp_offer),
    ("mjpeg", mjpeg),
    ("h264", h264),
    ("urls_and_tokens", urls_and_tokens),
];

/// Text parsers see what a socket would hand them: bytes that may not be UTF-8.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

pub fn signaling_json(data: &[u8]) {
    let text = text(data);
    if let Ok(msg) = parse_client_message(&text) {
        // What we accept, we write back the same way.
        let again = parse_client_message(&msg.to_json());
        assert_eq!(again.as_ref().ok(), Some(&msg), "{text:?}");
    }
    if let Ok(msg) = parse_server_message(&text) {
        assert!(parse_server_message(&msg.to_json()).is_ok(), "{text:?}");
    }
}

pub fn control_message(data: &[u8]) {
    let text = text(data);
    if let Ok(msg) = control::parse_message(&text) {
        assert!(control::parse_message(&msg.to_json()).is_ok(), "{text:?}");
    }
    let _ = control::parse_command(&text);
    let _ = control::peek_request_id(data);
    for binary in [false, true] {
        let _ = control::relay::parse_viewer_command(data, binary);
    }
    let _ = control::parse_bitrate(&text);
}

thread_local! {
    static OFFERS: RefCell<OfferTarget> = RefCell::new(OfferTarget::default());
}

/// An SDP, then optionally a NUL and a candidate line.
pub fn sdp_offer(data: &[u8]) {
    let text = text(data);
    let (sdp, candidate) = text.split_once('\0').unwrap_or((&text, ""));
    OFFERS.with(|t| t.borrow_mut().run(sdp, candidate));
}

/// The first byte picks the chunk size the streaming parsers are fed in, as a socket would
/// split the stream.
pub fn mjpeg(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let boundary = if first & 1 == 0 { Some("frame") } else { None };
    let mut parts = multipart::MultipartParser::new(boundary, 64 * 1024);
    let mut jpegs = splitter::JpegSplitter::new(64 * 1024);
    for piece in stream.chunks(chunk) {
        parts.push(piece);
        while parts.next_event().is_some() {}
        jpegs.push(piece);
        while jpegs.next().is_some() {}
    }
    let _ = jpegs.finish();
    let _ = multipart::boundary_from_content_type(&text(stream));
    let _ = length_prefixed::frames(stream).count();
    let _ = split_file(stream, FileLayout::detect(stream));
    let _ = sightline_publisher::image::jpeg::decode_jpeg(stream);
}

pub fn h264(data: &[u8]) {
    for unit in nal::split_annex_b(data) {
        let _ = nal::nal_type(unit);
        if let Ok(sps) = profile::parse_sps(unit) {
            let _ = (
                sps.profile_name(),
                sps.level(),
                sps.verdict(),
                sps.summary(),
            );
        }
        let _ = profile::slice_type(unit);
    }
}

pub fn urls_and_tokens(data: &[u8]) {
    let text = text(data);
    if let Ok(url) = SourceUrl::from_str(&text) {
        let _ = url.kind();
    }
    let _ = RtspTarget::parse(&text);
    let _ = redact(&text);
    let keys = TokenKeys::new(b"a fuzzing secret of at least 32 bytes!").expect("a long secret");
    let _ = keys.verify(text.trim());
    let _ = parse_ttl(&text);
}
