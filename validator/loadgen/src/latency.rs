//! Submit → finality latency samples and their percentiles.
//!
//! Samples are kept exactly (microseconds, `u32`: up to 71 minutes) up to
//! [`MAX_EXACT_SAMPLES`]; past that, reservoir sampling with a seeded RNG keeps a
//! uniform subset of fixed size, so memory stays bounded on long runs while the
//! percentiles stay unbiased. Percentiles use the nearest-rank definition of
//! [`dualchain_contract::stats`], the one every reported p50/p95/p99 uses.

use std::time::Duration;

use dualchain_contract::stats::percentile;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Samples kept exactly before switching to reservoir sampling (64 MiB of `u32`).
pub const MAX_EXACT_SAMPLES: usize = 16 * 1024 * 1024;

/// A bounded record of latency samples.
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    samples_us: Vec<u32>,
    seen: u64,
    capacity: usize,
    rng: ChaCha8Rng,
    max_us: u32,
    sum_us: u128,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::with_capacity(MAX_EXACT_SAMPLES)
    }
}

/// Percentiles in whole milliseconds, rounded up, as the loadgen result contract
/// carries them (defined in `dualchain-contract`).
pub use dualchain_contract::stats::Percentiles;

/// Summary of a recorder, in milliseconds (fractional where it helps plots).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// `(latency_ms, fraction ≤ it)` at every percent from 1 to 100, for CDF plots.
    pub cdf: Vec<(f64, f64)>,
}

impl LatencyRecorder {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            samples_us: Vec::new(),
            seen: 0,
            capacity: capacity.max(1),
            rng: ChaCha8Rng::seed_from_u64(0x1a7e),
            max_us: 0,
            sum_us: 0,
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.seen += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us += u128::from(us);
        if self.samples_us.len() < self.capacity {
            self.samples_us.push(us);
        } else {
            let slot = self.rng.random_range(0..self.seen);
            if let Ok(slot) = usize::try_from(slot)
                && slot < self.capacity
            {
                self.samples_us[slot] = us;
            }
        }
    }

    /// Number of samples recorded (including those not kept by the reservoir).
    pub fn count(&self) -> u64 {
        self.seen
    }

    /// Nearest-rank percentiles, rounded up to whole milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles::from_sorted_micros(&self.sorted())
    }

    pub fn summary(&self) -> LatencySummary {
        let sorted = self.sorted();
        let ms = |q| percentile(&sorted, q).map_or(0.0, |us| f64::from(us) / 1000.0);
        let cdf = if sorted.is_empty() {
            Vec::new()
        } else {
            (1..=100)
                .map(|p| (ms(f64::from(p) / 100.0), f64::from(p) / 100.0))
                .collect()
        };
        LatencySummary {
            samples: self.seen,
            mean_ms: if self.seen == 0 {
                0.0
            } else {
                self.sum_us as f64 / self.seen as f64 / 1000.0
            },
            max_ms: f64::from(self.max_us) / 1000.0,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            cdf,
        }
    }

    fn sorted(&self) -> Vec<u32> {
        let mut sorted = self.samples_us.clone();
        sorted.sort_unstable();
        sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut r = LatencyRecorder::default();
        for ms in 1..=100u64 {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(
            r.percentiles(),
            Percentiles {
                p50: 50,
                p95: 95,
                p99: 99
            }
        );
        let s = r.summary();
        assert_eq!(s.samples, 100);
        assert_eq!(s.max_ms, 100.0);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(s.cdf.len(), 100);
        assert_eq!(s.cdf[0], (1.0, 0.01));
        assert_eq!(s.cdf[99], (100.0, 1.0));
    }

    #[test]
    fn percentiles_round_up_to_whole_milliseconds() {
        let mut r = LatencyRecorder::default();
        r.record(Duration::from_micros(1_001));
        assert_eq!(r.percentiles().p99, 2);
    }

    #[test]
    fn empty_recorder_reports_zeros() {
        let r = LatencyRecorder::default();
        assert_eq!(r.percentiles(), Percentiles::default());
        assert!(r.summary().cdf.is_empty());
    }

    #[test]
    fn reservoir_keeps_percentiles_of_a_long_run() {
        let mut r = LatencyRecorder::with_capacity(2_000);
        for i in 0..200_000u64 {
            r.record(Duration::from_micros(i % 1000 * 1000));
        }
        assert_eq!(r.count(), 200_000);
        let p = r.percentiles();
        assert!((450..=550).contains(&p.p50), "{p:?}");
        assert!((900..=1000).contains(&p.p95), "{p:?}");
    }
}
