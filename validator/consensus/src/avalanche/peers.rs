//! What the Avalanche engine knows about each peer it samples: misbehaviour scores,
//! exclusions, and whether the node looks partitioned.
//!
//! Mitigation is local and immediate: a peer that signs an invalid response, votes for
//! a vertex that cannot be in the slot it votes on, or answers malformed votes is
//! *Byzantine*: it is excluded from sampling for the rest of the epoch and its
//! responses are ignored. A peer that merely times out scores a little per timeout and
//! is excluded for a while when the score adds up (a crashed peer would otherwise cost
//! every poll the whole query timeout), then sampled again.
//!
//! Partition detection: when more than half of the last `window` queries timed out, the
//! node is `partitioned` (it cannot hear a majority); the state clears once most queries
//! are answered again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dualchain_core::types::ValidatorIndex;

use crate::consensus::TimeMs;

/// Timeouts in a row-ish (score) that exclude a peer for a while.
const TIMEOUT_SCORE: u32 = 1;
const EXCLUDE_AT_SCORE: u32 = 10;

/// Why a peer scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// No response before the query timeout.
    Timeout,
    /// A response whose signature does not verify, or names another voter.
    BadSignature,
    /// A signed vote for a vertex that is not of the slot's round and leader.
    WrongVote,
    /// Misbehaviour shown on the DAG: equivocation evidence, or a vertex with an
    /// invalid signature sent by this peer.
    Vertex,
}

impl Offence {
    pub fn is_byzantine(self) -> bool {
        !matches!(self, Offence::Timeout)
    }
}

/// Counters the metrics and the simulator report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerStats {
    pub timeouts: u64,
    pub byzantine_exclusions: u64,
    pub timeout_exclusions: u64,
    pub partitions_detected: u64,
}

impl PeerStats {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: &Self) {
        self.timeouts += other.timeouts;
        self.byzantine_exclusions += other.byzantine_exclusions;
        self.timeout_exclusions += other.timeout_exclusions;
        self.partitions_detected += other.partitions_detected;
    }
}

/// Per-peer standing and the partition detector.
#[derive(Clone, Debug)]
pub struct PeerBook {
    score: BTreeMap<ValidatorIndex, u32>,
    /// Excluded peers and until when (`TimeMs::MAX`: for the epoch).
    excluded_until: BTreeMap<ValidatorIndex, TimeMs>,
    timeout_exclusion_ms: TimeMs,
    /// Outcomes of the latest queries (true: timed out).
    recent: VecDeque<bool>,
    window: usize,
    partitioned: bool,
    /// Every peer excluded at some time (for either reason), for the detection figures.
    ever_excluded: BTreeSet<ValidatorIndex>,
    stats: PeerStats,
}

impl PeerBook {
    pub fn new(timeout_exclusion_ms: TimeMs, window: usize) -> Self {
        assert!(window > 0, "the partition window holds at least one query");
        Self {
            score: BTreeMap::new(),
            excluded_until: BTreeMap::new(),
            timeout_exclusion_ms,
            recent: VecDeque::with_capacity(window),
            window,
            partitioned: false,
            ever_excluded: BTreeSet::new(),
            stats: PeerStats::default(),
        }
    }

    pub fn is_excluded(&self, peer: ValidatorIndex, now: TimeMs) -> bool {
        self.excluded_until
            .get(&peer)
            .is_some_and(|until| now < *until)
    }

    pub fn is_byzantine(&self, peer: ValidatorIndex) -> bool {
        self.excluded_until.get(&peer) == Some(&TimeMs::MAX)
    }

    pub fn byzantine(&self) -> impl Iterator<Item = ValidatorIndex> + '_ {
        self.excluded_until
            .iter()
            .filter(|(_, until)| **until == TimeMs::MAX)
            .map(|(p, _)| *p)
    }

    /// Peers excluded at some time this epoch, Byzantine or slow.
    pub fn ever_excluded(&self) -> &BTreeSet<ValidatorIndex> {
        &self.ever_excluded
    }

    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Scores `offence` against `peer`; returns whether this excluded it.
    pub fn offence(&mut self, peer: ValidatorIndex, offence: Offence, now: TimeMs) -> bool {
        if self.is_byzantine(peer) {
            return false;
        }
        if offence.is_byzantine() {
            self.ever_excluded.insert(peer);
            self.excluded_until.insert(peer, TimeMs::MAX);
            self.score.remove(&peer);
            self.stats.byzantine_exclusions += 1;
            return true;
        }
        self.stats.timeouts += 1;
        let score = self.score.entry(peer).or_default();
        *score += TIMEOUT_SCORE;
        if *score < EXCLUDE_AT_SCORE {
            return false;
        }
        self.score.remove(&peer);
        self.ever_excluded.insert(peer);
        self.excluded_until
            .insert(peer, now.saturating_add(self.timeout_exclusion_ms));
        self.stats.timeout_exclusions += 1;
        true
    }

    /// A peer answered in time: its timeout score starts over.
    pub fn answered(&mut self, peer: ValidatorIndex) {
        self.score.remove(&peer);
    }

    /// Records one query's fate for partition detection.
    pub fn record_query(&mut self, timed_out: bool) {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(timed_out);
        let timeouts = self.recent.iter().filter(|t| **t).count();
        let full = self.recent.len() * 2 >= self.window;
        let partitioned = full && timeouts * 2 > self.recent.len();
        if partitioned && !self.partitioned {
            self.stats.partitions_detected += 1;
        }
        self.partitioned = partitioned;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byzantine_peers_are_excluded_for_good_and_slow_ones_for_a_while() {
        let mut book = PeerBook::new(5_000, 8);
        assert!(book.offence(2, Offence::BadSignature, 10));
        assert!(book.is_excluded(2, TimeMs::MAX - 1));
        assert!(!book.offence(2, Offence::WrongVote, 20), "already excluded");
        for i in 0..9 {
            assert!(!book.offence(3, Offence::Timeout, i));
        }
        assert!(book.offence(3, Offence::Timeout, 100));
        assert!(book.is_excluded(3, 5_099));
        assert!(!book.is_excluded(3, 5_100));
        assert_eq!(book.byzantine().collect::<Vec<_>>(), vec![2]);
        assert_eq!(book.stats().byzantine_exclusions, 1);
        assert_eq!(book.stats().timeout_exclusions, 1);
        // An answer clears the timeout score.
        for i in 0..9 {
            book.offence(4, Offence::Timeout, i);
        }
        book.answered(4);
        assert!(!book.offence(4, Offence::Timeout, 50));
    }

    #[test]
    fn most_queries_timing_out_is_a_partition_until_they_are_answered_again() {
        let mut book = PeerBook::new(1_000, 10);
        for _ in 0..4 {
            book.record_query(true);
        }
        assert!(!book.is_partitioned(), "too few queries to tell");
        book.record_query(true);
        assert!(book.is_partitioned());
        assert_eq!(book.stats().partitions_detected, 1);
        for _ in 0..10 {
            book.record_query(false);
        }
        assert!(!book.is_partitioned());
        book.record_query(true);
        assert_eq!(book.stats().partitions_detected, 1);
    }
}
