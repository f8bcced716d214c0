//! Transaction builders shared by the integration tests.
#![allow(dead_code)]

use dualchain_core::hash::HashDomain;
use dualchain_core::types::{
    Address, AssetId, ChainId, Output, SignedTransaction, Transaction, TxPayload,
};
use dualchain_execution::Verdict;
use dualchain_mempool::{AdmissionTime, Mempool, MempoolConfig, Rejection};

/// A deterministic, well-spread sender address for account number `n`.
pub fn sender(n: u32) -> Address {
    Address(HashDomain::Transaction.hash(&n.to_le_bytes()).0)
}

/// An unsigned transfer with `outputs` outputs (size grows 44 bytes per output).
pub fn transfer_with(
    chain: ChainId,
    from: u32,
    nonce: u64,
    fee: u64,
    outputs: usize,
) -> SignedTransaction {
    Transaction {
        chain,
        sender: sender(from),
        nonce,
        fee,
        payload: TxPayload::Transfer {
            outputs: vec![
                Output {
                    to: Address([7; 32]),
                    asset: AssetId::NATIVE,
                    amount: 1,
                };
                outputs.max(1)
            ],
        },
    }
    .unsigned()
}

pub fn transfer(from: u32, nonce: u64) -> SignedTransaction {
    transfer_with(ChainId::Delta, from, nonce, 1, 1)
}

pub fn pool(config: MempoolConfig) -> Mempool {
    Mempool::new(ChainId::Delta, config).expect("valid config")
}

pub fn admit(
    pool: &Mempool,
    tx: SignedTransaction,
    at: u64,
) -> Result<dualchain_core::hash::Digest, Rejection> {
    pool.admit(tx, Verdict::Valid, AdmissionTime(at))
}

/// (sender, nonce) of each transaction of a batch, in order.
pub fn order(batch: &dualchain_mempool::Batch) -> Vec<(Address, u64)> {
    batch
        .envelopes
        .iter()
        .map(|e| (e.tx.tx().sender, e.tx.tx().nonce))
        .collect()
}
