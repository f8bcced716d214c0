//! Bandwidth throttling: a token bucket per peer on the outbound path.
//!
//! The bucket refills at `rate` bytes per second up to `burst` bytes. A frame larger
//! than the available tokens is still sent whole (frames are never split), but the
//! bucket goes into debt and the writer waits until the debt is repaid; so the long
//! run average never exceeds `rate`, whatever the frame sizes.

use std::time::{Duration, Instant};

/// Outbound rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub bytes_per_sec: u64,
    pub burst_bytes: u64,
}

#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: limit.burst_bytes as f64,
            last: now,
        }
    }

    /// The limit this bucket enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes `bytes` tokens and returns how long the caller must wait before sending.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Duration {
        let rate = self.limit.bytes_per_sec.max(1) as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(self.limit.burst_bytes as f64);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_free_then_debt_is_paid_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                bytes_per_sec: 1000,
                burst_bytes: 500,
            },
            t0,
        );
        assert_eq!(bucket.take(500, t0), Duration::ZERO);
        assert_eq!(bucket.take(1000, t0), Duration::from_secs(1));
        // After the wait the debt is repaid; one more second refills 1000 → capped at 500.
        assert_eq!(bucket.take(0, t0 + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(
            bucket.take(500, t0 + Duration::from_secs(2)),
            Duration::ZERO
        );
        assert!(bucket.take(1, t0 + Duration::from_secs(2)) > Duration::ZERO);
    }

    #[test]
    fn average_rate_is_respected() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                bytes_per_sec: 10_000,
                burst_bytes: 1_000,
            },
            t0,
        );
        // Simulate a writer that always waits as told: 100 frames of 1 KiB.
        let mut now = t0;
        for _ in 0..100 {
            now += bucket.take(1024, now);
        }
        let secs = now.duration_since(t0).as_secs_f64();
        let rate = 100.0 * 1024.0 / secs;
        assert!(rate <= 10_000.0 * 1.02 && rate > 9_000.0, "rate {rate}");
    }
}
