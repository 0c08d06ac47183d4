//! NATed sites for end-to-end tests, built by `tests/scripts/topology` (read its header for
//! the layout): four hosts, each behind its own gateway namespace, hanging off the test
//! network namespace where the test process, the server and coturn run on
//! [`Topology::server_ip`]. ICE then has to get through real Linux NATs (nftables
//! masquerade), as viewers and publishers do out there, instead of finding everyone on one
//! address.
//!
//! Only inside the test namespace (`scripts/netns`, as root): the script refuses to run
//! elsewhere, because it turns on forwarding in the namespace it runs in. The calls block
//! for a few milliseconds (`ip` and `nft` runs), fine from async tests.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context};

use crate::browser::NETNS_IP;
use crate::child::{workspace_binary, ChildGuard};

/// Where a host sits, i.e. which NAT it is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    /// Masquerade keeping ports where it can (endpoint-independent mapping): where the
    /// publisher lives.
    Home,
    /// Symmetric NAT (`masquerade fully-random`): a new public port per destination, so
    /// a server-reflexive candidate is useless to any other peer.
    Phone,
    /// Masquerade, and no UDP out at all: only TCP (TURN over TCP/TLS) gets through.
    Office,
    /// Plain masquerade, cone-like like home: P2P with home works by hole punching.
    Cafe,
}

impl Site {
    pub const ALL: [Site; 4] = [Site::Home, Site::Phone, Site::Office, Site::Cafe];

    /// The site's name in the script (and in its namespace names).
    pub fn name(self) -> &'static str {
        match self {
            Site::Home => "home",
            Site::Phone => "phone",
            Site::Office => "office",
            Site::Cafe => "cafe",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One built topology; dropping it tears everything down (stop what runs in its
/// namespaces first: `down` leaves processes alone).
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    /// Each site's gateway outside address, as the script last reported it (`readdress`
    /// changes it).
    public: Mutex<[IpAddr; 4]>,
}

impl Topology {
    /// Builds the four sites under a prefix no other topology uses: namespace names are
    /// global to the machine, so the pid sets it apart from other test processes, a
    /// counter from other topologies in this one.
    pub fn up() -> anyhow::Result<Topology> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("sl{}x{n}", std::process::id());
        // No live process shares our pid, so anything under this prefix is a leftover of
        // a killed run, whose namespaces outlive it in /run/netns.
        let _ = run(&["down", &prefix]);
        let stdout = run(&["up", &prefix])?;
        let topology = Topology {
            prefix,
            public: Mutex::new([IpAddr::V4(Ipv4Addr::UNSPECIFIED); 4]),
        };
        // From here on, dropping `topology` on an error tears it down.
        {
            let mut public = topology.public.lock().unwrap();
            for site in Site::ALL {
                // Lines of "SITE PUBLIC_IP".
                let ip: IpAddr = stdout
                    .lines()
                    .filter_map(|line| line.split_once(' '))
                    .find(|(name, _)| *name == site.name())
                    .and_then(|(_, ip)| ip.trim().parse().ok())
                    .with_context(|| format!("no address for {} in: {stdout}", site.name()))?;
                public[site.index()] = ip;
            }
        }
        Ok(topology)
    }

    /// Where the server and coturn listen: the test namespace's own address, which every
    /// site reaches through its NAT.
    pub fn server_ip() -> IpAddr {
        NETNS_IP
    }

    /// The network namespace of `site`'s host, for `ip netns exec`.
    pub fn host_ns(&self, site: Site) -> String {
        format!("{}-{}", self.prefix, site.name())
    }

    /// `program` to run on `site`'s host (`ip netns exec NS program`); add its arguments.
    /// For tokio, `tokio::process::Command::from(..)`.
    pub fn command(&self, site: Site, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec"])
            .arg(self.host_ns(site))
            .arg(program);
        command
    }

    /// `site`'s public address: its gateway's outside address, what the server sees as
    /// the source (the host itself never knows it).
    /// The publisher binary on the host of `site`, publishing the test pattern at `size`
    /// as `camera` to the server at `ws_url`; killed when the guard drops.
    pub fn publisher(
        &self,
        site: Site,
        ws_url: &str,
        camera: &str,
        size: (u32, u32),
    ) -> anyhow::Result<ChildGuard> {
        let child = self
            .command(site, workspace_binary("sightline-publisher")?)
            .args(["--server", ws_url, "--camera-id", camera, "--no-state"])
            .args([
                "--width",
                &size.0.to_string(),
                "--height",
                &size.1.to_string(),
            ])
            // PUBLISHER_LOG=info (a RUST_LOG filter) shows its log among the test's output.
            .env(
                "RUST_LOG",
                std::env::var("PUBLISHER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(match std::env::var_os("PUBLISHER_LOG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .context("starting the publisher")?;
        Ok(ChildGuard(child))
    }

    pub fn public_ip(&self, site: Site) -> IpAddr {
        self.public.lock().unwrap()[site.index()]
    }

    /// From now on `site`'s gateway drops all UDP from inside, as a network that starts
    /// blocking it (a captive portal, a firewall rule, a phone handed to a UDP-hostile
    /// network on the same address): flows over UDP die, TCP keeps working.
    pub fn block_udp(&self, site: Site) -> anyhow::Result<()> {
        let gateway = format!("{}-{}-gw", self.prefix, site.name());
        let rule = "add rule ip sightline forward iifname lan meta l4proto udp drop";
        let status = Command::new("ip")
            .args(["netns", "exec", &gateway, "nft"])
            .args(rule.split(' '))
            .status()
            .context("running nft")?;
        if !status.success() {
            bail!("nft could not block UDP at {gateway}: {status}");
        }
        Ok(())
    }

    /// Moves `site` to a new public address, as a phone changing networks mid-stream: the
    /// gateway's NAT mappings are gone, so existing flows break and new packets (even from
    /// the same sockets) come out from the new [`Topology::public_ip`].
    pub fn readdress(&self, site: Site) -> anyhow::Result<()> {
        let stdout = run(&["readdress", &self.prefix, site.name()])?;
        let ip: IpAddr = stdout
            .trim()
            .parse()
            .with_context(|| format!("readdress printed {stdout:?}"))?;
        self.public.lock().unwrap()[site.index()] = ip;
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(e) = run(&["down", &self.prefix]) {
            eprintln!("topology {}: {e:#}", self.prefix);
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/topology")
}

/// Runs the script with `args`; its stdout, or an error carrying what it printed on stderr.
fn run(args: &[&str]) -> anyhow::Result<String> {
    let script = script();
    // Through sh: the script works even where the checkout lost its executable bit.
    let output = Command::new("sh")
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "topology {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
