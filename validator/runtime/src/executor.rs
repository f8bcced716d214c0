//! The block executor of one chain: committed sub-DAGs in, committed blocks out.
//!
//! It owns the chain store's writer, the sealer and the state cache, so sealing,
//! execution and the block write happen in one place and in order: seal (pure, from
//! the committed sequence) → execute (parallel executor) → seal the executed header
//! and commit it ([`seal_and_commit`]: the state root is computed once, and block,
//! receipts, state, head and the sealer's state are one atomic batch) → vote →
//! acknowledge to consensus the commits that batch made durable.
//!
//! **Epoch end.** The block whose execution enters the next epoch (Alpha's boundary
//! block, the Delta block that applied the next set's attestation: its events say
//! `epoch_boundary_reached`) is the last of its epoch. In the same batch the executor
//! writes the next epoch's sealer (heights go on, commit sequence from 0), drops the
//! rest of what the old engine committed (blocks sealed after it, and every later
//! commit of the old epoch still queued), gives our own transactions among them back
//! to the mempool, and tells the driver ([`ExecEvent::EpochEnded`]), which starts the
//! next epoch's engine with the set the records name. Every node cuts at the same
//! block, because the cut is a function of the committed sequence and the state.
//!
//! With [`Placement::Threads`] it runs on its own OS thread, because execution is
//! CPU-bound and must not stall the driver's event loop; with [`Placement::Inline`]
//! (the simulator) it is a task of the same single-threaded runtime, so a run is
//! deterministic. The loop body is the same ([`BlockExecutor::handle`]).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use dualchain_api::{FinalizedBlock, SnapshotInfo};
use dualchain_consensus::{BlockSealer, CommittedSubDag, SealedBlock};
use dualchain_core::Digest;
use dualchain_core::chain_store::ChainStore;
use dualchain_core::crypto::ValidatorSignature;
use dualchain_core::types::{
    BlockCertificate, BlockEvents, BlockHeader, Receipt, SignedTransaction, ValidatorIndex,
    ValidatorSet, Vertex,
};
use dualchain_execution::StateCache;
use dualchain_execution::epochs::entered_epoch;
use dualchain_execution::merge::{SealParams, seal_and_commit};
use dualchain_storage::{Column, KvEngine};
use dualchain_store::snapshot::{
    SnapshotPolicy, export_snapshot, maybe_snapshot, snapshot_file_name,
};
use tokio::sync::mpsc;

use crate::chain::recorded_set;
use crate::context::{ChainContext, Head, reinstate};
use crate::replay::events_batch;
use crate::seams::{Placement, Seams};

/// Meta key of the sealer state (written with every block batch).
pub const SEALER_STATE_KEY: &[u8] = b"node/sealer-state";

/// Work for the executor.
pub enum ExecCommand {
    /// The next committed sub-DAG of the engine of `epoch`, in sequence order (a
    /// replayed one may repeat; one of an epoch that already ended is dropped).
    Commit { epoch: u64, subdag: CommittedSubDag },
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
    /// The block `last` (executed and durable) ended its epoch; the chain's records
    /// name `set` for the next one, whose engine takes commits from sequence 0.
    EpochEnded {
        last: Box<BlockHeader>,
        set: Arc<ValidatorSet>,
    },
}

pub struct BlockExecutor<S: Seams> {
    ctx: Arc<ChainContext<S>>,
    store: ChainStore<S::Engine>,
    cache: StateCache<S::Engine>,
    sealer: BlockSealer,
    events: mpsc::Sender<ExecEvent>,
    /// Our validator index in the sets of the current and the previous epoch (where
    /// we are a member): whose vertices are ours to give back.
    own_index: BTreeMap<u64, ValidatorIndex>,
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
        let own_index = ctx
            .committee()
            .index_of(ctx.key().public())
            .map(|me| (sealer.epoch(), me))
            .into_iter()
            .collect();
        Self {
            ctx,
            store,
            cache,
            sealer,
            events,
            own_index,
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
            ExecCommand::Commit { epoch, subdag } => {
                let started = Instant::now();
                let events = self.on_commit(epoch, subdag)?;
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

    fn on_commit(&mut self, epoch: u64, subdag: CommittedSubDag) -> anyhow::Result<Vec<ExecEvent>> {
        let current = self.sealer.epoch();
        if epoch < current {
            // Committed by the engine of an epoch that ended before this sub-DAG.
            self.give_back_own(epoch, subdag.vertices.iter(), &HashSet::new());
            return Ok(Vec::new());
        }
        anyhow::ensure!(
            epoch == current,
            "a commit of epoch {epoch} reached the executor of epoch {current}"
        );
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
        let mut kept = HashSet::new();
        for (i, sealed) in blocks.into_iter().enumerate() {
            kept.extend(sealed.block.body.vertices.iter().copied());
            if sealed.height() <= head_height {
                continue;
            }
            let last = i + 1 == count;
            let (executed, ended) = self.execute_and_commit(sealed, last)?;
            events.push(executed);
            if let Some(ended) = ended {
                // The rest of this sub-DAG is after the epoch's last block.
                self.give_back_own(epoch, subdag.vertices.iter(), &kept);
                events.push(ended);
                return Ok(events);
            }
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

    /// Gives the transactions of our own vertices among `vertices` (of `epoch`'s
    /// engine) that are not in `kept` back to the mempool: they were committed
    /// after the block that ended the epoch, so no block holds them. Other
    /// validators' vertices are theirs to give back.
    fn give_back_own<'v>(
        &self,
        epoch: u64,
        vertices: impl Iterator<Item = &'v Arc<Vertex>>,
        kept: &HashSet<Digest>,
    ) {
        let Some(me) = self.own_index.get(&epoch) else {
            return;
        };
        let transactions: Vec<SignedTransaction> = vertices
            .filter(|v| v.content().author == *me && !kept.contains(&v.digest()))
            .flat_map(|v| v.content().transactions.iter().cloned())
            .collect();
        reinstate(&self.ctx, transactions, |_| None);
    }

    /// Executes and commits one sealed block; the second event is
    /// [`ExecEvent::EpochEnded`] if the block ended its epoch.
    fn execute_and_commit(
        &mut self,
        sealed: SealedBlock,
        persist_sealer: bool,
    ) -> anyhow::Result<(ExecEvent, Option<ExecEvent>)> {
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
        let entered = entered_epoch(&outcome.events);
        if let Some(next) = entered {
            anyhow::ensure!(
                next == header.epoch + 1,
                "block {} of epoch {} entered epoch {next}",
                header.height,
                header.epoch
            );
            self.sealer = self.sealer.next_epoch(&header);
        }

        let started = Instant::now();
        let mut extra = events_batch(header.height, &outcome.events);
        let events = BlockEvents(outcome.events.clone());
        if persist_sealer || entered.is_some() {
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
        if crate::membership::changes_expected(&outcome.events) {
            crate::membership::publish_expected(&ctx, &self.cache)?;
        }
        let failed_txs = Receipt::failed_positions(&outcome.receipts);
        let failed = failed_txs.len() as u64;
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
            epoch: block.header.epoch,
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
            failed_txs: failed_txs.into(),
        });
        self.maybe_snapshot();
        let ended = match entered {
            Some(next) => Some(self.epoch_ended(next, &header)?),
            None => None,
        };
        Ok((ExecEvent::Executed { header, vote }, ended))
    }

    /// The next epoch's set, now in the committed records, for the driver; our
    /// index in it for the commits of its engine.
    fn epoch_ended(&mut self, next: u64, last: &BlockHeader) -> anyhow::Result<ExecEvent> {
        let set = recorded_set(&self.ctx, &self.cache, next)?.with_context(|| {
            format!(
                "block {} entered epoch {next} but the records hold no set for it",
                last.height
            )
        })?;
        if let Some(me) = set.index_of(self.ctx.key().public()) {
            self.own_index.insert(next, me);
        }
        self.own_index.retain(|epoch, _| epoch + 1 >= next);
        tracing::info!(
            chain = %self.ctx.chain,
            height = last.height,
            epoch = next,
            validators = set.len(),
            "epoch ended; the next set takes over"
        );
        Ok(ExecEvent::EpochEnded {
            last: Box::new(last.clone()),
            set: Arc::new(set),
        })
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
