//! The executor: sequential reference, parallel, and shadow mode.
//!
//! Both executors apply [`crate::rules::apply_tx`] to the same working set
//! ([`crate::workset`]); they differ only in *order*: the sequential executor walks
//! the whole block in block order on the calling thread — it is the oracle and stays
//! forever — while the parallel executor runs independent groups of transactions
//! ([`crate::schedule`]) on rayon workers, each group in block order, and then puts
//! the receipts back in block order. Because every account sees the same
//! transactions in the same order either way, the outcome is identical; the
//! property tests and shadow mode check that it stays so.
//!
//! Below [`ExecutorConfig::min_parallel_batch`] transactions (default 20), or when
//! one group holds most of the block (a hot account), the parallel executor runs the
//! in-order pass instead: scheduling would only add overhead.
//!
//! Modes ([`ExecutionMode`]): `sequential`, `parallel`, and `shadow`, which runs both,
//! uses the sequential outcome, and on any difference increments
//! `dualchain_execution_shadow_mismatches_total` and logs a readable description of
//! the first differing receipt or state entry.

use std::sync::{Arc, Mutex};

use dualchain_core::hash::Digest;
use dualchain_core::types::{ChainId, Receipt, SignedTransaction, TxEvent};
use dualchain_storage::KvEngine;
use prometheus::{IntCounter, Registry};
use rayon::prelude::*;

use crate::crosschain::{CrossChainBlock, CrossChainSetup};
use crate::outcome::{AccountUpdate, BlockOutcome, ExecutionStats};
use crate::records::RecordChanges;
use crate::rules::{Accumulators, RuleContext, Scratch, apply_tx};
use crate::schedule::{Schedule, plan};
use crate::state::{StateCache, StateError, Totals};
use crate::verify::{SignatureVerifier, Verdict};
use crate::workset::{AllSlots, BlockAccess, ChunkSlots, Slot, Slots};

/// Default minimum block size for the parallel executor.
pub const DEFAULT_MIN_PARALLEL_BATCH: usize = 20;

/// How blocks are executed.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// The reference executor only.
    Sequential,
    /// The parallel executor (in-order below the minimum batch size).
    #[default]
    Parallel,
    /// Both; the sequential result is used and every mismatch counted and logged.
    Shadow,
}

impl std::str::FromStr for ExecutionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sequential" => Ok(Self::Sequential),
            "parallel" => Ok(Self::Parallel),
            "shadow" => Ok(Self::Shadow),
            other => Err(format!(
                "unknown execution mode {other:?}: expected sequential, parallel or shadow"
            )),
        }
    }
}

/// Executor configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecutorConfig {
    pub mode: ExecutionMode,
    /// Blocks with fewer transactions run in order (default 20).
    pub min_parallel_batch: usize,
    /// Chunks per worker thread: more chunks balance uneven groups better.
    pub chunks_per_thread: usize,
    /// Run in order when the largest independent group exceeds this share of the
    /// block: the rest could not hide its serial time.
    pub max_serial_share: f64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            mode: ExecutionMode::Parallel,
            min_parallel_batch: DEFAULT_MIN_PARALLEL_BATCH,
            chunks_per_thread: 4,
            max_serial_share: 0.9,
        }
    }
}

/// Why a block could not be executed at all (transaction failures are receipts).
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{verdicts} signature verdicts for {txs} transactions")]
    VerdictCount { verdicts: usize, txs: usize },
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Prometheus counters of the executor.
#[derive(Clone)]
pub struct ExecutorMetrics {
    pub blocks: IntCounter,
    pub transactions: IntCounter,
    pub failed_transactions: IntCounter,
    pub parallel_blocks: IntCounter,
    pub shadow_mismatches: IntCounter,
}

impl ExecutorMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            blocks: counter("dualchain_execution_blocks_total", "Blocks executed")?,
            transactions: counter(
                "dualchain_execution_transactions_total",
                "Transactions executed (every one gets a receipt)",
            )?,
            failed_transactions: counter(
                "dualchain_execution_failed_transactions_total",
                "Transactions whose receipt is a failure",
            )?,
            parallel_blocks: counter(
                "dualchain_execution_parallel_blocks_total",
                "Blocks the parallel scheduler split across workers",
            )?,
            shadow_mismatches: counter(
                "dualchain_execution_shadow_mismatches_total",
                "Shadow mode: blocks where parallel and sequential results differed (a consensus bug)",
            )?,
        })
    }
}

type DivergenceHook = Box<dyn Fn(&mut BlockOutcome) + Send + Sync>;

/// Executes blocks of one chain against a [`StateCache`].
pub struct Executor {
    chain: ChainId,
    config: ExecutorConfig,
    verifier: Arc<SignatureVerifier>,
    pool: Option<Arc<rayon::ThreadPool>>,
    registry: Registry,
    metrics: ExecutorMetrics,
    last_shadow_diff: Mutex<Option<String>>,
    divergence: Mutex<Option<DivergenceHook>>,
    cross_chain: Option<Arc<CrossChainSetup>>,
}

impl Executor {
    pub fn new(
        chain: ChainId,
        config: ExecutorConfig,
        verifier: Arc<SignatureVerifier>,
    ) -> Result<Self, ExecutionError> {
        let registry = Registry::new();
        let metrics = ExecutorMetrics::register(&registry)?;
        Ok(Self {
            chain,
            config,
            verifier,
            pool: None,
            registry,
            metrics,
            last_shadow_diff: Mutex::new(None),
            divergence: Mutex::new(None),
            cross_chain: None,
        })
    }

    /// Runs parallel work on `pool` instead of rayon's global pool.
    pub fn with_thread_pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Executes cross-chain operations with this setup (the same on every validator
    /// of the network: it comes from the genesis). Without one they are refused
    /// (`Disabled`): only benchmarks and account-only tests run so.
    pub fn with_cross_chain(mut self, setup: Arc<CrossChainSetup>) -> Self {
        self.cross_chain = Some(setup);
        self
    }

    pub fn chain(&self) -> ChainId {
        self.chain
    }

    /// The cross-chain setup, when cross-chain operations run here.
    pub fn cross_chain(&self) -> Option<&Arc<CrossChainSetup>> {
        self.cross_chain.as_ref()
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    pub fn verifier(&self) -> &Arc<SignatureVerifier> {
        &self.verifier
    }

    /// The executor's metrics registry (to expose or gather).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn metrics(&self) -> &ExecutorMetrics {
        &self.metrics
    }

    /// The diff logged for the most recent shadow mismatch.
    pub fn last_shadow_diff(&self) -> Option<String> {
        self.lock_diff().clone()
    }

    /// Test-only: a function applied to the *parallel* outcome in shadow mode, to
    /// check that a divergence is noticed.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn inject_divergence(&self, hook: impl Fn(&mut BlockOutcome) + Send + Sync + 'static) {
        *self.divergence.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }

    /// Verdicts for `txs` from the verifier's cache, verifying misses (in parallel
    /// unless the mode is sequential).
    pub fn verdicts(&self, txs: &[SignedTransaction]) -> Vec<Verdict> {
        // Unsigned verdicts are a flag check: not worth a hand-off to the pool.
        let all_unsigned = txs.iter().all(SignedTransaction::is_unsigned);
        match self.config.mode {
            ExecutionMode::Sequential => self.verifier.verify_sequential(txs),
            _ if all_unsigned => self.verifier.verify_sequential(txs),
            _ => self.install(|| self.verifier.verify_batch(txs)),
        }
    }

    /// Executes a block in the configured mode on the state at `cache.height()`, at
    /// block time zero (account-only callers: benchmarks, tests).
    pub fn execute_block<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
    ) -> Result<BlockOutcome, ExecutionError> {
        self.execute_block_at(cache, txs, 0)
    }

    /// Executes a block whose consensus timestamp is `timestamp_ms`: the clock of its
    /// cross-chain operations (time locks, voting deadlines).
    pub fn execute_block_at<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        timestamp_ms: u64,
    ) -> Result<BlockOutcome, ExecutionError> {
        let verdicts = self.verdicts(txs);
        let outcome = match self.config.mode {
            ExecutionMode::Sequential => self.sequential_at(cache, txs, &verdicts, timestamp_ms)?,
            ExecutionMode::Parallel => self.parallel_at(cache, txs, &verdicts, timestamp_ms)?,
            ExecutionMode::Shadow => self.shadow_at(cache, txs, &verdicts, timestamp_ms)?,
        };
        self.metrics.blocks.inc();
        self.metrics
            .transactions
            .inc_by(outcome.receipts.len() as u64);
        self.metrics
            .failed_transactions
            .inc_by(outcome.failed_count() as u64);
        if outcome.stats.ran_parallel {
            self.metrics.parallel_blocks.inc();
        }
        Ok(outcome)
    }

    /// The reference executor: every transaction in block order, on this thread (block
    /// time zero).
    pub fn execute_sequential<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        verdicts: &[Verdict],
    ) -> Result<BlockOutcome, ExecutionError> {
        self.sequential_at(cache, txs, verdicts, 0)
    }

    /// The parallel executor: independent groups on rayon workers, results in block
    /// order. Identical in outcome to [`Self::execute_sequential`] (block time zero).
    pub fn execute_parallel<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        verdicts: &[Verdict],
    ) -> Result<BlockOutcome, ExecutionError> {
        self.parallel_at(cache, txs, verdicts, 0)
    }

    /// The records overlay and clock of one block's cross-chain operations.
    fn cross_block<'a, E: KvEngine>(
        &'a self,
        cache: &'a StateCache<E>,
        timestamp_ms: u64,
    ) -> Option<CrossChainBlock<'a, E>> {
        let setup = self.cross_chain.as_deref()?;
        Some(CrossChainBlock::new(cache, timestamp_ms, setup))
    }

    fn sequential_at<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        verdicts: &[Verdict],
        timestamp_ms: u64,
    ) -> Result<BlockOutcome, ExecutionError> {
        check_verdicts(txs, verdicts)?;
        let access = BlockAccess::build(txs);
        let cross = self.cross_block(cache, timestamp_ms);
        let ctx = RuleContext {
            chain: self.chain,
            cache,
            cross: cross.as_ref(),
        };
        run_block_in_order(&ctx, txs, verdicts, &access)
    }

    fn parallel_at<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        verdicts: &[Verdict],
        timestamp_ms: u64,
    ) -> Result<BlockOutcome, ExecutionError> {
        check_verdicts(txs, verdicts)?;
        if txs.len() < self.config.min_parallel_batch.max(2) {
            return self.sequential_at(cache, txs, verdicts, timestamp_ms);
        }
        self.parallel_inner(cache, txs, verdicts, timestamp_ms)
    }

    /// Worker threads parallel work runs on.
    fn threads(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    fn parallel_inner<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        verdicts: &[Verdict],
        timestamp_ms: u64,
    ) -> Result<BlockOutcome, ExecutionError> {
        // Access sets, plan and merge run on the calling thread; only the chunks go
        // to the pool, so a block that will not be split never pays a hand-off.
        let access = BlockAccess::build(txs);
        let threads = self.threads();
        let chunks_wanted = threads * self.config.chunks_per_thread.max(1);
        let schedule = if threads > 1 {
            plan(&access, chunks_wanted, self.config.max_serial_share)
        } else {
            None
        };
        let cross = self.cross_block(cache, timestamp_ms);
        let ctx = RuleContext {
            chain: self.chain,
            cache,
            cross: cross.as_ref(),
        };
        let Some(schedule) = schedule else {
            // One worker, or one dominant group: the in-order pass is the fastest.
            return run_block_in_order(&ctx, txs, verdicts, &access);
        };

        let Schedule {
            chunk_txs,
            chunk_slot_counts,
            position,
            slot_at,
            chunk_of_tx,
            components,
            largest_component,
        } = schedule;
        let mut slots: Vec<Slot> = slot_at
            .iter()
            .map(|&s| Slot::new(*access.address(s)))
            .collect();

        // Split the permuted working set into one contiguous slice per chunk.
        let mut work = Vec::with_capacity(chunk_txs.len());
        let mut rest: &mut [Slot] = &mut slots;
        let mut first = 0u32;
        for (tx_list, &count) in chunk_txs.iter().zip(&chunk_slot_counts) {
            let (mine, tail) = rest.split_at_mut(count as usize);
            work.push((tx_list, mine, first));
            rest = tail;
            first += count;
        }
        let chunk_results: Vec<(Vec<Receipt>, Accumulators)> = self.install(|| {
            work.into_par_iter()
                .map(|(tx_list, chunk_slots, first)| {
                    let mut view = ChunkSlots {
                        slots: chunk_slots,
                        position: &position,
                        first,
                    };
                    run_in_order(
                        &ctx,
                        txs,
                        verdicts,
                        &access,
                        tx_list.iter().copied(),
                        &mut view,
                    )
                })
                .collect::<Result<_, StateError>>()
        })?;

        // Receipts back in block order; accumulators summed.
        let mut acc = Accumulators::default();
        let mut streams: Vec<std::vec::IntoIter<Receipt>> = Vec::with_capacity(chunk_results.len());
        for (receipts, part) in chunk_results {
            acc.merge(&part);
            streams.push(receipts.into_iter());
        }
        let mut receipts = Vec::with_capacity(txs.len());
        for &chunk in &chunk_of_tx {
            if let Some(receipt) = streams[chunk as usize].next() {
                receipts.push(receipt);
            }
        }
        let stats = ExecutionStats {
            ran_parallel: true,
            components,
            largest_component,
            chunks: chunk_txs.len(),
            accounts: access.slot_count(),
        };
        finish(
            &ctx,
            receipts,
            &acc,
            stats,
            |s| &slots[position[s as usize] as usize],
            &access,
        )
    }

    fn shadow_at<E: KvEngine>(
        &self,
        cache: &StateCache<E>,
        txs: &[SignedTransaction],
        verdicts: &[Verdict],
        timestamp_ms: u64,
    ) -> Result<BlockOutcome, ExecutionError> {
        let reference = self.sequential_at(cache, txs, verdicts, timestamp_ms)?;
        let mut parallel = self.parallel_at(cache, txs, verdicts, timestamp_ms)?;
        if let Some(hook) = self
            .divergence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            hook(&mut parallel);
        }
        if let Some(diff) = reference.first_difference(&parallel) {
            self.metrics.shadow_mismatches.inc();
            tracing::error!(
                chain = %self.chain,
                height = reference.base_height + 1,
                txs = txs.len(),
                "shadow execution mismatch (sequential vs parallel), using the sequential result: {diff}"
            );
            *self.lock_diff() = Some(diff);
        }
        Ok(reference)
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    fn lock_diff(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_shadow_diff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn check_verdicts(txs: &[SignedTransaction], verdicts: &[Verdict]) -> Result<(), ExecutionError> {
    if txs.len() != verdicts.len() {
        return Err(ExecutionError::VerdictCount {
            verdicts: verdicts.len(),
            txs: txs.len(),
        });
    }
    Ok(())
}

/// Applies the transactions `order` names, in that order, to `slots`.
fn run_in_order<E: KvEngine, S: Slots>(
    ctx: &RuleContext<'_, E>,
    txs: &[SignedTransaction],
    verdicts: &[Verdict],
    access: &BlockAccess,
    order: impl Iterator<Item = u32>,
    slots: &mut S,
) -> Result<(Vec<Receipt>, Accumulators), StateError> {
    let (low, _) = order.size_hint();
    let mut receipts = Vec::with_capacity(low);
    let mut acc = Accumulators::default();
    let mut scratch = Scratch::default();
    for i in order {
        let i = i as usize;
        receipts.push(apply_tx(
            ctx,
            &txs[i],
            verdicts[i],
            access.of(i),
            slots,
            &mut acc,
            &mut scratch,
        )?);
    }
    Ok((receipts, acc))
}

/// Every transaction in block order over one working set: the reference executor, and
/// the parallel executor's path when splitting the block cannot win.
fn run_block_in_order<E: KvEngine>(
    ctx: &RuleContext<'_, E>,
    txs: &[SignedTransaction],
    verdicts: &[Verdict],
    access: &BlockAccess,
) -> Result<BlockOutcome, ExecutionError> {
    let mut slots: Vec<Slot> = (0..access.slot_count() as u32)
        .map(|s| Slot::new(*access.address(s)))
        .collect();
    let (receipts, acc) = run_in_order(
        ctx,
        txs,
        verdicts,
        access,
        0..txs.len() as u32,
        &mut AllSlots(&mut slots),
    )?;
    let stats = ExecutionStats {
        ran_parallel: false,
        chunks: 1,
        accounts: access.slot_count(),
        ..ExecutionStats::default()
    };
    finish(ctx, receipts, &acc, stats, |s| &slots[s as usize], access)
}

/// Collects the changed accounts in slot order and the accumulators.
fn finish<'s, E: KvEngine>(
    ctx: &RuleContext<'_, E>,
    receipts: Vec<Receipt>,
    acc: &Accumulators,
    stats: ExecutionStats,
    slot: impl Fn(u32) -> &'s Slot,
    access: &BlockAccess,
) -> Result<BlockOutcome, ExecutionError> {
    let mut account_updates = Vec::with_capacity(access.slot_count());
    for s in 0..access.slot_count() as u32 {
        let slot = slot(s);
        let record = slot.changed_record();
        let balances = slot.changed_balances();
        if record.is_some() || !balances.is_empty() {
            account_updates.push(AccountUpdate {
                address: slot.address,
                record,
                balances,
            });
        }
    }
    let burned: std::collections::BTreeMap<_, _> = acc
        .burned
        .iter()
        .copied()
        .filter(|(_, amount)| *amount != 0)
        .collect();
    let mut totals_after = Totals {
        // A u128 of fees cannot overflow within any chain's life (2^64 blocks of
        // 2^64 fees); saturation only keeps the arithmetic total.
        fee_pool: ctx.cache.fee_pool()?.saturating_add(acc.fees),
        burned: Default::default(),
    };
    for (&asset, &amount) in &burned {
        totals_after
            .burned
            .insert(asset, ctx.cache.burned(asset)?.saturating_add(amount));
    }
    let (records, events) = match ctx.cross {
        Some(cross) => {
            let mut events = in_block_order(cross.take_events(), &receipts);
            events.extend(close_epoch_if_boundary(
                ctx.chain,
                ctx.cache.height() + 1,
                cross,
            )?);
            (cross.take_changes()?, events)
        }
        None => (RecordChanges::default(), Vec::new()),
    };
    Ok(BlockOutcome {
        chain: ctx.chain,
        base_height: ctx.cache.height(),
        receipts,
        account_updates,
        fees: acc.fees,
        burned,
        totals_after,
        records,
        events,
        stats,
    })
}

/// Alpha's boundary block ends its epoch after its transactions: the next set is
/// fixed ([`crate::epochs::close_epoch`]). The event is the block's, under the zero
/// transaction digest, after the transactions' events.
fn close_epoch_if_boundary<E: KvEngine>(
    chain: ChainId,
    height: u64,
    cross: &CrossChainBlock<'_, E>,
) -> Result<Option<TxEvent>, ExecutionError> {
    let schedule = cross.setup.epochs;
    if chain != ChainId::Alpha || !schedule.is_boundary(height) {
        return Ok(None);
    }
    let mut records = cross.records();
    let (writes, event) = crate::epochs::close_epoch(&*records, schedule, height)?;
    records
        .write_all(writes)
        .expect("a validator set of at most MAX_VALIDATORS members fits a record");
    Ok(Some(TxEvent {
        tx: Digest::ZERO,
        event,
    }))
}

/// `events` sorted by their transaction's position in the block (the receipts' order),
/// whatever order the executor ran the operations in.
fn in_block_order(mut events: Vec<TxEvent>, receipts: &[Receipt]) -> Vec<TxEvent> {
    let position: std::collections::HashMap<Digest, usize> = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| (r.tx_digest, i))
        .collect();
    events.sort_by_key(|e| position.get(&e.tx).copied().unwrap_or(usize::MAX));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{GenesisState, Workload, WorkloadSpec};
    use dualchain_core::types::{FailureReason, ReceiptStatus};
    use std::io::Write;

    const NET: dualchain_core::crypto::NetworkId =
        dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

    fn setup(txs: usize, conflict: f64) -> (Workload, GenesisState) {
        let workload = Workload::generate(&WorkloadSpec {
            txs,
            accounts: txs * 2 + 1,
            conflict,
            seed: 7,
            signed: false,
        });
        let state = GenesisState::build(&workload.genesis).unwrap();
        (workload, state)
    }

    fn executor(mode: ExecutionMode, threads: usize) -> Executor {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        Executor::new(
            ChainId::Delta,
            ExecutorConfig {
                mode,
                ..ExecutorConfig::default()
            },
            Arc::new(SignatureVerifier::new(NET, true)),
        )
        .unwrap()
        .with_thread_pool(Arc::new(pool))
    }

    /// A `tracing` writer that keeps what was logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn shadow_mode_counts_and_logs_an_injected_divergence() {
        let (workload, state) = setup(100, 0.2);
        let shadow = executor(ExecutionMode::Shadow, 2);

        // Without a divergence nothing is counted.
        let clean = shadow.execute_block(&state.cache, &workload.txs).unwrap();
        assert_eq!(shadow.metrics().shadow_mismatches.get(), 0);
        assert!(shadow.last_shadow_diff().is_none());

        shadow.inject_divergence(|outcome| {
            outcome.receipts[17].status = ReceiptStatus::Failed(FailureReason::Overflow);
        });
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let used = tracing::subscriber::with_default(subscriber, || {
            shadow.execute_block(&state.cache, &workload.txs).unwrap()
        });
        // The sequential result is the one used.
        assert_eq!(used, clean);
        assert_eq!(shadow.metrics().shadow_mismatches.get(), 1);
        let diff = shadow.last_shadow_diff().unwrap();
        assert!(diff.starts_with("receipt 17"), "{diff}");
        assert!(
            diff.contains("success, fee 1 vs failed (overflow), fee 1"),
            "{diff}"
        );
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("shadow execution mismatch"), "{log}");
        assert!(log.contains("receipt 17"), "{log}");
        let gathered = prometheus::TextEncoder::new()
            .encode_to_string(&shadow.registry().gather())
            .unwrap();
        assert!(gathered.contains("dualchain_execution_shadow_mismatches_total 1"));

        // A divergence in state (not receipts) is described by account.
        shadow.inject_divergence(|outcome| {
            if let Some(record) = outcome.account_updates[3].record.as_mut() {
                record.native += 1;
            }
        });
        shadow.execute_block(&state.cache, &workload.txs).unwrap();
        assert_eq!(shadow.metrics().shadow_mismatches.get(), 2);
        let diff = shadow.last_shadow_diff().unwrap();
        assert!(diff.starts_with("account dc"), "{diff}");
        assert!(diff.contains("native"), "{diff}");
    }

    #[test]
    fn small_blocks_and_hot_blocks_run_in_order() {
        let parallel = executor(ExecutionMode::Parallel, 2);
        let (small, state) = setup(DEFAULT_MIN_PARALLEL_BATCH - 1, 0.0);
        let outcome = parallel.execute_block(&state.cache, &small.txs).unwrap();
        assert!(!outcome.stats.ran_parallel);

        let (independent, state) = setup(200, 0.0);
        let outcome = parallel
            .execute_block(&state.cache, &independent.txs)
            .unwrap();
        assert!(outcome.stats.ran_parallel);
        assert_eq!(outcome.stats.components, 200);
        assert_eq!(outcome.stats.largest_component, 1);

        let (hot, state) = setup(200, 1.0);
        let outcome = parallel.execute_block(&state.cache, &hot.txs).unwrap();
        assert!(!outcome.stats.ran_parallel);
        assert_eq!(parallel.metrics().parallel_blocks.get(), 1);
        assert_eq!(parallel.metrics().transactions.get(), 419);
    }

    #[test]
    fn verdicts_must_match_the_block() {
        let (workload, state) = setup(30, 0.0);
        let exec = executor(ExecutionMode::Parallel, 2);
        assert!(matches!(
            exec.execute_parallel(&state.cache, &workload.txs, &[Verdict::Valid]),
            Err(ExecutionError::VerdictCount {
                verdicts: 1,
                txs: 30
            })
        ));
    }

    #[test]
    fn modes_parse() {
        assert_eq!("shadow".parse(), Ok(ExecutionMode::Shadow));
        assert_eq!("sequential".parse(), Ok(ExecutionMode::Sequential));
        assert!("fast".parse::<ExecutionMode>().is_err());
        assert_eq!(ExecutorConfig::default().min_parallel_batch, 20);
    }
}
