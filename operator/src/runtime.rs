//! `dualchain-operator run`: client, leader election, both controllers, the metrics
//! endpoint and graceful shutdown.
//!
//! Memory stays small by design: the only reflector caches are the two custom resources
//! (the controllers' own stores); owned objects are watched as metadata only and only
//! those labelled `app.kubernetes.io/managed-by=dualchain-operator`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::context::{Clock, Context, Settings, SystemClock};
use crate::crd::{BenchmarkCluster, DualChainNetwork};
use crate::leader::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::names::MANAGED_BY;
use crate::reconcile::{benchmark, network};
use crate::validators::GrpcValidators;

/// Options of `dualchain-operator run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Watch only this namespace (all namespaces when unset).
    pub namespace: Option<String>,
    pub metrics_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_namespace: String,
    pub identity: String,
    pub settings: Settings,
}

/// Builds a client from an explicit kubeconfig, or infers one (in-cluster service
/// account, then `$KUBECONFIG` / `~/.kube/config`).
pub async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&String>,
) -> anyhow::Result<Client> {
    let options = KubeConfigOptions {
        context: context.cloned(),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)?;
            Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs until SIGTERM/SIGINT or loss of leadership.
pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let client = client(options.kubeconfig.as_ref(), options.context.as_ref()).await?;
    let metrics = Metrics::default();
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = serve_metrics(
        options.metrics_addr,
        metrics.clone(),
        ready.clone(),
        stop_rx.clone(),
    )
    .await?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics,
        reporter: Reporter {
            controller: "dualchain-operator".into(),
            instance: Some(options.identity.clone()),
        },
        validators: Arc::new(GrpcValidators::default()),
        clock: clock.clone(),
        settings: options.settings.clone(),
    });

    let lease = LeaseConfig::new(&options.lease_namespace, &options.identity);
    if options.leader_election {
        tokio::select! {
            _ = leader::acquire(&client, &lease, clock.as_ref()) => {}
            _ = shutdown_signal() => {
                let _ = stop_tx.send(true);
                let _ = server.await;
                return Ok(());
            }
        }
    }
    ready.store(true, Ordering::SeqCst);

    let stop_future = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let api = |client: &Client| -> (
        Api<DualChainNetwork>,
        Api<BenchmarkCluster>,
        Api<StatefulSet>,
        Api<Job>,
    ) {
        match &options.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        }
    };
    let (networks, benchmarks, statefulsets, jobs) = api(&client);
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let config = controller::Config::default()
        .debounce(Duration::from_millis(500))
        .concurrency(16);

    let network_controller =
        Controller::new(networks.clone(), watcher::Config::default().any_semantic())
            .owns(statefulsets, owned.clone())
            .with_config(config.clone())
            .graceful_shutdown_on(stop_future(stop_rx.clone()))
            .run(network::reconcile, network::error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "network reconcile error");
                }
            });
    let benchmark_controller = Controller::new(
        benchmarks.clone(),
        watcher::Config::default().any_semantic(),
    )
    .owns(networks, owned.clone())
    // A schedule's runs: it records a run's result as soon as the run finishes.
    .owns(benchmarks, owned.clone())
    .owns(jobs, owned)
    .with_config(config)
    .graceful_shutdown_on(stop_future(stop_rx.clone()))
    .run(benchmark::reconcile, benchmark::error_policy, ctx.clone())
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "benchmark reconcile error");
        }
    });

    let controllers = futures::future::join(network_controller, benchmark_controller);
    tokio::pin!(controllers);
    let hold = async {
        if options.leader_election {
            leader::hold(&client, &lease, clock.as_ref()).await;
        } else {
            futures::future::pending::<()>().await;
        }
    };
    let lost_leadership = tokio::select! {
        _ = shutdown_signal() => { tracing::info!("shutting down"); false }
        _ = hold => true,
        _ = &mut controllers => false,
    };
    ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    // Let in-flight reconciles finish (bounded).
    let _ = tokio::time::timeout(Duration::from_secs(20), &mut controllers).await;
    if options.leader_election && !lost_leadership {
        leader::release(&client, &lease).await;
    }
    let _ = server.await;
    if lost_leadership {
        anyhow::bail!("lost leadership; exiting so that only one operator instance reconciles");
    }
    Ok(())
}

/// Serves `/metrics`, `/healthz` and `/readyz` (ready = leading) until `stop`.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                accepted = listener.accept() => {
                    let Ok((mut socket, _)) = accepted else { continue };
                    let metrics = metrics.clone();
                    let ready = ready.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
                            Ok(Ok(n)) => n,
                            _ => return,
                        };
                        let request = String::from_utf8_lossy(&buf[..n]);
                        let path = request.split_whitespace().nth(1).unwrap_or("/");
                        let (code, body, content_type) = match path {
                            "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                            "/healthz" => ("200 OK", "ok\n".to_string(), "text/plain"),
                            "/readyz" if ready.load(Ordering::SeqCst) => ("200 OK", "ready\n".to_string(), "text/plain"),
                            "/readyz" => ("503 Service Unavailable", "not leading\n".to_string(), "text/plain"),
                            _ => ("404 Not Found", "not found\n".to_string(), "text/plain"),
                        };
                        let response = format!(
                            "HTTP/1.1 {code}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            }
        }
    }))
}
