//! The headless viewer's media path on its own, against a plain str0m sender (ice-lite, as
//! the SFU is) over loopback UDP: no server, no publisher. If this fails, the viewer is
//! wrong; if it passes and an end-to-end test fails, look at the other side.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use sightline_tests::decode::FrameDecoder;
use sightline_tests::peer::{PeerEvent, ViewerPeer, H264_PROFILE_LEVEL_ID};
use sightline_tests::synthetic::SyntheticEncoder;
use str0m::change::SdpOffer;
use str0m::media::{MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

struct Sender {
    rtc: Rtc,
    socket: UdpSocket,
    mid: Option<Mid>,
    connected: bool,
    keyframe_requests: u32,
    next_timeout: Instant,
}

impl Sender {
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("sender output") {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(_) => {}
            }
        }
    }
}

#[test]
fn the_viewer_peer_receives_decodes_and_requests_keyframes() {
    let viewer_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    viewer_socket.set_nonblocking(true).unwrap();
    let sender_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender_socket.set_nonblocking(true).unwrap();

    let (mut viewer, offer) =
        ViewerPeer::new(viewer_socket.local_addr().unwrap(), Instant::now()).unwrap();
    assert!(offer.contains("H264/90000"), "{offer}");
    assert!(offer.contains("profile-level-id=42e01f"), "{offer}");
    assert!(offer.contains("packetization-mode=1"), "{offer}");
    assert!(
        !offer.contains("VP8") && !offer.contains("opus"),
        "H.264 only: {offer}"
    );
    assert!(offer.contains("a=recvonly"), "{offer}");

    let mut config = RtcConfig::new().set_ice_lite(true).clear_codecs();
    config
        .codec_config()
        .add_h264(96.into(), Some(97.into()), true, H264_PROFILE_LEVEL_ID);
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(sender_socket.local_addr().unwrap(), "udp").unwrap())
        .unwrap();
    let answer = rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer).unwrap())
        .unwrap();
    viewer.accept_answer(&answer.to_sdp_string()).unwrap();
    let mut sender = Sender {
        rtc,
        socket: sender_socket,
        mid: None,
        connected: false,
        keyframe_requests: 0,
        next_timeout: Instant::now(),
    };

    let mut encoder = SyntheticEncoder::new(320, 240, "cam-peer").unwrap();
    let mut decoder = FrameDecoder::new().unwrap();
    let (mut out, mut events) = (Vec::new(), Vec::new());
    let (mut viewer_connected, mut decoded, mut asked) = (false, Vec::new(), false);
    let start = Instant::now();
    let mut next_frame_at = Instant::now();
    let mut buf = vec![0u8; 2048];
    while start.elapsed() < Duration::from_secs(15) && decoded.len() < 60 {
        let viewer_timeout = viewer.drain(&mut out, &mut events);
        for d in out.drain(..) {
            let _ = viewer_socket.send_to(&d.contents, d.destination);
        }
        for e in events.drain(..) {
            match e {
                PeerEvent::Connected => viewer_connected = true,
                PeerEvent::Frame { data, .. } => {
                    if let Some(f) = decoder.decode(&data).expect("decodes") {
                        decoded.push(f);
                    }
                }
                PeerEvent::Lost(r) => panic!("viewer peer lost: {r}"),
                PeerEvent::NacksSent(_) => {}
                // No control channel was asked for.
                PeerEvent::ControlOpen
                | PeerEvent::ControlMessage { .. }
                | PeerEvent::ControlClosed => panic!("unexpected control event"),
            }
        }
        sender.drain();

        let now = Instant::now();
        if let (true, Some(mid)) = (sender.connected, sender.mid) {
            if now >= next_frame_at {
                let f = encoder.encode_next().unwrap();
                let writer = sender.rtc.writer(mid).unwrap();
                let pt = writer.payload_params().next().unwrap().pt();
                let t = MediaTime::from_90khz(f.stamp.frame as u64 * 3000);
                writer.write(pt, now, t, f.data).unwrap();
                next_frame_at = now + Duration::from_millis(33);
                continue;
            }
        }
        if decoded.len() == 30 && !asked {
            assert!(viewer.request_keyframe(), "PLI is negotiated");
            asked = true;
            continue;
        }
        let mut idle = true;
        if let Ok((n, source)) = viewer_socket.recv_from(&mut buf) {
            viewer.handle_datagram(Instant::now(), source, &buf[..n]);
            idle = false;
        }
        if let Ok((n, source)) = sender.socket.recv_from(&mut buf) {
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: sender.socket.local_addr().unwrap(),
                    contents: buf[..n].try_into().unwrap(),
                },
            );
            sender.rtc.handle_input(input).unwrap();
            idle = false;
        }
        let now = Instant::now();
        if now >= viewer_timeout {
            viewer.handle_timeout(now);
            idle = false;
        }
        if now >= sender.next_timeout {
            sender.rtc.handle_input(Input::Timeout(now)).unwrap();
            idle = false;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    assert!(viewer_connected, "ICE + DTLS came up");
    assert_eq!(
        decoded.len(),
        60,
        "decoded {} frames in 15 s",
        decoded.len()
    );
    assert!(decoded[0].keyframe);
    let tag = sightline_publisher::barcode::tag_for("cam-peer");
    for (i, f) in decoded.iter().enumerate() {
        let stamp = f
            .stamp
            .unwrap_or_else(|| panic!("frame {i} has no barcode"));
        assert_eq!(stamp.frame, i as u32, "frames arrive whole and in order");
        assert_eq!(stamp.tag, tag);
        assert_eq!((f.width, f.height), (320, 240));
    }
    assert!(
        sender.keyframe_requests >= 1,
        "the sender saw the viewer's PLI"
    );
}
