//! Names and labels of everything the operator creates, in one place so that builders,
//! reconcilers, RBAC and the README contract cannot drift apart.

use std::collections::BTreeMap;

/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "dualchain-operator";
/// `app.kubernetes.io/managed-by` value; watchers select on it.
pub const MANAGED_BY: &str = "dualchain-operator";
/// Label carrying the owning network's name.
pub const NETWORK_LABEL: &str = "dualchain.dev/network";
/// Label carrying the owning benchmark's name.
pub const BENCHMARK_LABEL: &str = "dualchain.dev/benchmark";
/// Label carrying a validator's index on its key Secret, StatefulSet and pod.
pub const VALIDATOR_INDEX_LABEL: &str = "dualchain.dev/validator-index";
/// Label marking what a Secret/ConfigMap holds (`validator-key`, `admin-token`, ...).
pub const ROLE_LABEL: &str = "dualchain.dev/role";
/// Label on a network's loadgen pods carrying the network's name: the validators'
/// NetworkPolicy admits pods with it (and `app.kubernetes.io/component=loadgen`) to the
/// gRPC API ports. Not the network label itself: that would put loadgen pods under the
/// StatefulSet's selector, the PodDisruptionBudget and the peer Service.
pub const LOADGEN_NETWORK_LABEL: &str = "dualchain.dev/loadgen-network";
/// Pod-template annotation: digest of genesis + node config; a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "dualchain.dev/config-hash";
/// StatefulSet annotation: digest of the rendered pod template (rollout bookkeeping).
pub const TEMPLATE_HASH_ANNOTATION: &str = "dualchain.dev/template-hash";

/// Labels put on every object of a network; the selector uses a subset.
pub fn network_labels(network: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "dualchain".into()),
        ("app.kubernetes.io/instance".into(), network.into()),
        ("app.kubernetes.io/component".into(), "validator".into()),
        ("app.kubernetes.io/managed-by".into(), MANAGED_BY.into()),
        (NETWORK_LABEL.into(), network.into()),
    ])
}

/// The pod selector of a network (stable for the StatefulSet's lifetime).
pub fn network_selector(network: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "dualchain".into()),
        (NETWORK_LABEL.into(), network.into()),
    ])
}

/// The labels that let a pod call network `network`'s gRPC API as its load generator.
pub fn loadgen_peer_labels(network: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/component".into(), "loadgen".into()),
        (LOADGEN_NETWORK_LABEL.into(), network.into()),
    ])
}

/// `key=value,...` form of a selector for list calls.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of a benchmark's own objects (Job, RBAC, ConfigMaps).
pub fn benchmark_labels(bench: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "dualchain".into()),
        ("app.kubernetes.io/instance".into(), bench.into()),
        ("app.kubernetes.io/component".into(), "loadgen".into()),
        ("app.kubernetes.io/managed-by".into(), MANAGED_BY.into()),
        (BENCHMARK_LABEL.into(), bench.into()),
    ])
}

/// StatefulSet of validator `index`: one per validator, each with a single pod that
/// mounts only its own key (a StatefulSet's pods share one template, so one set for
/// all validators would have to mount every key in every pod).
pub fn validator_statefulset(network: &str, index: u32) -> String {
    format!("{network}-{index}")
}
/// The selector of validator `index`'s StatefulSet: the network's, narrowed to its index
/// (StatefulSets with overlapping selectors would fight over pods).
pub fn validator_selector(network: &str, index: u32) -> BTreeMap<String, String> {
    let mut labels = network_selector(network);
    labels.insert(VALIDATOR_INDEX_LABEL.into(), index.to_string());
    labels
}
pub fn headless_service(network: &str) -> String {
    format!("{network}-peers")
}
pub fn client_service(network: &str) -> String {
    network.to_string()
}
pub fn genesis_configmap(network: &str) -> String {
    format!("{network}-genesis")
}
pub fn config_configmap(network: &str) -> String {
    format!("{network}-config")
}
pub fn validator_secret(network: &str, index: u32) -> String {
    format!("{network}-validator-{index}")
}
/// Secret holding validator `index`'s own admin token (the operator's copy; validator
/// pods never mount it).
pub fn admin_token_secret(network: &str, index: u32) -> String {
    format!("{network}-admin-token-{index}")
}
/// Secret holding validator `index`'s admin TLS certificate and key (`tls.crt`,
/// `tls.key`): the validator's pod mounts only its own; the operator reads the
/// certificate to trust exactly that validator's admin listener.
pub fn admin_tls_secret(network: &str, index: u32) -> String {
    format!("{network}-admin-tls-{index}")
}
/// ConfigMap holding each validator's admin token digest, keyed by pod name (what the
/// validator pods mount).
pub fn admin_digests_configmap(network: &str) -> String {
    format!("{network}-admin-digests")
}
pub fn accounts_secret(network: &str) -> String {
    format!("{network}-accounts")
}
pub fn pdb(network: &str) -> String {
    network.to_string()
}
pub fn network_policy(network: &str) -> String {
    network.to_string()
}
pub fn service_monitor(network: &str) -> String {
    network.to_string()
}
/// Pod name of validator `index`: ordinal 0 of its own StatefulSet. It is the
/// validator's name everywhere (genesis, peers, status, events).
pub fn validator_pod(network: &str, index: u32) -> String {
    format!("{}-0", validator_statefulset(network, index))
}
/// PVC of validator `index`: what its StatefulSet's claim template `data` names for its
/// pod. The operator creates it first, so its retention follows the network's storage
/// policy rather than the StatefulSet's (deleting a validator's set on a scale-down
/// must not take a volume `whenScaled: Retain` keeps).
pub fn validator_data_claim(network: &str, index: u32) -> String {
    format!("data-{}", validator_pod(network, index))
}
/// Stable DNS name of validator `index` through the headless Service.
pub fn validator_host(network: &str, namespace: &str, index: u32) -> String {
    format!(
        "{}.{}.{namespace}.svc",
        validator_pod(network, index),
        headless_service(network)
    )
}

pub fn bench_network(bench: &str) -> String {
    format!("{bench}-net")
}
pub fn bench_job(bench: &str) -> String {
    format!("{bench}-loadgen")
}
pub fn bench_service_account(bench: &str) -> String {
    format!("{bench}-loadgen")
}
pub fn bench_result_configmap(bench: &str) -> String {
    format!("{bench}-result")
}
pub fn bench_report_configmap(bench: &str) -> String {
    format!("{bench}-report")
}
