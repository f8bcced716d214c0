//! The typed storage layer of one chain: one atomic write batch per sealed block.
//!
//! [`ChainStore`] keeps the chain's sparse Merkle tree in memory, in step with the
//! `state` column, and commits each block — header and body, receipts, state changes,
//! optional certificate and the new chain head — as a single [`WriteBatch`]. The head
//! record is the commit point: after a crash, whatever it names is complete, and
//! nothing of a later block is visible.
//!
//! The tree is rebuilt from the `state` column when the store opens (in parallel) and
//! its root is checked against the head's recorded state root, so silent corruption of
//! the state column is detected at start-up rather than at the next block.
//!
//! If a commit fails (the engine refuses the batch, or the block's state root is not
//! the root its changes produce), the in-memory tree is rolled back and nothing is
//! written: a failed commit loses nothing and leaves the store usable.

use dualchain_merkle::{Hash32, SparseMerkleTree, hash_key, hash_value};
use dualchain_storage::meta::{ChainHead, read_head};
use dualchain_storage::{Column, KvEngine, StorageError, WriteBatch, keys};

use crate::encoding::{Canonical, DecodeError};
use crate::hash::Digest;
use crate::types::{Block, BlockCertificate, BlockHeader, ChainId, Receipt};

/// A change to one state key: `Some(value)` to set, `None` to delete.
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

/// Why the chain store refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored {what} does not decode: {source}")]
    Decode {
        what: &'static str,
        source: DecodeError,
    },
    #[error("database belongs to chain tag {found}, not {expected}")]
    WrongChain { expected: ChainId, found: u8 },
    #[error("block {got} does not follow the head {head:?} (expected height {expected})")]
    NotNextHeight {
        head: Option<u64>,
        expected: u64,
        got: u64,
    },
    #[error("block {height} names parent {got} but the head block is {expected}")]
    WrongParent {
        height: u64,
        expected: Digest,
        got: Digest,
    },
    #[error("block {height} declares state root {declared} but its changes produce {computed}")]
    StateRootMismatch {
        height: u64,
        declared: Digest,
        computed: Digest,
    },
    #[error("block {height} carries {receipts} receipts for {txs} transactions")]
    ReceiptCount {
        height: u64,
        receipts: usize,
        txs: usize,
    },
    #[error("block {height}: receipts root in the header does not match the receipts")]
    ReceiptsRoot { height: u64 },
    #[error("block {height}: the body does not match the header")]
    BodyMismatch { height: u64 },
    #[error(
        "the state column's Merkle root {computed} differs from the head's recorded root {recorded}: the state is corrupt"
    )]
    CorruptState { recorded: Digest, computed: Digest },
    #[error("genesis state can only be written into an empty store")]
    AlreadyInitialised,
    #[error("no block at height {0}")]
    NoBlock(u64),
}

/// The storage of one chain over any [`KvEngine`].
pub struct ChainStore<E: KvEngine> {
    engine: E,
    chain: ChainId,
    tree: SparseMerkleTree,
    head: Option<ChainHead>,
}

impl<E: KvEngine> ChainStore<E> {
    /// Opens the chain's store, rebuilding and checking the state tree.
    pub fn open(engine: E, chain: ChainId) -> Result<Self, ChainStoreError> {
        let head = read_head(&engine)?;
        if let Some(h) = &head
            && h.chain != chain.tag()
        {
            return Err(ChainStoreError::WrongChain {
                expected: chain,
                found: h.chain,
            });
        }
        let tree = dualchain_storage::state::state_tree(&engine)?;
        if let Some(h) = &head
            && tree.root() != h.state_root
        {
            return Err(ChainStoreError::CorruptState {
                recorded: Digest(h.state_root),
                computed: Digest(tree.root()),
            });
        }
        Ok(Self {
            engine,
            chain,
            tree,
            head,
        })
    }

    pub fn chain(&self) -> ChainId {
        self.chain
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The last committed block (height 0 is the genesis state), if any.
    pub fn head(&self) -> Option<&ChainHead> {
        self.head.as_ref()
    }

    pub fn state_root(&self) -> Digest {
        Digest(self.tree.root())
    }

    /// The state tree (for proofs).
    pub fn state_tree(&self) -> &SparseMerkleTree {
        &self.tree
    }

    pub fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ChainStoreError> {
        Ok(self.engine.get(Column::State, key)?)
    }

    /// The state root that `changes` would produce, without applying them.
    pub fn preview_state_root(&self, changes: &[StateChange]) -> Digest {
        let mut tree = self.tree.clone();
        Digest(tree.update_batch(leaf_updates(changes)))
    }

    /// The state root that `changes` would produce, computed on the live tree and
    /// rolled back at once: unlike [`Self::preview_state_root`] it never clones the
    /// tree, so sealing a block costs two batch updates rather than a copy of the state.
    pub fn state_root_after(&mut self, changes: &[StateChange]) -> Digest {
        let undo = self.apply_to_tree(changes);
        let root = Digest(self.tree.root());
        self.tree.update_batch(undo);
        root
    }

    /// Writes the genesis state as height 0 of an empty store.
    pub fn init_genesis(
        &mut self,
        genesis_digest: Digest,
        changes: &[StateChange],
    ) -> Result<Digest, ChainStoreError> {
        if self.head.is_some() {
            return Err(ChainStoreError::AlreadyInitialised);
        }
        let undo = self.apply_to_tree(changes);
        let head = ChainHead {
            chain: self.chain.tag(),
            height: 0,
            block_digest: genesis_digest.0,
            state_root: self.tree.root(),
        };
        let mut batch = WriteBatch::with_capacity(changes.len() + 1);
        put_state_changes(&mut batch, changes);
        head.put_into(&mut batch);
        self.write_or_undo(batch, undo, head)?;
        Ok(self.state_root())
    }

    /// Commits an executed block in one atomic batch.
    ///
    /// Checks that the block extends the head, that its body matches its header, that
    /// there is one receipt per transaction matching the receipts root, and that the
    /// header's state root is the root `changes` produce.
    pub fn commit_block(
        &mut self,
        block: &Block,
        receipts: &[Receipt],
        changes: &[StateChange],
        certificate: Option<&BlockCertificate>,
    ) -> Result<Digest, ChainStoreError> {
        self.commit_block_with(block, receipts, changes, certificate, WriteBatch::new())
    }

    /// [`ChainStore::commit_block`], with `extra` writes of the caller in the same
    /// atomic batch (the node keeps its sealer state and consensus journal there, so
    /// a crash can never separate them from the block they describe).
    pub fn commit_block_with(
        &mut self,
        block: &Block,
        receipts: &[Receipt],
        changes: &[StateChange],
        certificate: Option<&BlockCertificate>,
        extra: WriteBatch,
    ) -> Result<Digest, ChainStoreError> {
        let header = &block.header;
        self.check_extends_head(header)?;
        if !block.body_matches_header() {
            return Err(ChainStoreError::BodyMismatch {
                height: header.height,
            });
        }
        if receipts.len() != block.body.transactions.len() {
            return Err(ChainStoreError::ReceiptCount {
                height: header.height,
                receipts: receipts.len(),
                txs: block.body.transactions.len(),
            });
        }
        if Receipt::root(receipts) != header.receipts_root {
            return Err(ChainStoreError::ReceiptsRoot {
                height: header.height,
            });
        }

        let undo = self.apply_to_tree(changes);
        let computed = Digest(self.tree.root());
        if computed != header.state_root {
            self.tree.update_batch(undo);
            return Err(ChainStoreError::StateRootMismatch {
                height: header.height,
                declared: header.state_root,
                computed,
            });
        }

        let height = header.height;
        let mut batch = WriteBatch::with_capacity(receipts.len() + changes.len() + 3);
        batch.put(
            Column::Blocks,
            keys::height_key(height).to_vec(),
            block.to_canonical_bytes(),
        );
        for (index, receipt) in receipts.iter().enumerate() {
            batch.put(
                Column::Receipts,
                keys::receipt_key(height, index as u32).to_vec(),
                receipt.to_canonical_bytes(),
            );
        }
        put_state_changes(&mut batch, changes);
        if let Some(cert) = certificate {
            batch.put(
                Column::Certificates,
                keys::height_key(height).to_vec(),
                cert.to_canonical_bytes(),
            );
        }
        let head = ChainHead {
            chain: self.chain.tag(),
            height,
            block_digest: header.digest().0,
            state_root: computed.0,
        };
        batch.extend(extra);
        head.put_into(&mut batch);
        self.write_or_undo(batch, undo, head)?;
        Ok(computed)
    }

    /// Stores a certificate that arrived after its block was committed.
    pub fn put_certificate(&self, certificate: &BlockCertificate) -> Result<(), ChainStoreError> {
        if self.get_block(certificate.height)?.is_none() {
            return Err(ChainStoreError::NoBlock(certificate.height));
        }
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Certificates,
            keys::height_key(certificate.height).to_vec(),
            certificate.to_canonical_bytes(),
        );
        Ok(self.engine.write(batch)?)
    }

    pub fn get_block(&self, height: u64) -> Result<Option<Block>, ChainStoreError> {
        self.get_decoded(Column::Blocks, &keys::height_key(height), "block")
    }

    pub fn get_certificate(
        &self,
        height: u64,
    ) -> Result<Option<BlockCertificate>, ChainStoreError> {
        self.get_decoded(
            Column::Certificates,
            &keys::height_key(height),
            "certificate",
        )
    }

    pub fn get_receipts(&self, height: u64) -> Result<Vec<Receipt>, ChainStoreError> {
        self.engine
            .scan_prefix(Column::Receipts, &keys::height_key(height))?
            .map(|item| {
                let (_, bytes) = item?;
                Receipt::from_canonical_bytes(&bytes).map_err(|source| ChainStoreError::Decode {
                    what: "receipt",
                    source,
                })
            })
            .collect()
    }

    fn get_decoded<T: Canonical>(
        &self,
        column: Column,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, ChainStoreError> {
        self.engine
            .get(column, key)?
            .map(|bytes| {
                T::from_canonical_bytes(&bytes)
                    .map_err(|source| ChainStoreError::Decode { what, source })
            })
            .transpose()
    }

    fn check_extends_head(&self, header: &BlockHeader) -> Result<(), ChainStoreError> {
        let (expected_height, expected_parent) = match &self.head {
            Some(h) => (h.height + 1, Digest(h.block_digest)),
            None => (1, Digest::ZERO),
        };
        if header.chain != self.chain {
            return Err(ChainStoreError::WrongChain {
                expected: self.chain,
                found: header.chain.tag(),
            });
        }
        if header.height != expected_height {
            return Err(ChainStoreError::NotNextHeight {
                head: self.head.map(|h| h.height),
                expected: expected_height,
                got: header.height,
            });
        }
        if header.parent != expected_parent {
            return Err(ChainStoreError::WrongParent {
                height: header.height,
                expected: expected_parent,
                got: header.parent,
            });
        }
        Ok(())
    }

    /// Applies `changes` to the tree and returns the updates that undo them.
    fn apply_to_tree(&mut self, changes: &[StateChange]) -> Vec<(Hash32, Option<Hash32>)> {
        let updates = leaf_updates(changes);
        let undo = updates
            .iter()
            .map(|(key, _)| (*key, self.tree.get(key)))
            .collect::<Vec<_>>();
        self.tree.update_batch(updates);
        undo
    }

    fn write_or_undo(
        &mut self,
        batch: WriteBatch,
        undo: Vec<(Hash32, Option<Hash32>)>,
        head: ChainHead,
    ) -> Result<(), ChainStoreError> {
        match self.engine.write(batch) {
            Ok(()) => {
                self.head = Some(head);
                Ok(())
            }
            Err(e) => {
                // Every undo entry holds the value from before the batch, so a key
                // changed twice in one block is restored whichever entry wins.
                self.tree.update_batch(undo);
                Err(e.into())
            }
        }
    }
}

fn leaf_updates(changes: &[StateChange]) -> Vec<(Hash32, Option<Hash32>)> {
    changes
        .iter()
        .map(|(key, value)| (hash_key(key), value.as_deref().map(hash_value)))
        .collect()
}

fn put_state_changes(batch: &mut WriteBatch, changes: &[StateChange]) {
    for (key, value) in changes {
        match value {
            Some(v) => batch.put(Column::State, key.clone(), v.clone()),
            None => batch.delete(Column::State, key.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashDomain;
    use crate::types::{BlockBody, ReceiptStatus};
    use dualchain_storage::MemoryEngine;
    use std::sync::Arc;

    fn block_after(
        store: &ChainStore<Arc<MemoryEngine>>,
        receipts: &[Receipt],
        changes: &[StateChange],
    ) -> Block {
        let head = store.head().copied();
        let body = BlockBody::default();
        Block {
            header: BlockHeader {
                chain: ChainId::Delta,
                height: head.map_or(1, |h| h.height + 1),
                epoch: 0,
                slot: 0,
                parent: head.map_or(Digest::ZERO, |h| Digest(h.block_digest)),
                timestamp_ms: 0,
                vertices_root: body.vertices_root(),
                transactions_root: body.transactions_root(),
                receipts_root: Receipt::root(receipts),
                state_root: store.preview_state_root(changes),
                tx_count: 0,
            },
            body,
        }
    }

    fn change(k: &str, v: Option<&str>) -> StateChange {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn blocks_commit_in_order_and_survive_reopen() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta).unwrap();
        store
            .init_genesis(
                HashDomain::Genesis.hash(b"g"),
                &[change("alice", Some("100"))],
            )
            .unwrap();
        for i in 0..5 {
            let changes = vec![
                change("alice", Some(&format!("{}", 100 - i))),
                change(&format!("k{i}"), Some("v")),
                change("k0", if i == 3 { None } else { Some("x") }),
            ];
            let block = block_after(&store, &[], &changes);
            let root = store.commit_block(&block, &[], &changes, None).unwrap();
            assert_eq!(root, block.header.state_root);
        }
        assert_eq!(store.head().unwrap().height, 5);
        let reopened = ChainStore::open(engine, ChainId::Delta).unwrap();
        assert_eq!(reopened.state_root(), store.state_root());
        assert_eq!(reopened.get_state(b"alice").unwrap(), Some(b"96".to_vec()));
        assert!(reopened.get_block(5).unwrap().is_some());
        assert!(ChainStore::open(reopened.engine().clone(), ChainId::Alpha).is_err());
    }

    #[test]
    fn a_refused_write_rolls_back_the_tree_and_writes_nothing() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta).unwrap();
        store
            .init_genesis(Digest::ZERO, &[change("a", Some("1"))])
            .unwrap();
        let root_before = store.state_root();
        let changes = vec![
            change("a", Some("2")),
            change("a", Some("3")),
            change("b", Some("1")),
        ];
        let block = block_after(&store, &[], &changes);
        engine.set_fail_writes(true);
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None),
            Err(ChainStoreError::Storage(_))
        ));
        assert_eq!(store.state_root(), root_before);
        assert_eq!(store.head().unwrap().height, 0);
        engine.set_fail_writes(false);
        store.commit_block(&block, &[], &changes, None).unwrap();
        assert_eq!(store.get_state(b"a").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn wrong_root_parent_height_and_receipts_are_refused() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine, ChainId::Delta).unwrap();
        let changes = vec![change("a", Some("1"))];
        let mut block = block_after(&store, &[], &changes);
        block.header.state_root = Digest([1; 32]);
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None),
            Err(ChainStoreError::StateRootMismatch { .. })
        ));
        assert_eq!(store.state_root(), Digest(dualchain_merkle::EMPTY_ROOT));

        let mut block = block_after(&store, &[], &changes);
        block.header.height = 2;
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None),
            Err(ChainStoreError::NotNextHeight { .. })
        ));
        let mut block = block_after(&store, &[], &changes);
        block.header.parent = Digest([9; 32]);
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None),
            Err(ChainStoreError::WrongParent { .. })
        ));
        let receipt = Receipt {
            tx_digest: Digest::ZERO,
            status: ReceiptStatus::Success,
            fee_charged: 0,
        };
        let block = block_after(&store, &[], &changes);
        assert!(matches!(
            store.commit_block(&block, &[receipt], &changes, None),
            Err(ChainStoreError::ReceiptCount { .. })
        ));
    }

    #[test]
    fn corrupt_state_is_detected_at_open() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Alpha).unwrap();
        store
            .init_genesis(Digest::ZERO, &[change("a", Some("1"))])
            .unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Column::State, b"a".to_vec(), b"tampered".to_vec());
        engine.write(batch).unwrap();
        assert!(matches!(
            ChainStore::open(engine, ChainId::Alpha),
            Err(ChainStoreError::CorruptState { .. })
        ));
    }
}
