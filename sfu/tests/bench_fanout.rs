//! Fan-out cost: one publisher, 50 viewers over loopback. Prints the SFU thread's CPU time
//! per forwarded RTP packet. A benchmark, not a pass/fail test:
//! `cargo test --release -p sightline-sfu --test bench_fanout -- --ignored --nocapture`
//! `SFU_BENCH_FRAME_LEN=1500` mimics a low-bitrate camera (~2 packets per frame), where
//! per-peer fixed costs (timers, RTCP) weigh more than per-packet ones. `SFU_BENCH_TCP=1`:
//! the viewers reach the SFU over ICE-TCP only (one connection each), for TCP against UDP.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sightline_sfu::{Sfu, SfuConfig, SfuHandle};
use str0m::Event;
use support::{frame, Client};

const VIEWERS: usize = 50;
const FRAME_LEN: usize = 12_000;

fn frame_len() -> usize {
    std::env::var("SFU_BENCH_FRAME_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FRAME_LEN)
}

/// (utime, stime) of one thread, in seconds.
fn thread_cpu(tid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f[i].parse::<f64>().unwrap() / 100.0;
    (ticks(11), ticks(12))
}

#[test]
#[ignore = "benchmark"]
fn fanout_cpu_per_packet() {
    // The SFU gets a thread of its own so its CPU time can be read apart from the clients'.
    let (tx, rx) = mpsc::channel::<(SfuHandle, String)>();
    std::thread::Builder::new()
        .name("sfu".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sfu = Sfu::start(SfuConfig {
                    bind_ips: vec![IpAddr::from([127, 0, 0, 1])],
                    ..SfuConfig::default()
                })
                .await
                .unwrap();
                let tid = std::fs::read_link("/proc/thread-self")
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                tx.send((sfu, tid)).unwrap();
                std::future::pending::<()>().await;
            });
        })
        .unwrap();
    let (sfu, tid) = rx.recv().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let frames_seen = Arc::new(AtomicU32::new(0));
        let tcp = std::env::var_os("SFU_BENCH_TCP").is_some_and(|v| v == "1");
        for _ in 0..VIEWERS {
            let mut v = if tcp {
                Client::new_tcp(sfu.tcp_addrs()[0]).await
            } else {
                Client::new().await
            };
            v.connect(&sfu, "cam", false).await;
            let seen = frames_seen.clone();
            tokio::spawn(async move {
                loop {
                    for e in v.step(Duration::from_millis(100)).await {
                        if let Event::MediaData(_) = e {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        let mut p = Client::new().await;
        p.connect(&sfu, "cam", true).await;
        tokio::spawn(async move {
            let mut n = 0u32;
            let mut next = Instant::now();
            let mut kf = false;
            loop {
                for e in p.step(next.saturating_duration_since(Instant::now())).await {
                    kf |= matches!(e, Event::KeyframeRequest(_));
                }
                if Instant::now() >= next {
                    if p.rtc.is_connected() {
                        p.write_frame(
                            n as u64 * 3000,
                            &frame(n, kf || n.is_multiple_of(60), frame_len()),
                        );
                        kf = false;
                        n += 1;
                    }
                    next += Duration::from_millis(33);
                }
            }
        });
        // Warm up until every viewer gets frames.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let s0 = sfu.stats().await;
        let c0 = thread_cpu(&tid);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(8)).await;
        let s1 = sfu.stats().await;
        let c1 = thread_cpu(&tid);
        let packets = s1.packets_forwarded - s0.packets_forwarded;
        let frames = s1.frames_forwarded - s0.frames_forwarded;
        let (user, sys) = (c1.0 - c0.0, c1.1 - c0.1);
        let cpu = user + sys;
        println!(
            "{VIEWERS} viewers over {}, {:.1} s: {frames} frames / {packets} packets forwarded, \
             SFU thread CPU {cpu:.2} s (user {user:.2} s, system {sys:.2} s) = {:.2} us per \
             packet ({:.0} packets/s); \
             viewers saw {} frames in total",
            if tcp { "ICE-TCP" } else { "UDP" },
            t0.elapsed().as_secs_f64(),
            cpu * 1e6 / packets.max(1) as f64,
            packets as f64 / t0.elapsed().as_secs_f64(),
            frames_seen.load(Ordering::Relaxed),
        );
        println!("{s1:?}");
    });
}
