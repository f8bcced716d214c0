//! DualChainNetwork reconcile tests against the mocked API server.

use std::sync::Arc;

use kube::runtime::controller::Action;
use serde_json::json;

use super::fake_api::FakeApi;
use super::fixtures::{self, FakeAlpha, FakeValidators, NS, TestClock};
use crate::context::Context;
use crate::crd::network::DualChainNetwork;
use crate::keys;
use crate::reconcile::network::reconcile;

const NOW: &str = "2026-11-21T08:00:00Z";

fn stored_network(fake: &FakeApi, name: &str) -> DualChainNetwork {
    fixtures::refetch(fake.get("dualchain.dev/v1alpha1", NS, "dualchainnetworks", name))
}

/// Puts the network into the fake API and returns it as the controller sees it.
fn create(fake: &FakeApi, name: &str, spec: serde_json::Value) -> DualChainNetwork {
    let net = fixtures::network(name, spec);
    fake.put(
        "dualchain.dev/v1alpha1",
        NS,
        "dualchainnetworks",
        serde_json::to_value(&net).unwrap(),
    );
    stored_network(fake, name)
}

fn sts(fake: &FakeApi, name: &str) -> serde_json::Value {
    fake.get("apps/v1", NS, "statefulsets", name)
        .expect("statefulset")
}

fn condition<'a>(net: &'a DualChainNetwork, type_: &str) -> &'a crate::crd::Condition {
    net.status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap()
}

/// The network's validator StatefulSets, by index.
fn sets(fake: &FakeApi, network: &str) -> Vec<serde_json::Value> {
    let mut sets: Vec<serde_json::Value> = fake
        .list("apps/v1", NS, "statefulsets")
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["dualchain.dev/network"] == network)
        .collect();
    sets.sort_by_key(|s| {
        s["metadata"]["labels"]["dualchain.dev/validator-index"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    });
    sets
}

fn sts_count(fake: &FakeApi, network: &str) -> usize {
    sets(fake, network).len()
}

/// Marks pods ready/updated as the StatefulSet controller would: the lowest `ready`
/// validators Ready, the highest `updated` on their set's template (a roll goes down
/// from the top), every status as new as its set's spec.
fn set_pods(fake: &FakeApi, network: &str, ready: u32, updated: u32) {
    let all = sets(fake, network);
    let n = all.len() as u32;
    for (i, set) in (0..n).zip(all) {
        let name = set["metadata"]["name"].as_str().unwrap();
        fake.patch(
            "apps/v1",
            NS,
            "statefulsets",
            name,
            json!({"status": {
            "replicas": 1, "readyReplicas": u32::from(i < ready),
            "updatedReplicas": u32::from(i + updated >= n),
            "observedGeneration": set["metadata"]["generation"]}}),
        );
    }
}

/// Each validator set's template annotation `key` (e.g. the config hash), by index.
fn template_annotations(fake: &FakeApi, network: &str, key: &str) -> Vec<String> {
    sets(fake, network)
        .iter()
        .map(|s| {
            s["spec"]["template"]["metadata"]["annotations"][key]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Each validator set's first container image, by index.
fn images(fake: &FakeApi, network: &str) -> Vec<String> {
    sets(fake, network)
        .iter()
        .map(|s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Creates network `devnet` of four validators, reconciles it once and marks its
/// four pods ready and updated.
async fn deployed_devnet(fake: &FakeApi, ctx: &Arc<Context>) {
    reconcile(
        Arc::new(create(fake, "devnet", json!({"validators": 4}))),
        ctx.clone(),
    )
    .await
    .unwrap();
    set_pods(fake, "devnet", 4, 4);
}

#[tokio::test]
async fn first_creation_builds_every_object_with_owner_references() {
    let (client, fake) = FakeApi::start();
    let validators = Arc::new(FakeValidators::default());
    let ctx = fixtures::context(client, validators, TestClock::at(NOW));
    let net = create(&fake, "devnet", json!({"validators": 4}));

    let action = reconcile(Arc::new(net), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(ctx.settings.converging_interval));

    // Four key Secrets in the keygen layout, four admin tokens and four admin TLS
    // identities (one per validator) and the accounts keyring.
    let secrets = fake.list("v1", NS, "secrets");
    assert_eq!(secrets.len(), 13, "{secrets:#?}");
    // The pods mount each validator's token digest, never a token.
    let digests = fake
        .get("v1", NS, "configmaps", "devnet-admin-digests")
        .unwrap();
    let mut tokens = std::collections::BTreeSet::new();
    for i in 0..4 {
        let s = fake
            .get("v1", NS, "secrets", &format!("devnet-admin-token-{i}"))
            .unwrap();
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(s).unwrap();
        let token = crate::reconcile::network::read_admin_token("s", &secret).unwrap();
        assert_eq!(
            digests["data"][format!("devnet-{i}-0")],
            json!(keys::admin_token_digest(&token))
        );
        tokens.insert(token.to_string());
    }
    assert_eq!(tokens.len(), 4, "every validator has a token of its own");
    let pod = &sts(&fake, "devnet-1")["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().all(|v| v["secret"]["secretName"]
            .as_str()
            .is_none_or(|n| !n.contains("admin-token"))),
        "{volumes:#?}"
    );
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(
        args.windows(2).any(|w| w[0] == "--admin-token-digest-file"
            && w[1] == "/var/run/dualchain/admin/$(POD_NAME)")
    );
    assert!(!args.contains(&json!("--admin-token-file")));
    // Admin on its own port over TLS, with the pod's own identity mounted alone.
    for (flag, value) in [
        ("--admin-listen", "0.0.0.0:3031"),
        ("--admin-tls-cert", "/var/run/dualchain/admin-tls/tls.crt"),
        ("--admin-tls-key", "/var/run/dualchain/admin-tls/tls.key"),
    ] {
        assert!(
            args.windows(2).any(|w| w[0] == flag && w[1] == value),
            "{flag} {value} in {args:?}"
        );
    }
    // Validator 1's pod mounts validator 1's key and TLS identity, and no other Secret.
    let mounted: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(mounted, ["devnet-validator-1", "devnet-admin-tls-1"]);
    assert!(volumes.iter().all(|v| v.get("projected").is_none()));
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let tls_mount = mounts.iter().find(|m| m["name"] == "admin-tls").unwrap();
    assert_eq!(tls_mount["readOnly"], true);
    let mut certificates = std::collections::BTreeSet::new();
    for i in 0..4 {
        let s = fake
            .get("v1", NS, "secrets", &format!("devnet-admin-tls-{i}"))
            .unwrap();
        assert_eq!(s["type"], json!("kubernetes.io/tls"));
        assert_eq!(s["immutable"], json!(true));
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(s).unwrap();
        let certificate = crate::reconcile::network::read_admin_certificate("s", &secret).unwrap();
        let data = secret.data.unwrap();
        assert!(String::from_utf8_lossy(&data["tls.key"].0).contains("PRIVATE KEY"));
        certificates.insert(certificate);
    }
    assert_eq!(
        certificates.len(),
        4,
        "every validator has an identity of its own"
    );
    let mut public_keys = Vec::new();
    for i in 0..4 {
        let s = fake
            .get("v1", NS, "secrets", &format!("devnet-validator-{i}"))
            .unwrap();
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(s.clone()).unwrap();
        public_keys.push(keys::validator_public_key("s", &secret.data.unwrap()).unwrap());
        assert_eq!(s["immutable"], json!(true));
    }
    // Genesis lists exactly those keys, in order.
    let cm = fake.get("v1", NS, "configmaps", "devnet-genesis").unwrap();
    let genesis =
        dualchain_core::types::Genesis::from_json(cm["data"]["genesis.json"].as_str().unwrap())
            .unwrap();
    assert!(crate::genesis::matches_validators(&genesis, &public_keys));
    assert_eq!(genesis.accounts.len(), 100);
    assert_eq!(genesis.genesis_time_ms, 1_795_248_000_000);

    for (gv, resource, name) in [
        ("v1", "configmaps", "devnet-config"),
        ("v1", "services", "devnet"),
        ("v1", "services", "devnet-peers"),
        ("policy/v1", "poddisruptionbudgets", "devnet"),
        ("apps/v1", "statefulsets", "devnet-0"),
        ("apps/v1", "statefulsets", "devnet-3"),
        ("v1", "persistentvolumeclaims", "data-devnet-0-0"),
        ("v1", "persistentvolumeclaims", "data-devnet-3-0"),
        ("v1", "secrets", "devnet-admin-token-0"),
        ("v1", "secrets", "devnet-admin-token-3"),
        ("v1", "configmaps", "devnet-admin-digests"),
        ("networking.k8s.io/v1", "networkpolicies", "devnet"),
    ] {
        let obj = fake
            .get(gv, NS, resource, name)
            .unwrap_or_else(|| panic!("{resource}/{name} missing"));
        let owner = &obj["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], "uid-devnet", "{resource}/{name}");
        assert_eq!(owner["controller"], true, "{resource}/{name}");
        assert_eq!(owner["kind"], "DualChainNetwork");
    }
    let pdb = fake
        .get("policy/v1", NS, "poddisruptionbudgets", "devnet")
        .unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // One StatefulSet of one pod per validator, each selecting its own pod only.
    assert_eq!(sts_count(&fake, "devnet"), 4);
    let s = sts(&fake, "devnet-2");
    assert_eq!(s["spec"]["replicas"], 1);
    assert_eq!(
        s["spec"]["selector"]["matchLabels"]["dualchain.dev/validator-index"],
        "2"
    );
    assert_eq!(
        s["spec"]["template"]["metadata"]["labels"]["dualchain.dev/validator-index"],
        "2"
    );
    // The StatefulSet never deletes a volume; the claim is the operator's.
    assert_eq!(
        s["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    // The NetworkPolicy guards every validator's pods, admits the operator's pods
    // (from the context's settings) to the API ports, and is applied before the
    // StatefulSets.
    let policy = fake
        .get("networking.k8s.io/v1", NS, "networkpolicies", "devnet")
        .unwrap();
    let guarded = policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap();
    let pod_labels = s["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    assert!(guarded.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert!(!guarded.contains_key("dualchain.dev/validator-index"));
    let api_from = &policy["spec"]["ingress"][1]["from"];
    assert_eq!(
        api_from[2],
        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "operators"}},
               "podSelector": {"matchLabels": {"app.kubernetes.io/name": "op"}}})
    );
    let position = |fragment: &str| {
        fake.log()
            .iter()
            .position(|l| l.method == "PATCH" && l.path.contains(fragment))
            .unwrap()
    };
    assert!(position("/networkpolicies/devnet") < position("/statefulsets/devnet-0"));
    // Server-side apply with our field manager.
    assert!(fake.log().iter().any(|l| l.method == "PATCH"
        && l.path.contains("statefulsets")
        && l.content_type.contains("apply-patch")));

    let net = stored_network(&fake, "devnet");
    let status = net.status.as_ref().unwrap();
    assert_eq!(status.phase, "Provisioning");
    assert_eq!(status.ready, "0/4");
    assert_eq!((status.fault_tolerance, status.quorum), (1, 3));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.genesis_hash.as_deref(),
        Some(genesis.hash().to_hex().as_str())
    );
    assert_eq!(condition(&net, "Ready").reason, "BelowQuorum");
    assert_eq!(condition(&net, "Progressing").status, "True");
    assert_eq!(condition(&net, "FaultTolerant").status, "True");
    // Events for the significant actions.
    assert!(fake.count("POST", "events") >= 3);
    // Secrets are only ever read by name (RBAC grants get/create, not list/watch).
    assert_eq!(fake.collection_reads("secrets"), 0, "{:#?}", fake.log());
}

#[tokio::test]
async fn reconcile_is_idempotent_and_never_rewrites_keys() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    // A key that already exists (e.g. restored from backup) is used, not replaced.
    let existing = dualchain_core::crypto::ValidatorKeypair::from_seed(&[5; 32]);
    let r = crate::build::network::NetworkRef {
        name: "devnet".into(),
        namespace: NS.into(),
        owner: Default::default(),
    };
    let secret =
        crate::build::network::validator_key_secret(&r, 0, keys::validator_key_data(&existing));
    fake.put("v1", NS, "secrets", serde_json::to_value(&secret).unwrap());
    let net = create(&fake, "devnet", json!({"validators": 4}));
    reconcile(Arc::new(net), ctx.clone()).await.unwrap();
    let genesis_before = fake.get("v1", NS, "configmaps", "devnet-genesis").unwrap();
    let secrets_before = fake.list("v1", NS, "secrets");
    let genesis = dualchain_core::types::Genesis::from_json(
        genesis_before["data"]["genesis.json"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(&genesis.validators[0].public_key, existing.public());

    fake.clear_log();
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    assert_eq!(fake.count("POST", "secrets"), 0, "no new Secrets");
    assert_eq!(
        fake.count("POST", "configmaps"),
        0,
        "genesis is created once"
    );
    assert_eq!(
        fake.count("PATCH", "secrets") + fake.count("PUT", "secrets"),
        0,
        "Secrets are never written twice"
    );
    assert_eq!(
        fake.get("v1", NS, "configmaps", "devnet-genesis").unwrap(),
        genesis_before
    );
    assert_eq!(fake.list("v1", NS, "secrets"), secrets_before);
    // Unchanged status is not patched again.
    assert_eq!(fake.count("PATCH", "/status"), 0);
}

#[tokio::test]
async fn status_reads_heights_from_validators() {
    let (client, fake) = FakeApi::start();
    let validators = FakeValidators::all_healthy("devnet", 4, 42);
    let ctx = fixtures::context(client, validators, TestClock::at(NOW));
    deployed_devnet(&fake, &ctx).await;
    let action = reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(ctx.settings.status_interval));
    let net = stored_network(&fake, "devnet");
    let status = net.status.as_ref().unwrap();
    assert_eq!(status.phase, "Running");
    assert_eq!(status.ready_validators, 4);
    assert_eq!(
        (
            status.alpha.height,
            status.alpha.finalized_height,
            status.alpha.reachable_validators
        ),
        (42, 41, 4)
    );
    assert_eq!(status.delta.epoch, 1);
    assert_eq!(condition(&net, "Ready").status, "True");
    assert_eq!(condition(&net, "Degraded").status, "False");
    assert_eq!(condition(&net, "Progressing").reason, "Stable");
}

#[tokio::test]
async fn a_validator_restoring_its_state_is_recovering_with_events() {
    let (client, fake) = FakeApi::start();
    let validators = FakeValidators::all_healthy("devnet", 4, 42);
    let set_reason = |reason: &str| {
        let mut reports = validators.reports.lock().unwrap();
        reports.get_mut("devnet-3-0").unwrap().health_reason = reason.into();
    };
    let syncing = "state sync: filling the empty data directory from a verified snapshot; the chain then follows by block sync to the tip";
    set_reason(syncing);
    let ctx = fixtures::context(client, validators.clone(), TestClock::at(NOW));
    deployed_devnet(&fake, &ctx).await;
    // One more reconcile: its Recovering condition and how many events it posted.
    let (fake, ctx) = (&fake, &ctx);
    let again = move || async move {
        fake.clear_log();
        reconcile(Arc::new(stored_network(fake, "devnet")), ctx.clone())
            .await
            .unwrap();
        let net = stored_network(fake, "devnet");
        let recovering = condition(&net, "Recovering").clone();
        let degraded = condition(&net, "Degraded").status.clone();
        (recovering, degraded, fake.count("POST", "events"))
    };

    let (recovering, degraded, events) = again().await;
    assert_eq!(
        (recovering.status.as_str(), recovering.reason.as_str()),
        ("True", "ValidatorsRecovering")
    );
    // Both chains of devnet-3 report it (the fake answers alike for both).
    assert!(
        recovering
            .message
            .contains(&format!("devnet-3-0 alpha: {syncing}")),
        "{}",
        recovering.message
    );
    assert!(events >= 1, "a ValidatorsRecovering event");
    assert_eq!(degraded, "False", "restoring is not a failure");

    // Done: the condition clears, with an event; unchanged, nothing more is said.
    set_reason("");
    let (recovering, _, events) = again().await;
    assert_eq!(
        (recovering.status.as_str(), recovering.reason.as_str()),
        ("False", "NoneRecovering")
    );
    assert!(events >= 1, "a ValidatorsRecovered event");
    assert_eq!(again().await.2, 0);
}

#[tokio::test]
async fn unreachable_validators_become_a_condition_not_an_error() {
    let (client, fake) = FakeApi::start();
    let validators = FakeValidators::all_healthy("devnet", 4, 7);
    validators.reports.lock().unwrap().remove("devnet-2-0");
    let ctx = fixtures::context(client, validators, TestClock::at(NOW));
    deployed_devnet(&fake, &ctx).await;
    let action = reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone()).await;
    assert!(action.is_ok());
    let net = stored_network(&fake, "devnet");
    let status = net.status.as_ref().unwrap();
    assert_eq!(status.phase, "Degraded");
    assert_eq!(
        status.unreachable_validators,
        vec!["devnet-2-0".to_string()]
    );
    assert_eq!(status.alpha.reachable_validators, 3);
    let degraded = condition(&net, "Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ValidatorsUnreachable")
    );
    assert!(degraded.message.contains("devnet-2-0"));
    assert_eq!(ctx.metrics.failure_count("dualchainnetwork", "ApiError"), 0);
}

#[tokio::test]
async fn config_change_rolls_one_validator_at_a_time() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        FakeValidators::all_healthy("devnet", 4, 3),
        TestClock::at(NOW),
    );
    deployed_devnet(&fake, &ctx).await;
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    const HASH: &str = "dualchain.dev/config-hash";
    let before = template_annotations(&fake, "devnet", HASH)[0].clone();
    assert!(
        template_annotations(&fake, "devnet", HASH)
            .iter()
            .all(|h| *h == before)
    );

    // Change a node setting: the config hash and so the pod template change.
    fake.patch(
        "dualchain.dev/v1alpha1",
        NS,
        "dualchainnetworks",
        "devnet",
        json!({"spec": {"node": {"logLevel": "debug"}}, "metadata": {"generation": 2}}),
    );
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    // Only the last validator gets the new template first.
    let after = template_annotations(&fake, "devnet", HASH)[3].clone();
    assert_ne!(after, before);
    let rolled_from = |fake: &FakeApi| {
        let hashes = template_annotations(fake, "devnet", HASH);
        let p = hashes.iter().position(|h| *h == after).unwrap_or(4);
        assert!(hashes[p..].iter().all(|h| *h == after), "{hashes:?}");
        assert!(hashes[..p].iter().all(|h| *h == before), "{hashes:?}");
        p
    };
    assert_eq!(rolled_from(&fake), 3);
    let cm = fake.get("v1", NS, "configmaps", "devnet-config").unwrap();
    assert!(
        cm["data"]["config.json"]
            .as_str()
            .unwrap()
            .contains("\"debug\"")
    );
    let net = stored_network(&fake, "devnet");
    assert_eq!(condition(&net, "Progressing").reason, "RollingUpdate");
    assert_eq!(net.status.as_ref().unwrap().rollout_partition, Some(3));

    // Its spec is newer than its status: not yet recreated, the roll waits.
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    assert_eq!(rolled_from(&fake), 3);
    // Pod 3 is recreated but not ready yet: the roll waits.
    set_pods(&fake, "devnet", 3, 1);
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    assert_eq!(rolled_from(&fake), 3);
    // Pod 3 ready: move to pod 2, and so on down to 0.
    for (updated, expected) in [(1, 2), (2, 1), (3, 0)] {
        set_pods(&fake, "devnet", 4, updated);
        reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
            .await
            .unwrap();
        assert_eq!(rolled_from(&fake), expected);
    }
    set_pods(&fake, "devnet", 4, 4);
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(net.status.as_ref().unwrap().rollout_partition, None);
}

#[tokio::test]
async fn image_change_waits_for_a_quorum_margin() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        FakeValidators::all_healthy("devnet", 4, 3),
        TestClock::at(NOW),
    );
    reconcile(
        Arc::new(create(&fake, "devnet", json!({"validators": 4}))),
        ctx.clone(),
    )
    .await
    .unwrap();
    // Only 3 of 4 ready: rolling one would leave 2 < quorum 3.
    set_pods(&fake, "devnet", 3, 4);
    fake.patch(
        "dualchain.dev/v1alpha1",
        NS,
        "dualchainnetworks",
        "devnet",
        json!({"spec": {"image": "dualchain:0.2.0"}, "metadata": {"generation": 2}}),
    );
    fake.clear_log();
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    let old = images(&fake, "devnet")[0].clone();
    assert_ne!(old, "dualchain:0.2.0");
    assert_eq!(
        images(&fake, "devnet"),
        vec![old.clone(); 4],
        "no pod may roll yet"
    );
    assert!(fake.count("POST", "events") >= 1, "RolloutBlocked event");
    let net = stored_network(&fake, "devnet");
    assert_eq!(net.status.as_ref().unwrap().rollout_partition, Some(4));
    // All ready again: the roll starts with the last pod.
    set_pods(&fake, "devnet", 4, 4);
    reconcile(Arc::new(stored_network(&fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        images(&fake, "devnet"),
        [&old, &old, &old, "dualchain:0.2.0"]
    );
}

#[tokio::test]
async fn deleted_network_is_left_to_garbage_collection() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    let mut net = create(&fake, "devnet", json!({"validators": 4}));
    net.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        NOW.parse().unwrap(),
    ));
    let action = reconcile(Arc::new(net), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        fake.log().is_empty(),
        "nothing is created for a network being deleted: {:?}",
        fake.log()
    );
}

#[tokio::test]
async fn a_corrupt_key_secret_is_a_permanent_failure_without_hot_loop() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    fake.put("v1", NS, "secrets", json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "devnet-validator-1", "namespace": NS,
                     "labels": {"dualchain.dev/network": "devnet", "dualchain.dev/role": "validator-key"}},
        "data": {"kind": "YWNjb3VudAo="}}));
    let action = reconcile(
        Arc::new(create(&fake, "devnet", json!({"validators": 4}))),
        ctx.clone(),
    )
    .await
    .unwrap();
    assert_eq!(action, Action::await_change());
    let net = stored_network(&fake, "devnet");
    assert_eq!(net.status.as_ref().unwrap().phase, "Failed");
    let ready = condition(&net, "Ready");
    assert_eq!(ready.reason, "BadKeySecret");
    assert!(
        ready.message.contains("devnet-validator-1"),
        "{}",
        ready.message
    );
    assert_eq!(
        ctx.metrics
            .failure_count("dualchainnetwork", "BadKeySecret"),
        1
    );
    // The bad Secret was not overwritten.
    assert_eq!(
        fake.get("v1", NS, "secrets", "devnet-validator-1").unwrap()["data"]["kind"],
        "YWNjb3VudAo="
    );
}

#[tokio::test]
async fn small_networks_say_they_tolerate_no_fault() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    reconcile(
        Arc::new(create(
            &fake,
            "solo",
            json!({"validators": 1, "genesis": {"accounts": 0}}),
        )),
        ctx,
    )
    .await
    .unwrap();
    let net = stored_network(&fake, "solo");
    let ft = condition(&net, "FaultTolerant");
    assert_eq!(
        (ft.status.as_str(), ft.reason.as_str()),
        ("False", "TooFewValidators")
    );
    assert_eq!(
        fake.get("policy/v1", NS, "poddisruptionbudgets", "solo")
            .unwrap()["spec"]["maxUnavailable"],
        0
    );
    assert!(fake.get("v1", NS, "secrets", "solo-accounts").is_none());
}

#[tokio::test]
async fn hundred_validators_reconcile_in_few_requests() {
    let (client, fake) = FakeApi::start();
    let ctx = fixtures::context(
        client,
        Arc::new(FakeValidators::default()),
        TestClock::at(NOW),
    );
    let started = std::time::Instant::now();
    reconcile(
        Arc::new(create(&fake, "big", json!({"validators": 100}))),
        ctx.clone(),
    )
    .await
    .unwrap();
    // Informational only (never asserted): operator-side time against the mock API.
    eprintln!("100-validator first reconcile: {:?}", started.elapsed());
    assert_eq!(fake.list("v1", NS, "secrets").len(), 301);
    assert_eq!(sts_count(&fake, "big"), 100);
    assert_eq!(fake.list("v1", NS, "persistentvolumeclaims").len(), 100);
    // One get + one create per key, per admin token and per admin TLS identity
    // (Secrets are never listed), and a constant number of other calls.
    assert_eq!(fake.collection_reads("secrets"), 0);
    assert_eq!(fake.count("GET", "/secrets/big-validator-"), 100);
    assert_eq!(fake.count("GET", "/secrets/big-admin-token-"), 100);
    assert_eq!(fake.count("GET", "/secrets/big-admin-tls-"), 100);
    // One StatefulSet and one claim per validator, made once: the claims are listed,
    // not read one by one.
    assert_eq!(fake.count("PATCH", "/statefulsets/big-"), 100);
    assert_eq!(fake.count("POST", "/persistentvolumeclaims"), 100);
    assert_eq!(fake.count("GET", "/persistentvolumeclaims/"), 0);
    assert!(fake.log().len() < 840, "{} requests", fake.log().len());
    // Nothing changed: the next reconcile writes no StatefulSet and no claim.
    fake.clear_log();
    reconcile(Arc::new(stored_network(&fake, "big")), ctx)
        .await
        .unwrap();
    assert_eq!(fake.count("PATCH", "/statefulsets/"), 0);
    assert_eq!(fake.count("POST", "/persistentvolumeclaims"), 0);
}

/// The key id (hex) in validator `index`'s key Secret.
fn key_id(fake: &FakeApi, index: u32) -> String {
    let s = fake
        .get("v1", NS, "secrets", &format!("devnet-validator-{index}"))
        .expect("key Secret");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(s).unwrap();
    keys::validator_public_key("s", &secret.data.unwrap())
        .unwrap()
        .id()
        .to_hex()
}

fn validator_keypair(fake: &FakeApi, index: u32) -> dualchain_core::crypto::ValidatorKeypair {
    let s = fake
        .get("v1", NS, "secrets", &format!("devnet-validator-{index}"))
        .unwrap();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(s).unwrap();
    keys::validator_keypair("s", &secret.data.unwrap()).unwrap()
}

fn sts_replicas(fake: &FakeApi) -> usize {
    sts_count(fake, "devnet")
}

fn peers_listed(fake: &FakeApi) -> usize {
    let cm = fake.get("v1", NS, "configmaps", "devnet-config").unwrap();
    let peers: Vec<serde_json::Value> =
        serde_json::from_str(cm["data"]["peers.json"].as_str().unwrap()).unwrap();
    peers.len()
}

/// Every validator of the fake reports `epoch` on both chains.
fn set_epochs(validators: &FakeValidators, epoch: u64) {
    for report in validators.reports.lock().unwrap().values_mut() {
        report.epoch = epoch;
        report.head_epoch = epoch;
    }
}

fn event_reasons(fake: &FakeApi) -> Vec<String> {
    fake.list("events.k8s.io/v1", NS, "events")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

async fn reconcile_devnet(fake: &FakeApi, ctx: &Arc<Context>) -> DualChainNetwork {
    reconcile(Arc::new(stored_network(fake, "devnet")), ctx.clone())
        .await
        .unwrap();
    stored_network(fake, "devnet")
}

#[tokio::test]
async fn scaling_up_then_down_goes_through_join_and_leave_requests_and_the_boundary() {
    let (client, fake) = FakeApi::start();
    let validators = FakeValidators::all_healthy("devnet", 4, 42);
    let ctx = fixtures::context(client, validators.clone(), TestClock::at(NOW));
    deployed_devnet(&fake, &ctx).await;
    let genesis_ids: Vec<String> = (0..4).map(|i| key_id(&fake, i)).collect();
    *validators.alpha.lock().unwrap() = Some(FakeAlpha::running(1, genesis_ids));
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(condition(&net, "Reconfiguring").reason, "Stable");
    let set = net.status.as_ref().unwrap().validator_set.clone().unwrap();
    assert_eq!((set.epoch, set.size), (1, 4));
    assert_eq!(
        set.members,
        vec!["devnet-0-0", "devnet-1-0", "devnet-2-0", "devnet-3-0"]
    );

    // Grow to five: a key and a pod for devnet-4 at once, and its stake lock first.
    let alpha = |f: &dyn Fn(&mut FakeAlpha)| f(validators.alpha.lock().unwrap().as_mut().unwrap());
    fake.patch(
        "dualchain.dev/v1alpha1",
        NS,
        "dualchainnetworks",
        "devnet",
        json!({"spec": {"validators": 5}}),
    );
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(sts_replicas(&fake), 5);
    assert_eq!(peers_listed(&fake), 5, "every pod dials the newcomer");
    let joiner = key_id(&fake, 4);
    let status = net.status.clone().unwrap();
    assert_eq!(status.set_changes.len(), 1, "{:?}", status.set_changes);
    let progress = &status.set_changes[0];
    assert_eq!(
        (progress.validator.as_str(), progress.change.as_str()),
        ("devnet-4-0", "Join")
    );
    let lock = progress.lock.clone().expect("a stake lock");
    assert!(
        progress.state.starts_with("stake lock"),
        "{}",
        progress.state
    );
    assert_eq!(condition(&net, "Reconfiguring").reason, "Scaling");
    // The lock is genesis.stake of the last genesis account but one (100 accounts:
    // ordinal 4 → account 95), and no join goes out before it is committed.
    let accounts = fake.get("v1", NS, "secrets", "devnet-accounts").unwrap();
    let accounts: k8s_openapi::api::core::v1::Secret = serde_json::from_value(accounts).unwrap();
    let keyring = String::from_utf8(accounts.data.unwrap()[keys::KEYRING_KEY].0.clone()).unwrap();
    let sponsor = dualchain_core::types::Address::of(
        keys::keyring_account("s", &keyring, 95).unwrap().public(),
    );
    alpha(&|a| {
        let (owner, amount, committed) = a.locks[&lock.parse().unwrap()];
        assert_eq!((owner, amount, committed), (sponsor, 100, false));
        assert!(a.requests.is_empty());
    });
    reconcile_devnet(&fake, &ctx).await;
    alpha(&|a| {
        assert_eq!(
            (a.locks.len(), a.requests.len()),
            (1, 0),
            "one lock, waiting"
        )
    });

    // Committed: the join goes out once, signed by devnet-4's key for epoch 1.
    alpha(&|a| a.commit_locks());
    reconcile_devnet(&fake, &ctx).await;
    reconcile_devnet(&fake, &ctx).await;
    alpha(&|a| {
        assert_eq!(a.requests.len(), 1, "{:?}", a.requests);
        let r = &a.requests[0];
        assert_eq!(
            (&r.key_id, r.sender, r.lock, r.epoch),
            (&joiner, sponsor, Some(lock.parse().unwrap()), 1)
        );
        assert_eq!(a.pending.joining, vec![joiner.clone()]);
    });
    let net = stored_network(&fake, "devnet");
    let set = net.status.as_ref().unwrap().validator_set.clone().unwrap();
    assert_eq!(set.joining, vec!["devnet-4-0"]);

    // The boundary takes it in: five in the set, quorum and PDB follow.
    alpha(&|a| a.boundary());
    let newcomer = validators.reports.lock().unwrap()["devnet-0-0"].clone();
    validators
        .reports
        .lock()
        .unwrap()
        .insert("devnet-4-0".into(), newcomer);
    set_epochs(&validators, 2);
    set_pods(&fake, "devnet", 5, 5);
    let net = reconcile_devnet(&fake, &ctx).await;
    let status = net.status.clone().unwrap();
    assert!(status.set_changes.is_empty(), "{:?}", status.set_changes);
    assert_eq!(status.validator_set.as_ref().unwrap().size, 5);
    assert_eq!((status.fault_tolerance, status.quorum), (1, 4));
    assert_eq!(condition(&net, "Reconfiguring").reason, "Stable");
    let pdb = fake
        .get("policy/v1", NS, "poddisruptionbudgets", "devnet")
        .unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"], json!(1));
    assert!(event_reasons(&fake).contains(&"ValidatorJoined".to_string()));

    // Shrink to four: devnet-4 asks to leave (fee-free, from its own set-change
    // account) and keeps its pod until both chains passed the boundary.
    fake.patch(
        "dualchain.dev/v1alpha1",
        NS,
        "dualchainnetworks",
        "devnet",
        json!({"spec": {"validators": 4}}),
    );
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(sts_replicas(&fake), 5);
    assert_eq!(condition(&net, "Reconfiguring").reason, "Scaling");
    let own = dualchain_core::types::Address::of(
        dualchain_core::types::set_change_keypair(&validator_keypair(&fake, 4)).public(),
    );
    alpha(&|a| {
        let r = a.requests.last().unwrap();
        assert_eq!(
            (&r.key_id, r.sender, r.lock, r.fee, r.epoch),
            (&joiner, own, None, 0, 2)
        );
        assert_eq!(a.pending.leaving, vec![joiner.clone()]);
    });
    alpha(&|a| a.boundary());
    validators
        .reports
        .lock()
        .unwrap()
        .get_mut("devnet-4-0")
        .unwrap()
        .member = false;
    // Alpha runs epoch 3 without devnet-4; Delta still runs epoch 2.
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(sts_replicas(&fake), 5, "Delta has not passed the boundary");
    assert!(
        condition(&net, "Reconfiguring")
            .message
            .contains("until Delta")
    );
    set_epochs(&validators, 3);
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(sts_replicas(&fake), 4);
    assert_eq!(peers_listed(&fake), 4);
    assert_eq!(condition(&net, "Reconfiguring").reason, "Stable");
    assert_eq!(
        net.status
            .as_ref()
            .unwrap()
            .validator_set
            .as_ref()
            .unwrap()
            .size,
        4
    );
    assert!(event_reasons(&fake).contains(&"ValidatorLeft".to_string()));
}

#[tokio::test]
async fn a_network_without_a_funded_account_refuses_to_grow_and_keeps_its_pods() {
    let (client, fake) = FakeApi::start();
    let validators = FakeValidators::all_healthy("devnet", 4, 42);
    let ctx = fixtures::context(client, validators.clone(), TestClock::at(NOW));
    reconcile(
        Arc::new(create(
            &fake,
            "devnet",
            json!({"validators": 4, "genesis": {"accounts": 0}}),
        )),
        ctx.clone(),
    )
    .await
    .unwrap();
    set_pods(&fake, "devnet", 4, 4);
    let genesis_ids: Vec<String> = (0..4).map(|i| key_id(&fake, i)).collect();
    *validators.alpha.lock().unwrap() = Some(FakeAlpha::running(1, genesis_ids));
    fake.patch(
        "dualchain.dev/v1alpha1",
        NS,
        "dualchainnetworks",
        "devnet",
        json!({"spec": {"validators": 6}}),
    );
    let net = reconcile_devnet(&fake, &ctx).await;
    assert_eq!(sts_replicas(&fake), 4, "no pod that could never join");
    let reconfiguring = condition(&net, "Reconfiguring");
    assert_eq!(reconfiguring.reason, "CannotGrow");
    assert!(
        reconfiguring.message.contains("genesis.accounts is 0"),
        "{}",
        reconfiguring.message
    );
    let alpha = validators.alpha.lock().unwrap().clone().unwrap();
    assert!(alpha.locks.is_empty() && alpha.requests.is_empty());
}
