//! `dualchain run`: one validator process.
//!
//! Task layout (a tokio `JoinSet`): per chain a supervisor (which runs and restarts
//! the chain's task group) and a gRPC server; one Prometheus endpoint; one health
//! monitor. SIGTERM or SIGINT flips a watch channel every task listens to; the node
//! then drains (servers stop accepting, chains finish their current step, executor
//! threads write their last block) and exits within 60 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use dualchain_api::{ApiOptions, ChainApi};
use dualchain_core::crypto::ValidatorScheme;
use dualchain_core::keyfile;
use dualchain_core::types::{ChainId, Genesis};
use dualchain_proto::v1;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::chain::api::{ChainService, NodeFacts};
use crate::chain::shared::{ChainShared, unix_ms};
use crate::chain::{ChainRunConfig, NodeIdentity, build_shared, supervise};
use crate::config::{FileConfig, NodeConfig, RunArgs, read_admin_token};
use crate::peers::{dial_targets, load_peers};

/// How long a clean stop may take before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(60);

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let cfg = NodeConfig::resolve(args, file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dualchain")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_node(cfg))
}

async fn run_node(cfg: NodeConfig) -> anyhow::Result<()> {
    let genesis_json = std::fs::read_to_string(&cfg.genesis)
        .with_context(|| format!("reading genesis {}", cfg.genesis.display()))?;
    let genesis = Genesis::from_json(&genesis_json)
        .with_context(|| format!("invalid genesis {}", cfg.genesis.display()))?;
    genesis
        .validate()
        .with_context(|| format!("invalid genesis {}", cfg.genesis.display()))?;
    let validators = Arc::new(genesis.validator_set()?);
    let key = keyfile::read_key::<ValidatorScheme>(&cfg.key_dir)
        .with_context(|| format!("reading the validator key in {}", cfg.key_dir.display()))?;
    let Some(me) = validators.index_of(key.public()) else {
        bail!(
            "this node's key (id {}) is not in the genesis validator set of network {:?}; refusing to start",
            key.public().id(),
            genesis.network
        );
    };
    if let Ok(index) = std::env::var("DUALCHAIN_VALIDATOR_INDEX")
        && index.trim() != me.to_string()
    {
        tracing::warn!(env_index = %index, genesis_index = me, "DUALCHAIN_VALIDATOR_INDEX differs from this key's position in genesis; using genesis");
    }
    let peers = match &cfg.peers {
        Some(path) => load_peers(path)?,
        None => Vec::new(),
    };
    let admin_token = cfg
        .admin_token_file
        .as_deref()
        .map(read_admin_token)
        .transpose()?;
    if admin_token.is_none() {
        tracing::warn!("no admin token configured: every dualchain.v1.Admin call will be refused");
    }
    let genesis_digest = genesis.hash();
    let identity = NodeIdentity {
        genesis: Arc::new(genesis),
        genesis_digest,
        validators,
        me,
        key: Arc::new(key),
    };
    tracing::info!(
        network = %identity.genesis.network,
        validator = me,
        chains = ?cfg.chains,
        "starting validator"
    );

    let registry = Registry::new();
    let chains = cfg.chains.chains();
    let mut shared = Vec::new();
    for &chain in &chains {
        shared.push(build_shared(
            chain,
            &identity,
            cfg.mempool_capacity,
            cfg.execution_mode,
            cfg.chain_data_dir(chain).join("snapshots"),
            &registry,
        )?);
    }
    let facts = Arc::new(NodeFacts {
        chains: shared.clone(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    for chain_state in &shared {
        let chain = chain_state.chain;
        let params = identity.genesis.chain(chain);
        let listen = cfg.listen(chain);
        let p2p = listen
            .p2p
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], params.p2p_port)));
        let api_addr = listen
            .api
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], params.api_port)));
        let listener = TcpListener::bind(api_addr)
            .await
            .with_context(|| format!("binding the {chain} API on {api_addr}"))?;
        let api: Arc<dyn ChainApi> = Arc::new(ChainService {
            shared: chain_state.clone(),
            node: facts.clone(),
        });
        let options = ApiOptions {
            admin_token: admin_token.clone(),
            metrics_registry: Some(registry.clone()),
            ..ApiOptions::default()
        };
        let shutdown = stopped(&stop_rx);
        tasks.spawn(async move {
            dualchain_api::serve_api_on(listener, api, options, shutdown)
                .await
                .with_context(|| format!("the {chain} API server failed"))
        });

        let run_cfg = ChainRunConfig {
            data_dir: cfg.chain_data_dir(chain),
            p2p_listen: p2p,
            peers: dial_targets(&peers, u32::from(me), chain),
            sync_policy: cfg.sync_policy,
            snapshot_interval_blocks: cfg.snapshot_interval_blocks,
        };
        let supervised = chain_state.clone();
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            supervise(supervised, run_cfg, rx).await;
            Ok(())
        });
    }

    let metrics_listener = TcpListener::bind(cfg.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics endpoint on {}", cfg.metrics_listen))?;
    let shutdown = stopped(&stop_rx);
    let metrics_registry = registry.clone();
    tasks.spawn(async move {
        dualchain_api::serve_metrics_on(metrics_listener, metrics_registry, shutdown)
            .await
            .context("the metrics endpoint failed")
    });

    let monitored = shared.clone();
    let peer_chain_api = cfg.peer_chain_api.clone();
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        monitor_health(monitored, peer_chain_api, rx).await;
        Ok(())
    });

    let failure = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "stopping: draining chains and servers");
            None
        }
        Some(joined) = tasks.join_next() => {
            match joined {
                Ok(Ok(())) => Some(anyhow::anyhow!("a node task ended unexpectedly")),
                Ok(Err(e)) => Some(e),
                Err(e) => Some(anyhow::anyhow!("a node task panicked: {e}")),
            }
        }
    };
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "task failed while stopping")
                }
                Err(e) => tracing::warn!(error = %e, "task panicked while stopping"),
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::error!("tasks did not stop within {SHUTDOWN_DEADLINE:?}; exiting anyway");
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// The newest block of the other chain, for timing-drift checks.
#[derive(Clone, Copy, Debug)]
struct OtherChain {
    block_time_ms: u64,
    last_block_unix_ms: u64,
}

/// Every second: stalled (no block for 3× the block time), degraded (restarted in the
/// last minute, paused, or drifting from the other chain), catching up, healthy.
async fn monitor_health(
    chains: Vec<Arc<ChainShared>>,
    peer_chain_api: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut remote: Option<dualchain_proto::NodeClient<tonic::transport::Channel>> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let now = unix_ms();
        let mut others: Vec<(ChainId, OtherChain)> = chains
            .iter()
            .map(|c| {
                (
                    c.chain,
                    OtherChain {
                        block_time_ms: c.block_time_ms,
                        last_block_unix_ms: last_activity(c),
                    },
                )
            })
            .collect();
        let mut sibling_error = None;
        if let Some(url) = &peer_chain_api
            && let Some(first) = chains.first()
        {
            match query_peer_chain(url, &mut remote).await {
                Ok((id, last_block_unix_ms)) => others.push((
                    id,
                    OtherChain {
                        block_time_ms: first.genesis.chain(id).block_time_ms,
                        last_block_unix_ms,
                    },
                )),
                Err(e) => {
                    sibling_error = Some(format!(
                        "the other chain's API at {url} does not answer: {e}"
                    ))
                }
            }
        }
        for chain in &chains {
            let (mut health, mut reason) = assess(chain, now, &others);
            if health == v1::Health::Healthy
                && let Some(e) = &sibling_error
            {
                (health, reason) = (v1::Health::Degraded, format!("timing drift unknown: {e}"));
            }
            chain.set_health(health, reason);
        }
    }
}

fn last_activity(chain: &ChainShared) -> u64 {
    let head = chain.head();
    if head.committed_at_unix_ms > 0 {
        head.committed_at_unix_ms
    } else {
        chain.started_at_unix_ms.max(chain.genesis.genesis_time_ms)
    }
}

fn assess(chain: &ChainShared, now: u64, all: &[(ChainId, OtherChain)]) -> (v1::Health, String) {
    if !chain.running.load(Ordering::Acquire) {
        let restarts = chain.restarts.load(Ordering::Relaxed);
        return if restarts > 0 {
            (
                v1::Health::Degraded,
                format!("restarting (restart {restarts})"),
            )
        } else {
            (v1::Health::Stopped, "opening the store and starting".into())
        };
    }
    let head = chain.head();
    let behind = now.saturating_sub(head.block_timestamp_ms);
    chain.catching_up.store(
        behind > 10 * chain.block_time_ms.max(1_000) && head.height > 0,
        Ordering::Release,
    );
    let idle = now.saturating_sub(last_activity(chain));
    if idle > 3 * chain.block_time_ms {
        return (
            v1::Health::Stalled,
            format!(
                "no block for {:.1} s (3x the {} ms block time)",
                idle as f64 / 1000.0,
                chain.block_time_ms
            ),
        );
    }
    if chain.is_paused() {
        return (v1::Health::Degraded, "paused by an admin call".into());
    }
    let last_restart = chain.last_restart_unix_ms.load(Ordering::Relaxed);
    if last_restart > 0 && now.saturating_sub(last_restart) < 60_000 {
        return (
            v1::Health::Degraded,
            "restarted within the last minute".into(),
        );
    }
    if let Some((other_chain, other)) = all.iter().find(|(c, _)| *c != chain.chain) {
        let other_idle = now.saturating_sub(other.last_block_unix_ms);
        if other_idle > 3 * other.block_time_ms {
            return (
                v1::Health::Degraded,
                format!(
                    "timing drift: the {other_chain} chain has sealed no block for {:.1} s",
                    other_idle as f64 / 1000.0
                ),
            );
        }
    }
    (v1::Health::Healthy, String::new())
}

async fn query_peer_chain(
    url: &str,
    client: &mut Option<dualchain_proto::NodeClient<tonic::transport::Channel>>,
) -> Result<(ChainId, u64), String> {
    if client.is_none() {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("invalid URL: {e}"))?
            .connect_timeout(Duration::from_secs(1));
        *client = Some(dualchain_proto::NodeClient::new(endpoint.connect_lazy()));
    }
    let mut c = client.clone().ok_or("no client")?;
    let status = tokio::time::timeout(
        Duration::from_secs(2),
        c.get_status(v1::GetStatusRequest {}),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.message().to_string())?
    .into_inner();
    let chain = status.chains.first().ok_or("no chain in its status")?;
    let id = match chain.chain() {
        v1::Chain::Alpha => ChainId::Alpha,
        v1::Chain::Delta => ChainId::Delta,
        v1::Chain::Unspecified => return Err("unspecified chain in its status".into()),
    };
    Ok((id, chain.last_block_time_unix_ms))
}
