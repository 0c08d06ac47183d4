//! How the SFU is set up: ports, addresses, keyframe request spacing, control rate limit.

use std::net::IpAddr;
use std::time::Duration;

use crate::core::RateLimit;

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// UDP port for all media. 0 picks a free port (tests).
    pub udp_port: u16,
    /// ICE over TCP (passive candidates on every bound address) for viewers that cannot
    /// send UDP: `None` turns it off; `Some(0)` listens on the UDP port's number.
    pub tcp_port: Option<u16>,
    /// Addresses to bind (one socket per address, all on `udp_port`) and advertise as host
    /// candidates. Empty means every local IPv4 interface address, loopback included.
    pub bind_ips: Vec<IpAddr>,
    /// An address to advertise in addition (a 1:1 NAT's public address). Packets to it arrive
    /// on the first non-loopback socket.
    pub public_ip: Option<IpAddr>,
    /// Least time between two keyframe requests sent to one publisher: many viewers joining
    /// at once cause one request.
    pub keyframe_request_interval: Duration,
    /// Control messages each viewer may send.
    pub control_rate_limit: RateLimit,
    /// Threads that share out each frame's viewers (the bulk of the work under load): 0
    /// means one per core; 1 keeps everything on the media loop's thread.
    pub media_threads: usize,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            udp_port: 0,
            tcp_port: Some(0),
            bind_ips: Vec::new(),
            public_ip: None,
            keyframe_request_interval: Duration::from_millis(250),
            control_rate_limit: RateLimit::default(),
            media_threads: 0,
        }
    }
}
