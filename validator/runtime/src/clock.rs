//! The time seam: monotonic time for engine timers, Unix time for vertex timestamps.
//!
//! Both implementations read tokio's clock for monotonic time, so timers armed with
//! [`tokio::time::sleep_until`] at [`Clock::instant_at`] fire exactly when the clock
//! says the deadline has come. Under a tokio runtime whose time is paused (the
//! simulator's), tokio's clock is virtual: it stands still while tasks run and jumps
//! to the next timer when every task waits, so a simulated second costs only the
//! work done in it.
//!
//! Monotonic milliseconds are anchored at the Unix time the clock was made
//! (`anchor + elapsed`), so they read like Unix time but never go backwards when the
//! system clock is stepped; the engine asserts that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dualchain_consensus::Now;
use tokio::time::Instant;

/// The runtime's source of time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds on a monotonic clock anchored at Unix time (never decreasing).
    fn monotonic_ms(&self) -> u64;

    /// Unix time in milliseconds (may jump with the system clock).
    fn unix_ms(&self) -> u64;

    /// The tokio instant at which [`Clock::monotonic_ms`] reaches `monotonic_ms`.
    fn instant_at(&self, monotonic_ms: u64) -> Instant;

    /// Both readings, as the consensus engine takes them.
    fn now(&self) -> Now {
        Now {
            monotonic_ms: self.monotonic_ms(),
            unix_ms: self.unix_ms(),
        }
    }
}

/// A tokio instant paired with the Unix time (ms) it stands for.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    instant: Instant,
    unix_ms: u64,
}

impl Anchor {
    fn monotonic_ms(&self) -> u64 {
        self.unix_ms
            .saturating_add(self.instant.elapsed().as_millis() as u64)
    }

    fn instant_at(&self, monotonic_ms: u64) -> Instant {
        self.instant + Duration::from_millis(monotonic_ms.saturating_sub(self.unix_ms))
    }
}

fn system_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The real clock of a node: monotonic time from tokio (the OS monotonic clock),
/// Unix time from the system clock.
#[derive(Clone, Debug)]
pub struct SystemClock {
    anchor: Anchor,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            anchor: Anchor {
                instant: Instant::now(),
                unix_ms: system_unix_ms(),
            },
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn monotonic_ms(&self) -> u64 {
        self.anchor.monotonic_ms()
    }

    fn unix_ms(&self) -> u64 {
        system_unix_ms()
    }

    fn instant_at(&self, monotonic_ms: u64) -> Instant {
        self.anchor.instant_at(monotonic_ms)
    }
}

/// Virtual time: one clock for both readings, starting at `start_unix_ms` when made.
/// Made inside a tokio runtime started paused, it advances only as tokio's virtual
/// clock does; the same seed then gives the same times.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    anchor: Anchor,
}

impl VirtualClock {
    pub fn new(start_unix_ms: u64) -> Self {
        Self {
            anchor: Anchor {
                instant: Instant::now(),
                unix_ms: start_unix_ms,
            },
        }
    }
}

impl Clock for VirtualClock {
    fn monotonic_ms(&self) -> u64 {
        self.anchor.monotonic_ms()
    }

    fn unix_ms(&self) -> u64 {
        self.anchor.monotonic_ms()
    }

    fn instant_at(&self, monotonic_ms: u64) -> Instant {
        self.anchor.instant_at(monotonic_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn virtual_time_moves_only_with_tokio_and_timers_fire_at_their_deadline() {
        let clock = VirtualClock::new(1_000_000);
        assert_eq!(clock.monotonic_ms(), 1_000_000);
        assert_eq!(clock.now().unix_ms, 1_000_000);
        let deadline = clock.monotonic_ms() + 2_500;
        tokio::time::sleep_until(clock.instant_at(deadline)).await;
        assert_eq!(clock.monotonic_ms(), deadline);
        assert_eq!(clock.unix_ms(), deadline);
    }

    #[tokio::test]
    async fn the_system_clock_reads_unix_time_and_never_goes_back() {
        let clock = SystemClock::new();
        let a = clock.monotonic_ms();
        let unix = clock.unix_ms();
        assert!(
            unix.abs_diff(a) < 5_000,
            "anchored at Unix time: {a} vs {unix}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(clock.monotonic_ms() >= a + 5);
        let at = clock.instant_at(a + 1_000);
        assert!(at > Instant::now());
    }
}
