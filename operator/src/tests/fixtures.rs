//! Fixtures: representative resources, a fixed clock, fake validators, a test context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::context::{Clock, Context, Settings};
use crate::crd::benchmark::BenchmarkCluster;
use crate::crd::network::DualChainNetwork;
use crate::metrics::Metrics;
use crate::validators::{
    ChainReport, FaultSettings, PendingChanges, Target, ValidatorApi, ValidatorError,
};

pub const NS: &str = "bench-ns";

/// A clock tests move by hand.
pub struct TestClock(pub Mutex<jiff::Timestamp>);

impl TestClock {
    pub fn at(s: &str) -> Arc<Self> {
        Arc::new(Self(Mutex::new(s.parse().unwrap())))
    }
    pub fn advance(&self, seconds: i64) {
        let mut t = self.0.lock().unwrap();
        *t = t
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap();
    }
}

impl Clock for TestClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap()
    }
}

/// One recorded admin call.
#[derive(Clone, Debug, PartialEq)]
pub enum AdminCall {
    Pause {
        validator: String,
        chain: &'static str,
        paused: bool,
    },
    Fault {
        validator: String,
        chain: &'static str,
        fault: Option<FaultSettings>,
    },
}

/// Validators that answer from a table; unknown validators are unreachable.
#[derive(Default)]
pub struct FakeValidators {
    pub reports: Mutex<HashMap<String, ChainReport>>,
    pub calls: Mutex<Vec<AdminCall>>,
    /// `(validator, token)` of every admin call.
    pub tokens: Mutex<Vec<(String, String)>>,
    /// What every reachable validator's Alpha holds as pending set changes.
    pub pending: Mutex<PendingChanges>,
}

impl FakeValidators {
    pub fn all_healthy(network: &str, n: u32, height: u64) -> Arc<Self> {
        let fake = Self::default();
        for i in 0..n {
            fake.reports.lock().unwrap().insert(
                format!("{network}-{i}"),
                ChainReport {
                    height,
                    finalized_height: height.saturating_sub(1),
                    epoch: 1,
                    head_epoch: 1,
                    member: true,
                    peer_id: format!("peer-{i}"),
                    health_reason: String::new(),
                },
            );
        }
        Arc::new(fake)
    }
}

impl ValidatorApi for FakeValidators {
    fn status(&self, target: Target) -> BoxFuture<'static, Result<ChainReport, ValidatorError>> {
        let found = self.reports.lock().unwrap().get(&target.validator).cloned();
        Box::pin(async move {
            found.ok_or_else(|| ValidatorError::Unreachable {
                validator: target.validator.clone(),
                chain: target.chain.as_str(),
                detail: "connection refused".into(),
            })
        })
    }
    fn pause(
        &self,
        target: Target,
        token: Zeroizing<String>,
        paused: bool,
    ) -> BoxFuture<'static, Result<(), ValidatorError>> {
        self.tokens
            .lock()
            .unwrap()
            .push((target.validator.clone(), token.to_string()));
        self.calls.lock().unwrap().push(AdminCall::Pause {
            validator: target.validator,
            chain: target.chain.as_str(),
            paused,
        });
        Box::pin(async { Ok(()) })
    }
    fn set_fault(
        &self,
        target: Target,
        token: Zeroizing<String>,
        fault: Option<FaultSettings>,
    ) -> BoxFuture<'static, Result<(), ValidatorError>> {
        self.tokens
            .lock()
            .unwrap()
            .push((target.validator.clone(), token.to_string()));
        self.calls.lock().unwrap().push(AdminCall::Fault {
            validator: target.validator,
            chain: target.chain.as_str(),
            fault,
        });
        Box::pin(async { Ok(()) })
    }
    fn pending_set_changes(
        &self,
        target: Target,
    ) -> BoxFuture<'static, Result<PendingChanges, ValidatorError>> {
        let reachable = self.reports.lock().unwrap().contains_key(&target.validator);
        let pending = self.pending.lock().unwrap().clone();
        Box::pin(async move {
            match reachable {
                true => Ok(pending),
                false => Err(ValidatorError::Unreachable {
                    validator: target.validator.clone(),
                    chain: target.chain.as_str(),
                    detail: "connection refused".into(),
                }),
            }
        })
    }
}

pub fn context(
    client: Client,
    validators: Arc<dyn ValidatorApi>,
    clock: Arc<dyn Clock>,
) -> Arc<Context> {
    Arc::new(Context {
        client,
        metrics: Metrics::default(),
        reporter: Reporter {
            controller: "dualchain-operator".into(),
            instance: Some("test".into()),
        },
        validators,
        clock,
        settings: Settings {
            operator_pods: Some(
                crate::context::OperatorPods::parse("operators", "app.kubernetes.io/name=op")
                    .unwrap(),
            ),
            probe_concurrency: 4,
            write_concurrency: 4,
            ..Settings::default()
        },
    })
}

/// A network as the API server would hand it to the controller.
pub fn network(name: &str, spec: Value) -> DualChainNetwork {
    serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "DualChainNetwork",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1,
                     "resourceVersion": "1", "creationTimestamp": "2026-11-21T08:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

pub fn benchmark(name: &str, spec: Value) -> BenchmarkCluster {
    serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "BenchmarkCluster",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1,
                     "resourceVersion": "1", "creationTimestamp": "2026-11-21T08:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

/// Stores the object in the fake API and returns what the controller would see next.
pub fn refetch<T: serde::de::DeserializeOwned>(value: Option<Value>) -> T {
    serde_json::from_value(value.expect("object stored")).unwrap()
}
