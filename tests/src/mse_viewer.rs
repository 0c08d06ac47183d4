//! A headless MSE viewer: reads `GET /api/cameras/{id}/mse` as a browser's player would,
//! demuxes what it gets with `mp4-atom` (the boxes, not our muxer's code) and can decode
//! the frames with openh264 to read the test pattern's barcode. Everything received is kept
//! in order, so a test can hand the same bytes to an independent demuxer (`probe_fmp4`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use mp4_atom::{Any, Decode, Moof, Moov};
use sightline_protocol::wire::MseInit;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::decode::{DecodedFrame, FrameDecoder};

/// One message from the MSE socket, understood.
#[derive(Debug, Clone)]
pub enum MseEvent {
    /// A new format and its init segment.
    Init(MseInit),
    /// One frame: Annex-B (parameter sets in front of a keyframe), its decode time (90 kHz)
    /// and whether it is a sync sample.
    Frame {
        annex_b: Vec<u8>,
        decode_time: u64,
        keyframe: bool,
    },
    /// A text message that is not `mse_init`: camera control, or an `error`.
    Text(serde_json::Value),
}

pub struct MseViewer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every binary message so far, in order, cut where a new init segment starts: each is
    /// a playable fragmented MP4 file.
    pub recordings: Vec<Vec<u8>>,
    /// The current init segment's parameter sets, Annex-B.
    parameter_sets: Vec<u8>,
    pending_init: Option<MseInit>,
    decoder: Option<FrameDecoder>,
}

impl MseViewer {
    /// `http_url` is the server's (`http://127.0.0.1:PORT`); `token` goes in `?token=`.
    pub async fn connect(
        http_url: &str,
        camera: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::connect_with(http_url, camera, token, None).await
    }

    /// Like [`Self::connect`], on a socket with a `recv_buffer`-byte receive buffer: a
    /// reader on a thin link, whose unread data backs up to the server quickly.
    pub async fn connect_with(
        http_url: &str,
        camera: &str,
        token: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> anyhow::Result<Self> {
        let host = http_url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("not a plain http:// URL: {http_url}"))?;
        let mut url = format!("ws://{host}/api/cameras/{camera}/mse");
        if let Some(t) = token {
            url.push_str(&format!("?token={t}"));
        }
        let addr = tokio::net::lookup_host(host)
            .await?
            .next()
            .ok_or_else(|| anyhow!("no address for {host}"))?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(addr).await?;
        let (ws, _) = tokio_tungstenite::client_async(&url, MaybeTlsStream::Plain(stream))
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(MseViewer {
            ws,
            recordings: Vec::new(),
            parameter_sets: Vec::new(),
            pending_init: None,
            decoder: None,
        })
    }

    /// The next event, within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<MseEvent> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next())
                .await
                .map_err(|_| anyhow!("nothing from the MSE socket for {timeout:?}"))?
                .ok_or_else(|| anyhow!("the MSE socket closed"))??;
            match msg {
                Message::Text(text) => {
                    let value: serde_json::Value = serde_json::from_str(&text)?;
                    if value["type"] == "mse_init" {
                        let init: MseInit = serde_json::from_value(value)?;
                        self.pending_init = Some(init.clone());
                        continue;
                    }
                    return Ok(MseEvent::Text(value));
                }
                Message::Binary(bytes) => {
                    if let Some(init) = self.pending_init.take() {
                        self.recordings.push(bytes.to_vec());
                        self.parameter_sets = parameter_sets(&bytes)?;
                        // A new format: a fresh decoder, as a browser's player re-initialises.
                        self.decoder = None;
                        return Ok(MseEvent::Init(init));
                    }
                    if let Some(file) = self.recordings.last_mut() {
                        file.extend_from_slice(&bytes);
                    }
                    return self.fragment(&bytes);
                }
                Message::Close(frame) => bail!("the MSE socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    fn fragment(&self, bytes: &[u8]) -> anyhow::Result<MseEvent> {
        if self.parameter_sets.is_empty() {
            bail!("a fragment before any init segment");
        }
        let mut cursor = std::io::Cursor::new(bytes);
        let moof = Moof::decode(&mut cursor).context("moof")?;
        let Any::Mdat(mdat) = Any::decode(&mut cursor).context("mdat")? else {
            bail!("moof not followed by mdat");
        };
        let traf = moof
            .traf
            .first()
            .ok_or_else(|| anyhow!("moof without traf"))?;
        let flags = traf.tfhd.default_sample_flags.unwrap_or(0);
        let keyframe = flags & 0x0001_0000 == 0;
        let mut annex_b = Vec::new();
        if keyframe {
            annex_b.extend_from_slice(&self.parameter_sets);
        }
        let mut rest = &mdat.data[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let nal = rest
                .get(4..4 + len)
                .ok_or_else(|| anyhow!("NAL length past the sample"))?;
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(nal);
            rest = &rest[4 + len..];
        }
        Ok(MseEvent::Frame {
            annex_b,
            decode_time: traf.tfdt.as_ref().map_or(0, |t| t.base_media_decode_time),
            keyframe,
        })
    }

    /// The next decoded picture (skipping control text), within `timeout` each.
    pub async fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<DecodedFrame> {
        loop {
            if let MseEvent::Frame {
                annex_b, keyframe, ..
            } = self.next(timeout).await?
            {
                let decoder = match &mut self.decoder {
                    Some(d) => d,
                    // A decoder starts at a keyframe.
                    None if !keyframe => continue,
                    None => self.decoder.insert(FrameDecoder::new()?),
                };
                if let Some(frame) = decoder.decode(&annex_b)? {
                    return Ok(frame);
                }
            }
        }
    }

    /// Send a control command (JSON text) on the socket.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The parameter sets in an init segment's `avcC`, as Annex-B.
fn parameter_sets(init: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut cursor = std::io::Cursor::new(init);
    let _ftyp = mp4_atom::Ftyp::decode(&mut cursor).context("ftyp")?;
    let moov = Moov::decode(&mut cursor).context("moov")?;
    let codec = moov
        .trak
        .first()
        .and_then(|t| t.mdia.minf.stbl.stsd.codecs.first())
        .ok_or_else(|| anyhow!("init segment without a codec"))?;
    let mp4_atom::Codec::Avc1(avc1) = codec else {
        bail!("init segment codec is not avc1: {codec:?}");
    };
    let mut out = Vec::new();
    for ps in avc1
        .avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avc1.avcc.picture_parameter_sets)
    {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(ps);
    }
    Ok(out)
}

/// What GStreamer's qtdemux (a real, independent demuxer; `tests/scripts/fmp4-probe.py`)
/// finds in a fragmented MP4 file.
#[derive(Debug, serde::Deserialize)]
pub struct Probe {
    pub caps: Vec<ProbeCaps>,
    pub samples: Vec<ProbeSample>,
    pub error: Option<String>,
}

#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
pub struct ProbeCaps {
    pub media: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, serde::Deserialize)]
pub struct ProbeSample {
    pub dts: Option<u64>,
    pub pts: Option<u64>,
    pub size: usize,
    pub sync: bool,
}

pub fn probe_fmp4(file: &Path) -> anyhow::Result<Probe> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fmp4-probe.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(file)
        .output()
        .context("running fmp4-probe.py")?;
    if !out.status.success() {
        bail!(
            "fmp4-probe.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
