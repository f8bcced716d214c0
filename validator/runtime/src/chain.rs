//! One chain of a validator: building its context, opening it (store, genesis,
//! engine, transport), running its task group (consensus driver, block executor)
//! and the supervisor that restarts the group when it fails while the other chain
//! keeps going.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use dualchain_api::{FaultPlan, Health};
use dualchain_consensus::avalanche::AvalancheConfig;
use dualchain_consensus::{BlockSealer, DagBft, DagBftConfig, KvConsensusStore, SealerConfig};
use dualchain_core::Digest;
use dualchain_core::chain_store::{ChainReader, ChainStore, StateChange};
use dualchain_core::crypto::NetworkId;
use dualchain_core::types::{ChainId, ConsensusEngine, Genesis, ValidatorSet, set_digest};
use dualchain_execution::crosschain::CrossChainSetup;
use dualchain_execution::epochs::{committed_set, genesis_records};
use dualchain_execution::keys::{AccountRecord, account_key};
use dualchain_execution::state::genesis_state_changes;
use dualchain_execution::{ExecutionMode, Executor, ExecutorConfig, SignatureVerifier, StateCache};
use dualchain_mempool::{Mempool, MempoolConfig};
use dualchain_net::{EventReceiver, Network, PeerId};
use dualchain_storage::{Column, KvEngine};
use futures::FutureExt;
use prometheus::Registry;
use tokio::sync::{broadcast, mpsc, watch};

use crate::admission_gate::{AdmissionGate, GateConfig};
use crate::avalanche_metrics::AvalancheMetrics;
use crate::clock::Clock;
use crate::context::{
    ChainContext, FINALITY_CHANNEL_CAPACITY, Head, HealthView, Live, NodeIdentity,
    ORDERING_CHANNEL_CAPACITY,
};
use crate::driver::{Driver, Engine};
use crate::executor::{BlockExecutor, SEALER_STATE_KEY};
use crate::follower;
use crate::membership::transport_members;
use crate::metrics::{ChainLabelled, ChainMetrics};
use crate::seams::{Placement, Seams};
use crate::state_sync::{self, Bootstrap};
use crate::votes::VoteBook;

/// Committed sub-DAGs (and certificates, snapshot requests) queued for the block
/// executor. When the queue is full the driver stops proposing and stops taking
/// network input until the executor catches up: this capacity *is* the limit between
/// consensus and execution.
pub const EXEC_QUEUE_CAPACITY: usize = 32;
/// Executor events (votes, acknowledgements) queued for the driver.
pub const EXEC_EVENTS_CAPACITY: usize = 256;
/// Vertex signature verdicts a node's chain keeps (about ten minutes of vertices of
/// a 100-validator committee at ten rounds per second would be 600k; a verdict is
/// only needed between pre-verification and intake, so far fewer suffice).
pub const VERTEX_VERDICT_CAPACITY: usize = 65_536;

/// The consensus window unless configured: ten minutes.
pub const DEFAULT_CONSENSUS_WINDOW_MS: u64 = 600_000;

/// How long a vertex stays orderable below the last decided slot (the engine's
/// `retention_rounds`, at least 64 rounds): older ones are never committed, and our
/// own are given back to the mempool (`Output::Orphaned`). Part of the committed
/// sequence, so the same on every validator (it depends on the genesis only).
pub const ORDERING_WINDOW_MS: u64 = 8_000;

/// Per-chain settings of a validator that are not seams.
#[derive(Clone, Debug)]
pub struct ChainOptions {
    pub mempool_capacity: usize,
    pub execution_mode: ExecutionMode,
    pub snapshot_dir: Option<PathBuf>,
    pub snapshot_interval_blocks: u64,
    /// How far back (ms) peers' consensus stores reach: the engine keeps this much
    /// of rounds for its peers, and a chain further behind catches up by blocks.
    pub consensus_window_ms: u64,
    /// The API's admission limits under overload ([`crate::admission_gate`]).
    pub admission: GateConfig,
    /// How the chain starts when its data directory is empty ([`crate::state_sync`]).
    pub bootstrap: Bootstrap,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            mempool_capacity: MempoolConfig::default().max_txs,
            execution_mode: ExecutionMode::Parallel,
            snapshot_dir: None,
            snapshot_interval_blocks: 0,
            consensus_window_ms: DEFAULT_CONSENSUS_WINDOW_MS,
            admission: GateConfig::default(),
            bootstrap: Bootstrap::default(),
        }
    }
}

/// Builds the state of `chain` that outlives task restarts; registers its metrics.
pub fn build_context<S: Seams>(
    chain: ChainId,
    identity: Arc<NodeIdentity>,
    seams: Arc<S>,
    options: ChainOptions,
    registry: &Registry,
) -> anyhow::Result<Arc<ChainContext<S>>> {
    let (executor, verifier) = block_executor(
        chain,
        &identity.genesis,
        &identity.validators,
        identity.network(),
        options.execution_mode,
    )?;
    let executor = Arc::new(executor);
    let mempool = Arc::new(
        Mempool::with_metrics(
            chain,
            MempoolConfig {
                max_txs: options.mempool_capacity,
                ..MempoolConfig::default()
            },
            registry,
        )
        .context("building the mempool")?,
    );
    registry.register(Box::new(ChainLabelled::new(
        Arc::new(Mutex::new(executor.registry().clone())),
        chain,
        "execution",
    )?))?;
    let net_registry = Arc::new(Mutex::new(Registry::new()));
    registry.register(Box::new(ChainLabelled::new(
        net_registry.clone(),
        chain,
        "net",
    )?))?;
    let metrics = ChainMetrics::register(registry, chain)?;
    let avalanche_metrics = Mutex::new(AvalancheMetrics::register(registry, chain)?);
    let block_time_ms = identity.genesis.chain(chain).block_time_ms;
    metrics
        .block_time_seconds
        .set(block_time_ms as f64 / 1000.0);
    let (finality, _) = broadcast::channel(FINALITY_CHANNEL_CAPACITY);
    let (ordering, _) = broadcast::channel(ORDERING_CHANNEL_CAPACITY);
    let clock = seams.clock();
    let identity_set = identity.validators.clone();
    Ok(Arc::new(ChainContext {
        chain,
        peer_id: PeerId::of(identity.key.public()),
        block_time_ms,
        vertex_verdicts: seams.vertex_verdicts(chain),
        started_at_unix_ms: clock.unix_ms(),
        identity,
        seams,
        clock,
        mempool,
        verifier,
        gate: AdmissionGate::new(GateConfig {
            // The floor never asks for more than the pool holds.
            min_backlog: options.admission.min_backlog.min(options.mempool_capacity),
            ..options.admission
        }),
        executor,
        metrics,
        avalanche_metrics,
        partitioned: AtomicBool::new(false),
        net_registry,
        snapshot_dir: options.snapshot_dir,
        snapshot_interval_blocks: options.snapshot_interval_blocks,
        consensus_window_ms: options.consensus_window_ms,
        bootstrap: options.bootstrap,
        finality,
        ordering,
        head: Mutex::new(Head::default()),
        round: AtomicU64::new(0),
        connected_peers: AtomicU64::new(0),
        reachable_stake: AtomicU64::new(0),
        cross_chain_paused: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        running: AtomicBool::new(false),
        catching_up: AtomicBool::new(false),
        following: AtomicBool::new(false),
        state_syncing: AtomicBool::new(false),
        restarts: AtomicU64::new(0),
        last_restart_unix_ms: AtomicU64::new(0),
        last_failure: Mutex::new(String::new()),
        health: Mutex::new(HealthView {
            health: Health::Stopped,
            reason: "starting".into(),
        }),
        committee: Mutex::new((identity_set.clone(), set_digest(&identity_set))),
        left_at_epoch: std::sync::OnceLock::new(),
        live: Mutex::new(Live::default()),
        faults: Mutex::new(FaultPlan::default()),
        faults_generation: AtomicU64::new(0),
        clock_skew_ms: AtomicI64::new(0),
    }))
}

/// What the executors of both chains need for cross-chain operations: the genesis
/// parameters, the validator set of epoch 0 (one validator set runs both chains; the
/// sets of later epochs are read from each chain's own records), the epoch length and
/// the network.
pub fn cross_chain_setup(identity: &NodeIdentity) -> CrossChainSetup {
    cross_chain_setup_of(&identity.genesis, &identity.validators, identity.network())
}

/// The executor of `chain` as the genesis defines it (its signature rule, its
/// cross-chain setup), with the verifier it checks signatures through: one recipe for
/// a validator's chain and for whoever re-executes blocks (replay, block sync), so
/// they can never execute by different rules.
pub fn block_executor(
    chain: ChainId,
    genesis: &Genesis,
    validators: &ValidatorSet,
    network: NetworkId,
    mode: ExecutionMode,
) -> anyhow::Result<(Executor, Arc<SignatureVerifier>)> {
    let verifier = Arc::new(SignatureVerifier::new(
        network,
        genesis.allow_unsigned_transactions,
    ));
    let executor = Executor::new(
        chain,
        ExecutorConfig {
            mode,
            ..ExecutorConfig::default()
        },
        verifier.clone(),
    )
    .context("building the executor")?
    .with_cross_chain(Arc::new(cross_chain_setup_of(genesis, validators, network)));
    Ok((executor, verifier))
}

/// [`cross_chain_setup`] from the genesis, its validator set and the network, for
/// whoever executes blocks without being a validator (replay, block sync).
pub fn cross_chain_setup_of(
    genesis: &Genesis,
    validators: &ValidatorSet,
    network: NetworkId,
) -> CrossChainSetup {
    CrossChainSetup::new(
        genesis.cross_chain.clone(),
        BTreeMap::from([(0, validators.clone())]),
        network,
    )
    .with_epoch_length(genesis.epoch_length_alpha_blocks)
}

/// The state a chain starts from: on both chains the validator set of epoch 0 and its
/// epoch record; Delta's funded accounts; Alpha's sAX allocations (account records on
/// Alpha).
pub fn genesis_changes(
    chain: ChainId,
    genesis: &Genesis,
    validators: &ValidatorSet,
) -> Vec<StateChange> {
    let mut changes: Vec<StateChange> = genesis_records(validators)
        .into_iter()
        .map(|(key, value)| (key.state_key().to_vec(), Some(value)))
        .collect();
    match chain {
        ChainId::Delta => changes.extend(genesis_state_changes(genesis)),
        ChainId::Alpha => {
            for allocation in &genesis.sax_allocations {
                let record = AccountRecord {
                    native: allocation.amount,
                    ..AccountRecord::default()
                };
                changes.push((
                    account_key(&allocation.address).to_vec(),
                    record.encode_value(),
                ));
            }
        }
    }
    changes
}

/// Engine parameters for `chain` under `genesis`: the chain's defaults, with round
/// pacing scaled down when the genesis block time is shorter than the defaults
/// assume (a time-scaled devnet), and a store retention of about ten minutes of
/// rounds so a restarted validator can fetch what it missed from its peers.
pub fn engine_config(chain: ChainId, genesis: &Genesis, genesis_digest: Digest) -> DagBftConfig {
    let defaults = DagBftConfig::for_chain(chain);
    let block_time = genesis.chain(chain).block_time_ms.max(1);
    let delay = defaults.min_round_delay_ms.min((block_time / 10).max(10));
    let mut cfg = defaults.paced(delay);
    cfg.epoch_seed = genesis_digest;
    cfg.network = NetworkId(genesis_digest);
    cfg.genesis_time_ms = genesis.genesis_time_ms;
    // The ordering window in time, not rounds: a faster pace must not orphan a
    // vertex whose commit was held up for a moment (a RocksDB flush, a busy core).
    cfg.retention_rounds = retention_rounds(ORDERING_WINDOW_MS, delay);
    cfg.store_retention_rounds = retention_rounds(DEFAULT_CONSENSUS_WINDOW_MS, delay);
    // A restarted node must accept its peers' current rounds to learn what to fetch.
    cfg.max_round_lookahead = cfg.store_retention_rounds;
    // As many transactions per vertex as peers will decode (the vertex limit).
    cfg.max_batch_txs = dualchain_core::types::vertex_limits::MAX_VERTEX_TXS;
    cfg.max_queued_txs = 8 * cfg.max_batch_txs;
    cfg.ordering = match genesis.chain(chain).consensus {
        ConsensusEngine::DagBft => dualchain_consensus::Ordering::DagBft,
        ConsensusEngine::Avalanche => dualchain_consensus::Ordering::Avalanche(AvalancheConfig {
            // Polls at five times the round pace: β polls fit in a few rounds.
            min_poll_interval_ms: (delay / 5).clamp(2, 100),
            ..AvalancheConfig::default()
        }),
    };
    cfg
}

/// Rounds the engine keeps for its peers: a `window_ms` of rounds at the fastest pace
/// (`round_delay_ms` each), and never fewer than 64.
fn retention_rounds(window_ms: u64, round_delay_ms: u64) -> u64 {
    (window_ms / round_delay_ms.max(1)).max(64)
}

/// The consensus engine of `set`'s epoch over the chain's database: its own store
/// (every epoch starts at round 0), its committee and leader seed.
pub fn open_engine<S: Seams>(
    ctx: &ChainContext<S>,
    db: S::Engine,
    set: Arc<ValidatorSet>,
) -> anyhow::Result<Engine<S::Engine>> {
    let (chain, epoch) = (ctx.chain, set.epoch());
    let me = set.index_of(ctx.key().public()).with_context(|| {
        format!(
            "this validator is not in the {chain} validator set of epoch {epoch}; \
             a validator that left the set cannot run its consensus"
        )
    })?;
    let mut cfg = engine_config(chain, ctx.genesis(), ctx.identity.genesis_digest);
    cfg.epoch_seed = dualchain_core::types::epoch_seed(ctx.identity.genesis_digest, epoch);
    cfg.store_retention_rounds = retention_rounds(ctx.consensus_window_ms, cfg.min_round_delay_ms);
    cfg.max_round_lookahead = cfg.store_retention_rounds;
    DagBft::open(
        cfg,
        me,
        ctx.key().clone(),
        set,
        KvConsensusStore::new(db, epoch),
        ctx.vertex_verdicts.clone(),
    )
    .with_context(|| format!("opening the {chain} consensus engine of epoch {epoch}"))
}

/// The validator set of `epoch` in the chain's committed records, with the keys of
/// members this node already holds (see [`ValidatorSet::with_known_keys`]).
pub fn recorded_set<S: Seams>(
    ctx: &ChainContext<S>,
    cache: &StateCache<S::Engine>,
    epoch: u64,
) -> anyhow::Result<Option<ValidatorSet>> {
    let set = committed_set(cache, epoch)
        .with_context(|| format!("reading the validator set of epoch {epoch}"))?;
    Ok(set.map(|s| s.with_known_keys(ctx.validators())))
}

/// The chain's committee in `epoch` (the sealer's: the epoch of its next block) and
/// the previous epoch's, from the chain's committed records.
fn committees<S: Seams>(
    ctx: &ChainContext<S>,
    cache: &StateCache<S::Engine>,
    epoch: u64,
) -> anyhow::Result<(Arc<ValidatorSet>, Option<Arc<ValidatorSet>>)> {
    let set = |epoch| recorded_set(ctx, cache, epoch);
    let current = set(epoch)?.with_context(|| {
        format!("the chain's records hold no validator set for its epoch {epoch}")
    })?;
    let previous = match epoch {
        0 => None,
        _ => set(epoch - 1)?.map(Arc::new),
    };
    Ok((Arc::new(current), previous))
}

/// Runs `f` (blocking: opening a database, joining a thread) where the placement
/// wants it.
async fn blocking<T: Send + 'static>(
    placement: Placement,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    match placement {
        Placement::Threads => Ok(tokio::task::spawn_blocking(f).await?),
        Placement::Inline => Ok(f()),
    }
}

/// The chain store opened (and initialised from genesis on first start) and checked
/// to belong to this network.
fn open_store<S: Seams>(
    ctx: &ChainContext<S>,
    db: S::Engine,
) -> anyhow::Result<ChainStore<S::Engine>> {
    let chain = ctx.chain;
    let mut store = ChainStore::open(db, chain).context("opening the chain store")?;
    if store.head().is_none() {
        let changes = genesis_changes(chain, ctx.genesis(), ctx.validators());
        store
            .init_genesis(ctx.identity.genesis_digest, &changes)
            .context("writing the genesis state")?;
        tracing::info!(%chain, root = %store.state_root(), "initialised from genesis");
    }
    let head = store.head().expect("initialised above");
    if head.height == 0 && head.block_digest != ctx.identity.genesis_digest.0 {
        bail!(
            "the {chain} database belongs to another genesis (its genesis digest differs); use a fresh data directory"
        );
    }
    let (block_timestamp_ms, epoch) = store
        .get_block(head.height)?
        .map_or((ctx.genesis().genesis_time_ms, 0), |b| {
            (b.header.timestamp_ms, b.header.epoch)
        });
    ctx.set_head(Head {
        height: head.height,
        digest: Digest(head.block_digest),
        state_root: Digest(head.state_root),
        epoch,
        block_timestamp_ms,
        committed_at_unix_ms: ctx.head().committed_at_unix_ms,
    });
    ctx.metrics.height.set(head.height as i64);
    ctx.metrics.finalized_height.set(head.height as i64);
    Ok(store)
}

/// The sealer parameters of the chain in `epoch`.
pub(crate) fn sealer_config<S: Seams>(ctx: &ChainContext<S>, epoch: u64) -> SealerConfig {
    SealerConfig {
        chain: ctx.chain,
        epoch,
        block_time_ms: ctx.block_time_ms,
        first_height: 1,
        genesis_parent: ctx.identity.genesis_digest,
        ..SealerConfig::for_chain(ctx.chain)
    }
}

/// The sealer resumed from the state written with the last block.
fn open_sealer<S: Seams>(ctx: &ChainContext<S>, db: &S::Engine) -> anyhow::Result<BlockSealer> {
    let cfg = sealer_config(ctx, ctx.validators().epoch());
    Ok(match db.get(Column::Meta, SEALER_STATE_KEY)? {
        Some(bytes) => BlockSealer::from_state_bytes(cfg, &bytes)
            .context("the persisted sealer state is corrupt")?,
        None => BlockSealer::new(cfg)?,
    })
}

/// Consensus and execution must describe one history: every commit the engine
/// forgot was executed, and the executor is not ahead of consensus.
fn check_consistent(
    chain: ChainId,
    engine: &Engine<impl KvEngine>,
    sealer: &BlockSealer,
    head_height: u64,
) -> anyhow::Result<()> {
    let executed_next = sealer.next_sequence();
    if executed_next > engine.next_sequence() {
        bail!(
            "the {chain} chain store holds blocks through height {head_height} (commit {executed_next}) \
             but the consensus store knows of only {} commits: the database was imported offline \
             from a snapshot or its consensus records were lost. To join from a snapshot, start \
             with an empty data directory and `--bootstrap-from FILE` (or `peers`): the node \
             verifies it and follows the chain from its height",
            engine.next_sequence()
        );
    }
    if let Some(through) = engine.executed_through()
        && through >= executed_next
    {
        bail!(
            "the {chain} consensus store forgot commit {through} as executed, but the chain store \
             holds commits only up to {}: the two disagree; the database is damaged",
            executed_next.saturating_sub(1)
        );
    }
    Ok(())
}

/// Opens the chain (store, genesis, engine, transport) and runs its task group until
/// shutdown or failure. A chain further behind than the consensus window first
/// catches up by block sync to an epoch boundary, then opens again from there
/// ([`crate::follower`]).
pub async fn run_chain<S: Seams>(
    ctx: Arc<ChainContext<S>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let chain = ctx.chain;
    let placement = ctx.seams.placement();
    let mut transport = sync_state_if_wanted(&ctx, &shutdown).await?;
    if let Some((net, _)) = transport.take_if(|_| *shutdown.borrow()) {
        ctx.seams.stop_network(net).await;
        return Ok(());
    }
    let seams = ctx.seams.clone();
    let db = blocking(placement, move || seams.open_store(chain))
        .await?
        .with_context(|| format!("opening the {chain} database"))?;
    loop {
        match run_chain_on(ctx.clone(), db.clone(), shutdown.clone(), transport.take()).await? {
            Ran::Stopped => return Ok(()),
            Ran::CaughtUp(net, events) => transport = Some((net, events)),
        }
    }
}

/// Fills an empty database from a snapshot when [`state_sync::wanted`] says so, on a
/// transport started with the genesis set and returned for the chain to keep (it
/// stops it on failure). Health says `DEGRADED` ("state sync") meanwhile.
async fn sync_state_if_wanted<S: Seams>(
    ctx: &Arc<ChainContext<S>>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Option<(Arc<S::Net>, EventReceiver)>> {
    let Some((db_dir, options)) = ctx.seams.store_location(ctx.chain) else {
        return Ok(None);
    };
    if !state_sync::wanted(ctx, &db_dir)? {
        return Ok(None);
    }
    let (net, mut events) = start_transport(ctx, ctx.validators())?;
    let mut stop = shutdown.clone();
    ctx.state_syncing.store(true, Ordering::Release);
    let synced = tokio::select! {
        // Biased, here and in every select of the runtime: tokio's default branch
        // choice is random and unseeded, which would make simulated runs differ.
        biased;
        _ = stop.wait_for(|stopping| *stopping) => Ok(()),
        synced = state_sync::draining(
            &mut events,
            state_sync::bootstrap(ctx, &net, &db_dir, &options),
        ) => synced.map(drop),
    };
    ctx.state_syncing.store(false, Ordering::Release);
    match synced {
        Ok(()) => Ok(Some((net, events))),
        Err(e) => {
            ctx.seams.stop_network(net).await;
            Err(e)
        }
    }
}

/// How one opening of a chain ended.
enum Ran<N: ?Sized> {
    Stopped,
    /// Block sync reached an epoch boundary: open again in the next epoch, on the
    /// same transport.
    CaughtUp(Arc<N>, EventReceiver),
}

/// One opening of the chain over its database `db`.
async fn run_chain_on<S: Seams>(
    ctx: Arc<ChainContext<S>>,
    db: S::Engine,
    mut shutdown: watch::Receiver<bool>,
    transport: Option<(Arc<S::Net>, EventReceiver)>,
) -> anyhow::Result<Ran<S::Net>> {
    let chain = ctx.chain;
    let placement = ctx.seams.placement();
    let store = open_store(&ctx, db.clone())?;
    let head = store.head().expect("opened");
    let sealer = open_sealer(&ctx, &db)?;
    let cache = StateCache::new(db.clone(), head.height);
    let (committee, previous) = committees(&ctx, &cache, sealer.epoch())?;
    ctx.set_committee(committee.clone());
    let us = ctx.key().public();
    let member = committee.index_of(us).is_some();
    if !member && previous.as_ref().is_some_and(|p| p.index_of(us).is_some()) {
        if let Some((net, _)) = transport {
            ctx.seams.stop_network(net).await;
        }
        stay_out(&ctx, store.reader(), committee.epoch(), shutdown).await?;
        return Ok(Ran::Stopped);
    }

    let (net, mut events) = match transport {
        // Kept from the catch-up or state sync: rebinding the port at once could fail.
        Some(transport) => transport,
        None => start_transport(&ctx, &committee)?,
    };
    crate::membership::publish_expected(&ctx, &cache)?;
    let expected = ctx.identity.expected.current();
    net.set_members(transport_members(
        &committee,
        previous.as_deref(),
        &expected,
    ));

    // A validator that was never in the set (it joins) follows the chain by blocks
    // until an epoch's set holds it, then opens its engine at that boundary.
    if !member {
        tracing::info!(%chain, epoch = committee.epoch(), height = head.height, "not in this epoch's validator set: following the chain by block sync until a set holds this validator");
    }
    let follow = !member
        || follower::should_follow(
            &ctx,
            &db,
            (&net, &mut events),
            store.reader(),
            &committee,
            head.height,
        )
        .await?;
    if follow {
        drop(store);
        ctx.following.store(true, Ordering::Release);
        let followed = follower::follow(
            &ctx,
            db.clone(),
            &net,
            &mut events,
            &committee,
            &mut shutdown,
        )
        .await;
        ctx.following.store(false, Ordering::Release);
        *ctx.live() = Live::default();
        return match followed {
            Ok(follower::Followed::EpochEnded) => Ok(Ran::CaughtUp(net, events)),
            Ok(follower::Followed::Shutdown) => {
                ctx.seams.stop_network(net).await;
                Ok(Ran::Stopped)
            }
            Err(e) => {
                ctx.seams.stop_network(net).await;
                Err(e)
            }
        };
    }
    let engine = match open_engine(&ctx, db.clone(), committee.clone())
        .and_then(|engine| check_consistent(chain, &engine, &sealer, head.height).map(|()| engine))
    {
        Ok(engine) => engine,
        Err(e) => {
            ctx.seams.stop_network(net).await;
            return Err(e);
        }
    };

    let (exec_tx, exec_rx) = mpsc::channel(EXEC_QUEUE_CAPACITY);
    let (events_tx, events_rx) = mpsc::channel(EXEC_EVENTS_CAPACITY);
    ctx.metrics.exec_queue_depth.set(0);
    let reader = store.reader();
    let executor = BlockExecutor::new(ctx.clone(), store, cache, sealer, events_tx);
    let exec_task = executor.spawn(placement, exec_rx)?;

    *ctx.live() = Live {
        reader: Some(reader),
        exec: Some(exec_tx.clone()),
        faults: Some(net.faults().clone()),
    };
    ctx.running.store(true, Ordering::Release);
    tracing::info!(%chain, height = head.height, "chain running");

    let votes = VoteBook::new(chain, committee, ctx.identity.network(), 0).with_previous(previous);
    let driver = Driver::new(
        ctx.clone(),
        engine,
        net.clone(),
        events,
        exec_tx,
        events_rx,
        votes,
    );
    // The driver runs as a task of its own, so a panic in it (a bug in the engine or
    // a store) fails this chain's task group like an error: the cleanup below runs and
    // the supervisor restarts this chain while the other goes on.
    let driven = DriverTask(tokio::spawn(driver.run(shutdown)))
        .finish(chain)
        .await;

    ctx.running.store(false, Ordering::Release);
    *ctx.live() = Live::default();
    ctx.seams.stop_network(net).await;
    let executed = exec_task.join(placement).await;
    match (driven, executed) {
        (Err(e), Err(exec)) => Err(exec.context(format!("{e:#}"))),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), result) => result.map(|()| Ran::Stopped),
    }
}

/// Starts the chain's transport among `committee`; its metrics replace the last
/// transport's.
fn start_transport<S: Seams>(
    ctx: &ChainContext<S>,
    committee: &ValidatorSet,
) -> anyhow::Result<(Arc<S::Net>, EventReceiver)> {
    let chain = ctx.chain;
    let net_registry = Registry::new();
    let started = ctx
        .seams
        .start_network(
            chain,
            ctx.key(),
            ctx.identity.network(),
            committee,
            &net_registry,
        )
        .with_context(|| format!("starting the {chain} transport"))?;
    *ctx.net_registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = net_registry;
    Ok(started)
}

/// The chain of a validator that the set of `epoch` left out, opened again (after a
/// restart): its blocks up to the boundary stay readable through the API, it takes
/// no transactions and runs no consensus or transport, and its health says why,
/// until the node stops. (Peers stop admitting a leaver one epoch after it left, so
/// it could not follow for long; a validator that was never a member follows.)
async fn stay_out<S: Seams>(
    ctx: &ChainContext<S>,
    reader: ChainReader<S::Engine>,
    epoch: u64,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    *ctx.live() = Live {
        reader: Some(reader),
        ..Live::default()
    };
    tracing::warn!(chain = %ctx.chain, epoch, height = ctx.head().height, "not in the validator set of this epoch: the chain stays stopped at its last block");
    ctx.mark_left(epoch);
    let _ = shutdown.wait_for(|stop| *stop).await;
    Ok(())
}

/// The consensus driver's task, aborted if the chain's future is dropped (a stopping
/// node), so it never outlives its task group.
struct DriverTask(tokio::task::JoinHandle<anyhow::Result<()>>);

impl DriverTask {
    /// The driver's result; a panic becomes an error naming the panic.
    async fn finish(mut self, chain: ChainId) -> anyhow::Result<()> {
        match (&mut self.0).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(anyhow::anyhow!(
                "the {chain} consensus driver panicked: {}",
                panic_message(e.into_panic().as_ref())
            )),
            Err(e) => Err(anyhow::anyhow!(
                "the {chain} consensus driver was cancelled: {e}"
            )),
        }
    }
}

impl Drop for DriverTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic's payload (`panic!` with a message gives `&str` or `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Moves the chain's data aside after a proven divergence ([`crate::reseed`]);
/// `None` where the chain has no files (the simulator).
fn reseed_after<S: Seams>(ctx: &ChainContext<S>) -> anyhow::Result<Option<std::path::PathBuf>> {
    let Some((db_dir, _)) = ctx.seams.store_location(ctx.chain) else {
        return Ok(None);
    };
    crate::reseed::set_aside(&db_dir, ctx.snapshot_dir.as_deref(), ctx.unix_ms()).map(Some)
}

/// Runs `ctx`'s chain and restarts it with exponential backoff (1 s → 30 s) when it
/// fails, marking it degraded; returns on shutdown. A chain that diverged from the
/// certified one is re-seeded instead ([`crate::reseed`]).
pub async fn supervise<S: Seams>(ctx: Arc<ChainContext<S>>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = ctx.clock.monotonic_ms();
        // A panic while opening or closing the chain (the driver's own panics are
        // errors already) fails this chain alone too.
        let result = AssertUnwindSafe(run_chain(ctx.clone(), shutdown.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                ctx.running.store(false, Ordering::Release);
                *ctx.live() = Live::default();
                Err(anyhow::anyhow!(
                    "the {} chain panicked: {}",
                    ctx.chain,
                    panic_message(payload.as_ref())
                ))
            });
        if *shutdown.borrow() {
            if let Err(e) = result {
                tracing::warn!(chain = %ctx.chain, error = %format!("{e:#}"), "chain stopped with an error during shutdown");
            }
            ctx.set_health(Health::Stopped, "stopped");
            return;
        }
        let fell_behind = result.as_ref().err().and_then(|e| {
            e.chain()
                .find_map(|c| c.downcast_ref::<follower::FellBehind>())
                .map(ToString::to_string)
        });
        if let Some(behind) = fell_behind {
            // Not a failure: the chain reopens at once and follows by block sync.
            ctx.set_health(
                Health::Degraded,
                format!("catching up by block sync: {behind}"),
            );
            tracing::info!(chain = %ctx.chain, "reopening the chain to catch up by block sync");
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => {
                    ctx.set_health(Health::Stopped, "stopped");
                    return;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        let diverged = result.as_ref().err().and_then(crate::reseed::diverged_of);
        let mut reason = match result {
            Ok(()) => "the chain's task group ended unexpectedly".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if let Some(diverged) = diverged {
            match reseed_after(&ctx) {
                // Not a failure of this run: the next one starts from an empty
                // database (state sync or block sync from genesis).
                Ok(Some(kept)) => {
                    ctx.metrics.reseeds.inc();
                    ctx.set_health(
                        Health::Degraded,
                        format!(
                            "re-seeding: {diverged}; its data was moved to {}",
                            kept.display()
                        ),
                    );
                    tracing::warn!(chain = %ctx.chain, %diverged, kept = %kept.display(), "chain diverged from the certified one; data moved aside, re-seeding");
                    continue;
                }
                Ok(None) => {}
                Err(e) => reason = format!("{reason}; not re-seeded: {e:#}"),
            }
        }
        ctx.restarts.fetch_add(1, Ordering::Relaxed);
        ctx.last_restart_unix_ms
            .store(ctx.unix_ms(), Ordering::Relaxed);
        ctx.metrics.restarts.inc();
        ctx.set_last_failure(&reason);
        ctx.set_health(
            Health::Degraded,
            format!("restarting after failure: {reason}"),
        );
        tracing::error!(chain = %ctx.chain, error = %reason, backoff_s = backoff.as_secs(), "chain failed; restarting");
        if ctx.clock.monotonic_ms().saturating_sub(started) > 60_000 {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => {
                ctx.set_health(Health::Stopped, "stopped");
                return;
            }
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::types::vertex_limits;

    #[test]
    fn proposals_fit_what_peers_decode_and_pacing_follows_the_block_time() {
        let mut genesis = Genesis {
            network: "t".into(),
            genesis_time_ms: 0,
            epoch_length_alpha_blocks: 240,
            allow_unsigned_transactions: false,
            alpha: dualchain_core::types::ChainParams::alpha_default(),
            delta: dualchain_core::types::ChainParams::delta_default(),
            validators: vec![],
            accounts: vec![],
            sax_allocations: vec![],
            cross_chain: Default::default(),
        };
        genesis.delta.block_time_ms = 300;
        for chain in [ChainId::Alpha, ChainId::Delta] {
            let cfg = engine_config(chain, &genesis, Digest::ZERO);
            assert!(cfg.max_batch_txs <= vertex_limits::MAX_VERTEX_TXS);
            assert!(cfg.max_round_lookahead >= cfg.store_retention_rounds);
        }
        let delta = engine_config(ChainId::Delta, &genesis, Digest::ZERO);
        assert_eq!(delta.min_round_delay_ms, 30);
        let alpha = engine_config(ChainId::Alpha, &genesis, Digest::ZERO);
        assert_eq!(
            alpha.min_round_delay_ms,
            DagBftConfig::for_chain(ChainId::Alpha).min_round_delay_ms
        );
    }
}
