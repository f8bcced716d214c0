//! The load generator engine.
//!
//! # Pipeline
//! 1. **Prepare** (a dedicated thread): a [`TxPlanner`] decides transactions in order
//!    (so every sender's nonces stay contiguous) and [`materialize`] signs each chunk on
//!    all cores. Signed runs pre-sign as much of the run as the memory budget allows
//!    *before* the clock starts, and keep signing while sending.
//! 2. **Schedule** (open loop): every tick, the [`RateSchedule`] says how many
//!    transactions are due; that many are taken from the prepared buffer, cut into
//!    batches and handed to the targets in turn, whatever the targets answered so
//!    far. Every account's transactions go to one target (account index modulo the
//!    targets, [`Lanes`]), in nonce order: nonces execute strictly in order, and an
//!    account's consecutive nonces sent to different nodes race through different
//!    vertices, where a later one ordered first fails and so does every one after it.
//!    If the buffer runs dry (signing slower than the target rate) the shortfall
//!    is recorded and reported (`generator.behind_max`, `achieved_submit_tps`), never
//!    hidden.
//! 3. **Submit**: one worker per target sends `Transactions/SubmitBatch` calls, a few in
//!    flight, and reads one status per transaction. Transient refusals (mempool full,
//!    rate limited, internal error, unavailable) of transactions meant to commit are
//!    retried with back-off, keeping their first submit time: a retry costs latency,
//!    and the sender's later nonces do not stall behind a gap. A refusal's retry hint
//!    (`retry_after_ms`, sent with OVERLOADED and MEMPOOL_FULL, or the `retry-after-ms`
//!    metadata of a call refused whole with RESOURCE_EXHAUSTED) is honoured: the retry
//!    waits that long instead of the back-off, and no call at all goes to that target
//!    before then, so an overloaded node is not asked again before it said it could
//!    take more.
//! 4. **Observe**: a `Node/StreamFinality{chain: DELTA, include_tx_digests}` stream on
//!    one target (the next one on failure, resuming at the next height) matches every
//!    finalized digest against the transactions in flight. Latency is measured from
//!    the moment a transaction's batch is sent to the moment its finality event is
//!    received, both on this process's monotonic clock. That is *block finality*.
//!    Alongside, a `Node/StreamOrdering` stream on the same target gives each
//!    transaction's *ordering finality*: when the consensus commit holding it was
//!    received (its place and result are fixed from then on), on the same clock.
//!    Ordering events are live only: a transaction whose commit was missed (a
//!    reconnect, a lost commit) or arrived after its block has no ordering sample,
//!    so the two sample counts are reported side by side.
//!
//! With `--max-load` there is no schedule: prepared transactions go out as fast as the
//! targets take them, bounded by the number of batches in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dualchain_contract::LoadgenResult;
use dualchain_core::crypto::NetworkId;
use dualchain_proto::v1::{
    Chain, OrderingEvent, StreamFinalityRequest, StreamOrderingRequest, SubmitBatchRequest,
    TxStatus,
};
use dualchain_proto::{NodeClient, TransactionsClient};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tonic::transport::{Channel, Endpoint};

use crate::accounts::{Account, AccountSource, load_accounts};
use crate::latency::{LatencyRecorder, LatencySummary};
use crate::schedule::{DEFAULT_BURST_PERIOD, RateSchedule, Shape};
use crate::workload::{PreparedTx, TxClass, TxPlanner, WorkloadKind, materialize};

/// Largest request message the load generator builds (the node accepts 64 MiB).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Attempts for a transaction refused with a transient status.
const MAX_ATTEMPTS: u32 = 20;
/// The longest a node's retry hint holds a target (a hint is the node's estimate;
/// a larger one is taken as this).
const MAX_HINT_WAIT: Duration = Duration::from_secs(10);
/// Scheduler tick: the granularity of the open-loop schedule.
const TICK: Duration = Duration::from_millis(5);
/// Transactions prepared per chunk handed from the preparing thread.
const PREPARE_CHUNK: usize = 1024;
/// Approximate encoded size of a signed transfer, for the pre-signing memory budget.
const SIGNED_TX_BYTES: usize = 3_900;
/// Approximate encoded size of an unsigned transfer.
const UNSIGNED_TX_BYTES: usize = 160;
/// Window of the live latency and TPS figures.
const LIVE_WINDOW: Duration = Duration::from_secs(5);

/// Everything a load run needs.
#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    /// Delta API endpoints, `http://host:port`.
    pub targets: Vec<String>,
    /// Mean offered rate; `None` means `--max-load`.
    pub tps: Option<f64>,
    pub duration: Duration,
    pub workload: WorkloadKind,
    pub accounts: AccountSource,
    pub signed: bool,
    /// Transactions per `SubmitBatch` call (at most 10,000).
    pub batch: usize,
    /// Seed of the workload planner.
    pub seed: u64,
    /// `SubmitBatch` calls in flight per target.
    pub in_flight: usize,
    /// How long to wait after the send window for accepted transactions to finalize.
    pub drain_timeout: Duration,
    /// Memory budget for transactions prepared ahead of the schedule.
    pub presign_memory_bytes: usize,
    /// Period of the bursty square wave.
    pub burst_period: Duration,
}

impl LoadgenConfig {
    /// A configuration with the command line's defaults.
    pub fn new(targets: Vec<String>, accounts: AccountSource) -> Self {
        Self {
            targets,
            tps: Some(1000.0),
            duration: Duration::from_secs(30),
            workload: WorkloadKind::Steady,
            accounts,
            signed: false,
            batch: 1000,
            seed: 1,
            in_flight: 4,
            drain_timeout: Duration::from_secs(30),
            presign_memory_bytes: 1 << 30,
            burst_period: DEFAULT_BURST_PERIOD,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.targets.is_empty() {
            bail!("--targets needs at least one endpoint");
        }
        if let Some(tps) = self.tps
            && !(tps.is_finite() && tps > 0.0)
        {
            bail!("--tps must be a positive number, got {tps}");
        }
        if self.batch == 0 || self.batch > dualchain_proto::limits::MAX_TXS_PER_MESSAGE {
            bail!(
                "--batch must be between 1 and {}",
                dualchain_proto::limits::MAX_TXS_PER_MESSAGE
            );
        }
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        if self.in_flight == 0 {
            bail!("--in-flight must be at least 1");
        }
        Ok(())
    }
}

/// Per-second counts, for plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Second since the start of the send window.
    pub t_s: u64,
    pub submitted: u64,
    pub committed: u64,
}

/// How the preparing (signing) stage kept up with the schedule.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GeneratorStats {
    /// Transactions prepared before the clock started.
    pub prepared_before_start: u64,
    /// Preparation throughput measured while filling the buffer, tx/s.
    pub prepare_tps: f64,
    /// Largest number of transactions that were due but not yet prepared.
    pub behind_max: u64,
    /// True if preparation (signing) limited the achieved rate.
    pub limited_by_preparation: bool,
}

/// The result of a load run: the operator's loadgen result contract
/// ([`LoadgenResult`], defined once in `dualchain-contract`, serialized flat at the top
/// level), then what helps people and plots. `average_tps` is committed / `run_s`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadgenReport {
    #[serde(flatten)]
    pub result: LoadgenResult,
    pub accepted: u64,
    /// Accepted, meant to commit, not seen final before the drain timeout.
    pub uncommitted: u64,
    /// Mean offered rate; `null` with `--max-load`.
    pub target_tps: Option<f64>,
    pub max_load: bool,
    /// Transactions sent per second of the send window.
    pub achieved_submit_tps: f64,
    /// Length of the send window.
    pub duration_s: f64,
    /// Send window, or up to the last commit if that came later.
    pub run_s: f64,
    pub workload: WorkloadKind,
    pub accounts: usize,
    pub batch: usize,
    pub targets: Vec<String>,
    /// Refusals per status name (every attempt), plus `RPC_<CODE>` for failed calls.
    pub rejected_by_status: BTreeMap<String, u64>,
    /// Transactions sent per workload class.
    pub submitted_by_class: BTreeMap<String, u64>,
    /// Re-sends after transient refusals.
    pub retries: u64,
    /// Failed `SubmitBatch` calls.
    pub rpc_errors: u64,
    pub generator: GeneratorStats,
    /// Finality events received.
    pub blocks_observed: u64,
    /// Transactions in those blocks, from anyone.
    pub chain_txs_committed: u64,
    pub latency: LatencySummary,
    /// Submit → ordering finality (the transaction's commit received).
    pub ordering_latency: LatencySummary,
    /// Commits the ordering stream said it lost (their transactions have no
    /// ordering sample).
    pub ordering_commits_missed: u64,
    pub timeline: Vec<TimelinePoint>,
}

/// Counters a progress display reads while a run goes on.
#[derive(Debug, Default)]
pub struct LiveStats {
    start: Mutex<Option<Instant>>,
    pub submitted: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub committed: AtomicU64,
    timeline: Mutex<Vec<TimelinePoint>>,
    recent_latencies: Mutex<VecDeque<(Instant, Duration)>>,
    /// Ordering latencies of the last [`LIVE_WINDOW`].
    recent_ordering: Mutex<VecDeque<(Instant, Duration)>>,
    /// Every finality event that committed own transactions: when it arrived and how
    /// many (bounded by [`MAX_COMMIT_EVENTS`]; one per block, so weeks of blocks). Its
    /// tail is the live committed rate, the whole of it the rates of a run's phases.
    commit_log: Mutex<Vec<(Instant, u64)>>,
}

/// Finality events [`LiveStats::commit_events`] keeps; later ones are not logged.
const MAX_COMMIT_EVENTS: usize = 1 << 20;

/// A consistent-enough view of [`LiveStats`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LiveSnapshot {
    /// Time since the send window opened (zero before).
    pub elapsed: Duration,
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub committed: u64,
    /// Own committed transactions per second over the last few seconds.
    pub committed_tps: f64,
    /// p95 of the block finality latencies measured over the last few seconds, ms.
    pub finality_p95_ms: Option<f64>,
    /// p95 of the ordering finality latencies measured over the last few seconds, ms.
    pub ordering_p95_ms: Option<f64>,
}

impl LiveStats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mark_start(&self, at: Instant) {
        *Self::lock(&self.start) = Some(at);
    }

    /// When the send window opened.
    pub fn started_at(&self) -> Option<Instant> {
        *Self::lock(&self.start)
    }

    /// Waits for the send window to open (it opens once the load's accounts are
    /// ready); when it did.
    pub async fn wait_started(&self) -> Instant {
        loop {
            if let Some(start) = self.started_at() {
                return start;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn second_of(&self, at: Instant) -> u64 {
        self.started_at()
            .map_or(0, |s| at.saturating_duration_since(s).as_secs())
    }

    fn bump_timeline(&self, at: Instant, submitted: u64, committed: u64) {
        let second = self.second_of(at) as usize;
        let mut timeline = Self::lock(&self.timeline);
        while timeline.len() <= second {
            let t_s = timeline.len() as u64;
            timeline.push(TimelinePoint {
                t_s,
                ..TimelinePoint::default()
            });
        }
        timeline[second].submitted += submitted;
        timeline[second].committed += committed;
    }

    /// Own transactions final at `at`: `succeeded` of them with a successful receipt
    /// (the goodput), `latencies` of all (a failed receipt is final too).
    fn record_commits(&self, at: Instant, succeeded: u64, latencies: &[Duration]) {
        self.committed.fetch_add(succeeded, Ordering::Relaxed);
        self.bump_timeline(at, 0, succeeded);
        {
            let mut log = Self::lock(&self.commit_log);
            if log.len() < MAX_COMMIT_EVENTS {
                log.push((at, succeeded));
            }
        }
        Self::keep_recent(&self.recent_latencies, at, latencies);
    }

    fn record_ordered(&self, at: Instant, latencies: &[Duration]) {
        Self::keep_recent(&self.recent_ordering, at, latencies);
    }

    /// Adds `latencies` seen at `at` to a live window, dropping what fell out of it.
    fn keep_recent(
        recent: &Mutex<VecDeque<(Instant, Duration)>>,
        at: Instant,
        latencies: &[Duration],
    ) {
        let horizon = at.checked_sub(LIVE_WINDOW);
        let mut recent = Self::lock(recent);
        recent.extend(latencies.iter().map(|l| (at, *l)));
        while recent.len() > 65_536
            || recent
                .front()
                .is_some_and(|(t, _)| horizon.is_some_and(|h| *t < h))
        {
            recent.pop_front();
        }
    }

    /// p95 of a live window's latencies seen after `horizon`, ms.
    fn recent_p95(
        recent: &Mutex<VecDeque<(Instant, Duration)>>,
        horizon: Option<Instant>,
    ) -> Option<f64> {
        let mut recent: Vec<u32> = Self::lock(recent)
            .iter()
            .filter(|(t, _)| horizon.is_none_or(|h| *t >= h))
            .map(|(_, l)| u32::try_from(l.as_micros()).unwrap_or(u32::MAX))
            .collect();
        recent.sort_unstable();
        dualchain_contract::stats::percentile(&recent, 0.95).map(|us| f64::from(us) / 1000.0)
    }

    /// The current figures.
    pub fn snapshot(&self) -> LiveSnapshot {
        let now = Instant::now();
        let elapsed = self
            .started_at()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let window = elapsed.min(LIVE_WINDOW).as_secs_f64().max(1e-3);
        let horizon = now.checked_sub(LIVE_WINDOW);
        let in_window = |t: &Instant| horizon.is_none_or(|h| *t >= h);
        let recent_commits: u64 = Self::lock(&self.commit_log)
            .iter()
            .rev()
            .take_while(|(t, _)| in_window(t))
            .map(|(_, n)| n)
            .sum();
        LiveSnapshot {
            elapsed,
            submitted: self.submitted.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            committed_tps: recent_commits as f64 / window,
            finality_p95_ms: Self::recent_p95(&self.recent_latencies, horizon),
            ordering_p95_ms: Self::recent_p95(&self.recent_ordering, horizon),
        }
    }

    /// Per-second counts so far.
    pub fn timeline(&self) -> Vec<TimelinePoint> {
        Self::lock(&self.timeline).clone()
    }

    /// `(seconds since the send window opened, own transactions committed)` per
    /// finality event, in arrival order: rates over a window measured from block to
    /// block rather than in whole-second bins.
    pub fn commit_events(&self) -> Vec<(f64, u64)> {
        let Some(start) = self.started_at() else {
            return Vec::new();
        };
        Self::lock(&self.commit_log)
            .iter()
            .map(|(t, n)| (t.saturating_duration_since(start).as_secs_f64(), *n))
            .collect()
    }
}

/// State shared by the scheduler, the target workers and the finality watcher.
struct Shared {
    live: Arc<LiveStats>,
    /// Digest → send time of tracked transactions accepted or in flight.
    pending: Mutex<HashMap<[u8; 32], Tracked>>,
    latency: Mutex<LatencyRecorder>,
    ordering_latency: Mutex<LatencyRecorder>,
    ordering_missed: AtomicU64,
    outcome: Mutex<Outcome>,
    retries: AtomicU64,
    rpc_errors: AtomicU64,
    blocks: AtomicU64,
    chain_txs: AtomicU64,
    /// Own transactions final with a failed receipt (not counted as committed).
    failed: AtomicU64,
    last_commit: Mutex<Option<Instant>>,
    /// Set when the drain phase ends: no more retries.
    closing: AtomicBool,
}

impl Shared {
    fn new(live: Arc<LiveStats>) -> Self {
        Self {
            live,
            pending: Mutex::new(HashMap::new()),
            latency: Mutex::new(LatencyRecorder::default()),
            ordering_latency: Mutex::new(LatencyRecorder::default()),
            ordering_missed: AtomicU64::new(0),
            outcome: Mutex::new(Outcome::default()),
            retries: AtomicU64::new(0),
            rpc_errors: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            chain_txs: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_commit: Mutex::new(None),
            closing: AtomicBool::new(false),
        }
    }
}

/// A transaction waiting for finality.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    sent_at: Instant,
    /// Its ordering latency is recorded.
    ordered: bool,
}

#[derive(Default)]
struct Outcome {
    rejected_by_status: BTreeMap<String, u64>,
    submitted_by_class: BTreeMap<String, u64>,
    final_rejected: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn class_name(class: TxClass) -> &'static str {
    match class {
        TxClass::Valid => "valid",
        TxClass::HotConflict => "hot_conflict",
        TxClass::Duplicate => "duplicate",
        TxClass::BadSignature => "bad_signature",
        TxClass::StaleNonce => "stale_nonce",
        TxClass::Oversize => "oversize",
    }
}

/// Which target each transaction goes to: all of an account's to one (account index
/// modulo the targets), in plan order, as a wallet talks to its node. Nonces must
/// execute in order (a transaction ahead of its predecessor fails, and so does every
/// later one of that account); spread over several nodes, an account's consecutive
/// nonces would race each other through different vertices and most would fail.
struct Lanes {
    staged: Vec<VecDeque<PreparedTx>>,
    /// The target whose turn it is.
    next: usize,
    /// Round-robin position of transactions without a signer.
    unsigned_turn: usize,
}

impl Lanes {
    fn new(targets: usize) -> Self {
        assert!(targets > 0, "a load needs a target");
        Self {
            staged: (0..targets).map(|_| VecDeque::new()).collect(),
            next: 0,
            unsigned_turn: 0,
        }
    }

    fn lane_of(&mut self, tx: &PreparedTx) -> usize {
        let n = self.staged.len();
        tx.signer.map_or_else(
            || {
                self.unsigned_turn = (self.unsigned_turn + 1) % n;
                self.unsigned_turn
            },
            |signer| signer % n,
        )
    }

    /// Stages transactions from `buffer` (in order) until the target whose turn it is
    /// holds `want`, moving on to the next target while one has nothing; the target
    /// to send to, or `None` when nothing is staged anywhere.
    fn next_ready(&mut self, buffer: &mut VecDeque<PreparedTx>, want: usize) -> Option<usize> {
        for _ in 0..self.staged.len() {
            let target = self.next;
            while self.staged[target].len() < want {
                let Some(tx) = buffer.pop_front() else { break };
                let lane = self.lane_of(&tx);
                self.staged[lane].push_back(tx);
            }
            self.next = (target + 1) % self.staged.len();
            if !self.staged[target].is_empty() {
                return Some(target);
            }
        }
        None
    }

    /// Up to `max` staged transactions of `target`, within [`MAX_BATCH_BYTES`].
    fn take(&mut self, target: usize, max: usize) -> Vec<PreparedTx> {
        let lane = &mut self.staged[target];
        let mut txs = Vec::with_capacity(max.min(lane.len()));
        let mut bytes = 0usize;
        while txs.len() < max {
            let Some(next) = lane.front() else { break };
            if !txs.is_empty() && bytes + next.bytes.len() > MAX_BATCH_BYTES {
                break;
            }
            bytes += next.bytes.len();
            txs.extend(lane.pop_front());
        }
        txs
    }
}

/// One `SubmitBatch` worth of transactions.
struct Outgoing {
    txs: Vec<PreparedTx>,
    attempt: u32,
    /// Held while the batch is in flight (max-load back-pressure).
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Connects to `url` (a `http://host:port` endpoint), failing fast with its name.
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not a valid endpoint URL"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

/// The network id every target reports; targets of different networks (a mistyped
/// endpoint) are refused, since transactions signed for one would fail on the other.
async fn targets_network(targets: &[String]) -> anyhow::Result<NetworkId> {
    let mut network: Option<(NetworkId, &str)> = None;
    for url in targets {
        let id = dualchain_client::node::network_id(url)
            .await
            .with_context(|| format!("learning the network id of {url}"))?;
        match network {
            Some((first, first_url)) if first != id => bail!(
                "targets belong to different networks: {first_url} reports {first}, {url} reports {id}"
            ),
            Some(_) => {}
            None => network = Some((id, url)),
        }
    }
    network
        .map(|(id, _)| id)
        .context("no target to learn the network id from")
}

/// Runs a load, reporting live figures into `live`.
pub async fn run(config: LoadgenConfig, live: Arc<LiveStats>) -> anyhow::Result<LoadgenReport> {
    config.validate()?;
    let accounts_src = config.accounts.clone();
    let accounts: Arc<Vec<Account>> = Arc::new(
        tokio::task::spawn_blocking(move || load_accounts(&accounts_src))
            .await
            .context("loading accounts")??,
    );
    let shared = Arc::new(Shared::new(live.clone()));

    // Connect every target first: a wrong endpoint is an immediate, named error.
    let mut channels = Vec::with_capacity(config.targets.len());
    for url in &config.targets {
        channels.push(connect(url).await?);
    }
    let network = targets_network(&config.targets).await?;

    // Subscribe to finality before anything is sent, so no commit can be missed.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(watch_finality(
        config.targets.clone(),
        shared.clone(),
        stop_rx.clone(),
        ready_tx,
    ));
    match tokio::time::timeout(Duration::from_secs(15), ready_rx).await {
        Ok(Ok(())) => {}
        _ => {
            let _ = stop_tx.send(true);
            bail!(
                "could not subscribe to Node/StreamFinality on any target ({})",
                config.targets.join(", ")
            );
        }
    }
    let (ordering_ready_tx, ordering_ready_rx) = tokio::sync::oneshot::channel();
    let ordering_watcher = tokio::spawn(watch_ordering(
        config.targets.clone(),
        shared.clone(),
        stop_rx.clone(),
        ordering_ready_tx,
    ));
    // Ordering figures are a bonus over finality: a run goes on without them, and
    // says so, when no target streams commits.
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), ordering_ready_rx).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("no target streams Node/StreamOrdering; ordering finality is not measured");
    }

    // Prepare (sign) ahead of the schedule.
    let schedule = config.tps.map(|tps| {
        let shape = match config.workload {
            WorkloadKind::Bursty => Shape::Bursty {
                period: config.burst_period,
            },
            _ => Shape::Steady,
        };
        RateSchedule::new(tps, shape)
    });
    let total = schedule.map(|s| s.total(config.duration));
    let tx_bytes = if config.signed {
        SIGNED_TX_BYTES
    } else {
        UNSIGNED_TX_BYTES
    };
    let budget = (config.presign_memory_bytes / tx_bytes).max(PREPARE_CHUNK);
    let prefill_target = match (total, config.tps) {
        // Signed: as much of the run as the budget allows. Unsigned: one second.
        (Some(total), Some(_)) if config.signed => total.min(budget as u64),
        (Some(total), Some(tps)) => total.min((tps.ceil() as u64).max(PREPARE_CHUNK as u64)),
        _ => (budget as u64).min(64 * PREPARE_CHUNK as u64),
    };
    let producer_stop = Arc::new(AtomicBool::new(false));
    let (prep_tx, mut prep_rx) = mpsc::channel::<Vec<PreparedTx>>(8);
    let planner = TxPlanner::new(&accounts, config.workload, config.seed, None);
    let producer = {
        let accounts = accounts.clone();
        let stop = producer_stop.clone();
        let signed = config.signed;
        std::thread::Builder::new()
            .name("loadgen-prepare".into())
            .spawn(move || prepare_loop(planner, accounts, network, signed, total, prep_tx, stop))
            .context("starting the preparation thread")?
    };
    if config.signed {
        tracing::info!(
            transactions = prefill_target,
            "pre-signing transactions before the send window opens"
        );
    }
    let prefill_start = Instant::now();
    let mut buffer: VecDeque<PreparedTx> = VecDeque::new();
    while (buffer.len() as u64) < prefill_target {
        match prep_rx.recv().await {
            Some(chunk) => buffer.extend(chunk),
            None => break,
        }
    }
    let prepare_secs = prefill_start.elapsed().as_secs_f64().max(1e-6);
    let mut generator = GeneratorStats {
        prepared_before_start: buffer.len() as u64,
        prepare_tps: buffer.len() as f64 / prepare_secs,
        ..GeneratorStats::default()
    };
    if let Some(tps) = config.tps
        && config.signed
        && generator.prepare_tps < tps
        && total.is_some_and(|t| generator.prepared_before_start < t)
    {
        tracing::warn!(
            prepare_tps = generator.prepare_tps as u64,
            target_tps = tps,
            "signing is slower than the target rate and the pre-signed buffer does not cover the run: the achieved rate will fall short (reported as achieved_submit_tps)"
        );
    }

    // Target workers.
    let max_load_permits = config
        .tps
        .is_none()
        .then(|| Arc::new(Semaphore::new(config.targets.len() * config.in_flight * 2)));
    let mut senders = Vec::new();
    let mut workers = tokio::task::JoinSet::new();
    for (channel, url) in channels.into_iter().zip(&config.targets) {
        let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
        let client = TransactionsClient::new(channel)
            .max_decoding_message_size(dualchain_proto::limits::DEFAULT_MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(dualchain_proto::limits::DEFAULT_MAX_GRPC_MESSAGE_BYTES);
        workers.spawn(target_worker(
            url.clone(),
            client,
            rx,
            shared.clone(),
            config.in_flight,
        ));
        senders.push(tx);
    }

    // The send window.
    let start = Instant::now();
    live.mark_start(start);
    let mut sent: u64 = 0;
    let mut lanes = Lanes::new(senders.len());
    let mut producer_done = false;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let elapsed = start.elapsed();
        // The last tick sends whatever the schedule still owes for the whole window.
        let finishing = elapsed >= config.duration;
        if finishing && schedule.is_none() {
            break;
        }
        let due = match (schedule, total) {
            (Some(_), Some(total)) if finishing => total,
            (Some(s), Some(total)) => s.due(elapsed).min(total),
            _ => u64::MAX,
        };
        if total.is_some_and(|t| sent >= t) {
            if finishing {
                break;
            }
            continue;
        }
        let mut want = due.saturating_sub(sent);
        while want > 0 {
            while buffer.len() < config.batch && !producer_done {
                match prep_rx.try_recv() {
                    Ok(chunk) => buffer.extend(chunk),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => producer_done = true,
                }
            }
            let take = want.min(config.batch as u64) as usize;
            let Some(target) = lanes.next_ready(&mut buffer, take) else {
                if schedule.is_some() {
                    generator.behind_max = generator.behind_max.max(want);
                }
                break;
            };
            let permit = match &max_load_permits {
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => break,
                },
                None => None,
            };
            let txs = lanes.take(target, take);
            let n = txs.len() as u64;
            sent += n;
            want -= n;
            let _ = senders[target].send(Outgoing {
                txs,
                attempt: 0,
                _permit: permit,
            });
        }
        if finishing {
            break;
        }
    }
    let send_window = config.duration;
    producer_stop.store(true, Ordering::Relaxed);
    drop(prep_rx);
    drop(buffer);
    drop(senders);

    // Drain: in-flight calls and retries, then wait for the accepted ones to finalize.
    let drain_deadline = Instant::now() + config.drain_timeout;
    let workers_done = async { while workers.join_next().await.is_some() {} };
    if tokio::time::timeout_at(drain_deadline.into(), workers_done)
        .await
        .is_err()
    {
        tracing::warn!("submissions still in flight at the drain timeout; abandoning them");
    }
    shared.closing.store(true, Ordering::Relaxed);
    while Instant::now() < drain_deadline && !lock(&shared.pending).is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), ordering_watcher).await;
    let _ = producer.join();

    let submitted = live.submitted.load(Ordering::Relaxed);
    let committed = live.committed.load(Ordering::Relaxed);
    let accepted = live.accepted.load(Ordering::Relaxed);
    let send_s = send_window.as_secs_f64().max(1e-3);
    let run_s = lock(&shared.last_commit)
        .map_or(send_s, |t| t.saturating_duration_since(start).as_secs_f64())
        .max(send_s);
    let achieved_submit_tps = submitted as f64 / send_s;
    generator.limited_by_preparation = config.tps.is_some_and(|tps| {
        generator.behind_max > config.batch as u64 && achieved_submit_tps < 0.98 * tps
    });
    let latency = lock(&shared.latency);
    let ordering_latency = lock(&shared.ordering_latency);
    let outcome = lock(&shared.outcome);
    Ok(LoadgenReport {
        result: LoadgenResult {
            average_tps: committed as f64 / run_s,
            submitted,
            committed,
            failed: shared.failed.load(Ordering::Relaxed),
            rejected: outcome.final_rejected,
            finality_ms: latency.percentiles(),
            ordering_finality_ms: (ordering_latency.count() > 0)
                .then(|| ordering_latency.percentiles()),
            signed: config.signed,
        },
        accepted,
        uncommitted: lock(&shared.pending).len() as u64,
        target_tps: config.tps,
        max_load: config.tps.is_none(),
        achieved_submit_tps,
        duration_s: send_s,
        run_s,
        workload: config.workload,
        accounts: accounts.len(),
        batch: config.batch,
        targets: config.targets.clone(),
        rejected_by_status: outcome.rejected_by_status.clone(),
        submitted_by_class: outcome.submitted_by_class.clone(),
        retries: shared.retries.load(Ordering::Relaxed),
        rpc_errors: shared.rpc_errors.load(Ordering::Relaxed),
        generator,
        blocks_observed: shared.blocks.load(Ordering::Relaxed),
        chain_txs_committed: shared.chain_txs.load(Ordering::Relaxed),
        latency: latency.summary(),
        ordering_latency: ordering_latency.summary(),
        ordering_commits_missed: shared.ordering_missed.load(Ordering::Relaxed),
        timeline: live.timeline(),
    })
}

/// The preparing thread: plans in order, signs in parallel, hands chunks over.
fn prepare_loop(
    mut planner: TxPlanner,
    accounts: Arc<Vec<Account>>,
    network: NetworkId,
    signed: bool,
    total: Option<u64>,
    out: mpsc::Sender<Vec<PreparedTx>>,
    stop: Arc<AtomicBool>,
) {
    let mut produced = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let left = total.map_or(u64::MAX, |t| t.saturating_sub(produced));
        if left == 0 {
            break;
        }
        let n = (PREPARE_CHUNK as u64).min(left) as usize;
        let chunk = materialize(planner.plan_chunk(n), &accounts, network, signed);
        produced += n as u64;
        if out.blocking_send(chunk).is_err() {
            break;
        }
    }
}

/// Sends the batches routed to one target, a few calls in flight. Each call task
/// retries its transient refusals itself (releasing its slot while it backs off), so
/// the worker ends as soon as the scheduler is done and every call has finished.
async fn target_worker(
    url: String,
    client: TransactionsClient<Channel>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let pause = Arc::new(TargetPause::default());
    let mut calls = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
        };
        let Some(mut batch) = next else { break };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        pause.wait().await;
        let mut client = client.clone();
        let shared = shared.clone();
        let url = url.clone();
        let slots = slots.clone();
        let pause = pause.clone();
        calls.spawn(async move {
            let mut slot = Some(slot);
            loop {
                let attempt = batch.attempt;
                let (again, hint) = submit_batch(&url, &mut client, batch, &shared).await;
                if again.is_empty() {
                    break;
                }
                shared
                    .retries
                    .fetch_add(again.len() as u64, Ordering::Relaxed);
                drop(slot.take());
                let wait = retry_wait(attempt, hint);
                if hint.is_some() {
                    pause.hold_until(Instant::now() + wait);
                }
                tokio::time::sleep(wait).await;
                if shared.closing.load(Ordering::Relaxed) {
                    give_up(&shared, &again);
                    break;
                }
                slot = slots.clone().acquire_owned().await.ok();
                batch = Outgoing {
                    txs: again,
                    attempt: attempt + 1,
                    _permit: None,
                };
            }
        });
    }
    while calls.join_next().await.is_some() {}
}

/// When a target may get its next call: a node's retry hint holds every call to it,
/// new batches included, until then.
#[derive(Default)]
struct TargetPause {
    until: Mutex<Option<Instant>>,
}

impl TargetPause {
    fn hold_until(&self, at: Instant) {
        let mut until = lock(&self.until);
        if until.is_none_or(|current| current < at) {
            *until = Some(at);
        }
    }

    async fn wait(&self) {
        let until = *lock(&self.until);
        if let Some(at) = until {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

/// How long a retry waits: the node's hint when it gave one (capped at
/// [`MAX_HINT_WAIT`]), else exponential back-off from 50 ms.
fn retry_wait(attempt: u32, hint: Option<Duration>) -> Duration {
    match hint {
        Some(hint) => hint.min(MAX_HINT_WAIT),
        None => Duration::from_millis(50u64 << attempt.min(4)),
    }
}

/// Counts transactions as finally refused and stops waiting for their finality.
fn give_up(shared: &Shared, txs: &[PreparedTx]) {
    let mut pending = lock(&shared.pending);
    for digest in txs.iter().filter_map(|t| t.tracked_digest) {
        pending.remove(&digest);
    }
    drop(pending);
    let n = txs.len() as u64;
    shared.live.rejected.fetch_add(n, Ordering::Relaxed);
    lock(&shared.outcome).final_rejected += n;
}

fn status_name(status: TxStatus) -> &'static str {
    status.as_str_name().trim_start_matches("TX_STATUS_")
}

/// Sends one batch; returns the transactions to retry after a transient refusal, and
/// the longest retry hint the node gave them.
async fn submit_batch(
    url: &str,
    client: &mut TransactionsClient<Channel>,
    batch: Outgoing,
    shared: &Shared,
) -> (Vec<PreparedTx>, Option<Duration>) {
    let Outgoing { txs, attempt, .. } = batch;
    let sent_at = Instant::now();
    if attempt == 0 {
        let mut pending = lock(&shared.pending);
        for tx in &txs {
            if let Some(digest) = tx.tracked_digest {
                pending.insert(
                    digest,
                    Tracked {
                        sent_at,
                        ordered: false,
                    },
                );
            }
        }
        drop(pending);
        let mut outcome = lock(&shared.outcome);
        for tx in &txs {
            *outcome
                .submitted_by_class
                .entry(class_name(tx.class).to_owned())
                .or_default() += 1;
        }
        drop(outcome);
        shared
            .live
            .submitted
            .fetch_add(txs.len() as u64, Ordering::Relaxed);
        shared.live.bump_timeline(sent_at, txs.len() as u64, 0);
    }
    let request = SubmitBatchRequest {
        chain: Chain::Delta as i32,
        transactions: txs.iter().map(|t| t.bytes.to_vec()).collect(),
    };
    let mut hint_ms = 0u32;
    let statuses: Vec<Result<TxStatus, String>> = match client.submit_batch(request).await {
        Ok(response) => {
            let response = response.into_inner();
            let mut statuses = vec![Err("RESULT_MISSING".to_owned()); txs.len()];
            for result in response.results {
                if let Some(slot) = usize::try_from(result.index)
                    .ok()
                    .and_then(|i| statuses.get_mut(i))
                {
                    if result.status().is_transient() {
                        hint_ms = hint_ms.max(result.retry_after_ms);
                    }
                    *slot = Ok(result.status());
                }
            }
            statuses
        }
        Err(status) => {
            shared.rpc_errors.fetch_add(1, Ordering::Relaxed);
            // A node whose door is shut says when to come back.
            if let Some(ms) = status
                .metadata()
                .get(dualchain_proto::RETRY_AFTER_MS_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
            {
                hint_ms = ms;
            }
            tracing::debug!(target = url, error = %status, "SubmitBatch failed");
            let name = format!("RPC_{:?}", status.code()).to_uppercase();
            let transient = matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Internal
            );
            vec![
                if transient {
                    Err(name)
                } else {
                    Err(format!("!{name}"))
                };
                txs.len()
            ]
        }
    };

    let mut again = Vec::new();
    let mut accepted = 0u64;
    let mut rejected_final = 0u64;
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut forget = Vec::new();
    for (tx, status) in txs.into_iter().zip(statuses) {
        let (name, transient) = match status {
            Ok(TxStatus::Accepted) => {
                accepted += 1;
                continue;
            }
            Ok(status) => (status_name(status).to_owned(), status.is_transient()),
            Err(name) => match name.strip_prefix('!') {
                Some(fatal) => (fatal.to_owned(), false),
                None => (name, true),
            },
        };
        *refusals.entry(name).or_default() += 1;
        let can_retry = transient
            && tx.class.expects_commit()
            && attempt + 1 < MAX_ATTEMPTS
            && !shared.closing.load(Ordering::Relaxed);
        if can_retry {
            again.push(tx);
        } else {
            rejected_final += 1;
            if let Some(digest) = tx.tracked_digest {
                forget.push(digest);
            }
        }
    }
    if !forget.is_empty() {
        let mut pending = lock(&shared.pending);
        for digest in forget {
            pending.remove(&digest);
        }
    }
    shared.live.accepted.fetch_add(accepted, Ordering::Relaxed);
    shared
        .live
        .rejected
        .fetch_add(rejected_final, Ordering::Relaxed);
    {
        let mut outcome = lock(&shared.outcome);
        outcome.final_rejected += rejected_final;
        for (name, n) in refusals {
            *outcome.rejected_by_status.entry(name).or_default() += n;
        }
    }
    let hint = (hint_ms > 0).then(|| Duration::from_millis(u64::from(hint_ms)));
    (again, hint)
}

/// Follows Delta finality on one target at a time and matches digests.
async fn watch_finality(
    targets: Vec<String>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut next_height: Option<u64> = None;
    let mut index = 0usize;
    while !*stop.borrow() {
        let url = &targets[index % targets.len()];
        index += 1;
        let stream = async {
            let channel = connect(url).await?;
            let mut client = NodeClient::new(channel)
                .max_decoding_message_size(dualchain_proto::limits::DEFAULT_MAX_GRPC_MESSAGE_BYTES);
            let request = StreamFinalityRequest {
                chain: Chain::Delta as i32,
                from_height: next_height,
                include_tx_digests: true,
            };
            anyhow::Ok(client.stream_finality(request).await?.into_inner())
        };
        let mut stream = match stream.await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target = url.as_str(), error = %e, "finality stream unavailable; trying the next target");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                _ = stop.changed() => return,
            };
            match message {
                Ok(Some(event)) => {
                    next_height = Some(event.height + 1);
                    if event.chain() == Chain::Delta {
                        on_finality(&shared, &event);
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::warn!(target = url.as_str(), error = %status, "finality stream ended; reconnecting");
                    break;
                }
            }
        }
    }
}

fn on_finality(shared: &Shared, event: &dualchain_proto::v1::FinalityEvent) {
    let now = Instant::now();
    shared.blocks.fetch_add(1, Ordering::Relaxed);
    shared
        .chain_txs
        .fetch_add(u64::from(event.tx_count), Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    {
        let mut pending = lock(&shared.pending);
        // Increasing positions, as the stream promises; an out-of-range one matches
        // no digest.
        let mut failures = event.failed_tx_indexes.iter().peekable();
        for (index, digest) in event.tx_digests.iter().enumerate() {
            let failed_here = failures.next_if(|&&i| i as usize == index).is_some();
            let Ok(key) = <[u8; 32]>::try_from(digest.as_slice()) else {
                continue;
            };
            if let Some(tracked) = pending.remove(&key) {
                latencies.push(now.saturating_duration_since(tracked.sent_at));
                failed += u64::from(failed_here);
            }
        }
    }
    if latencies.is_empty() {
        return;
    }
    shared.failed.fetch_add(failed, Ordering::Relaxed);
    *lock(&shared.last_commit) = Some(now);
    // Replayed events (after a reconnect) still count as commits, but their latency
    // includes the outage, so they are kept out of the histogram.
    if !event.replayed {
        let mut recorder = lock(&shared.latency);
        for l in &latencies {
            recorder.record(*l);
        }
    }
    shared
        .live
        .record_commits(now, latencies.len() as u64 - failed, &latencies);
}

/// Follows Delta's consensus commits on one target at a time (the next one on
/// failure) and records each pending transaction's ordering latency once.
async fn watch_ordering(
    targets: Vec<String>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut index = 0usize;
    // Targets that do not serve the call (nodes older than it): never asked again.
    let mut unsupported = vec![false; targets.len()];
    while !*stop.borrow() {
        if unsupported.iter().all(|u| *u) {
            // The run says so once (it sees the readiness signal dropped).
            tracing::debug!("no target serves Node/StreamOrdering");
            return;
        }
        let at = index % targets.len();
        index += 1;
        if unsupported[at] {
            continue;
        }
        let url = &targets[at];
        let stream = async {
            let mut client = NodeClient::new(connect(url).await?)
                .max_decoding_message_size(dualchain_proto::limits::DEFAULT_MAX_GRPC_MESSAGE_BYTES);
            let request = StreamOrderingRequest {
                chain: Chain::Delta as i32,
            };
            anyhow::Ok(client.stream_ordering(request).await?.into_inner())
        };
        let mut stream = match stream.await {
            Ok(s) => s,
            Err(e) => {
                if e.downcast_ref::<tonic::Status>()
                    .is_some_and(|s| s.code() == tonic::Code::Unimplemented)
                {
                    unsupported[at] = true;
                    continue;
                }
                tracing::debug!(target = url.as_str(), error = %e, "ordering stream unavailable; trying the next target");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(300)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                _ = stop.changed() => return,
            };
            match message {
                Ok(Some(event)) => on_ordering(&shared, &event),
                Ok(None) => break,
                Err(status) => {
                    tracing::warn!(target = url.as_str(), error = %status, "ordering stream ended; reconnecting");
                    break;
                }
            }
        }
    }
}

fn on_ordering(shared: &Shared, event: &OrderingEvent) {
    let now = Instant::now();
    shared
        .ordering_missed
        .fetch_add(event.missed_before, Ordering::Relaxed);
    let mut latencies = Vec::new();
    {
        let mut pending = lock(&shared.pending);
        for digest in &event.tx_digests {
            let Ok(key) = <[u8; 32]>::try_from(digest.as_slice()) else {
                continue;
            };
            if let Some(tracked) = pending.get_mut(&key)
                && !tracked.ordered
            {
                tracked.ordered = true;
                latencies.push(now.saturating_duration_since(tracked.sent_at));
            }
        }
    }
    shared.live.record_ordered(now, &latencies);
    let mut recorder = lock(&shared.ordering_latency);
    for l in latencies {
        recorder.record(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(signer: Option<usize>, tag: u8, len: usize) -> PreparedTx {
        let mut bytes = vec![tag; len];
        bytes[0] = tag;
        PreparedTx {
            class: TxClass::Valid,
            bytes: bytes.into(),
            tracked_digest: None,
            signer,
        }
    }

    #[test]
    fn own_transactions_with_failed_receipts_are_final_but_not_committed() {
        let shared = Shared::new(LiveStats::new());
        let sent_at = Instant::now();
        {
            let mut pending = lock(&shared.pending);
            for key in [[1u8; 32], [2; 32], [4; 32]] {
                pending.insert(
                    key,
                    Tracked {
                        sent_at,
                        ordered: false,
                    },
                );
            }
        }
        // Ours at 0 (succeeded), 1 (failed) and 3 (failed); someone else's at 2
        // (failed); a malformed position past the end matches nothing.
        let event = dualchain_proto::v1::FinalityEvent {
            chain: Chain::Delta as i32,
            tx_count: 4,
            tx_digests: [1u8, 2, 3, 4].iter().map(|b| vec![*b; 32]).collect(),
            failed_tx_indexes: vec![1, 2, 3, 9],
            ..Default::default()
        };
        on_finality(&shared, &event);
        assert_eq!(shared.live.committed.load(Ordering::Relaxed), 1);
        assert_eq!(shared.failed.load(Ordering::Relaxed), 2);
        assert!(lock(&shared.pending).is_empty(), "all three are final");
        assert_eq!(lock(&shared.latency).count(), 3, "a failure is final too");
        assert_eq!(shared.chain_txs.load(Ordering::Relaxed), 4);
    }

    fn tags(txs: &[PreparedTx]) -> Vec<u8> {
        txs.iter().map(|t| t.bytes[0]).collect()
    }

    #[test]
    fn an_accounts_transactions_all_go_to_one_target_in_order() {
        let mut lanes = Lanes::new(2);
        // Accounts 0..4 in turn, two rounds: account a's are tags a and 10 + a.
        let mut buffer: VecDeque<PreparedTx> = (0..2u8)
            .flat_map(|round| (0..4u8).map(move |a| tx(Some(a.into()), 10 * round + a, 8)))
            .collect();
        let first = lanes.next_ready(&mut buffer, 4).unwrap();
        assert_eq!(first, 0);
        assert_eq!(tags(&lanes.take(first, 4)), vec![0, 2, 10, 12]);
        let second = lanes.next_ready(&mut buffer, 4).unwrap();
        assert_eq!(second, 1);
        assert_eq!(tags(&lanes.take(second, 4)), vec![1, 3, 11, 13]);
        assert_eq!(
            lanes.next_ready(&mut buffer, 4),
            None,
            "nothing left anywhere"
        );
    }

    #[test]
    fn a_target_with_nothing_staged_passes_its_turn_and_batches_keep_the_byte_limit() {
        let mut lanes = Lanes::new(3);
        // Only account 1 sends: targets 0 and 2 have nothing, target 1 everything.
        let big = MAX_BATCH_BYTES / 2 + 1;
        let mut buffer: VecDeque<PreparedTx> = (0..3u8).map(|i| tx(Some(1), i, big)).collect();
        assert_eq!(lanes.next_ready(&mut buffer, 3), Some(1));
        assert_eq!(
            tags(&lanes.take(1, 3)),
            vec![0],
            "two would exceed the byte limit"
        );
        assert_eq!(lanes.next_ready(&mut buffer, 3), Some(1));
        assert_eq!(tags(&lanes.take(1, 3)), vec![1]);
        // Raw bytes without a signer go round the targets.
        let mut raw: VecDeque<PreparedTx> = (0..3u8).map(|i| tx(None, i, 8)).collect();
        let mut seen = Vec::new();
        while let Some(target) = lanes.next_ready(&mut raw, 1) {
            seen.push((target, tags(&lanes.take(target, 1))));
        }
        seen.sort();
        assert_eq!(seen.len(), 4, "{seen:?}");
        let targets: std::collections::BTreeSet<usize> = seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(targets.len(), 3, "{seen:?}");
    }
}
