//! Admission, draining and committed removal, one rule at a time.

mod common;

use common::*;
use dualchain_core::Digest;
use dualchain_core::crypto::{AccountKeypair, NetworkId};
use dualchain_core::types::{Address, Authorization, ChainId, SignedTransaction, Transaction};
use dualchain_execution::{SignatureVerifier, Verdict};
use dualchain_mempool::{
    AdmissionTime, CommitRemoval, Mempool, MempoolConfig, RejectReason, Rejection, encoded_len,
};
use prometheus::Registry;

fn small() -> MempoolConfig {
    MempoolConfig {
        max_txs: 100,
        max_bytes: 1 << 20,
        max_attest_tx_bytes: 1 << 20,
        max_per_sender: 10,
        recent_capacity: 1_000,
        shards: 4,
        ..MempoolConfig::default()
    }
}

#[test]
fn refuses_wrong_chain_bad_verdicts_and_oversize() {
    let pool = pool(small());
    let alpha = transfer_with(ChainId::Alpha, 1, 0, 1, 1);
    assert_eq!(
        admit(&pool, alpha, 0),
        Err(Rejection::WrongChain {
            tx_chain: ChainId::Alpha,
            pool_chain: ChainId::Delta
        })
    );
    assert_eq!(
        pool.admit(transfer(1, 0), Verdict::Invalid, AdmissionTime(0)),
        Err(Rejection::InvalidSignature)
    );
    assert_eq!(
        pool.admit(
            transfer(1, 0),
            Verdict::UnsignedNotAllowed,
            AdmissionTime(0)
        ),
        Err(Rejection::UnsignedNotAllowed)
    );
    let limited = common::pool(MempoolConfig {
        max_tx_bytes: 200,
        ..small()
    });
    let big = transfer_with(ChainId::Delta, 1, 0, 1, 10);
    let size = encoded_len(&big);
    assert_eq!(
        admit(&limited, big, 0),
        Err(Rejection::Oversize { size, limit: 200 })
    );
    assert!(pool.is_empty() && limited.is_empty());
}

/// The network the verifier admits for; any other is refused.
const NETWORK: NetworkId = NetworkId(Digest([0x4e; 32]));

#[test]
fn admit_verified_uses_the_verifier_verdict() {
    let strict = SignatureVerifier::new(NETWORK, false);
    let pool = pool(small());
    assert_eq!(
        pool.admit_verified(transfer(1, 0), &strict, AdmissionTime(0)),
        Err(Rejection::UnsignedNotAllowed)
    );
    let key = AccountKeypair::from_seed(&[5; 32]);
    let tx = Transaction {
        sender: Address::of(key.public()),
        ..transfer(1, 0).tx().clone()
    };
    let signed = tx.clone().sign(&key, NETWORK);
    pool.admit_verified(signed.clone(), &strict, AdmissionTime(1))
        .unwrap();
    // Someone else's signature over the same transaction: invalid, and refused.
    let other = AccountKeypair::from_seed(&[6; 32]);
    let forged =
        SignedTransaction::new(tx.clone(), tx.clone().sign(&other, NETWORK).auth().clone());
    let fresh = common::pool(small());
    assert_eq!(
        fresh.admit_verified(forged, &strict, AdmissionTime(2)),
        Err(Rejection::InvalidSignature)
    );
    // The sender's own signature, made for another network (a replay of a
    // transaction from a testnet with the same keys): invalid here too.
    let elsewhere = NetworkId(Digest([0x4f; 32]));
    let replayed = tx.sign(&key, elsewhere);
    assert_eq!(
        fresh.admit_verified(replayed, &strict, AdmissionTime(3)),
        Err(Rejection::InvalidSignature)
    );
    assert!(fresh.is_empty());
}

#[test]
fn duplicates_are_refused_while_pending_and_after_proposal_or_commit() {
    let pool = pool(small());
    let tx = transfer(1, 0);
    let digest = admit(&pool, tx.clone(), 0).unwrap();
    assert_eq!(
        admit(&pool, tx.clone(), 1),
        Err(Rejection::DuplicatePending { digest })
    );
    // A re-authorised copy has the same digest: still a duplicate.
    let copy = SignedTransaction::new(tx.tx().clone(), Authorization::Unsigned);
    assert_eq!(
        admit(&pool, copy, 2),
        Err(Rejection::DuplicatePending { digest })
    );
    let batch = pool.take_batch(10, 1 << 20);
    assert_eq!(batch.digests(), vec![digest]);
    assert_eq!(
        admit(&pool, tx.clone(), 3),
        Err(Rejection::DuplicateIncluded { digest })
    );
    // The proposal is abandoned: the transaction is pending again, at its old place.
    assert_eq!(pool.reinstate(batch), vec![Ok(digest)]);
    assert!(pool.is_pending(&digest) && !pool.is_recent(&digest));
    assert_eq!(
        pool.remove_committed(std::slice::from_ref(&tx)),
        CommitRemoval {
            removed: 1,
            stale_dropped: 0
        }
    );
    assert!(pool.is_empty() && pool.is_recent(&digest));
    assert_eq!(
        admit(&pool, tx, 4),
        Err(Rejection::DuplicateIncluded { digest })
    );
}

#[test]
fn nonce_conflicts_and_sender_cap_are_refused_without_hurting_others() {
    let pool = pool(small());
    admit(&pool, transfer_with(ChainId::Delta, 1, 0, 1, 1), 0).unwrap();
    assert_eq!(
        admit(&pool, transfer_with(ChainId::Delta, 1, 0, 2, 1), 1),
        Err(Rejection::NonceConflict {
            sender: sender(1),
            nonce: 0
        })
    );
    for nonce in 1..10 {
        admit(&pool, transfer(1, nonce), nonce).unwrap();
    }
    let refused = admit(&pool, transfer(1, 10), 10).unwrap_err();
    assert_eq!(
        refused,
        Rejection::SenderCapReached {
            sender: sender(1),
            cap: 10
        }
    );
    assert!(refused.is_transient());
    // Another sender is not affected by the first one's flood.
    admit(&pool, transfer(2, 0), 11).unwrap();
    assert_eq!(pool.pending_of(&sender(1)), 10);
    assert_eq!(pool.pending_of(&sender(2)), 1);
}

#[test]
fn full_pool_refuses_by_count_and_by_bytes_then_recovers() {
    let by_count = pool(MempoolConfig {
        max_txs: 5,
        ..small()
    });
    for n in 0..5 {
        admit(&by_count, transfer(n, 0), n.into()).unwrap();
    }
    let full = admit(&by_count, transfer(9, 0), 9).unwrap_err();
    assert_eq!(full.reason(), RejectReason::Full);
    assert_eq!(by_count.len(), 5);
    assert_eq!(by_count.take_batch(2, usize::MAX).len(), 2);
    admit(&by_count, transfer(9, 0), 10).unwrap();

    let size = encoded_len(&transfer(0, 0));
    let by_bytes = pool(MempoolConfig {
        max_bytes: 3 * size + size / 2,
        max_tx_bytes: size,
        max_attest_tx_bytes: size,
        ..small()
    });
    for n in 0..3 {
        admit(&by_bytes, transfer(n, 0), n.into()).unwrap();
    }
    assert_eq!(
        admit(&by_bytes, transfer(3, 0), 3).map_err(|r| r.reason()),
        Err(RejectReason::Full)
    );
    assert_eq!(by_bytes.bytes(), 3 * size);
}

#[test]
fn batches_drain_round_robin_across_senders() {
    let pool = pool(small());
    // Sender 1 floods first; senders 2..=4 arrive later with one transaction each.
    for nonce in 0..10 {
        admit(&pool, transfer(1, nonce), nonce).unwrap();
    }
    for n in 2..=4 {
        admit(&pool, transfer(n, 0), 100 + u64::from(n)).unwrap();
    }
    let batch = pool.take_batch(5, usize::MAX);
    assert_eq!(
        order(&batch),
        vec![
            (sender(1), 0),
            (sender(2), 0),
            (sender(3), 0),
            (sender(4), 0),
            (sender(1), 1)
        ]
    );
    assert_eq!(pool.len(), 8);
}

#[test]
fn unbounded_batch_limits_drain_everything_drainable() {
    let pool = pool(small());
    for n in 0..5 {
        for nonce in 0..3 {
            admit(&pool, transfer(n, nonce), nonce).unwrap();
        }
    }
    let batch = pool.take_batch(usize::MAX, usize::MAX);
    assert_eq!(batch.len(), 15);
    assert!(pool.is_empty());
    assert!(pool.take_batch(usize::MAX, usize::MAX).is_empty());
}

#[test]
fn a_senders_transactions_drain_in_nonce_order_and_wait_for_gaps() {
    let pool = pool(small());
    for (at, nonce) in [(0, 2), (1, 0), (2, 4)] {
        admit(&pool, transfer(1, nonce), at).unwrap();
    }
    // Nonce 1 is missing: only 0 can go.
    assert_eq!(
        order(&pool.take_batch(10, usize::MAX)),
        vec![(sender(1), 0)]
    );
    admit(&pool, transfer(1, 1), 3).unwrap();
    assert_eq!(
        order(&pool.take_batch(10, usize::MAX)),
        vec![(sender(1), 1), (sender(1), 2)]
    );
    assert_eq!(pool.len(), 1, "nonce 4 waits for 3");
}

#[test]
fn byte_budget_skips_a_sender_that_does_not_fit_but_serves_others() {
    let pool = pool(small());
    let big = transfer_with(ChainId::Delta, 1, 0, 1, 20);
    let small_tx = transfer(2, 0);
    let (big_size, small_size) = (encoded_len(&big), encoded_len(&small_tx));
    admit(&pool, big, 0).unwrap();
    admit(&pool, transfer(1, 1), 1).unwrap();
    admit(&pool, small_tx, 2).unwrap();
    admit(&pool, transfer(2, 1), 3).unwrap();
    let batch = pool.take_batch(10, big_size - 1);
    // Sender 1's nonce 0 does not fit, so its nonce 1 must not go either.
    assert_eq!(order(&batch), vec![(sender(2), 0), (sender(2), 1)]);
    assert_eq!(batch.bytes, 2 * small_size);
    assert!(batch.bytes < big_size);
    assert_eq!(pool.len(), 2);
}

#[test]
fn committed_nonces_make_older_pending_transactions_stale() {
    let pool = pool(small());
    for nonce in 0..5 {
        admit(&pool, transfer(1, nonce), nonce).unwrap();
    }
    // Another node's block included a different transaction with nonce 2.
    let elsewhere = transfer_with(ChainId::Delta, 1, 2, 99, 1);
    assert_eq!(
        pool.remove_committed(&[elsewhere]),
        CommitRemoval {
            removed: 0,
            stale_dropped: 3
        }
    );
    assert_eq!(
        order(&pool.take_batch(10, usize::MAX)),
        vec![(sender(1), 3), (sender(1), 4)]
    );
}

#[test]
fn committed_digests_are_removed_from_any_shard() {
    let pool = pool(small());
    let digests: Vec<_> = (0..20)
        .map(|n| admit(&pool, transfer(n, 0), n.into()).unwrap())
        .collect();
    let outcome = pool.remove_committed_digests(&digests[..15]);
    assert_eq!(outcome.removed, 15);
    assert_eq!(pool.len(), 5);
    assert!(
        digests[..15]
            .iter()
            .all(|d| pool.is_recent(d) && !pool.is_pending(d))
    );
    assert_eq!(
        admit(&pool, transfer(0, 0), 50).map_err(|r| r.reason()),
        Err(RejectReason::DuplicateIncluded)
    );
}

#[test]
fn metrics_of_both_chains_share_a_registry() {
    let registry = Registry::new();
    let delta = Mempool::with_metrics(ChainId::Delta, small(), &registry).unwrap();
    let _alpha = Mempool::with_metrics(ChainId::Alpha, small(), &registry).unwrap();
    for n in 0..3 {
        admit(&delta, transfer(n, 0), n.into()).unwrap();
    }
    let _ = admit(&delta, transfer(0, 0), 5);
    let _ = admit(&delta, transfer_with(ChainId::Alpha, 0, 0, 1, 1), 6);
    delta.take_batch_at(1, usize::MAX, AdmissionTime(1_000_000));
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    for line in [
        "dualchain_mempool_depth{chain=\"delta\"} 2",
        "dualchain_mempool_depth{chain=\"alpha\"} 0",
        "dualchain_mempool_admitted_total{chain=\"delta\"} 3",
        "dualchain_mempool_rejected_total{chain=\"delta\",reason=\"duplicate_pending\"} 1",
        "dualchain_mempool_rejected_total{chain=\"delta\",reason=\"wrong_chain\"} 1",
        "dualchain_mempool_drained_total{chain=\"delta\"} 1",
        "dualchain_mempool_enqueue_latency_seconds_count{chain=\"delta\"} 5",
        "dualchain_mempool_queue_wait_seconds_count{chain=\"delta\"} 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    // Registering the same chain twice is refused, not silently merged.
    assert!(Mempool::with_metrics(ChainId::Delta, small(), &registry).is_err());
}

#[test]
fn invalid_configuration_is_an_error() {
    let bad = MempoolConfig {
        shards: 6,
        ..small()
    };
    assert!(Mempool::new(ChainId::Delta, bad).is_err());
}
