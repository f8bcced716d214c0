//! Validators in real pods: the operator against a cluster whose kubelet runs the
//! validator image in containers (e2e/pods.sh builds it). What kwok cannot show is
//! checked here: the chains finalize, the status comes from running validators, and a
//! `kubectl patch` of `validators` changes the set at an epoch boundary.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use dualchain_e2e::{Cluster, Operator, TestNamespace, wait_for};
use dualchain_operator::crd::{BenchmarkCluster, DualChainNetwork};
use dualchain_proto::v1::Chain;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

/// Creating pods, starting validators and their first certified blocks.
const START: Duration = Duration::from_secs(300);
/// A set change: join or leave committed on Alpha, then the boundary on both chains,
/// then the pods rolled (one at a time) to the new peers list.
const RECONFIGURE: Duration = Duration::from_secs(300);

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

/// Waits until all `size` validators run and answer the operator's probe on both chains,
/// and both chains have finalized the given heights. A quorum finalizes before the last
/// pod is up on a loaded machine, so heights alone do not say the network is whole.
async fn wait_started(
    nets: &Api<DualChainNetwork>,
    name: &str,
    size: u32,
    (alpha, delta): (u64, u64),
) -> Result<DualChainNetwork> {
    wait_for(
        &format!("{name}: {size} validators ready, Alpha finalized {alpha}, Delta {delta}"),
        START,
        || async {
            let net = nets.get(name).await?;
            let done = net.status.as_ref().is_some_and(|s| {
                s.ready_validators == size
                    && s.alpha.reachable_validators == size
                    && s.delta.reachable_validators == size
                    && s.alpha.finalized_height >= alpha
                    && s.delta.finalized_height >= delta
            });
            Ok(done.then_some(net))
        },
    )
    .await
}

/// Waits until both chains finalize past what `status` showed (one more Alpha block,
/// three more Delta blocks).
async fn wait_past(
    nets: &Api<DualChainNetwork>,
    name: &str,
    status: &dualchain_operator::crd::network::DualChainNetworkStatus,
) -> Result<DualChainNetwork> {
    let (alpha, delta) = (status.alpha.finalized_height, status.delta.finalized_height);
    wait_finalized(nets, name, alpha + 1, delta + 3, START).await
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
async fn the_helm_installed_operator_runs_a_network_whose_pods_hold_only_their_own_keys()
-> Result<()> {
    let cluster = Cluster::connect().await?;
    let ns = cluster.namespace("pods-helm").await?;
    let t0 = Instant::now();
    // The chart as shipped, but for the image (e2e/pods.sh imports it; the validator
    // image holds the operator binary too, as the Dockerfile's does).
    let chart = dualchain_e2e::repo_root().join("helm/dualchain");
    let chart = chart.to_str().context("chart path is not UTF-8")?;
    cluster
        .helm(&[
            "install",
            "dualchain",
            chart,
            "--namespace",
            &ns.name,
            "--set",
            "image.pullPolicy=Never",
            "--wait",
            "--timeout",
            "3m",
        ])
        .await?;
    eprintln!("pods: operator Deployment Ready after {:?}", t0.elapsed());
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    nets.create(&PostParams::default(), &small_network("devnet", 4)?)
        .await?;
    let started = wait_started(&nets, "devnet", 4, (2, 5)).await;
    if started.is_err() {
        let operator = cluster
            .kubectl(&[
                "-n",
                &ns.name,
                "logs",
                "deploy/dualchain-operator",
                "--tail",
                "40",
            ])
            .await
            .unwrap_or_else(|e| format!("no logs: {e:#}"));
        eprintln!("--- operator ---\n{operator}");
    }
    let net = with_pod_logs(&cluster, &ns.name, started).await?;
    eprintln!("pods: both chains finalizing after {:?}", t0.elapsed());
    let status = net.status.context("status")?;
    assert_eq!(status.delta.reachable_validators, 4, "{status:?}");

    // `kubectl logs` reaches the validators (API server → kubelet → container log).
    let logs = cluster
        .kubectl(&[
            "-n",
            &ns.name,
            "logs",
            "devnet-0-0",
            "-c",
            "delta",
            "--tail",
            "20",
        ])
        .await?;
    ensure!(
        logs.lines().count() >= 3 && logs.contains("INFO"),
        "devnet-0-0's Delta log: {logs}"
    );
    // `kubectl exec` into a validator finds its own key and no other.
    for index in [0, 3] {
        only_its_own_key_in_the_pod(&cluster, &ns.name, index).await?;
    }
    // The operator kept reconciling in its pod: both chains go on.
    wait_past(&nets, "devnet", &status).await?;
    cluster
        .helm(&["uninstall", "dualchain", "--namespace", &ns.name, "--wait"])
        .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn real_validators_finalize_and_a_patch_grows_then_shrinks_the_set() -> Result<()> {
    let (cluster, ns, mut operator) = setup("pods-scale").await?;
    let t0 = Instant::now();
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    nets.create(&PostParams::default(), &small_network("devnet", 4)?)
        .await?;

    let started = wait_started(&nets, "devnet", 4, (2, 5)).await;
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
        .patch_network(&ns.name, "devnet", r#"{"spec":{"validators":5}}"#)
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
        .patch_network(&ns.name, "devnet", r#"{"spec":{"validators":4}}"#)
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
    let pods: Api<Pod> = ns.api(&cluster.client);
    wait_for(
        "the leaver's StatefulSet and pod removed",
        RECONFIGURE,
        || async {
            let gone = sets.get_opt("devnet-4").await?.is_none()
                && pods.get_opt("devnet-4-0").await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    ensure!(
        sets.get_opt("devnet-3").await?.is_some(),
        "the others keep theirs"
    );
    // The chains go on without it.
    let finalized = status.delta.finalized_height;
    wait_finalized(&nets, "devnet", 0, finalized + 5, START).await?;
    operator.check_alive()?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn rolling_a_new_image_tag_keeps_both_chains_finalizing() -> Result<()> {
    let (cluster, ns, mut operator) = setup("pods-roll").await?;
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    // Delta at its default 3 s blocks: a stall is "longer than 3 block times" past 9 s.
    // Sampled from the validators themselves every quarter second (the operator's
    // status, refreshed every 2 s, would add its own interval to every stall).
    let mut net = small_network("devnet", 4)?;
    net.spec.template.delta.block_time_ms = 3000;
    net.spec.template.alpha.block_time_ms = 6000;
    nets.create(&PostParams::default(), &net).await?;
    let started = wait_started(&nets, "devnet", 4, (1, 3)).await;
    with_pod_logs(&cluster, &ns.name, started).await?;

    // e2e/pods.sh imports the validator image under a second tag too.
    cluster
        .patch_network(
            &ns.name,
            "devnet",
            r#"{"spec":{"image":"dualchain:0.1.0-next"}}"#,
        )
        .await?;
    let pods: Api<Pod> = ns.api(&cluster.client);
    let t0 = Instant::now();
    let (mut last, mut last_change) = (0u64, Instant::now());
    let mut longest_stall = Duration::ZERO;
    loop {
        if t0.elapsed() > RECONFIGURE {
            let seen = cluster
                .kubectl(&["-n", &ns.name, "get", "dcn,sts,pods", "-o", "wide"])
                .await
                .unwrap_or_default();
            let conditions = cluster
                .kubectl(&[
                    "-n",
                    &ns.name,
                    "get",
                    "dcn",
                    "devnet",
                    "-o",
                    "jsonpath={.status.conditions}",
                ])
                .await
                .unwrap_or_default();
            anyhow::bail!("the roll did not finish:\n{seen}\n{conditions}");
        }
        let status = nets.get("devnet").await?.status.context("status")?;
        let validators = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=dualchain"))
            .await?
            .items;
        let delta = delta_finalized(&validators).await;
        if delta > last {
            (last, last_change) = (delta, Instant::now());
        }
        longest_stall = longest_stall.max(last_change.elapsed());
        let rolled = validators
            .iter()
            .filter(|p| {
                let image = p.spec.as_ref().map(|s| s.containers[0].image.clone());
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref());
                image == Some(Some("dualchain:0.1.0-next".into()))
                    && ready.is_some_and(|cs| cs.iter().all(|c| c.ready))
            })
            .count();
        if rolled == 4 && status.rollout_partition.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "pods: rolled 4 validators in {:?}; Delta's longest stall {longest_stall:?}",
        t0.elapsed()
    );
    ensure!(
        longest_stall <= Duration::from_secs(9),
        "Delta stalled for {longest_stall:?} during the roll (3 block times: 9 s)"
    );
    // And both chains go on after it.
    let status = nets.get("devnet").await?.status.context("status")?;
    wait_past(&nets, "devnet", &status).await?;
    operator.check_alive()?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn a_schedule_run_twice_on_real_validators_keeps_both_results_past_their_ttls() -> Result<()>
{
    let (cluster, ns, mut operator) = setup("pods-schedule").await?;
    let benches: Api<BenchmarkCluster> = ns.api(&cluster.client);
    let workload = json!({"profile": "steady", "tps": 20, "durationSeconds": 10,
                          "accounts": 20, "signed": false});
    let mut bench = benchmark(
        "nightly",
        workload,
        json!([]),
        json!({"minAverageTps": 5.0}),
    )?;
    // Every minute (a run still going at a tick skips it); each run's tree is deleted
    // 5 s after it ends, so both TTLs expire while the schedule still holds results.
    bench.spec.schedule = Some("* * * * *".into());
    bench.spec.history_limit = 2;
    bench.spec.validators = 3;
    bench.spec.ttl_seconds_after_finished = 5;
    benches.create(&PostParams::default(), &bench).await?;
    let recorded = wait_for("two runs recorded", Duration::from_secs(300), || async {
        let history = benches.get("nightly").await?.status.map(|s| s.history);
        Ok(history.filter(|h| h.len() >= 2))
    })
    .await?;
    // No third run while the rest is checked.
    cluster
        .kubectl(&[
            "-n",
            &ns.name,
            "patch",
            "bench",
            "nightly",
            "--type=merge",
            "-p",
            r#"{"spec":{"schedule":"0 0 1 1 *"}}"#,
        ])
        .await?;
    let runs: Vec<String> = recorded.iter().map(|e| e.run.clone()).collect();
    for run in &runs {
        dualchain_e2e::wait_gone(&benches, run, Duration::from_secs(120)).await?;
    }
    operator.check_alive()?;
    let history = benches
        .get("nightly")
        .await?
        .status
        .context("status")?
        .history;
    let kept: Vec<&str> = history.iter().map(|e| e.run.as_str()).collect();
    assert_eq!(kept, runs, "both results outlive their runs");
    for entry in &history {
        // Real validators: real figures and a verdict on them.
        assert_eq!(entry.result, "Passed", "{entry:?}");
        ensure!(entry.average_tps.is_some_and(|tps| tps >= 5.0), "{entry:?}");
        ensure!(entry.finality_p50_ms.is_some(), "{entry:?}");
        ensure!(entry.duration_seconds.is_some(), "{entry:?}");
    }
    eprintln!(
        "pods: two scheduled runs kept: {:?}",
        history
            .iter()
            .map(|e| (&e.run, e.average_tps))
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// The highest Delta height any of `pods` reports finalized (their own GetStatus,
/// each bounded: a pod being replaced answers nothing and counts for nothing).
async fn delta_finalized(pods: &[Pod]) -> u64 {
    let asks = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .map(|ip| async move {
            let url = format!("http://{ip}:4030");
            let heights = dualchain_client::node::chain_heights(&url, Chain::Delta);
            match tokio::time::timeout(Duration::from_millis(700), heights).await {
                Ok(Ok((_, finalized))) => finalized,
                _ => 0,
            }
        });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// `kubectl exec` into validator `index`'s pod finds one key there, its own: every key
/// file in the pod's filesystem is under the key mount, whose public key is that
/// validator's (the Secret's), and the pod mounts no other validator's Secret.
async fn only_its_own_key_in_the_pod(cluster: &Cluster, namespace: &str, index: u32) -> Result<()> {
    let pod = format!("devnet-{index}-0");
    let key_dir = "/var/run/dualchain/key";
    // busybox is in the test image for this; /proc and /sys hold no files of keys.
    let busybox = |args: &'static [&'static str]| {
        let pod = pod.clone();
        async move {
            let mut command = vec!["-n", namespace, "exec", &pod, "-c", "delta", "--"];
            command.push("/bin/busybox");
            command.extend(args);
            cluster.kubectl(&command).await
        }
    };
    let found = busybox(&[
        "find",
        "/",
        "(",
        "-path",
        "/proc",
        "-o",
        "-path",
        "/sys",
        ")",
        "-prune",
        "-o",
        "-name",
        "secret_seed",
        "-print",
    ])
    .await?;
    let seeds: Vec<&str> = found.lines().collect();
    ensure!(!seeds.is_empty(), "{pod}: no key in the pod");
    ensure!(
        seeds.iter().all(|p| p.starts_with(&format!("{key_dir}/"))),
        "{pod}: key files outside its key mount: {seeds:?}"
    );
    let public = busybox(&["cat", "/var/run/dualchain/key/public_key"]).await?;
    let secret: k8s_openapi::api::core::v1::Secret = cluster
        .kubectl(&[
            "-n",
            namespace,
            "get",
            "secret",
            &format!("devnet-validator-{index}"),
            "-o",
            "json",
        ])
        .await
        .and_then(|json| Ok(serde_json::from_str(&json)?))?;
    let own = secret
        .data
        .and_then(|d| d.get("public_key").map(|b| b.0.clone()))
        .context("public_key in the key Secret")?;
    // (Public keys: printing them on a mismatch reveals nothing.)
    let own = String::from_utf8_lossy(&own);
    ensure!(
        public.trim() == own.trim(),
        "{pod} holds public key {:?} ({} chars), devnet-validator-{index} {:?} ({} chars)",
        public.trim().get(..32),
        public.trim().len(),
        own.trim().get(..32),
        own.trim().len()
    );
    let spec = cluster
        .kubectl(&[
            "-n",
            namespace,
            "get",
            "pod",
            &pod,
            "-o",
            "jsonpath={.spec.volumes[*].secret.secretName}",
        ])
        .await?;
    let mut mounted: Vec<&str> = spec.split_whitespace().collect();
    mounted.sort_unstable();
    ensure!(
        mounted
            == [
                format!("devnet-admin-tls-{index}"),
                format!("devnet-validator-{index}")
            ],
        "{pod} mounts {mounted:?}"
    );
    Ok(())
}

/// A 4-validator BenchmarkCluster on the small template, its load, faults and criteria.
fn benchmark(
    name: &str,
    workload: serde_json::Value,
    faults: serde_json::Value,
    criteria: serde_json::Value,
) -> Result<BenchmarkCluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "BenchmarkCluster",
        "metadata": {"name": name},
        "spec": {
            "validators": 4,
            "network": small_template(),
            "workload": workload,
            "faults": faults,
            "criteria": criteria,
            "readyDeadlineSeconds": 300,
            "ttlSecondsAfterFinished": 3600,
        },
    }))?)
}

/// Waits for the benchmark to finish (either way) and returns it with a one-line summary.
async fn finished(
    cluster: &Cluster,
    ns: &TestNamespace,
    name: &str,
) -> Result<(BenchmarkCluster, String)> {
    let benches: Api<BenchmarkCluster> = ns.api(&cluster.client);
    let done = wait_for(
        &format!("benchmark {name} finished"),
        Duration::from_secs(600),
        || async {
            let bench = benches.get(name).await?;
            let done = bench
                .status
                .as_ref()
                .is_some_and(|s| s.phase == "Succeeded" || s.phase == "Failed");
            Ok(done.then_some(bench))
        },
    )
    .await;
    let bench = with_pod_logs(cluster, &ns.name, done).await?;
    let s = bench.status.clone().context("status")?;
    let summary = format!(
        "{} {:?} {:?} {:?}; criteria {:?}; faults {:?}; results {:?}",
        s.phase, s.reason, s.result, s.message, s.criteria, s.faults, s.results
    );
    eprintln!("pods: {name}: {summary}");
    Ok((bench, summary))
}

/// The loadgen's result as it wrote it to the API server (its ServiceAccount, through
/// the `kubernetes` Service and kube-proxy), not only through its termination message.
async fn written_result(cluster: &Cluster, ns: &TestNamespace, bench: &str) -> Result<String> {
    let maps: Api<ConfigMap> = ns.api(&cluster.client);
    let written = maps
        .get(&format!("{bench}-result"))
        .await?
        .data
        .and_then(|d| d.get("result.json").cloned())
        .unwrap_or_default();
    if !written.contains("average_tps") {
        let log = cluster
            .kubectl(&[
                "-n",
                &ns.name,
                "logs",
                &format!("job/{bench}-loadgen"),
                "--tail",
                "30",
            ])
            .await
            .unwrap_or_else(|e| format!("no log: {e:#}"));
        anyhow::bail!("the result ConfigMap holds {written:?}; the loadgen said:\n{log}");
    }
    Ok(written)
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn a_signed_benchmark_with_every_fault_kind_but_partition_succeeds_with_real_figures()
-> Result<()> {
    let (cluster, ns, mut operator) = setup("pods-bench").await?;
    let t0 = Instant::now();
    let benches: Api<BenchmarkCluster> = ns.api(&cluster.client);
    let workload = json!({"profile": "steady", "tps": 100, "durationSeconds": 60,
                          "accounts": 50, "signed": true});
    // Every validator's messages delayed 50 ms plus up to 20 ms for 10 s; validator 0's
    // links held to 1 MiB/s for 7 s, then its clock 30 s ahead for 7 s; then the highest
    // validator's pod killed, with 25 s to be back and Ready.
    let faults = json!([
        {"kind": "delay", "delayMs": 50, "jitterMs": 20, "startSeconds": 5, "durationSeconds": 10},
        {"kind": "bandwidth", "validators": 1, "bytesPerSecond": 1048576, "startSeconds": 15,
         "durationSeconds": 7},
        {"kind": "clockSkew", "validators": 1, "skewMs": 30000, "startSeconds": 22,
         "durationSeconds": 7},
        {"kind": "kill", "validators": 1, "startSeconds": 30, "durationSeconds": 25},
    ]);
    let criteria = json!({"minAverageTps": 50.0, "maxFinalityP99Ms": 30000,
                          "requireChainProgress": true});
    benches
        .create(
            &PostParams::default(),
            &benchmark("crash", workload, faults, criteria)?,
        )
        .await?;
    let pods: Api<Pod> = ns.api(&cluster.client);
    let first_uid = wait_for("validator crash-net-3 running", START, || async {
        Ok(pods
            .get_opt("crash-net-3-0")
            .await?
            .and_then(|p| p.metadata.uid))
    })
    .await?;

    let (bench, summary) = finished(&cluster, &ns, "crash").await?;
    eprintln!("pods: benchmark finished after {:?}", t0.elapsed());
    operator.check_alive()?;
    let status = bench.status.context("status")?;
    // The kill happened: the pod is a new one.
    let uid_now = pods.get("crash-net-3-0").await?.metadata.uid;
    ensure!(uid_now != Some(first_uid), "crash-net-3 was never killed");
    let states: Vec<&str> = status.faults.iter().map(|f| f.state.as_str()).collect();
    assert_eq!(states, ["Done", "Done", "Done", "Done"], "{summary}");
    assert_eq!(status.phase, "Succeeded", "{summary}");
    assert_eq!(status.result.as_deref(), Some("Passed"), "{summary}");
    let results = status.results.context("results")?;
    ensure!(results.signed, "{summary}");
    ensure!(
        results.committed > 0 && results.average_tps >= 50.0,
        "{summary}"
    );
    ensure!(status.criteria.iter().all(|c| c.passed), "{summary}");
    written_result(&cluster, &ns, "crash").await?;
    // The report the operator keeps.
    let report = status.report_config_map.context("no report ConfigMap")?;
    let maps: Api<ConfigMap> = ns.api(&cluster.client);
    let report = maps.get(&report).await?;
    let data = report.data.unwrap_or_default();
    ensure!(
        data.get("report.json")
            .is_some_and(|r| r.contains("average_tps") || r.contains("averageTps")),
        "report: {data:?}"
    );
    // ...and the plots the loadgen drew in its pod (with text: the image has the font).
    let plots = report.binary_data.unwrap_or_default();
    let sizes: Vec<(&str, usize)> = plots.iter().map(|(k, v)| (k.as_str(), v.0.len())).collect();
    eprintln!("pods: report plots {sizes:?}");
    for key in dualchain_contract::loadgen::PLOT_KEYS {
        let png = plots
            .get(key)
            .with_context(|| format!("no {key} in {sizes:?}"))?;
        ensure!(
            dualchain_contract::loadgen::is_plot(key, &png.0) && png.0.len() > 2_000,
            "{key}: {} bytes",
            png.0.len()
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the real-pod cluster: run e2e/pods.sh"]
async fn a_benchmark_with_an_unreachable_criterion_fails_with_the_reason() -> Result<()> {
    let (cluster, ns, mut operator) = setup("pods-unreachable").await?;
    let benches: Api<BenchmarkCluster> = ns.api(&cluster.client);
    let workload = json!({"profile": "steady", "tps": 50, "durationSeconds": 20,
                          "accounts": 20, "signed": false});
    // No 4-validator network on two cores commits a million transactions a second.
    let criteria = json!({"minAverageTps": 1000000.0, "requireChainProgress": true});
    benches
        .create(
            &PostParams::default(),
            &benchmark("greedy", workload, json!([]), criteria)?,
        )
        .await?;
    let (bench, summary) = finished(&cluster, &ns, "greedy").await?;
    operator.check_alive()?;
    let status = bench.status.context("status")?;
    assert_eq!(status.phase, "Failed", "{summary}");
    assert_eq!(status.result.as_deref(), Some("Failed"), "{summary}");
    assert_eq!(
        status.reason.as_deref(),
        Some("CriteriaNotMet"),
        "{summary}"
    );
    ensure!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("minAverageTps")),
        "{summary}"
    );
    // Real figures: the load ran and was committed; only the bar was out of reach.
    let results = status.results.context("results")?;
    ensure!(results.committed > 0, "{summary}");
    let failed: Vec<&str> = status
        .criteria
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["minAverageTps"], "{summary}");
    written_result(&cluster, &ns, "greedy").await?;
    Ok(())
}
