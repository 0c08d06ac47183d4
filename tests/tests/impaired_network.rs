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
