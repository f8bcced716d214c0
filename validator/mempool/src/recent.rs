//! Digests of recently proposed or included transactions, remembered to refuse replays.
//!
//! A bounded FIFO per shard: the oldest digest is forgotten when a shard is full.
//! Re-marking a digest refreshes it (a new generation); the stale queue entry of the
//! old generation is skipped when it reaches the front. The queue length bounds the
//! map size, so memory stays at `capacity` entries whatever is marked.
//!
//! An *included* digest is refused for as long as it is remembered. A digest only
//! *proposed* (taken into a vertex) is refused for [`PROPOSED_REFUSAL_MICROS`] of
//! admission time: a vertex that never commits (orphaned under loss, or lost with a
//! crash) must not make its transactions unsubmittable on this node forever — on a
//! quiet chain the FIFO would keep them for hours. Admitting one again is safe: if
//! the first copy did commit after all, the second fails its nonce check and changes
//! nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dualchain_core::hash::Digest;
use foldhash::fast::RandomState;

use crate::envelope::AdmissionTime;

/// How long (admission-time microseconds) a proposed, not yet included transaction
/// is refused when submitted again.
pub const PROPOSED_REFUSAL_MICROS: u64 = 30_000_000;

/// Why a digest is remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// Taken into a proposal at that time (`None`: by a caller without a clock, so
    /// refused until forgotten).
    Proposed(Option<AdmissionTime>),
    Included,
}

struct RecentShard {
    generation_of: HashMap<Digest, (u64, Mark), RandomState>,
    order: VecDeque<(Digest, u64)>,
    next_generation: u64,
    capacity: usize,
}

impl RecentShard {
    fn mark(&mut self, digest: Digest, mark: Mark) {
        // Included stays included: a late proposal mark must not shorten it.
        let mark = match self.generation_of.get(&digest) {
            Some((_, Mark::Included)) => Mark::Included,
            _ => mark,
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        self.generation_of.insert(digest, (generation, mark));
        self.order.push_back((digest, generation));
        while self.order.len() > self.capacity {
            if let Some((old, old_generation)) = self.order.pop_front()
                && self.generation_of.get(&old).map(|(g, _)| *g) == Some(old_generation)
            {
                self.generation_of.remove(&old);
            }
        }
    }
}

/// The sharded set of recent digests.
pub(crate) struct RecentSet {
    shards: Vec<Mutex<RecentShard>>,
}

impl RecentSet {
    /// `capacity` digests in total, split evenly over `shards` (a power of two).
    pub(crate) fn new(capacity: usize, shards: usize) -> Self {
        let per_shard = capacity.div_ceil(shards).max(1);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(RecentShard {
                        generation_of: HashMap::default(),
                        order: VecDeque::new(),
                        next_generation: 0,
                        capacity: per_shard,
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, digest: &Digest) -> MutexGuard<'_, RecentShard> {
        // Digests are uniform BLAKE3 output: their first bytes spread evenly.
        let index = usize::from(u16::from_le_bytes([digest.0[0], digest.0[1]]));
        self.shards[index & (self.shards.len() - 1)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `digest` is remembered at all (proposed or included).
    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.shard(digest).generation_of.contains_key(digest)
    }

    /// Whether a submission of `digest` at `now` is refused: included, or proposed
    /// less than [`PROPOSED_REFUSAL_MICROS`] before `now`.
    pub(crate) fn refuses(&self, digest: &Digest, now: AdmissionTime) -> bool {
        match self.shard(digest).generation_of.get(digest) {
            None => false,
            Some((_, Mark::Included | Mark::Proposed(None))) => true,
            Some((_, Mark::Proposed(Some(at)))) => {
                now.as_micros() < at.as_micros().saturating_add(PROPOSED_REFUSAL_MICROS)
            }
        }
    }

    /// `digest` went into a proposal at `at`.
    pub(crate) fn mark_proposed(&self, digest: Digest, at: Option<AdmissionTime>) {
        self.shard(&digest).mark(digest, Mark::Proposed(at));
    }

    /// `digest` is in a committed block.
    pub(crate) fn mark_included(&self, digest: Digest) {
        self.shard(&digest).mark(digest, Mark::Included);
    }

    /// Forgets a digest (a proposal that was abandoned, so its transactions return).
    pub(crate) fn forget(&self, digest: &Digest) {
        self.shard(digest).generation_of.remove(digest);
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .generation_of
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> Digest {
        dualchain_core::hash::HashDomain::Transaction.hash(&n.to_le_bytes())
    }

    #[test]
    fn remembers_at_most_capacity_and_forgets_oldest_first() {
        let set = RecentSet::new(8, 1);
        for n in 0..20 {
            set.mark_included(d(n));
            // Refreshing a digest must not grow memory.
            set.mark_proposed(d(n), None);
            assert!(set.len() <= 8);
        }
        assert!(!set.contains(&d(0)));
        assert!(set.contains(&d(19)));
        set.forget(&d(19));
        assert!(!set.contains(&d(19)));
    }

    #[test]
    fn refreshed_digest_survives_its_stale_entry() {
        let set = RecentSet::new(3, 1);
        set.mark_included(d(1));
        set.mark_included(d(2));
        set.mark_included(d(1));
        set.mark_included(d(3));
        // The first entry of d(1) left the queue; its refreshed entry keeps it.
        assert!(set.contains(&d(1)) && set.contains(&d(2)) && set.contains(&d(3)));
        set.mark_included(d(4));
        assert!(!set.contains(&d(2)));
        assert!(set.contains(&d(1)));
    }

    #[test]
    fn a_proposed_digest_is_refused_for_a_while_an_included_one_while_remembered() {
        let set = RecentSet::new(8, 1);
        let at = AdmissionTime::from_micros(1_000);
        let later = |micros: u64| AdmissionTime::from_micros(1_000 + micros);
        set.mark_proposed(d(1), Some(at));
        assert!(set.refuses(&d(1), later(PROPOSED_REFUSAL_MICROS - 1)));
        assert!(!set.refuses(&d(1), later(PROPOSED_REFUSAL_MICROS)));
        set.mark_included(d(1));
        assert!(set.refuses(&d(1), later(10 * PROPOSED_REFUSAL_MICROS)));
        // Proposed again after inclusion (a replayed vertex): still included.
        set.mark_proposed(d(1), Some(later(20 * PROPOSED_REFUSAL_MICROS)));
        assert!(set.refuses(&d(1), later(100 * PROPOSED_REFUSAL_MICROS)));
        set.mark_proposed(d(2), None);
        assert!(set.refuses(&d(2), later(100 * PROPOSED_REFUSAL_MICROS)));
        assert!(!set.refuses(&d(3), at));
    }
}
