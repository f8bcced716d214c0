//! The block executor thread of one chain: committed sub-DAGs in, committed blocks
//! out.
//!
//! It owns the sealer, the chain store and the state cache, so sealing, execution
//! and the block write happen in one place and in order: seal (pure, from the
//! committed sequence) → execute (parallel executor) → seal the executed header
//! (state and receipts roots) → one atomic write holding the block, its receipts, its
//! state changes, the sealer's state and the pruning of the commit journal → vote.
//! It runs on its own OS thread because execution is CPU-bound and must not stall
//! the consensus driver's event loop.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use anyhow::Context;
use dualchain_api::FinalizedBlock;
use dualchain_consensus::consensus::CommittedSubDag;
use dualchain_consensus::{BlockSealer, SealedBlock};
use dualchain_core::chain_store::ChainStore;
use dualchain_core::crypto::ValidatorSignature;
use dualchain_core::types::{BlockCertificate, BlockHeader};
use dualchain_execution::StateCache;
use dualchain_execution::merge::{SealParams, seal_block};
use dualchain_proto::v1;
use dualchain_storage::{Column, KvEngine, WriteBatch};
use dualchain_store::RocksEngine;
use dualchain_store::snapshot::{
    SnapshotPolicy, export_snapshot, maybe_snapshot, snapshot_file_name,
};
use tokio::sync::mpsc::UnboundedSender;

use super::journal::{SEALER_STATE_KEY, prune_ops};
use super::shared::{ChainShared, Head, unix_ms};

/// Work for the executor thread.
pub enum ExecCommand {
    /// The next committed sub-DAG, in sequence order.
    Commit(CommittedSubDag),
    /// Export a snapshot between two blocks and answer on the channel.
    Snapshot(std::sync::mpsc::Sender<Result<v1::SnapshotResult, String>>),
}

/// What the executor reports to the driver.
pub enum ExecEvent {
    /// A block was committed; our vote over its executed header goes to the peers.
    Executed {
        header: BlockHeader,
        vote: ValidatorSignature,
    },
}

pub struct BlockExecutor {
    pub shared: Arc<ChainShared>,
    pub db: Arc<RocksEngine>,
    pub store: ChainStore<Arc<RocksEngine>>,
    pub cache: StateCache<Arc<RocksEngine>>,
    pub sealer: BlockSealer,
    pub snapshots: SnapshotPolicy,
    pub events: UnboundedSender<ExecEvent>,
}

impl BlockExecutor {
    /// Replays `journal` (commits decided before a restart whose blocks were not yet
    /// written), then serves `commands` until the driver hangs up.
    pub fn run(
        mut self,
        journal: Vec<CommittedSubDag>,
        commands: Receiver<ExecCommand>,
    ) -> anyhow::Result<()> {
        if !journal.is_empty() {
            tracing::info!(
                chain = %self.shared.chain,
                entries = journal.len(),
                "replaying the commit journal"
            );
        }
        for subdag in journal {
            self.on_commit(subdag)?;
        }
        for command in commands {
            match command {
                ExecCommand::Commit(subdag) => {
                    self.shared.metrics.exec_queue_depth.dec();
                    let started = Instant::now();
                    self.on_commit(subdag)?;
                    self.shared
                        .metrics
                        .driver_busy_seconds
                        .with_label_values(&["executor"])
                        .inc_by(started.elapsed().as_micros() as u64);
                }
                ExecCommand::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot().map_err(|e| format!("{e:#}")));
                }
            }
        }
        Ok(())
    }

    fn on_commit(&mut self, subdag: CommittedSubDag) -> anyhow::Result<()> {
        if subdag.sequence < self.sealer.next_sequence() {
            // Already inside a committed block or the persisted open slot (replay).
            return Ok(());
        }
        let blocks = self
            .sealer
            .on_commit(&subdag)
            .context("sealing the committed sequence")?;
        let count = blocks.len();
        let head_height = self.store.head().map_or(0, |h| h.height);
        for (i, sealed) in blocks.into_iter().enumerate() {
            if sealed.height() <= head_height {
                continue;
            }
            self.execute_and_commit(sealed, i + 1 == count)?;
        }
        Ok(())
    }

    fn execute_and_commit(
        &mut self,
        sealed: SealedBlock,
        persist_sealer: bool,
    ) -> anyhow::Result<()> {
        let chain = self.shared.chain;
        let metrics = &self.shared.metrics;
        let header = sealed.block.header;
        let txs = sealed.block.body.transactions;
        if header.height != self.cache.height() + 1 {
            anyhow::bail!(
                "sealed block {} does not follow the executed state at height {}",
                header.height,
                self.cache.height()
            );
        }

        let started = Instant::now();
        let outcome = self
            .shared
            .executor
            .execute_block(&self.cache, &txs)
            .with_context(|| format!("executing block {}", header.height))?;
        metrics
            .execution_seconds
            .observe(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let block = seal_block(
            &mut self.store,
            txs,
            &outcome,
            SealParams {
                epoch: header.epoch,
                slot: header.slot,
                timestamp_ms: header.timestamp_ms,
                vertices: sealed.block.body.vertices,
            },
        )
        .with_context(|| format!("sealing executed block {}", header.height))?;
        metrics
            .state_root_seconds
            .observe(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut extra = WriteBatch::new();
        if persist_sealer {
            extra.put(
                Column::Meta,
                SEALER_STATE_KEY.to_vec(),
                self.sealer.to_state_bytes(),
            );
            prune_ops(self.db.as_ref(), self.sealer.next_sequence(), &mut extra)?;
        }
        let changes = outcome.state_changes();
        let root = self
            .store
            .commit_block_with(&block, &outcome.receipts, &changes, None, extra)
            .with_context(|| format!("writing block {}", block.header.height))?;
        self.cache
            .apply_block(block.header.height, &outcome)
            .context("advancing the state cache")?;
        metrics
            .block_commit_seconds
            .observe(started.elapsed().as_secs_f64());

        self.shared
            .mempool
            .remove_committed(&block.body.transactions);
        let failed = outcome.failed_count() as u64;
        metrics.blocks_sealed.inc();
        metrics
            .transactions_committed
            .inc_by(outcome.receipts.len() as u64 - failed);
        metrics.transactions_failed.inc_by(failed);
        metrics.height.set(block.header.height as i64);
        metrics.finalized_height.set(block.header.height as i64);

        let now = unix_ms();
        let digest = block.header.digest();
        self.shared.set_head(Head {
            height: block.header.height,
            digest,
            state_root: root,
            block_timestamp_ms: block.header.timestamp_ms,
            committed_at_unix_ms: now,
        });
        let vote = BlockCertificate::vote(&self.shared.key, &block.header);
        let header = block.header.clone();
        // No subscriber is not an error: the event is for whoever listens.
        let _ = self.shared.finality.send(FinalizedBlock {
            block: Arc::new(block),
            certificate: None,
            finalized_at_unix_ms: now,
            confirmation_depth: 1,
        });
        if self
            .events
            .send(ExecEvent::Executed { header, vote })
            .is_err()
        {
            tracing::debug!(%chain, "driver gone; vote not sent");
        }

        if let Some(head) = self.store.head().copied() {
            match maybe_snapshot(self.db.as_ref(), &self.snapshots, &head) {
                Ok(Some(info)) => tracing::info!(%chain, height = info.height, "snapshot written"),
                Ok(None) => {}
                Err(e) => tracing::warn!(%chain, error = %e, "automatic snapshot failed"),
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> anyhow::Result<v1::SnapshotResult> {
        let head = self
            .store
            .head()
            .copied()
            .context("the chain has no committed state yet")?;
        std::fs::create_dir_all(&self.snapshots.dir).with_context(|| {
            format!(
                "creating snapshot directory {}",
                self.snapshots.dir.display()
            )
        })?;
        let path = self
            .snapshots
            .dir
            .join(snapshot_file_name(head.chain, head.height));
        let info = export_snapshot(self.db.as_ref() as &dyn KvEngine, &path)
            .with_context(|| format!("exporting snapshot to {}", path.display()))?;
        Ok(v1::SnapshotResult {
            height: info.height,
            path: path.display().to_string(),
            checksum: info.checksum.to_vec(),
            chain: super::shared::proto_chain(self.shared.chain) as i32,
            size_bytes: info.bytes,
            state_root: info.state_root.to_vec(),
            created_at_unix_ms: unix_ms(),
        })
    }
}
