//! Alpha's record state: locks, governance and validator-set records in the chain's
//! sparse Merkle tree, behind the same cache / block-overlay / merge shape as
//! Delta's accounts.
//!
//! A record is a size-limited byte string under `R ‖ kind ‖ id` (see
//! [`crate::keys`]); the kinds and their value encodings are defined in
//! `dualchain_core::types` (`crosschain`), the transitions in [`crate::crosschain`].
//! What is here is the state side they run on: [`RecordState`] (thread-safe, lazily loaded, cache-first at a
//! height, like [`crate::state::StateCache`]), [`RecordBlock`] (a block's
//! read-your-writes overlay that never touches the cache), and the merge into state
//! changes for [`dualchain_core::chain_store::ChainStore::commit_block`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dualchain_core::chain_store::StateChange;
use dualchain_storage::{Column, KvEngine};
use foldhash::fast::RandomState;

use crate::state::StateError;

/// Largest record value accepted (defined with the attestations that carry records).
pub use dualchain_core::types::MAX_RECORD_BYTES;

pub use dualchain_core::types::{RecordKey, RecordKind};

/// Why a record write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {len} bytes is over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("an empty record is not storable: delete the record instead")]
    Empty,
}

/// Alpha's records at one height, cache-first over the engine.
pub struct RecordState<E: KvEngine> {
    engine: E,
    height: AtomicU64,
    cache: DashMap<RecordKey, Option<Arc<[u8]>>, RandomState>,
}

impl<E: KvEngine> RecordState<E> {
    pub fn new(engine: E, height: u64) -> Self {
        Self {
            engine,
            height: AtomicU64::new(height),
            cache: DashMap::with_hasher(RandomState::default()),
        }
    }

    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Acquire)
    }

    /// The record at the cache's height.
    pub fn get(&self, key: &RecordKey) -> Result<Option<Arc<[u8]>>, StateError> {
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit.clone());
        }
        let value: Option<Arc<[u8]>> = self
            .engine
            .get(Column::State, &key.state_key())?
            .map(Arc::from);
        Ok(self.cache.entry(*key).or_insert(value).value().clone())
    }

    /// A block's overlay on this state.
    pub fn begin_block(&self) -> RecordBlock<'_, E> {
        RecordBlock {
            state: self,
            staged: BTreeMap::new(),
        }
    }

    /// Moves the cache to `height` after the block's changes were committed.
    pub fn apply_block(&self, height: u64, changes: &RecordChanges) -> Result<(), StateError> {
        let current = self.height();
        if height != current + 1 {
            return Err(StateError::WrongHeight {
                cache: current,
                block: height,
            });
        }
        for (key, value) in &changes.0 {
            self.cache
                .insert(*key, value.as_ref().map(|v| Arc::from(v.as_slice())));
        }
        self.height.store(height, Ordering::Release);
        Ok(())
    }
}

/// A block's writes to records, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordChanges(pub BTreeMap<RecordKey, Option<Vec<u8>>>);

impl RecordChanges {
    /// State changes in key order, for the chain store's batch.
    pub fn state_changes(&self) -> Vec<StateChange> {
        self.0
            .iter()
            .map(|(key, value)| (key.state_key().to_vec(), value.clone()))
            .collect()
    }
}

/// Read-your-writes view of the records during one block.
pub struct RecordBlock<'a, E: KvEngine> {
    state: &'a RecordState<E>,
    staged: BTreeMap<RecordKey, Option<Vec<u8>>>,
}

impl<E: KvEngine> RecordBlock<'_, E> {
    pub fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError> {
        match self.staged.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.state.get(key)?.map(|v| v.to_vec())),
        }
    }

    pub fn put(&mut self, key: RecordKey, value: Vec<u8>) -> Result<(), RecordError> {
        if value.is_empty() {
            return Err(RecordError::Empty);
        }
        if value.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge { len: value.len() });
        }
        self.staged.insert(key, Some(value));
        Ok(())
    }

    pub fn delete(&mut self, key: RecordKey) {
        self.staged.insert(key, None);
    }

    /// The block's changes, dropping writes that restore the committed value.
    pub fn finish(self) -> Result<RecordChanges, StateError> {
        let mut changes = BTreeMap::new();
        for (key, value) in self.staged {
            let committed = self.state.get(&key)?;
            if committed.as_deref() != value.as_deref() {
                changes.insert(key, value);
            }
        }
        Ok(RecordChanges(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::chain_store::ChainStore;
    use dualchain_core::hash::Digest;
    use dualchain_core::types::ChainId;
    use dualchain_storage::MemoryEngine;

    fn key(kind: RecordKind, byte: u8) -> RecordKey {
        RecordKey {
            kind,
            id: [byte; 32],
        }
    }

    #[test]
    fn records_are_staged_per_block_and_merge_into_the_store() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Alpha).unwrap();
        let lock = key(RecordKind::Lock, 1);
        let genesis = RecordChanges(BTreeMap::from([(lock, Some(b"locked 10".to_vec()))]));
        store
            .init_genesis(Digest::ZERO, &genesis.state_changes())
            .unwrap();

        let state = RecordState::new(engine.clone(), 0);
        assert_eq!(
            state.get(&lock).unwrap().as_deref(),
            Some(&b"locked 10"[..])
        );
        let mut block = state.begin_block();
        let set = key(RecordKind::ValidatorSet, 2);
        block.put(set, b"epoch 1".to_vec()).unwrap();
        block.delete(lock);
        assert_eq!(block.get(&lock).unwrap(), None);
        assert_eq!(block.put(set, Vec::new()), Err(RecordError::Empty));
        // The committed view is untouched until the block is applied.
        assert!(state.get(&lock).unwrap().is_some());
        let changes = block.finish().unwrap();
        assert_eq!(changes.0.len(), 2);

        let before = store.state_root();
        let after = store.state_root_after(&changes.state_changes());
        assert_ne!(before, after);
        assert_eq!(store.state_root(), before, "the preview must roll back");
        state.apply_block(1, &changes).unwrap();
        assert_eq!(state.get(&lock).unwrap(), None);
        assert!(state.apply_block(1, &changes).is_err());
    }

    #[test]
    fn rewriting_the_committed_value_is_not_a_change() {
        let engine = Arc::new(MemoryEngine::new());
        let state = RecordState::new(engine, 0);
        let mut block = state.begin_block();
        let governance = key(RecordKind::Governance, 3);
        block.put(governance, b"x".to_vec()).unwrap();
        block.delete(governance);
        assert!(block.finish().unwrap().0.is_empty());
    }
}
