//! BenchmarkCluster phase-machine tests against the mocked API server.

use std::sync::Arc;

use kube::runtime::controller::Action;
use serde_json::json;

use super::fake_api::FakeApi;
use super::fixtures::{self, AdminCall, FakeValidators, NS, TestClock};
use crate::crd::benchmark::BenchmarkCluster;
use crate::reconcile::benchmark::{parse_result, reconcile};
use crate::validators::FaultSettings;

const NOW: &str = "2026-11-21T08:00:00Z";
const DCN: &str = "dualchain.dev/v1alpha1";

fn stored(fake: &FakeApi, name: &str) -> BenchmarkCluster {
    fixtures::refetch(fake.get(DCN, NS, "benchmarkclusters", name))
}

fn create(fake: &FakeApi, name: &str, spec: serde_json::Value) -> BenchmarkCluster {
    let b = fixtures::benchmark(name, spec);
    fake.put(
        DCN,
        NS,
        "benchmarkclusters",
        serde_json::to_value(&b).unwrap(),
    );
    stored(fake, name)
}

async fn step(fake: &FakeApi, ctx: &Arc<crate::context::Context>, name: &str) -> Action {
    reconcile(Arc::new(stored(fake, name)), ctx.clone())
        .await
        .unwrap()
}

fn phase(fake: &FakeApi, name: &str) -> String {
    stored(fake, name).status.unwrap_or_default().phase
}

fn network_ready(fake: &FakeApi, name: &str, ready: u32, finalized: u64) {
    fake.patch(DCN, NS, "dualchainnetworks", name, json!({"status": {
        "phase": "Running", "readyValidators": ready, "validators": ready, "ready": format!("{ready}/{ready}"),
        "alpha": {"height": finalized + 1, "finalizedHeight": finalized, "epoch": 0, "reachableValidators": ready},
        "delta": {"height": finalized * 5 + 1, "finalizedHeight": finalized * 5, "epoch": 0, "reachableValidators": ready}}}));
}

/// A validator pod as the StatefulSet makes it, Ready or not.
fn validator_pod(fake: &FakeApi, name: &str, ready: bool) {
    fake.put("v1", NS, "pods", json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}));
}

/// The admin token of validator `index` in these tests.
fn token_of(index: u32) -> String {
    format!("s3cr3t-of-validator-{index}")
}

/// The admin certificate of validator `index` in these tests.
fn certificate_of(index: u32) -> Vec<u8> {
    format!("-----BEGIN CERTIFICATE-----\nvalidator-{index}\n-----END CERTIFICATE-----\n")
        .into_bytes()
}

/// One admin token Secret and one admin TLS Secret per validator, as the network
/// reconciler creates them.
fn admin_token_secrets(fake: &FakeApi, network: &str, validators: u32) {
    let secret = |name: String, key: &str, value: Vec<u8>| k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            key.to_string(),
            k8s_openapi::ByteString(value),
        )])),
        ..Default::default()
    };
    for index in 0..validators {
        for s in [
            secret(
                format!("{network}-admin-token-{index}"),
                "token",
                token_of(index).into_bytes(),
            ),
            secret(
                format!("{network}-admin-tls-{index}"),
                "tls.crt",
                certificate_of(index),
            ),
        ] {
            fake.put("v1", NS, "secrets", serde_json::to_value(&s).unwrap());
        }
    }
}

fn spec() -> serde_json::Value {
    json!({"validators": 4, "workload": {"tps": 500, "durationSeconds": 60, "accounts": 50, "signed": false},
           "criteria": {"minAverageTps": 400.0, "maxFinalityP99Ms": 9000},
           "readyDeadlineSeconds": 300, "ttlSecondsAfterFinished": 600,
           "faults": [{"kind": "kill", "startSeconds": 10, "durationSeconds": 20, "validators": 1}]})
}

const GOOD_RESULT: &str = r#"{"average_tps": 480.5, "submitted": 30000, "committed": 28830, "rejected": 12,
  "finality_ms": {"p50": 3100, "p95": 6000, "p99": 8000}, "signed": false}"#;

#[tokio::test]
async fn every_admin_call_carries_the_token_of_the_validator_it_goes_to() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let validators = Arc::new(FakeValidators::default());
    let ctx = fixtures::context(client, validators.clone(), clock.clone());
    let mut s = spec();
    s["faults"] = json!([{"kind": "messageLoss", "startSeconds": 10, "durationSeconds": 20,
                          "dropProbability": 0.1}]);
    create(&fake, "lossy", s);
    step(&fake, &ctx, "lossy").await;
    network_ready(&fake, "lossy-net", 4, 10);
    admin_token_secrets(&fake, "lossy-net", 4);
    step(&fake, &ctx, "lossy").await;
    assert_eq!(phase(&fake, "lossy"), "Running");
    clock.advance(12);
    step(&fake, &ctx, "lossy").await;
    let tokens = validators.tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 8, "4 validators x 2 chains: {tokens:?}");
    for (validator, token) in &tokens {
        let index: u32 = validator.rsplit('-').nth(1).unwrap().parse().unwrap();
        assert_eq!(*token, token_of(index), "{validator}");
    }
    let distinct: std::collections::BTreeSet<&String> = tokens.iter().map(|(_, t)| t).collect();
    assert_eq!(distinct.len(), 4);
    // Each call trusts only the certificate of the validator it goes to.
    let certificates = validators.certificates.lock().unwrap().clone();
    assert_eq!(certificates.len(), 8);
    for (validator, certificate) in &certificates {
        let index: u32 = validator.rsplit('-').nth(1).unwrap().parse().unwrap();
        assert_eq!(*certificate, certificate_of(index), "{validator}");
    }
    // Only the validators' own Secrets were read, each by name.
    assert_eq!(fake.collection_reads("secrets"), 0);
}

/// Runs benchmark `name` with the one injected `fault` (on validators 0 and 1, 10 s into
/// the load, for 20 s) across its window: the settings sent on applying it (checked to
/// go to both chains of exactly those validators), then that it is cleared after.
async fn injected_window(name: &str, fault: serde_json::Value) -> Vec<FaultSettings> {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let validators = Arc::new(FakeValidators::default());
    let ctx = fixtures::context(client, validators.clone(), clock.clone());
    let mut s = spec();
    let mut fault = fault;
    fault["startSeconds"] = json!(10);
    fault["durationSeconds"] = json!(20);
    fault["validators"] = json!(2);
    s["faults"] = json!([fault]);
    create(&fake, name, s);
    step(&fake, &ctx, name).await;
    let net = format!("{name}-net");
    network_ready(&fake, &net, 4, 10);
    admin_token_secrets(&fake, &net, 4);
    step(&fake, &ctx, name).await;
    assert_eq!(phase(&fake, name), "Running");
    clock.advance(12);
    step(&fake, &ctx, name).await;
    let set: Vec<AdminCall> = validators.calls.lock().unwrap().drain(..).collect();
    let mut reached = Vec::new();
    let mut settings = Vec::new();
    for call in set {
        let AdminCall::Fault {
            validator,
            chain,
            fault: Some(f),
        } = call
        else {
            panic!("only the fault is set: {call:?}");
        };
        // Applied 2 s into its window: the node clears it at the window's end.
        assert_eq!(f.expires_after_ms, 18_000, "{f:?}");
        reached.push((validator, chain));
        settings.push(f);
    }
    reached.sort();
    let expected: Vec<(String, &str)> = (0..2)
        .flat_map(|i| ["alpha", "delta"].map(|c| (format!("{net}-{i}-0"), c)))
        .collect();
    assert_eq!(reached, expected);
    clock.advance(20);
    step(&fake, &ctx, name).await;
    let cleared: Vec<AdminCall> = validators.calls.lock().unwrap().drain(..).collect();
    assert_eq!(cleared.len(), 4, "{cleared:?}");
    assert!(
        cleared
            .iter()
            .all(|c| matches!(c, AdminCall::Fault { fault: None, .. })),
        "{cleared:?}"
    );
    settings
}

/// A bandwidth fault limits the links of the validators it names for its window.
#[tokio::test]
async fn a_bandwidth_fault_limits_the_named_validators_links_for_its_window() {
    let fault = json!({"kind": "bandwidth", "bytesPerSecond": 65536});
    for f in injected_window("thin", fault).await {
        let expected = FaultSettings {
            bandwidth_bytes_per_sec: 65_536,
            expires_after_ms: 18_000,
            ..FaultSettings::default()
        };
        assert_eq!(f, expected);
    }
}

/// A clockSkew fault sets the named validators' clocks off for its window.
#[tokio::test]
async fn a_clock_skew_fault_sets_the_named_validators_clocks_off_for_its_window() {
    let fault = json!({"kind": "clockSkew", "skewMs": -45000});
    for f in injected_window("late", fault).await {
        let expected = FaultSettings {
            clock_skew_ms: -45_000,
            expires_after_ms: 18_000,
            ..FaultSettings::default()
        };
        assert_eq!(f, expected);
    }
}

/// A killed validator that is not Ready again by the end of its window fails the fault,
/// and with it the run's `faultsApplied` criterion.
#[tokio::test]
async fn a_killed_validator_that_does_not_come_back_fails_its_fault() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let ctx = fixtures::context(client, Arc::new(FakeValidators::default()), clock.clone());
    create(&fake, "crash", spec());
    step(&fake, &ctx, "crash").await;
    network_ready(&fake, "crash-net", 4, 10);
    admin_token_secrets(&fake, "crash-net", 4);
    step(&fake, &ctx, "crash").await;
    assert_eq!(phase(&fake, "crash"), "Running");
    for i in 0..4 {
        validator_pod(&fake, &format!("crash-net-{i}-0"), true);
    }
    clock.advance(12);
    step(&fake, &ctx, "crash").await;
    assert!(fake.get("v1", NS, "pods", "crash-net-3-0").is_none());
    // Recreated, but still starting when the window ends.
    validator_pod(&fake, "crash-net-3-0", false);
    clock.advance(20);
    step(&fake, &ctx, "crash").await;
    let fault = stored(&fake, "crash").status.unwrap().faults[0].clone();
    assert_eq!(fault.state, "Failed");
    assert!(fault.message.contains("crash-net-3-0"), "{}", fault.message);
}

#[tokio::test]
async fn full_lifecycle_to_success_and_ttl_teardown() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let validators = Arc::new(FakeValidators::default());
    let ctx = fixtures::context(client, validators.clone(), clock.clone());
    create(&fake, "nightly", spec());

    // Pending -> Provisioning: an owned network sized and funded for the workload.
    step(&fake, &ctx, "nightly").await;
    assert_eq!(phase(&fake, "nightly"), "Provisioning");
    let net = fake
        .get(DCN, NS, "dualchainnetworks", "nightly-net")
        .expect("network");
    assert_eq!(net["spec"]["validators"], 4);
    assert_eq!(net["spec"]["genesis"]["accounts"], 50);
    assert_eq!(net["spec"]["genesis"]["allowUnsignedTransactions"], true);
    assert_eq!(net["metadata"]["ownerReferences"][0]["uid"], "uid-nightly");

    // Not ready yet: stays Provisioning.
    step(&fake, &ctx, "nightly").await;
    assert_eq!(phase(&fake, "nightly"), "Provisioning");

    // Ready -> Running: RBAC, result ConfigMap and the loadgen Job.
    network_ready(&fake, "nightly-net", 4, 10);
    admin_token_secrets(&fake, "nightly-net", 4);
    step(&fake, &ctx, "nightly").await;
    assert_eq!(phase(&fake, "nightly"), "Running");
    let job = fake
        .get("batch/v1", NS, "jobs", "nightly-loadgen")
        .expect("job");
    let args: Vec<String> =
        serde_json::from_value(job["spec"]["template"]["spec"]["containers"][0]["args"].clone())
            .unwrap();
    assert_eq!(args[0], "loadgen");
    assert!(args.contains(&"--unsigned".to_string()) && args.contains(&"--json".to_string()));
    assert!(args.windows(2).any(|w| w[0] == "--tps" && w[1] == "500"));
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--result-configmap" && w[1] == "bench-ns/nightly-result")
    );
    let role = fake
        .get(
            "rbac.authorization.k8s.io/v1",
            NS,
            "roles",
            "nightly-loadgen",
        )
        .unwrap();
    assert_eq!(role["rules"][0]["resourceNames"], json!(["nightly-result"]));
    assert!(fake.get("v1", NS, "configmaps", "nightly-result").is_some());
    assert!(
        fake.get("v1", NS, "serviceaccounts", "nightly-loadgen")
            .is_some()
    );
    assert!(
        fake.get(
            "rbac.authorization.k8s.io/v1",
            NS,
            "rolebindings",
            "nightly-loadgen"
        )
        .is_some()
    );

    // Fault window: at +10 s the highest validator's pod is killed (deleted with no
    // grace period); no admin call is needed for that...
    for i in 0..4 {
        validator_pod(&fake, &format!("nightly-net-{i}-0"), true);
    }
    clock.advance(12);
    step(&fake, &ctx, "nightly").await;
    assert!(validators.calls.lock().unwrap().is_empty());
    assert!(
        fake.get("v1", NS, "pods", "nightly-net-3-0").is_none(),
        "killed"
    );
    assert!(fake.get("v1", NS, "pods", "nightly-net-2-0").is_some());
    assert_eq!(
        fake.count("DELETE", "/pods/nightly-net-3-0"),
        1,
        "{:?}",
        fake.log()
    );
    assert_eq!(
        stored(&fake, "nightly").status.unwrap().faults[0].state,
        "Active"
    );
    // ...the StatefulSet brings it back, and at the window's end it is Ready: Done.
    validator_pod(&fake, "nightly-net-3-0", true);
    clock.advance(20);
    step(&fake, &ctx, "nightly").await;
    assert_eq!(
        stored(&fake, "nightly").status.unwrap().faults[0].state,
        "Done"
    );

    // Job completes and wrote its result: Collecting -> Succeeded.
    fake.patch(
        "batch/v1",
        NS,
        "jobs",
        "nightly-loadgen",
        json!({"status": {"succeeded": 1}}),
    );
    // Exactly the merge patch the loadgen sends, carrying its full `--json` document
    // and its plots.
    let (plots, _) = dualchain_loadgen::report::loadgen_plots(
        &loadgen_report(),
        &[],
        std::path::Path::new(dualchain_loadgen::report::DEFAULT_FONT),
    )
    .unwrap();
    fake.patch(
        "v1",
        NS,
        "configmaps",
        "nightly-result",
        dualchain_loadgen::result_sink::patch_body(&loadgen_document(), &plots),
    );
    network_ready(&fake, "nightly-net", 4, 30);
    step(&fake, &ctx, "nightly").await;
    assert_eq!(phase(&fake, "nightly"), "Collecting");
    step(&fake, &ctx, "nightly").await;
    let b = stored(&fake, "nightly");
    let status = b.status.clone().unwrap();
    assert_eq!(status.phase, "Succeeded", "{:?}", status.message);
    assert_eq!(status.result.as_deref(), Some("Passed"));
    let results = status.results.unwrap();
    assert_eq!(results.average_tps, 480.5);
    assert_eq!(results.finality_p99_ms, 8000);
    assert!(!results.signed);
    assert!(
        status.criteria.iter().all(|c| c.passed),
        "{:?}",
        status.criteria
    );
    assert_eq!(status.criteria.len(), 5);
    let applied = status
        .criteria
        .iter()
        .find(|c| c.name == "faultsApplied")
        .expect("a run with faults is judged on them");
    assert_eq!(applied.observed, "1 of 1 applied and cleared");
    let report = fake
        .get("v1", NS, "configmaps", "nightly-report")
        .expect("report");
    // The plots are copied next to the JSON, byte for byte.
    for plot in &plots {
        let copied: k8s_openapi::ByteString =
            serde_json::from_value(report["binaryData"][plot.key].clone()).unwrap();
        assert_eq!(copied.0, plot.png, "{}", plot.key);
    }
    let report: serde_json::Value =
        serde_json::from_str(report["data"]["report.json"].as_str().unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["label"], "unsigned");
    assert!(
        b.status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    );

    // TTL: nothing before 600 s, deletion after.
    clock.advance(300);
    let action = step(&fake, &ctx, "nightly").await;
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(300)));
    assert_eq!(fake.count("DELETE", "benchmarkclusters"), 0);
    clock.advance(300);
    let action = step(&fake, &ctx, "nightly").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(fake.count("DELETE", "benchmarkclusters/nightly"), 1);
    assert!(fake.get(DCN, NS, "benchmarkclusters", "nightly").is_none());
}

/// A run whose load ended before a fault's window began measured something else
/// than it declared: it fails, naming the fault, instead of passing.
#[tokio::test]
async fn a_fault_that_was_never_applied_fails_the_run() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let validators = Arc::new(FakeValidators::default());
    let ctx = fixtures::context(client, validators.clone(), clock.clone());
    let mut s = spec();
    s["faults"][0]["startSeconds"] = json!(50);
    create(&fake, "skipped", s);
    step(&fake, &ctx, "skipped").await;
    network_ready(&fake, "skipped-net", 4, 10);
    admin_token_secrets(&fake, "skipped-net", 4);
    step(&fake, &ctx, "skipped").await;
    assert_eq!(phase(&fake, "skipped"), "Running");
    // The load ends at +20 s, before the fault's window at +50 s.
    clock.advance(20);
    fake.patch(
        "batch/v1",
        NS,
        "jobs",
        "skipped-loadgen",
        json!({"status": {"succeeded": 1}}),
    );
    fake.patch(
        "v1",
        NS,
        "configmaps",
        "skipped-result",
        dualchain_loadgen::result_sink::patch_body(&loadgen_document(), &[]),
    );
    network_ready(&fake, "skipped-net", 4, 30);
    step(&fake, &ctx, "skipped").await;
    assert_eq!(phase(&fake, "skipped"), "Collecting");
    step(&fake, &ctx, "skipped").await;
    let status = stored(&fake, "skipped").status.unwrap();
    assert_eq!(status.phase, "Failed");
    assert_eq!(status.reason.as_deref(), Some("CriteriaNotMet"));
    assert_eq!(status.faults[0].state, "Missed");
    let message = status.message.unwrap();
    assert!(message.contains("faultsApplied"), "{message}");
    assert!(message.contains("fault 0 Missed"), "{message}");
    assert!(
        validators.calls.lock().unwrap().is_empty(),
        "nothing was applied"
    );
}

#[tokio::test]
async fn provisioning_deadline_fails_with_a_clear_reason() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let ctx = fixtures::context(client, Arc::new(FakeValidators::default()), clock.clone());
    create(&fake, "slow", spec());
    step(&fake, &ctx, "slow").await;
    fake.patch(
        DCN,
        NS,
        "dualchainnetworks",
        "slow-net",
        json!({"status": {"readyValidators": 2}}),
    );
    clock.advance(299);
    step(&fake, &ctx, "slow").await;
    assert_eq!(phase(&fake, "slow"), "Provisioning");
    clock.advance(1);
    step(&fake, &ctx, "slow").await;
    let status = stored(&fake, "slow").status.unwrap();
    assert_eq!(status.phase, "Failed");
    assert_eq!(status.reason.as_deref(), Some("NetworkNotReady"));
    let message = status.message.unwrap();
    assert!(
        message.contains("2/4 validators ready after 300s"),
        "{message}"
    );
    assert_eq!(status.finished_at.as_deref(), Some("2026-11-21T08:05:00Z"));
    assert!(fake.get("batch/v1", NS, "jobs", "slow-loadgen").is_none());
}

#[tokio::test]
async fn unmet_criteria_and_failed_jobs_fail_the_run() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at(NOW);
    let ctx = fixtures::context(client, Arc::new(FakeValidators::default()), clock.clone());
    let mut s = spec();
    s["faults"] = json!([]);
    create(&fake, "weak", s.clone());
    create(&fake, "broken", s);
    for name in ["weak", "broken"] {
        step(&fake, &ctx, name).await;
        network_ready(&fake, &format!("{name}-net"), 4, 10);
        step(&fake, &ctx, name).await;
        assert_eq!(phase(&fake, name), "Running");
    }
    fake.patch(
        "batch/v1",
        NS,
        "jobs",
        "weak-loadgen",
        json!({"status": {"succeeded": 1}}),
    );
    fake.patch("v1", NS, "configmaps", "weak-result", json!({"data": {"result.json":
        r#"{"average_tps": 120.0, "submitted": 1, "committed": 1, "finality_ms": {"p50": 1, "p95": 2, "p99": 20000}, "signed": true}"#}}));
    step(&fake, &ctx, "weak").await;
    step(&fake, &ctx, "weak").await;
    let status = stored(&fake, "weak").status.unwrap();
    assert_eq!(status.phase, "Failed");
    assert_eq!(status.reason.as_deref(), Some("CriteriaNotMet"));
    let message = status.message.unwrap();
    assert!(
        message.contains("minAverageTps")
            && message.contains("maxFinalityP99Ms")
            && message.contains("chainProgress"),
        "{message}"
    );

    fake.patch("batch/v1", NS, "jobs", "broken-loadgen", json!({"status": {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}));
    step(&fake, &ctx, "broken").await;
    let status = stored(&fake, "broken").status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("LoadgenFailed"));
    assert!(status.message.unwrap().contains("BackoffLimitExceeded"));
}

#[tokio::test]
async fn a_job_without_result_fails_as_no_result() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    let mut s = spec();
    s["faults"] = json!([]);
    create(&fake, "mute", s);
    step(&fake, &ctx, "mute").await;
    network_ready(&fake, "mute-net", 4, 10);
    step(&fake, &ctx, "mute").await;
    fake.patch(
        "batch/v1",
        NS,
        "jobs",
        "mute-loadgen",
        json!({"status": {"succeeded": 1}}),
    );
    step(&fake, &ctx, "mute").await;
    step(&fake, &ctx, "mute").await;
    assert_eq!(
        stored(&fake, "mute").status.unwrap().reason.as_deref(),
        Some("NoResult")
    );
}

#[tokio::test]
async fn restarted_operator_resumes_without_duplicates() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    let mut s = spec();
    s["faults"] = json!([]);
    create(&fake, "resume", s);
    step(&fake, &ctx, "resume").await;
    network_ready(&fake, "resume-net", 4, 10);
    step(&fake, &ctx, "resume").await;
    // The Job already wrote a result; a restart re-running the same phase must not reset it.
    fake.patch(
        "v1",
        NS,
        "configmaps",
        "resume-result",
        json!({"data": {"result.json": GOOD_RESULT}}),
    );
    let mut status = stored(&fake, "resume").status.unwrap();
    status.phase = "Provisioning".into();
    fake.patch(
        DCN,
        NS,
        "benchmarkclusters",
        "resume",
        json!({"status": status}),
    );
    step(&fake, &ctx, "resume").await;
    assert_eq!(fake.list("batch/v1", NS, "jobs").len(), 1);
    assert_eq!(fake.list(DCN, NS, "dualchainnetworks").len(), 1);
    let cm = fake.get("v1", NS, "configmaps", "resume-result").unwrap();
    assert!(
        cm["data"]["result.json"]
            .as_str()
            .unwrap()
            .contains("480.5")
    );
}

/// Stores a scheduled benchmark `name` created at 01:00 on 2026-11-21.
fn put_schedule(fake: &FakeApi, name: &str, spec: serde_json::Value) {
    let mut b = fixtures::benchmark(name, spec);
    b.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-21T01:00:00Z".parse().unwrap(),
    ));
    fake.put(
        DCN,
        NS,
        "benchmarkclusters",
        serde_json::to_value(&b).unwrap(),
    );
}

/// A fake API holding schedule `nightly` (`0 2 * * *`, created at 01:00, the clock at
/// 01:59) whose spec is `spec()` with `extra`'s fields.
fn nightly_schedule(
    extra: serde_json::Value,
) -> (FakeApi, Arc<TestClock>, Arc<crate::context::Context>) {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at("2026-11-21T01:59:00Z");
    let ctx = fixtures::context(client, Arc::new(FakeValidators::default()), clock.clone());
    let mut s = spec();
    s["schedule"] = json!("0 2 * * *");
    for (key, value) in extra.as_object().unwrap() {
        s[key] = value.clone();
    }
    put_schedule(&fake, "nightly", s);
    (fake, clock, ctx)
}

#[tokio::test]
async fn scheduled_benchmarks_create_runs_and_keep_bounded_history() {
    let (fake, clock, ctx) = nightly_schedule(json!({"historyLimit": 1}));

    step(&fake, &ctx, "nightly").await;
    let status = stored(&fake, "nightly").status.unwrap();
    assert_eq!(status.phase, "Scheduled");
    assert_eq!(
        status.next_schedule_time.as_deref(),
        Some("2026-11-21T02:00:00Z")
    );
    assert_eq!(fake.list(DCN, NS, "benchmarkclusters").len(), 1);

    clock.advance(120);
    step(&fake, &ctx, "nightly").await;
    let run = stored(&fake, "nightly-1795226400");
    assert!(run.spec.schedule.is_none());
    assert_eq!(run.metadata.owner_references.unwrap()[0].uid, "uid-nightly");
    assert_eq!(stored(&fake, "nightly").status.unwrap().runs.len(), 1);
    // Mark it finished; the next night creates another and prunes beyond historyLimit=1.
    fake.patch(
        DCN,
        NS,
        "benchmarkclusters",
        "nightly-1795226400",
        json!({"status": {"phase": "Succeeded", "result": "Passed"}}),
    );
    clock.advance(24 * 3600);
    step(&fake, &ctx, "nightly").await;
    assert!(
        fake.get(DCN, NS, "benchmarkclusters", "nightly-1795312800")
            .is_some()
    );
    fake.patch(
        DCN,
        NS,
        "benchmarkclusters",
        "nightly-1795312800",
        json!({"status": {"phase": "Failed", "result": "Failed"}}),
    );
    step(&fake, &ctx, "nightly").await;
    assert!(
        fake.get(DCN, NS, "benchmarkclusters", "nightly-1795226400")
            .is_none(),
        "oldest finished run pruned"
    );
    let runs = stored(&fake, "nightly").status.unwrap().runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].result.as_deref(), Some("Failed"));
}

/// Only the loadgen contract's plots (known keys, PNG, bounded) reach the report: a
/// result ConfigMap is writable by the loadgen's pod, the report is the operator's.
#[test]
fn only_contract_plots_are_copied_into_the_report() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::ConfigMap;
    let png = [&dualchain_contract::loadgen::PNG_SIGNATURE[..], b"x"].concat();
    let cm = ConfigMap {
        binary_data: Some(std::collections::BTreeMap::from([
            ("tps.png".to_string(), ByteString(png.clone())),
            ("other.png".to_string(), ByteString(png.clone())),
            ("heights.png".to_string(), ByteString(b"text".to_vec())),
        ])),
        ..Default::default()
    };
    let plots = crate::reconcile::benchmark::plots_of(&cm);
    assert_eq!(plots.keys().collect::<Vec<_>>(), ["tps.png"]);
}

/// A schedule remembers every finished run's figures after the run itself is gone
/// (pruned or deleted at its TTL), newest first and at most `historyLimit`; each run
/// is compared with the previous one.
#[tokio::test]
async fn a_schedule_keeps_its_history_after_the_runs_are_deleted_and_compares_each_run() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at("2026-11-21T01:59:00Z");
    let ctx = fixtures::context(client, Arc::new(FakeValidators::default()), clock.clone());
    let mut s = spec();
    s["schedule"] = json!("0 2 * * *");
    s["historyLimit"] = json!(2);
    s["criteria"]["maxRegressionPercent"] = json!(10.0);
    s["faults"] = json!([{"kind": "kill", "validators": 1, "startSeconds": 5}]);
    put_schedule(&fake, "nightly", s);
    let progress = json!({"height": 5, "finalizedHeight": 4, "epoch": 0, "reachableValidators": 4});
    let finish = |run: &str, result: &str, tps: f64| {
        fake.patch(DCN, NS, "benchmarkclusters", run, json!({"status": {
            "phase": if result == "Passed" { "Succeeded" } else { "Failed" },
            "result": result,
            "message": if result == "Passed" { "every success criterion was met" } else { "failed criteria: maxRegressionPercent" },
            "provisioningStartedAt": "2026-11-21T02:00:00Z",
            "finishedAt": "2026-11-21T02:10:00Z",
            "results": {"averageTps": tps, "submitted": 1, "committed": 1, "rejected": 0,
                        "finalityP50Ms": 900, "finalityP95Ms": 1500, "finalityP99Ms": 2100,
                        "signed": true, "alpha": progress, "delta": progress, "validatorRestarts": 0}}}));
    };
    // A run's TTL expired: it and its report are gone.
    let expire = |run: &str| fake.remove(DCN, NS, "benchmarkclusters", run);

    // Night 1: no previous run, so nothing to compare with.
    clock.advance(120);
    step(&fake, &ctx, "nightly").await;
    let first = stored(&fake, "nightly-1795226400");
    assert_eq!(first.spec.baseline, None);
    finish("nightly-1795226400", "Passed", 1000.0);
    step(&fake, &ctx, "nightly").await;
    let history = stored(&fake, "nightly").status.unwrap().history;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].run, "nightly-1795226400");
    assert_eq!(history[0].average_tps, Some(1000.0));
    assert_eq!(history[0].finality_p95_ms, Some(1500));
    assert_eq!(history[0].duration_seconds, Some(600));
    assert_eq!(history[0].faults, ["kill"]);
    assert_eq!(history[0].image, first.spec.network.image);
    expire("nightly-1795226400");

    // Night 2 is compared with night 1.
    clock.advance(24 * 3600);
    step(&fake, &ctx, "nightly").await;
    let second = stored(&fake, "nightly-1795312800");
    let baseline = second.spec.baseline.clone().expect("a baseline");
    assert_eq!(baseline.run, "nightly-1795226400");
    assert_eq!(baseline.average_tps, 1000.0);
    finish("nightly-1795312800", "Failed", 850.0);
    step(&fake, &ctx, "nightly").await;
    expire("nightly-1795312800");

    // Night 3: both earlier runs are deleted, their results are not.
    clock.advance(24 * 3600);
    step(&fake, &ctx, "nightly").await;
    assert_eq!(
        stored(&fake, "nightly-1795399200")
            .spec
            .baseline
            .unwrap()
            .run,
        "nightly-1795312800"
    );
    finish("nightly-1795399200", "Passed", 900.0);
    step(&fake, &ctx, "nightly").await;
    let history = stored(&fake, "nightly").status.unwrap().history;
    let runs: Vec<&str> = history.iter().map(|e| e.run.as_str()).collect();
    assert_eq!(
        runs,
        ["nightly-1795399200", "nightly-1795312800"],
        "historyLimit 2"
    );
    assert_eq!(history[1].result, "Failed");
    assert_eq!(history[1].tps_change_percent, Some(-15.0));
    assert!(
        history[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("maxRegressionPercent")
    );
    assert_eq!(history[0].tps_change_percent, Some(5.9));
}

/// A scheduled run's TTL never deletes a result its schedule has not recorded yet (the
/// history is what outlives the runs): the run waits until the schedule took it, or at
/// most a bounded grace, which says so in an event.
#[tokio::test]
async fn a_scheduled_run_outlives_its_ttl_until_its_schedule_recorded_it() {
    let (fake, clock, ctx) =
        nightly_schedule(json!({"historyLimit": 2, "ttlSecondsAfterFinished": 5}));
    let finish = |run: &str, at: &str| {
        fake.patch(
            DCN,
            NS,
            "benchmarkclusters",
            run,
            json!({"status": {
            "phase": "Succeeded", "result": "Passed", "finishedAt": at,
            "provisioningStartedAt": at}}),
        );
    };
    let exists = |run: &str| fake.get(DCN, NS, "benchmarkclusters", run).is_some();

    clock.advance(120);
    step(&fake, &ctx, "nightly").await;
    finish("nightly-1795226400", "2026-11-21T02:01:00Z");
    clock.advance(60);
    step(&fake, &ctx, "nightly-1795226400").await;
    assert!(
        exists("nightly-1795226400"),
        "past its TTL, not yet recorded"
    );
    step(&fake, &ctx, "nightly").await;
    let history = stored(&fake, "nightly").status.unwrap().history;
    assert_eq!(history[0].run, "nightly-1795226400");
    step(&fake, &ctx, "nightly-1795226400").await;
    assert!(!exists("nightly-1795226400"), "recorded: the TTL applies");

    // A schedule that never records it (its operator behind): the run goes after the
    // grace, with a warning.
    clock.advance(24 * 3600 - 60);
    step(&fake, &ctx, "nightly").await;
    finish("nightly-1795312800", "2026-11-22T02:00:00Z");
    clock.advance(60);
    step(&fake, &ctx, "nightly-1795312800").await;
    assert!(exists("nightly-1795312800"));
    clock.advance(300);
    step(&fake, &ctx, "nightly-1795312800").await;
    assert!(!exists("nightly-1795312800"));
    let reasons: Vec<String> = fake
        .list("events.k8s.io/v1", NS, "events")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons.contains(&"NotRemembered".to_string()),
        "{reasons:?}"
    );
}

/// `maxRegressionPercent` fails a run slower than its baseline by more than the
/// percentage, passes one within it, and passes (saying why) without a baseline.
#[test]
fn regression_is_judged_against_the_baseline() {
    use crate::crd::benchmark::{Baseline, BenchmarkResults, SuccessCriteria};
    use crate::reconcile::benchmark::evaluate;
    let criteria = SuccessCriteria {
        max_regression_percent: Some(10.0),
        no_validator_restarts: false,
        require_chain_progress: false,
        ..SuccessCriteria::default()
    };
    let results = |tps: f64| BenchmarkResults {
        average_tps: tps,
        ..BenchmarkResults::default()
    };
    let previous = Baseline {
        run: "nightly-1".into(),
        average_tps: 1000.0,
    };
    let verdict = |tps: f64, previous: Option<&Baseline>| {
        let out = evaluate(&criteria, &results(tps), None, None, previous);
        assert_eq!(out.len(), 1, "{out:?}");
        out[0].clone()
    };
    assert!(verdict(901.0, Some(&previous)).passed);
    assert!(verdict(900.0, Some(&previous)).passed, "exactly 10 % below");
    let slow = verdict(850.0, Some(&previous));
    assert!(!slow.passed);
    assert!(slow.observed.contains("-15.0 %"), "{slow:?}");
    assert!(slow.observed.contains("nightly-1"), "{slow:?}");
    let first = verdict(1.0, None);
    assert!(first.passed);
    assert_eq!(first.observed, "no previous run to compare with");
}

/// What a real `dualchain loadgen --json` run with [`GOOD_RESULT`]'s figures prints:
/// the loadgen's own report type, serialized as the loadgen serializes it.
fn loadgen_report() -> dualchain_loadgen::LoadgenReport {
    dualchain_loadgen::LoadgenReport {
        result: parse_result(GOOD_RESULT).unwrap(),
        accepted: 28_900,
        uncommitted: 70,
        target_tps: Some(500.0),
        duration_s: 60.0,
        run_s: 60.0,
        targets: vec!["http://nightly-net-0-0.nightly-net-peers.ns.svc:4030".into()],
        rejected_by_status: [("DUPLICATE".to_string(), 12)].into(),
        ..Default::default()
    }
}

fn loadgen_document() -> String {
    serde_json::to_string(&loadgen_report()).unwrap()
}

#[test]
fn the_loadgen_output_round_trips_through_the_operator_parser() {
    let report = loadgen_report();
    // The full document (stdout, the ConfigMap) and the compact one (the
    // termination-log fallback) both parse to exactly the loadgen's contract fields.
    let full = loadgen_document();
    assert_eq!(parse_result(&full).unwrap(), report.result);
    let compact = report.result.to_json();
    assert_eq!(parse_result(&compact).unwrap(), report.result);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let oversized = format!(
        "{}{}",
        &full[..full.len() - 1],
        format_args!(",\"pad\":\"{}\"}}", "x".repeat(5000))
    );
    dualchain_loadgen::result_sink::write_termination_log(&log, &oversized, &compact).unwrap();
    assert_eq!(
        parse_result(&std::fs::read_to_string(&log).unwrap()).unwrap(),
        report.result
    );
    // The key the loadgen patches is the key the operator reads.
    let patch = dualchain_loadgen::result_sink::patch_body(&full, &[]);
    let text = patch["data"][crate::build::benchmark::RESULT_KEY]
        .as_str()
        .unwrap();
    assert_eq!(parse_result(text).unwrap(), report.result);
}

#[test]
fn loadgen_results_are_parsed_with_limits() {
    assert_eq!(parse_result(GOOD_RESULT).unwrap().finality_ms.p95, 6000);
    assert!(parse_result("{}").unwrap_err().contains("not loadgen JSON"));
    assert!(
        parse_result(&" ".repeat(70_000))
            .unwrap_err()
            .contains("bytes")
    );
}
