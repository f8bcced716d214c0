//! Validators in real pods: the operator against a cluster whose kubelet runs the
//! validator image in containers (e2e/pods.sh builds it). What kwok cannot show is
//! checked here: the chains finalize, the status comes from running validators, and a
//! `kubectl patch` of `validators` changes the set at an epoch boundary.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use dualchain_e2e::{Cluster, Operator, TestNamespace, wait_for};
use dualchain_operator::crd::{BenchmarkCluster, DualChainNetwork};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

/// Creating pods, starting validators and their first certified blocks.
const START: Duration = Duration::from_secs(300);
/// A set change: join or leave committed on Alpha, then the boundary on both chains,
/// then the pods rolled (one at a time) to the new peers list.
const RECONFIGURE: Duration = Duration::from_secs(600);

/// The StorageClass of e2e/pods/volumes.sh (static hostPath volumes).
const STORAGE_CLASS: &str = "e2e-local";

async fn setup(test: &str) -> Result<(Cluster, TestNamespace, Operator)> {
    let cluster = Cluster::connect().await?;
    cluster.ensure_crds().await?;
    let ns = cluster.namespace(test).await?;
    let operator = Operator::start(&cluster, &ns.name).await?;
    Ok((cluster, ns, operator))
}

/// The network settings of every test: short blocks and epochs (a set change is seen
/// within a minute), requests that fit the 2-core node, volumes from the static class.
fn small_template() -> serde_json::Value {
    let resources = json!({
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    });
    json!({
        "image": "dualchain:0.1.0",
        "imagePullPolicy": "Never",
        "alpha": {"blockTimeMs": 3000, "resources": resources},
        "delta": {"blockTimeMs": 1000, "resources": resources},
        "epochLengthAlphaBlocks": 5,
        "storage": {"size": "1Gi", "storageClassName": STORAGE_CLASS},
        "node": {"logLevel": "info"},
    })
}

fn small_network(name: &str, validators: u32) -> Result<DualChainNetwork> {
    let mut spec = small_template();
    spec["validators"] = json!(validators);
    spec["genesis"] = json!({"accounts": 100});
    Ok(serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "DualChainNetwork",
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

/// Prints the validators' last log lines (through the API server and the kubelet) when a
/// wait failed, so the failure says what the chains were doing.
async fn with_pod_logs<T>(cluster: &Cluster, ns: &str, result: Result<T>) -> Result<T> {
    if result.is_err() {
        for container in ["alpha", "delta"] {
            let logs = cluster
                .kubectl(&[
                    "-n",
                    ns,
                    "logs",
                    "-l",
                    "app.kubernetes.io/name=dualchain",
                    "-c",
                    container,
                    "--tail",
                    "15",
                    "--prefix",
                ])
                .await
                .unwrap_or_else(|e| format!("no logs: {e:#}"));
            eprintln!("--- {container} containers ---\n{logs}");
        }
        let pods = cluster
            .kubectl(&["-n", ns, "get", "pods", "-o", "wide"])
            .await
            .unwrap_or_default();
        eprintln!("--- pods ---\n{pods}");
    }
    result
}

/// Waits until both chains have finalized at least these heights, as the status reports
/// them from the validators' own GetStatus.
async fn wait_finalized(
    nets: &Api<DualChainNetwork>,
    name: &str,
    alpha: u64,
    delta: u64,
    timeout: Duration,
) -> Result<DualChainNetwork> {
    wait_for(
        &format!("{name}: Alpha finalized {alpha}, Delta {delta}"),
        timeout,
        || async {
            let net = nets.get(name).await?;
            let status = net.status.as_ref();
            let done = status.is_some_and(|s| {
                s.alpha.finalized_height >= alpha && s.delta.finalized_height >= delta
            });
            Ok(done.then_some(net))
        },
    )
    .await
}

/// Waits until Alpha's set (as the status reads it from the validators) has `size`
/// members, nothing pending, and the network is Ready again.
async fn wait_set(
    nets: &Api<DualChainNetwork>,
    name: &str,
    size: u32,
    timeout: Duration,
) -> Result<DualChainNetwork> {
    wait_for(
        &format!("{name}: a set of {size}, Ready"),
        timeout,
        || async {
            let net = nets.get(name).await?;
            let Some(status) = net.status.as_ref() else {
                return Ok(None);
            };
            let settled = status.validator_set.as_ref().is_some_and(|set| {
                set.size == size && set.joining.is_empty() && set.leaving.is_empty()
            });
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok((settled && ready && status.ready_validators == size).then_some(net))
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn real_validators_finalize_and_a_patch_grows_then_shrinks_the_set() -> Result<()> {
    let (cluster, ns, mut operator) = setup("pods-scale").await?;
    let t0 = Instant::now();
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    nets.create(&PostParams::default(), &small_network("devnet", 4)?)
        .await?;

    let started = wait_finalized(&nets, "devnet", 2, 5, START).await;
    let net = with_pod_logs(&cluster, &ns.name, started).await?;
    eprintln!("pods: both chains finalizing after {:?}", t0.elapsed());
    operator.check_alive()?;
    let status = net.status.context("status")?;
    assert_eq!(status.alpha.reachable_validators, 4, "{status:?}");
    assert_eq!(status.delta.reachable_validators, 4, "{status:?}");
    let set = status.validator_set.context("no validator set read")?;
    assert_eq!(set.size, 4);
    assert_eq!(
        (status.fault_tolerance, status.quorum),
        (1, 3),
        "f and quorum of 4"
    );

    // Every container runs the validator: two per pod, none restarted by a crash.
    let pods: Api<Pod> = ns.api(&cluster.client);
    for pod in pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=dualchain"))
        .await?
    {
        let statuses = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        ensure!(statuses.len() == 2, "two chain containers per pod");
        for c in statuses {
            ensure!(c.ready, "{} not ready", c.name);
        }
    }

    // Grow: the fifth validator gets its key and pod, follows, joins by its own signed
    // request at a boundary; the status then reads a set of five from the chains.
    cluster
        .kubectl(&[
            "-n",
            &ns.name,
            "patch",
            "dcn",
            "devnet",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"validators":5}}"#,
        ])
        .await?;
    let grown = wait_set(&nets, "devnet", 5, RECONFIGURE).await;
    let net = with_pod_logs(&cluster, &ns.name, grown).await?;
    eprintln!("pods: a set of 5, Ready, after {:?}", t0.elapsed());
    let status = net.status.context("status")?;
    assert_eq!((status.fault_tolerance, status.quorum), (1, 4));
    let epoch_grown = status.validator_set.as_ref().map_or(0, |s| s.epoch);
    ensure!(epoch_grown >= 1, "the join took effect at a boundary");
    operator.check_alive()?;

    // Shrink: a leave request, the boundary, and only then the pod goes.
    cluster
        .kubectl(&[
            "-n",
            &ns.name,
            "patch",
            "dcn",
            "devnet",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"validators":4}}"#,
        ])
        .await?;
    let shrunk = wait_set(&nets, "devnet", 4, RECONFIGURE).await;
    let net = with_pod_logs(&cluster, &ns.name, shrunk).await?;
    eprintln!("pods: a set of 4 again after {:?}", t0.elapsed());
    let status = net.status.context("status")?;
    ensure!(
        status.validator_set.as_ref().map_or(0, |s| s.epoch) > epoch_grown,
        "the leave took effect at a later boundary"
    );
    let sets: Api<StatefulSet> = ns.api(&cluster.client);
    wait_for("the leaver's pod removed", RECONFIGURE, || async {
        let set = sets.get("devnet").await?;
        Ok((set.spec.and_then(|s| s.replicas) == Some(4)).then_some(()))
    })
    .await?;
    // The chains go on without it.
    let finalized = status.delta.finalized_height;
    wait_finalized(&nets, "devnet", 0, finalized + 5, START).await?;
    operator.check_alive()?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn a_benchmark_with_a_kill_reaches_a_true_verdict() -> Result<()> {
    let (cluster, ns, mut operator) = setup("pods-bench").await?;
    let t0 = Instant::now();
    let benches: Api<BenchmarkCluster> = ns.api(&cluster.client);
    let bench: BenchmarkCluster = serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "BenchmarkCluster",
        "metadata": {"name": "crash"},
        "spec": {
            "validators": 4,
            "network": small_template(),
            "workload": {"profile": "steady", "tps": 100, "durationSeconds": 60,
                         "accounts": 50, "signed": false},
            // The highest validator's pod is killed 10 s into the load; it has 40 s to
            // be back and Ready.
            "faults": [{"kind": "kill", "validators": 1, "startSeconds": 10,
                        "durationSeconds": 40}],
            "criteria": {"minAverageTps": 50.0, "maxFinalityP99Ms": 30000,
                         "requireChainProgress": true},
            "readyDeadlineSeconds": 300,
            "ttlSecondsAfterFinished": 3600,
        },
    }))?;
    benches.create(&PostParams::default(), &bench).await?;
    let pods: Api<Pod> = ns.api(&cluster.client);
    let first_uid = wait_for("validator crash-net-3 running", START, || async {
        Ok(pods
            .get_opt("crash-net-3")
            .await?
            .and_then(|p| p.metadata.uid))
    })
    .await?;

    let finished = wait_for(
        "the benchmark finished",
        Duration::from_secs(600),
        || async {
            let bench = benches.get("crash").await?;
            let done = bench
                .status
                .as_ref()
                .is_some_and(|s| s.phase == "Succeeded" || s.phase == "Failed");
            Ok(done.then_some(bench))
        },
    )
    .await;
    let bench = with_pod_logs(&cluster, &ns.name, finished).await?;
    eprintln!("pods: benchmark finished after {:?}", t0.elapsed());
    operator.check_alive()?;
    let status = bench.status.context("status")?;
    let summary = format!(
        "{} {:?} {:?}; criteria {:?}; faults {:?}; results {:?}",
        status.phase, status.result, status.message, status.criteria, status.faults, status.results
    );
    eprintln!("pods: {summary}");
    // The kill happened: the pod is a new one.
    let uid_now = pods.get("crash-net-3").await?.metadata.uid;
    ensure!(uid_now != Some(first_uid), "crash-net-3 was never killed");
    assert_eq!(status.faults.len(), 1);
    assert_eq!(status.faults[0].state, "Done", "{summary}");
    assert_eq!(status.phase, "Succeeded", "{summary}");
    assert_eq!(status.result.as_deref(), Some("Passed"), "{summary}");
    let results = status.results.context("results")?;
    ensure!(
        results.committed > 0 && results.average_tps >= 50.0,
        "{summary}"
    );
    ensure!(status.criteria.iter().all(|c| c.passed), "{summary}");
    // The loadgen wrote its result through the API server (its ServiceAccount, the
    // `kubernetes` Service), not only through its termination message.
    let results: Api<ConfigMap> = ns.api(&cluster.client);
    let written = results
        .get("crash-result")
        .await?
        .data
        .and_then(|d| d.get("result.json").cloned())
        .unwrap_or_default();
    if !written.contains("average_tps") {
        let log = cluster
            .kubectl(&["-n", &ns.name, "logs", "job/crash-loadgen", "--tail", "30"])
            .await
            .unwrap_or_else(|e| format!("no log: {e:#}"));
        anyhow::bail!("the result ConfigMap holds {written:?}; the loadgen said:\n{log}");
    }
    Ok(())
}
