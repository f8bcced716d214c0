//! Merging an executed block into the state commitment and storage.
//!
//! The outcome becomes (1) the block's state changes — nonces, policies, balances,
//! fee pool, burned supply ([`BlockOutcome::state_changes`]), and (2) one sealed block
//! committed by [`ChainStore::seal_and_commit`]: the changes are applied to the
//! store's live Merkle tree once, its root goes into the header, and block,
//! receipts, state changes and head are one atomic write batch. Only after that
//! batch is durable does the state cache move to the new height, so a failed commit
//! leaves store, tree and cache at the previous block. The node and the tests go
//! through this one path ([`seal_and_commit`]).
//!
//! [`StateCommitment`] is the same merge for callers without a store (benchmarks,
//! simulation): the tree alone, updated with one batch per block.

use dualchain_core::chain_store::{BlockDraft, ChainStore, ChainStoreError};
use dualchain_core::hash::Digest;
use dualchain_core::types::{Block, BlockBody, SignedTransaction};
use dualchain_merkle::SparseMerkleTree;
use dualchain_storage::{KvEngine, WriteBatch};

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

/// Seals the block that carries `txs` and their executed `outcome` on top of the
/// store's head (receipts root and state root included), commits it in one batch
/// together with the caller's `extra` writes, then advances `cache`.
pub fn seal_and_commit<E: KvEngine, C: KvEngine>(
    store: &mut ChainStore<E>,
    cache: &StateCache<C>,
    txs: Vec<SignedTransaction>,
    outcome: &BlockOutcome,
    params: SealParams,
    extra: WriteBatch,
) -> Result<Block, MergeError> {
    check_outcome(store, &txs, outcome)?;
    let body = BlockBody {
        vertices: params.vertices,
        transactions: txs,
    };
    let draft = BlockDraft {
        epoch: params.epoch,
        slot: params.slot,
        timestamp_ms: params.timestamp_ms,
    };
    let block = store.seal_and_commit(
        draft,
        body,
        &outcome.receipts,
        &outcome.state_changes(),
        extra,
    )?;
    cache.apply_block(block.header.height, outcome)?;
    Ok(block)
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
