//! The result of executing a block, and how it becomes state changes.
//!
//! A [`BlockOutcome`] is fully determined by the block and the state it ran on:
//! receipts in block order, account updates in slot order (first declaration in
//! the block), accumulators as sums. Scheduling information lives apart, in
//! [`ExecutionStats`], and is not part of equality — two outcomes are equal exactly
//! when they would write the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dualchain_core::chain_store::StateChange;
use dualchain_core::hash::Digest;
use dualchain_core::types::{Address, AssetId, ChainId, Receipt, TxEvent};
use dualchain_merkle::{Hash32, KEY_CONTEXT, VALUE_CONTEXT};
use rayon::prelude::*;
use smallvec::SmallVec;

use crate::keys::{
    AccountRecord, FEE_POOL_KEY, account_key, balance_key, burned_key, describe_key,
    describe_value, encode_balance, encode_total,
};
use crate::records::RecordChanges;
use crate::state::Totals;

/// BLAKE3 hashers with the Merkle key / value contexts already derived: cloning one
/// costs a copy, where `dualchain_merkle::hash_key` derives the context key again
/// (one extra compression) for every call. Same results (checked by a test).
static KEY_HASHER: std::sync::LazyLock<blake3::Hasher> =
    std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(KEY_CONTEXT));
static VALUE_HASHER: std::sync::LazyLock<blake3::Hasher> =
    std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(VALUE_CONTEXT));

#[inline]
fn hash_key(key: &[u8]) -> Hash32 {
    let mut hasher = KEY_HASHER.clone();
    hasher.update(key);
    *hasher.finalize().as_bytes()
}

#[inline]
fn hash_value(value: &[u8]) -> Hash32 {
    let mut hasher = VALUE_HASHER.clone();
    hasher.update(value);
    *hasher.finalize().as_bytes()
}

/// What a block changed about one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUpdate {
    pub address: Address,
    /// The new nonce / policy, if they changed.
    pub record: Option<AccountRecord>,
    /// New balances, by asset, of the balances that changed.
    pub balances: SmallVec<[(AssetId, u64); 2]>,
}

/// How a block was scheduled (not part of the result).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExecutionStats {
    /// True if the parallel scheduler ran workers; false for an in-order pass.
    pub ran_parallel: bool,
    /// Independent groups of transactions (connected components of the access graph).
    pub components: usize,
    /// Transactions in the largest group.
    pub largest_component: usize,
    /// Chunks handed to workers.
    pub chunks: usize,
    /// Distinct accounts the block declared.
    pub accounts: usize,
}

/// The receipts and state effects of one executed block.
#[derive(Clone, Debug)]
pub struct BlockOutcome {
    pub chain: ChainId,
    /// Height of the state the block ran on (the block's height minus one).
    pub base_height: u64,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Changed accounts in slot order; accounts the block touched without changing
    /// (e.g. the sender of a bad-nonce transaction) are left out.
    pub account_updates: Vec<AccountUpdate>,
    /// Fees charged by this block.
    pub fees: u128,
    /// Burned by this block, per asset.
    pub burned: BTreeMap<AssetId, u128>,
    /// Fee pool after the block, and the burned supply after it of each asset the
    /// block burned.
    pub totals_after: Totals,
    /// Cross-chain record writes of the block, in key order.
    pub records: RecordChanges,
    /// Events of the block's successful cross-chain operations, in block order.
    pub events: Vec<TxEvent>,
    pub stats: ExecutionStats,
}

impl PartialEq for BlockOutcome {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain
            && self.base_height == other.base_height
            && self.receipts == other.receipts
            && self.account_updates == other.account_updates
            && self.fees == other.fees
            && self.burned == other.burned
            && self.totals_after == other.totals_after
            && self.records == other.records
            && self.events == other.events
    }
}

impl Eq for BlockOutcome {}

impl BlockOutcome {
    /// The state changes to write: per account its record then its balances, in
    /// slot order, then the fee pool, then burned supplies by asset, then the
    /// cross-chain records by key. Deterministic,
    /// so equal outcomes give byte-identical batches.
    pub fn state_changes(&self) -> Vec<StateChange> {
        let mut changes = Vec::with_capacity(self.account_updates.len() * 2 + 2);
        for update in &self.account_updates {
            if let Some(record) = &update.record {
                changes.push((account_key(&update.address).to_vec(), record.encode_value()));
            }
            for &(asset, amount) in &update.balances {
                changes.push((
                    balance_key(&update.address, asset).to_vec(),
                    encode_balance(amount),
                ));
            }
        }
        changes.extend(self.total_changes());
        changes
    }

    /// Accumulators, then cross-chain records (in key order).
    fn total_changes(&self) -> Vec<StateChange> {
        let mut changes = Vec::new();
        if self.fees != 0 {
            changes.push((
                FEE_POOL_KEY.to_vec(),
                encode_total(self.totals_after.fee_pool),
            ));
        }
        for (&asset, &total) in &self.totals_after.burned {
            changes.push((burned_key(asset).to_vec(), encode_total(total)));
        }
        changes.extend(self.records.state_changes());
        changes
    }

    /// The same changes as Merkle leaf updates, hashed in parallel without building
    /// the byte vectors of [`Self::state_changes`] first.
    pub fn leaf_updates(&self) -> Vec<(Hash32, Option<Hash32>)> {
        let mut leaves: Vec<(Hash32, Option<Hash32>)> = self
            .account_updates
            .par_iter()
            .with_min_len(256)
            .fold(Vec::new, |mut leaves, update| {
                if let Some(record) = &update.record {
                    leaves.push((
                        hash_key(&account_key(&update.address)),
                        record.encode_value().as_deref().map(hash_value),
                    ));
                }
                for &(asset, amount) in &update.balances {
                    let value = amount.to_le_bytes();
                    leaves.push((
                        hash_key(&balance_key(&update.address, asset)),
                        (amount != 0).then(|| hash_value(&value)),
                    ));
                }
                leaves
            })
            .reduce(Vec::new, |mut a, mut b| {
                a.append(&mut b);
                a
            });
        for (key, value) in self.total_changes() {
            leaves.push((hash_key(&key), value.as_deref().map(hash_value)));
        }
        leaves
    }

    pub fn receipts_root(&self) -> Digest {
        Receipt::root(&self.receipts)
    }

    pub fn failed_count(&self) -> usize {
        self.receipts.iter().filter(|r| !r.is_success()).count()
    }

    /// A readable description of the first difference from `other` (receipts first,
    /// then state changes, then accumulators), or `None` if they are equal.
    pub fn first_difference(&self, other: &BlockOutcome) -> Option<String> {
        let mut out = String::new();
        if self.receipts.len() != other.receipts.len() {
            let _ = write!(
                out,
                "receipt count: {} vs {}",
                self.receipts.len(),
                other.receipts.len()
            );
            return Some(out);
        }
        if let Some((i, (a, b))) = self
            .receipts
            .iter()
            .zip(&other.receipts)
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            let _ = write!(
                out,
                "receipt {i} (tx {}): {} vs {}",
                a.tx_digest.short(),
                describe_receipt(a),
                describe_receipt(b)
            );
            return Some(out);
        }
        let (mine, theirs) = (self.state_changes(), other.state_changes());
        let as_map = |changes: &[StateChange]| -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
            changes.iter().cloned().collect()
        };
        let (mine_map, theirs_map) = (as_map(&mine), as_map(&theirs));
        let keys: std::collections::BTreeSet<&Vec<u8>> =
            mine_map.keys().chain(theirs_map.keys()).collect();
        for key in keys {
            let (a, b) = (mine_map.get(key), theirs_map.get(key));
            if a != b {
                let show = |v: Option<&Option<Vec<u8>>>| match v {
                    None => "unchanged".to_string(),
                    Some(value) => describe_value(key, value.as_deref()),
                };
                let _ = write!(out, "{}: {} vs {}", describe_key(key), show(a), show(b));
                return Some(out);
            }
        }
        if mine != theirs {
            return Some("state changes are equal as sets but differ in order".into());
        }
        if self != other {
            let _ = write!(
                out,
                "accumulators: fees {} vs {}, burned {:?} vs {:?}",
                self.fees, other.fees, self.burned, other.burned
            );
            return Some(out);
        }
        None
    }
}

fn describe_receipt(receipt: &Receipt) -> String {
    match &receipt.status {
        dualchain_core::types::ReceiptStatus::Success => {
            format!("success, fee {}", receipt.fee_charged)
        }
        dualchain_core::types::ReceiptStatus::Failed(reason) => {
            format!("failed ({reason}), fee {}", receipt.fee_charged)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prederived_hashers_match_the_merkle_crate() {
        for input in [
            &b""[..],
            b"A01234567890123456789012345678901",
            &[7u8; 200][..],
        ] {
            assert_eq!(super::hash_key(input), dualchain_merkle::hash_key(input));
            assert_eq!(
                super::hash_value(input),
                dualchain_merkle::hash_value(input)
            );
        }
    }
}
