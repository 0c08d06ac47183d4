//! The core without sockets: str0m peers built here, datagrams handed between them and
//! the core by hand, on a fake clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive, TcpType};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::{Core, CoreConfig, RateLimit};
use crate::{PeerId, SfuEvent, VideoCodec, ViewerAccess};

const SFU: &str = "10.0.0.1:5000";

/// A remote peer (publisher or viewer) on its own made-up address.
struct Remote {
    rtc: Rtc,
    addr: SocketAddr,
    /// How it reaches the SFU: UDP, or only an active ICE-TCP candidate.
    proto: Protocol,
    mid: Option<Mid>,
    /// A publisher's second video m-line, for VP8.
    vp8_mid: Option<Mid>,
    control: Option<ChannelId>,
    events: Vec<Event>,
    /// The SFU's answer to its offer.
    answer: String,
}

/// The codecs a remote offers.
#[derive(Clone, Copy, PartialEq)]
enum Offers {
    H264,
    Vp8,
    Both,
}

impl Remote {
    fn new(port: u16, now: Instant, proto: Protocol, offers: Offers) -> Remote {
        let addr = SocketAddr::from(([10, 0, 0, 2], port));
        // Offered as Chromium does, under a number of its own.
        let mut config = Rtc::builder()
            .clear_codecs()
            .set_extension(9, Extension::PlayoutDelay);
        if offers != Offers::Vp8 {
            config
                .codec_config()
                .add_h264(102.into(), Some(103.into()), true, 0x42e01f);
        }
        if offers != Offers::H264 {
            config.codec_config().enable_vp8(true);
        }
        let mut rtc = config.build(now);
        let candidate = match proto {
            Protocol::Udp => Candidate::host(addr, "udp"),
            _ => Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Active)
                .build(),
        };
        rtc.add_local_candidate(candidate.unwrap());
        Remote {
            rtc,
            addr,
            proto,
            mid: None,
            vp8_mid: None,
            control: None,
            events: Vec::new(),
            answer: String::new(),
        }
    }

    /// Poll the remote's `Rtc` until it waits: events are kept, datagrams go to `core`.
    /// Whether anything was sent.
    fn drain_to(&mut self, core: &mut Core, now: Instant) -> bool {
        let mut sent = false;
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return sent,
                Output::Transmit(t) if t.proto == Protocol::Udp => {
                    sent = true;
                    core.handle_datagram(now, 0, t.source, &t.contents);
                }
                Output::Transmit(t) => {
                    sent = true;
                    core.handle_tcp_frame(now, t.destination, t.source, &t.contents);
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    /// Frames (`MediaData`) received so far, as (keyframe, bytes).
    fn frames(&self) -> Vec<(bool, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::MediaData(d) => Some((d.is_keyframe(), d.data.to_vec())),
                _ => None,
            })
            .collect()
    }

    fn channel_texts(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ChannelData(d) => Some(String::from_utf8_lossy(&d.data).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn connected(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Connected))
    }

    fn channel_open(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::ChannelOpen(..)))
    }
}

/// The core and its remotes on one fake clock.
struct Net {
    core: Core,
    now: Instant,
    remotes: Vec<Remote>,
    events: Vec<SfuEvent>,
}

impl Net {
    fn new() -> Net {
        Net::with_fan_out(1)
    }

    /// A core that shares each frame's viewers out to `threads` workers.
    fn with_fan_out(threads: usize) -> Net {
        let now = Instant::now();
        let core = Core::new(
            CoreConfig {
                local_addrs: vec![SFU.parse().unwrap()],
                public: None,
                tcp_addrs: vec![SFU.parse().unwrap()],
                keyframe_request_interval: Duration::from_millis(250),
                control_rate_limit: RateLimit::default(),
                fan_out_threads: threads,
            },
            now,
            1_700_000_000_000,
        );
        Net {
            core,
            now,
            remotes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Add a remote that offers video in `dir` (and a `control` channel if asked) for
    /// camera "cam"; returns its index and the SFU's id for it.
    fn join(&mut self, publish: bool, control: Option<ViewerAccess>) -> (usize, PeerId) {
        self.join_over(Protocol::Udp, publish, control)
    }

    fn join_over(
        &mut self,
        proto: Protocol,
        publish: bool,
        control: Option<ViewerAccess>,
    ) -> (usize, PeerId) {
        self.join_offering(proto, Offers::H264, publish, control)
    }

    /// As [`Self::join_over`], offering `offers`. A publisher offering both codecs has two
    /// video m-lines, the second for VP8 (as ours do).
    fn join_offering(
        &mut self,
        proto: Protocol,
        offers: Offers,
        publish: bool,
        control: Option<ViewerAccess>,
    ) -> (usize, PeerId) {
        let port = 6000 + self.remotes.len() as u16;
        let mut remote = Remote::new(port, self.now, proto, offers);
        let dir = if publish {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        let mut api = remote.rtc.sdp_api();
        remote.mid = Some(api.add_media(MediaKind::Video, dir, None, None, None));
        if publish && offers == Offers::Both {
            remote.vp8_mid = Some(api.add_media(MediaKind::Video, dir, None, None, None));
        }
        if control.is_some() {
            remote.control = Some(api.add_channel("control".into()));
        }
        let (offer, pending) = api.apply().unwrap();
        let offer = offer.to_sdp_string();
        let answer = if publish {
            self.core.publish(self.now, "cam", &offer)
        } else {
            let access = control.unwrap_or(ViewerAccess::ViewOnly);
            self.core.subscribe(self.now, "cam", &offer, access)
        }
        .unwrap();
        let sdp = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
        remote.rtc.sdp_api().accept_answer(pending, sdp).unwrap();
        remote.answer = answer.sdp;
        self.remotes.push(remote);
        (self.remotes.len() - 1, answer.peer)
    }

    /// Move datagrams both ways and time forward in `step`s until `until` has passed.
    fn run(&mut self, step: Duration, until: Duration) {
        let end = self.now + until;
        while self.now < end {
            self.exchange();
            self.now += step;
            if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                self.core.handle_timeout(self.now);
            }
            for r in &mut self.remotes {
                r.rtc.handle_input(Input::Timeout(self.now)).unwrap();
            }
        }
        self.exchange();
    }

    /// Deliver everything in flight, until nobody has anything more to send.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            // Core → remotes.
            let q = self.core.transmits();
            let udp = q
                .iter()
                .map(|(t, bytes)| (Protocol::Udp, t.source, t.destination, bytes.to_vec()));
            let tcp = q.tcp_items().iter().map(|t| {
                let bytes = q.bytes()[t.start..t.start + t.len].to_vec();
                (Protocol::Tcp, t.local, t.remote, bytes)
            });
            let mut out: Vec<_> = udp.chain(tcp).collect();
            self.core.transmits().clear();
            let from_workers = std::sync::Mutex::new(Vec::new());
            self.core.send_on_workers(|_, q| {
                let mut sent = from_workers.lock().unwrap();
                sent.extend(
                    q.iter()
                        .map(|(t, bytes)| (Protocol::Udp, t.source, t.destination, bytes.to_vec())),
                );
            });
            out.extend(from_workers.into_inner().unwrap());
            self.core.frames_sent(self.now);
            for (proto, source, destination, bytes) in out {
                moved = true;
                let Some(r) = self
                    .remotes
                    .iter_mut()
                    .find(|r| r.addr == destination && r.proto == proto)
                else {
                    continue;
                };
                let contents = DatagramRecv::try_from(&bytes[..]).unwrap();
                let input = Receive {
                    proto,
                    source,
                    destination,
                    contents,
                };
                r.rtc.handle_input(Input::Receive(self.now, input)).unwrap();
                // As a real peer's loop does: what the datagram changed (SRTP keys once
                // DTLS is done) takes effect before the next one is read.
                moved |= r.drain_to(&mut self.core, self.now);
            }
            // Remotes → core.
            for r in &mut self.remotes {
                moved |= r.drain_to(&mut self.core, self.now);
            }
            while let Some(e) = self.core.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Write one frame on the publisher's m-line.
    fn write_frame(&mut self, publisher: usize, n: u32, keyframe: bool) {
        let mid = self.remotes[publisher].mid.unwrap();
        self.write(publisher, mid, Codec::H264, n, frame(n, keyframe));
    }

    /// Write one VP8 frame on the publisher's VP8 m-line.
    fn write_vp8_frame(&mut self, publisher: usize, n: u32, keyframe: bool) {
        let mid = self.remotes[publisher].vp8_mid.unwrap();
        self.write(publisher, mid, Codec::Vp8, n, vp8_frame(n, keyframe));
    }

    fn write(&mut self, publisher: usize, mid: Mid, codec: Codec, n: u32, data: Vec<u8>) {
        let now = self.now;
        let r = &mut self.remotes[publisher];
        let writer = r.rtc.writer(mid).unwrap();
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt();
        writer
            .write(pt, now, MediaTime::from_90khz(u64::from(n) * 3000), data)
            .unwrap();
        self.exchange();
    }

    fn send_control(&mut self, from: usize, text: &str) {
        let r = &mut self.remotes[from];
        let mut channel = r.rtc.channel(r.control.unwrap()).unwrap();
        assert!(channel.write(false, text.as_bytes()).unwrap());
        self.run(Duration::from_millis(5), Duration::from_millis(50));
    }
}

/// A fake H.264 access unit (SPS, PPS, IDR for a keyframe; one non-IDR slice otherwise)
/// carrying `n` as hex digits, two RTP packets long.
fn frame(n: u32, keyframe: bool) -> Vec<u8> {
    let mut f = Vec::new();
    if keyframe {
        f.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xaa]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    } else {
        f.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    }
    f.extend_from_slice(format!("{n:08x}").as_bytes());
    f.extend((0..1500).map(|i| 0x10 + (i % 200) as u8));
    f
}

/// A fake VP8 frame carrying `n`: the frame tag's P bit (bit 0) is clear on keyframes.
fn vp8_frame(n: u32, keyframe: bool) -> Vec<u8> {
    let mut f = vec![if keyframe { 0x10 } else { 0x11 }, 0x02, 0x00];
    f.extend_from_slice(format!("{n:08x}").as_bytes());
    f.extend((0..1500).map(|i| 0x10 + (i % 200) as u8));
    f
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Connect a publisher and one viewer (with the given control access, if any).
fn live(control: Option<ViewerAccess>) -> (Net, usize, usize, PeerId, PeerId) {
    let mut net = Net::new();
    let (p, pid) = net.join(true, control.map(|_| ViewerAccess::Control));
    let (v, vid) = net.join(false, control);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    (net, p, v, pid, vid)
}

/// A viewer without H.264 is sent the publisher's VP8, an H.264 viewer beside it H.264; each
/// from its own codec's keyframe, and a VP8 PLI reaches the VP8 m-line.
#[test]
fn a_viewer_without_h264_gets_the_vp8_stream() {
    let mut net = Net::new();
    let (p, _) = net.join_offering(Protocol::Udp, Offers::Both, true, None);
    let (h, _) = net.join_offering(Protocol::Udp, Offers::Both, false, None);
    let (v, _) = net.join_offering(Protocol::Udp, Offers::Vp8, false, None);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    assert!(net.remotes.iter().all(Remote::connected));
    assert_eq!(net.core.members.viewers_of("cam", VideoCodec::Vp8), 1);
    assert_eq!(net.core.members.viewers_of("cam", VideoCodec::H264), 1);
    let plis = |net: &Net, mid| {
        net.remotes[p]
            .events
            .iter()
            .filter(|e| matches!(e, Event::KeyframeRequest(r) if r.mid == mid))
            .count()
    };
    assert!(
        plis(&net, net.remotes[p].vp8_mid.unwrap()) >= 1,
        "VP8 asked for"
    );
    assert!(
        plis(&net, net.remotes[p].mid.unwrap()) >= 1,
        "H.264 asked for"
    );
    net.write_vp8_frame(p, 1, false);
    net.write_vp8_frame(p, 2, true);
    net.write_frame(p, 3, true);
    net.write_vp8_frame(p, 4, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    let got = |r: &Remote| {
        r.events
            .iter()
            .filter_map(|e| match e {
                Event::MediaData(d) => {
                    Some((d.params.spec().codec, d.is_keyframe(), d.data.to_vec()))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let vp8 = got(&net.remotes[v]);
    assert_eq!(vp8.len(), 2, "from the VP8 keyframe on: {vp8:?}");
    assert!(vp8.iter().all(|(c, ..)| *c == Codec::Vp8));
    assert!(vp8[0].1 && contains(&vp8[0].2, b"00000002"));
    assert!(!vp8[1].1 && contains(&vp8[1].2, b"00000004"));
    let h264 = got(&net.remotes[h]);
    assert_eq!(h264.len(), 1, "{h264:?}");
    assert!(h264[0].0 == Codec::H264 && contains(&h264[0].2, b"00000003"));
}

/// An offer with no codec the SFU sends is refused with a reason a person can act on.
#[test]
fn a_viewer_with_neither_codec_is_told_why() {
    let mut net = Net::new();
    let mut config = Rtc::builder().clear_codecs();
    config.codec_config().enable_vp9(true);
    let mut rtc = config.build(net.now);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, _) = api.apply().unwrap();
    let err = net
        .core
        .subscribe(
            net.now,
            "cam",
            &offer.to_sdp_string(),
            ViewerAccess::ViewOnly,
        )
        .unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
}

/// An offer whose two video m-lines give payload type 102 different parameters (the first
/// with an unreadable `profile-level-id`), as a remote sees it: str0m panics on it (found by
/// fuzzing).
fn contradictory_offer(now: Instant, direction: Direction) -> String {
    let mut remote = Remote::new(6100, now, Protocol::Udp, Offers::H264);
    let mut api = remote.rtc.sdp_api();
    api.add_media(MediaKind::Video, direction, None, None, None);
    api.add_media(MediaKind::Video, direction, None, None, None);
    let (offer, _) = api.apply().unwrap();
    offer
        .to_sdp_string()
        .replacen("profile-level-id=42e01f", "profile-level-id=42e0!f", 1)
}

/// One bad offer costs its sender an `invalid_sdp`, and nobody else anything: the core
/// goes on forwarding to the viewer that watches, and takes the next offer.
#[test]
fn an_offer_str0m_panics_on_is_refused_and_the_core_goes_on() {
    let (mut net, p, v, ..) = live(None);
    // str0m panics on it as a publisher's offer (the publisher config has more H.264
    // payload types than a viewer's).
    let bad = contradictory_offer(net.now, Direction::RecvOnly);
    let err = net.core.publish(net.now, "cam2", &bad).unwrap_err();
    assert!(err.to_string().contains("contradicts itself"), "{err}");
    let (w, _) = net.join(false, None);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    net.write_frame(p, 1, true);
    net.run(Duration::from_millis(10), Duration::from_millis(300));
    for viewer in [v, w] {
        assert_eq!(net.remotes[viewer].frames().len(), 1, "viewer {viewer}");
    }
    assert_eq!(net.core.stats().publishers, 1);
}

/// The certificate is made once per core, not per join (see `server_certificate`): every
/// answer carries the same fingerprint, and the peers still connect.
#[test]
fn every_peer_presents_the_cores_one_certificate() {
    let (mut net, p, v, ..) = live(None);
    let (w, _) = net.join(false, None);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    let fingerprints: Vec<&str> = [p, v, w]
        .iter()
        .map(|&i| {
            let answer = &net.remotes[i].answer;
            answer
                .lines()
                .find_map(|l| l.strip_prefix("a=fingerprint:"))
                .unwrap_or_else(|| panic!("no fingerprint in {answer}"))
        })
        .collect();
    assert!(
        fingerprints.iter().all(|f| *f == fingerprints[0]),
        "{fingerprints:?}"
    );
    assert!([p, v, w].iter().all(|&i| net.remotes[i].connected()));
}

#[test]
fn offers_are_answered_and_both_peers_connect() {
    let (net, p, v, pid, vid) = live(None);
    assert!(net.remotes[p].connected() && net.remotes[v].connected());
    for peer in [pid, vid] {
        assert!(
            net.events.contains(&SfuEvent::PeerConnected { peer }),
            "{peer}: {:?}",
            net.events
        );
    }
    let stats = net.core.stats();
    assert_eq!((stats.peers, stats.publishers, stats.viewers), (2, 1, 1));
}

#[test]
fn a_connected_viewer_gets_frames_from_the_first_keyframe_on() {
    let (mut net, p, v, _, vid) = live(None);
    assert!(
        net.core.stats().keyframe_requests_sent >= 1,
        "a viewer waits"
    );
    net.write_frame(p, 1, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    assert!(
        net.remotes[v].frames().is_empty(),
        "a delta first goes nowhere"
    );
    net.write_frame(p, 2, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    net.write_frame(p, 3, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    let frames = net.remotes[v].frames();
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(frames[0].0 && contains(&frames[0].1, b"00000002"));
    assert!(!frames[1].0 && contains(&frames[1].1, b"00000003"));
    // Every frame asks for no minimum playout delay (browsers then show it once decoded).
    let delays: Vec<_> = net.remotes[v]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => Some((d.ext_vals.play_delay_min, d.ext_vals.play_delay_max)),
            _ => None,
        })
        .collect();
    let wanted = (
        Some(MediaTime::from_hundredths(0)),
        Some(MediaTime::from_hundredths(50)),
    );
    assert_eq!(delays, vec![wanted; 2]);
    let stats = net.core.stats();
    assert_eq!((stats.frames_received, stats.frames_forwarded), (3, 2));
    assert!(stats.packets_forwarded >= 4);
    assert_eq!(
        stats.forward_dwell.0.samples(),
        2,
        "one dwell sample per frame that left"
    );
    assert_eq!(stats.first_frame.0.samples(), 1, "one viewer's first frame");
    let cam = &stats.cameras["cam"];
    assert_eq!(cam.viewers, 1);
    assert_eq!((cam.frames_received, cam.keyframes_received), (3, 1));
    assert_eq!((cam.frames_forwarded, cam.keyframes_forwarded), (2, 1));
    assert!(cam.bytes_received >= 3 * 8, "{cam:?}");
    assert_eq!(cam.packets_sent, stats.packets_forwarded);
    assert!(cam.bytes_sent > cam.packets_sent * 12, "{cam:?}");
    assert!(cam.keyframe_requests_sent >= 1, "{cam:?}");

    // A viewer that leaves takes nothing it was sent out of its camera's totals.
    net.core.close_peer(vid);
    let after = net.core.stats();
    let cam_after = &after.cameras["cam"];
    assert_eq!(cam_after.viewers, 0);
    assert_eq!(
        (
            cam_after.packets_sent,
            cam_after.bytes_sent,
            cam_after.frames_forwarded
        ),
        (cam.packets_sent, cam.bytes_sent, cam.frames_forwarded)
    );
}

/// The frames one remote received: (keyframe, access unit), in order.
type Received = Vec<(bool, Vec<u8>)>;

/// Twelve viewers of one publisher's big frames (enough datagrams to share out), on a core
/// with `threads` workers: what each viewer received, and the core's counters.
fn twelve_viewers(threads: usize) -> (Vec<Received>, crate::SfuStats) {
    let mut net = Net::with_fan_out(threads);
    let (p, _) = net.join(true, None);
    let viewers: Vec<usize> = (0..12).map(|_| net.join(false, None).0).collect();
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    let mid = net.remotes[p].mid.unwrap();
    for n in 1..=6 {
        // About 25 packets: 12 viewers make enough datagrams to share out.
        let mut big = frame(n, n % 3 == 1);
        big.extend((0..30_000).map(|i| (i % 251) as u8));
        net.write(p, mid, Codec::H264, n, big);
        net.run(Duration::from_millis(10), Duration::from_millis(50));
    }
    let frames = viewers.iter().map(|&v| net.remotes[v].frames()).collect();
    (frames, net.core.stats())
}

#[test]
fn frames_shared_out_to_workers_reach_every_viewer_as_from_one_thread() {
    let (alone, alone_stats) = twelve_viewers(1);
    let (shared, stats) = twelve_viewers(3);
    assert_eq!(stats.media_threads, 3);
    assert_eq!(alone_stats.media_threads, 1);
    for frames in &shared {
        let numbers: Vec<bool> = (1..=6)
            .map(|n| {
                frames
                    .iter()
                    .any(|f| contains(&f.1, format!("{n:08}").as_bytes()))
            })
            .collect();
        assert_eq!(numbers, [true; 6], "every frame, in order: {frames:?}");
        assert!(frames[0].0 && frames.len() == 6);
    }
    assert_eq!(shared, alone, "the same frames as with no workers");
    assert_eq!(stats.frames_forwarded, 12 * 6);
    assert_eq!(stats.packets_forwarded, alone_stats.packets_forwarded);
    assert_eq!(stats.first_frame.0.samples(), 12);
    assert_eq!(stats.forward_dwell.0.samples(), 6);
    let cam = &stats.cameras["cam"];
    assert_eq!(cam.packets_sent, stats.packets_forwarded);
    assert_eq!(cam.frames_forwarded, 12 * 6);
}

/// The RTP times of the frames a remote received, in order.
fn frame_times(remote: &Remote) -> Vec<u64> {
    remote
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => Some(d.time.rebase(Frequency::NINETY_KHZ).numer()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_viewer_connecting_soon_after_a_keyframe_starts_at_once_from_the_frames_since() {
    let (mut net, p, v, _, _) = live(None);
    for (n, keyframe) in [(1, true), (2, false), (3, false)] {
        net.write_frame(p, n, keyframe);
        net.run(Duration::from_millis(10), Duration::from_millis(30));
    }
    let requests = net.core.stats().keyframe_requests_sent;

    let (late, _) = net.join(false, None);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    assert!(net.remotes[late].connected());
    let frames = net.remotes[late].frames();
    let sent: Vec<(bool, bool)> = frames
        .iter()
        .zip([b"00000001", b"00000002", b"00000003"])
        .map(|(f, n)| (f.0, contains(&f.1, n)))
        .collect();
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(sent, [(true, true), (false, true), (false, true)]);
    // Stamped one tick apart, ending at the newest frame's own time.
    let live_times = frame_times(&net.remotes[v]);
    let newest = live_times[2];
    assert_eq!(
        frame_times(&net.remotes[late]),
        [newest - 2, newest - 1, newest]
    );

    net.write_frame(p, 4, false);
    net.run(Duration::from_millis(10), Duration::from_millis(50));
    let frames = net.remotes[late].frames();
    assert_eq!(frames.len(), 4, "then live");
    assert!(contains(&frames[3].1, b"00000004"));
    assert_eq!(
        frame_times(&net.remotes[late])[3],
        frame_times(&net.remotes[v])[3]
    );
    let stats = net.core.stats();
    assert_eq!(
        stats.keyframe_requests_sent, requests,
        "the publisher is not asked"
    );
    assert_eq!(stats.gop_replays, 1);
    assert_eq!(stats.first_frame.0.samples(), 2);
    assert_eq!(stats.cameras["cam"].keyframes_forwarded, 2);
}

#[test]
fn a_viewer_command_reaches_the_publisher_tagged_with_the_viewer() {
    let (mut net, p, v, _, vid) = live(Some(ViewerAccess::Control));
    assert!(net.remotes[p].channel_open() && net.remotes[v].channel_open());
    let welcome = net.remotes[v].channel_texts();
    assert!(welcome[0].contains("\"welcome\""), "{welcome:?}");
    net.send_control(v, r#"{"v":1,"type":"get_status","request_id":"r1"}"#);
    let got = net.remotes[p].channel_texts();
    assert_eq!(got.len(), 1, "{got:?}");
    let msg: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(msg["type"], "get_status");
    assert_eq!(msg["from"], vid.to_string());
}

#[test]
fn a_closed_peer_is_announced_and_forgotten() {
    let (mut net, _, _, pid, vid) = live(None);
    net.core.close_peer(vid);
    net.exchange();
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, SfuEvent::PeerClosed { peer, .. } if *peer == vid)));
    let stats = net.core.stats();
    assert_eq!((stats.peers, stats.viewers), (1, 0));
    net.core.close_peer(pid);
    net.core.close_peer(PeerId(99));
    assert_eq!(net.core.stats().peers, 0);
}

#[test]
fn an_api_command_reaches_the_publisher_and_only_its_ticket_gets_the_reply() {
    let (mut net, p, v, pid, vid) = live(Some(ViewerAccess::Control));
    let before = net.remotes[v].channel_texts().len();
    let ticket = net.core.control(
        net.now,
        "cam",
        r#"{"v":1,"type":"get_status","request_id":"h1"}"#,
        ViewerAccess::ViewOnly,
        "alice",
    );
    assert!(![pid, vid].contains(&ticket), "a ticket is no peer's id");
    net.run(Duration::from_millis(5), Duration::from_millis(50));
    assert_eq!(net.core.poll_api_reply(), None, "relayed, not answered");
    let got = net.remotes[p].channel_texts();
    assert_eq!(got.len(), 1, "{got:?}");
    let msg: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(msg["type"], "get_status");
    assert_eq!(msg["from"], ticket.to_string());

    let reply = format!(
        r#"{{"v":1,"type":"response","request_id":"h1","to":"{ticket}","success":true,"message":"ok","timestamp":1}}"#
    );
    net.send_control(p, &reply);
    assert_eq!(net.core.poll_api_reply(), Some((ticket, reply.clone())));
    assert_eq!(net.core.poll_api_reply(), None);
    assert_eq!(
        net.remotes[v].channel_texts().len(),
        before,
        "the viewer gets nothing"
    );
    // Answered, the ticket is gone: the same reply again is dropped.
    net.send_control(p, &reply);
    assert_eq!(net.core.poll_api_reply(), None);
}

#[test]
fn a_forgotten_tickets_late_reply_is_dropped() {
    let (mut net, p, _, _, _) = live(Some(ViewerAccess::Control));
    let ticket = net.core.control(
        net.now,
        "cam",
        r#"{"v":1,"type":"update_settings","request_id":"h2","settings":{}}"#,
        ViewerAccess::Control,
        "alice",
    );
    net.run(Duration::from_millis(5), Duration::from_millis(50));
    assert_eq!(net.remotes[p].channel_texts().len(), 1);
    net.core.forget_control(ticket);
    net.send_control(
        p,
        &format!(r#"{{"v":1,"type":"response","request_id":"h2","to":"{ticket}"}}"#),
    );
    assert_eq!(net.core.poll_api_reply(), None);
}

#[test]
fn api_refusals_come_back_at_once() {
    let mut net = Net::new();
    let ticket = net.core.control(
        net.now,
        "cam",
        r#"{"v":1,"type":"get_status","request_id":"u"}"#,
        ViewerAccess::Control,
        "alice",
    );
    let (t, text) = net.core.poll_api_reply().expect("answered at once");
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(t, ticket);
    assert_eq!(reply["error"]["code"], "unavailable");
    assert_eq!(reply["request_id"], "u");
    let ticket = net
        .core
        .control(net.now, "cam", "{oops", ViewerAccess::Control, "alice");
    let (t, text) = net.core.poll_api_reply().unwrap();
    assert_eq!(t, ticket);
    assert!(text.contains("bad_message"), "{text}");
    // The peers' ids go on after the tickets.
    let (_, pid) = net.join(true, None);
    assert!(pid > ticket);
}

/// What the core queued for watchers, drained.
fn watched(net: &mut Net) -> Vec<(PeerId, crate::WatchMessage)> {
    std::iter::from_fn(|| net.core.poll_watch()).collect()
}

#[test]
fn a_watcher_is_welcomed_gets_frames_from_a_keyframe_and_commands_reach_the_publisher() {
    let (mut net, p, _, _, _) = live(Some(ViewerAccess::Control));
    let now = net.now;
    let w = net.core.watch(now, "cam", ViewerAccess::ViewOnly);
    let got = watched(&mut net);
    let crate::WatchMessage::Control(welcome) = &got[0].1 else {
        panic!("welcome first: {got:?}");
    };
    assert!(welcome.contains("\"welcome\"") && welcome.contains("\"may_control\":false"));
    assert_eq!(net.core.stats().viewers, 2, "a watcher counts as a viewer");

    net.write_frame(p, 1, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    net.write_frame(p, 2, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    net.write_frame(p, 3, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    let frames: Vec<_> = watched(&mut net)
        .into_iter()
        .filter_map(|(to, m)| match m {
            crate::WatchMessage::Frame(f) if to == w => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames.len(),
        2,
        "the delta before the keyframe is held back"
    );
    assert!(frames[0].keyframe && contains(&frames[0].data, b"00000002"));
    assert!(!frames[1].keyframe && contains(&frames[1].data, b"00000003"));
    assert_eq!(frames[1].rtp_time.wrapping_sub(frames[0].rtp_time), 3000);

    // It lost a frame: nothing more until the next keyframe.
    net.core.watcher_lagged(w);
    net.write_frame(p, 4, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    net.write_frame(p, 5, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    let frames: Vec<_> = watched(&mut net)
        .into_iter()
        .filter_map(|(_, m)| match m {
            crate::WatchMessage::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].keyframe && contains(&frames[0].data, b"00000005"));

    let now = net.now;
    net.core
        .watcher_command(now, w, r#"{"v":1,"type":"get_status","request_id":"w1"}"#);
    net.run(Duration::from_millis(5), Duration::from_millis(50));
    let got = net.remotes[p].channel_texts();
    let last: serde_json::Value = serde_json::from_str(got.last().unwrap()).unwrap();
    assert_eq!(
        (last["type"].as_str(), last["from"].as_str()),
        (Some("get_status"), Some(w.to_string().as_str()))
    );

    net.core.unwatch(w);
    assert_eq!(net.core.stats().viewers, 1);
    net.write_frame(p, 6, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    assert!(
        watched(&mut net).is_empty(),
        "nothing for a watcher that left"
    );
}

#[test]
fn a_viewer_that_reaches_the_sfu_only_over_tcp_gets_frames() {
    let mut net = Net::new();
    let (p, _) = net.join(true, None);
    let (v, vid) = net.join_over(Protocol::Tcp, false, None);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    assert!(net.remotes[v].connected(), "ICE over TCP and DTLS finish");
    assert!(net.events.contains(&SfuEvent::PeerConnected { peer: vid }));
    net.write_frame(p, 1, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    let frames = net.remotes[v].frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(frames[0].0 && contains(&frames[0].1, b"00000001"));
}

#[test]
fn a_congested_tcp_viewer_skips_to_the_next_keyframe() {
    let mut net = Net::new();
    let (p, _) = net.join(true, None);
    let (v, _) = net.join_over(Protocol::Tcp, false, None);
    net.run(Duration::from_millis(10), Duration::from_secs(2));
    net.write_frame(p, 1, true);
    net.run(Duration::from_millis(10), Duration::from_millis(300));
    let requests = net.core.stats().keyframe_requests_sent;

    // The driver could not queue a packet for this viewer.
    let remote = net.remotes[v].addr;
    net.core.tcp_congested(remote);
    net.write_frame(p, 2, false);
    net.run(Duration::from_millis(10), Duration::from_millis(300));
    assert!(
        net.core.stats().keyframe_requests_sent > requests,
        "a keyframe is asked for"
    );
    net.write_frame(p, 3, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    let frames = net.remotes[v].frames();
    let keyframes: Vec<bool> = frames.iter().map(|f| f.0).collect();
    assert_eq!(
        keyframes,
        vec![true, true],
        "the delta after the loss is skipped"
    );
    assert!(contains(&frames[1].1, b"00000003"));
    assert_eq!(net.core.stats().tcp_packets_dropped, 1);
}

/// A viewer whose network changed (a new address, the old one dead) restarts ICE on the
/// same connection: same peer, no new DTLS, frames at the new address from a keyframe on.
#[test]
fn a_viewer_that_moves_restarts_ice_and_resumes_at_a_keyframe() {
    let (mut net, p, v, _, vid) = live(None);
    net.write_frame(p, 1, true);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    assert_eq!(net.remotes[v].frames().len(), 1);

    // The phone moves: what the SFU sends to the old address is lost from now on.
    let moved = SocketAddr::from(([10, 0, 0, 3], 7000));
    net.remotes[v].addr = moved;
    net.write_frame(p, 2, false);
    net.run(Duration::from_millis(10), Duration::from_millis(100));
    assert_eq!(net.remotes[v].frames().len(), 1, "lost on the old path");

    // Garbage and an unknown peer are refused; the connection is untouched by either.
    assert!(matches!(
        net.core.restart_ice(net.now, vid, "not sdp"),
        Err(crate::SfuError::InvalidSdp(_))
    ));
    let (offer, pending) = {
        let mut api = net.remotes[v].rtc.sdp_api();
        api.ice_restart(false);
        api.apply().unwrap()
    };
    let offer = offer.to_sdp_string();
    assert!(matches!(
        net.core.restart_ice(net.now, PeerId(99), &offer),
        Err(crate::SfuError::UnknownPeer(_))
    ));
    let answer = net.core.restart_ice(net.now, vid, &offer).unwrap();
    assert_eq!((answer.peer, answer.codec), (vid, VideoCodec::H264));
    let sdp = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
    let remote = &mut net.remotes[v].rtc;
    remote.sdp_api().accept_answer(pending, sdp).unwrap();
    // Its only candidate now is at the new address, trickled to the SFU.
    let candidate = remote
        .add_local_candidate(Candidate::host(moved, "udp").unwrap())
        .unwrap()
        .to_sdp_string();
    net.core
        .add_remote_candidate(net.now, vid, &candidate)
        .unwrap();
    net.run(Duration::from_millis(10), Duration::from_secs(1));

    // The delta after the gap is held back; the keyframe asked for on reconnection goes.
    // (Frame 2 is gone: older than the SFU's RTX cache by now. The remote's receive buffer
    // waits for it a moment before it lets the keyframe out.)
    net.write_frame(p, 3, false);
    net.write_frame(p, 4, true);
    net.run(Duration::from_millis(10), Duration::from_secs(1));
    let frames = net.remotes[v].frames();
    let numbered = |n: &[u8]| frames.iter().position(|f| contains(&f.1, n));
    assert_eq!(numbered(b"00000003"), None, "the delta after the gap");
    let last = frames.last().unwrap();
    assert!(
        last.0 && contains(&last.1, b"00000004"),
        "{} frames",
        frames.len()
    );
    let connected = net
        .events
        .iter()
        .filter(|e| matches!(e, SfuEvent::PeerConnected { peer } if *peer == vid));
    assert_eq!(
        connected.count(),
        1,
        "the same connection: {:?}",
        net.events
    );
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, SfuEvent::PeerClosed { .. })),
        "{:?}",
        net.events
    );
    let stats = net.core.stats();
    assert_eq!((stats.peers, stats.viewers), (2, 1));
}
