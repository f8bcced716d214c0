//! Snapshot tests (insta, YAML) of the rendered objects for representative specs.
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always` then `git diff`).

use serde_json::json;

use super::fixtures;
use crate::build::benchmark::{self as bench_build, BenchRef};
use crate::build::network::{self as build, NetworkRef};

fn devnet() -> (crate::crd::DualChainNetwork, NetworkRef) {
    let net = fixtures::network(
        "devnet",
        json!({
            "validators": 4,
            "image": "registry.example/dualchain:0.1.0",
            "storage": {"size": "20Gi", "storageClassName": "fast"},
            "serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom"}},
            "nodeSelector": {"dualchain.dev/pool": "validators"},
        }),
    );
    let r = NetworkRef::of(&net).unwrap();
    (net, r)
}

#[test]
fn statefulset() {
    let (net, r) = devnet();
    let template = build::pod_template(&net, "0123456789abcdef", 2);
    insta::assert_yaml_snapshot!(build::statefulset(&r, &net, 2, template));
    insta::assert_yaml_snapshot!("data_claim", build::data_claim(&r, &net, 2));
}

#[test]
fn each_validator_mounts_only_its_own_secrets() {
    let (net, _) = devnet();
    for index in 0..4 {
        let pod = build::pod_template(&net, "h", index).spec.unwrap();
        let secrets: Vec<String> = pod
            .volumes
            .unwrap()
            .into_iter()
            .filter_map(|v| {
                assert!(v.projected.is_none(), "{}: no projected volumes", v.name);
                v.secret?.secret_name
            })
            .collect();
        assert_eq!(
            secrets,
            [
                format!("devnet-validator-{index}"),
                format!("devnet-admin-tls-{index}")
            ]
        );
    }
}

#[test]
fn a_data_claim_is_owned_by_the_network_only_when_deleting_it_deletes_the_data() {
    let (mut net, r) = devnet();
    let owned = build::data_claim(&r, &net, 0).metadata.owner_references;
    assert_eq!(owned.map(|o| o.len()), Some(1));
    net.spec.template.storage.when_deleted = crate::crd::network::RetentionPolicy::Retain;
    assert!(
        build::data_claim(&r, &net, 0)
            .metadata
            .owner_references
            .is_none()
    );
}

#[test]
fn services_and_pdb() {
    let (_, r) = devnet();
    insta::assert_yaml_snapshot!("headless_service", build::headless_service(&r));
    insta::assert_yaml_snapshot!("client_service", build::client_service(&r));
    insta::assert_yaml_snapshot!("pdb_4", build::pdb(&r, 4));
    insta::assert_yaml_snapshot!("pdb_100", build::pdb(&r, 100));
}

#[test]
fn network_policy() {
    let (_, r) = devnet();
    let operator = crate::context::OperatorPods::parse(
        "dualchain-system",
        "app.kubernetes.io/name=dualchain-operator,app.kubernetes.io/instance=prod",
    )
    .unwrap();
    insta::assert_yaml_snapshot!("network_policy", build::network_policy(&r, Some(&operator)));
    // Without operator pods (an operator outside the cluster) only that peer is gone.
    let policy = build::network_policy(&r, None);
    let api_from = policy.spec.unwrap().ingress.unwrap()[1]
        .from
        .clone()
        .unwrap();
    assert_eq!(api_from.len(), 2);
    assert!(
        api_from
            .iter()
            .all(|peer| peer.namespace_selector.is_none())
    );
}

#[test]
fn config_and_service_monitor() {
    let (net, r) = devnet();
    insta::assert_yaml_snapshot!("config", build::config_configmap(&r, &net, 4).unwrap());
    insta::assert_yaml_snapshot!("service_monitor", build::service_monitor(&r, &net));
}

#[test]
fn loadgen_job_and_rbac() {
    let bench = fixtures::benchmark(
        "nightly",
        json!({
            "validators": 3,
            "workload": {"profile": "bursty", "maxLoad": true, "durationSeconds": 600, "accounts": 2000, "signed": true},
        }),
    );
    let b = BenchRef::of(&bench).unwrap();
    insta::assert_yaml_snapshot!("loadgen_job", bench_build::loadgen_job(&b, &bench));
    insta::assert_yaml_snapshot!("loadgen_role", bench_build::role(&b));
    insta::assert_yaml_snapshot!("bench_network", bench_build::network(&b, &bench));
}

#[test]
fn hardened_pods_everywhere() {
    let (net, _) = devnet();
    let pod = build::pod_template(&net, "h", 4).spec.unwrap();
    let psc = pod.security_context.unwrap();
    assert_eq!(
        (psc.run_as_non_root, psc.run_as_user),
        (Some(true), Some(10001))
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    for c in pod.containers {
        let sc = c.security_context.unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert!(c.readiness_probe.unwrap().grpc.is_some());
        assert!(c.liveness_probe.unwrap().grpc.is_some());
        let key = c
            .volume_mounts
            .unwrap()
            .into_iter()
            .find(|m| m.name == "validator-keys")
            .unwrap();
        assert_eq!((key.read_only, key.sub_path_expr), (Some(true), None));
    }
}

#[test]
fn config_changes_change_the_template_hash() {
    let (net, _) = devnet();
    let a = build::template_hash(&build::pod_template(&net, "aaaa", 4));
    let b = build::template_hash(&build::pod_template(&net, "bbbb", 4));
    assert_ne!(a, b);
    let mut net2 = net.clone();
    net2.spec.template.image = "dualchain:9".into();
    assert_ne!(
        a,
        build::template_hash(&build::pod_template(&net2, "aaaa", 4))
    );
    assert_eq!(
        a,
        build::template_hash(&build::pod_template(&net, "aaaa", 4))
    );
    // Validators differ in their Secrets, so in their templates.
    assert_ne!(
        a,
        build::template_hash(&build::pod_template(&net, "aaaa", 3))
    );
}
