//! The open-loop send schedule.
//!
//! The schedule says how many transactions are *due* by a given time since the start;
//! the sender emits that many whatever the network answered so far. A slow node
//! therefore cannot slow the offered load down (no coordinated omission): it shows up
//! as latency and rejections instead.
//!
//! - steady: `due(t) = rate · t`;
//! - bursty: a square wave of period `P`: for the first half of each period the rate is
//!   `2 · rate`, for the second half 0; the mean over any whole period is `rate`.

use std::time::Duration;

/// Default period of the bursty square wave.
pub const DEFAULT_BURST_PERIOD: Duration = Duration::from_secs(2);

/// The shape of the offered load over time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Steady,
    /// On for the first half of each `period`, off for the second.
    Bursty {
        period: Duration,
    },
}

/// How many transactions are due at each instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSchedule {
    /// Mean rate in transactions per second.
    pub tps: f64,
    pub shape: Shape,
}

impl RateSchedule {
    pub fn new(tps: f64, shape: Shape) -> Self {
        Self { tps, shape }
    }

    /// Transactions due from the start up to `elapsed` (rounded down).
    pub fn due(&self, elapsed: Duration) -> u64 {
        let t = elapsed.as_secs_f64();
        let sent = match self.shape {
            Shape::Steady => self.tps * t,
            Shape::Bursty { period } => {
                let p = period.as_secs_f64().max(1e-3);
                let whole = (t / p).floor();
                let into = t - whole * p;
                let on = p / 2.0;
                whole * self.tps * p + into.min(on) * 2.0 * self.tps
            }
        };
        // Guard against float error pushing an exact count just below an integer.
        (sent + 1e-9).floor() as u64
    }

    /// Total transactions over a run of `duration`.
    pub fn total(&self, duration: Duration) -> u64 {
        self.due(duration)
    }

    /// Instantaneous rate at `elapsed` (for plots and tests).
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        match self.shape {
            Shape::Steady => self.tps,
            Shape::Bursty { period } => {
                let p = period.as_secs_f64().max(1e-3);
                let into = elapsed.as_secs_f64() % p;
                if into < p / 2.0 { 2.0 * self.tps } else { 0.0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn steady_is_linear_in_time() {
        let s = RateSchedule::new(1000.0, Shape::Steady);
        assert_eq!(s.due(Duration::ZERO), 0);
        assert_eq!(s.due(Duration::from_millis(1)), 1);
        assert_eq!(s.due(Duration::from_millis(2500)), 2500);
        assert_eq!(s.total(Duration::from_secs(30)), 30_000);
    }

    #[test]
    fn bursty_is_on_then_off_with_the_same_mean() {
        let period = Duration::from_secs(2);
        let s = RateSchedule::new(1000.0, Shape::Bursty { period });
        // During the on half: double rate.
        assert_eq!(s.due(Duration::from_millis(500)), 1000);
        assert_eq!(s.due(Duration::from_secs(1)), 2000);
        // During the off half: nothing more is due.
        assert_eq!(s.due(Duration::from_millis(1900)), 2000);
        assert_eq!(s.rate_at(Duration::from_millis(1500)), 0.0);
        assert_eq!(s.rate_at(Duration::from_millis(2100)), 2000.0);
        // Whole periods match the steady mean exactly.
        assert_eq!(s.total(Duration::from_secs(30)), 30_000);
    }

    proptest! {
        #[test]
        fn due_never_decreases_and_bursty_stays_within_one_burst_of_steady(
            tps in 1.0f64..100_000.0,
            a in 0u64..60_000,
            b in 0u64..60_000,
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            let period = Duration::from_secs(2);
            let bursty = RateSchedule::new(tps, Shape::Bursty { period });
            let steady = RateSchedule::new(tps, Shape::Steady);
            for s in [bursty, steady] {
                prop_assert!(s.due(Duration::from_millis(lo)) <= s.due(Duration::from_millis(hi)));
            }
            let t = Duration::from_millis(hi);
            let gap = bursty.due(t) as f64 - steady.due(t) as f64;
            prop_assert!(gap >= -1.0 && gap <= tps * period.as_secs_f64() / 2.0 + 1.0);
        }
    }
}
