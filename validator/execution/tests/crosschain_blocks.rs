//! Cross-chain operations carried as transactions through the executors: locks in an
//! Alpha block among transfers, committed and certified; their attestations in a
//! Delta block among transfers (with a forged and a replayed one). Sequential and
//! parallel execution agree, and the records and balances are what the protocol says.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::chain_store::ChainStore;
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::encoding::Canonical;
use dualchain_core::hash::Digest;
use dualchain_core::types::{
    Address, AssetId, Attestation, AttestationRefusal, BlockCertificate, BlockHeader, ChainId,
    CrossChainFailure, CrossChainOp, FailureReason, LockRecord, Output, ReceiptStatus, RecordKey,
    RecordKind, SignedTransaction, StakeRecord, StakeStatus, Transaction, TxPayload, ValidatorSet,
};
use dualchain_execution::crosschain::{CrossChainParams, CrossChainSetup, DEFAULT_EPOCH_LENGTH};
use dualchain_execution::epochs::genesis_records;
use dualchain_execution::keys::{AccountRecord, account_key};
use dualchain_execution::merge::{SealParams, seal_and_commit};
use dualchain_execution::{
    BlockOutcome, ExecutionMode, Executor, ExecutorConfig, SignatureVerifier, StateCache,
};
use dualchain_storage::{MemoryEngine, WriteBatch};
const NET: dualchain_core::crypto::NetworkId =
    dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

type Engine = Arc<MemoryEngine>;

const T0: u64 = 1_767_225_600_000;

fn account(i: u8) -> Address {
    Address([i; 32])
}

fn validator_keys() -> Vec<ValidatorKeypair> {
    (0..4u8)
        .map(|i| ValidatorKeypair::from_seed(&[i + 7; 32]))
        .collect()
}

fn validator_set(keys: &[ValidatorKeypair]) -> ValidatorSet {
    ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1))).unwrap()
}

/// A chain at genesis with accounts 1..=8 holding 1,000 of the native asset each.
fn genesis(chain: ChainId) -> (ChainStore<Engine>, StateCache<Engine>) {
    genesis_with(chain, Vec::new())
}

/// The same with `records` (key, value) in the genesis state too.
fn genesis_with(
    chain: ChainId,
    records: Vec<(RecordKey, Vec<u8>)>,
) -> (ChainStore<Engine>, StateCache<Engine>) {
    let engine = Arc::new(MemoryEngine::new());
    let mut store = ChainStore::open(engine.clone(), chain).unwrap();
    let mut changes: Vec<_> = (1..=8u8)
        .map(|i| {
            let record = AccountRecord {
                native: 1_000,
                ..AccountRecord::default()
            };
            (account_key(&account(i)).to_vec(), record.encode_value())
        })
        .collect();
    changes.extend(
        records
            .into_iter()
            .map(|(key, value)| (key.state_key().to_vec(), Some(value))),
    );
    store.init_genesis(Digest::ZERO, &changes).unwrap();
    (store, StateCache::new(engine, 0))
}

fn executor(chain: ChainId, mode: ExecutionMode, set: &ValidatorSet) -> Executor {
    executor_with_epochs(chain, mode, set, DEFAULT_EPOCH_LENGTH)
}

fn executor_with_epochs(
    chain: ChainId,
    mode: ExecutionMode,
    set: &ValidatorSet,
    epoch_length: u64,
) -> Executor {
    let config = ExecutorConfig {
        mode,
        min_parallel_batch: 2,
        ..ExecutorConfig::default()
    };
    let setup = CrossChainSetup::new(
        CrossChainParams::default(),
        BTreeMap::from([(0, set.clone())]),
        NET,
    )
    .with_epoch_length(epoch_length);
    Executor::new(chain, config, Arc::new(SignatureVerifier::new(NET, true)))
        .unwrap()
        .with_cross_chain(Arc::new(setup))
}

fn tx(chain: ChainId, sender: u8, nonce: u64, payload: TxPayload) -> SignedTransaction {
    Transaction {
        chain,
        sender: account(sender),
        nonce,
        fee: 1,
        payload,
    }
    .unsigned()
}

fn transfers(chain: ChainId, nonces: &mut BTreeMap<u8, u64>) -> Vec<SignedTransaction> {
    (1..=8u8)
        .map(|from| {
            let nonce = nonces.entry(from).or_default();
            let payload = TxPayload::Transfer {
                outputs: vec![Output {
                    // Pairs (1↔2, 3↔4, …): independent groups for the scheduler.
                    to: account(if from % 2 == 1 { from + 1 } else { from - 1 }),
                    asset: AssetId::NATIVE,
                    amount: 10,
                }],
            };
            *nonce += 1;
            tx(chain, from, *nonce - 1, payload)
        })
        .collect()
}

/// Runs `txs` sequentially and in parallel on the same state; they must agree.
fn execute(
    chain: ChainId,
    set: &ValidatorSet,
    cache: &StateCache<Engine>,
    txs: &[SignedTransaction],
) -> BlockOutcome {
    let sequential = executor(chain, ExecutionMode::Sequential, set)
        .execute_block_at(cache, txs, T0)
        .unwrap();
    let parallel = executor(chain, ExecutionMode::Parallel, set)
        .execute_block_at(cache, txs, T0)
        .unwrap();
    assert_eq!(sequential.first_difference(&parallel), None);
    assert_eq!(sequential, parallel);
    assert!(
        parallel.stats.ran_parallel,
        "the block must split into groups, or the parallel path went untested"
    );
    sequential
}

/// Seals `txs` with their `outcome` as the next block at time T0 and commits it.
fn commit(
    store: &mut ChainStore<Engine>,
    cache: &StateCache<Engine>,
    txs: Vec<SignedTransaction>,
    outcome: &BlockOutcome,
) -> dualchain_core::types::Block {
    let params = SealParams {
        timestamp_ms: T0,
        ..SealParams::default()
    };
    seal_and_commit(store, cache, txs, outcome, params, WriteBatch::default()).unwrap()
}

/// A certificate of `header` by validators 0, 1 and 2 of `keys`.
fn certify(keys: &[ValidatorKeypair], header: &BlockHeader) -> BlockCertificate {
    BlockCertificate::from_votes(
        header,
        (0..3u16).map(|i| {
            (
                i,
                BlockCertificate::vote(&keys[usize::from(i)], header, NET),
            )
        }),
    )
}

fn status(outcome: &BlockOutcome, i: usize) -> &ReceiptStatus {
    &outcome.receipts[i].status
}

#[test]
fn locks_and_their_attestations_run_through_both_executors_alike() {
    let keys = validator_keys();
    let set = validator_set(&keys);

    // Alpha: transfers, and locks by accounts 1 (twice) and 2 among them; account 3
    // asks for more than its 1,000 − 2 fees ± 10 sent and received.
    let (mut alpha_store, alpha_cache) = genesis(ChainId::Alpha);
    let mut nonces = BTreeMap::new();
    let mut txs = transfers(ChainId::Alpha, &mut nonces);
    let lock = |sender: u8, nonce: u64, amount: u64| {
        let op = CrossChainOp::SaxLock {
            amount,
            unlock_at_ms: T0 + 60_000,
        };
        tx(ChainId::Alpha, sender, nonce, TxPayload::CrossChain(op))
    };
    txs.insert(3, lock(1, 1, 300));
    txs.push(lock(2, 1, 200));
    txs.push(lock(1, 2, 100));
    txs.push(lock(3, 1, 5_000));
    let outcome = execute(ChainId::Alpha, &set, &alpha_cache, &txs);
    let insufficient = FailureReason::CrossChain(CrossChainFailure::InsufficientBalance {
        available: 998,
        needed: 5_000,
    });
    assert_eq!(
        status(&outcome, txs.len() - 1),
        &ReceiptStatus::Failed(insufficient)
    );
    let locks: Vec<Digest> = [3, txs.len() - 3, txs.len() - 2]
        .into_iter()
        .map(|i| {
            assert_eq!(status(&outcome, i), &ReceiptStatus::Success, "lock {i}");
            txs[i].digest()
        })
        .collect();
    assert_eq!(
        outcome
            .records
            .0
            .keys()
            .filter(|k| k.kind == RecordKind::Lock)
            .count(),
        3
    );
    // One `sax_locked` event per successful lock, in block order, naming its lock.
    let events: Vec<(Digest, &str)> = outcome
        .events
        .iter()
        .map(|e| (e.tx, e.event.name()))
        .collect();
    assert_eq!(
        events,
        locks.iter().map(|l| (*l, "sax_locked")).collect::<Vec<_>>()
    );
    let block = commit(&mut alpha_store, &alpha_cache, txs, &outcome);
    // 1,000 − 3 fees − 10 sent + 10 received − 400 locked.
    assert_eq!(
        alpha_cache.account(&account(1)).unwrap().native,
        1_000 - 3 - 400
    );

    // The certified block's lock records, attested on Delta among transfers.
    let certificate = certify(&keys, &block.header);
    let attestation = |lock: &Digest| {
        let key = RecordKey::new(RecordKind::Lock, lock.0).state_key();
        let reader = alpha_store.reader();
        Attestation {
            header: block.header.clone(),
            certificate: certificate.clone(),
            value: reader
                .get_state(&key)
                .unwrap()
                .expect("the lock is in Alpha's state"),
            proof: reader.prove(&key).1,
            key: key.to_vec(),
        }
    };
    let (_, delta_cache) = genesis(ChainId::Delta);
    let mut nonces = BTreeMap::new();
    let mut txs = transfers(ChainId::Delta, &mut nonces);
    let relay = |nonce: u64, attestation: Attestation| {
        let op = CrossChainOp::Attest(Box::new(attestation));
        tx(ChainId::Delta, 8, nonce, TxPayload::CrossChain(op))
    };
    for (i, lock) in locks.iter().enumerate() {
        txs.push(relay(1 + i as u64, attestation(lock)));
    }
    let mut forged = attestation(&locks[0]);
    let mut record = LockRecord::from_canonical_bytes(&forged.value).unwrap();
    record.amount *= 10;
    forged.value = record.to_canonical_bytes();
    txs.push(relay(4, forged));
    txs.push(relay(5, attestation(&locks[1])));
    let outcome = execute(ChainId::Delta, &set, &delta_cache, &txs);

    let n = txs.len();
    for i in n - 5..n - 2 {
        assert_eq!(
            status(&outcome, i),
            &ReceiptStatus::Success,
            "attestation {i}"
        );
    }
    let refused = |refusal| {
        ReceiptStatus::Failed(FailureReason::CrossChain(CrossChainFailure::Attestation(
            refusal,
        )))
    };
    assert_eq!(status(&outcome, n - 2), &refused(AttestationRefusal::Proof));
    assert_eq!(
        status(&outcome, n - 1),
        &refused(AttestationRefusal::Replayed)
    );
    let stakes: Vec<StakeRecord> = locks
        .iter()
        .map(|lock| {
            let value = outcome.records.0[&RecordKey::new(RecordKind::Stake, lock.0)]
                .as_ref()
                .unwrap();
            StakeRecord::from_canonical_bytes(value).unwrap()
        })
        .collect();
    assert!(stakes.iter().all(|s| s.status == StakeStatus::Active));
    let weight = outcome.records.0[&RecordKey::new(RecordKind::StakeWeight, account(1).0)]
        .as_ref()
        .unwrap();
    assert_eq!(weight.as_slice(), 400u64.to_le_bytes());
}

#[test]
fn without_a_setup_cross_chain_operations_are_refused_alike() {
    let (_, cache) = genesis(ChainId::Alpha);
    let op = CrossChainOp::SaxLock {
        amount: 1,
        unlock_at_ms: T0 + 1,
    };
    let txs = vec![tx(ChainId::Alpha, 1, 0, TxPayload::CrossChain(op))];
    let plain = Executor::new(
        ChainId::Alpha,
        ExecutorConfig::default(),
        Arc::new(SignatureVerifier::new(NET, true)),
    )
    .unwrap();
    let outcome = plain.execute_block_at(&cache, &txs, T0).unwrap();
    assert_eq!(
        status(&outcome, 0),
        &ReceiptStatus::Failed(FailureReason::CrossChain(CrossChainFailure::Disabled))
    );
    assert_eq!(
        outcome.receipts[0].fee_charged, 1,
        "the fee and nonce still apply"
    );
    assert!(outcome.records.0.is_empty());
}

/// Alpha's boundary block (epochs of two blocks) fixes the set of epoch 1 after its
/// transactions, in both executors alike, with the block's `epoch_boundary_reached`
/// event; the record, attested from the certified boundary block, moves Delta into
/// epoch 1.
#[test]
fn the_boundary_block_fixes_the_next_set_and_its_attestation_moves_delta() {
    let keys = validator_keys();
    let set = validator_set(&keys);
    let with_epochs = |chain| genesis_with(chain, genesis_records(&set).to_vec());
    let run = |chain, cache: &StateCache<Engine>, txs: &[SignedTransaction]| {
        let sequential = executor_with_epochs(chain, ExecutionMode::Sequential, &set, 2)
            .execute_block_at(cache, txs, T0)
            .unwrap();
        let parallel = executor_with_epochs(chain, ExecutionMode::Parallel, &set, 2)
            .execute_block_at(cache, txs, T0)
            .unwrap();
        assert_eq!(sequential, parallel);
        sequential
    };
    let (mut alpha_store, alpha_cache) = with_epochs(ChainId::Alpha);
    let mut nonces = BTreeMap::new();
    let mut block = None;
    for height in 1..=2u64 {
        let txs = transfers(ChainId::Alpha, &mut nonces);
        let outcome = run(ChainId::Alpha, &alpha_cache, &txs);
        let boundary: Vec<_> = outcome
            .events
            .iter()
            .filter(|e| e.event.name() == "epoch_boundary_reached")
            .collect();
        assert_eq!(boundary.len(), usize::from(height == 2), "height {height}");
        if height == 2 {
            assert_eq!(boundary[0].tx, Digest::ZERO);
            assert_eq!(
                outcome.events.last(),
                Some(boundary[0]),
                "after the transactions"
            );
        }
        block = Some(commit(&mut alpha_store, &alpha_cache, txs, &outcome));
    }
    let block = block.unwrap();
    let key = dualchain_core::types::validator_set_key(1).state_key();
    let reader = alpha_store.reader();
    let value = reader
        .get_state(&key)
        .unwrap()
        .expect("Alpha holds the set of epoch 1");
    let next_set = ValidatorSet::from_canonical_bytes(&value).unwrap();
    assert_eq!(next_set.epoch(), 1);
    assert_eq!(next_set.validators(), set.validators());

    let certificate = certify(&keys, &block.header);
    let attestation = Attestation {
        header: block.header.clone(),
        certificate,
        value,
        proof: reader.prove(&key).1,
        key: key.to_vec(),
    };
    let (_, delta_cache) = with_epochs(ChainId::Delta);
    let mut nonces = BTreeMap::new();
    let mut txs = transfers(ChainId::Delta, &mut nonces);
    let op = CrossChainOp::Attest(Box::new(attestation));
    txs.push(tx(ChainId::Delta, 8, 1, TxPayload::CrossChain(op)));
    let outcome = run(ChainId::Delta, &delta_cache, &txs);
    assert_eq!(status(&outcome, txs.len() - 1), &ReceiptStatus::Success);
    let entered: Vec<_> = outcome.events.iter().map(|e| e.event.name()).collect();
    assert_eq!(entered, ["epoch_boundary_reached"]);
    assert!(
        outcome
            .records
            .0
            .contains_key(&dualchain_core::types::validator_set_key(1)),
        "Delta now holds the set of epoch 1"
    );
}
