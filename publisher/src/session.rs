//! One publishing session: WebSocket signaling, a peer connection to the SFU, and the encode
//! thread, from connect until something breaks. [`crate::run`] loops over sessions.
//!
//! The message handling decisions live in [`crate::session_state`]; this file is the I/O
//! around them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtc::media::Sample;
use sightline_signaling::wire::{self, ClientMessage};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use crate::encoder::{Encoder, KeyframeRequest};
use crate::keyframe_feedback::is_keyframe_request;
use crate::peer::{self, Peer, PeerEvent};
use crate::pipeline::{self, EncodeThread, OutFrame};
use crate::session_state::{self, Candidate, Phase, Step};
use crate::source::Source;
use crate::PublisherConfig;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the WebSocket connect (TCP + upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long from connecting until the peer connection is up before we give up and retry.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Encoded frames buffered between the encode thread and the track writer.
const FRAME_QUEUE: usize = 4;

/// How a session ended.
pub struct Outcome {
    /// The source, to reuse in the next session (`None` if it failed and must be reopened).
    pub source: Option<Box<dyn Source>>,
    /// Whether media got flowing (the peer connection reached `connected`).
    pub connected: bool,
    pub reason: String,
}

/// Run one session to its end. Never panics on network trouble; every way out is an
/// [`Outcome`] with the reason.
pub async fn run(config: &PublisherConfig, source: Box<dyn Source>) -> Outcome {
    let mut res = Resources::new(source);
    let reason = match drive(config, &mut res).await {
        Ok(reason) => reason,
        Err(e) => format!("{e:#}"),
    };
    let connected = res.connected;
    let source = res.teardown().await;
    Outcome {
        source,
        connected,
        reason,
    }
}

/// Everything a session owns that must be released when it ends, also when the session's
/// future is dropped mid-way (the [`Drop`] impl), so reconnects never leak threads, tasks or
/// sockets.
struct Resources {
    source: Option<Box<dyn Source>>,
    pc: Option<Arc<dyn PeerConnection>>,
    encode: Option<EncodeThread>,
    tasks: Vec<JoinHandle<()>>,
    connected: bool,
}

impl Resources {
    fn new(source: Box<dyn Source>) -> Self {
        Resources {
            source: Some(source),
            pc: None,
            encode: None,
            tasks: Vec::new(),
            connected: false,
        }
    }

    /// Orderly shutdown: stop tasks (dropping the frame receiver), stop the encode thread and
    /// take the source back, close the peer connection. (The
    /// WebSocket belongs to [`drive`] and closes when it returns.)
    async fn teardown(&mut self) -> Option<Box<dyn Source>> {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(encode) = self.encode.take() {
            let (source, result) = encode.stop().await;
            if let Err(e) = result {
                warn!("encode thread ended with an error: {e:#}");
                // A failed source is reopened next time rather than reused.
            } else {
                self.source = source;
            }
        }
        if let Some(pc) = self.pc.take() {
            if let Err(e) = pc.close().await {
                debug!("closing the peer connection: {e}");
            }
        }
        self.source.take()
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        // Only reached with something left when the session future was dropped (the
        // publisher task aborted): release what we can without awaiting.
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(encode) = self.encode.take() {
            encode.request_stop();
        }
        if let Some(pc) = self.pc.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}

/// The session proper. `Ok(reason)` for an orderly end (server closed...), `Err` for failures.
async fn drive(config: &PublisherConfig, res: &mut Resources) -> anyhow::Result<String> {
    let target = server_addr(&config.server).await;
    let ws = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async(config.server.as_str()),
    )
    .await
    .map_err(|_| anyhow!("connecting to {}: timed out", config.server))?
    // Not `context`: tungstenite's error already repeats its source in its message.
    .map_err(|e| anyhow!("connecting to {}: {e}", config.server))?
    .0;
    info!(server = %config.server, "signaling connected");
    // Dropped (closing the TCP connection) when this function returns.
    let mut ws = ws;
    let ws = &mut ws;

    let (ev_tx, mut events) = mpsc::unbounded_channel();
    let bind_ips: Vec<IpAddr> = target
        .and_then(peer::local_ip_towards)
        .into_iter()
        .collect();
    let peer = peer::build(&config.camera_id, &bind_ips, ev_tx).await?;
    res.pc = Some(Arc::clone(&peer.pc));

    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut phase = Phase::AwaitHello;
    let mut pending: Vec<Candidate> = Vec::new();
    // The mid our one m-line got; local candidates carry it.
    let mut mid: Option<String> = None;
    // Ends when the writer task ends, i.e. when the encode thread stopped sending.
    let mut writer_done: Option<tokio::sync::oneshot::Receiver<()>> = None;

    loop {
        tokio::select! {
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        return Ok(format!("server closed the WebSocket ({frame:?})"));
                    }
                    Some(Ok(_)) => continue, // ping/pong/binary
                    Some(Err(e)) => return Err(anyhow!("WebSocket error: {e}")),
                    None => return Ok("server closed the WebSocket".into()),
                };
                let msg = match wire::parse_server_message(text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        warn!("ignoring unparsable server message: {e}");
                        continue;
                    }
                };
                let (step, next) = session_state::on_message(phase, msg);
                phase = next;
                match step {
                    Step::Register => {
                        send(ws, &ClientMessage::Register {
                            camera_id: config.camera_id.clone(),
                            name: config.name.clone(),
                            width: config.width,
                            height: config.height,
                            fps: config.fps,
                        }).await?;
                    }
                    Step::Offer => {
                        info!(camera = %config.camera_id, "registered; sending offer");
                        let offer = peer.pc.create_offer(None).await.context("create_offer")?;
                        let sdp = offer.sdp.clone();
                        mid = first_mid(&sdp);
                        peer.pc.set_local_description(offer).await.context("set_local_description")?;
                        send(ws, &ClientMessage::Offer { sdp }).await?;
                    }
                    Step::ApplyAnswer(sdp) => {
                        let answer = RTCSessionDescription::answer(sdp).context("parsing the answer")?;
                        peer.pc.set_remote_description(answer).await.context("set_remote_description")?;
                        debug!("answer applied");
                        for c in pending.drain(..) {
                            add_candidate(peer.pc.as_ref(), c).await;
                        }
                    }
                    Step::AddCandidate(c) => add_candidate(peer.pc.as_ref(), c).await,
                    Step::BufferCandidate(c) => pending.push(c),
                    Step::Fail(reason) => return Err(anyhow!(reason)),
                    Step::Note(note) => warn!("{note}"),
                    Step::Ignore => {}
                }
            }
            ev = events.recv() => match ev {
                Some(PeerEvent::LocalCandidate(init)) => {
                    send(ws, &candidate_message(init, mid.as_deref())).await?;
                }
                Some(PeerEvent::State(state)) => {
                    info!(camera = %config.camera_id, "peer connection {state}");
                    match state {
                        RTCPeerConnectionState::Connected if !res.connected => {
                            res.connected = true;
                            writer_done = Some(start_media(config, &peer, res).await?);
                        }
                        RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Disconnected
                        | RTCPeerConnectionState::Closed => {
                            return Ok(format!("peer connection {state}"));
                        }
                        _ => {}
                    }
                }
                None => return Err(anyhow!("peer connection event stream ended")),
            },
            _ = async { writer_done.as_mut().unwrap().await }, if writer_done.is_some() => {
                return Err(anyhow!("the encode pipeline stopped"));
            }
            _ = tokio::time::sleep_until(deadline), if !res.connected => {
                return Err(anyhow!("no media connection within {SETUP_TIMEOUT:?} (phase {phase:?})"));
            }
        }
    }
}

/// Connected: start the encode thread, the track writer and the keyframe-request listener.
async fn start_media(
    config: &PublisherConfig,
    peer: &Peer,
    res: &mut Resources,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    let source = res
        .source
        .take()
        .ok_or_else(|| anyhow!("no source to encode"))?;
    let encoder = Encoder::new(pipeline::encoder_settings(
        source.as_ref(),
        config.bitrate,
        config.keyframe_interval,
    ))?;
    let keyframes = encoder.keyframe_request();
    let fps = source.fps().max(1);
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    res.encode =
        Some(EncodeThread::start(source, encoder, tx).context("starting the encode thread")?);

    let payload_type = match peer.sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .unwrap_or(peer::H264_PAYLOAD_TYPE),
        Err(e) => {
            debug!(
                "sender parameters: {e}; using payload type {}",
                peer::H264_PAYLOAD_TYPE
            );
            peer::H264_PAYLOAD_TYPE
        }
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let track = Arc::clone(&peer.track);
    let ssrc = peer.ssrc;
    res.tasks.push(tokio::spawn(async move {
        write_frames(track, ssrc, payload_type, rx, fps).await;
        let _ = done_tx.send(());
    }));
    res.tasks.push(tokio::spawn(listen_for_keyframe_requests(
        Arc::clone(&peer.track),
        keyframes,
    )));
    info!(
        camera = %config.camera_id,
        payload_type,
        "publishing {}x{}@{fps} at {} bit/s",
        config.width,
        config.height,
        config.bitrate
    );
    Ok(done_rx)
}

/// Hand each access unit to the track as one sample; the packetizer splits it into RTP.
async fn write_frames(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
    mut frames: mpsc::Receiver<OutFrame>,
    fps: u32,
) {
    let duration = Duration::from_secs(1) / fps;
    let mut failures = 0u64;
    while let Some(frame) = frames.recv().await {
        let sample = Sample {
            data: Bytes::from(frame.encoded.data),
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
                warn!(
                    failures,
                    frame = frame.index,
                    "writing a sample failed: {e}"
                );
            }
        }
    }
}

/// Turn PLI/FIR from the SFU into encoder keyframes.
async fn listen_for_keyframe_requests(
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

async fn send(ws: &mut Ws, msg: &ClientMessage) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json()))
        .await
        .context("sending on the WebSocket")
}

async fn add_candidate(pc: &dyn PeerConnection, c: Candidate) {
    let candidate = c.candidate.trim().trim_start_matches("a=").to_owned();
    let init = RTCIceCandidateInit {
        candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index.or(Some(0)),
        ..Default::default()
    };
    if let Err(e) = pc.add_ice_candidate(init).await {
        warn!("rejected a server candidate: {e}");
    }
}

/// A local candidate as a signaling message, with our m-line's mid when the gatherer leaves
/// it empty.
fn candidate_message(init: RTCIceCandidateInit, mid: Option<&str>) -> ClientMessage {
    let sdp_mid = init
        .sdp_mid
        .filter(|m| !m.is_empty())
        .or_else(|| mid.map(str::to_owned));
    ClientMessage::Candidate {
        candidate: init.candidate,
        sdp_mid,
        sdp_mline_index: init.sdp_mline_index.or(Some(0)),
    }
}

/// The first `a=mid:` in an SDP.
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
}

/// The server's socket address (for picking the local interface facing it).
async fn server_addr(url: &str) -> Option<SocketAddr> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("wss") | Some("https") => 443,
        _ => 80,
    });
    let mut addrs = tokio::net::lookup_host((host, port)).await.ok()?;
    addrs.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_addr_parses_urls() {
        assert_eq!(
            server_addr("ws://127.0.0.1:8080/ws").await,
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            server_addr("ws://[::1]/ws").await,
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(server_addr("not a url").await, None);
    }

    #[test]
    fn local_candidates_get_our_mid() {
        let init = RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host".into(),
            sdp_mid: Some(String::new()),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        match candidate_message(init, Some("0")) {
            ClientMessage::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                assert!(candidate.starts_with("candidate:"));
                assert_eq!(sdp_mid.as_deref(), Some("0"));
                assert_eq!(sdp_mline_index, Some(0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            first_mid("v=0\r\nm=video 9\r\na=mid:0\r\n"),
            Some("0".into())
        );
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
