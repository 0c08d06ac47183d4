//! Who may push to an `esp32-push://` listener: source address ranges (`?allow=CIDR,...`),
//! a shared key the device sends first (`?key=K`, as the line `KEY K\n`), both, or neither
//! (then only devices on this machine). Plain code: parsing, matching and the key line are
//! tested without a listener.
//!
//! A listener on a public address otherwise turns any stranger's bytes into the camera's
//! picture, so a device must pass both checks that are set before its first byte counts.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The longest key line read (`KEY ` + key + newline); longer is refused.
pub const MAX_KEY_LINE: usize = 256;
/// How long a device has, after connecting, to send its key line.
pub const KEY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest key accepted in the URL (leaves room for `KEY ` and the newline).
const MAX_KEY: usize = MAX_KEY_LINE - 6;

/// An address range: `192.168.1.0/24`, `2001:db8::/32`; a bare address is one host (`/32`,
/// `/128`). Host bits below the prefix are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a
    /// dual-stack listener sees IPv4 devices) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an address range (e.g. 192.168.1.0/24, 2001:db8::/32 or 10.0.0.7)"
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        // `::ffff:10.0.0.0/104` is an IPv4 range written as IPv6: store it as IPv4, the
        // form `contains` compares IPv4 devices in.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The `allow` and `key` of an `esp32-push://` URL. The default (neither): loopback only.
/// `Debug` and `Display` never show the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PushAccess {
    /// Devices must connect from one of these ranges (`?allow=`); empty: no address check
    /// when a key is set, loopback only when not.
    pub allow: Vec<Cidr>,
    /// Devices must first send the line `KEY <key>` (`?key=`).
    pub key: Option<String>,
}

impl PushAccess {
    /// Parse the query of an `esp32-push://` URL (after `?`; may be empty).
    pub fn from_query(query: &str) -> Result<Self, String> {
        let mut access = PushAccess::default();
        let (mut seen_allow, mut seen_key) = (false, false);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "allow" => {
                    if std::mem::replace(&mut seen_allow, true) {
                        return Err(
                            "`allow` given twice: list the ranges in one, comma-separated".into(),
                        );
                    }
                    for range in value.split(',').map(str::trim) {
                        if range.is_empty() {
                            return Err(
                                "`allow=` needs address ranges, e.g. allow=192.168.1.0/24".into()
                            );
                        }
                        access.allow.push(range.parse()?);
                    }
                }
                "key" => {
                    if std::mem::replace(&mut seen_key, true) {
                        return Err("`key` given twice".into());
                    }
                    let key = percent_encoding::percent_decode_str(value)
                        .decode_utf8()
                        .map_err(|_| "the key is not valid UTF-8 once %-decoded".to_owned())?;
                    if key.is_empty() {
                        return Err("`key=` is empty: give the key devices send".into());
                    }
                    if key.len() > MAX_KEY {
                        return Err(format!("the key is longer than {MAX_KEY} bytes"));
                    }
                    if key.chars().any(char::is_control) {
                        return Err("the key has control characters".into());
                    }
                    access.key = Some(key.into_owned());
                }
                other => {
                    return Err(format!(
                    "unknown parameter `{}` (esp32-push takes allow=CIDR[,CIDR...] and key=KEY)",
                    other.chars().take(40).collect::<String>()
                ))
                }
            }
        }
        Ok(access)
    }

    /// Whether a device connecting from `ip` may go on (to its key line, if one is needed).
    pub fn admits_address(&self, ip: IpAddr) -> bool {
        if !self.allow.is_empty() {
            self.allow.iter().any(|range| range.contains(ip))
        } else if self.key.is_some() {
            true
        } else {
            ip.to_canonical().is_loopback()
        }
    }

    /// Why `ip` was refused, for the log (never the key).
    pub fn address_refusal(&self) -> String {
        if self.allow.is_empty() {
            "only devices on this machine may push (add ?allow=CIDR or ?key=KEY to the source URL)"
                .into()
        } else {
            format!("address not in allow={}", self.allowed_list())
        }
    }

    /// Neither `allow` nor `key`: only loopback devices are accepted.
    pub fn loopback_only(&self) -> bool {
        self.allow.is_empty() && self.key.is_none()
    }

    fn allowed_list(&self) -> String {
        let ranges: Vec<String> = self.allow.iter().map(Cidr::to_string).collect();
        ranges.join(",")
    }

    /// Read and check the key line at the start of `stream`, within [`KEY_TIMEOUT`] of
    /// `since`. `Ok`: the bytes that came after the line (the start of the first JPEG).
    /// `Err`: why the device is refused. Without a key, nothing is read.
    pub fn check_key_line<S: Read + SetTimeout>(
        &self,
        stream: &mut S,
        since: Instant,
    ) -> Result<Vec<u8>, String> {
        let Some(key) = &self.key else {
            return Ok(Vec::new());
        };
        let deadline = since + KEY_TIMEOUT;
        let mut line = Vec::with_capacity(64);
        let mut chunk = [0u8; MAX_KEY_LINE];
        let newline = loop {
            if let Some(at) = line.iter().position(|b| *b == b'\n') {
                break at;
            }
            if line.len() >= MAX_KEY_LINE {
                return Err(format!("key line longer than {MAX_KEY_LINE} bytes"));
            }
            // Refuse at once when the start already cannot be `KEY `.
            let seen = line.len().min(4);
            if line[..seen] != b"KEY "[..seen] {
                return Err("no key line (the connection must start with `KEY <key>`)".into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no key line within {KEY_TIMEOUT:?}"));
            }
            stream
                .set_timeout(left)
                .map_err(|e| format!("setting a read timeout: {e}"))?;
            // Never read past the longest line: what follows belongs to the JPEGs.
            let room = MAX_KEY_LINE + 1 - line.len();
            match stream.read(&mut chunk[..room.min(MAX_KEY_LINE)]) {
                Ok(0) => return Err("closed before sending a whole key line".into()),
                Ok(n) => line.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!("no key line within {KEY_TIMEOUT:?}"));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the key line: {e}")),
            }
        };
        if newline > MAX_KEY_LINE {
            return Err(format!("key line longer than {MAX_KEY_LINE} bytes"));
        }
        let rest = line.split_off(newline + 1);
        let text = line[..newline]
            .strip_suffix(b"\r")
            .unwrap_or(&line[..newline]);
        let Some(given) = text.strip_prefix(b"KEY ") else {
            return Err("no key line (the connection must start with `KEY <key>`)".into());
        };
        if !constant_time_eq(given, key.as_bytes()) {
            return Err("wrong key".into());
        }
        Ok(rest)
    }
}

/// A stream whose reads can be given a deadline (a `TcpStream`; tests use other readers).
pub trait SetTimeout {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
}

impl SetTimeout for std::net::TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
    }
}

/// Equal bytes, in a time that depends on the lengths only (not on where they differ), so a
/// stranger cannot find the key a byte at a time by timing refusals.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for PushAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushAccess")
            .field("allow", &self.allow)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The URL's query as given, the key as `***`: `?allow=10.0.0.0/8&key=***`, or nothing.
impl fmt::Display for PushAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = '?';
        if !self.allow.is_empty() {
            write!(f, "{sep}allow={}", self.allowed_list())?;
            sep = '&';
        }
        if self.key.is_some() {
            write!(f, "{sep}key=***")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    impl SetTimeout for Cursor<Vec<u8>> {
        fn set_timeout(&mut self, _: Duration) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ranges_match_their_addresses_only() {
        let lan = cidr("192.168.1.0/24");
        assert!(lan.contains(ip("192.168.1.0")));
        assert!(lan.contains(ip("192.168.1.255")));
        assert!(!lan.contains(ip("192.168.2.1")));
        assert!(!lan.contains(ip("::1")));
        // A dual-stack listener sees IPv4 devices as mapped IPv6 addresses.
        assert!(lan.contains(ip("::ffff:192.168.1.7")));
        // Host bits are cleared; a bare address is one host.
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        let one = cidr("10.0.0.7");
        assert!(one.contains(ip("10.0.0.7")) && !one.contains(ip("10.0.0.8")));
        let all = cidr("0.0.0.0/0");
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("2001:db8::1")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let host6 = cidr("[::1]");
        assert!(host6.contains(ip("::1")) && !host6.contains(ip("::2")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        // An IPv4 range written as mapped IPv6 matches IPv4 devices.
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "300.1.1.1/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "host/24",
            "10.0.0/8",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains("not an address range"), "{bad}: {err}");
        }
    }

    #[test]
    fn queries_parse_and_say_what_is_wrong() {
        assert_eq!(PushAccess::from_query("").unwrap(), PushAccess::default());
        let a = PushAccess::from_query("allow=10.0.0.0/8,2001:db8::/32&key=s%20cret").unwrap();
        assert_eq!(a.allow, vec![cidr("10.0.0.0/8"), cidr("2001:db8::/32")]);
        assert_eq!(a.key.as_deref(), Some("s cret"));
        for (query, expect) in [
            ("allow=", "needs address ranges"),
            ("allow=10.0.0.0/8,", "needs address ranges"),
            ("allow=10.0.0.0/99", "not an address range"),
            ("key=", "empty"),
            ("key", "empty"),
            ("key=a&key=b", "twice"),
            ("allow=10.0.0.1&allow=10.0.0.2", "twice"),
            ("port=1", "unknown parameter `port`"),
            ("key=%0a", "control"),
        ] {
            let err = PushAccess::from_query(query).unwrap_err();
            assert!(err.contains(expect), "{query}: {err}");
        }
        let long = format!("key={}", "k".repeat(MAX_KEY + 1));
        assert!(PushAccess::from_query(&long)
            .unwrap_err()
            .contains("longer"));
    }

    #[test]
    fn who_is_admitted_by_address() {
        let none = PushAccess::default();
        assert!(none.loopback_only());
        assert!(none.admits_address(ip("127.0.0.1")));
        assert!(none.admits_address(ip("::1")));
        assert!(none.admits_address(ip("::ffff:127.0.0.1")));
        assert!(!none.admits_address(ip("192.168.1.2")));
        assert!(none.address_refusal().contains("?allow=CIDR"));
        let key_only = PushAccess::from_query("key=k").unwrap();
        assert!(key_only.admits_address(ip("203.0.113.9")));
        let lan = PushAccess::from_query("allow=10.0.0.0/8").unwrap();
        assert!(lan.admits_address(ip("10.9.9.9")));
        assert!(
            !lan.admits_address(ip("127.0.0.1")),
            "allow replaces loopback"
        );
        assert!(lan.address_refusal().contains("10.0.0.0/8"));
    }

    #[test]
    fn the_key_never_shows() {
        let a = PushAccess::from_query("allow=10.0.0.0/8&key=hunter2").unwrap();
        let shown = format!("{a} {a:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(a.to_string(), "?allow=10.0.0.0/8&key=***");
        assert_eq!(PushAccess::default().to_string(), "");
        assert_eq!(
            PushAccess::from_query("key=x").unwrap().to_string(),
            "?key=***"
        );
    }

    #[test]
    fn key_lines() {
        let access = PushAccess::from_query("key=s3cret").unwrap();
        let check =
            |bytes: &[u8]| access.check_key_line(&mut Cursor::new(bytes.to_vec()), Instant::now());
        assert_eq!(check(b"KEY s3cret\n\xff\xd8rest").unwrap(), b"\xff\xd8rest");
        assert_eq!(check(b"KEY s3cret\r\n").unwrap(), b"");
        for (bytes, expect) in [
            (&b"KEY wrong\n\xff\xd8"[..], "wrong key"),
            (b"KEY s3cret2\n", "wrong key"),
            (b"KEY s3cre\n", "wrong key"),
            (b"\xff\xd8\xff\xe0", "no key line"),
            (b"KEYS s3cret\n", "no key line"),
            (b"KEY s3cret", "closed before"),
            (b"", "closed before"),
        ] {
            let err = check(bytes).unwrap_err();
            assert!(err.contains(expect), "{bytes:?}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        let long = format!("KEY {}\n", "k".repeat(MAX_KEY_LINE));
        assert!(check(long.as_bytes()).unwrap_err().contains("longer than"));
        // No key configured: nothing is read.
        let open = PushAccess::default();
        let mut c = Cursor::new(b"\xff\xd8".to_vec());
        assert_eq!(open.check_key_line(&mut c, Instant::now()).unwrap(), b"");
        assert_eq!(c.position(), 0);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
