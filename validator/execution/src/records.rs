//! The cross-chain records of a chain (locks, stakes, governance, validator sets,
//! consumed attestations) in its sparse Merkle tree, with the same cache /
//! block-overlay / merge shape as the accounts: committed records are cached in the
//! [`StateCache`], a block stages its writes in a [`RecordBlock`], and the block's
//! [`RecordChanges`] go into its outcome and state changes.
//!
//! A record is a size-limited byte string under `R ‖ kind ‖ id` (see
//! [`crate::keys`]); the kinds and their value encodings are defined in
//! `dualchain_core::types` (`crosschain`), the transitions in [`crate::crosschain`].

use std::collections::BTreeMap;

use dualchain_core::chain_store::StateChange;
use dualchain_storage::KvEngine;

use crate::state::{StateCache, StateError};

/// Largest record value accepted (defined with the attestations that carry records).
pub use dualchain_core::types::MAX_RECORD_BYTES;

pub use dualchain_core::types::{RecordKey, RecordKind, TxEvent};

/// Why a record write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {len} bytes is over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("an empty record is not storable: delete the record instead")]
    Empty,
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

/// Read-your-writes view of the records during one block, over the committed state
/// of a [`StateCache`] (which it never writes: the changes go into the block's
/// outcome, and the cache moves when the block is committed).
pub struct RecordBlock<'a, E: KvEngine> {
    state: &'a StateCache<E>,
    staged: BTreeMap<RecordKey, Option<Vec<u8>>>,
    /// Events of the block's successful operations, in the order they ran.
    events: Vec<TxEvent>,
}

impl<'a, E: KvEngine> RecordBlock<'a, E> {
    pub fn new(state: &'a StateCache<E>) -> Self {
        Self {
            state,
            staged: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    pub fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError> {
        match self.staged.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.state.record(key)?.map(|v| v.to_vec())),
        }
    }

    pub fn put(&mut self, key: RecordKey, value: Vec<u8>) -> Result<(), RecordError> {
        check_value(&value)?;
        self.staged.insert(key, Some(value));
        Ok(())
    }

    pub fn delete(&mut self, key: RecordKey) {
        self.staged.insert(key, None);
    }

    /// Stages an operation's writes (`None` deletes): all of them, or none if one is
    /// not storable.
    pub fn write_all(
        &mut self,
        writes: BTreeMap<RecordKey, Option<Vec<u8>>>,
    ) -> Result<(), RecordError> {
        for value in writes.values().flatten() {
            check_value(value)?;
        }
        self.staged.extend(writes);
        Ok(())
    }

    /// Records what a successful operation did.
    pub fn push_event(&mut self, event: TxEvent) {
        self.events.push(event);
    }

    /// The events pushed during the block (none are kept afterwards).
    pub fn take_events(&mut self) -> Vec<TxEvent> {
        std::mem::take(&mut self.events)
    }

    /// The block's changes, dropping writes that restore the committed value. The
    /// overlay is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordChanges, StateError> {
        let mut changes = BTreeMap::new();
        for (key, value) in std::mem::take(&mut self.staged) {
            let committed = self.state.record(&key)?;
            if committed.as_deref() != value.as_deref() {
                changes.insert(key, value);
            }
        }
        Ok(RecordChanges(changes))
    }
}

fn check_value(value: &[u8]) -> Result<(), RecordError> {
    if value.is_empty() {
        return Err(RecordError::Empty);
    }
    if value.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { len: value.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::chain_store::ChainStore;
    use dualchain_core::hash::Digest;
    use dualchain_core::types::ChainId;
    use dualchain_storage::MemoryEngine;
    use std::sync::Arc;

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

        let state = StateCache::new(engine.clone(), 0);
        assert_eq!(
            state.record(&lock).unwrap().as_deref(),
            Some(&b"locked 10"[..])
        );
        let mut block = RecordBlock::new(&state);
        let set = key(RecordKind::ValidatorSet, 2);
        block.put(set, b"epoch 1".to_vec()).unwrap();
        block.delete(lock);
        assert_eq!(block.get(&lock).unwrap(), None);
        assert_eq!(block.put(set, Vec::new()), Err(RecordError::Empty));
        // The committed view is untouched until the block is applied.
        assert!(state.record(&lock).unwrap().is_some());
        let changes = block.finish().unwrap();
        assert_eq!(changes.0.len(), 2);

        let before = store.state_root();
        let after = store.state_root_after(&changes.state_changes());
        assert_ne!(before, after);
        assert_eq!(store.state_root(), before, "the preview must roll back");
    }

    #[test]
    fn rewriting_the_committed_value_is_not_a_change() {
        let engine = Arc::new(MemoryEngine::new());
        let state = StateCache::new(engine, 0);
        let mut block = RecordBlock::new(&state);
        let governance = key(RecordKind::Governance, 3);
        block.put(governance, b"x".to_vec()).unwrap();
        block.delete(governance);
        assert!(block.finish().unwrap().0.is_empty());
    }
}
