//! Camera control through the SFU, end to end over 127.0.0.1: a str0m publisher and str0m
//! viewers with `control` data channels.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sightline_sfu::{RateLimit, Sfu, SfuConfig, SfuHandle, ViewerAccess};
use str0m::Event;
use support::{frame, frame_number, Client};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

/// What a peer saw.
#[derive(Debug)]
enum Seen {
    ChannelOpen,
    Control(Value),
    Frame { keyframe: bool, n: u32 },
}

/// A client peer running in its own task: reports what it sees, writes what it is given on
/// its control channel, and (as a publisher) sends 30 fps of delta frames with a keyframe
/// whenever asked.
struct Peer {
    id: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    outbox: mpsc::UnboundedSender<String>,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    async fn connect(sfu: &SfuHandle, publish: bool, access: ViewerAccess) -> Peer {
        let mut client = Client::new().await;
        let id = client
            .connect_with(sfu, "cam", publish, Some(access))
            .await
            .peer
            .to_string();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (outbox, mut outbox_rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            let mut n = 0u32;
            let mut keyframe_wanted = false;
            let mut next_frame = Instant::now();
            loop {
                for e in client.step(Duration::from_millis(5)).await {
                    let seen = match e {
                        Event::ChannelOpen(_, label) if label == "control" => Seen::ChannelOpen,
                        Event::ChannelData(d) => Seen::Control(
                            serde_json::from_slice(&d.data).expect("control messages are JSON"),
                        ),
                        Event::MediaData(d) => Seen::Frame {
                            keyframe: d.is_keyframe(),
                            n: frame_number(&d.data).expect("frame number"),
                        },
                        Event::KeyframeRequest(_) => {
                            keyframe_wanted = true;
                            continue;
                        }
                        _ => continue,
                    };
                    let _ = seen_tx.send(seen);
                }
                while let Ok(text) = outbox_rx.try_recv() {
                    assert!(client.send_control(&text), "control channel open");
                }
                if publish && client.rtc.is_connected() && Instant::now() >= next_frame {
                    client.write_frame(n as u64 * 3000, &frame(n, keyframe_wanted, 2000));
                    keyframe_wanted = false;
                    n += 1;
                    next_frame += Duration::from_millis(33);
                }
            }
        });
        Peer {
            id,
            seen,
            outbox,
            task,
        }
    }

    fn send(&self, msg: Value) {
        self.outbox.send(msg.to_string()).unwrap();
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("something within 10 s")
            .expect("peer task alive")
    }

    /// The next control message, skipping frames.
    async fn control(&mut self) -> Value {
        loop {
            if let Seen::Control(v) = self.next().await {
                return v;
            }
        }
    }

    async fn wait_open(&mut self) {
        while !matches!(self.next().await, Seen::ChannelOpen) {}
    }

    /// Frames seen within `d`, dropping control messages.
    async fn frames_during(&mut self, d: Duration) -> Vec<(bool, u32)> {
        let end = tokio::time::Instant::now() + d;
        let mut frames = Vec::new();
        while let Ok(Some(s)) = tokio::time::timeout_at(end, self.seen.recv()).await {
            if let Seen::Frame { keyframe, n } = s {
                frames.push((keyframe, n));
            }
        }
        frames
    }

    async fn next_frame(&mut self) -> (bool, u32) {
        loop {
            if let Seen::Frame { keyframe, n } = self.next().await {
                return (keyframe, n);
            }
        }
    }
}

async fn start(limit: RateLimit) -> SfuHandle {
    Sfu::start(SfuConfig {
        bind_ips: vec![IpAddr::from([127, 0, 0, 1])],
        keyframe_request_interval: Duration::from_millis(100),
        control_rate_limit: limit,
        ..SfuConfig::default()
    })
    .await
    .unwrap()
}

/// A publisher and viewers A (may control) and B (view-only), channels open, welcomes read.
async fn setup(limit: RateLimit) -> (SfuHandle, Peer, Peer, Peer) {
    let sfu = start(limit).await;
    let mut publisher = Peer::connect(&sfu, true, ViewerAccess::Control).await;
    publisher.wait_open().await;
    let mut a = Peer::connect(&sfu, false, ViewerAccess::Control).await;
    let mut b = Peer::connect(&sfu, false, ViewerAccess::ViewOnly).await;
    for (viewer, may_control) in [(&mut a, true), (&mut b, false)] {
        viewer.wait_open().await;
        let w = viewer.control().await;
        assert_eq!(w["type"], "welcome", "{w}");
        assert_eq!(w["v"], 1);
        assert_eq!(w["viewer"], viewer.id.as_str());
        assert_eq!(w["camera"], "cam");
        assert_eq!(w["may_control"], may_control);
    }
    (sfu, publisher, a, b)
}

fn command(ty: &str, request_id: &str) -> Value {
    json!({"v": 1, "type": ty, "request_id": request_id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_to_the_publisher_tagged_and_replies_only_to_the_sender() {
    let (sfu, mut publisher, mut a, mut b) = setup(RateLimit::default()).await;

    a.send(json!({"v":1,"type":"update_settings","request_id":"r1",
                  "settings":{"bitrate":1500000},"from":"forged"}));
    let cmd = publisher.control().await;
    assert_eq!(cmd["type"], "update_settings");
    assert_eq!(cmd["request_id"], "r1");
    assert_eq!(cmd["from"], a.id.as_str(), "tagged by the SFU: {cmd}");
    assert_eq!(cmd["settings"]["bitrate"], 1500000);

    publisher.send(json!({"v":1,"type":"response","request_id":"r1","to":a.id,
                          "success":true,"message":"applied","timestamp":1}));
    let reply = a.control().await;
    assert_eq!(
        (reply["type"].as_str(), reply["request_id"].as_str()),
        (Some("response"), Some("r1"))
    );

    // A broadcast reaches both; B's first control message is that broadcast, so the reply
    // (sent before it on the same ordered path) never went to B.
    publisher.send(json!({"v":1,"type":"state","settings":{"bitrate":1500000},
                          "status":{"streaming":true},"by":a.id,"changed":["bitrate"],"timestamp":2}));
    let a_id = a.id.clone();
    for viewer in [&mut a, &mut b] {
        let s = viewer.control().await;
        assert_eq!(s["type"], "state", "{s}");
        assert_eq!(s["by"], a_id.as_str());
    }

    // A viewer joining later gets capabilities and the latest state at once.
    publisher.send(json!({"v":1,"type":"capabilities","settings":{"bitrate":
        {"type":"int","min":100000,"max":8000000,"step":1,"apply":"live"}}}));
    assert_eq!(a.control().await["type"], "capabilities");
    assert_eq!(b.control().await["type"], "capabilities");
    let mut c = Peer::connect(&sfu, false, ViewerAccess::ViewOnly).await;
    c.wait_open().await;
    let got: Vec<String> = [c.control().await, c.control().await, c.control().await]
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["welcome", "capabilities", "state"]);

    // Read-only commands from a view-only viewer go through, tagged.
    b.send(command("get_status", "s1"));
    let cmd = publisher.control().await;
    assert_eq!(
        (cmd["type"].as_str(), cmd["from"].as_str()),
        (Some("get_status"), Some(b.id.as_str()))
    );
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_only_is_refused_by_the_sfu_and_the_rate_limit_answers() {
    let limit = RateLimit {
        per_second: 1.0,
        burst: 4,
    };
    let (sfu, mut publisher, mut a, mut b) = setup(limit).await;

    b.send(json!({"v":1,"type":"update_settings","request_id":"w1","settings":{"fps":5}}));
    let r = b.control().await;
    assert_eq!(r["success"], false);
    assert_eq!(r["request_id"], "w1");
    assert_eq!(r["error"]["code"], "forbidden");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("this viewer is view-only"),
        "{r}"
    );

    // Malformed input is answered by the SFU too.
    b.send(json!({"v":2,"type":"get_status","request_id":"w2"}));
    assert_eq!(b.control().await["error"]["code"], "unsupported_version");
    b.send(json!({"v":1,"type":"zoom","request_id":"w3"}));
    assert_eq!(b.control().await["error"]["code"], "unknown_command");

    // The publisher's first command is A's: B's never reached it.
    for i in 0..5 {
        a.send(command("request_keyframe", &format!("k{i}")));
    }
    for i in 0..4 {
        let cmd = publisher.control().await;
        assert_eq!(cmd["request_id"], format!("k{i}"), "{cmd}");
        assert_eq!(cmd["from"], a.id.as_str());
    }
    // The fifth is over the burst of four.
    let r = a.control().await;
    assert_eq!(r["request_id"], "k4");
    assert_eq!(r["error"]["code"], "rate_limited", "{r}");
    let retry = r["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&retry), "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("retry after"),
        "{r}"
    );

    // After the wait, accepted again.
    tokio::time::sleep(Duration::from_millis(retry + 50)).await;
    a.send(command("get_status", "after"));
    assert_eq!(publisher.control().await["request_id"], "after");
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_viewer_gets_no_video_and_resumes_at_a_keyframe() {
    let (sfu, _publisher, mut a, mut b) = setup(RateLimit::default()).await;
    assert!(a.next_frame().await.0, "first frame is a keyframe");
    b.next_frame().await;

    a.send(command("pause", "p1"));
    let r = a.control().await;
    assert_eq!(
        (r["request_id"].as_str(), r["success"].as_bool()),
        (Some("p1"), Some(true)),
        "{r}"
    );
    // Frames already on the way may still land; after that, nothing for A while B goes on.
    a.frames_during(Duration::from_millis(200)).await;
    b.frames_during(Duration::from_millis(200)).await;
    let paused = a.frames_during(Duration::from_millis(600)).await;
    assert!(paused.is_empty(), "paused viewer got {paused:?}");
    // B's frames of those 600 ms are queued in its channel.
    let b_frames = b.frames_during(Duration::from_millis(10)).await;
    assert!(
        b_frames.len() >= 10,
        "the other viewer keeps its video: {b_frames:?}"
    );

    a.send(command("resume", "p2"));
    let r = a.control().await;
    assert_eq!(
        (r["request_id"].as_str(), r["success"].as_bool()),
        (Some("p2"), Some(true)),
        "{r}"
    );
    let (keyframe, first) = a.next_frame().await;
    assert!(keyframe, "video resumes at a keyframe (got delta #{first})");
    let (_, second) = a.next_frame().await;
    assert!(second > first);
    sfu.shutdown().await;
}

/// An API caller's command as the REST door sends it.
async fn api(
    sfu: &SfuHandle,
    msg: Value,
    access: ViewerAccess,
    timeout: Duration,
) -> Option<Value> {
    sfu.control("cam", &msg.to_string(), access, "alice", timeout)
        .await
        .expect("SFU running")
        .map(|text| serde_json::from_str(&text).expect("answers are JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_caller_gets_the_publishers_answer_or_nothing_after_its_timeout() {
    let sfu = start(RateLimit::default()).await;
    let r = api(
        &sfu,
        command("get_status", "a0"),
        ViewerAccess::Control,
        WAIT,
    )
    .await
    .expect("the SFU answers at once");
    assert_eq!(
        (r["error"]["code"].as_str(), r["request_id"].as_str()),
        (Some("unavailable"), Some("a0")),
        "{r}"
    );

    let mut publisher = Peer::connect(&sfu, true, ViewerAccess::Control).await;
    publisher.wait_open().await;

    // Relayed tagged with the ticket; the publisher's reply to it comes back.
    let asked = tokio::spawn({
        let sfu = sfu.clone();
        async move {
            api(
                &sfu,
                command("get_status", "a1"),
                ViewerAccess::ViewOnly,
                WAIT,
            )
            .await
        }
    });
    let cmd = publisher.control().await;
    assert_eq!(cmd["request_id"], "a1", "{cmd}");
    let ticket = cmd["from"].as_str().unwrap().to_owned();
    assert!(
        ticket.starts_with("peer-") && ticket != publisher.id,
        "{cmd}"
    );
    publisher.send(
        json!({"v":1,"type":"response","request_id":"a1","to":ticket,
                          "success":true,"message":"status","timestamp":1}),
    );
    let r = asked.await.unwrap().expect("the publisher's answer");
    assert_eq!(
        (r["to"].as_str(), r["success"].as_bool()),
        (Some(ticket.as_str()), Some(true)),
        "{r}"
    );

    // View-only: refused by the SFU; the publisher never sees it (its next command is a2).
    let update = json!({"v":1,"type":"update_settings","request_id":"w","settings":{"fps":5}});
    let r = api(&sfu, update, ViewerAccess::ViewOnly, WAIT)
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let r = api(&sfu, command("pause", "p"), ViewerAccess::Control, WAIT)
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], "bad_message", "{r}");

    // Unanswered: nothing after the timeout, and the late answer goes nowhere.
    let t0 = Instant::now();
    let timeout = Duration::from_millis(300);
    let r = api(
        &sfu,
        command("get_status", "a2"),
        ViewerAccess::Control,
        timeout,
    )
    .await;
    assert_eq!(r, None);
    assert!(t0.elapsed() >= timeout);
    let cmd = publisher.control().await;
    assert_eq!(cmd["request_id"], "a2", "{cmd}");
    publisher.send(
        json!({"v":1,"type":"response","request_id":"a2","to":cmd["from"],
                          "success":true,"message":"late","timestamp":2}),
    );
    let asked = tokio::spawn({
        let sfu = sfu.clone();
        async move {
            api(
                &sfu,
                command("get_status", "a3"),
                ViewerAccess::Control,
                WAIT,
            )
            .await
        }
    });
    let cmd = publisher.control().await;
    assert_eq!(cmd["request_id"], "a3", "{cmd}");
    publisher.send(
        json!({"v":1,"type":"response","request_id":"a3","to":cmd["from"],
                          "success":true,"message":"status","timestamp":3}),
    );
    let r = asked.await.unwrap().unwrap();
    assert_eq!(r["request_id"], "a3", "not the late answer: {r}");

    sfu.shutdown().await;
    assert!(sfu
        .control("cam", "{}", ViewerAccess::Control, "alice", WAIT)
        .await
        .is_err());
}
