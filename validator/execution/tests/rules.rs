//! The documented rules, one worked example each (the property tests cover the
//! combinations).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{keys, store_with};
use dualchain_core::types::{
    Address, AssetId, ChainId, FailureReason, Output, ReceiptStatus, SignedTransaction,
    Transaction, TxPayload,
};
use dualchain_execution::keys::{
    AccountRecord, FEE_POOL_KEY, account_key, balance_key, burned_key, decode_total, encode_balance,
};
use dualchain_execution::{
    BlockOutcome, ExecutionMode, Executor, ExecutorConfig, SignatureVerifier, StateCache,
};
const NET: dualchain_core::crypto::NetworkId =
    dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

const ALICE: Address = Address([0xA1; 32]);
const BOB: Address = Address([0xB0; 32]);

fn state(entries: &[(Vec<u8>, Vec<u8>)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    entries.iter().cloned().collect()
}

fn funded(address: &Address, native: u64) -> (Vec<u8>, Vec<u8>) {
    let record = AccountRecord {
        native,
        ..AccountRecord::default()
    };
    (
        account_key(address).to_vec(),
        record.encode_value().unwrap(),
    )
}

fn tx(sender: Address, nonce: u64, fee: u64, payload: TxPayload) -> Transaction {
    Transaction {
        chain: ChainId::Delta,
        sender,
        nonce,
        fee,
        payload,
    }
}

fn pay(to: Address, asset: u32, amount: u64) -> TxPayload {
    TxPayload::Transfer {
        outputs: vec![Output {
            to,
            asset: AssetId(asset),
            amount,
        }],
    }
}

fn run(state: &BTreeMap<Vec<u8>, Vec<u8>>, txs: &[SignedTransaction]) -> BlockOutcome {
    let store = store_with(state);
    let cache = StateCache::new(store.engine().clone(), 0);
    let executor = Executor::new(
        ChainId::Delta,
        ExecutorConfig {
            mode: ExecutionMode::Shadow,
            ..ExecutorConfig::default()
        },
        Arc::new(SignatureVerifier::new(NET, true)),
    )
    .unwrap();
    let outcome = executor.execute_block(&cache, txs).unwrap();
    assert_eq!(executor.metrics().shadow_mismatches.get(), 0);
    outcome
}

fn status(outcome: &BlockOutcome, i: usize) -> &ReceiptStatus {
    &outcome.receipts[i].status
}

#[test]
fn a_failed_payload_still_pays_its_fee_and_uses_its_nonce() {
    let outcome = run(
        &state(&[funded(&ALICE, 10)]),
        &[tx(ALICE, 0, 3, pay(BOB, 0, 100)).unsigned()],
    );
    assert_eq!(
        status(&outcome, 0),
        &ReceiptStatus::Failed(FailureReason::InsufficientBalance {
            asset: AssetId::NATIVE,
            available: 7,
            needed: 100
        })
    );
    assert_eq!(outcome.receipts[0].fee_charged, 3);
    assert_eq!(outcome.fees, 3);
    let record = outcome.account_updates[0].record.clone().unwrap();
    assert_eq!((record.nonce, record.native), (1, 7));
    assert_eq!(outcome.account_updates.len(), 1, "bob is untouched");
    let changes = outcome.state_changes();
    let pool = changes.iter().find(|(k, _)| k == FEE_POOL_KEY).unwrap();
    assert_eq!(decode_total(pool.1.as_ref().unwrap()).unwrap(), 3);
}

#[test]
fn failures_before_the_fee_change_nothing() {
    let outcome = run(
        &state(&[funded(&ALICE, 2)]),
        &[
            tx(ALICE, 5, 1, pay(BOB, 0, 1)).unsigned(), // nonce gap
            tx(ALICE, 0, 3, pay(BOB, 0, 1)).unsigned(), // fee above balance
            Transaction {
                chain: ChainId::Alpha,
                ..tx(ALICE, 0, 1, pay(BOB, 0, 1))
            }
            .unsigned(),
            tx(ALICE, 0, 1, TxPayload::Transfer { outputs: vec![] }).unsigned(),
        ],
    );
    assert_eq!(
        status(&outcome, 0),
        &ReceiptStatus::Failed(FailureReason::BadNonce {
            expected: 0,
            got: 5
        })
    );
    assert_eq!(
        status(&outcome, 1),
        &ReceiptStatus::Failed(FailureReason::InsufficientFee {
            available: 2,
            fee: 3
        })
    );
    assert_eq!(
        status(&outcome, 2),
        &ReceiptStatus::Failed(FailureReason::WrongChain)
    );
    assert_eq!(
        status(&outcome, 3),
        &ReceiptStatus::Failed(FailureReason::Malformed)
    );
    assert!(outcome.receipts.iter().all(|r| r.fee_charged == 0));
    assert!(outcome.state_changes().is_empty());
}

#[test]
fn a_duplicate_fails_on_its_nonce() {
    let transfer = tx(ALICE, 0, 1, pay(BOB, 0, 5)).unsigned();
    let outcome = run(
        &state(&[funded(&ALICE, 100)]),
        &[transfer.clone(), transfer],
    );
    assert_eq!(status(&outcome, 0), &ReceiptStatus::Success);
    assert_eq!(
        status(&outcome, 1),
        &ReceiptStatus::Failed(FailureReason::BadNonce {
            expected: 1,
            got: 0
        })
    );
}

#[test]
fn a_credit_overflow_undoes_the_whole_payload() {
    let outcome = run(
        &state(&[
            funded(&ALICE, 10),
            (
                balance_key(&ALICE, AssetId(1)).to_vec(),
                encode_balance(50).unwrap(),
            ),
            (
                balance_key(&BOB, AssetId(1)).to_vec(),
                encode_balance(u64::MAX - 1).unwrap(),
            ),
        ]),
        &[tx(
            ALICE,
            0,
            1,
            TxPayload::Transfer {
                outputs: vec![
                    Output {
                        to: ALICE,
                        asset: AssetId(1),
                        amount: 1,
                    },
                    Output {
                        to: BOB,
                        asset: AssetId(1),
                        amount: 5,
                    },
                ],
            },
        )
        .unsigned()],
    );
    assert_eq!(
        status(&outcome, 0),
        &ReceiptStatus::Failed(FailureReason::Overflow)
    );
    // Only the fee and nonce changed.
    assert_eq!(outcome.account_updates.len(), 1);
    assert!(outcome.account_updates[0].balances.is_empty());
}

#[test]
fn burns_are_accumulated_per_asset() {
    let burn = |nonce, amount| {
        tx(
            ALICE,
            nonce,
            0,
            TxPayload::Burn {
                asset: AssetId::NATIVE,
                amount,
            },
        )
        .unsigned()
    };
    let outcome = run(
        &state(&[funded(&ALICE, 100)]),
        &[burn(0, 30), burn(1, 80), burn(2, 20)],
    );
    assert_eq!(
        status(&outcome, 1),
        &ReceiptStatus::Failed(FailureReason::InsufficientBalance {
            asset: AssetId::NATIVE,
            available: 70,
            needed: 80
        })
    );
    assert_eq!(outcome.burned.get(&AssetId::NATIVE), Some(&50));
    let changes = outcome.state_changes();
    let burned = changes
        .iter()
        .find(|(k, _)| k[..] == burned_key(AssetId::NATIVE))
        .unwrap();
    assert_eq!(decode_total(burned.1.as_ref().unwrap()).unwrap(), 50);
}

#[test]
fn multisig_accounts_need_enough_policy_approvals() {
    let k = keys();
    let mut signers = vec![k.addresses[0], k.addresses[1], k.addresses[2]];
    signers.sort();
    let spend = || TxPayload::MultisigSpend {
        outputs: vec![Output {
            to: BOB,
            asset: AssetId::NATIVE,
            amount: 10,
        }],
    };
    let approved = |which: &[usize]| {
        let signers: Vec<_> = which.iter().map(|&i| &k.keys[i]).collect();
        tx(ALICE, 1, 1, spend()).sign_multisig(&signers, NET)
    };
    let txs = vec![
        tx(ALICE, 0, 1, spend()).unsigned(),
        tx(
            ALICE,
            0,
            1,
            TxPayload::MultisigConfigure {
                threshold: 2,
                signers,
            },
        )
        .unsigned(),
        tx(ALICE, 1, 1, pay(BOB, 0, 10)).unsigned(),
        approved(&[0, 3]),
        approved(&[1, 2]),
    ];
    let outcome = run(&state(&[funded(&ALICE, 100)]), &txs);
    let reasons: Vec<_> = outcome.receipts.iter().map(|r| r.status.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            ReceiptStatus::Failed(FailureReason::NotMultisigAccount),
            ReceiptStatus::Success,
            ReceiptStatus::Failed(FailureReason::MultisigRequired),
            ReceiptStatus::Failed(FailureReason::BadMultisigAuthorization),
            ReceiptStatus::Success,
        ]
    );
    let fees: Vec<u64> = outcome.receipts.iter().map(|r| r.fee_charged).collect();
    assert_eq!(fees, vec![0, 1, 0, 0, 1]);
}
