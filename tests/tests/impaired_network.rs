//! A poor network on both legs, publisher → SFU and SFU → viewer: 5 % loss each way, 100 ms
//! round trip, reordering. NACK and retransmission repair what they can, keyframe requests
//! the rest, and the picture keeps moving.
//!
//! The impairment is a userspace relay (`impair.rs`) spliced in with an nftables rule, so the
//! publisher, the SFU and the viewer run unchanged. `bench impaired` repeats this run and
//! reports the freezes against the 500 ms target; this test's bound is looser, as the
//! machine is shared.

use std::time::Duration;

use sightline_tests::impair::watch_through_poor_network;

const WATCH: Duration = Duration::from_secs(12);
/// The longest the picture may stand still here. A repair that fails twice in a row (the
/// NACK or the retransmission lost again) outlasts the viewer's patience (str0m gives up on
/// a packet after 3 RTT) and costs a keyframe round trip through the same poor network:
/// 0.5–1.5 s at worst in `bench impaired` and in runs of this test. The 500 ms target is
/// the benchmark's; this bound catches a picture that stops.
const MAX_FREEZE: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_survives_loss_delay_and_reordering_on_both_legs() {
    let run = watch_through_poor_network(WATCH, 11).await.unwrap();
    eprintln!("poor network: {run}");
    let (relay, viewer, sfu) = (&run.relay, &run.viewer, &run.sfu);

    // The relay really stood between both peers and the SFU (a peer may check from more
    // than one local address), and really hurt.
    assert!(relay.clients >= 2, "{relay:?}");
    assert!(relay.lost >= 20 && relay.reordered >= 40, "{relay:?}");
    // Losses were repaired by retransmission on both legs: the viewer asked the SFU, the
    // SFU asked the publisher (which offers RTX for this).
    assert!(
        viewer.nacks_sent > 0 && viewer.rtx_packets_received > 0,
        "{viewer:?}"
    );
    assert!(sfu.nacks_sent > 0, "{sfu:?}");
    // The picture kept moving: at 30 fps, most frames arrive, and no freeze is long.
    assert!(run.longest_freeze <= MAX_FREEZE, "{run}");
    assert!(
        run.frames as f64 >= WATCH.as_secs_f64() * 30.0 * 0.8,
        "{run}"
    );
    assert_eq!(viewer.sessions, 1, "{viewer:?}");
}

/// A DTLS handshake that stalls after ICE connects (webrtc-rs's DTLS client can stop
/// resending, see BENCHMARKS.md "Faults") costs the publisher a few seconds, not the 20 s
/// of its whole setup timeout: it gives up and tries a fresh session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_whose_dtls_handshake_stalls_after_ice_tries_again_within_seconds() {
    use sightline_sfu::SfuEvent;
    use sightline_tests::impair::{Impairment, ImpairmentRelay};
    use sightline_tests::{harness, TestPublisher, TestServer};

    let mut config = harness::loopback_server_config();
    config.sfu.tcp_port = None; // ICE-TCP would go round the relay.
    let server = TestServer::start_with(config).await.unwrap();
    let sfu_addr = server.sfu().local_addrs()[0];
    let relay = ImpairmentRelay::start(sfu_addr, Impairment::dtls_stuck(), 1)
        .await
        .unwrap();
    let mut events = server.sfu().events();
    let started = tokio::time::Instant::now();
    let publisher = TestPublisher::start(server.publisher_config("cam-dtls-stuck"));

    // Each publisher session is one peer at the SFU; it closes when the publisher gives up.
    let mut closed_at = Vec::new();
    while closed_at.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("the publisher kept waiting on a stuck handshake")
            .unwrap();
        match event {
            SfuEvent::PeerClosed { .. } => closed_at.push(started.elapsed()),
            SfuEvent::PeerConnected { .. } | SfuEvent::SequenceParameters { .. } => {
                panic!("DTLS got through the relay: {event:?}")
            }
        }
    }
    // ICE takes a moment, then 6 s for the handshake; the old 20 s timeout fails both.
    assert!(closed_at[0] < Duration::from_secs(14), "{closed_at:?}");
    assert!(
        closed_at[1] - closed_at[0] < Duration::from_secs(16),
        "{closed_at:?}"
    );
    assert!(relay.counts().lost > 0, "{:?}", relay.counts());
    publisher.stop().await;
    server.shutdown().await;
}
