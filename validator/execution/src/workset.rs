//! A block's working set: the accounts its transactions declare, interned to dense
//! slot numbers, and the per-account working copies the executors mutate.
//!
//! Every transaction declares what it touches before anything runs: its sender (nonce,
//! fee, debits, policy) and the recipient of each output. [`BlockAccess`] numbers the
//! distinct accounts in order of first declaration (sender before outputs, block
//! order), so slot numbers — and therefore the order of the block's state changes —
//! depend only on the block, never on scheduling. Per transaction the declaration is
//! a range of one flat `Vec<u32>`: no allocation per transaction.

use std::collections::HashMap;
use std::sync::Arc;

use dualchain_core::types::{Address, AssetId, SignedTransaction, TxPayload};
use dualchain_storage::KvEngine;
use foldhash::fast::RandomState;
use smallvec::SmallVec;

use crate::keys::{AccountRecord, MultisigPolicy};
use crate::state::{StateCache, StateError};

/// The slot every cross-chain transaction declares besides its accounts: it stands
/// for the chain's records, so the scheduler puts all cross-chain transactions of a
/// block into one group that runs in block order. Never read or written as an
/// account by the rules (an account with these bytes as its address would merely
/// join that group).
pub const RECORDS_SLOT: Address = Address([0xFF; 32]);

/// The declared access sets of a block.
#[derive(Debug, Default)]
pub struct BlockAccess {
    /// `slots[offsets[i]..offsets[i + 1]]` is transaction `i`'s access set: its
    /// sender's slot, then one slot per output in output order; for a cross-chain
    /// operation, the sender, [`RECORDS_SLOT`], then the account it may credit.
    offsets: Vec<u32>,
    slots: Vec<u32>,
    /// The account of each slot.
    addresses: Vec<Address>,
}

impl BlockAccess {
    /// Interns the accounts `txs` declare. Hashing uses a per-process random seed
    /// (recipients are attacker-chosen bytes); slot numbers do not depend on it.
    pub fn build(txs: &[SignedTransaction]) -> Self {
        let mut index: HashMap<Address, u32, RandomState> =
            HashMap::with_capacity_and_hasher(txs.len() * 2, RandomState::default());
        let mut addresses = Vec::with_capacity(txs.len() * 2);
        let mut offsets = Vec::with_capacity(txs.len() + 1);
        let mut slots = Vec::with_capacity(txs.len() * 2);
        let mut intern = |address: &Address, slots: &mut Vec<u32>| {
            let next = addresses.len() as u32;
            let slot = *index.entry(*address).or_insert_with(|| {
                addresses.push(*address);
                next
            });
            slots.push(slot);
        };
        offsets.push(0);
        for stx in txs {
            let tx = stx.tx();
            intern(&tx.sender, &mut slots);
            for output in tx.payload.outputs() {
                intern(&output.to, &mut slots);
            }
            if let TxPayload::CrossChain(op) = &tx.payload {
                intern(&RECORDS_SLOT, &mut slots);
                if let Some(owner) = op.credited_account() {
                    intern(&owner, &mut slots);
                }
            }
            offsets.push(slots.len() as u32);
        }
        Self {
            offsets,
            slots,
            addresses,
        }
    }

    /// Transaction `i`'s access set (sender first).
    #[inline]
    pub fn of(&self, i: usize) -> &[u32] {
        &self.slots[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Number of distinct accounts declared.
    pub fn slot_count(&self) -> usize {
        self.addresses.len()
    }

    pub fn address(&self, slot: u32) -> &Address {
        &self.addresses[slot as usize]
    }

    pub fn tx_count(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// One balance of a working account: the committed value and the current one.
#[derive(Clone, Copy, Debug)]
struct BalanceEntry {
    asset: AssetId,
    base: u64,
    current: u64,
}

/// The working copy of one account during a block. Loaded from the cache on first
/// use (account record and each balance separately), so a transaction that fails at
/// its nonce check never reads the balances it would have moved.
#[derive(Debug)]
pub struct Slot {
    pub address: Address,
    loaded: bool,
    base_nonce: u64,
    pub nonce: u64,
    base_native: u64,
    native: u64,
    pub policy: Option<Arc<MultisigPolicy>>,
    policy_changed: bool,
    balances: SmallVec<[BalanceEntry; 2]>,
}

impl Slot {
    pub fn new(address: Address) -> Self {
        Self {
            address,
            loaded: false,
            base_nonce: 0,
            nonce: 0,
            base_native: 0,
            native: 0,
            policy: None,
            policy_changed: false,
            balances: SmallVec::new(),
        }
    }

    /// Loads nonce and policy from the cache on first use.
    #[inline]
    pub fn ensure_loaded<E: KvEngine>(&mut self, cache: &StateCache<E>) -> Result<(), StateError> {
        if !self.loaded {
            let record = cache.account(&self.address)?;
            self.base_nonce = record.nonce;
            self.nonce = record.nonce;
            self.base_native = record.native;
            self.native = record.native;
            self.policy = record.policy;
            self.loaded = true;
        }
        Ok(())
    }

    /// The working balance of `asset`, loaded from the cache on first use.
    #[inline]
    pub fn balance_mut<E: KvEngine>(
        &mut self,
        asset: AssetId,
        cache: &StateCache<E>,
    ) -> Result<&mut u64, StateError> {
        if asset == AssetId::NATIVE {
            self.ensure_loaded(cache)?;
            return Ok(&mut self.native);
        }
        let position = match self.balances.iter().position(|b| b.asset == asset) {
            Some(p) => p,
            None => {
                let base = cache.balance(&self.address, asset)?;
                self.balances.push(BalanceEntry {
                    asset,
                    base,
                    current: base,
                });
                self.balances.len() - 1
            }
        };
        Ok(&mut self.balances[position].current)
    }

    /// Replaces the policy (multisig configuration).
    pub fn set_policy(&mut self, policy: MultisigPolicy) {
        self.policy = Some(Arc::new(policy));
        self.policy_changed = true;
    }

    /// The account record if the block changed it.
    pub fn changed_record(&self) -> Option<AccountRecord> {
        let changed =
            self.nonce != self.base_nonce || self.native != self.base_native || self.policy_changed;
        (self.loaded && changed).then(|| AccountRecord {
            nonce: self.nonce,
            native: self.native,
            policy: self.policy.clone(),
        })
    }

    /// The non-native balances the block changed, by asset (the native balance is
    /// part of [`Self::changed_record`]).
    pub fn changed_balances(&self) -> SmallVec<[(AssetId, u64); 2]> {
        let mut changed: SmallVec<[(AssetId, u64); 2]> = self
            .balances
            .iter()
            .filter(|b| b.current != b.base)
            .map(|b| (b.asset, b.current))
            .collect();
        changed.sort_unstable_by_key(|(asset, _)| *asset);
        changed
    }
}

/// Mutable access to the slots of a block, by slot number. Implemented by the whole
/// working set (sequential) and by one scheduled chunk of it (parallel).
pub trait Slots {
    fn slot(&mut self, slot: u32) -> &mut Slot;
}

/// All slots in slot-number order.
pub struct AllSlots<'a>(pub &'a mut [Slot]);

impl Slots for AllSlots<'_> {
    #[inline]
    fn slot(&mut self, slot: u32) -> &mut Slot {
        &mut self.0[slot as usize]
    }
}

/// The contiguous slots of one parallel chunk: slot `s` lives at
/// `position[s] - first`. The scheduler guarantees every transaction of the chunk
/// only declares slots of the chunk.
pub struct ChunkSlots<'a> {
    pub slots: &'a mut [Slot],
    pub position: &'a [u32],
    pub first: u32,
}

impl Slots for ChunkSlots<'_> {
    #[inline]
    fn slot(&mut self, slot: u32) -> &mut Slot {
        &mut self.slots[(self.position[slot as usize] - self.first) as usize]
    }
}
