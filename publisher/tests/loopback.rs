//! The publisher against a stand-in server on 127.0.0.1: a minimal signaling WebSocket and a
//! webrtc-rs answerer (recvonly) that depacketizes, decodes and reads the barcode of every
//! frame. Checks the whole publish path, keyframes on PLI, and reconnecting after the server
//! restarts on the same port without leaking encode threads.
//!
//! The real server/SFU (str0m) is exercised by the workspace's end-to-end tests; this one only
//! needs the publisher crate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use sightline_protocol::wire::{ClientMessage, ServerMessage};
use sightline_publisher::barcode;
use sightline_publisher::h264::nal;
use sightline_publisher::session::peer::{h264_codec, H264_PAYLOAD_TYPE};
use sightline_publisher::PublisherConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCSessionDescription, Registry, SettingEngineBuilder,
};

const CAMERA: &str = "loop-cam";

/// What the stand-in server observed.
#[derive(Default)]
struct Seen {
    sessions: AtomicU32,
    /// Decoded frames whose barcode carried our camera's tag.
    frames: AtomicU64,
    /// Highest barcode frame number seen.
    last_frame: AtomicU32,
    /// When each IDR access unit arrived.
    idrs: Mutex<Vec<Instant>>,
    offers: Mutex<Vec<String>>,
    /// Ask the current track to send one PLI.
    pli_now: AtomicBool,
}

/// The stand-in server: one listener, closes everything when `stop` is sent.
struct Server {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_server(addr: SocketAddr, seen: Arc<Seen>) -> (Server, SocketAddr) {
    // The port may linger for a moment after the previous server; retry briefly.
    let mut listener = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let listener = listener.expect("bind the stand-in server");
    let local = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        let mut stop_rx2 = stop_rx.clone();
        loop {
            tokio::select! {
                acc = listener.accept() => {
                    let Ok((tcp, _)) = acc else { continue };
                    let seen = Arc::clone(&seen);
                    let stop_rx = stop_rx.clone();
                    conns.push(tokio::spawn(async move {
                        if let Err(e) = serve(tcp, seen, stop_rx).await {
                            eprintln!("stand-in server session: {e:#}");
                        }
                    }));
                }
                _ = stop_rx2.changed() => break,
            }
        }
        drop(listener);
        for c in conns {
            let _ = c.await;
        }
    });
    (Server { stop, task }, local)
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct AnswererEvents(mpsc::UnboundedSender<AnswererEvent>);

enum AnswererEvent {
    Candidate(RTCIceCandidateInit),
    Track(Arc<dyn TrackRemote>),
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for AnswererEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.send(AnswererEvent::Candidate(init));
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(AnswererEvent::Track(track));
    }
}

async fn serve(
    tcp: tokio::net::TcpStream,
    seen: Arc<Seen>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let send = |m: ServerMessage| Message::text(m.to_json());
    ws.send(send(ServerMessage::Hello {
        session_id: 1,
        server_version: "stand-in".into(),
        ice_servers: vec![],
    }))
    .await?;
    let (ev_tx, mut events) = mpsc::unbounded_channel();
    let mut pc: Option<Arc<dyn PeerConnection>> = None;
    let mut readers = Vec::new();
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                msg = ws.next() => {
                    let Some(Ok(Message::Text(t))) = msg else {
                        if matches!(msg, Some(Ok(_))) { continue }
                        return Ok(());
                    };
                    match serde_json::from_str::<ClientMessage>(t.as_str())? {
                        ClientMessage::Register { camera_id, width, height, fps, .. } => {
                            assert_eq!(camera_id, CAMERA);
                            assert_eq!((width, height, fps), (320, 240, 30));
                            seen.sessions.fetch_add(1, Ordering::SeqCst);
                            ws.send(send(ServerMessage::Registered { camera_id })).await?;
                        }
                        ClientMessage::Offer { sdp } => {
                            seen.offers.lock().unwrap().push(sdp.clone());
                            let p = answerer(ev_tx.clone()).await?;
                            p.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                            let answer = p.create_answer(None).await?;
                            let sdp = answer.sdp.clone();
                            p.set_local_description(answer).await?;
                            ws.send(send(ServerMessage::Answer { sdp, resume: None })).await?;
                            pc = Some(p);
                        }
                        ClientMessage::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                            if let Some(p) = &pc {
                                p.add_ice_candidate(RTCIceCandidateInit {
                                    candidate,
                                    sdp_mid,
                                    sdp_mline_index,
                                    ..Default::default()
                                }).await?;
                            }
                        }
                        // The publisher's source reports: nothing to do for a stand-in.
                        ClientMessage::SourceState { .. } => {}
                        other => anyhow::bail!("unexpected {other:?}"),
                    }
                }
                ev = events.recv() => match ev {
                    Some(AnswererEvent::Candidate(c)) => {
                        ws.send(send(ServerMessage::Candidate {
                            candidate: c.candidate,
                            sdp_mid: c.sdp_mid,
                            sdp_mline_index: c.sdp_mline_index,
                        })).await?;
                    }
                    Some(AnswererEvent::Track(track)) => {
                        readers.push(tokio::spawn(read_track(track, Arc::clone(&seen))));
                    }
                    None => return Ok(()),
                },
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    for r in readers {
        r.abort();
    }
    if let Some(p) = pc {
        let _ = p.close().await;
    }
    let _ = ws.close(None).await;
    result
}

async fn answerer(
    events: mpsc::UnboundedSender<AnswererEvent>,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?;
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_include_loopback_candidate(true)
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .build(),
        )
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(AnswererEvents(events)))
        .with_udp_addrs(vec![format!("{}:0", test_ip())])
        .build()
        .await?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    pc.add_transceiver_from_kind(
        RtpCodecKind::Video,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        }),
    )
    .await?;
    Ok(pc)
}

/// Depacketize, split into access units on the marker bit, decode on a plain thread (the
/// openh264 decoder is not `Send`) and read barcodes.
async fn read_track(track: Arc<dyn TrackRemote>, seen: Arc<Seen>) {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let (au_tx, au_rx) = std::sync::mpsc::channel::<Bytes>();
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut dec = openh264::decoder::Decoder::new().unwrap();
        let tag = barcode::tag_for(CAMERA);
        while let Ok(au) = au_rx.recv() {
            if let Ok(Some(yuv)) = dec.decode(&au) {
                use openh264::formats::YUVSource;
                let (w, h) = yuv.dimensions();
                if let Some(s) = barcode::read(yuv.y(), yuv.strides().0, w, h) {
                    if s.tag == tag {
                        seen2.frames.fetch_add(1, Ordering::SeqCst);
                        seen2.last_frame.fetch_max(s.frame, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    let mut depack = H264Packet::default();
    let mut au = Vec::new();
    loop {
        if seen.pli_now.swap(false, Ordering::SeqCst) {
            let _ = track
                .write_rtcp(vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                })])
                .await;
        }
        let ev = tokio::time::timeout(Duration::from_millis(100), track.poll()).await;
        let ev = match ev {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(_) => continue,
        };
        let TrackRemoteEvent::OnRtpPacket(pkt) = ev else {
            continue;
        };
        if let Ok(data) = depack.depacketize(&pkt.payload) {
            au.extend_from_slice(&data);
        }
        if pkt.header.marker && !au.is_empty() {
            let frame = std::mem::take(&mut au);
            if std::env::var("LOOPBACK_DEBUG").is_ok() {
                let types: Vec<u8> = nal::split_annex_b(&frame)
                    .iter()
                    .filter_map(|n| nal::nal_type(n))
                    .collect();
                eprintln!(
                    "AU seq {} ts {} len {} nals {types:?}",
                    pkt.header.sequence_number,
                    pkt.header.timestamp,
                    frame.len()
                );
            }
            if nal::split_annex_b(&frame)
                .iter()
                .any(|n| nal::nal_type(n) == Some(nal::NAL_IDR))
            {
                seen.idrs.lock().unwrap().push(Instant::now());
            }
            if au_tx.send(Bytes::from(frame)).is_err() {
                break;
            }
        }
    }
}

/// Where the stand-in server listens: 127.0.0.1, or `SIGHTLINE_TEST_IP` (e.g. 10.77.0.1 when
/// run inside a network namespace) to check non-loopback host candidates too.
fn test_ip() -> String {
    std::env::var("SIGHTLINE_TEST_IP").unwrap_or_else(|_| "127.0.0.1".into())
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn encode_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| {
                        c.trim() == sightline_publisher::pipeline::ENCODE_THREAD_NAME
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_answers_pli_and_survives_a_server_restart() {
    let seen = Arc::new(Seen::default());
    let (server, addr) = start_server(
        format!("{}:0", test_ip()).parse().unwrap(),
        Arc::clone(&seen),
    )
    .await;

    let mut config = PublisherConfig::new(format!("ws://{addr}/ws"), CAMERA);
    config.width = 320;
    config.height = 240;
    config.fps = 30;
    config.bitrate = 300_000;
    // Long, so any keyframe after the first is one we asked for.
    config.keyframe_interval = Duration::from_secs(60);
    let publisher = tokio::spawn(sightline_publisher::run(config));

    // Media flows and decodes with our barcode.
    wait_for("30 decoded frames", Duration::from_secs(20), || {
        seen.frames.load(Ordering::SeqCst) >= 30
    })
    .await;
    {
        let offers = seen.offers.lock().unwrap();
        let sdp = &offers[0];
        assert!(sdp.contains("profile-level-id=42e01f"), "{sdp}");
        assert!(sdp.contains("packetization-mode=1"), "{sdp}");
        assert!(sdp.contains("a=sendonly"), "{sdp}");
        // VP8 only as this build has it (for viewers without H.264), on a second m-line.
        assert_eq!(
            sdp.contains("VP8/90000"),
            sightline_publisher::pipeline::vp8_lane::AVAILABLE,
            "{sdp}"
        );
        assert_eq!(
            sdp.matches("m=video").count(),
            1 + usize::from(sightline_publisher::pipeline::vp8_lane::AVAILABLE),
            "{sdp}"
        );
    }
    assert_eq!(
        seen.idrs.lock().unwrap().len(),
        1,
        "only the opening IDR so far"
    );

    // A PLI gets a keyframe well before the 60 s periodic one.
    let asked = Instant::now();
    seen.pli_now.store(true, Ordering::SeqCst);
    wait_for("an IDR after PLI", Duration::from_secs(3), || {
        seen.idrs.lock().unwrap().iter().any(|t| *t > asked)
    })
    .await;
    assert_eq!(encode_threads(), 1);

    // Restart the server on the same port: the publisher reconnects and media resumes.
    let before = seen.last_frame.load(Ordering::SeqCst);
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (server, _) = start_server(addr, Arc::clone(&seen)).await;
    let frames_before = seen.frames.load(Ordering::SeqCst);
    wait_for("frames after the restart", Duration::from_secs(20), || {
        seen.sessions.load(Ordering::SeqCst) >= 2
            && seen.frames.load(Ordering::SeqCst) >= frames_before + 30
    })
    .await;
    assert!(
        seen.last_frame.load(Ordering::SeqCst) > before,
        "frame numbers continue across reconnects"
    );
    assert_eq!(encode_threads(), 1, "one encode thread after reconnecting");

    publisher.abort();
    let _ = publisher.await;
    server.stop().await;
    // The aborted session's encode thread ends within a frame or two.
    wait_for("encode thread gone", Duration::from_secs(2), || {
        encode_threads() == 0
    })
    .await;
}
