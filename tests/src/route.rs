//! Which local IP reaches the server: the address our UDP socket must bind and advertise.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

use anyhow::{anyhow, Context};

/// Host and port of a `ws://host:port/...` URL.
pub fn ws_host_port(ws_url: &str) -> anyhow::Result<(String, u16)> {
    let rest = ws_url
        .strip_prefix("ws://")
        .map(|r| (r, 80))
        .or_else(|| ws_url.strip_prefix("wss://").map(|r| (r, 443)));
    let (rest, default_port) = rest.ok_or_else(|| anyhow!("not a ws:// URL: {ws_url}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("bad IPv6 host in {ws_url}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().context("bad port")?,
            None => default_port,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.parse().context("bad port")?)),
        None => Ok((authority.to_string(), default_port)),
    }
}

/// The local address the OS would use to reach the signaling server. Connecting a UDP
/// socket only picks a route; no packet leaves.
pub fn local_ip_towards(ws_url: &str) -> anyhow::Result<IpAddr> {
    let (host, port) = ws_host_port(ws_url)?;
    let target: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} has no address"))?;
    let any: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let probe = UdpSocket::bind(any)?;
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls() {
        assert_eq!(
            ws_host_port("ws://127.0.0.1:8080/ws").unwrap(),
            ("127.0.0.1".into(), 8080)
        );
        assert_eq!(
            ws_host_port("ws://example.org/ws").unwrap(),
            ("example.org".into(), 80)
        );
        assert_eq!(ws_host_port("wss://[::1]:9/ws").unwrap(), ("::1".into(), 9));
        assert!(ws_host_port("http://x/ws").is_err());
    }

    #[test]
    fn loopback_is_reached_from_loopback() {
        let ip = local_ip_towards("ws://127.0.0.1:9/ws").unwrap();
        assert!(ip.is_loopback());
    }
}
