//! Pure builders of a benchmark's objects: its network, the loadgen Job and the
//! least-privilege RBAC that lets the Job write its result.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretVolumeSource, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::network::{BuildError, ChainName, hardened_container, hardened_pod};
use crate::crd::benchmark::BenchmarkCluster;
use crate::crd::network::{DualChainNetwork, DualChainNetworkSpec};
use crate::keys::KEYRING_KEY;
use crate::names;

/// Where the loadgen container finds the accounts keyring.
pub const ACCOUNTS_DIR: &str = "/var/run/dualchain/accounts";
/// Key of the loadgen result in the result ConfigMap (the loadgen writes it).
pub use dualchain_contract::loadgen::RESULT_KEY;
/// Key of the report in the report ConfigMap.
pub const REPORT_KEY: &str = "report.json";

/// Name, namespace and owner reference of a benchmark.
#[derive(Clone, Debug)]
pub struct BenchRef {
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
}

impl BenchRef {
    pub fn of(bench: &BenchmarkCluster) -> Result<Self, BuildError> {
        Ok(Self {
            name: bench.name_any(),
            namespace: bench
                .namespace()
                .ok_or(BuildError::MissingMetadata("namespace"))?,
            owner: bench
                .controller_owner_ref(&())
                .ok_or(BuildError::MissingMetadata("uid"))?,
        })
    }

    fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(names::benchmark_labels(&self.name)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}

/// The benchmark's own network: the template, the benchmark's size, and a genesis that
/// funds exactly the workload's accounts (unsigned transactions allowed only for an
/// unsigned workload).
pub fn network(b: &BenchRef, bench: &BenchmarkCluster) -> DualChainNetwork {
    let mut template = bench.spec.network.clone();
    template.genesis.accounts = bench.spec.workload.accounts;
    template.genesis.allow_unsigned_transactions = !bench.spec.workload.signed;
    let mut net = DualChainNetwork::new(
        &names::bench_network(&b.name),
        DualChainNetworkSpec {
            validators: bench.spec.validators,
            template,
        },
    );
    net.metadata = b.meta(names::bench_network(&b.name));
    net
}

/// ServiceAccount the loadgen Job runs as.
pub fn service_account(b: &BenchRef) -> ServiceAccount {
    ServiceAccount {
        metadata: b.meta(names::bench_service_account(&b.name)),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// Role allowing the Job to write exactly one ConfigMap: its result.
pub fn role(b: &BenchRef) -> Role {
    Role {
        metadata: b.meta(names::bench_service_account(&b.name)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![names::bench_result_configmap(&b.name)]),
            // The loadgen merge-patches its result; no `update`, which the operator
            // does not hold either (RBAC lets it grant only what it has).
            verbs: vec!["get".into(), "patch".into()],
            ..Default::default()
        }]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(b: &BenchRef) -> RoleBinding {
    RoleBinding {
        metadata: b.meta(names::bench_service_account(&b.name)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names::bench_service_account(&b.name),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names::bench_service_account(&b.name),
            namespace: Some(b.namespace.clone()),
            ..Default::default()
        }]),
    }
}

/// The (initially empty) ConfigMap the Job writes its JSON result into.
pub fn result_configmap(b: &BenchRef) -> ConfigMap {
    ConfigMap {
        metadata: b.meta(names::bench_result_configmap(&b.name)),
        data: Some(BTreeMap::new()),
        ..Default::default()
    }
}

/// The report ConfigMap: the final JSON report, and the loadgen's plots (PNG
/// `binaryData`, keys of the loadgen contract) when it drew them.
pub fn report_configmap(
    b: &BenchRef,
    report_json: String,
    plots: BTreeMap<String, ByteString>,
) -> ConfigMap {
    ConfigMap {
        metadata: b.meta(names::bench_report_configmap(&b.name)),
        data: Some(BTreeMap::from([(REPORT_KEY.to_string(), report_json)])),
        binary_data: (!plots.is_empty()).then_some(plots),
        ..Default::default()
    }
}

/// `dualchain loadgen` arguments (the loadgen contract; see `operator/README.md`).
pub fn loadgen_args(b: &BenchRef, bench: &BenchmarkCluster) -> Vec<String> {
    let net = names::bench_network(&b.name);
    let w = &bench.spec.workload;
    let targets = (0..bench.spec.validators)
        .map(|i| {
            format!(
                "http://{}:{}",
                names::validator_host(&net, &b.namespace, i),
                ChainName::Delta.api_port()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec!["loadgen".to_string(), "--targets".into(), targets];
    match w.tps {
        Some(tps) if !w.max_load => args.extend(["--tps".into(), tps.to_string()]),
        _ => args.push("--max-load".into()),
    }
    args.extend([
        "--duration".into(),
        format!("{}s", w.duration_seconds),
        "--workload".into(),
        w.profile.as_str().into(),
        "--accounts".into(),
        w.accounts.to_string(),
        "--accounts-keyring".into(),
        format!("{ACCOUNTS_DIR}/{KEYRING_KEY}"),
        if w.signed { "--signed" } else { "--unsigned" }.into(),
        "--json".into(),
        "--result-configmap".into(),
        format!("{}/{}", b.namespace, names::bench_result_configmap(&b.name)),
    ]);
    args
}

/// Seconds the Job may run before Kubernetes kills it: the load plus generous slack for
/// start-up and the final finality wait.
pub fn job_deadline_seconds(bench: &BenchmarkCluster) -> i64 {
    i64::from(bench.spec.workload.duration_seconds) + 300
}

/// The loadgen Job (no retries: a second attempt would measure a different run).
pub fn loadgen_job(b: &BenchRef, bench: &BenchmarkCluster) -> Job {
    let mut labels = names::benchmark_labels(&b.name);
    labels.remove("app.kubernetes.io/managed-by");
    // What the validators' NetworkPolicy admits to their gRPC API ports.
    labels.extend(names::loadgen_peer_labels(&names::bench_network(&b.name)));
    let q = |s: &str| Quantity(s.to_string());
    Job {
        metadata: b.meta(names::bench_job(&b.name)),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(job_deadline_seconds(bench)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(names::bench_service_account(&b.name)),
                    // The token is needed to write the result ConfigMap (and nothing else).
                    automount_service_account_token: Some(true),
                    enable_service_links: Some(false),
                    security_context: Some(hardened_pod()),
                    containers: vec![Container {
                        name: "loadgen".into(),
                        image: Some(bench.spec.network.image.clone()),
                        image_pull_policy: Some(
                            bench.spec.network.image_pull_policy.as_str().into(),
                        ),
                        args: Some(loadgen_args(b, bench)),
                        env: Some(vec![EnvVar {
                            name: "RUST_LOG".into(),
                            value: Some("info".into()),
                            ..Default::default()
                        }]),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_string(), q("1")),
                                ("memory".to_string(), q("512Mi")),
                            ])),
                            limits: Some(BTreeMap::from([
                                ("cpu".to_string(), q("4")),
                                ("memory".to_string(), q("2Gi")),
                            ])),
                            ..Default::default()
                        }),
                        security_context: Some(hardened_container()),
                        termination_message_path: Some("/dev/termination-log".into()),
                        termination_message_policy: Some("File".into()),
                        volume_mounts: Some(vec![VolumeMount {
                            name: "accounts".into(),
                            mount_path: ACCOUNTS_DIR.into(),
                            read_only: Some(true),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "accounts".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(names::accounts_secret(&names::bench_network(
                                &b.name,
                            ))),
                            default_mode: Some(0o400),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
