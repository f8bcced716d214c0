//! Merging an executed block into the state commitment and storage.
//!
//! The outcome becomes (1) the block's state changes — nonces, policies, balances,
//! fee pool, burned supply ([`BlockOutcome::state_changes`]), (2) the new state root,
//! computed on the chain store's live Merkle tree and rolled back
//! ([`ChainStore::state_root_after`], no copy of the tree), and (3) one atomic write
//! batch holding block, receipts, state changes and head, written by
//! [`ChainStore::commit_block`]. Only after that batch is durable does the state
//! cache move to the new height, so a failed commit leaves store, tree and cache at
//! the previous block.
//!
//! [`StateCommitment`] is the same merge for callers without a store (benchmarks,
//! simulation): the tree alone, updated with one batch per block.

use dualchain_core::chain_store::{ChainStore, ChainStoreError};
use dualchain_core::hash::Digest;
use dualchain_core::types::{Block, BlockBody, BlockCertificate, BlockHeader, SignedTransaction};
use dualchain_merkle::SparseMerkleTree;
use dualchain_storage::KvEngine;

use crate::outcome::BlockOutcome;
use crate::state::{StateCache, StateError};

/// Why an executed block could not be sealed or committed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] ChainStoreError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the outcome was executed on height {outcome} but the store's head is {head:?}")]
    StaleOutcome { outcome: u64, head: Option<u64> },
    #[error(
        "the outcome's receipts do not belong to the block's transactions (first mismatch at {index})"
    )]
    ReceiptsDoNotMatch { index: usize },
    #[error("the outcome is for {outcome}, the store is {store}")]
    WrongChain {
        outcome: dualchain_core::types::ChainId,
        store: dualchain_core::types::ChainId,
    },
}

/// Header fields the executor does not decide.
#[derive(Clone, Debug, Default)]
pub struct SealParams {
    pub epoch: u64,
    pub slot: u64,
    pub timestamp_ms: u64,
    pub vertices: Vec<Digest>,
}

/// Builds the block that carries `txs` and their executed `outcome` on top of the
/// store's head: receipts root and the new state root included.
pub fn seal_block<E: KvEngine>(
    store: &mut ChainStore<E>,
    txs: Vec<SignedTransaction>,
    outcome: &BlockOutcome,
    params: SealParams,
) -> Result<Block, MergeError> {
    check_outcome(store, &txs, outcome)?;
    let head = store.head().copied();
    let body = BlockBody {
        vertices: params.vertices,
        transactions: txs,
    };
    let state_root = store.state_root_after(&outcome.state_changes());
    let header = BlockHeader {
        chain: store.chain(),
        height: outcome.base_height + 1,
        epoch: params.epoch,
        slot: params.slot,
        parent: head.map_or(Digest::ZERO, |h| Digest(h.block_digest)),
        timestamp_ms: params.timestamp_ms,
        vertices_root: body.vertices_root(),
        transactions_root: body.transactions_root(),
        receipts_root: outcome.receipts_root(),
        state_root,
        tx_count: body.transactions.len() as u32,
    };
    Ok(Block { header, body })
}

/// Commits `block` with its `outcome` in one batch, then advances `cache`.
/// Returns the new state root.
pub fn commit_block<E: KvEngine, C: KvEngine>(
    store: &mut ChainStore<E>,
    cache: &StateCache<C>,
    block: &Block,
    outcome: &BlockOutcome,
    certificate: Option<&BlockCertificate>,
) -> Result<Digest, MergeError> {
    check_outcome(store, &block.body.transactions, outcome)?;
    let root = store.commit_block(
        block,
        &outcome.receipts,
        &outcome.state_changes(),
        certificate,
    )?;
    cache.apply_block(block.header.height, outcome)?;
    Ok(root)
}

fn check_outcome<E: KvEngine>(
    store: &ChainStore<E>,
    txs: &[SignedTransaction],
    outcome: &BlockOutcome,
) -> Result<(), MergeError> {
    if outcome.chain != store.chain() {
        return Err(MergeError::WrongChain {
            outcome: outcome.chain,
            store: store.chain(),
        });
    }
    let head = store.head().map(|h| h.height);
    if head != Some(outcome.base_height) {
        return Err(MergeError::StaleOutcome {
            outcome: outcome.base_height,
            head,
        });
    }
    if let Some(index) = (0..txs.len().max(outcome.receipts.len())).find(|&i| {
        txs.get(i).map(SignedTransaction::digest) != outcome.receipts.get(i).map(|r| r.tx_digest)
    }) {
        return Err(MergeError::ReceiptsDoNotMatch { index });
    }
    Ok(())
}

/// A state commitment without a store: the Merkle tree of the `state` column.
#[derive(Clone, Default)]
pub struct StateCommitment {
    tree: SparseMerkleTree,
}

impl StateCommitment {
    pub fn new(tree: SparseMerkleTree) -> Self {
        Self { tree }
    }

    pub fn root(&self) -> Digest {
        Digest(self.tree.root())
    }

    pub fn tree(&self) -> &SparseMerkleTree {
        &self.tree
    }

    /// Applies the block's changes (hashed in parallel, one batch update) and
    /// returns the new root — the same root the chain store computes.
    pub fn apply(&mut self, outcome: &BlockOutcome) -> Digest {
        Digest(self.tree.update_batch(outcome.leaf_updates()))
    }
}
