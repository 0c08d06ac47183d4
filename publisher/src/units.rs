//! Parsing human-friendly command-line values.

/// Parse a bitrate in bits per second: `2000000`, `2M`, `2.5m`, `800k`, `800kbps`.
pub fn parse_bitrate(s: &str) -> Result<u32, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bps")
        .or_else(|| t.strip_suffix("bit/s"))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a bitrate (examples: 2000000, 2M, 800k)"))?;
    let bps = value * mult;
    if !bps.is_finite() || !(10_000.0..=100_000_000.0).contains(&bps) {
        return Err(format!("`{s}` is outside 10k..100M bit/s"));
    }
    Ok(bps.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_bitrate("2M"), Ok(2_000_000));
        assert_eq!(parse_bitrate("2.5m"), Ok(2_500_000));
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("800kbps"), Ok(800_000));
        assert_eq!(parse_bitrate("1500000"), Ok(1_500_000));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "fast", "-1M", "2X", "1k", "1G", "NaNk"] {
            assert!(parse_bitrate(bad).is_err(), "{bad}");
        }
    }
}
