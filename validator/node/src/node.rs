//! `dualchain run`: one validator process.
//!
//! Task layout (a tokio `JoinSet`): per chain a supervisor (which runs and restarts
//! the chain's task group) and a gRPC server; one Prometheus endpoint; one health
//! monitor. SIGTERM or SIGINT flips a watch channel every task listens to; the node
//! then drains (servers stop accepting, chains finish their current step, executor
//! threads write their last block) and exits within 60 s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use dualchain_api::{ApiListeners, ApiOptions, ConnectionLimits};
use dualchain_core::crypto::ValidatorScheme;
use dualchain_core::keyfile;
use dualchain_core::types::{ChainId, Genesis};
use dualchain_runtime::admission_gate::GateConfig;
use dualchain_runtime::chain::build_context;
use dualchain_runtime::health::{SiblingProbe, monitor};
use dualchain_runtime::{ChainOptions, NodeChains, NodeIdentity, supervise};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{FileConfig, NodeConfig, RunArgs, read_admin_tls, read_admin_token};
use crate::peers::{dial_targets, load_peers};
use crate::seams::{ChainIo, NodeSeams};
use crate::sibling::{GrpcSibling, SiblingSource};

/// How long a clean stop may take before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(60);

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let cfg = NodeConfig::resolve(args, file)?;
    let open_files = crate::open_files::raise_open_file_limit();
    let connection_limits = crate::open_files::api_connection_limits(
        cfg.api_max_connections,
        cfg.api_max_connections_per_ip,
        cfg.chains.chains().len(),
        open_files,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dualchain")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_node(cfg, connection_limits))
}

async fn run_node(cfg: NodeConfig, connection_limits: ConnectionLimits) -> anyhow::Result<()> {
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
    let me = validators.index_of(key.public());
    match me {
        None if !cfg.join => bail!(
            "this node's key (id {}) is not in the genesis validator set of network {:?}; refusing to start \
             (a validator joining a running network runs with --join)",
            key.public().id(),
            genesis.network
        ),
        None => tracing::info!(
            key_id = %key.public().id(),
            "joining: this key is not in the genesis set; the chains follow by block sync until an epoch's set holds it"
        ),
        Some(me) => {
            if let Ok(index) = std::env::var("DUALCHAIN_VALIDATOR_INDEX")
                && index.trim() != me.to_string()
            {
                tracing::warn!(env_index = %index, genesis_index = me, "DUALCHAIN_VALIDATOR_INDEX differs from this key's position in genesis; using genesis");
            }
        }
    }
    let peers = match &cfg.peers {
        Some(path) => load_peers(path)?,
        None => Vec::new(),
    };
    let admin_token = cfg
        .admin_credential
        .as_ref()
        .map(read_admin_token)
        .transpose()?;
    if admin_token.is_none() {
        tracing::warn!("no admin token configured: this node serves no dualchain.v1.Admin API");
    }
    let admin_tls = cfg.admin_tls.as_ref().map(read_admin_tls).transpose()?;
    let genesis_digest = genesis.hash();
    let identity = Arc::new(NodeIdentity {
        genesis: Arc::new(genesis),
        genesis_digest,
        validators,
        me,
        key: Arc::new(key),
        expected: Default::default(),
    });
    tracing::info!(
        network = %identity.genesis.network,
        validator = ?me,
        chains = ?cfg.chains,
        "starting validator"
    );

    let registry = Registry::new();
    let chains = cfg.chains.chains();
    let mut io = BTreeMap::new();
    for &chain in &chains {
        let params = identity.genesis.chain(chain);
        io.insert(
            chain,
            ChainIo {
                data_dir: cfg.chain_data_dir(chain),
                p2p_listen: cfg
                    .listen(chain)
                    .p2p
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], params.p2p_port))),
                peers: dial_targets(&peers, me.map(u32::from), chain),
                sync_policy: cfg.sync_policy,
            },
        );
    }
    let seams = Arc::new(NodeSeams::new(io));
    let admission = admission_limits(&cfg);
    let mut contexts = Vec::new();
    for &chain in &chains {
        contexts.push(build_context(
            chain,
            identity.clone(),
            seams.clone(),
            ChainOptions {
                mempool_capacity: cfg.mempool_capacity,
                execution_mode: cfg.execution_mode,
                snapshot_dir: Some(cfg.chain_data_dir(chain).join("snapshots")),
                snapshot_interval_blocks: cfg.snapshot_interval_blocks,
                consensus_window_ms: cfg.consensus_window_ms,
                admission: admission.clone(),
                bootstrap: cfg.bootstrap.get(&chain).cloned().unwrap_or_default(),
            },
            &registry,
        )?);
    }
    let node = Arc::new(NodeChains {
        chains: contexts.clone(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    let apis = node.apis();
    for (index, ctx) in contexts.iter().enumerate() {
        let chain = ctx.chain;
        let params = identity.genesis.chain(chain);
        let api_addr = cfg
            .listen(chain)
            .api
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], params.api_port)));
        let listener = TcpListener::bind(api_addr)
            .await
            .with_context(|| format!("binding the {chain} API on {api_addr}"))?;
        let admin = match admin_token {
            Some(_) => Some(bind_admin(&cfg, chain, params.api_port).await?),
            None => None,
        };
        let listeners = ApiListeners {
            api: listener,
            admin,
        };
        let api = apis[index].clone();
        let options = ApiOptions {
            admin_token: admin_token.clone(),
            admin_tls: admin_tls.clone(),
            metrics_registry: Some(registry.clone()),
            connections: connection_limits.clone(),
            ..ApiOptions::default()
        };
        let shutdown = stopped(&stop_rx);
        tasks.spawn(async move {
            dualchain_api::serve_api_on(listeners, api, options, shutdown)
                .await
                .with_context(|| format!("the {chain} API server failed"))
        });
        let supervised = ctx.clone();
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            supervise(supervised, rx).await;
            Ok(())
        });
    }

    // Both chains in this process: their records travel between them in process.
    // One chain per process: this chain reads the other's records from the sibling
    // process's API (the pod's other container) and submits them here.
    let mut relays = dualchain_runtime::relay::spawn_in_process(&contexts, &apis, &stop_rx);
    if let [ctx] = contexts.as_slice() {
        let other = ctx.chain.other();
        match &cfg.peer_chain_api {
            Some(url) => {
                let source = Arc::new(SiblingSource::new(other, url)?);
                tracing::info!(chain = %ctx.chain, sibling = %url, "relaying {other} records from the sibling process");
                relays.push(dualchain_runtime::relay::spawn_into(
                    source, ctx, &apis[0], &stop_rx,
                ));
            }
            None => tracing::warn!(
                chain = %ctx.chain,
                "one chain per process and no --peer-chain-api: this chain receives no {other} records (locks, stakes, governance results); set it to the other chain's API"
            ),
        }
    }
    for relay in relays {
        tasks.spawn(async move { relay.await.context("the attestation relay failed") });
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

    let sibling = match &cfg.peer_chain_api {
        Some(url) => Some(Box::new(GrpcSibling::new(url)?) as Box<dyn SiblingProbe>),
        None => None,
    };
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        monitor(contexts, sibling, rx).await;
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

/// Binds `chain`'s admin listener: the configured address, else loopback on the
/// port after the genesis API port (the admin token never leaves the host there).
async fn bind_admin(
    cfg: &NodeConfig,
    chain: ChainId,
    api_port: u16,
) -> anyhow::Result<TcpListener> {
    let addr = match cfg.listen(chain).admin {
        Some(addr) => addr,
        None => {
            let port = api_port.checked_add(1).with_context(|| {
                format!("the genesis {chain} API port {api_port} leaves no port for the admin listener: set --{chain}-admin-listen")
            })?;
            SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {chain} admin API on {addr}"))
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

/// The admission gate's limits: the configured wait, and the configured verification
/// budget or, unset, the one measured on this machine now (logged, so an operator sees
/// what the door allows).
fn admission_limits(cfg: &NodeConfig) -> GateConfig {
    let verify_budget_per_sec = match cfg.verify_budget_per_sec {
        Some(budget) => budget,
        None => {
            let (budget, cost_us) = crate::verify_budget::measured_budget();
            tracing::info!(
                budget_per_sec = budget,
                cost_us = format!("{cost_us:.1}"),
                "signature verification budget per chain measured (half the cores' worth)"
            );
            budget
        }
    };
    GateConfig {
        max_wait_ms: cfg.admission_max_wait_ms,
        verify_budget_per_sec: Some(verify_budget_per_sec),
        ..GateConfig::default()
    }
}
