//! Percentiles, defined once.
//!
//! Every p50/p95/p99 the project reports uses the **nearest-rank** definition: the
//! `q`-quantile of `n` sorted samples is the sample at rank `⌈q·n⌉` (1-based, at least
//! 1). It is always an observed value and never interpolates, so a p99 is a latency
//! some transaction really had.

use serde::{Deserialize, Serialize};

/// Index (0-based) of the nearest-rank `q`-quantile (`q` in `0.0..=1.0`, clamped) of
/// `len` sorted samples; `None` when there are none.
pub fn nearest_rank_index(len: usize, q: f64) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
    let rank = (q * len as f64).ceil() as usize;
    Some(rank.clamp(1, len) - 1)
}

/// The nearest-rank `q`-quantile (`q` in `0.0..=1.0`) of already **sorted** samples.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    nearest_rank_index(sorted.len(), q).map(|i| sorted[i])
}

/// Sorts `samples` and returns its nearest-rank `q`-quantile.
pub fn percentile_of<T: Copy + Ord>(samples: &mut [T], q: f64) -> Option<T> {
    samples.sort_unstable();
    percentile(samples, q)
}

/// Median of `values` (the mean of the two middle values for an even count); `None`
/// for no values. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

/// p50, p95 and p99 in whole milliseconds, as the loadgen result contract carries them
/// (`finality_ms`). Built from finer samples by rounding **up**, so rounding never
/// flatters a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median, ms.
    pub p50: u64,
    /// 95th percentile, ms.
    pub p95: u64,
    /// 99th percentile, ms.
    pub p99: u64,
}

impl Percentiles {
    /// From sorted samples in microseconds (all zeros when empty).
    pub fn from_sorted_micros<T: Copy + Into<u64>>(sorted: &[T]) -> Self {
        let ms = |q| percentile(sorted, q).map_or(0, |us: T| us.into().div_ceil(1000));
        Self {
            p50: ms(0.50),
            p95: ms(0.95),
            p99: ms(0.99),
        }
    }

    /// From sorted samples in milliseconds (all zeros when empty).
    pub fn from_sorted_millis<T: Copy + Into<u64>>(sorted: &[T]) -> Self {
        let ms = |q| percentile(sorted, q).map_or(0, Into::into);
        Self {
            p50: ms(0.50),
            p95: ms(0.95),
            p99: ms(0.99),
        }
    }
}

/// Counts of integer values: nearest-rank percentiles without keeping every sample
/// (memory grows with the number of *distinct* values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: std::collections::BTreeMap<u64, u64>,
    total: u64,
}

impl Histogram {
    /// Records one sample.
    pub fn record(&mut self, value: u64) {
        *self.counts.entry(value).or_default() += 1;
        self.total += 1;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (value, count) in &other.counts {
            *self.counts.entry(*value).or_default() += count;
        }
        self.total += other.total;
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The nearest-rank `q`-quantile (`q` in `0.0..=1.0`): the smallest value with at
    /// least `q` of the samples at or below it.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (value, count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(*value);
            }
        }
        self.max()
    }

    /// Largest sample.
    pub fn max(&self) -> Option<u64> {
        self.counts.keys().next_back().copied()
    }

    /// p50/p95/p99 of samples recorded in milliseconds.
    pub fn percentiles_ms(&self) -> Percentiles {
        Percentiles {
            p50: self.percentile(0.50).unwrap_or(0),
            p95: self.percentile(0.95).unwrap_or(0),
            p99: self.percentile(0.99).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_a_hundred() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), Some(50));
        assert_eq!(percentile(&sorted, 0.95), Some(95));
        assert_eq!(percentile(&sorted, 0.99), Some(99));
        assert_eq!(percentile(&sorted, 1.0), Some(100));
        assert_eq!(percentile(&sorted, 0.0), Some(1));
        assert_eq!(percentile(&sorted, 0.001), Some(1));
        assert_eq!(percentile::<u64>(&[], 0.5), None);
        assert_eq!(percentile(&[7u32], 0.99), Some(7));
        assert_eq!(percentile(&sorted, f64::NAN), Some(100));
        let mut shuffled = vec![5, 1, 4, 2, 3];
        assert_eq!(percentile_of(&mut shuffled, 0.5), Some(3));
    }

    #[test]
    fn milliseconds_round_up() {
        assert_eq!(
            Percentiles::from_sorted_micros(&[1_001u32]),
            Percentiles {
                p50: 2,
                p95: 2,
                p99: 2
            }
        );
        assert_eq!(
            Percentiles::from_sorted_micros::<u32>(&[]),
            Percentiles::default()
        );
        let ms: Vec<u64> = (1..=100).collect();
        assert_eq!(
            Percentiles::from_sorted_millis(&ms),
            Percentiles {
                p50: 50,
                p95: 95,
                p99: 99
            }
        );
    }

    #[test]
    fn histogram_agrees_with_the_sorted_definition() {
        let samples: Vec<u64> = (0..1000).map(|i| (i * 7919) % 313).collect();
        let mut h = Histogram::default();
        for s in &samples {
            h.record(*s);
        }
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        for q in [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            assert_eq!(h.percentile(q), percentile(&sorted, q), "q = {q}");
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), sorted.last().copied());
        let mut twice = h.clone();
        twice.merge(&h);
        assert_eq!(twice.count(), 2000);
        assert_eq!(twice.percentile(0.5), h.percentile(0.5));
        assert_eq!(Histogram::default().percentile(0.5), None);
        assert_eq!(h.percentiles_ms().p50, h.percentile(0.5).unwrap());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
