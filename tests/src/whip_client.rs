//! A WHIP client for tests, independent of the server's and the publisher's code: a str0m
//! peer that offers, as OBS and ffmpeg do, a sendonly audio m-line (which the server
//! declines) and a sendonly H.264 video m-line, POSTs the offer with a bare HTTP client
//! ([`crate::raw_http`]), then sends the suite's barcoded frames ([`SyntheticEncoder`]) at
//! 30 fps, answering keyframe requests with an IDR.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::peer::H264_PROFILE_LEVEL_ID;
use crate::raw_http::RawResponse;
use crate::synthetic::SyntheticEncoder;
use crate::whep_player::{delete, post_offer};

const FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// One WHIP ingest session, sending until stopped or deleted.
pub struct WhipClient {
    server: SocketAddr,
    /// The `201` response: answer, `Location`, `ETag`, `Link`s.
    pub created: RawResponse,
    task: JoinHandle<()>,
}

impl WhipClient {
    /// Publish `camera` on `server` with frames of `width`×`height`; fails unless the
    /// server answers `201`.
    pub async fn start(
        server: SocketAddr,
        camera: &str,
        token: Option<&str>,
        (width, height): (u32, u32),
    ) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).await?;
        let local = socket.local_addr()?;
        let mut config = Rtc::builder().clear_codecs();
        config
            .codec_config()
            .add_h264(102.into(), Some(103.into()), true, H264_PROFILE_LEVEL_ID);
        config.codec_config().enable_opus(true, false);
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp")?)
            .ok_or_else(|| anyhow!("str0m refused the host candidate {local}"))?;
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("str0m made no offer"))?;
        let path = format!("/whip/{camera}");
        let created = post_offer(
            server,
            &path,
            "application/sdp",
            &offer.to_sdp_string(),
            token,
        )
        .await?;
        if created.status != 201 {
            bail!("POST {path}: {} {}", created.status, created.body);
        }
        let answer = SdpAnswer::from_sdp_string(&created.body).context("parsing the answer")?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .context("applying the WHIP answer")?;
        let encoder = SyntheticEncoder::new(width, height, camera)?;
        let task = tokio::spawn(drive(rtc, mid, socket, encoder));
        Ok(WhipClient {
            server,
            created,
            task,
        })
    }

    /// The session's resource (the answer's `Location`).
    pub fn location(&self) -> &str {
        self.created.header("location").unwrap_or("")
    }

    /// Still sending (the peer did not fail or close).
    pub fn is_sending(&self) -> bool {
        !self.task.is_finished()
    }

    /// `DELETE` the session (with `token`) and stop sending.
    pub async fn delete(self, token: Option<&str>) -> anyhow::Result<RawResponse> {
        self.task.abort();
        delete(self.server, self.location(), token).await
    }
}

impl Drop for WhipClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Move datagrams and time through the peer, and write a frame every 33 ms once connected.
async fn drive(mut rtc: Rtc, mid: Mid, socket: UdpSocket, mut encoder: SyntheticEncoder) {
    let mut buf = vec![0u8; 2048];
    let local = socket.local_addr().expect("bound");
    let started = Instant::now();
    let mut next_frame = started;
    let mut connected = false;
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(Event::KeyframeRequest(_))) => encoder.force_keyframe(),
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    tracing::info!("WHIP client: str0m failed: {e}");
                    return;
                }
            }
        };
        if !rtc.is_alive() {
            return;
        }
        let wake = if connected {
            timeout.min(next_frame)
        } else {
            timeout
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(
                    Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                );
                if rtc.handle_input(input).is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                if connected && now >= next_frame {
                    next_frame += FRAME_INTERVAL;
                    if let Err(e) = write_frame(&mut rtc, mid, &mut encoder, started, now) {
                        tracing::info!("WHIP client: {e:#}");
                        return;
                    }
                }
                if rtc.handle_input(Input::Timeout(now)).is_err() {
                    return;
                }
            }
        }
    }
}

fn write_frame(
    rtc: &mut Rtc,
    mid: Mid,
    encoder: &mut SyntheticEncoder,
    started: Instant,
    now: Instant,
) -> anyhow::Result<()> {
    let frame = encoder.encode_next()?;
    let writer = rtc.writer(mid).context("no writer for the video m-line")?;
    let pt = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::H264)
        .context("no H.264 negotiated")?
        .pt();
    let time = MediaTime::from_90khz((now - started).as_micros() as u64 * 9 / 100);
    writer.write(pt, now, time, frame.data)?;
    Ok(())
}
