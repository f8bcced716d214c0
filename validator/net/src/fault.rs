//! Fault injection for tests, simulations and benchmarks, switchable at runtime.
//!
//! Four faults, combinable: a drop probability per message, an added one-way delay
//! (fixed, plus a uniform random jitter per message, which also reorders messages),
//! partitions (groups of peers; peers in different groups cannot reach each
//! other, peers in no group reach everyone), and a bandwidth limit on every link's
//! outbound messages (a token bucket per link, [`crate::throttle`], on top of any
//! configured limit). The admin API flips them on a running
//! node; with nothing configured the check is one atomic load.
//!
//! Scope, on purpose: faults apply to *application* traffic (broadcasts, requests and
//! their responses), not to the transport's own control traffic (QUIC handshakes,
//! identity hellos, heartbeats). An injected partition therefore silences the
//! consensus messages while the connections stay up, and healing it restores delivery
//! at once instead of after reconnection backoff, and heartbeats never turn an
//! injected fault into penalties against an honest peer. Partitions are checked on
//! both the sending and the receiving side, so configuring them on one node is
//! enough to cut that node off in both directions; drops and delays are applied once,
//! on the sending side. Drop and jitter decisions come from a seeded RNG (reproducible
//! runs).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use thiserror::Error;

use crate::identity::PeerId;
use crate::throttle::RateLimit;

/// The faults in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultConfig {
    /// Probability in `[0, 1]` that a message is silently dropped.
    pub drop_probability: f64,
    /// Added one-way delay of every message.
    pub delay: Duration,
    /// Extra delay per message, uniform in `[0, jitter]`, on top of `delay`.
    pub jitter: Duration,
    /// Disjoint groups of peers that cannot reach each other.
    #[serde(skip)]
    pub partitions: Vec<BTreeSet<PeerId>>,
    /// Outbound bytes per second on each link (`None`: unlimited).
    pub bandwidth_bytes_per_sec: Option<u64>,
}

impl FaultConfig {
    fn is_clear(&self) -> bool {
        self.drop_probability == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.partitions.is_empty()
            && self.bandwidth_bytes_per_sec.is_none()
    }
}

/// The slowest injected bandwidth: below it one large vertex would hold a link for
/// minutes, which is a partition, not a slow link (inject a partition for that).
pub const MIN_FAULT_BANDWIDTH_BYTES_PER_SEC: u64 = 1_024;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum FaultError {
    #[error("drop probability {0} is not within [0, 1]")]
    BadProbability(f64),
    #[error("peer {0} appears in more than one partition group")]
    OverlappingGroups(PeerId),
    #[error(
        "a bandwidth limit of {0} bytes/s is below the minimum of {MIN_FAULT_BANDWIDTH_BYTES_PER_SEC}"
    )]
    BandwidthTooLow(u64),
}

/// What to do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultDecision {
    Deliver,
    /// Deliver after this delay.
    Delay(Duration),
    /// Dropped by the configured probability.
    Drop,
    /// The two peers are in different partition groups.
    Partitioned,
}

/// The runtime switch. Shared by reference (`Arc`) between the network and whoever
/// drives it (tests, the admin API).
#[derive(Debug)]
pub struct FaultInjector {
    active: AtomicBool,
    config: RwLock<FaultConfig>,
    rng: Mutex<ChaCha8Rng>,
}

impl FaultInjector {
    pub fn new(seed: u64) -> Self {
        Self {
            active: AtomicBool::new(false),
            config: RwLock::new(FaultConfig::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    fn update(&self, change: impl FnOnce(&mut FaultConfig)) {
        let mut config = self.config.write().unwrap_or_else(|e| e.into_inner());
        change(&mut config);
        self.active.store(!config.is_clear(), Ordering::Release);
    }

    pub fn set_drop_probability(&self, p: f64) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(FaultError::BadProbability(p));
        }
        self.update(|c| c.drop_probability = p);
        Ok(())
    }

    pub fn set_delay(&self, delay: Duration) {
        self.update(|c| c.delay = delay);
    }

    /// Sets the random extra delay per message (uniform in `[0, jitter]`).
    pub fn set_jitter(&self, jitter: Duration) {
        self.update(|c| c.jitter = jitter);
    }

    /// Limits every link's outbound messages to `bytes_per_sec` (`None`: no limit).
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) -> Result<(), FaultError> {
        if let Some(rate) = bytes_per_sec
            && rate < MIN_FAULT_BANDWIDTH_BYTES_PER_SEC
        {
            return Err(FaultError::BandwidthTooLow(rate));
        }
        self.update(|c| c.bandwidth_bytes_per_sec = bytes_per_sec);
        Ok(())
    }

    /// The injected bandwidth limit of each link, if any: its rate, with a tenth of
    /// a second's worth as burst (a frame above the tokens still goes out whole; the
    /// bucket's debt then holds the frames after it).
    pub fn bandwidth(&self) -> Option<RateLimit> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        config.bandwidth_bytes_per_sec.map(|rate| RateLimit {
            bytes_per_sec: rate,
            burst_bytes: (rate / 10).max(1),
        })
    }

    /// Splits the network into `groups` (replacing any previous partition).
    pub fn partition(
        &self,
        groups: impl IntoIterator<Item = impl IntoIterator<Item = PeerId>>,
    ) -> Result<(), FaultError> {
        let groups: Vec<BTreeSet<PeerId>> = groups
            .into_iter()
            .map(|g| g.into_iter().collect())
            .filter(|g: &BTreeSet<PeerId>| !g.is_empty())
            .collect();
        let mut seen = BTreeSet::new();
        for peer in groups.iter().flatten() {
            if !seen.insert(*peer) {
                return Err(FaultError::OverlappingGroups(*peer));
            }
        }
        self.update(|c| c.partitions = groups);
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.update(|c| c.partitions.clear());
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.update(|c| *c = FaultConfig::default());
    }

    pub fn config(&self) -> FaultConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `a` and `b` are on the same side of every partition.
    pub fn can_reach(&self, a: PeerId, b: PeerId) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return true;
        }
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        reachable(&config.partitions, a, b)
    }

    /// The fate of one message from `from` to `to` (sending side).
    pub fn decide(&self, from: PeerId, to: PeerId) -> FaultDecision {
        if !self.active.load(Ordering::Acquire) {
            return FaultDecision::Deliver;
        }
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        if !reachable(&config.partitions, from, to) {
            return FaultDecision::Partitioned;
        }
        if config.drop_probability > 0.0 {
            let roll: f64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
            if roll < config.drop_probability {
                return FaultDecision::Drop;
            }
        }
        let mut delay = config.delay;
        if !config.jitter.is_zero() {
            let max_us = config.jitter.as_micros().min(u128::from(u64::MAX)) as u64;
            let extra = self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .random_range(0..=max_us);
            delay += Duration::from_micros(extra);
        }
        if delay.is_zero() {
            FaultDecision::Deliver
        } else {
            FaultDecision::Delay(delay)
        }
    }
}

fn reachable(groups: &[BTreeSet<PeerId>], a: PeerId, b: PeerId) -> bool {
    let group_of = |p: PeerId| groups.iter().position(|g| g.contains(&p));
    match (group_of(a), group_of(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: u8) -> PeerId {
        PeerId::from_bytes([b; 32])
    }

    #[test]
    fn jitter_adds_a_seeded_random_delay_within_its_bound() {
        let delays = |seed| {
            let f = FaultInjector::new(seed);
            f.set_delay(Duration::from_millis(50));
            f.set_jitter(Duration::from_millis(20));
            (0..200)
                .map(|_| match f.decide(p(1), p(2)) {
                    FaultDecision::Delay(d) => d,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        let a = delays(7);
        assert!(
            a.iter()
                .all(|d| (Duration::from_millis(50)..=Duration::from_millis(70)).contains(d))
        );
        // Spread over the range, not a fixed value, and the same for the same seed.
        let (min, max) = (a.iter().min().unwrap(), a.iter().max().unwrap());
        assert!(*max - *min > Duration::from_millis(15), "{min:?}..{max:?}");
        assert_eq!(a, delays(7));
        // Jitter alone is a fault too; clearing removes it.
        let f = FaultInjector::new(1);
        f.set_jitter(Duration::from_millis(5));
        assert!(matches!(f.decide(p(1), p(2)), FaultDecision::Delay(_)));
        f.clear();
        assert_eq!(f.decide(p(1), p(2)), FaultDecision::Deliver);
    }

    #[test]
    fn partitions_cut_across_groups_and_heal() {
        let f = FaultInjector::new(1);
        assert_eq!(f.decide(p(1), p(2)), FaultDecision::Deliver);
        f.partition([vec![p(1)], vec![p(2), p(3)]]).unwrap();
        assert_eq!(f.decide(p(1), p(2)), FaultDecision::Partitioned);
        assert_eq!(f.decide(p(3), p(1)), FaultDecision::Partitioned);
        assert_eq!(f.decide(p(2), p(3)), FaultDecision::Deliver);
        assert_eq!(f.decide(p(9), p(1)), FaultDecision::Deliver);
        f.heal();
        assert_eq!(f.decide(p(1), p(2)), FaultDecision::Deliver);
        assert!(f.partition([vec![p(1)], vec![p(1)]]).is_err());
    }

    #[test]
    fn drop_rate_is_seeded_and_close_to_the_setting() {
        let run = |seed| {
            let f = FaultInjector::new(seed);
            f.set_drop_probability(0.3).unwrap();
            (0..10_000)
                .map(|_| f.decide(p(1), p(2)) == FaultDecision::Drop)
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let dropped = a.iter().filter(|d| **d).count();
        assert!((2_700..3_300).contains(&dropped), "{dropped}");
        assert!(FaultInjector::new(1).set_drop_probability(1.5).is_err());
    }

    #[test]
    fn bandwidth_is_a_fault_of_its_own_within_bounds_until_cleared() {
        let f = FaultInjector::new(1);
        assert_eq!(f.bandwidth(), None);
        f.set_bandwidth(Some(50_000)).unwrap();
        assert_eq!(
            f.bandwidth(),
            Some(RateLimit {
                bytes_per_sec: 50_000,
                burst_bytes: 5_000
            })
        );
        // It slows links; it neither drops nor delays a message by itself.
        assert_eq!(f.decide(p(1), p(2)), FaultDecision::Deliver);
        assert_eq!(
            f.set_bandwidth(Some(MIN_FAULT_BANDWIDTH_BYTES_PER_SEC - 1)),
            Err(FaultError::BandwidthTooLow(
                MIN_FAULT_BANDWIDTH_BYTES_PER_SEC - 1
            ))
        );
        assert_eq!(f.bandwidth().map(|l| l.bytes_per_sec), Some(50_000));
        f.set_bandwidth(None).unwrap();
        assert_eq!(f.bandwidth(), None);
        f.set_bandwidth(Some(2_048)).unwrap();
        f.clear();
        assert_eq!(f.bandwidth(), None);
        assert_eq!(f.config(), FaultConfig::default());
    }

    #[test]
    fn delay_and_clear() {
        let f = FaultInjector::new(1);
        f.set_delay(Duration::from_millis(5));
        assert_eq!(
            f.decide(p(1), p(2)),
            FaultDecision::Delay(Duration::from_millis(5))
        );
        f.clear();
        assert_eq!(f.decide(p(1), p(2)), FaultDecision::Deliver);
        assert_eq!(f.config(), FaultConfig::default());
    }
}
