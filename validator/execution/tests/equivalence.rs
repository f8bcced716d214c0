//! Parallel == sequential == model, on random workloads.
//!
//! The generators cover: conflict from none to total (pools of 1 to 12 accounts,
//! and the benchmark generator's conflict knob), hot accounts, nonce gaps and
//! replays, exact duplicate transactions, insufficient fees and balances, balances
//! at `u64::MAX` (overflow), multi-asset and self transfers, burns, multisig
//! configuration and spends with too few / foreign / unordered approvals, wrong
//! chain, negative signature verdicts and malformed in-memory transactions.

mod common;

use std::sync::{Arc, OnceLock};

use common::*;
use dualchain_core::types::ChainId;
use dualchain_execution::merge::{SealParams, StateCommitment, seal_and_commit};
use dualchain_execution::workload::{GenesisState, Workload, WorkloadSpec};
use dualchain_execution::{
    BlockOutcome, ExecutionMode, Executor, ExecutorConfig, SignatureVerifier, Verdict,
};
use proptest::prelude::*;
const NET: dualchain_core::crypto::NetworkId =
    dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

fn pool_of_threads() -> Arc<rayon::ThreadPool> {
    static POOL: OnceLock<Arc<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap(),
        )
    })
    .clone()
}

/// An executor that schedules every block of two or more transactions in parallel,
/// however conflicted, so that the scheduler is what the tests exercise.
fn forced_parallel(mode: ExecutionMode) -> Executor {
    let config = ExecutorConfig {
        mode,
        min_parallel_batch: 2,
        chunks_per_thread: 3,
        max_serial_share: 1.0,
    };
    Executor::new(
        ChainId::Delta,
        config,
        Arc::new(SignatureVerifier::new(NET, true)),
    )
    .unwrap()
    .with_thread_pool(pool_of_threads())
}

fn split(block: &[GenTx]) -> (Vec<dualchain_core::types::SignedTransaction>, Vec<Verdict>) {
    (
        block.iter().map(|t| t.stx.clone()).collect(),
        block.iter().map(|t| t.verdict).collect(),
    )
}

fn assert_identical(sequential: &BlockOutcome, parallel: &BlockOutcome) {
    if let Some(diff) = sequential.first_difference(parallel) {
        panic!("parallel differs from sequential: {diff}");
    }
    assert_eq!(sequential, parallel);
    assert_eq!(sequential.state_changes(), parallel.state_changes());
    assert_eq!(sequential.receipts_root(), parallel.receipts_root());
    let fees: u128 = sequential
        .receipts
        .iter()
        .map(|r| u128::from(r.fee_charged))
        .sum();
    assert_eq!(fees, sequential.fees);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn parallel_equals_sequential_equals_model(
        (pool_size, genesis, block) in prop_oneof![3 => 1usize..12, 1 => 12usize..48]
            .prop_flat_map(|n| (Just(n), genesis(n), block(n, if n < 12 { 60 } else { 120 })))
    ) {
        let pool = pool(pool_size);
        let state = genesis.state(&pool);
        let block = prepare(&state, ChainId::Delta, &block);
        let store = store_with(&state);
        let cache = cache_of(&store);
        let executor = forced_parallel(ExecutionMode::Parallel);
        let (txs, verdicts) = split(&block);

        let sequential = executor.execute_sequential(&cache, &txs, &verdicts).unwrap();
        let parallel = executor.execute_parallel(&cache, &txs, &verdicts).unwrap();
        assert_identical(&sequential, &parallel);
        prop_assert_eq!(sequential.receipts.len(), txs.len());

        let mut model = Model { state: state.clone() };
        let receipts = model.execute(ChainId::Delta, &block);
        prop_assert_eq!(&sequential.receipts, &receipts);
        prop_assert_eq!(applied(&state, &sequential.state_changes()), model.state);

        // The commitment of the outcome is the chain store's root of the same changes.
        let mut commitment = StateCommitment::new(store.state_tree().clone());
        let mut store = store;
        prop_assert_eq!(
            commitment.apply(&parallel),
            store.state_root_after(&sequential.state_changes())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Two blocks committed through the chain store: the cache advanced by the first
    /// block answers the second exactly like a cold cache over the committed engine.
    #[test]
    fn blocks_commit_and_the_cache_stays_exact(
        (pool_size, genesis, first, second) in (1usize..10)
            .prop_flat_map(|n| (Just(n), genesis(n), block(n, 40), block(n, 40)))
    ) {
        let pool = pool(pool_size);
        let state = genesis.state(&pool);
        let mut store = store_with(&state);
        let cache = cache_of(&store);
        let shadow = forced_parallel(ExecutionMode::Shadow);
        let mut model = Model { state: state.clone() };

        for block in [&first, &second] {
            let block = &prepare(&model.state, ChainId::Delta, block);
            let (txs, verdicts) = split(block);
            let outcome = shadow.execute_sequential(&cache, &txs, &verdicts).unwrap();
            let parallel = shadow.execute_parallel(&cache, &txs, &verdicts).unwrap();
            assert_identical(&outcome, &parallel);
            let cold = cache_of(&store);
            let from_cold = shadow.execute_parallel(&cold, &txs, &verdicts).unwrap();
            assert_identical(&outcome, &from_cold);

            let receipts = model.execute(ChainId::Delta, block);
            prop_assert_eq!(&outcome.receipts, &receipts);

            let expected_root = store.preview_state_root(&outcome.state_changes());
            let sealed = seal_and_commit(
                &mut store,
                &cache,
                txs,
                &outcome,
                SealParams::default(),
                dualchain_storage::WriteBatch::new(),
            )
            .unwrap();
            prop_assert_eq!(sealed.header.state_root, expected_root);
            prop_assert_eq!(store.state_root(), expected_root);
            prop_assert_eq!(&read_state(store.engine().as_ref()), &model.state);
        }
        prop_assert_eq!(shadow.metrics().shadow_mismatches.get(), 0);
        prop_assert_eq!(cache.height(), 2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The benchmark generator across the whole conflict range, with the default
    /// scheduler settings (including its in-order fallback).
    #[test]
    fn benchmark_workloads_agree_at_every_conflict(
        conflict in prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
        txs in 1usize..400,
        accounts in prop_oneof![Just(0usize), 2usize..50],
        seed in any::<u64>(),
    ) {
        let accounts = if accounts == 0 { txs * 2 + 1 } else { accounts };
        let workload = Workload::generate(&WorkloadSpec { txs, accounts, conflict, seed, signed: false });
        let state = GenesisState::build(&workload.genesis).unwrap();
        let verifier = Arc::new(SignatureVerifier::for_genesis(&workload.genesis));
        let executor = Executor::new(ChainId::Delta, ExecutorConfig::default(), verifier)
            .unwrap()
            .with_thread_pool(pool_of_threads());
        let verdicts = executor.verdicts(&workload.txs);
        let sequential = executor.execute_sequential(&state.cache, &workload.txs, &verdicts).unwrap();
        let parallel = executor.execute_parallel(&state.cache, &workload.txs, &verdicts).unwrap();
        assert_identical(&sequential, &parallel);
        // The warm genesis cache holds exactly what the engine does.
        let cold = dualchain_execution::StateCache::new(state.store.engine().clone(), 0);
        let from_cold = executor.execute_parallel(&cold, &workload.txs, &verdicts).unwrap();
        assert_identical(&sequential, &from_cold);
        // Funded, correctly nonced transfers all succeed.
        prop_assert_eq!(sequential.failed_count(), 0);
    }
}

#[test]
fn unsigned_transactions_need_the_genesis_flag() {
    let mut workload = Workload::generate(&WorkloadSpec {
        txs: 50,
        accounts: 101,
        conflict: 0.3,
        seed: 9,
        signed: false,
    });
    let state = GenesisState::build(&workload.genesis).unwrap();
    workload.genesis.allow_unsigned_transactions = false;
    let verifier = Arc::new(SignatureVerifier::for_genesis(&workload.genesis));
    let executor = Executor::new(ChainId::Delta, ExecutorConfig::default(), verifier).unwrap();
    let outcome = executor.execute_block(&state.cache, &workload.txs).unwrap();
    assert_eq!(outcome.failed_count(), 50);
    assert!(outcome.receipts.iter().all(|r| r.status
        == dualchain_core::types::ReceiptStatus::Failed(
            dualchain_core::types::FailureReason::UnsignedNotAllowed
        )
        && r.fee_charged == 0));
    assert!(outcome.account_updates.is_empty());
}

#[test]
fn signed_blocks_verify_once_and_agree() {
    let workload = Workload::generate(&WorkloadSpec {
        txs: 40,
        accounts: 81,
        conflict: 0.5,
        seed: 3,
        signed: true,
    });
    let state = GenesisState::build(&workload.genesis).unwrap();
    let verifier = Arc::new(SignatureVerifier::for_genesis(&workload.genesis));
    let executor = Executor::new(
        ChainId::Delta,
        ExecutorConfig {
            mode: ExecutionMode::Shadow,
            ..ExecutorConfig::default()
        },
        verifier.clone(),
    )
    .unwrap()
    .with_thread_pool(pool_of_threads());
    // Admission verifies; execution then only hits the cache.
    let admitted = verifier.verify_batch(&workload.txs);
    assert!(admitted.iter().all(|v| *v == Verdict::Valid));
    let outcome = executor.execute_block(&state.cache, &workload.txs).unwrap();
    assert_eq!(outcome.failed_count(), 0);
    assert_eq!(verifier.hit_counts(), (40, 40));
    assert_eq!(executor.metrics().shadow_mismatches.get(), 0);

    // A tampered signature (same digest) is refused at execution.
    let mut tampered = workload.txs.clone();
    let other = dualchain_core::crypto::AccountKeypair::from_seed(&[42; 32]);
    tampered[0] = dualchain_core::types::SignedTransaction::new(
        tampered[0].tx().clone(),
        tampered[0].tx().clone().sign(&other, NET).auth().clone(),
    );
    let outcome = executor.execute_block(&state.cache, &tampered).unwrap();
    assert_eq!(
        outcome.receipts[0].status,
        dualchain_core::types::ReceiptStatus::Failed(
            dualchain_core::types::FailureReason::InvalidSignature
        )
    );
}
