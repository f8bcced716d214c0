//! Fixtures: representative resources, a fixed clock, fake validators, a test context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use crate::context::{Clock, Context, Settings};
use crate::crd::benchmark::BenchmarkCluster;
use crate::crd::network::DualChainNetwork;
use crate::metrics::Metrics;
use crate::validators::{
    AdminAccess, ChainReport, FaultSettings, PendingChanges, SetChangeRequest, SetView, Target,
    ValidatorApi, ValidatorError,
};
use dualchain_core::Digest;
use dualchain_core::types::Address;

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
    /// `(validator, certificate trusted)` of every admin call.
    pub certificates: Mutex<Vec<(String, Vec<u8>)>>,
    /// What every reachable validator's Alpha runs; `None`: it cannot say.
    pub alpha: Mutex<Option<FakeAlpha>>,
}

/// A fake Alpha chain: its set, what it holds for the next boundary, the stake locks
/// and every set-change request it received.
#[derive(Clone, Debug, Default)]
pub struct FakeAlpha {
    pub epoch: u64,
    /// Key ids (hex) of the set.
    pub members: Vec<String>,
    pub pending: PendingChanges,
    /// Lock id → (owner, amount, committed).
    pub locks: std::collections::BTreeMap<Digest, (Address, u64, bool)>,
    pub requests: Vec<FakeRequest>,
}

/// One set-change request as Alpha received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRequest {
    pub key_id: String,
    pub sender: Address,
    pub lock: Option<Digest>,
    pub fee: u64,
    pub epoch: u64,
}

impl FakeAlpha {
    /// An Alpha in `epoch` whose set is `members`.
    pub fn running(epoch: u64, members: Vec<String>) -> Self {
        Self {
            epoch,
            members,
            ..Default::default()
        }
    }

    /// The boundary: the pending changes applied, the next epoch begun.
    pub fn boundary(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.members.retain(|m| !pending.leaving.contains(m));
        self.members.extend(pending.joining);
        self.epoch += 1;
    }

    /// Commits every lock sent so far.
    pub fn commit_locks(&mut self) {
        for lock in self.locks.values_mut() {
            lock.2 = true;
        }
    }
}

impl FakeValidators {
    pub fn all_healthy(network: &str, n: u32, height: u64) -> Arc<Self> {
        let fake = Self::default();
        for i in 0..n {
            fake.reports.lock().unwrap().insert(
                crate::names::validator_pod(network, i),
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
    fn set_fault(
        &self,
        target: Target,
        access: AdminAccess,
        fault: Option<FaultSettings>,
    ) -> BoxFuture<'static, Result<(), ValidatorError>> {
        self.tokens
            .lock()
            .unwrap()
            .push((target.validator.clone(), access.token.to_string()));
        self.certificates
            .lock()
            .unwrap()
            .push((target.validator.clone(), access.certificate_pem.clone()));
        self.calls.lock().unwrap().push(AdminCall::Fault {
            validator: target.validator,
            chain: target.chain.as_str(),
            fault,
        });
        Box::pin(async { Ok(()) })
    }
    fn validator_set(&self, target: Target) -> BoxFuture<'static, Result<SetView, ValidatorError>> {
        let answer = self.on_alpha(&target, |alpha| {
            Ok(SetView {
                epoch: alpha.epoch,
                members: alpha.members.clone(),
                pending: alpha.pending.clone(),
            })
        });
        Box::pin(async move { answer })
    }

    fn lock_stake(
        &self,
        target: Target,
        sponsor: dualchain_core::crypto::AccountKeypair,
        amount: u64,
        _unlock_at_ms: u64,
    ) -> BoxFuture<'static, Result<Digest, ValidatorError>> {
        let answer = self.on_alpha(&target, |alpha| {
            let id = Digest(*blake3::hash(&(alpha.locks.len() as u64).to_le_bytes()).as_bytes());
            let owner = Address::of(sponsor.public());
            alpha.locks.insert(id, (owner, amount, false));
            Ok(id)
        });
        Box::pin(async move { answer })
    }

    fn lock_committed(
        &self,
        target: Target,
        lock: Digest,
    ) -> BoxFuture<'static, Result<bool, ValidatorError>> {
        let answer = self.on_alpha(&target, |alpha| {
            Ok(alpha.locks.get(&lock).is_some_and(|l| l.2))
        });
        Box::pin(async move { answer })
    }

    fn request_set_change(
        &self,
        target: Target,
        request: SetChangeRequest,
    ) -> BoxFuture<'static, Result<Digest, ValidatorError>> {
        let answer = self.on_alpha(&target, |alpha| {
            let key_id = request.key.public().id().to_hex();
            let sender = Address::of(request.sender.public());
            alpha.requests.push(FakeRequest {
                key_id: key_id.clone(),
                sender,
                lock: request.lock,
                fee: request.fee,
                epoch: request.epoch,
            });
            // Alpha's admission: signed for its epoch, a join staked by a committed
            // lock of the sender's.
            let staked = request.lock.is_none_or(|l| {
                alpha
                    .locks
                    .get(&l)
                    .is_some_and(|&(owner, _, ok)| ok && owner == sender)
            });
            if request.epoch == alpha.epoch && staked {
                match request.lock {
                    Some(_) => alpha.pending.joining.push(key_id),
                    None => alpha.pending.leaving.push(key_id),
                }
            }
            Ok(Digest(
                *blake3::hash(&(alpha.requests.len() as u64).to_le_bytes()).as_bytes(),
            ))
        });
        Box::pin(async move { answer })
    }
}

impl FakeValidators {
    /// `f` on the fake Alpha, as `target` (reachable, with an Alpha) answers.
    fn on_alpha<T>(
        &self,
        target: &Target,
        f: impl FnOnce(&mut FakeAlpha) -> Result<T, ValidatorError>,
    ) -> Result<T, ValidatorError> {
        let reachable = self.reports.lock().unwrap().contains_key(&target.validator);
        let mut alpha = self.alpha.lock().unwrap();
        match (reachable, alpha.as_mut()) {
            (true, Some(alpha)) => f(alpha),
            _ => Err(ValidatorError::Unreachable {
                validator: target.validator.clone(),
                chain: target.chain.as_str(),
                detail: "connection refused".into(),
            }),
        }
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
