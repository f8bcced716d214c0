//! The block executor of one chain: committed sub-DAGs in, committed blocks out.
//!
//! It owns the chain store's writer, the sealer and the state cache, so sealing,
//! execution and the block write happen in one place and in order: seal (pure, from
//! the committed sequence) → execute (parallel executor) → seal the executed header
//! and commit it ([`seal_and_commit`]: the state root is computed once, and block,
//! receipts, state, head and the sealer's state are one atomic batch) → vote →
//! acknowledge to consensus the commits that batch made durable.
//!
//! With [`Placement::Threads`] it runs on its own OS thread, because execution is
//! CPU-bound and must not stall the driver's event loop; with [`Placement::Inline`]
//! (the simulator) it is a task of the same single-threaded runtime, so a run is
//! deterministic. The loop body is the same ([`BlockExecutor::handle`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use dualchain_api::{FinalizedBlock, SnapshotInfo};
use dualchain_consensus::{BlockSealer, CommittedSubDag, SealedBlock};
use dualchain_core::chain_store::{ChainStore, events_key};
use dualchain_core::crypto::ValidatorSignature;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{BlockCertificate, BlockEvents, BlockHeader};
use dualchain_execution::StateCache;
use dualchain_execution::merge::{SealParams, seal_and_commit};
use dualchain_storage::{Column, KvEngine, WriteBatch};
use dualchain_store::snapshot::{
    SnapshotPolicy, export_snapshot, maybe_snapshot, snapshot_file_name,
};
use tokio::sync::mpsc;

use crate::context::{ChainContext, Head};
use crate::seams::{Placement, Seams};

/// Meta key of the sealer state (written with every block batch).
pub const SEALER_STATE_KEY: &[u8] = b"node/sealer-state";

/// Work for the executor.
pub enum ExecCommand {
    /// The next committed sub-DAG, in sequence order (a replayed one may repeat).
    Commit(CommittedSubDag),
    /// A block certificate formed from 2f+1 votes, to store next to its block.
    Certificate(BlockCertificate),
    /// Export a snapshot between two blocks and answer on the channel.
    Snapshot(std::sync::mpsc::Sender<Result<SnapshotInfo, String>>),
}

/// What the executor reports to the driver.
#[derive(Debug)]
pub enum ExecEvent {
    /// A block was committed; our vote over its executed header goes to the peers.
    Executed {
        header: Box<BlockHeader>,
        vote: ValidatorSignature,
    },
    /// Every commit up to `through` is inside durable blocks or the durable sealer
    /// state: consensus may forget it.
    Durable { through: u64 },
}

pub struct BlockExecutor<S: Seams> {
    ctx: Arc<ChainContext<S>>,
    store: ChainStore<S::Engine>,
    cache: StateCache<S::Engine>,
    sealer: BlockSealer,
    events: mpsc::Sender<ExecEvent>,
}

/// A running executor: a thread or a task. Dropping it without [`ExecTask::join`]
/// (the chain's tasks were aborted: a simulated crash) cancels a task at once, so a
/// crashed node's executor never writes another block; a thread ends by itself once
/// every command sender is gone.
pub struct ExecTask {
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl ExecTask {
    /// Waits for the executor to finish (it does once every command sender is gone).
    pub async fn join(mut self, placement: Placement) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            return task.await?;
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let joined = match placement {
            Placement::Threads => tokio::task::spawn_blocking(move || thread.join()).await?,
            Placement::Inline => thread.join(),
        };
        joined.unwrap_or_else(|_| Err(anyhow::anyhow!("the executor thread panicked")))
    }
}

impl Drop for ExecTask {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl<S: Seams> BlockExecutor<S> {
    pub fn new(
        ctx: Arc<ChainContext<S>>,
        store: ChainStore<S::Engine>,
        cache: StateCache<S::Engine>,
        sealer: BlockSealer,
        events: mpsc::Sender<ExecEvent>,
    ) -> Self {
        Self {
            ctx,
            store,
            cache,
            sealer,
            events,
        }
    }

    /// Starts serving `commands` where `placement` wants it.
    pub fn spawn(
        mut self,
        placement: Placement,
        mut commands: mpsc::Receiver<ExecCommand>,
    ) -> anyhow::Result<ExecTask> {
        match placement {
            Placement::Threads => {
                let handle = std::thread::Builder::new()
                    .name(format!("exec-{}", self.ctx.chain))
                    .spawn(move || {
                        while let Some(command) = commands.blocking_recv() {
                            for event in self.handle(command)? {
                                if self.events.blocking_send(event).is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        Ok(())
                    })
                    .context("starting the executor thread")?;
                Ok(ExecTask {
                    thread: Some(handle),
                    task: None,
                })
            }
            Placement::Inline => Ok(ExecTask {
                thread: None,
                task: Some(tokio::spawn(async move {
                    while let Some(command) = commands.recv().await {
                        for event in self.handle(command)? {
                            if self.events.send(event).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                    Ok(())
                })),
            }),
        }
    }

    /// Carries out one command; returns the events for the driver.
    pub fn handle(&mut self, command: ExecCommand) -> anyhow::Result<Vec<ExecEvent>> {
        match command {
            ExecCommand::Commit(subdag) => {
                let started = Instant::now();
                let events = self.on_commit(subdag)?;
                self.ctx
                    .metrics
                    .driver_busy_seconds
                    .with_label_values(&["executor"])
                    .inc_by(started.elapsed().as_micros() as u64);
                Ok(events)
            }
            ExecCommand::Certificate(certificate) => {
                match self.store.put_certificate(&certificate) {
                    Ok(()) => self.ctx.metrics.certificates.inc(),
                    Err(e) => {
                        tracing::warn!(chain = %self.ctx.chain, height = certificate.height, error = %e, "could not persist a block certificate")
                    }
                }
                Ok(Vec::new())
            }
            ExecCommand::Snapshot(reply) => {
                let _ = reply.send(self.snapshot().map_err(|e| format!("{e:#}")));
                Ok(Vec::new())
            }
        }
    }

    fn on_commit(&mut self, subdag: CommittedSubDag) -> anyhow::Result<Vec<ExecEvent>> {
        if subdag.sequence < self.sealer.next_sequence() {
            // Replayed after a restart: already inside a committed block or the
            // persisted open slot.
            return Ok(Vec::new());
        }
        let blocks = self
            .sealer
            .on_commit(&subdag)
            .context("sealing the committed sequence")?;
        let count = blocks.len();
        let head_height = self.store.head().map_or(0, |h| h.height);
        let mut events = Vec::with_capacity(count + 1);
        for (i, sealed) in blocks.into_iter().enumerate() {
            if sealed.height() <= head_height {
                continue;
            }
            let last = i + 1 == count;
            events.push(self.execute_and_commit(sealed, last)?);
            if last {
                // The last batch carried the sealer state: everything up to the
                // sealer's position is durable.
                events.push(ExecEvent::Durable {
                    through: self.sealer.next_sequence() - 1,
                });
            }
        }
        Ok(events)
    }

    fn execute_and_commit(
        &mut self,
        sealed: SealedBlock,
        persist_sealer: bool,
    ) -> anyhow::Result<ExecEvent> {
        let ctx = self.ctx.clone();
        let metrics = &ctx.metrics;
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
        let outcome = ctx
            .executor
            .execute_block_at(&self.cache, &txs, header.timestamp_ms)
            .with_context(|| format!("executing block {}", header.height))?;
        metrics
            .execution_seconds
            .observe(started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut extra = WriteBatch::new();
        let events = BlockEvents(outcome.events.clone());
        if !events.0.is_empty() {
            extra.put(
                Column::Meta,
                events_key(header.height),
                events.to_canonical_bytes(),
            );
        }
        if persist_sealer {
            extra.put(
                Column::Meta,
                SEALER_STATE_KEY.to_vec(),
                self.sealer.to_state_bytes(),
            );
        }
        let block = seal_and_commit(
            &mut self.store,
            &self.cache,
            txs,
            &outcome,
            SealParams {
                epoch: header.epoch,
                slot: header.slot,
                timestamp_ms: header.timestamp_ms,
                vertices: sealed.block.body.vertices,
            },
            extra,
        )
        .with_context(|| format!("committing block {}", header.height))?;
        metrics
            .block_commit_seconds
            .observe(started.elapsed().as_secs_f64());

        ctx.mempool.remove_committed(&block.body.transactions);
        let failed = outcome.failed_count() as u64;
        metrics.blocks_sealed.inc();
        metrics
            .transactions_committed
            .inc_by(outcome.receipts.len() as u64 - failed);
        metrics.transactions_failed.inc_by(failed);
        metrics.height.set(block.header.height as i64);
        metrics.finalized_height.set(block.header.height as i64);

        let now = ctx.unix_ms();
        let digest = block.header.digest();
        ctx.set_head(Head {
            height: block.header.height,
            digest,
            state_root: block.header.state_root,
            block_timestamp_ms: block.header.timestamp_ms,
            committed_at_unix_ms: now,
        });
        let vote = BlockCertificate::vote(ctx.key(), &block.header, ctx.identity.network());
        let header = Box::new(block.header.clone());
        // No subscriber is not an error: the event is for whoever listens.
        let _ = ctx.finality.send(FinalizedBlock {
            block: Arc::new(block),
            certificate: None,
            finalized_at_unix_ms: now,
            confirmation_depth: 1,
            events: Arc::new(events),
        });
        self.maybe_snapshot();
        Ok(ExecEvent::Executed { header, vote })
    }

    fn maybe_snapshot(&self) {
        if self.ctx.snapshot_interval_blocks == 0 {
            return;
        }
        let (Some(dir), Some(head)) = (&self.ctx.snapshot_dir, self.store.head()) else {
            return;
        };
        let policy = SnapshotPolicy {
            every_blocks: self.ctx.snapshot_interval_blocks,
            dir: dir.clone(),
            keep: 2,
        };
        let chain = self.ctx.chain;
        match maybe_snapshot(self.store.engine() as &dyn KvEngine, &policy, &head) {
            Ok(Some(info)) => tracing::info!(%chain, height = info.height, "snapshot written"),
            Ok(None) => {}
            Err(e) => tracing::warn!(%chain, error = %e, "automatic snapshot failed"),
        }
    }

    fn snapshot(&self) -> anyhow::Result<SnapshotInfo> {
        let dir: PathBuf = self
            .ctx
            .snapshot_dir
            .clone()
            .context("this chain has no snapshot directory")?;
        let head = self
            .store
            .head()
            .context("the chain has no committed state yet")?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating snapshot directory {}", dir.display()))?;
        let path = dir.join(snapshot_file_name(head.chain, head.height));
        let info = export_snapshot(self.store.engine() as &dyn KvEngine, &path)
            .with_context(|| format!("exporting snapshot to {}", path.display()))?;
        Ok(SnapshotInfo {
            chain: self.ctx.chain,
            height: info.height,
            path: path.display().to_string(),
            checksum: info.checksum,
            size_bytes: info.bytes,
            state_root: dualchain_core::Digest(info.state_root),
            created_at_unix_ms: self.ctx.unix_ms(),
        })
    }
}
