//! Stake-weighted sampling of the peers one poll asks, seeded and reproducible.
//!
//! Each draw picks among the peers not drawn yet with probability proportional to
//! stake (sampling without replacement), from a ChaCha stream seeded by BLAKE3 of
//! (epoch seed, sampling node, query id): the same node replays the same samples,
//! different nodes sample independently, and no peer can steer who is asked — the
//! seed is fixed before any peer speaks, so a sampling-bias attempt has nothing to
//! work on. Excluded peers (caught misbehaving) are never drawn.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use dualchain_core::Digest;
use dualchain_core::types::{ValidatorIndex, ValidatorSet};

const SAMPLE_CONTEXT: &str = "dualchain 2026-12 avalanche sample v1";

/// Draws `k` distinct peers from `candidates` (index, stake), weighted by stake.
pub fn sample(
    seed: &Digest,
    me: ValidatorIndex,
    query_id: u64,
    candidates: &[(ValidatorIndex, u64)],
    k: usize,
) -> Vec<ValidatorIndex> {
    let mut h = blake3::Hasher::new_derive_key(SAMPLE_CONTEXT);
    h.update(seed.as_bytes());
    h.update(&me.to_le_bytes());
    h.update(&query_id.to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(*h.finalize().as_bytes());
    let mut pool: Vec<(ValidatorIndex, u64)> =
        candidates.iter().copied().filter(|(_, s)| *s > 0).collect();
    let mut picked = Vec::with_capacity(k.min(pool.len()));
    while picked.len() < k && !pool.is_empty() {
        let total: u64 = pool.iter().map(|(_, s)| *s).sum();
        let mut point = rng.random_range(0..total);
        let at = pool
            .iter()
            .position(|(_, s)| {
                if point < *s {
                    true
                } else {
                    point -= *s;
                    false
                }
            })
            .expect("the point lies below the total stake");
        picked.push(pool.swap_remove(at).0);
    }
    picked.sort_unstable();
    picked
}

/// Peers `me` may sample: every other member with stake, minus `excluded`.
pub fn candidates(
    validators: &ValidatorSet,
    me: ValidatorIndex,
    excluded: impl Fn(ValidatorIndex) -> bool,
) -> Vec<(ValidatorIndex, u64)> {
    validators
        .validators()
        .iter()
        .enumerate()
        .map(|(i, v)| (i as ValidatorIndex, v.stake))
        .filter(|(i, _)| *i != me && !excluded(*i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_reproducible_and_never_include_the_excluded() {
        let peers: Vec<(ValidatorIndex, u64)> = (1..20).map(|i| (i, 1)).collect();
        let seed = Digest([5; 32]);
        let a = sample(&seed, 0, 9, &peers, 10);
        assert_eq!(a, sample(&seed, 0, 9, &peers, 10), "same seed, same sample");
        assert_ne!(
            a,
            sample(&seed, 0, 10, &peers, 10),
            "another query, another sample"
        );
        let mut unique = a.clone();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert_eq!(
            sample(&seed, 0, 1, &peers[..3], 10).len(),
            3,
            "small networks: all"
        );
    }

    #[test]
    fn draws_follow_stake() {
        // Peer 1 holds 9/10 of the stake: drawn first far more often than peer 2.
        let peers = [(1, 90), (2, 10)];
        let mut ones = 0;
        for id in 0..2_000u64 {
            if sample(&Digest([0; 32]), 0, id, &peers, 1) == [1] {
                ones += 1;
            }
        }
        assert!(
            (1_700..=1_900).contains(&ones),
            "{ones} of 2000 draws chose peer 1"
        );
        assert!(sample(&Digest([0; 32]), 0, 1, &[(1, 0), (2, 5)], 2) == [2]);
    }
}
