//! Pure builders of a network's objects: no I/O, so each is unit- and snapshot-tested.
//!
//! Every object carries the network's labels and a controller owner reference, so that
//! deleting the DualChainNetwork garbage-collects all of it (a validator's PVC carries
//! the reference only when `storage.whenDeleted` is `Delete`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, GRPCAction, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};

use crate::context::OperatorPods;
use crate::crd::common::{ChainResources, fault_tolerance};
use crate::crd::network::{DualChainNetwork, NetworkTemplate, RetentionPolicy};
use crate::keys::{
    ADMIN_TLS_CERT_KEY, ADMIN_TLS_KEY_KEY, ADMIN_TOKEN_KEY, AdminTlsPem, KEYRING_KEY,
};
use crate::names::{self, CONFIG_HASH_ANNOTATION, ROLE_LABEL, TEMPLATE_HASH_ANNOTATION};
use crate::ports;
pub use dualchain_core::types::PeerEntry;

/// UID/GID the validator containers run as (non-root; the image creates this user).
pub const RUN_AS_USER: i64 = 10001;
/// Where the genesis ConfigMap is mounted.
pub const GENESIS_DIR: &str = "/etc/dualchain/genesis";
/// Where the config ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/dualchain/config";
/// Where the pod's own validator key directory is mounted.
pub const KEY_DIR: &str = "/var/run/dualchain/key";
/// Where the admin digests ConfigMap is mounted: `<ADMIN_DIR>/<pod name>` holds the
/// BLAKE3 digest of that validator's admin token. No token is ever in a pod.
pub const ADMIN_DIR: &str = "/var/run/dualchain/admin";
/// Where a validator container finds its own admin TLS certificate and key.
pub const ADMIN_TLS_DIR: &str = "/var/run/dualchain/admin-tls";
/// The persistent volume; each chain uses `<DATA_DIR>/<chain>`.
pub const DATA_DIR: &str = "/var/lib/dualchain";

/// A builder failure (only possible for names Kubernetes would refuse anyway).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("object has no {0}; it must come from the API server")]
    MissingMetadata(&'static str),
    #[error("cannot serialise {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// Name, namespace and owner reference of a network, read once.
#[derive(Clone, Debug)]
pub struct NetworkRef {
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
}

impl NetworkRef {
    pub fn of(net: &DualChainNetwork) -> Result<Self, BuildError> {
        Ok(Self {
            name: net.name_any(),
            namespace: net
                .namespace()
                .ok_or(BuildError::MissingMetadata("namespace"))?,
            owner: net
                .controller_owner_ref(&())
                .ok_or(BuildError::MissingMetadata("uid"))?,
        })
    }

    fn meta(&self, name: String, extra_labels: &[(&str, &str)]) -> ObjectMeta {
        let mut labels = names::network_labels(&self.name);
        for (k, v) in extra_labels {
            labels.insert((*k).to_string(), (*v).to_string());
        }
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}

/// Secret holding validator `index`'s key directory (created once, never updated).
pub fn validator_key_secret(
    net: &NetworkRef,
    index: u32,
    data: BTreeMap<String, ByteString>,
) -> Secret {
    let index_text = index.to_string();
    Secret {
        metadata: net.meta(
            names::validator_secret(&net.name, index),
            &[
                (ROLE_LABEL, "validator-key"),
                (names::VALIDATOR_INDEX_LABEL, &index_text),
            ],
        ),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(data),
        ..Default::default()
    }
}

/// Secret holding validator `index`'s admin bearer token (created once, never updated;
/// only the operator reads it, no pod mounts it).
pub fn admin_token_secret(net: &NetworkRef, index: u32, token: &str) -> Secret {
    let index_text = index.to_string();
    Secret {
        metadata: net.meta(
            names::admin_token_secret(&net.name, index),
            &[
                (ROLE_LABEL, "admin-token"),
                (names::VALIDATOR_INDEX_LABEL, &index_text),
            ],
        ),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Secret holding validator `index`'s admin TLS certificate and key (created once,
/// never updated; the validator's pod mounts its own, the operator reads the
/// certificate).
pub fn admin_tls_secret(net: &NetworkRef, index: u32, tls: &AdminTlsPem) -> Secret {
    let index_text = index.to_string();
    Secret {
        metadata: net.meta(
            names::admin_tls_secret(&net.name, index),
            &[
                (ROLE_LABEL, "admin-tls"),
                (names::VALIDATOR_INDEX_LABEL, &index_text),
            ],
        ),
        type_: Some("kubernetes.io/tls".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([
            (
                ADMIN_TLS_CERT_KEY.to_string(),
                ByteString(tls.certificate.as_bytes().to_vec()),
            ),
            (
                ADMIN_TLS_KEY_KEY.to_string(),
                ByteString(tls.private_key.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// ConfigMap of every validator's admin token digest, keyed by pod name (server-side
/// applied; a digest of 256 random bits reveals nothing usable, so every pod may see
/// all of them, unlike the tokens).
pub fn admin_digests_configmap(net: &NetworkRef, digests: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: net.meta(
            names::admin_digests_configmap(&net.name),
            &[(ROLE_LABEL, "admin-digests")],
        ),
        data: Some(digests),
        ..Default::default()
    }
}

/// Secret holding the funded accounts' keyring (for load generators).
pub fn accounts_secret(net: &NetworkRef, keyring: &str) -> Secret {
    Secret {
        metadata: net.meta(
            names::accounts_secret(&net.name),
            &[(ROLE_LABEL, "accounts-keyring")],
        ),
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            KEYRING_KEY.to_string(),
            ByteString(keyring.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Key of the genesis JSON in the genesis ConfigMap.
pub const GENESIS_KEY: &str = "genesis.json";
/// Key of the node settings in the config ConfigMap.
pub const CONFIG_KEY: &str = "config.json";
/// Key of the peer list in the config ConfigMap.
pub const PEERS_KEY: &str = "peers.json";

/// Genesis ConfigMap (created once; immutable).
pub fn genesis_configmap(net: &NetworkRef, genesis_json: String, genesis_hash: &str) -> ConfigMap {
    let mut meta = net.meta(
        names::genesis_configmap(&net.name),
        &[(ROLE_LABEL, "genesis")],
    );
    meta.annotations = Some(BTreeMap::from([(
        "dualchain.dev/genesis-hash".to_string(),
        genesis_hash.to_string(),
    )]));
    ConfigMap {
        metadata: meta,
        immutable: Some(true),
        data: Some(BTreeMap::from([(GENESIS_KEY.to_string(), genesis_json)])),
        ..Default::default()
    }
}

/// The peer list (stable DNS names through the headless Service).
pub fn peers(net: &NetworkRef, validators: u32) -> Vec<PeerEntry> {
    (0..validators)
        .map(|i| PeerEntry {
            index: i,
            name: names::validator_pod(&net.name, i),
            host: names::validator_host(&net.name, &net.namespace, i),
            alpha_p2p_port: ports::ALPHA_P2P,
            delta_p2p_port: ports::DELTA_P2P,
            alpha_api_port: ports::ALPHA_API,
            delta_api_port: ports::DELTA_API,
        })
        .collect()
}

/// Node config ConfigMap: `config.json` (spec.node) and `peers.json` (every one of
/// the `replicas` pods: while validators leave, their pods stay until the boundary).
pub fn config_configmap(
    net: &NetworkRef,
    spec: &DualChainNetwork,
    replicas: u32,
) -> Result<ConfigMap, BuildError> {
    let json = |what, v: &dyn erased::Json| {
        v.to_json()
            .map_err(|source| BuildError::Json { what, source })
    };
    let config = json("node config", &spec.spec.template.node)?;
    let peers = json("peers", &peers(net, replicas))?;
    Ok(ConfigMap {
        metadata: net.meta(
            names::config_configmap(&net.name),
            &[(ROLE_LABEL, "config")],
        ),
        data: Some(BTreeMap::from([
            (CONFIG_KEY.to_string(), config),
            (PEERS_KEY.to_string(), peers),
        ])),
        ..Default::default()
    })
}

mod erased {
    /// Object-safe pretty JSON, so one closure serialises different types.
    pub trait Json {
        fn to_json(&self) -> Result<String, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<String, serde_json::Error> {
            serde_json::to_string_pretty(self)
        }
    }
}

/// Short BLAKE3 digest of some parts, for hash annotations.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().to_hex()[..16].to_string()
}

fn port(name: &str, port: u16, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: port.into(),
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

/// Headless Service: stable per-pod DNS for peers, including not-yet-ready pods (a BFT
/// network cannot become ready before its validators find each other).
pub fn headless_service(net: &NetworkRef) -> Service {
    Service {
        metadata: net.meta(
            names::headless_service(&net.name),
            &[("dualchain.dev/service", "peers")],
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::network_selector(&net.name)),
            ports: Some(vec![
                port("alpha-p2p", ports::ALPHA_P2P, "UDP"),
                port("delta-p2p", ports::DELTA_P2P, "UDP"),
                port("alpha-api", ports::ALPHA_API, "TCP"),
                port("delta-api", ports::DELTA_API, "TCP"),
                port("alpha-metrics", ports::ALPHA_METRICS, "TCP"),
                port("delta-metrics", ports::DELTA_METRICS, "TCP"),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Client Service: load-balanced gRPC APIs of ready validators.
pub fn client_service(net: &NetworkRef) -> Service {
    Service {
        metadata: net.meta(
            names::client_service(&net.name),
            &[("dualchain.dev/service", "client")],
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::network_selector(&net.name)),
            ports: Some(vec![
                port("alpha-api", ports::ALPHA_API, "TCP"),
                port("delta-api", ports::DELTA_API, "TCP"),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// PodDisruptionBudget: voluntary disruptions may take down at most f validators (0 below
/// 4 validators, which then blocks voluntary evictions entirely).
pub fn pdb(net: &NetworkRef, validators: u32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: net.meta(names::pdb(&net.name), &[]),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(fault_tolerance(validators) as i32)),
            selector: Some(LabelSelector {
                match_labels: Some(names::network_selector(&net.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn policy_port(port: u16, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port.into())),
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn pods_here(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Who may reach the network's validators (ingress only; kubelet probes from the pod's
/// own node are always allowed by NetworkPolicy semantics):
/// - p2p (QUIC, UDP) of both chains: the same network's validator pods;
/// - gRPC APIs of both chains: the same network's validators, the operator's pods
///   (status probes, flows) and the network's loadgen pods;
/// - `Admin` (TLS) of both chains: the operator's pods alone (no rule at all, so no
///   one, when the operator's own pods are unknown);
/// - metrics: anyone (Prometheus), as before.
///
/// Policies are additive: a cluster admin opens the API to further clients with a
/// policy of their own selecting the same pods.
pub fn network_policy(net: &NetworkRef, operator: Option<&OperatorPods>) -> NetworkPolicy {
    let validators = || pods_here(names::network_selector(&net.name));
    let mut api_clients = vec![
        validators(),
        pods_here(names::loadgen_peer_labels(&net.name)),
    ];
    let operator_peer = operator.map(|op| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                op.namespace.clone(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(op.labels.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    api_clients.extend(operator_peer.clone());
    let mut rules = vec![
        NetworkPolicyIngressRule {
            from: Some(vec![validators()]),
            ports: Some(vec![
                policy_port(ports::ALPHA_P2P, "UDP"),
                policy_port(ports::DELTA_P2P, "UDP"),
            ]),
        },
        NetworkPolicyIngressRule {
            from: Some(api_clients),
            ports: Some(vec![
                policy_port(ports::ALPHA_API, "TCP"),
                policy_port(ports::DELTA_API, "TCP"),
            ]),
        },
        NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![
                policy_port(ports::ALPHA_METRICS, "TCP"),
                policy_port(ports::DELTA_METRICS, "TCP"),
            ]),
        },
    ];
    if let Some(op) = operator_peer {
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![op]),
            ports: Some(vec![
                policy_port(ports::ALPHA_ADMIN, "TCP"),
                policy_port(ports::DELTA_ADMIN, "TCP"),
            ]),
        });
    }
    NetworkPolicy {
        metadata: net.meta(names::network_policy(&net.name), &[]),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names::network_selector(&net.name)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            ..Default::default()
        }),
    }
}

/// The `job` of every validator metrics target (the chart's alerts select it).
pub const VALIDATOR_METRICS_JOB: &str = "dualchain-validators";

/// The Prometheus Operator ServiceMonitor (a dynamic object: its CRD may be absent).
pub fn service_monitor(net: &NetworkRef, spec: &DualChainNetwork) -> DynamicObject {
    let sm = &spec.spec.template.service_monitor;
    let mut meta = net.meta(names::service_monitor(&net.name), &[]);
    if let Some(labels) = meta.labels.as_mut() {
        labels.extend(sm.labels.clone());
    }
    let mut selector = names::network_selector(&net.name);
    selector.insert("dualchain.dev/service".into(), "peers".into());
    // Every target names its network and one job for all networks' validators: what
    // the chart's alerts and validator dashboard group by (helm/dualchain/rules).
    let relabelings = serde_json::json!([
        { "targetLabel": "network", "replacement": net.name },
        { "targetLabel": "job", "replacement": VALIDATOR_METRICS_JOB },
    ]);
    let endpoint = |port: &str| {
        let mut e = serde_json::json!({
            "port": port,
            "path": "/metrics",
            "relabelings": relabelings,
        });
        if let Some(interval) = &sm.interval {
            e["interval"] = serde_json::json!(interval);
        }
        e
    };
    let mut obj = DynamicObject::new(
        &names::service_monitor(&net.name),
        &service_monitor_resource(),
    );
    obj.metadata = meta;
    obj.data = serde_json::json!({
        "spec": {
            "selector": { "matchLabels": selector },
            "namespaceSelector": { "matchNames": [net.namespace] },
            "endpoints": [endpoint("alpha-metrics"), endpoint("delta-metrics")],
        }
    });
    obj
}

/// API resource of `monitoring.coreos.com/v1` ServiceMonitor.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

fn resources(r: &ChainResources) -> ResourceRequirements {
    let amounts = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), quantity(cpu)),
            ("memory".to_string(), quantity(mem)),
        ])
    };
    ResourceRequirements {
        requests: Some(amounts(&r.requests.cpu, &r.requests.memory)),
        limits: Some(amounts(&r.limits.cpu, &r.limits.memory)),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// The hardened container security context (restricted Pod Security Standard).
pub fn hardened_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The hardened pod security context.
pub fn hardened_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        fs_group: Some(RUN_AS_USER),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn grpc_probe(port: u16, service: Option<&str>, period: i32, failures: i32) -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: port.into(),
            service: service.map(str::to_string),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// Which chain a container runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainName {
    Alpha,
    Delta,
}

impl ChainName {
    pub const ALL: [ChainName; 2] = [ChainName::Alpha, ChainName::Delta];
    pub fn as_str(self) -> &'static str {
        match self {
            ChainName::Alpha => "alpha",
            ChainName::Delta => "delta",
        }
    }
    pub fn api_port(self) -> u16 {
        match self {
            ChainName::Alpha => ports::ALPHA_API,
            ChainName::Delta => ports::DELTA_API,
        }
    }
    pub fn admin_port(self) -> u16 {
        match self {
            ChainName::Alpha => ports::ALPHA_ADMIN,
            ChainName::Delta => ports::DELTA_ADMIN,
        }
    }
    fn p2p_port(self) -> u16 {
        match self {
            ChainName::Alpha => ports::ALPHA_P2P,
            ChainName::Delta => ports::DELTA_P2P,
        }
    }
    fn metrics_port(self) -> u16 {
        match self {
            ChainName::Alpha => ports::ALPHA_METRICS,
            ChainName::Delta => ports::DELTA_METRICS,
        }
    }
    fn other(self) -> ChainName {
        match self {
            ChainName::Alpha => ChainName::Delta,
            ChainName::Delta => ChainName::Alpha,
        }
    }
}

/// The `dualchain run` arguments of one chain container (the container contract).
pub fn run_args(chain: ChainName) -> Vec<String> {
    let c = chain.as_str();
    [
        "run".to_string(),
        "--chain".into(),
        c.into(),
        "--genesis".into(),
        format!("{GENESIS_DIR}/{GENESIS_KEY}"),
        "--config".into(),
        format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        "--peers".into(),
        format!("{CONFIG_DIR}/{PEERS_KEY}"),
        "--key-dir".into(),
        KEY_DIR.into(),
        // Kubernetes expands $(POD_NAME) from the container's environment.
        "--admin-token-digest-file".into(),
        format!("{ADMIN_DIR}/$(POD_NAME)"),
        // Admin on its own port, TLS with the validator's own certificate (which the
        // operator pins); the NetworkPolicy admits only the operator to it.
        "--admin-listen".into(),
        format!("0.0.0.0:{}", chain.admin_port()),
        "--admin-tls-cert".into(),
        format!("{ADMIN_TLS_DIR}/{ADMIN_TLS_CERT_KEY}"),
        "--admin-tls-key".into(),
        format!("{ADMIN_TLS_DIR}/{ADMIN_TLS_KEY_KEY}"),
        "--data-dir".into(),
        format!("{DATA_DIR}/{c}"),
        "--p2p-listen".into(),
        format!("0.0.0.0:{}", chain.p2p_port()),
        "--api-listen".into(),
        format!("0.0.0.0:{}", chain.api_port()),
        "--metrics-listen".into(),
        format!("0.0.0.0:{}", chain.metrics_port()),
        "--peer-chain-api".into(),
        format!("http://127.0.0.1:{}", chain.other().api_port()),
    ]
    .into()
}

fn chain_container(net: &DualChainNetwork, chain: ChainName, index: u32) -> Container {
    let t = &net.spec.template;
    let c = chain.as_str();
    let res = match chain {
        ChainName::Alpha => &t.alpha.resources,
        ChainName::Delta => &t.delta.resources,
    };
    let port = |suffix: &str, port: u16, protocol: &str| ContainerPort {
        name: Some(format!("{c}-{suffix}")),
        container_port: port.into(),
        protocol: Some(protocol.into()),
        ..Default::default()
    };
    Container {
        name: c.into(),
        image: Some(t.image.clone()),
        image_pull_policy: Some(t.image_pull_policy.as_str().into()),
        args: Some(run_args(chain)),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_IP", "status.podIP"),
            value_env("DUALCHAIN_VALIDATOR_INDEX", &index.to_string()),
            value_env("DUALCHAIN_NETWORK", &net.name_any()),
            // Pods beyond the genesis set (the network grew) hold keys outside it: they
            // follow the chains until their join request takes effect. A genesis
            // validator is unaffected.
            value_env("DUALCHAIN_JOIN", "true"),
            value_env("RUST_LOG", &t.node.log_level),
        ]),
        ports: Some(vec![
            port("p2p", chain.p2p_port(), "UDP"),
            port("api", chain.api_port(), "TCP"),
            port("admin", chain.admin_port(), "TCP"),
            port("metrics", chain.metrics_port(), "TCP"),
        ]),
        readiness_probe: Some(grpc_probe(
            chain.api_port(),
            Some(ports::READINESS_SERVICE),
            5,
            3,
        )),
        liveness_probe: Some(grpc_probe(chain.api_port(), None, 10, 6)),
        startup_probe: Some(grpc_probe(chain.api_port(), None, 5, 120)),
        resources: Some(resources(res)),
        security_context: Some(hardened_container()),
        volume_mounts: Some(vec![
            mount("data", DATA_DIR, false),
            mount("genesis", GENESIS_DIR, true),
            mount("config", CONFIG_DIR, true),
            mount("validator-keys", KEY_DIR, true),
            mount("admin-tls", ADMIN_TLS_DIR, true),
            mount("admin-digests", ADMIN_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

/// Validator `index`'s own key: the only key Secret its pod mounts (a pod cannot read
/// what it does not mount, so no validator can read another's key).
fn validator_key_volume(network: &str, index: u32) -> Volume {
    let files = [
        dualchain_core::keyfile::KIND_FILE,
        dualchain_core::keyfile::ALGORITHM_FILE,
        dualchain_core::keyfile::PUBLIC_KEY_FILE,
        dualchain_core::keyfile::SEED_FILE,
    ];
    own_secret_volume(
        "validator-keys",
        names::validator_secret(network, index),
        &files,
    )
}

/// Validator `index`'s own admin TLS certificate and key, like its key.
fn admin_tls_volume(network: &str, index: u32) -> Volume {
    own_secret_volume(
        "admin-tls",
        names::admin_tls_secret(network, index),
        &[ADMIN_TLS_CERT_KEY, ADMIN_TLS_KEY_KEY],
    )
}

/// Volume `volume` of Secret `secret`'s `files`, readable by the pod's user only.
fn own_secret_volume(volume: &str, secret: String, files: &[&str]) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items: Some(
                files
                    .iter()
                    .map(|f| KeyToPath {
                        key: (*f).into(),
                        path: (*f).into(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            default_mode: Some(0o400),
            optional: Some(false),
        }),
        ..Default::default()
    }
}

/// The pod template of validator `index` (everything that, when changed, rolls it):
/// identical for every validator but for its index and the Secrets it mounts.
pub fn pod_template(net: &DualChainNetwork, config_hash: &str, index: u32) -> PodTemplateSpec {
    let name = net.name_any();
    let t = &net.spec.template;
    let mut labels = names::network_labels(&name);
    labels.remove("app.kubernetes.io/managed-by");
    labels.extend(names::validator_selector(&name, index));
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string()),
                (
                    "kubectl.kubernetes.io/default-container".to_string(),
                    "delta".to_string(),
                ),
            ])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(hardened_pod()),
            termination_grace_period_seconds: Some(60),
            node_selector: (!t.node_selector.is_empty()).then(|| t.node_selector.clone()),
            affinity: Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        WeightedPodAffinityTerm {
                            weight: 100,
                            pod_affinity_term: PodAffinityTerm {
                                topology_key: "kubernetes.io/hostname".into(),
                                label_selector: Some(LabelSelector {
                                    match_labels: Some(names::network_selector(&name)),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            },
                        },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![
                chain_container(net, ChainName::Alpha, index),
                chain_container(net, ChainName::Delta, index),
            ],
            volumes: Some(vec![
                Volume {
                    name: "genesis".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names::genesis_configmap(&name),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names::config_configmap(&name),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                validator_key_volume(&name, index),
                admin_tls_volume(&name, index),
                Volume {
                    name: "admin-digests".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names::admin_digests_configmap(&name),
                        default_mode: Some(0o444),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        size_limit: Some(quantity("256Mi")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
    }
}

/// Digest of a pod template, stored on the StatefulSet to detect template changes.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    digest(&[&bytes])
}

/// Validator `index`'s StatefulSet: one pod, rolled by the StatefulSet controller as
/// soon as its template changes, so the operator decides when each validator rolls
/// (see [`crate::rollout`]) by when it applies the new template. The StatefulSet never
/// deletes the data volume: the operator owns it ([`data_claim`]).
pub fn statefulset(
    net: &NetworkRef,
    spec: &DualChainNetwork,
    index: u32,
    template: PodTemplateSpec,
) -> StatefulSet {
    let t = &spec.spec.template;
    let index_text = index.to_string();
    let mut meta = net.meta(
        names::validator_statefulset(&net.name, index),
        &[(names::VALIDATOR_INDEX_LABEL, &index_text)],
    );
    meta.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_string(),
        template_hash(&template),
    )]));
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names::headless_service(&net.name)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(names::validator_selector(&net.name, index)),
                ..Default::default()
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: None,
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(RetentionPolicy::Retain.as_str().into()),
                    when_scaled: Some(RetentionPolicy::Retain.as_str().into()),
                },
            ),
            template,
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(names::validator_selector(&net.name, index)),
                    ..Default::default()
                },
                spec: Some(data_claim_spec(t)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Validator `index`'s data volume claim, created by the operator before its StatefulSet
/// (which then uses it as its claim template's). Owned by the network when
/// `storage.whenDeleted` is `Delete`, so deleting the network collects it; a scale-down
/// deletes it only when `storage.whenScaled` is `Delete`.
pub fn data_claim(net: &NetworkRef, spec: &DualChainNetwork, index: u32) -> PersistentVolumeClaim {
    let t = &spec.spec.template;
    let mut meta = net.meta(names::validator_data_claim(&net.name, index), &[]);
    if let Some(labels) = meta.labels.as_mut() {
        labels.extend(names::validator_selector(&net.name, index));
    }
    if t.storage.when_deleted == RetentionPolicy::Retain {
        meta.owner_references = None;
    }
    PersistentVolumeClaim {
        metadata: meta,
        spec: Some(data_claim_spec(t)),
        ..Default::default()
    }
}

fn data_claim_spec(t: &NetworkTemplate) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        storage_class_name: t.storage.storage_class_name.clone(),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                quantity(&t.storage.size),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}
