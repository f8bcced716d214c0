//! What every reconcile gets: the API client, metrics, the event reporter, the validator
//! gRPC client and a clock (injected so that deadlines and TTLs are testable).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::metrics::Metrics;
use crate::validators::ValidatorApi;

/// Wall-clock source. The operator may read the clock (it is not consensus code); tests
/// substitute a fixed one.
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// Tunables of the reconcilers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Re-probe a healthy network this often.
    pub status_interval: Duration,
    /// Re-check a network or benchmark that is still converging this often.
    pub converging_interval: Duration,
    /// Concurrent gRPC status probes per reconcile.
    pub probe_concurrency: usize,
    /// Concurrent API writes per reconcile (key Secrets of large networks).
    pub write_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            status_interval: Duration::from_secs(30),
            converging_interval: Duration::from_secs(5),
            probe_concurrency: 32,
            write_concurrency: 16,
        }
    }
}

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    pub reporter: Reporter,
    pub validators: Arc<dyn ValidatorApi>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

impl Context {
    /// Publishes an Event about `object`; failures are logged, never fatal (events are
    /// best-effort by design).
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, object).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }

    /// Now, RFC 3339 (status timestamps).
    pub fn now_rfc3339(&self) -> String {
        self.clock.now().to_string()
    }
}
