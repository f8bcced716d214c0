//! What every reconcile gets: the API client, metrics, the event reporter, the validator
//! gRPC client and a clock (injected so that deadlines and TTLs are testable).

use std::collections::BTreeMap;
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

/// Where the operator's own pods run and how they are labelled, so that each network's
/// NetworkPolicy admits them to the validators' gRPC API ports (status probes, admin
/// calls).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

impl OperatorPods {
    /// Parses `key=value,...` (the Helm chart passes the Deployment's selector labels).
    pub fn parse(namespace: &str, labels: &str) -> Result<Self, String> {
        if namespace.is_empty() {
            return Err("the operator's namespace is empty".into());
        }
        let mut parsed = BTreeMap::new();
        for term in labels.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, value) = term
                .split_once('=')
                .ok_or_else(|| format!("operator pod label {term:?} is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(format!(
                    "operator pod label {term:?} has an empty key or value"
                ));
            }
            if parsed.insert(key.to_string(), value.to_string()).is_some() {
                return Err(format!("operator pod label {key:?} is given twice"));
            }
        }
        if parsed.is_empty() {
            return Err("no operator pod labels given".into());
        }
        Ok(Self {
            namespace: namespace.to_string(),
            labels: parsed,
        })
    }
}

/// Tunables of the reconcilers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The operator's pods, admitted by every network's NetworkPolicy to the API ports.
    /// `None` (an operator running outside the cluster): the policy admits no operator
    /// pod.
    pub operator_pods: Option<OperatorPods>,
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
            operator_pods: None,
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
