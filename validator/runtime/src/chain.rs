//! One chain of a validator: its shared state, its task group (consensus driver,
//! executor thread, transport) and the supervisor that restarts the group when it
//! fails while the other chain keeps going.

pub mod api;
pub mod driver;
pub mod exec;
pub mod journal;
pub mod metrics;
pub mod shared;
pub mod votes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dualchain_consensus::{
    BlockSealer, DagBft, DagBftConfig, DirectVerifier, KvConsensusStore, SealerConfig,
};
use dualchain_core::Digest;
use dualchain_core::chain_store::{ChainStore, StateChange};
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{ChainId, Genesis, ValidatorIndex, ValidatorSet};
use dualchain_execution::records::{RecordKey, RecordKind};
use dualchain_execution::state::genesis_state_changes;
use dualchain_execution::{ExecutionMode, Executor, ExecutorConfig, SignatureVerifier, StateCache};
use dualchain_mempool::{Mempool, MempoolConfig};
use dualchain_net::{Membership, NetConfig, Network, PeerAddress, PeerId, QuicNetwork};
use dualchain_proto::v1;
use dualchain_storage::{Column, KvEngine, SyncPolicy};
use dualchain_store::snapshot::SnapshotPolicy;
use dualchain_store::{RocksEngine, StoreOptions};
use prometheus::Registry;
use tokio::sync::{broadcast, mpsc, watch};

use self::driver::Driver;
use self::exec::BlockExecutor;
use self::journal::{BufferedEngine, SEALER_STATE_KEY, read_journal};
use self::metrics::{ChainLabelled, ChainMetrics};
use self::shared::{ChainShared, FINALITY_CHANNEL_CAPACITY, Head, Live, unix_ms};
use self::votes::VoteBook;

/// Identity and parameters every chain of the node shares.
pub struct NodeIdentity {
    pub genesis: Arc<Genesis>,
    pub genesis_digest: Digest,
    pub validators: Arc<ValidatorSet>,
    pub me: ValidatorIndex,
    pub key: Arc<ValidatorKeypair>,
}

/// Where and how one chain runs.
#[derive(Clone, Debug)]
pub struct ChainRunConfig {
    pub data_dir: PathBuf,
    pub p2p_listen: SocketAddr,
    pub peers: Vec<PeerAddress>,
    pub sync_policy: SyncPolicy,
    pub snapshot_interval_blocks: u64,
}

/// Builds the state of `chain` that outlives task restarts; registers its metrics.
pub fn build_shared(
    chain: ChainId,
    id: &NodeIdentity,
    mempool_capacity: usize,
    execution_mode: ExecutionMode,
    snapshot_dir: PathBuf,
    registry: &Registry,
) -> anyhow::Result<Arc<ChainShared>> {
    let verifier = Arc::new(SignatureVerifier::for_genesis(&id.genesis));
    let mempool = Arc::new(
        Mempool::with_metrics(
            chain,
            MempoolConfig {
                max_txs: mempool_capacity,
                ..MempoolConfig::default()
            },
            registry,
        )
        .context("building the mempool")?,
    );
    let executor = Arc::new(
        Executor::new(
            chain,
            ExecutorConfig {
                mode: execution_mode,
                ..ExecutorConfig::default()
            },
            verifier.clone(),
        )
        .context("building the executor")?,
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
    let (finality, _) = broadcast::channel(FINALITY_CHANNEL_CAPACITY);
    Ok(Arc::new(ChainShared {
        chain,
        genesis: id.genesis.clone(),
        genesis_digest: id.genesis_digest,
        validators: id.validators.clone(),
        me: id.me,
        key: id.key.clone(),
        peer_id: PeerId::of(id.key.public()),
        mempool,
        verifier,
        executor,
        metrics,
        net_registry,
        started_at_unix_ms: unix_ms(),
        block_time_ms: id.genesis.chain(chain).block_time_ms,
        snapshot_dir,
        finality,
        head: Mutex::new(Head::default()),
        round: AtomicU64::new(0),
        connected_peers: AtomicU64::new(0),
        paused: AtomicBool::new(false),
        running: AtomicBool::new(false),
        catching_up: AtomicBool::new(false),
        restarts: AtomicU64::new(0),
        last_restart_unix_ms: AtomicU64::new(0),
        health: Mutex::new(shared::HealthView {
            health: v1::Health::Stopped as i32,
            reason: "starting".into(),
        }),
        live: Mutex::new(Live::default()),
        faults: Mutex::new(v1::FaultInjection {
            chain: shared::proto_chain(chain) as i32,
            ..Default::default()
        }),
        faults_generation: AtomicU64::new(0),
    }))
}

/// The state a chain starts from: Delta's funded accounts, Alpha's validator-set
/// record of epoch 0.
pub fn genesis_changes(
    chain: ChainId,
    genesis: &Genesis,
    validators: &ValidatorSet,
) -> Vec<StateChange> {
    match chain {
        ChainId::Delta => genesis_state_changes(genesis),
        ChainId::Alpha => {
            let key = RecordKey {
                kind: RecordKind::ValidatorSet,
                id: {
                    let mut id = [0u8; 32];
                    id[..8].copy_from_slice(&validators.epoch().to_be_bytes());
                    id
                },
            };
            vec![(
                key.state_key().to_vec(),
                Some(validators.to_canonical_bytes()),
            )]
        }
    }
}

/// Engine parameters for `chain` under `genesis`: the chain's defaults, with round
/// pacing scaled down when the genesis block time is shorter than the defaults
/// assume (a time-scaled devnet), and a store retention of about ten minutes of
/// rounds so a restarted validator can fetch what it missed from its peers.
pub fn engine_config(chain: ChainId, genesis: &Genesis, genesis_digest: Digest) -> DagBftConfig {
    let mut cfg = DagBftConfig::for_chain(chain);
    let block_time = genesis.chain(chain).block_time_ms.max(1);
    let delay = cfg.min_round_delay_ms.min((block_time / 10).max(10));
    cfg.epoch_seed = genesis_digest;
    cfg.genesis_time_ms = genesis.genesis_time_ms;
    cfg.min_round_delay_ms = delay;
    cfg.leader_timeout_ms = delay * 6;
    cfg.resend_timeout_ms = delay * 15;
    cfg.sync_retry_ms = delay * 3;
    cfg.backpressure_step_ms = (delay / 2).max(1);
    cfg.store_retention_rounds = (600_000 / delay).max(cfg.store_retention_rounds);
    // A restarted node must accept its peers' current rounds to learn what to fetch.
    cfg.max_round_lookahead = cfg.store_retention_rounds;
    // As many transactions per vertex as peers will decode (the vertex limit).
    cfg.max_batch_txs = dualchain_core::types::vertex_limits::MAX_VERTEX_TXS;
    cfg.max_queued_txs = 8 * cfg.max_batch_txs;
    cfg
}

/// Opens the chain's database (initialising it from genesis on first start) and
/// runs the task group until shutdown or failure.
pub async fn run_chain(
    shared: Arc<ChainShared>,
    cfg: ChainRunConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let chain = shared.chain;
    let db_dir = cfg.data_dir.join("db");
    let sync = cfg.sync_policy;
    let db = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&db_dir)
            .with_context(|| format!("creating data directory {}", db_dir.display()))?;
        RocksEngine::open(
            &db_dir,
            &StoreOptions {
                sync,
                ..StoreOptions::default()
            },
        )
        .with_context(|| format!("opening the {chain} database in {}", db_dir.display()))
    })
    .await??;
    let db = Arc::new(db);

    let mut store = ChainStore::open(db.clone(), chain).context("opening the chain store")?;
    if store.head().is_none() {
        let changes = genesis_changes(chain, &shared.genesis, &shared.validators);
        store
            .init_genesis(shared.genesis_digest, &changes)
            .context("writing the genesis state")?;
        tracing::info!(%chain, root = %store.state_root(), "initialised from genesis");
    }
    let head = *store.head().expect("initialised above");
    if head.height == 0 && head.block_digest != shared.genesis_digest.0 {
        anyhow::bail!(
            "the {chain} database in {} belongs to another genesis (its genesis digest differs); use a fresh data directory",
            cfg.data_dir.display()
        );
    }
    let head_block = store.get_block(head.height)?;
    shared.set_head(Head {
        height: head.height,
        digest: Digest(head.block_digest),
        state_root: Digest(head.state_root),
        block_timestamp_ms: head_block
            .as_ref()
            .map_or(shared.genesis.genesis_time_ms, |b| b.header.timestamp_ms),
        committed_at_unix_ms: shared.head().committed_at_unix_ms,
    });
    shared.metrics.height.set(head.height as i64);
    shared.metrics.finalized_height.set(head.height as i64);

    let sealer_cfg = SealerConfig {
        chain,
        epoch: shared.validators.epoch(),
        block_time_ms: shared.block_time_ms,
        first_height: 1,
        genesis_parent: shared.genesis_digest,
        max_gap_blocks: 10_000,
    };
    let sealer = match db.get(Column::Meta, SEALER_STATE_KEY)? {
        Some(bytes) => BlockSealer::from_state_bytes(sealer_cfg, &bytes)
            .context("the persisted sealer state is corrupt")?,
        None => BlockSealer::new(sealer_cfg)?,
    };
    let journal = read_journal(db.as_ref(), sealer.next_sequence())?;
    let cache = StateCache::new(db.clone(), head.height);

    let net_registry = Registry::new();
    *shared
        .net_registry
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = net_registry.clone();
    let mut net_cfg = NetConfig::new(cfg.p2p_listen);
    net_cfg.peers = cfg.peers.clone();
    net_cfg.seed = u64::from(shared.me) << 8 | u64::from(chain.tag());
    let membership = Membership::from_validator_set(&shared.validators);
    let (net, events) = QuicNetwork::start(net_cfg, shared.key.clone(), membership, &net_registry)
        .with_context(|| format!("starting the {chain} transport on {}", cfg.p2p_listen))?;
    let net = Arc::new(net);

    let buffered = BufferedEngine::new(db.clone());
    let engine_cfg = engine_config(chain, &shared.genesis, shared.genesis_digest);
    let (max_batch_txs, max_queued_txs) = (engine_cfg.max_batch_txs, engine_cfg.max_queued_txs);
    let engine = DagBft::open(
        engine_cfg,
        shared.me,
        shared.key.clone(),
        shared.validators.clone(),
        KvConsensusStore::new(buffered.clone()),
        DirectVerifier,
    )
    .context("opening the consensus engine")?;

    let (exec_tx, exec_rx) = std::sync::mpsc::channel();
    let (exec_events_tx, exec_events_rx) = mpsc::unbounded_channel();
    shared.metrics.exec_queue_depth.set(0);
    let executor = BlockExecutor {
        shared: shared.clone(),
        db: db.clone(),
        store,
        cache,
        sealer,
        snapshots: SnapshotPolicy {
            every_blocks: cfg.snapshot_interval_blocks,
            dir: shared.snapshot_dir.clone(),
            keep: 2,
        },
        events: exec_events_tx,
    };
    let exec_thread = std::thread::Builder::new()
        .name(format!("exec-{chain}"))
        .spawn(move || executor.run(journal, exec_rx))
        .context("starting the executor thread")?;

    *shared.live() = Live {
        db: Some(db.clone()),
        exec: Some(exec_tx.clone()),
        faults: Some(net.faults().clone()),
    };
    shared.running.store(true, Ordering::Release);
    tracing::info!(%chain, height = head.height, listen = %net.local_addr(), "chain running");

    let votes = VoteBook::new(chain, shared.validators.clone(), 0);
    let driver = Driver::new(
        shared.clone(),
        engine,
        buffered,
        db,
        net.clone(),
        events,
        exec_tx,
        exec_events_rx,
        votes,
        max_batch_txs,
        max_queued_txs,
    );
    let driven = driver.run(shutdown).await;

    shared.running.store(false, Ordering::Release);
    *shared.live() = Live::default();
    net.shutdown().await;
    let joined = tokio::task::spawn_blocking(move || exec_thread.join()).await?;
    let executed = match joined {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("the executor thread panicked")),
    };
    match (driven, executed) {
        (Err(e), Err(exec)) => Err(exec.context(format!("{e:#}"))),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), result) => result,
    }
}

/// Runs `chain` and restarts it with exponential backoff (1 s → 30 s) when it fails,
/// marking it degraded; returns on shutdown.
pub async fn supervise(
    shared: Arc<ChainShared>,
    cfg: ChainRunConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let result = run_chain(shared.clone(), cfg.clone(), shutdown.clone()).await;
        if *shutdown.borrow() {
            if let Err(e) = result {
                tracing::warn!(chain = %shared.chain, error = %format!("{e:#}"), "chain stopped with an error during shutdown");
            }
            shared.set_health(v1::Health::Stopped, "stopped");
            return;
        }
        let reason = match result {
            Ok(()) => "the chain's task group ended unexpectedly".to_string(),
            Err(e) => format!("{e:#}"),
        };
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        shared
            .last_restart_unix_ms
            .store(unix_ms(), Ordering::Relaxed);
        shared.metrics.restarts.inc();
        shared.set_health(
            v1::Health::Degraded,
            format!("restarting after failure: {reason}"),
        );
        tracing::error!(chain = %shared.chain, error = %reason, backoff_s = backoff.as_secs(), "chain failed; restarting");
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => {
                shared.set_health(v1::Health::Stopped, "stopped");
                return;
            }
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
