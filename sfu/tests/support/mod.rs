//! A minimal str0m client peer over 127.0.0.1 for driving the SFU in tests: over UDP, or
//! over ICE-TCP (one connection to the SFU's TCP port, RFC 4571 framing).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sightline_sfu::{PeerAnswer, SfuHandle, ViewerAccess};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How a client reaches the SFU.
enum Link {
    Udp(UdpSocket),
    /// Connected to the SFU's TCP port; `pending` holds bytes of a frame not complete yet.
    Tcp {
        stream: TcpStream,
        sfu: SocketAddr,
        pending: Vec<u8>,
    },
}

pub struct Client {
    pub rtc: Rtc,
    link: Link,
    addr: SocketAddr,
    pub mid: Option<Mid>,
    /// The `control` data channel, when the offer had one (usable once it opened).
    pub control: Option<ChannelId>,
    buf: Vec<u8>,
}

impl Client {
    pub async fn new() -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        Client::with_link(
            Link::Udp(socket),
            Candidate::host(addr, "udp").unwrap(),
            addr,
        )
    }

    /// A client whose only path is one TCP connection to the SFU's ICE-TCP port `sfu`.
    pub async fn new_tcp(sfu: SocketAddr) -> Client {
        let stream = TcpStream::connect(sfu).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let addr = stream.local_addr().unwrap();
        let candidate = Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(TcpType::Active)
            .build()
            .unwrap();
        let link = Link::Tcp {
            stream,
            sfu,
            pending: Vec::new(),
        };
        Client::with_link(link, candidate, addr)
    }

    fn with_link(link: Link, candidate: Candidate, addr: SocketAddr) -> Client {
        let mut config = Rtc::builder().clear_codecs();
        config
            .codec_config()
            .add_h264(102.into(), Some(103.into()), true, 0x42e01f);
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(candidate);
        Client {
            rtc,
            link,
            addr,
            mid: None,
            control: None,
            buf: vec![0; 2048],
        }
    }

    /// An offer with one video m-line in `dir`.
    pub fn offer(&mut self, dir: Direction) -> (String, SdpPendingOffer) {
        self.offer_with(dir, false)
    }

    /// An offer with one video m-line in `dir` and, with `control`, a data channel
    /// labelled `control`.
    pub fn offer_with(&mut self, dir: Direction, control: bool) -> (String, SdpPendingOffer) {
        let mut api = self.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, dir, None, None, None);
        if control {
            self.control = Some(api.add_channel("control".into()));
        }
        self.mid = Some(mid);
        let (offer, pending) = api.apply().unwrap();
        (offer.to_sdp_string(), pending)
    }

    pub fn accept(&mut self, pending: SdpPendingOffer, answer: &PeerAnswer) {
        let answer = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    /// Offer `dir` video to the SFU for `camera` and accept its answer.
    pub async fn connect(&mut self, sfu: &SfuHandle, camera: &str, publish: bool) -> PeerAnswer {
        self.connect_with(sfu, camera, publish, None).await
    }

    /// Like [`Client::connect`], with a `control` data channel when `control` is given (for a
    /// viewer: with that access).
    pub async fn connect_with(
        &mut self,
        sfu: &SfuHandle,
        camera: &str,
        publish: bool,
        control: Option<ViewerAccess>,
    ) -> PeerAnswer {
        let dir = if publish {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        let (offer, pending) = self.offer_with(dir, control.is_some());
        let answer = if publish {
            sfu.publish(camera, &offer).await.unwrap()
        } else {
            let access = control.unwrap_or(ViewerAccess::ViewOnly);
            sfu.subscribe(camera, &offer, access).await.unwrap()
        };
        self.accept(pending, &answer);
        answer
    }

    /// Write a text message on the `control` channel; false if it is not open.
    pub fn send_control(&mut self, text: &str) -> bool {
        let Some(mut channel) = self.control.and_then(|c| self.rtc.channel(c)) else {
            return false;
        };
        channel.write(false, text.as_bytes()).unwrap_or(false)
    }

    /// Write one frame on our m-line.
    pub fn write_frame(&mut self, time: u64, frame: &[u8]) {
        let mid = self.mid.unwrap();
        let writer = self.rtc.writer(mid).unwrap();
        let pt = writer.payload_params().next().unwrap().pt();
        writer
            .write(
                pt,
                Instant::now(),
                MediaTime::from_90khz(time),
                frame.to_vec(),
            )
            .unwrap();
    }

    /// Run I/O for up to `max` and return the events seen. Returns early once an event
    /// arrived and the output is drained.
    pub async fn step(&mut self, max: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let end = Instant::now() + max;
        loop {
            let timeout = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => match &mut self.link {
                        Link::Udp(socket) => {
                            let _ = socket.send_to(&t.contents, t.destination).await;
                        }
                        Link::Tcp { stream, .. } => {
                            // RFC 4571: each packet behind its 16-bit length.
                            let mut framed = (t.contents.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&t.contents);
                            let _ = stream.write_all(&framed).await;
                        }
                    },
                    Output::Event(e) => events.push(e),
                }
            };
            if !self.rtc.is_alive() {
                // Closed by the SFU: nothing more will happen, but never spin (a task that
                // does not await cannot even be aborted).
                tokio::time::sleep(max.max(Duration::from_millis(10))).await;
                return events;
            }
            if !events.is_empty() || Instant::now() >= end {
                return events;
            }
            let wake = timeout.min(end);
            let received = match &mut self.link {
                Link::Udp(socket) => tokio::select! {
                    r = socket.recv_from(&mut self.buf) => r.ok().map(|(n, from)| {
                        vec![(Protocol::Udp, from, self.buf[..n].to_vec())]
                    }),
                    _ = tokio::time::sleep_until(wake.into()) => None,
                },
                Link::Tcp {
                    stream,
                    sfu,
                    pending,
                } => tokio::select! {
                    r = stream.read(&mut self.buf) => match r {
                        Ok(n) if n > 0 => {
                            pending.extend_from_slice(&self.buf[..n]);
                            let mut packets = Vec::new();
                            while pending.len() >= 2 {
                                let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
                                if pending.len() < 2 + len {
                                    break;
                                }
                                packets.push((Protocol::Tcp, *sfu, pending[2..2 + len].to_vec()));
                                pending.drain(..2 + len);
                            }
                            Some(packets)
                        }
                        _ => None,
                    },
                    _ = tokio::time::sleep_until(wake.into()) => None,
                },
            };
            match received {
                Some(packets) => {
                    for (proto, source, data) in packets {
                        if let Ok(input) = Receive::new(proto, source, self.addr, &data) {
                            self.rtc
                                .handle_input(Input::Receive(Instant::now(), input))
                                .unwrap();
                        }
                    }
                }
                None => self
                    .rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .unwrap(),
            }
        }
    }
}

/// A fake H.264 access unit: SPS, PPS and IDR for a keyframe, one non-IDR slice otherwise.
/// `n` is written into the payload so frames can be told apart; `len` makes it span several
/// RTP packets.
pub fn frame(n: u32, keyframe: bool, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len + 32);
    if keyframe {
        f.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xaa]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    } else {
        f.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    }
    // As hex digits: raw bytes could form a start code.
    f.extend_from_slice(format!("{n:08x}").as_bytes());
    // Filler that cannot form a start code.
    f.extend((0..len).map(|i| 0x10 + (i % 200) as u8));
    f
}

/// The frame number written by [`frame`], read from the last NAL of a received frame.
pub fn frame_number(data: &[u8]) -> Option<u32> {
    let start = data.windows(4).rposition(|w| w == [0, 0, 0, 1])? + 4;
    let digits = data.get(start + 1..start + 9)?;
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}
