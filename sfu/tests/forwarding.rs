//! End-to-end over 127.0.0.1: str0m client peers ↔ the SFU.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_sfu::{
    PeerId, Sfu, SfuConfig, SfuError, SfuEvent, SfuHandle, SfuStats, ViewerAccess,
};
use str0m::media::Direction;
use str0m::Event;
use support::{frame, frame_number, Client};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

const FRAME_LEN: usize = 3000; // three RTP packets or so

async fn start() -> SfuHandle {
    Sfu::start(SfuConfig {
        bind_ips: vec![IpAddr::from([127, 0, 0, 1])],
        keyframe_request_interval: Duration::from_millis(100),
        ..SfuConfig::default()
    })
    .await
    .unwrap()
}

/// A publisher that sends 30 fps of delta frames and a keyframe only when asked: proves
/// viewers' first pictures come from the SFU's keyframe requests.
fn spawn_publisher(mut client: Client, first: u32, requests: Arc<AtomicU32>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = first;
        let mut keyframe_wanted = false;
        let mut next = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            for e in client.step(wait).await {
                if let Event::KeyframeRequest(_) = e {
                    requests.fetch_add(1, Ordering::Relaxed);
                    keyframe_wanted = true;
                }
            }
            if Instant::now() >= next {
                if client.rtc.is_connected() {
                    client.write_frame(n as u64 * 3000, &frame(n, keyframe_wanted, FRAME_LEN));
                    keyframe_wanted = false;
                    n += 1;
                }
                next += Duration::from_millis(33);
            }
        }
    })
}

/// A viewer reporting `(is_keyframe, frame number)` for every frame it receives.
fn spawn_viewer(mut client: Client) -> (JoinHandle<()>, mpsc::UnboundedReceiver<(bool, u32)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            for e in client.step(Duration::from_millis(100)).await {
                if let Event::MediaData(d) = e {
                    let n = frame_number(&d.data).expect("frame number");
                    let _ = tx.send((d.is_keyframe(), n));
                }
            }
        }
    });
    (task, rx)
}

async fn next_frame(rx: &mut mpsc::UnboundedReceiver<(bool, u32)>) -> (bool, u32) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a frame within 10 s")
        .expect("viewer alive")
}

async fn wait_closed(events: &mut broadcast::Receiver<SfuEvent>, peer: PeerId) -> String {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(SfuEvent::PeerClosed { peer: p, reason })) if p == peer => return reason,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("events: {e}"),
            Err(_) => panic!("{peer} not closed in time"),
        }
    }
}

fn gauges(s: &SfuStats) -> (usize, usize, usize, usize) {
    (s.peers, s.publishers, s.viewers, s.tracks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_waiting_for_a_camera_gets_keyframe_first_and_survives_publisher_reconnect() {
    let sfu = start().await;
    let mut events = sfu.events();

    // The viewer subscribes before the camera is live.
    let mut viewer = Client::new().await;
    let viewer_id = viewer.connect(&sfu, "cam", false).await.peer;
    let (viewer_task, mut frames) = spawn_viewer(viewer);

    let requests_a = Arc::new(AtomicU32::new(0));
    let mut pub_a = Client::new().await;
    let a = pub_a.connect(&sfu, "cam", true).await.peer;
    let task_a = spawn_publisher(pub_a, 0, requests_a.clone());

    let (kf, first) = next_frame(&mut frames).await;
    assert!(kf, "first frame must be a keyframe (got delta #{first})");
    let mut last = first;
    for _ in 0..20 {
        let (_, n) = next_frame(&mut frames).await;
        assert!(n > last, "frames in order: {n} after {last}");
        last = n;
    }
    assert!(
        requests_a.load(Ordering::Relaxed) >= 1,
        "publisher was asked"
    );
    let s = sfu.stats().await;
    assert_eq!(gauges(&s), (2, 1, 1, 2), "{s:?}");
    assert!(s.keyframe_requests_sent >= 1, "{s:?}");
    assert!(s.frames_forwarded >= 21, "{s:?}");
    assert!(s.packets_forwarded >= s.frames_forwarded, "{s:?}");

    // Publisher A goes away; B takes the camera over. The viewer does not renegotiate.
    sfu.close_peer(a).await;
    task_a.abort();
    wait_closed(&mut events, a).await;
    assert_eq!(sfu.stats().await.publishers, 0);

    let mut pub_b = Client::new().await;
    let b = pub_b.connect(&sfu, "cam", true).await.peer;
    let task_b = spawn_publisher(pub_b, 100_000, Arc::new(AtomicU32::new(0)));
    // Drain A's leftovers, then B's first frame must be a keyframe.
    let (kf, n) = loop {
        let f = next_frame(&mut frames).await;
        if f.1 >= 100_000 {
            break f;
        }
    };
    assert!(
        kf,
        "first frame of the new publisher must be a keyframe (#{n})"
    );
    for _ in 0..10 {
        let (_, m) = next_frame(&mut frames).await;
        assert!(m > 100_000);
    }

    sfu.close_peer(viewer_id).await;
    sfu.close_peer(b).await;
    viewer_task.abort();
    task_b.abort();
    let s = sfu.stats().await;
    assert_eq!(gauges(&s), (0, 0, 0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_viewers_of_a_live_camera_all_start_on_a_keyframe() {
    let sfu = start().await;
    let requests = Arc::new(AtomicU32::new(0));
    let mut publisher = Client::new().await;
    publisher.connect(&sfu, "cam", true).await;
    let task = spawn_publisher(publisher, 0, requests.clone());
    // The camera is live (its frames reach the SFU) before anyone watches.
    let live = async {
        while sfu.stats().await.frames_received < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), live)
        .await
        .expect("the publisher's frames reach the SFU");

    let mut viewers = Vec::new();
    for _ in 0..5 {
        let mut v = Client::new().await;
        v.connect(&sfu, "cam", false).await;
        viewers.push(spawn_viewer(v));
    }
    for (_, frames) in &mut viewers {
        let (kf, n) = next_frame(frames).await;
        assert!(kf, "first frame #{n} must be a keyframe");
        for _ in 0..5 {
            next_frame(frames).await;
        }
    }
    let s = sfu.stats().await;
    assert_eq!(gauges(&s), (6, 1, 5, 6), "{s:?}");
    // Five viewers connecting within a few ms: coalesced, far fewer than one per viewer
    // would be plus retries.
    assert!(
        (1..=5).contains(&s.keyframe_requests_sent),
        "keyframe requests: {s:?}"
    );
    task.abort();
    for (t, _) in viewers {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_vanishes_is_reaped() {
    let sfu = start().await;
    let mut events = sfu.events();
    let mut viewer = Client::new().await;
    let id = viewer.connect(&sfu, "cam", false).await.peer;
    let (task, _frames) = spawn_viewer(viewer);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(SfuEvent::PeerConnected { peer })) if peer == id => break,
            Ok(Ok(_)) => {}
            other => panic!("no PeerConnected: {other:?}"),
        }
    }
    assert_eq!(sfu.stats().await.viewers, 1);
    task.abort(); // the client is gone without a word
    let reason = wait_closed(&mut events, id).await;
    assert!(!reason.is_empty());
    assert_eq!(gauges(&sfu.stats().await), (0, 0, 0, 0));
}

#[tokio::test]
async fn bad_input_is_an_error_not_a_panic() {
    let sfu = start().await;
    assert!(matches!(
        sfu.subscribe("cam", "this is not sdp", ViewerAccess::ViewOnly)
            .await,
        Err(SfuError::InvalidSdp(_))
    ));
    assert!(matches!(
        sfu.publish("cam", "").await,
        Err(SfuError::InvalidSdp(_))
    ));

    // A viewer offering to send only: nothing the SFU can send on.
    let mut c = Client::new().await;
    let (offer, _) = c.offer(Direction::SendOnly);
    match sfu.subscribe("cam", &offer, ViewerAccess::ViewOnly).await {
        Err(SfuError::InvalidSdp(m)) => assert!(m.contains("video"), "{m}"),
        other => panic!("expected InvalidSdp, got {:?}", other.map(|a| a.peer)),
    }
    // A publisher offering to receive only.
    let mut c = Client::new().await;
    let (offer, _) = c.offer(Direction::RecvOnly);
    assert!(matches!(
        sfu.publish("cam", &offer).await,
        Err(SfuError::InvalidSdp(_))
    ));

    let mut c = Client::new().await;
    let answer = c.connect(&sfu, "cam", false).await;
    assert!(!answer.candidates.is_empty());
    assert!(answer.sdp.contains("a=ice-lite"), "{}", answer.sdp);
    assert!(answer.sdp.contains("H264"), "{}", answer.sdp);
    assert!(matches!(
        sfu.add_remote_candidate(answer.peer, "candidate:garbage")
            .await,
        Err(SfuError::InvalidCandidate(_))
    ));
    sfu.add_remote_candidate(
        answer.peer,
        "a=candidate:1 1 udp 2113937151 127.0.0.1 40000 typ host",
    )
    .await
    .unwrap();
    sfu.add_remote_candidate(answer.peer, "").await.unwrap();
    assert!(matches!(
        sfu.add_remote_candidate(PeerId(9999), "candidate:1 1 udp 1 127.0.0.1 1 typ host")
            .await,
        Err(SfuError::UnknownPeer(_))
    ));
    sfu.close_peer(PeerId(9999)).await;
    sfu.close_peer(answer.peer).await;
    assert_eq!(gauges(&sfu.stats().await), (0, 0, 0, 0));
}
