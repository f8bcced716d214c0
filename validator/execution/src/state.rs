//! The thread-safe state cache of Delta: accounts and balances at one height.
//!
//! [`StateCache`] sits over any [`KvEngine`] and answers reads cache-first: a miss
//! reads the `state` column once and remembers the answer (absent included), so a
//! block's workers never touch the engine twice for the same key. The maps are
//! [`DashMap`]s — sharded locks held only for one lookup — so any number of rayon
//! workers can read concurrently while executing disjoint transactions.
//!
//! Invariant: the cache is the committed state *at [`StateCache::height`]*. Executing
//! a block never writes to it (the executor keeps the block's changes in its own
//! working set); only [`StateCache::apply_block`], called after the block is durably
//! committed, moves it to the next height. A block that fails to commit therefore
//! leaves the cache untouched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dualchain_core::chain_store::StateChange;
use dualchain_core::encoding::DecodeError;
use dualchain_core::types::{Address, AssetId, Genesis, RecordKey};
use dualchain_storage::{Column, KvEngine, StorageError};
use foldhash::fast::RandomState;

use crate::keys::{
    AccountRecord, FEE_POOL_KEY, account_key, balance_key, burned_key, decode_balance,
    decode_total, encode_balance,
};
use crate::outcome::BlockOutcome;

/// Why state could not be read or advanced.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored {what} does not decode: {source}")]
    Decode {
        what: &'static str,
        source: DecodeError,
    },
    #[error(
        "the state cache is at height {cache}, the block executed at height {block} cannot be applied"
    )]
    WrongHeight { cache: u64, block: u64 },
    /// A record the chain always holds is missing (its genesis was not written).
    #[error("corrupt state: {0}")]
    Corrupt(String),
}

/// Fee pool and burned supply: the chain-wide accumulators.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub fee_pool: u128,
    pub burned: BTreeMap<AssetId, u128>,
}

/// Cache-first, lazily loaded view of Delta's state at one height.
pub struct StateCache<E: KvEngine> {
    engine: E,
    height: AtomicU64,
    accounts: DashMap<Address, AccountRecord, RandomState>,
    balances: DashMap<(Address, AssetId), u64, RandomState>,
    fee_pool: DashMap<(), u128, RandomState>,
    burned: DashMap<AssetId, u128, RandomState>,
    /// Cross-chain records (absent ones included), see [`crate::records`].
    records: DashMap<RecordKey, Option<Arc<[u8]>>, RandomState>,
}

impl<E: KvEngine> StateCache<E> {
    /// A cache over `engine`, whose committed state is at `height`.
    pub fn new(engine: E, height: u64) -> Self {
        Self {
            engine,
            height: AtomicU64::new(height),
            accounts: DashMap::with_hasher(RandomState::default()),
            balances: DashMap::with_hasher(RandomState::default()),
            fee_pool: DashMap::with_hasher(RandomState::default()),
            burned: DashMap::with_hasher(RandomState::default()),
            records: DashMap::with_hasher(RandomState::default()),
        }
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The height whose committed state this cache holds.
    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Acquire)
    }

    /// Entries currently cached (accounts + balances), for metrics.
    pub fn cached_entries(&self) -> usize {
        self.accounts.len() + self.balances.len()
    }

    /// The account's nonce and policy (the default record if it never existed).
    pub fn account(&self, address: &Address) -> Result<AccountRecord, StateError> {
        if let Some(hit) = self.accounts.get(address) {
            return Ok(hit.clone());
        }
        let record = match self.engine.get(Column::State, &account_key(address))? {
            Some(bytes) => {
                AccountRecord::decode_value(&bytes).map_err(|source| StateError::Decode {
                    what: "account record",
                    source,
                })?
            }
            None => AccountRecord::default(),
        };
        Ok(self
            .accounts
            .entry(*address)
            .or_insert(record)
            .value()
            .clone())
    }

    /// The account's balance of `asset` (zero if absent). The native balance is
    /// part of the account record.
    pub fn balance(&self, address: &Address, asset: AssetId) -> Result<u64, StateError> {
        if asset == AssetId::NATIVE {
            return Ok(self.account(address)?.native);
        }
        if let Some(hit) = self.balances.get(&(*address, asset)) {
            return Ok(*hit);
        }
        let amount = match self
            .engine
            .get(Column::State, &balance_key(address, asset))?
        {
            Some(bytes) => decode_balance(&bytes).map_err(|source| StateError::Decode {
                what: "balance",
                source,
            })?,
            None => 0,
        };
        Ok(*self
            .balances
            .entry((*address, asset))
            .or_insert(amount)
            .value())
    }

    /// The cross-chain record under `key` at the cache's height.
    pub fn record(&self, key: &RecordKey) -> Result<Option<Arc<[u8]>>, StateError> {
        if let Some(hit) = self.records.get(key) {
            return Ok(hit.clone());
        }
        let value: Option<Arc<[u8]>> = self
            .engine
            .get(Column::State, &key.state_key())?
            .map(Arc::from);
        Ok(self.records.entry(*key).or_insert(value).value().clone())
    }

    /// Every fee ever charged.
    pub fn fee_pool(&self) -> Result<u128, StateError> {
        if let Some(hit) = self.fee_pool.get(&()) {
            return Ok(*hit);
        }
        let total = self.read_total(FEE_POOL_KEY)?;
        Ok(*self.fee_pool.entry(()).or_insert(total).value())
    }

    /// Everything ever burned of `asset`.
    pub fn burned(&self, asset: AssetId) -> Result<u128, StateError> {
        if let Some(hit) = self.burned.get(&asset) {
            return Ok(*hit);
        }
        let total = self.read_total(&burned_key(asset))?;
        Ok(*self.burned.entry(asset).or_insert(total).value())
    }

    fn read_total(&self, key: &[u8]) -> Result<u128, StateError> {
        match self.engine.get(Column::State, key)? {
            Some(bytes) => decode_total(&bytes).map_err(|source| StateError::Decode {
                what: "accumulator",
                source,
            }),
            None => Ok(0),
        }
    }

    /// Moves the cache to the block's height after the block was committed: every
    /// account, balance and accumulator the block changed takes its new value.
    pub fn apply_block(&self, height: u64, outcome: &BlockOutcome) -> Result<(), StateError> {
        let current = self.height();
        if height != current + 1 {
            return Err(StateError::WrongHeight {
                cache: current,
                block: height,
            });
        }
        for update in &outcome.account_updates {
            if let Some(record) = &update.record {
                self.accounts.insert(update.address, record.clone());
            }
            for &(asset, amount) in &update.balances {
                self.balances.insert((update.address, asset), amount);
            }
        }
        self.fee_pool.insert((), outcome.totals_after.fee_pool);
        for (&asset, &total) in &outcome.totals_after.burned {
            self.burned.insert(asset, total);
        }
        for (key, value) in &outcome.records.0 {
            self.records
                .insert(*key, value.as_ref().map(|v| Arc::from(v.as_slice())));
        }
        self.height.store(height, Ordering::Release);
        Ok(())
    }

    /// Drops every cached entry (the next reads go to the engine again).
    pub fn clear(&self) {
        self.accounts.clear();
        self.balances.clear();
        self.fee_pool.clear();
        self.burned.clear();
        self.records.clear();
    }

    /// Pre-loads `records` and (non-native) `balances` as the state at the cache's
    /// height, for callers that just wrote that state (genesis) and want a warm
    /// cache. They must be exactly what the engine holds.
    pub fn warm(
        &self,
        records: impl IntoIterator<Item = (Address, AccountRecord)>,
        balances: impl IntoIterator<Item = ((Address, AssetId), u64)>,
    ) {
        for (address, record) in records {
            self.accounts.insert(address, record);
        }
        for (key, amount) in balances {
            self.balances.insert(key, amount);
        }
    }
}

impl<E: KvEngine> StateCache<Arc<E>> {
    /// A second cache over the same engine at the same height (cold).
    pub fn fresh_view(&self) -> Self {
        Self::new(self.engine.clone(), self.height())
    }
}

/// The state changes that write Delta's genesis balances (height 0).
pub fn genesis_state_changes(genesis: &Genesis) -> Vec<StateChange> {
    let mut changes = Vec::new();
    for account in &genesis.accounts {
        let record = AccountRecord {
            native: account.balances.get(&AssetId::NATIVE).copied().unwrap_or(0),
            ..AccountRecord::default()
        };
        if let Some(value) = record.encode_value() {
            changes.push((account_key(&account.address).to_vec(), Some(value)));
        }
        for (&asset, &amount) in &account.balances {
            if asset == AssetId::NATIVE {
                continue;
            }
            if let Some(value) = encode_balance(amount) {
                changes.push((balance_key(&account.address, asset).to_vec(), Some(value)));
            }
        }
    }
    changes
}
