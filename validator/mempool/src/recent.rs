//! Digests of recently proposed or included transactions, remembered to refuse replays.
//!
//! A bounded FIFO per shard: the oldest digest is forgotten when a shard is full.
//! Re-marking a digest refreshes it (a new generation); the stale queue entry of the
//! old generation is skipped when it reaches the front. The queue length bounds the
//! map size, so memory stays at `capacity` entries whatever is marked.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dualchain_core::hash::Digest;
use foldhash::fast::RandomState;

struct RecentShard {
    generation_of: HashMap<Digest, u64, RandomState>,
    order: VecDeque<(Digest, u64)>,
    next_generation: u64,
    capacity: usize,
}

impl RecentShard {
    fn mark(&mut self, digest: Digest) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.generation_of.insert(digest, generation);
        self.order.push_back((digest, generation));
        while self.order.len() > self.capacity {
            if let Some((old, old_generation)) = self.order.pop_front()
                && self.generation_of.get(&old) == Some(&old_generation)
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

    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.shard(digest).generation_of.contains_key(digest)
    }

    pub(crate) fn mark(&self, digest: Digest) {
        self.shard(&digest).mark(digest);
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
            set.mark(d(n));
            // Refreshing a digest must not grow memory.
            set.mark(d(n));
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
        set.mark(d(1));
        set.mark(d(2));
        set.mark(d(1));
        set.mark(d(3));
        // The first entry of d(1) left the queue; its refreshed entry keeps it.
        assert!(set.contains(&d(1)) && set.contains(&d(2)) && set.contains(&d(3)));
        set.mark(d(4));
        assert!(!set.contains(&d(2)));
        assert!(set.contains(&d(1)));
    }
}
