//! Leader of each round: a stake-weighted draw from a hash of (epoch seed, round).
//!
//! Every node computes the same leader from public data, so no message is needed to
//! agree on it; a validator with twice the stake leads twice as often on average.
//! The draw uses BLAKE3 in `derive_key` mode with its own context, so it can never
//! collide with any object digest.

use dualchain_core::Digest;
use dualchain_core::types::{ValidatorIndex, ValidatorSet};

use crate::consensus::Round;

const LEADER_CONTEXT: &str = "dualchain 2026-11 dag-bft leader v1";

/// The leader schedule of one epoch.
#[derive(Clone, Debug)]
pub struct LeaderSchedule {
    seed: Digest,
    /// Cumulative stake: validator `i` owns draws in `[cumulative[i-1], cumulative[i])`.
    cumulative: Vec<u64>,
}

impl LeaderSchedule {
    pub fn new(seed: Digest, validators: &ValidatorSet) -> Self {
        let mut total = 0u64;
        let cumulative = validators
            .validators()
            .iter()
            .map(|v| {
                total += v.stake;
                total
            })
            .collect();
        Self { seed, cumulative }
    }

    /// The leader of `round`.
    pub fn leader(&self, round: Round) -> ValidatorIndex {
        let mut h = blake3::Hasher::new_derive_key(LEADER_CONTEXT);
        h.update(self.seed.as_bytes());
        h.update(&round.to_le_bytes());
        let out = h.finalize();
        let draw = u128::from_le_bytes(out.as_bytes()[..16].try_into().expect("16 bytes"));
        let total = *self
            .cumulative
            .last()
            .expect("validator sets are never empty");
        // 128-bit draw reduced modulo the total stake: the bias is below 2^-64.
        let point = (draw % u128::from(total)) as u64;
        let index = self.cumulative.partition_point(|&c| c <= point);
        index as ValidatorIndex
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::crypto::ValidatorKeypair;

    fn set(stakes: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            0,
            stakes.iter().enumerate().map(|(i, &s)| {
                (
                    ValidatorKeypair::from_seed(&[i as u8 + 1; 32])
                        .public()
                        .clone(),
                    s,
                )
            }),
        )
        .unwrap()
    }

    #[test]
    fn leaders_are_deterministic_and_follow_stake() {
        let vs = set(&[1, 1, 1, 5]);
        let a = LeaderSchedule::new(Digest([7; 32]), &vs);
        let b = LeaderSchedule::new(Digest([7; 32]), &vs);
        let mut counts = [0u32; 4];
        for r in 0..8_000 {
            assert_eq!(a.leader(r), b.leader(r));
            counts[usize::from(a.leader(r))] += 1;
        }
        // Validator 3 holds 5/8 of the stake: expect ~5000 of 8000 rounds.
        assert!((4_700..5_300).contains(&counts[3]), "{counts:?}");
        for c in &counts[..3] {
            assert!((800..1_200).contains(c), "{counts:?}");
        }
        let other_seed = LeaderSchedule::new(Digest([8; 32]), &vs);
        assert!((0..64).any(|r| other_seed.leader(r) != a.leader(r)));
    }
}
