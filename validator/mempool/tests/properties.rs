//! Property tests: the bound, dedup, fairness, nonce order, determinism of the drain
//! order, and committed removal, over random admission sequences.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::*;
use dualchain_core::types::{Address, ChainId, SignedTransaction};
use dualchain_mempool::{Batch, MempoolConfig, Rejection};
use proptest::prelude::*;

/// (sender, nonce, fee, outputs): fee varies the digest for the same nonce.
type Spec = (u32, u64, u64, usize);

fn spec() -> impl Strategy<Value = Spec> {
    (0u32..6, 0u64..8, 0u64..2, 1usize..4)
}

fn build(s: &Spec) -> SignedTransaction {
    transfer_with(ChainId::Delta, s.0, s.1, s.2, s.3)
}

fn config(max_txs: usize, max_bytes: usize, max_per_sender: usize, shards: usize) -> MempoolConfig {
    MempoolConfig {
        max_txs,
        max_bytes,
        max_per_sender,
        max_tx_bytes: 500,
        max_attest_tx_bytes: 500,
        max_nonce_ahead: 1_000,
        recent_capacity: 10_000,
        shards,
    }
}

fn drain_all(pool: &dualchain_mempool::Mempool, max_txs: usize, max_bytes: usize) -> Vec<Batch> {
    let mut batches = Vec::new();
    loop {
        let batch = pool.take_batch(max_txs, max_bytes);
        if batch.is_empty() {
            return batches;
        }
        batches.push(batch);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Admit(Spec),
    Take(usize, usize),
    Commit(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => spec().prop_map(Op::Admit),
        1 => (0usize..6, 100usize..2_000).prop_map(|(n, b)| Op::Take(n, b)),
        1 => (0usize..4).prop_map(Op::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The pool never holds more than its bounds, and its counters match what went in
    /// and out.
    #[test]
    fn bound_is_never_exceeded(ops in prop::collection::vec(op(), 1..120), max_txs in 1usize..12) {
        let max_bytes = 700;
        let pool = pool(config(max_txs, max_bytes, 4, 2));
        let mut inside: HashMap<_, usize> = HashMap::new();
        let mut drained: Vec<SignedTransaction> = Vec::new();
        for (at, op) in ops.into_iter().enumerate() {
            match op {
                Op::Admit(s) => {
                    let tx = build(&s);
                    let size = dualchain_mempool::encoded_len(&tx);
                    match admit(&pool, tx, at as u64) {
                        Ok(digest) => { inside.insert(digest, size); }
                        Err(Rejection::Full { .. }) => {
                            prop_assert!(inside.len() == max_txs || inside.values().sum::<usize>() + size > max_bytes);
                        }
                        Err(_) => {}
                    }
                }
                Op::Take(n, bytes) => {
                    let batch = pool.take_batch(n, bytes);
                    prop_assert!(batch.len() <= n && batch.bytes <= bytes);
                    for e in &batch.envelopes {
                        prop_assert!(inside.remove(&e.digest()).is_some());
                    }
                    drained.extend(batch.into_transactions());
                }
                Op::Commit(k) => {
                    let k = k.min(drained.len());
                    let committed: Vec<_> = drained.drain(..k).collect();
                    let removal = pool.remove_committed(&committed);
                    prop_assert_eq!(removal.removed, 0, "drained transactions are no longer pending");
                    inside.retain(|d, _| pool.is_pending(d));
                }
            }
            prop_assert!(pool.len() <= max_txs && pool.bytes() <= max_bytes);
            prop_assert_eq!(pool.len(), inside.len());
            prop_assert_eq!(pool.bytes(), inside.values().sum::<usize>());
        }
    }

    /// Each digest is admitted at most once and drained at most once; every refused
    /// copy is refused as a duplicate (or a nonce conflict for a same-nonce sibling).
    #[test]
    fn dedup_by_digest(specs in prop::collection::vec(spec(), 1..80)) {
        let pool = pool(config(1_000, 1 << 20, 1_000, 4));
        let mut admitted = HashSet::new();
        for (at, s) in specs.iter().enumerate() {
            let tx = build(s);
            let digest = tx.digest();
            match admit(&pool, tx, at as u64) {
                Ok(d) => prop_assert!(admitted.insert(d)),
                Err(Rejection::DuplicatePending { digest: d }) => {
                    prop_assert_eq!(d, digest);
                    prop_assert!(admitted.contains(&digest));
                }
                Err(Rejection::NonceConflict { .. }) => prop_assert!(!admitted.contains(&digest)),
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
        let mut seen = HashSet::new();
        for batch in drain_all(&pool, 7, 1 << 20) {
            for d in batch.digests() {
                prop_assert!(seen.insert(d));
            }
        }
        // Everything drainable came out; what stays waits behind a nonce gap.
        for d in &admitted {
            prop_assert!(seen.contains(d) || pool.is_pending(d));
        }
        for s in &specs {
            let tx = build(s);
            if seen.contains(&tx.digest()) {
                let refused = matches!(admit(&pool, tx, 1_000), Err(Rejection::DuplicateIncluded { .. }));
                prop_assert!(refused, "a drained transaction was admitted again");
            }
        }
    }

    /// The drain order depends only on the admitted set and its admission times, not on
    /// the order of insertion (thread interleaving) nor the shard count.
    #[test]
    fn drain_order_is_deterministic(
        specs in prop::collection::vec(spec(), 1..60),
        seed in any::<u64>(),
        batch_txs in 1usize..10,
        batch_bytes in 150usize..1_500,
    ) {
        let stamped: Vec<(u64, SignedTransaction)> = specs
            .iter()
            .enumerate()
            .map(|(at, s)| ((at as u64) / 3, build(s)))
            .collect();
        // Keep one transaction per (sender, nonce) so no insertion order wins a conflict.
        let mut unique: BTreeMap<(Address, u64), (u64, SignedTransaction)> = BTreeMap::new();
        for (at, tx) in stamped {
            unique.entry((tx.tx().sender, tx.tx().nonce)).or_insert((at, tx));
        }
        let in_order: Vec<_> = unique.into_values().collect();
        let mut shuffled = in_order.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let run = |txs: &[(u64, SignedTransaction)], shards: usize| {
            let pool = pool(config(1_000, 1 << 20, 1_000, shards));
            for (at, tx) in txs {
                admit(&pool, tx.clone(), *at).unwrap();
            }
            drain_all(&pool, batch_txs, batch_bytes)
                .iter()
                .map(|b| b.digests())
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(run(&in_order, 1), run(&shuffled, 16));
    }

    /// Round-robin: within a batch, a sender only gets a (k+1)-th transaction once every
    /// other sender with drainable transactions got k. Nonces drain consecutively.
    #[test]
    fn fairness_and_nonce_order(
        lanes in prop::collection::vec(1u64..12, 1..8),
        batch_txs in 1usize..40,
    ) {
        let pool = pool(config(1_000, 1 << 20, 1_000, 4));
        let mut at = 0;
        for (sender_n, &len) in lanes.iter().enumerate() {
            for nonce in (0..len).rev() {
                admit(&pool, transfer(sender_n as u32, nonce), at).unwrap();
                at += 1;
            }
        }
        let batch = pool.take_batch(batch_txs, usize::MAX);
        let mut count: HashMap<Address, u64> = HashMap::new();
        for (sender_address, nonce) in order(&batch) {
            let taken = count.entry(sender_address).or_default();
            prop_assert_eq!(nonce, *taken, "nonce order within a sender");
            *taken += 1;
        }
        let max_taken = count.values().copied().max().unwrap_or(0);
        for (sender_n, &len) in lanes.iter().enumerate() {
            let got = count.get(&sender(sender_n as u32)).copied().unwrap_or(0);
            prop_assert!(got >= len.min(max_taken.saturating_sub(1)), "sender {sender_n} starved");
        }
        prop_assert_eq!(batch.len(), batch_txs.min(lanes.iter().sum::<u64>() as usize));
    }

    /// Committing transactions removes exactly them (plus same-sender lower nonces) and
    /// makes them refused on resubmission.
    #[test]
    fn committed_removal(specs in prop::collection::vec(spec(), 1..60), pick in prop::collection::vec(any::<bool>(), 60)) {
        let pool = pool(config(1_000, 1 << 20, 1_000, 4));
        let mut pending = Vec::new();
        for (at, s) in specs.iter().enumerate() {
            let tx = build(s);
            if admit(&pool, tx.clone(), at as u64).is_ok() {
                pending.push(tx);
            }
        }
        let committed: Vec<_> = pending.iter().zip(&pick).filter(|(_, p)| **p).map(|(t, _)| t.clone()).collect();
        let removal = pool.remove_committed(&committed);
        prop_assert_eq!(removal.removed, committed.len());
        let highest_committed: HashMap<Address, u64> = committed.iter().fold(HashMap::new(), |mut m, t| {
            let e = m.entry(t.tx().sender).or_insert(0);
            *e = (*e).max(t.tx().nonce);
            m
        });
        for tx in &pending {
            let stale = highest_committed.get(&tx.tx().sender).is_some_and(|&n| tx.tx().nonce <= n);
            prop_assert_eq!(pool.is_pending(&tx.digest()), !stale);
        }
        prop_assert_eq!(pool.len() + removal.removed + removal.stale_dropped, pending.len());
        for tx in committed {
            let refused = matches!(admit(&pool, tx, 9_999), Err(Rejection::DuplicateIncluded { .. }));
            prop_assert!(refused, "a committed transaction was admitted again");
        }
    }
}
