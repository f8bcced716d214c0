//! `grpc.health.v1` statuses, as the Kubernetes probes read them (operator
//! README, "Validator container contract"):
//!
//! - `""` (liveness, startup): SERVING while the server runs;
//! - `dualchain.v1.Node` (readiness): mirrors [`crate::ChainApi::ready`], polled
//!   every [`crate::ApiOptions::ready_poll_interval`] by a task the server owns.
//!
//! When shutdown starts both become NOT_SERVING (watchers see it), then both
//! entries are removed so open `Watch` streams end and do not hold the
//! graceful drain open.

use std::sync::Arc;
use std::time::Duration;

use dualchain_proto::NodeServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

use crate::ChainApi;
use crate::node::NodeService;

/// The readiness service name: the `dualchain.v1.Node` service.
pub(crate) const READINESS_SERVICE: &str = <NodeServer<NodeService> as NamedService>::NAME;

/// The overall-server service name of the gRPC health protocol.
const SERVER_SERVICE: &str = "";

fn status_of(ready: bool) -> ServingStatus {
    if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Creates the health service with its statuses set from `api`, and the task
/// that keeps readiness current until `shutdown` turns true.
pub(crate) async fn start(
    api: Arc<dyn ChainApi>,
    poll_interval: Duration,
    shutdown: watch::Receiver<bool>,
) -> (HealthServer<impl Health>, JoinHandle<()>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let ready = api.ready();
    reporter
        .set_service_status(READINESS_SERVICE, status_of(ready))
        .await;
    let task = tokio::spawn(poll_readiness(
        api,
        reporter,
        ready,
        poll_interval,
        shutdown,
    ));
    (service, task)
}

async fn poll_readiness(
    api: Arc<dyn ChainApi>,
    mut reporter: HealthReporter,
    mut ready: bool,
    poll_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => break,
            _ = ticker.tick() => {}
        }
        let now = api.ready();
        if now != ready {
            ready = now;
            tracing::info!(
                chain = %api.chain(),
                ready,
                "readiness of {READINESS_SERVICE} changed"
            );
            reporter
                .set_service_status(READINESS_SERVICE, status_of(ready))
                .await;
        }
    }
    for service in [SERVER_SERVICE, READINESS_SERVICE] {
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
    // Watchers have the NOT_SERVING value queued; dropping the entries ends
    // their streams after they read it.
    for service in [SERVER_SERVICE, READINESS_SERVICE] {
        reporter.clear_service_status(service).await;
    }
}
