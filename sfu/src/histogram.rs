//! Fixed-bucket histograms of durations the SFU measures, kept as counts per bucket so a
//! record costs nothing per packet, a reader can take the difference of two snapshots for a
//! window of its own, and the server's `/metrics` exports them as Prometheus histograms.
//!
//! Two are kept ([`crate::SfuStats`]):
//! * forward dwell: how long a frame stays in the SFU, from the datagram that completed it
//!   (publishers run in str0m's frame mode, so nothing leaves before a frame's last packet
//!   is in) until its last copy to a viewer has been handed to the kernel; one sample per
//!   forwarded frame ([`DWELL_BOUNDS_US`]);
//! * time to first frame: from a viewer's offer being answered to its first frame being
//!   written to it ([`FIRST_FRAME_BOUNDS_US`]).

use std::time::Duration;

/// Dwell buckets' upper bounds, in microseconds (inclusive); the last bucket takes the rest.
/// About 25 % apart: fine enough for a p50 and a p99.
pub const DWELL_BOUNDS_US: [u64; 35] = [
    5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600, 800, 1_000,
    1_200, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 15_000, 20_000, 30_000,
    50_000, 100_000,
];

/// Time-to-first-frame buckets' upper bounds, in microseconds: 50 ms to 30 s. ICE and DTLS
/// take a few round trips, then the viewer waits for a keyframe.
pub const FIRST_FRAME_BOUNDS_US: [u64; 16] = [
    50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 500_000, 750_000, 1_000_000, 1_500_000,
    2_000_000, 3_000_000, 5_000_000, 10_000_000, 20_000_000, 30_000_000,
];

/// Durations, counted per bucket of `bounds_us` plus one overflow bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Histogram {
    /// Upper bounds (µs), for readers of the JSON.
    pub bounds_us: &'static [u64],
    /// Samples per bucket: `counts[i]` ≤ `bounds_us[i]`; the last, above every bound.
    pub counts: Vec<u64>,
    /// The sum of every sample, in µs.
    pub sum_us: u64,
}

impl Histogram {
    pub fn new(bounds_us: &'static [u64]) -> Self {
        Histogram {
            bounds_us,
            counts: vec![0; bounds_us.len() + 1],
            sum_us: 0,
        }
    }

    pub fn record(&mut self, sample: Duration) {
        let us = sample.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = self.bounds_us.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0–1), in µs; `None` without
    /// samples or when it falls in the overflow bucket.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        quantile_us(self.bounds_us, &self.counts, q)
    }
}

/// [`Histogram::quantile_us`] over bare counts (e.g. the difference of two snapshots read
/// back from JSON).
pub fn quantile_us(bounds_us: &[u64], counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return bounds_us.get(i).copied();
        }
    }
    None
}

/// A [`Histogram`] over [`DWELL_BOUNDS_US`] (its own type, so counters default to it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct DwellHistogram(pub Histogram);

impl Default for DwellHistogram {
    fn default() -> Self {
        DwellHistogram(Histogram::new(&DWELL_BOUNDS_US))
    }
}

/// A [`Histogram`] over [`FIRST_FRAME_BOUNDS_US`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FirstFrameHistogram(pub Histogram);

impl Default for FirstFrameHistogram {
    fn default() -> Self {
        FirstFrameHistogram(Histogram::new(&FIRST_FRAME_BOUNDS_US))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_the_bucket_of_their_upper_bound() {
        let mut h = DwellHistogram::default().0;
        for us in [0, 5, 6, 10, 99, 100, 101, 100_000, 100_001, 5_000_000] {
            h.record(Duration::from_micros(us));
        }
        let at = |bound: u64| h.counts[DWELL_BOUNDS_US.iter().position(|&b| b == bound).unwrap()];
        assert_eq!(at(5), 2, "0 and 5");
        assert_eq!(at(10), 2, "6 and 10");
        assert_eq!(at(100), 2, "99 and 100");
        assert_eq!(at(120), 1, "101");
        assert_eq!(at(100_000), 1);
        assert_eq!(h.counts[DWELL_BOUNDS_US.len()], 2, "overflow");
        assert_eq!(h.samples(), 10);
        assert_eq!(
            h.sum_us,
            5 + 6 + 10 + 99 + 100 + 101 + 100_000 + 100_001 + 5_000_000
        );
    }

    #[test]
    fn quantiles_read_the_bucket_bounds() {
        let mut h = FirstFrameHistogram::default().0;
        assert_eq!(h.quantile_us(0.5), None);
        for _ in 0..98 {
            h.record(Duration::from_millis(70));
        }
        h.record(Duration::from_millis(900));
        h.record(Duration::from_secs(31));
        assert_eq!(h.quantile_us(0.5), Some(100_000));
        assert_eq!(h.quantile_us(0.98), Some(100_000));
        assert_eq!(h.quantile_us(0.99), Some(1_000_000));
        assert_eq!(h.quantile_us(1.0), None, "the overflow bucket has no bound");
    }
}
