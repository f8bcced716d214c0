//! The BenchmarkCluster reconciler: a phase machine driven by what it observes.
//!
//! ```text
//! Pending ─▶ Provisioning ─▶ Running ─▶ Collecting ─▶ Succeeded | Failed ─(TTL)─▶ deleted
//!                 │ deadline      │ Job failed / timeout            ▲
//!                 └───────────────┴──────────────────▶ Failed ──────┘
//! ```
//!
//! Every transition is persisted in status before acting on the next phase, so a
//! restarted operator resumes where it stopped; object creation is idempotent (apply, or
//! create-if-absent), so resuming never duplicates anything. Time comes from the
//! context's clock (deadlines, fault windows, TTL).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use super::network::{apply, read_admin_certificate, read_admin_token};
use crate::build::benchmark::{self as build, BenchRef, RESULT_KEY};
use crate::build::network::ChainName;
use crate::conditions::{self, Desired};
use crate::context::Context;
use crate::crd::benchmark::{
    Baseline, BenchmarkCluster, BenchmarkClusterStatus, BenchmarkResults, CriterionResult,
    FaultKind, FaultStatus, HistoryEntry, RunRecord, SuccessCriteria,
};
use crate::crd::common::ChainProgress;
use crate::crd::network::DualChainNetwork;
use crate::cron::Schedule;
use crate::error::{Error, Result, is_conflict, is_not_found};
use crate::names;
use crate::validators::{AdminAccess, FaultSettings, Target};

/// Controller name (metrics label).
pub const CONTROLLER: &str = "benchmarkcluster";
/// Label on runs created by a scheduled benchmark.
pub const SCHEDULED_BY_LABEL: &str = "dualchain.dev/scheduled-by";

pub mod phase {
    pub const PENDING: &str = "Pending";
    pub const PROVISIONING: &str = "Provisioning";
    pub const RUNNING: &str = "Running";
    pub const COLLECTING: &str = "Collecting";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const SCHEDULED: &str = "Scheduled";
}

/// The loadgen result contract (what `dualchain loadgen --json` writes) and its
/// parser, defined once in `dualchain-contract` and shared with the loadgen.
pub use dualchain_contract::loadgen::{LoadgenResult, Percentiles, parse_result};

/// Entry point for the controller.
#[instrument(skip_all, fields(benchmark = %bench.name_any(), namespace = bench.namespace().unwrap_or_default()))]
pub async fn reconcile(bench: Arc<BenchmarkCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    if bench.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let result = if bench.spec.schedule.is_some() {
        reconcile_schedule(&bench, &ctx).await
    } else {
        reconcile_run(&bench, &ctx).await
    };
    match result {
        Ok(action) => Ok(action),
        Err(error) if error.is_permanent() => {
            ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
            let mut status = bench.status.clone().unwrap_or_default();
            fail(&mut status, &ctx, error.reason(), error.to_string());
            write_status(&bench, &ctx, status).await?;
            Ok(Action::await_change())
        }
        Err(error) => {
            ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
            Err(error)
        }
    }
}

/// Requeue policy for transient errors.
pub fn error_policy(_bench: Arc<BenchmarkCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "benchmark reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

fn seconds_since(ctx: &Context, rfc3339: Option<&String>) -> i64 {
    rfc3339
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| ctx.clock.now().as_second() - t.as_second())
        .unwrap_or(0)
}

fn fail(status: &mut BenchmarkClusterStatus, ctx: &Context, reason: &str, message: String) {
    status.phase = phase::FAILED.into();
    status.reason = Some(reason.into());
    status.message = Some(message);
    status.result = Some("Failed".into());
    status.finished_at.get_or_insert_with(|| ctx.now_rfc3339());
}

async fn write_status(
    bench: &BenchmarkCluster,
    ctx: &Context,
    mut status: BenchmarkClusterStatus,
) -> Result<()> {
    let previous = bench.status.clone().unwrap_or_default();
    status.observed_generation = bench.metadata.generation;
    status.conditions = conditions::merge(
        &previous.conditions,
        desired_conditions(&status),
        bench.metadata.generation,
        &ctx.now_rfc3339(),
    );
    if bench.status.is_some() && previous == status {
        return Ok(());
    }
    if previous.phase != status.phase {
        info!(from = %previous.phase, to = %status.phase, "benchmark phase changed");
        let warning = status.phase == phase::FAILED;
        let note = status
            .message
            .clone()
            .unwrap_or_else(|| format!("benchmark is {}", status.phase));
        ctx.event(
            &bench.object_ref(&()),
            warning,
            &status.phase,
            "Phase",
            note,
        )
        .await;
    }
    let api: Api<BenchmarkCluster> =
        Api::namespaced(ctx.client.clone(), &bench.namespace().unwrap_or_default());
    api.patch_status(
        &bench.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(crate::status_patch::status_patch(
            bench.status.as_ref(),
            &status,
        )?),
    )
    .await?;
    Ok(())
}

fn desired_conditions(status: &BenchmarkClusterStatus) -> Vec<Desired> {
    let reason = status
        .reason
        .clone()
        .unwrap_or_else(|| status.phase.clone());
    let message = status.message.clone().unwrap_or_default();
    let finished = matches!(status.phase.as_str(), phase::SUCCEEDED | phase::FAILED);
    vec![
        Desired::new(
            "Ready",
            status.phase == phase::SUCCEEDED || status.phase == phase::SCHEDULED,
            &reason,
            message.clone(),
        ),
        Desired::new(
            "Progressing",
            !finished && status.phase != phase::SCHEDULED,
            &reason,
            message.clone(),
        ),
        Desired::new(
            "Degraded",
            status.phase == phase::FAILED,
            &reason,
            message.clone(),
        ),
        Desired::new("Complete", finished, &reason, message),
    ]
}

async fn reconcile_run(bench: &BenchmarkCluster, ctx: &Context) -> Result<Action> {
    let b = BenchRef::of(bench)?;
    let mut status = bench.status.clone().unwrap_or_default();
    let converging = ctx.settings.converging_interval;
    let action = match status.phase.as_str() {
        "" | phase::PENDING => {
            provision_network(ctx, &b, bench).await?;
            status.phase = phase::PROVISIONING.into();
            status.reason = Some("CreatingNetwork".into());
            status.message = Some(format!(
                "creating network {} with {} validators",
                names::bench_network(&b.name),
                bench.spec.validators
            ));
            status.network_name = Some(names::bench_network(&b.name));
            status.provisioning_started_at = Some(ctx.now_rfc3339());
            Action::requeue(converging)
        }
        phase::PROVISIONING => provisioning(ctx, &b, bench, &mut status).await?,
        phase::RUNNING => running(ctx, &b, bench, &mut status).await?,
        phase::COLLECTING => collecting(ctx, &b, bench, &mut status).await?,
        phase::SUCCEEDED | phase::FAILED => return finished(ctx, bench, status).await,
        other => {
            warn!(phase = other, "unknown phase; restarting the run");
            status.phase = phase::PENDING.into();
            Action::requeue(converging)
        }
    };
    write_status(bench, ctx, status).await?;
    Ok(action)
}

async fn provision_network(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
) -> Result<DualChainNetwork> {
    let api: Api<DualChainNetwork> = Api::namespaced(ctx.client.clone(), &b.namespace);
    apply(
        &api,
        &names::bench_network(&b.name),
        &build::network(b, bench),
    )
    .await
}

async fn provisioning(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
    status: &mut BenchmarkClusterStatus,
) -> Result<Action> {
    let net = provision_network(ctx, b, bench).await?;
    let net_status = net.status.clone().unwrap_or_default();
    let n = bench.spec.validators;
    if net_status.phase == "Failed" {
        let why = conditions::find(&net_status.conditions, "Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        fail(
            status,
            ctx,
            "NetworkFailed",
            format!("network {} failed: {why}", net.name_any()),
        );
        return Ok(Action::requeue(ctx.settings.converging_interval));
    }
    if net_status.ready_validators >= n {
        start_load(ctx, b, bench, status, &net_status).await?;
        return Ok(Action::requeue(ctx.settings.converging_interval));
    }
    let waited = seconds_since(ctx, status.provisioning_started_at.as_ref());
    if waited >= bench.spec.ready_deadline_seconds {
        fail(
            status,
            ctx,
            "NetworkNotReady",
            format!(
                "network {} had {}/{n} validators ready after {waited}s (readyDeadlineSeconds {})",
                net.name_any(),
                net_status.ready_validators,
                bench.spec.ready_deadline_seconds
            ),
        );
        return Ok(Action::requeue(ctx.settings.converging_interval));
    }
    status.reason = Some("WaitingForValidators".into());
    status.message = Some(format!(
        "{}/{n} validators ready",
        net_status.ready_validators
    ));
    let left = (bench.spec.ready_deadline_seconds - waited).max(1) as u64;
    Ok(Action::requeue(
        ctx.settings
            .converging_interval
            .min(Duration::from_secs(left)),
    ))
}

async fn start_load(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
    status: &mut BenchmarkClusterStatus,
    net_status: &crate::crd::network::DualChainNetworkStatus,
) -> Result<()> {
    let client = ctx.client.clone();
    let ns = &b.namespace;
    let sa_name = names::bench_service_account(&b.name);
    apply(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        &sa_name,
        &build::service_account(b),
    )
    .await?;
    apply(
        &Api::<Role>::namespaced(client.clone(), ns),
        &sa_name,
        &build::role(b),
    )
    .await?;
    apply(
        &Api::<RoleBinding>::namespaced(client.clone(), ns),
        &sa_name,
        &build::role_binding(b),
    )
    .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    // Create-if-absent: a result the Job already wrote must never be reset.
    match config_maps
        .create(
            &PostParams {
                field_manager: Some(names::FIELD_MANAGER.into()),
                ..Default::default()
            },
            &build::result_configmap(b),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(e.into()),
    }
    apply(
        &Api::<Job>::namespaced(client.clone(), ns),
        &names::bench_job(&b.name),
        &build::loadgen_job(b, bench),
    )
    .await?;
    status.baseline_restarts = Some(validator_restarts(ctx, b).await?);
    status.baseline_alpha = Some(net_status.alpha.clone());
    status.baseline_delta = Some(net_status.delta.clone());
    status.phase = phase::RUNNING.into();
    status.reason = Some("LoadRunning".into());
    status.message = Some(format!(
        "loadgen Job {} running for {}s",
        names::bench_job(&b.name),
        bench.spec.workload.duration_seconds
    ));
    status.job_name = Some(names::bench_job(&b.name));
    status.run_started_at = Some(ctx.now_rfc3339());
    status.faults = (0..bench.spec.faults.len() as u32)
        .map(|index| FaultStatus {
            index,
            state: "Pending".into(),
            message: String::new(),
        })
        .collect();
    Ok(())
}

async fn validator_restarts(ctx: &Context, b: &BenchRef) -> Result<u32> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let selector = names::selector_string(&names::network_selector(&names::bench_network(&b.name)));
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count.max(0) as u32)
        .sum())
}

fn job_state(job: &Job) -> (bool, Option<String>) {
    let s = job.status.clone().unwrap_or_default();
    let conditions = s.conditions.unwrap_or_default();
    let complete = s.succeeded.unwrap_or(0) > 0
        || conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
    let failed = conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
        .or_else(|| (s.failed.unwrap_or(0) > 0).then(|| "the loadgen pod failed".to_string()));
    (complete, failed)
}

async fn running(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
    status: &mut BenchmarkClusterStatus,
) -> Result<Action> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let Some(job) = jobs.get_opt(&names::bench_job(&b.name)).await? else {
        fail(
            status,
            ctx,
            "LoadgenJobMissing",
            format!(
                "Job {} disappeared during the run",
                names::bench_job(&b.name)
            ),
        );
        return Ok(Action::requeue(ctx.settings.converging_interval));
    };
    let elapsed = seconds_since(ctx, status.run_started_at.as_ref());
    let (complete, failed) = job_state(&job);
    if complete {
        clear_faults(ctx, b, bench, status).await;
        status.phase = phase::COLLECTING.into();
        status.reason = Some("CollectingResults".into());
        status.message = Some("loadgen finished; collecting its result".into());
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if let Some(why) = failed {
        clear_faults(ctx, b, bench, status).await;
        fail(
            status,
            ctx,
            "LoadgenFailed",
            format!("loadgen Job {} failed: {why}", job.name_any()),
        );
        return Ok(Action::requeue(ctx.settings.converging_interval));
    }
    let deadline = build::job_deadline_seconds(bench) + 60;
    if elapsed >= deadline {
        clear_faults(ctx, b, bench, status).await;
        fail(
            status,
            ctx,
            "LoadgenTimeout",
            format!("loadgen did not finish within {deadline}s"),
        );
        return Ok(Action::requeue(ctx.settings.converging_interval));
    }
    let next_boundary = drive_faults(ctx, b, bench, status, elapsed).await?;
    let wait = next_boundary
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(ctx.settings.converging_interval)
        .min(ctx.settings.converging_interval);
    Ok(Action::requeue(wait))
}

/// Each validator's own admin token and certificate, by index (read by name from the
/// network's per-validator Secrets; neither ever serves another validator).
type AdminTokens = HashMap<u32, AdminAccess>;

async fn admin_tokens(ctx: &Context, b: &BenchRef, indices: &[u32]) -> Result<AdminTokens> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let net = names::bench_network(&b.name);
    let mut tokens = AdminTokens::new();
    for &index in indices {
        let name = names::admin_token_secret(&net, index);
        let token = read_admin_token(&name, &secrets.get(&name).await?)?;
        let name = names::admin_tls_secret(&net, index);
        let certificate_pem = read_admin_certificate(&name, &secrets.get(&name).await?)?;
        tokens.insert(
            index,
            AdminAccess {
                token,
                certificate_pem,
            },
        );
    }
    Ok(tokens)
}

/// The admin access to the validator `target` names.
fn token_for(tokens: &AdminTokens, target: &Target) -> std::result::Result<AdminAccess, String> {
    tokens
        .get(&target.index)
        .cloned()
        .ok_or_else(|| format!("no admin token read for {}", target.validator))
}

fn targets(b: &BenchRef, indices: impl IntoIterator<Item = u32>) -> Vec<Target> {
    let net = names::bench_network(&b.name);
    indices
        .into_iter()
        .flat_map(|i| {
            ChainName::ALL.map(|chain| Target {
                index: i,
                validator: names::validator_pod(&net, i),
                host: names::validator_host(&net, &b.namespace, i),
                chain,
            })
        })
        .collect()
}

/// Which validators a fault touches: kills take the highest ordinals (validator 0 keeps
/// running, which keeps reports readable); loss/delay the first `validators` or all.
pub fn fault_validators(kind: FaultKind, count: Option<u32>, n: u32) -> Vec<u32> {
    match kind {
        FaultKind::Kill => {
            let k = count.unwrap_or(1).min(n.saturating_sub(1));
            ((n - k)..n).collect()
        }
        FaultKind::Partition => (0..n).collect(),
        FaultKind::MessageLoss | FaultKind::Delay | FaultKind::Bandwidth | FaultKind::ClockSkew => {
            (0..count.unwrap_or(n).min(n)).collect()
        }
    }
}

/// Applies and reverts fault windows; returns seconds until the next window boundary.
async fn drive_faults(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
    status: &mut BenchmarkClusterStatus,
    elapsed: i64,
) -> Result<Option<i64>> {
    if bench.spec.faults.is_empty() {
        return Ok(None);
    }
    let mut next: Option<i64> = None;
    for (i, fault) in bench.spec.faults.iter().enumerate() {
        let start = i64::from(fault.start_seconds);
        let end = start + i64::from(fault.duration_seconds);
        let Some(state) = status.faults.get_mut(i) else {
            continue;
        };
        for boundary in [start, end] {
            if boundary > elapsed {
                next = Some(next.map_or(boundary - elapsed, |n: i64| n.min(boundary - elapsed)));
            }
        }
        let n = bench.spec.validators;
        let affected = fault_validators(fault.kind, fault.validators, n);
        match state.state.as_str() {
            "Pending" if elapsed >= end => {
                // Not applied: the verdict's faultsApplied criterion fails the run.
                state.state = "Missed".into();
                state.message = "window passed before it could be applied".into();
            }
            "Pending" if elapsed >= start => {
                let tokens = admin_tokens(ctx, b, &affected).await?;
                let remaining_ms = ((end - elapsed).max(1) as u64) * 1000;
                let outcome = apply_fault(ctx, b, fault, &affected, &tokens, remaining_ms).await;
                match outcome {
                    Ok(()) => {
                        state.state = "Active".into();
                        state.message = format!("{:?} on validators {:?}", fault.kind, affected);
                        ctx.event(
                            &bench_ref(bench),
                            false,
                            "FaultInjected",
                            "InjectFault",
                            format!("fault {i}: {}", state.message),
                        )
                        .await;
                    }
                    Err(e) => {
                        state.state = "Failed".into();
                        state.message = e;
                        ctx.event(
                            &bench_ref(bench),
                            true,
                            "FaultFailed",
                            "InjectFault",
                            format!("fault {i}: {}", state.message),
                        )
                        .await;
                    }
                }
            }
            "Active" if elapsed >= end => {
                let tokens = admin_tokens(ctx, b, &affected).await?;
                let outcome = revert_fault(ctx, b, fault.kind, &affected, &tokens).await;
                state.state = if outcome.is_ok() { "Done" } else { "Failed" }.into();
                if let Err(e) = outcome {
                    state.message = format!("reverting: {e}");
                }
                ctx.event(
                    &bench_ref(bench),
                    false,
                    "FaultCleared",
                    "ClearFault",
                    format!("fault {i} cleared"),
                )
                .await;
            }
            _ => {}
        }
    }
    Ok(next)
}

fn bench_ref(bench: &BenchmarkCluster) -> k8s_openapi::api::core::v1::ObjectReference {
    bench.object_ref(&())
}

async fn apply_fault(
    ctx: &Context,
    b: &BenchRef,
    fault: &crate::crd::benchmark::Fault,
    affected: &[u32],
    tokens: &AdminTokens,
    expires_after_ms: u64,
) -> std::result::Result<(), String> {
    let api = &ctx.validators;
    match fault.kind {
        FaultKind::Kill => kill_validators(ctx, b, affected).await?,
        FaultKind::Partition => {
            let groups = fault.groups.unwrap_or(2).max(2) as usize;
            for chain in ChainName::ALL {
                let chain_targets: Vec<Target> = targets(b, affected.iter().copied())
                    .into_iter()
                    .filter(|t| t.chain == chain)
                    .collect();
                let mut partitions = vec![Vec::new(); groups];
                for (i, t) in chain_targets.iter().enumerate() {
                    let report = api.status(t.clone()).await.map_err(|e| e.to_string())?;
                    partitions[i % groups].push(report.peer_id);
                }
                for t in chain_targets {
                    let settings = FaultSettings {
                        partitions: partitions.clone(),
                        expires_after_ms,
                        ..Default::default()
                    };
                    let token = token_for(tokens, &t)?;
                    api.set_fault(t, token, Some(settings))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        FaultKind::MessageLoss | FaultKind::Delay | FaultKind::Bandwidth | FaultKind::ClockSkew => {
            let settings = FaultSettings {
                drop_probability: fault.drop_probability.unwrap_or(0.0),
                added_delay_ms: fault.delay_ms.unwrap_or(0),
                jitter_ms: fault.jitter_ms.unwrap_or(0),
                partitions: Vec::new(),
                bandwidth_bytes_per_sec: fault.bytes_per_second.unwrap_or(0),
                clock_skew_ms: fault.skew_ms.unwrap_or(0),
                expires_after_ms,
            };
            for t in targets(b, affected.iter().copied()) {
                let token = token_for(tokens, &t)?;
                api.set_fault(t, token, Some(settings.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

async fn revert_fault(
    ctx: &Context,
    b: &BenchRef,
    kind: FaultKind,
    affected: &[u32],
    tokens: &AdminTokens,
) -> std::result::Result<(), String> {
    if kind == FaultKind::Kill {
        return killed_validators_back(ctx, b, affected).await;
    }
    for t in targets(b, affected.iter().copied()) {
        let token = token_for(tokens, &t)?;
        ctx.validators
            .set_fault(t, token, None)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The pods of the benchmark network's validators `indices`.
fn validator_pods(b: &BenchRef, indices: &[u32]) -> Vec<String> {
    let net = names::bench_network(&b.name);
    indices
        .iter()
        .map(|&i| names::validator_pod(&net, i))
        .collect()
}

/// A `kill` fault: the validators' pods are deleted with no grace period, so their
/// containers get SIGKILL mid-flight (no flush, no goodbye to peers), as a crashed node
/// or a lost machine does. Their StatefulSets recreate them at once; their restart and
/// catch-up are part of the measurement.
async fn kill_validators(
    ctx: &Context,
    b: &BenchRef,
    affected: &[u32],
) -> std::result::Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for pod in validator_pods(b, affected) {
        pods.delete(&pod, &now)
            .await
            .map_err(|e| format!("killing {pod}: {e}"))?;
    }
    Ok(())
}

/// The end of a `kill` window: every killed validator must be running and Ready again
/// (the window is its time to come back); one that is not fails the fault.
async fn killed_validators_back(
    ctx: &Context,
    b: &BenchRef,
    affected: &[u32],
) -> std::result::Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let mut down = Vec::new();
    for name in validator_pods(b, affected) {
        let pod = pods
            .get_opt(&name)
            .await
            .map_err(|e| format!("reading {name}: {e}"))?;
        if !pod.as_ref().is_some_and(pod_ready) {
            down.push(name);
        }
    }
    if down.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "killed validator(s) not Ready again by the end of the window: {}",
            down.join(", ")
        ))
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Best effort: revert every active fault when the run ends (early or not); faults
/// whose window never began are marked `Missed`.
async fn clear_faults(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
    status: &mut BenchmarkClusterStatus,
) {
    for state in status.faults.iter_mut().filter(|s| s.state == "Pending") {
        // Never applied: the verdict's faultsApplied criterion says so.
        state.state = "Missed".into();
        state.message = "the run ended before its window began".into();
    }
    if !status.faults.iter().any(|f| f.state == "Active") {
        return;
    }
    for (i, fault) in bench.spec.faults.iter().enumerate() {
        if let Some(state) = status.faults.get_mut(i).filter(|s| s.state == "Active") {
            let affected = fault_validators(fault.kind, fault.validators, bench.spec.validators);
            let Ok(tokens) = admin_tokens(ctx, b, &affected).await else {
                continue;
            };
            state.state = match revert_fault(ctx, b, fault.kind, &affected, &tokens).await {
                Ok(()) => "Done".into(),
                Err(e) => {
                    state.message = format!("reverting: {e}");
                    "Failed".into()
                }
            };
        }
    }
}

/// What the loadgen Job left behind.
enum LoadgenOutput {
    /// Its result (from the ConfigMap or the termination message).
    Result(String),
    /// No result; how its container ended, when the pod still says.
    Nothing { ended: Option<String> },
}

/// Reads the Job's result: the result ConfigMap first, then the loadgen container's
/// termination message.
/// The plots the loadgen put into its result ConfigMap: only contract keys, PNGs
/// within the size limit (anything else there is ignored, not copied).
pub fn plots_of(result: &ConfigMap) -> std::collections::BTreeMap<String, ByteString> {
    result
        .binary_data
        .iter()
        .flatten()
        .filter(|(key, bytes)| dualchain_contract::loadgen::is_plot(key, &bytes.0))
        .map(|(key, bytes)| (key.clone(), bytes.clone()))
        .collect()
}

async fn read_result(ctx: &Context, b: &BenchRef) -> Result<LoadgenOutput> {
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &b.namespace);
    if let Some(cm) = config_maps
        .get_opt(&names::bench_result_configmap(&b.name))
        .await?
        && let Some(text) = cm
            .data
            .as_ref()
            .and_then(|d| d.get(RESULT_KEY))
            .filter(|t| !t.trim().is_empty())
    {
        return Ok(LoadgenOutput::Result(text.clone()));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let selector = format!("job-name={}", names::bench_job(&b.name));
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let terminated = list.items.iter().flat_map(|p| {
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
    });
    let mut ended = None;
    for t in terminated {
        if let Some(message) = t.message.as_ref().filter(|m| !m.trim().is_empty()) {
            return Ok(LoadgenOutput::Result(message.clone()));
        }
        ended = Some(format!(
            "exit code {}{}{}",
            t.exit_code,
            t.signal
                .map(|s| format!(", signal {s}"))
                .unwrap_or_default(),
            t.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
        ));
    }
    Ok(LoadgenOutput::Nothing { ended })
}

async fn collecting(
    ctx: &Context,
    b: &BenchRef,
    bench: &BenchmarkCluster,
    status: &mut BenchmarkClusterStatus,
) -> Result<Action> {
    let text = match read_result(ctx, b).await? {
        LoadgenOutput::Result(text) => text,
        LoadgenOutput::Nothing { ended } => {
            let ended = ended.map(|e| format!("; its container ended with {e}"));
            fail(
                status,
                ctx,
                "NoResult",
                format!(
                    "loadgen finished without writing {RESULT_KEY} to ConfigMap {} nor a termination message{}",
                    names::bench_result_configmap(&b.name),
                    ended.unwrap_or_default()
                ),
            );
            return Ok(Action::requeue(ctx.settings.converging_interval));
        }
    };
    let result = match parse_result(&text) {
        Ok(r) => r,
        Err(why) => {
            fail(status, ctx, "BadResult", why);
            return Ok(Action::requeue(ctx.settings.converging_interval));
        }
    };
    let nets: Api<DualChainNetwork> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let net_status = nets
        .get_opt(&names::bench_network(&b.name))
        .await?
        .and_then(|n| n.status)
        .unwrap_or_default();
    let restarts = validator_restarts(ctx, b)
        .await?
        .saturating_sub(status.baseline_restarts.unwrap_or(0));
    let results = BenchmarkResults {
        average_tps: result.average_tps,
        submitted: result.submitted,
        committed: result.committed,
        rejected: result.rejected,
        finality_p50_ms: result.finality_ms.p50,
        finality_p95_ms: result.finality_ms.p95,
        finality_p99_ms: result.finality_ms.p99,
        signed: result.signed,
        alpha: net_status.alpha.clone(),
        delta: net_status.delta.clone(),
        validator_restarts: restarts,
    };
    let mut verdicts = evaluate(
        &bench.spec.criteria,
        &results,
        status.baseline_alpha.as_ref(),
        status.baseline_delta.as_ref(),
        bench.spec.baseline.as_ref(),
    );
    verdicts.extend(faults_applied(&status.faults));
    let passed = verdicts.iter().all(|v| v.passed);
    let report = serde_json::to_string_pretty(&serde_json::json!({
        "benchmark": b.name,
        "namespace": b.namespace,
        "validators": bench.spec.validators,
        "workload": bench.spec.workload,
        "faults": bench.spec.faults,
        "faultOutcomes": status.faults,
        "results": results,
        "criteria": verdicts,
        "passed": passed,
        "label": if result.signed { "signed" } else { "unsigned" },
        "loadgen": result,
    }))?;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let plots = cms
        .get_opt(&names::bench_result_configmap(&b.name))
        .await?
        .map(|cm| plots_of(&cm))
        .unwrap_or_default();
    apply(
        &cms,
        &names::bench_report_configmap(&b.name),
        &build::report_configmap(b, report, plots),
    )
    .await?;
    status.report_config_map = Some(names::bench_report_configmap(&b.name));
    status.results = Some(results);
    status.criteria = verdicts.clone();
    if passed {
        status.phase = phase::SUCCEEDED.into();
        status.reason = Some("CriteriaMet".into());
        status.message = Some("every success criterion was met".into());
        status.result = Some("Passed".into());
        status.finished_at = Some(ctx.now_rfc3339());
    } else {
        let failed: Vec<String> = verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| {
                format!(
                    "{} (observed {}, threshold {})",
                    v.name, v.observed, v.threshold
                )
            })
            .collect();
        fail(
            status,
            ctx,
            "CriteriaNotMet",
            format!("failed criteria: {}", failed.join("; ")),
        );
    }
    Ok(Action::requeue(ctx.settings.converging_interval))
}

/// Checks the results against the criteria (pure, unit-tested). `previous` is the
/// result `maxRegressionPercent` compares against.
pub fn evaluate(
    criteria: &SuccessCriteria,
    results: &BenchmarkResults,
    baseline_alpha: Option<&ChainProgress>,
    baseline_delta: Option<&ChainProgress>,
    previous: Option<&Baseline>,
) -> Vec<CriterionResult> {
    let mut out = Vec::new();
    let mut check = |name: &str, passed: bool, observed: String, threshold: String| {
        out.push(CriterionResult {
            name: name.into(),
            passed,
            observed,
            threshold,
        });
    };
    if let Some(min) = criteria.min_average_tps {
        check(
            "minAverageTps",
            results.average_tps >= min,
            format!("{:.1}", results.average_tps),
            format!(">= {min}"),
        );
    }
    for (name, limit, observed) in [
        (
            "maxFinalityP50Ms",
            criteria.max_finality_p50_ms,
            results.finality_p50_ms,
        ),
        (
            "maxFinalityP95Ms",
            criteria.max_finality_p95_ms,
            results.finality_p95_ms,
        ),
        (
            "maxFinalityP99Ms",
            criteria.max_finality_p99_ms,
            results.finality_p99_ms,
        ),
    ] {
        if let Some(limit) = limit {
            check(
                name,
                observed <= limit,
                observed.to_string(),
                format!("<= {limit}"),
            );
        }
    }
    if criteria.no_validator_restarts {
        check(
            "noValidatorRestarts",
            results.validator_restarts == 0,
            results.validator_restarts.to_string(),
            "0".into(),
        );
    }
    if criteria.require_chain_progress {
        let gain = |now: &ChainProgress, base: Option<&ChainProgress>| {
            now.finalized_height
                .saturating_sub(base.map_or(0, |b| b.finalized_height))
        };
        let alpha = gain(&results.alpha, baseline_alpha);
        let delta = gain(&results.delta, baseline_delta);
        check(
            "chainProgress",
            alpha > 0 && delta > 0,
            format!("alpha +{alpha}, delta +{delta} finalized blocks"),
            "> 0 on both chains".into(),
        );
    }
    if let Some(percent) = criteria.max_regression_percent {
        match previous {
            Some(previous) => {
                let floor = previous.average_tps * (1.0 - percent / 100.0);
                check(
                    "maxRegressionPercent",
                    results.average_tps >= floor,
                    format!(
                        "{:.1} TPS, {:+.1} % against {} ({:.1} TPS)",
                        results.average_tps,
                        change_percent(results.average_tps, previous.average_tps).unwrap_or(0.0),
                        previous.run,
                        previous.average_tps
                    ),
                    format!(">= {floor:.1} TPS (at most {percent} % below)"),
                );
            }
            None => check(
                "maxRegressionPercent",
                true,
                "no previous run to compare with".into(),
                format!("at most {percent} % below the previous run"),
            ),
        }
    }
    out
}

/// The `faultsApplied` verdict: a run whose faults were not all applied and cleared
/// measured something other than what it declared, so it fails with the reason of
/// each one that was not (`None` for a run without faults).
pub fn faults_applied(faults: &[FaultStatus]) -> Option<CriterionResult> {
    if faults.is_empty() {
        return None;
    }
    let not_done: Vec<String> = faults
        .iter()
        .filter(|f| f.state != "Done")
        .map(|f| format!("fault {} {}: {}", f.index, f.state, f.message))
        .collect();
    let done = faults.len() - not_done.len();
    let mut observed = format!("{done} of {} applied and cleared", faults.len());
    if !not_done.is_empty() {
        observed = format!("{observed} ({})", not_done.join("; "));
    }
    Some(CriterionResult {
        name: "faultsApplied".into(),
        passed: not_done.is_empty(),
        observed,
        threshold: "every fault applied and cleared".into(),
    })
}

/// How long past its TTL a scheduled run waits for its schedule to record its result
/// (the schedule reconciles as soon as a run changes, so this only covers an operator
/// that is down or behind).
const SCHEDULE_REMEMBER_GRACE_SECS: i64 = 300;

/// Whether `run` may go as far as its schedule is concerned: it is not a scheduled run,
/// its schedule is gone, or the schedule's history holds it (or holds `historyLimit`
/// newer runs, so it would never be recorded). The TTL must not delete a result the
/// history has not taken yet: that history is what outlives the runs.
async fn remembered_by_schedule(
    api: &Api<BenchmarkCluster>,
    run: &BenchmarkCluster,
) -> Result<bool> {
    let Some(schedule) = run.labels().get(SCHEDULED_BY_LABEL) else {
        return Ok(true);
    };
    let Some(schedule) = api.get_opt(schedule).await? else {
        return Ok(true);
    };
    let name = run.name_any();
    let history = schedule.status.map(|s| s.history).unwrap_or_default();
    let full_of_newer = history.len() >= schedule.spec.history_limit as usize
        && history.iter().all(|e| e.run > name);
    Ok(full_of_newer || history.iter().any(|e| e.run == name))
}

/// Percent change from `before` to `now` (`None` when `before` is 0).
pub fn change_percent(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| (now - before) / before * 100.0)
}

async fn finished(
    ctx: &Context,
    bench: &BenchmarkCluster,
    status: BenchmarkClusterStatus,
) -> Result<Action> {
    // Make sure conditions reflect the final phase (e.g. after a restart).
    write_status(bench, ctx, status.clone()).await?;
    let age = seconds_since(ctx, status.finished_at.as_ref());
    let ttl = bench.spec.ttl_seconds_after_finished;
    if age >= ttl {
        let api: Api<BenchmarkCluster> =
            Api::namespaced(ctx.client.clone(), &bench.namespace().unwrap_or_default());
        if !remembered_by_schedule(&api, bench).await? {
            if age < ttl + SCHEDULE_REMEMBER_GRACE_SECS {
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            ctx.event(&bench.object_ref(&()), true, "NotRemembered", "Delete", format!(
                "its schedule has not recorded this run's result {age}s after it finished; deleting it anyway")).await;
        }
        ctx.event(&bench.object_ref(&()), false, "TTLExpired", "Delete", format!(
            "deleting benchmark and everything it owns {age}s after it finished (ttlSecondsAfterFinished {ttl})")).await;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&bench.name_any(), &params).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(Duration::from_secs(
        (ttl - age).max(1) as u64
    )))
}

async fn reconcile_schedule(bench: &BenchmarkCluster, ctx: &Context) -> Result<Action> {
    let b = BenchRef::of(bench)?;
    let schedule_text = bench.spec.schedule.clone().unwrap_or_default();
    let schedule: Schedule = schedule_text.parse().map_err(|e: crate::cron::CronError| {
        Error::InvalidSpec(format!("schedule {schedule_text:?}: {e}"))
    })?;
    let now = ctx.clock.now();
    let api: Api<BenchmarkCluster> = Api::namespaced(ctx.client.clone(), &b.namespace);
    let mut runs = api
        .list(&ListParams::default().labels(&format!("{SCHEDULED_BY_LABEL}={}", b.name)))
        .await?
        .items;
    runs.sort_by_key(|r| std::cmp::Reverse(r.name_any()));
    let mut status = bench.status.clone().unwrap_or_default();
    let since = status
        .last_schedule_time
        .as_ref()
        .and_then(|t| t.parse().ok())
        .or_else(|| bench.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let is_active = |r: &BenchmarkCluster| {
        !matches!(
            r.status.as_ref().map(|s| s.phase.as_str()),
            Some(phase::SUCCEEDED | phase::FAILED)
        )
    };
    if let Some(due) = schedule.latest_due(since, now) {
        status.last_schedule_time = Some(due.to_string());
        if runs.iter().any(is_active) {
            ctx.event(
                &bench.object_ref(&()),
                true,
                "RunSkipped",
                "Schedule",
                format!("tick {due} skipped: the previous run is still active"),
            )
            .await;
        } else {
            let child = scheduled_run(&b, bench, due.as_second());
            match api
                .create(
                    &PostParams {
                        field_manager: Some(names::FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &child,
                )
                .await
            {
                Ok(created) => {
                    ctx.event(
                        &bench.object_ref(&()),
                        false,
                        "RunCreated",
                        "Schedule",
                        format!("created run {}", created.name_any()),
                    )
                    .await;
                    runs.insert(0, created);
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Bounded history: remember every finished run's result, then delete the oldest
    // finished runs beyond historyLimit.
    let keep = bench.spec.history_limit as usize;
    status.history = remembered(&status.history, &runs, keep);
    let mut finished_seen = 0;
    let mut kept = Vec::new();
    for run in runs {
        if is_active(&run) {
            kept.push(run);
            continue;
        }
        finished_seen += 1;
        if finished_seen > keep {
            match api
                .delete(&run.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            kept.push(run);
        }
    }
    let next = schedule.next_after(
        status
            .last_schedule_time
            .as_ref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(now)
            .max(now),
    );
    status.phase = phase::SCHEDULED.into();
    status.reason = Some("Scheduled".into());
    status.message = Some(match next {
        Some(t) => format!("next run at {t}"),
        None => "the schedule never fires".into(),
    });
    status.next_schedule_time = next.map(|t| t.to_string());
    status.runs = kept
        .iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            RunRecord {
                name: r.name_any(),
                phase: s.phase,
                result: s.result,
                average_tps: s.results.map(|x| x.average_tps),
            }
        })
        .collect();
    write_status(bench, ctx, status).await?;
    let wait = next
        .map(|t| (t.as_second() - now.as_second()).clamp(1, 3600) as u64)
        .unwrap_or(3600);
    Ok(Action::requeue(Duration::from_secs(wait)))
}

/// A run created by a schedule: the template's spec without the schedule, owned by it.
/// The schedule's history after its current runs: every finished run not yet
/// remembered joins it, newest first (run names end in their tick), at most `keep`.
/// Runs deleted since (TTL, pruning) stay remembered.
pub fn remembered(
    history: &[HistoryEntry],
    runs: &[BenchmarkCluster],
    keep: usize,
) -> Vec<HistoryEntry> {
    let mut out = history.to_vec();
    for run in runs {
        let name = run.name_any();
        if out.iter().any(|e| e.run == name) {
            continue;
        }
        if let Some(entry) = history_entry(run) {
            out.push(entry);
        }
    }
    out.sort_by(|a, b| run_order(&b.run).cmp(&run_order(&a.run)));
    out.truncate(keep);
    out
}

/// A run's tick (its name's suffix) and name, to order runs by when they started.
fn run_order(name: &str) -> (i64, &str) {
    let tick = name
        .rsplit('-')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (tick, name)
}

/// What the schedule keeps of a finished run (`None` while it runs).
fn history_entry(run: &BenchmarkCluster) -> Option<HistoryEntry> {
    let status = run.status.as_ref()?;
    if !matches!(status.phase.as_str(), phase::SUCCEEDED | phase::FAILED) {
        return None;
    }
    let results = status.results.as_ref();
    let started = status
        .provisioning_started_at
        .as_ref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let ended = status
        .finished_at
        .as_ref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let duration_seconds = started
        .zip(ended)
        .map(|(s, e)| e.as_second() - s.as_second());
    let average_tps = results.map(|r| r.average_tps);
    let tps_change_percent = average_tps
        .zip(run.spec.baseline.as_ref())
        .and_then(|(now, before)| change_percent(now, before.average_tps))
        .map(|p| (p * 10.0).round() / 10.0);
    Some(HistoryEntry {
        run: run.name_any(),
        result: status
            .result
            .clone()
            .unwrap_or_else(|| "Failed".to_string()),
        reason: (status.phase == phase::FAILED)
            .then(|| status.message.clone().or_else(|| status.reason.clone()))
            .flatten(),
        finished_at: status.finished_at.clone(),
        duration_seconds,
        image: run.spec.network.image.clone(),
        faults: run
            .spec
            .faults
            .iter()
            .filter_map(|f| {
                serde_json::to_value(f.kind)
                    .ok()?
                    .as_str()
                    .map(String::from)
            })
            .collect(),
        average_tps,
        finality_p50_ms: results.map(|r| r.finality_p50_ms),
        finality_p95_ms: results.map(|r| r.finality_p95_ms),
        finality_p99_ms: results.map(|r| r.finality_p99_ms),
        tps_change_percent,
    })
}

pub fn scheduled_run(
    b: &BenchRef,
    template: &BenchmarkCluster,
    tick_unix: i64,
) -> BenchmarkCluster {
    let mut spec = template.spec.clone();
    spec.schedule = None;
    // The previous finished run with figures is what this one is compared with.
    spec.baseline = template
        .status
        .as_ref()
        .and_then(|s| s.history.iter().find(|e| e.average_tps.is_some()))
        .map(|e| Baseline {
            run: e.run.clone(),
            average_tps: e.average_tps.unwrap_or_default(),
        })
        .or(spec.baseline);
    let name = format!("{}-{tick_unix}", b.name);
    let mut run = BenchmarkCluster::new(&name, spec);
    let mut labels = names::benchmark_labels(&b.name);
    labels.insert(SCHEDULED_BY_LABEL.into(), b.name.clone());
    run.metadata.namespace = Some(b.namespace.clone());
    run.metadata.labels = Some(labels);
    run.metadata.owner_references = Some(vec![b.owner.clone()]);
    run
}
