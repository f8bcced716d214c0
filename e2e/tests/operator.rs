//! The operator against a real API server: what it creates, how status reads through
//! `kubectl`, rolling, garbage collection, admission of invalid manifests, benchmark
//! lifecycle, and crash recovery. Run by `e2e/run.sh` (kwok) or `e2e/kind.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use dualchain_e2e::{
    Cluster, DEFAULT_WAIT, Operator, TestNamespace, controlled_by, delete, from_yaml, repo_root,
    simulated_pods, wait_for, wait_gone, wait_object,
};
use dualchain_operator::crd::{BenchmarkCluster, DualChainNetwork};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyIngressRule};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, ResourceExt};
use serde_json::json;

/// Pods, PVCs and status converge within this on kwok; kind pulls no image (kind.sh
/// loads it) but starts real validators, which takes longer.
const CONVERGE: Duration = Duration::from_secs(240);

async fn setup(test: &str) -> Result<(Cluster, TestNamespace)> {
    let cluster = Cluster::connect().await?;
    cluster.ensure_crds().await?;
    let ns = cluster.namespace(test).await?;
    Ok((cluster, ns))
}

fn devnet_example() -> Result<DualChainNetwork> {
    let path = repo_root().join("helm/dualchain/examples/devnet.yaml");
    from_yaml(&std::fs::read_to_string(&path).with_context(|| path.display().to_string())?)
}

fn network(name: &str, spec: serde_json::Value) -> Result<DualChainNetwork> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "DualChainNetwork",
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

fn condition<'a>(net: &'a DualChainNetwork, type_: &str) -> Option<(&'a str, &'a str)> {
    net.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

/// How many validators the genesis in a `<network>-genesis` ConfigMap lists.
fn genesis_validators(genesis: &ConfigMap) -> Result<usize> {
    let text = genesis
        .data
        .as_ref()
        .and_then(|d| d.get("genesis.json"))
        .context("ConfigMap has no genesis.json")?;
    let json: serde_json::Value = serde_json::from_str(text)?;
    Ok(json["validators"]
        .as_array()
        .context("genesis has no validators list")?
        .len())
}

/// A pod that exists, is not being deleted, and reports Ready.
fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn ready_validators(net: &DualChainNetwork) -> u32 {
    net.status.as_ref().map_or(0, |s| s.ready_validators)
}

/// Waits until the network reports every validator Ready for its current generation.
async fn wait_all_ready(
    api: &Api<DualChainNetwork>,
    name: &str,
    n: u32,
) -> Result<DualChainNetwork> {
    wait_for(
        &format!("{name}: {n}/{n} validators ready"),
        CONVERGE,
        || async {
            let net = api.get(name).await?;
            let current =
                net.status.as_ref().and_then(|s| s.observed_generation) == net.metadata.generation;
            Ok((current && ready_validators(&net) == n).then_some(net))
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn devnet_example_reconciles_into_owned_children() -> Result<()> {
    let (cluster, ns) = setup("children").await?;
    let client = &cluster.client;
    let nets: Api<DualChainNetwork> = ns.api(client);
    let net = nets
        .create(&PostParams::default(), &devnet_example()?)
        .await?;
    let _operator = Operator::start(&cluster, &ns.name).await?;

    // One StatefulSet of one pod per validator, each pod mounting its own key only.
    let sts = wait_object(
        &ns.api::<StatefulSet>(client),
        "devnet-3",
        "created",
        |_| true,
    )
    .await?;
    let spec = sts.spec.as_ref().context("StatefulSet without spec")?;
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.service_name.as_deref(), Some("devnet-peers"));
    let mounted: Vec<String> = spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.volumes.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.secret?.secret_name)
        .collect();
    assert_eq!(mounted, ["devnet-validator-3", "devnet-admin-tls-3"]);
    let pod_spec = spec
        .template
        .spec
        .as_ref()
        .context("pod template without spec")?;
    let containers: Vec<&str> = pod_spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(containers, ["alpha", "delta"]);
    assert!(
        controlled_by(&sts, &net),
        "StatefulSet is not owned by the network"
    );

    let secrets: Api<Secret> = ns.api(client);
    let mut secret_names: Vec<String> = (0..4).map(|i| format!("devnet-validator-{i}")).collect();
    secret_names.extend((0..4).map(|i| format!("devnet-admin-token-{i}")));
    secret_names.extend((0..4).map(|i| format!("devnet-admin-tls-{i}")));
    secret_names.push("devnet-accounts".into());
    for name in &secret_names {
        let secret = secrets
            .get(name)
            .await
            .with_context(|| format!("Secret {name}"))?;
        assert!(
            controlled_by(&secret, &net),
            "Secret {name} is not owned by the network"
        );
    }
    let configmaps: Api<ConfigMap> = ns.api(client);
    for name in ["devnet-genesis", "devnet-config", "devnet-admin-digests"] {
        let cm = configmaps
            .get(name)
            .await
            .with_context(|| format!("ConfigMap {name}"))?;
        assert!(
            controlled_by(&cm, &net),
            "ConfigMap {name} is not owned by the network"
        );
    }
    let genesis = configmaps.get("devnet-genesis").await?;
    assert_eq!(
        genesis_validators(&genesis)?,
        4,
        "genesis lists 4 validators"
    );

    let services: Api<Service> = ns.api(client);
    let headless = services.get("devnet-peers").await?;
    let headless_spec = headless.spec.as_ref().context("headless Service spec")?;
    assert_eq!(headless_spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless_spec.publish_not_ready_addresses, Some(true));
    assert!(controlled_by(&headless, &net));
    let client_svc = services.get("devnet").await?;
    let ports: BTreeSet<i32> = client_svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|p| p.iter().map(|p| p.port).collect())
        .unwrap_or_default();
    assert!(
        ports.contains(&3030) && ports.contains(&4030),
        "client Service ports {ports:?}"
    );
    assert!(controlled_by(&client_svc, &net));

    let pdb = ns.api::<PodDisruptionBudget>(client).get("devnet").await?;
    assert_eq!(
        pdb.spec.as_ref().and_then(|s| s.max_unavailable.clone()),
        Some(IntOrString::Int(1)),
        "PDB allows f = 1 unavailable of 4"
    );
    assert!(controlled_by(&pdb, &net));

    // The real StatefulSet controller and scheduler place the pods; kwok (or kind) runs
    // them and binds their volumes, and the operator counts them ready.
    let net = wait_all_ready(&nets, "devnet", 4).await?;
    let pods = ns.api::<Pod>(client).list(&ListParams::default()).await?;
    let pod_names: BTreeSet<String> = pods.iter().map(|p| p.name_any()).collect();
    let expected: BTreeSet<String> = (0..4).map(|i| format!("devnet-{i}-0")).collect();
    assert_eq!(pod_names, expected);
    assert_eq!(validator_sets(&ns.api(client), "devnet").await?.len(), 4);
    for i in 0..4 {
        let pvc = ns
            .api::<PersistentVolumeClaim>(client)
            .get(&format!("data-devnet-{i}-0"))
            .await?;
        assert_eq!(
            pvc.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Bound")
        );
        // The operator made it, owned by the network (storage.whenDeleted: Delete).
        assert!(controlled_by(&pvc, &net), "data-devnet-{i}-0 owner");
    }
    assert_eq!(
        condition(&net, "Ready"),
        Some(("True", "AllValidatorsReady"))
    );
    assert_eq!(
        condition(&net, "FaultTolerant"),
        Some(("True", "QuorumMargin"))
    );
    Ok(())
}

/// `(protocol, port)` pairs of one NetworkPolicy rule.
fn rule_ports(rule: &NetworkPolicyIngressRule) -> BTreeSet<(String, i32)> {
    rule.ports
        .iter()
        .flatten()
        .map(|p| {
            let port = match &p.port {
                Some(IntOrString::Int(n)) => *n,
                other => panic!("unexpected port {other:?}"),
            };
            (p.protocol.clone().unwrap_or_default(), port)
        })
        .collect()
}

/// Network `network`'s validator StatefulSets (one per validator), by name.
async fn validator_sets(sets: &Api<StatefulSet>, network: &str) -> Result<Vec<StatefulSet>> {
    let selector = format!("dualchain.dev/network={network}");
    let mut list = sets
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    list.sort_by_key(|s| s.name_any());
    Ok(list)
}

fn match_labels(selector: Option<&LabelSelector>) -> BTreeMap<String, String> {
    selector
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn each_network_gets_a_network_policy_admitting_only_peers_operator_and_loadgen() -> Result<()>
{
    let (cluster, ns) = setup("netpol").await?;
    let client = &cluster.client;
    let nets: Api<DualChainNetwork> = ns.api(client);
    let net = nets
        .create(&PostParams::default(), &devnet_example()?)
        .await?;
    let _operator = Operator::start_with(
        &cluster,
        &ns.name,
        &[
            "--operator-namespace",
            "dualchain-system",
            "--operator-pod-labels",
            "app.kubernetes.io/name=dualchain-operator,app.kubernetes.io/instance=prod",
        ],
    )
    .await?;

    let policy = wait_object(
        &ns.api::<NetworkPolicy>(client),
        "devnet",
        "created",
        |_| true,
    )
    .await?;
    assert!(
        controlled_by(&policy, &net),
        "NetworkPolicy is not owned by the network"
    );
    let sts = wait_object(
        &ns.api::<StatefulSet>(client),
        "devnet-0",
        "created",
        |_| true,
    )
    .await?;
    let validator_0 = match_labels(sts.spec.as_ref().map(|s| &s.selector));
    assert!(!validator_0.is_empty());
    let spec = policy.spec.as_ref().context("NetworkPolicy without spec")?;
    // It guards every validator's pods (validator 0's selector without the index), for
    // ingress.
    let guarded = match_labels(spec.pod_selector.as_ref());
    let mut validators = validator_0.clone();
    validators.remove("dualchain.dev/validator-index");
    assert_eq!(guarded, validators);
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    let rules = spec.ingress.as_deref().unwrap_or_default();
    assert_eq!(rules.len(), 4, "{rules:#?}");
    let tcp = |p| ("TCP".to_string(), p);
    let udp = |p| ("UDP".to_string(), p);

    // p2p of both chains: only this network's validators.
    assert_eq!(
        rule_ports(&rules[0]),
        BTreeSet::from([udp(4130), udp(4131)])
    );
    let p2p_from = rules[0].from.as_deref().unwrap_or_default();
    assert_eq!(p2p_from.len(), 1);
    assert!(p2p_from[0].namespace_selector.is_none() && p2p_from[0].ip_block.is_none());
    assert_eq!(match_labels(p2p_from[0].pod_selector.as_ref()), validators);

    // gRPC APIs: the validators, the network's loadgen pods, the operator's pods.
    assert_eq!(
        rule_ports(&rules[1]),
        BTreeSet::from([tcp(3030), tcp(4030)])
    );
    let api_from = rules[1].from.as_deref().unwrap_or_default();
    let peers: BTreeSet<(BTreeMap<String, String>, BTreeMap<String, String>)> = api_from
        .iter()
        .map(|peer| {
            assert!(peer.ip_block.is_none(), "{peer:?}");
            (
                match_labels(peer.namespace_selector.as_ref()),
                match_labels(peer.pod_selector.as_ref()),
            )
        })
        .collect();
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        peers,
        BTreeSet::from([
            (BTreeMap::new(), validators.clone()),
            (
                BTreeMap::new(),
                labels(&[
                    ("app.kubernetes.io/component", "loadgen"),
                    ("dualchain.dev/loadgen-network", "devnet"),
                ])
            ),
            (
                labels(&[("kubernetes.io/metadata.name", "dualchain-system")]),
                labels(&[
                    ("app.kubernetes.io/name", "dualchain-operator"),
                    ("app.kubernetes.io/instance", "prod"),
                ])
            ),
        ])
    );

    // Metrics: from anywhere.
    assert!(rules[2].from.is_none());
    assert_eq!(
        rule_ports(&rules[2]),
        BTreeSet::from([tcp(9100), tcp(9101)])
    );

    // Admin (TLS): the operator's pods alone, and nothing else is open.
    assert_eq!(
        rule_ports(&rules[3]),
        BTreeSet::from([tcp(3031), tcp(4031)])
    );
    let admin_from = rules[3].from.as_deref().unwrap_or_default();
    assert_eq!(admin_from.len(), 1, "{admin_from:?}");
    assert_eq!(
        (
            match_labels(admin_from[0].namespace_selector.as_ref()),
            match_labels(admin_from[0].pod_selector.as_ref()),
        ),
        (
            labels(&[("kubernetes.io/metadata.name", "dualchain-system")]),
            labels(&[
                ("app.kubernetes.io/name", "dualchain-operator"),
                ("app.kubernetes.io/instance", "prod"),
            ])
        )
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn status_conditions_and_printer_columns_read_through_kubectl() -> Result<()> {
    let (cluster, ns) = setup("kubectl").await?;
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    nets.create(
        &PostParams::default(),
        &network("trio", json!({"validators": 3}))?,
    )
    .await?;
    let _operator = Operator::start(&cluster, &ns.name).await?;
    wait_all_ready(&nets, "trio", 3).await?;

    // The operator runs outside the cluster, where the validators' cluster DNS names do
    // not resolve (and on kwok no validator process exists): its gRPC status probes
    // fail, which must read as Degraded with the validators named, never an error loop.
    let expected_phase = "Degraded";
    let net = wait_object(&nets, "trio", &format!("phase {expected_phase}"), |n| {
        n.status.as_ref().is_some_and(|s| s.phase == expected_phase)
    })
    .await?;
    let table = cluster
        .kubectl(&["get", "dcn", "trio", "-n", &ns.name])
        .await?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .context("kubectl printed nothing")?
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "READY", "SET", "EPOCH", "ALPHA", "DELTA", "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines.next().context("no row")?.split_whitespace().collect();
    assert_eq!(&row[..3], ["trio", expected_phase, "3/3"], "{table}");

    let reasons = cluster
        .kubectl(&[
            "get",
            "dualchainnetworks.dualchain.dev",
            "trio",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={range .status.conditions[*]}{.type}={.status}/{.reason}{\"\\n\"}{end}",
        ])
        .await?;
    let reasons: BTreeSet<&str> = reasons.lines().collect();
    assert!(
        reasons.contains("Ready=True/AllValidatorsReady"),
        "{reasons:?}"
    );
    assert!(reasons.contains("Progressing=False/Stable"), "{reasons:?}");
    assert!(
        reasons.contains("FaultTolerant=False/TooFewValidators"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains("Degraded=True/ValidatorsUnreachable"),
        "{reasons:?}"
    );
    let status = net.status.as_ref().context("status")?;
    assert_eq!(
        status.unreachable_validators.len(),
        3,
        "{:?}",
        status.unreachable_validators
    );
    let observed = cluster
        .kubectl(&[
            "get",
            "dcn",
            "trio",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.status.observedGeneration}",
        ])
        .await?;
    assert_eq!(
        observed,
        net.metadata.generation.context("generation")?.to_string()
    );
    Ok(())
}

/// The devnet example in a namespace of its own, its operator running, every
/// validator Ready.
async fn devnet_example_running(test: &str) -> Result<(Cluster, TestNamespace, Operator)> {
    let (cluster, ns) = setup(test).await?;
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    nets.create(&PostParams::default(), &devnet_example()?)
        .await?;
    let operator = Operator::start(&cluster, &ns.name).await?;
    wait_all_ready(&nets, "devnet", 4).await?;
    Ok((cluster, ns, operator))
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn editing_the_spec_rolls_the_validators_one_at_a_time() -> Result<()> {
    let (cluster, ns, _operator) = devnet_example_running("roll").await?;
    let client = &cluster.client;
    let nets: Api<DualChainNetwork> = ns.api(client);
    let sets: Api<StatefulSet> = ns.api(client);
    let config_hash = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .and_then(|sp| sp.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("dualchain.dev/config-hash").cloned())
    };
    let revisions = |s: &StatefulSet| {
        let status = s.status.clone().unwrap_or_default();
        (status.update_revision, status.current_revision)
    };
    // One StatefulSet per validator, each rolled out on the same config.
    let before = wait_for("every validator set rolled out", CONVERGE, || async {
        let list = validator_sets(&sets, "devnet").await?;
        let done = list.len() == 4
            && list.iter().all(|s| {
                let (update, current) = revisions(s);
                update.is_some() && update == current
            });
        Ok(done.then_some(list))
    })
    .await?;
    let old_revisions: Vec<_> = before.iter().map(|s| revisions(s).0).collect();
    let old_hash = config_hash(&before[0]).context("pod template has no config-hash annotation")?;
    assert!(
        before
            .iter()
            .all(|s| config_hash(s) == Some(old_hash.clone()))
    );

    // While the roll runs, sample the pods: never more than f = 1 of the 4 validators
    // may be missing or not Ready, or the network would lose its quorum margin.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let pods: Api<Pod> = ns.api(client);
        let stop = stop.clone();
        async move {
            let mut worst = 0;
            while !stop.load(Ordering::Relaxed) {
                let list = pods.list(&ListParams::default()).await?;
                let ready = list.iter().filter(|p| pod_ready(p)).count();
                worst = worst.max(4 - ready.min(4));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(worst)
        }
    });

    nets.patch(
        "devnet",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"node": {"logLevel": "debug"}}})),
    )
    .await?;

    // The config change reaches the ConfigMap and the template's config hash...
    let config = wait_object(
        &ns.api::<ConfigMap>(client),
        "devnet-config",
        "logLevel debug",
        |cm| {
            cm.data
                .as_ref()
                .and_then(|d| d.get("config.json"))
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                .is_some_and(|v| v["logLevel"] == "debug")
        },
    )
    .await?;
    assert!(config.data.is_some());
    // ...and every validator's pod is replaced with its set's new revision, one at a
    // time, until the network is ready again and no longer progressing.
    wait_for(
        "every validator on a new revision and the rollout finished",
        CONVERGE,
        || async {
            let list = validator_sets(&sets, "devnet").await?;
            let rolled = list.len() == 4
                && list.iter().zip(&old_revisions).all(|(s, old)| {
                    let (update, current) = revisions(s);
                    config_hash(s).is_some_and(|h| h != old_hash)
                        && update.is_some()
                        && update == current
                        && update != *old
                        && s.status.as_ref().and_then(|st| st.ready_replicas) == Some(1)
                });
            let net = nets.get("devnet").await?;
            let stable = condition(&net, "Progressing") == Some(("False", "Stable"));
            Ok((rolled && ready_validators(&net) == 4 && stable).then_some(()))
        },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let worst = sampler.await??;
    eprintln!("most validators unavailable at once during the roll: {worst}");
    assert!(
        worst <= 1,
        "{worst} validators were unavailable at once during the roll"
    );
    // A finished roll leaves no partition behind in the status.
    let net = nets.get("devnet").await?;
    assert_eq!(net.status.as_ref().and_then(|s| s.rollout_partition), None);
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn scaling_the_network_grows_at_once_and_shrinks_only_on_the_chains_word() -> Result<()> {
    let (cluster, ns, _operator) = devnet_example_running("scale").await?;
    let client = &cluster.client;
    let nets: Api<DualChainNetwork> = ns.api(client);

    // `kubectl patch` (the field is mutable now): a fifth key, pod and peer entry, the
    // genesis untouched (it holds the first set; the fifth joins at a boundary).
    cluster
        .patch_network(&ns.name, "devnet", r#"{"spec":{"validators":5}}"#)
        .await?;
    let net = wait_all_ready(&nets, "devnet", 5).await?;
    let status = net.status.clone().context("status")?;
    assert_eq!((status.validators, status.ready.as_str()), (5, "5/5"));
    let secrets: Api<Secret> = ns.api(client);
    ensure!(
        secrets.get_opt("devnet-validator-4").await?.is_some(),
        "no key for devnet-4"
    );
    let config: ConfigMap = ns.api(client).get("devnet-config").await?;
    let peers: Vec<serde_json::Value> = serde_json::from_str(
        config
            .data
            .as_ref()
            .and_then(|d| d.get("peers.json"))
            .context("peers.json")?,
    )?;
    assert_eq!(peers.len(), 5);
    let genesis: ConfigMap = ns.api(client).get("devnet-genesis").await?;
    assert_eq!(genesis_validators(&genesis)?, 4);
    let pdb: PodDisruptionBudget = ns.api(client).get("devnet").await?;
    let budget = pdb.spec.and_then(|s| s.max_unavailable);
    if simulated_pods() {
        // kwok's pods run no validator, so none answers with the set: growing needs no
        // answer to add the pod, but no join can be sent, and the budget is the wanted
        // size's.
        assert_eq!(budget, Some(IntOrString::Int(1)));
        assert!(status.validator_set.is_none());
    }

    // Shrinking removes a pod only once the chains took its validator out; with no
    // validator to say so, every pod stays.
    nets.patch(
        "devnet",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"validators": 4}})),
    )
    .await?;
    let net = wait_for("the status describes validators: 4", CONVERGE, || async {
        let net = nets.get("devnet").await?;
        let current =
            net.status.as_ref().and_then(|s| s.observed_generation) == net.metadata.generation;
        Ok((current && net.status.as_ref().is_some_and(|s| s.validators == 4)).then_some(net))
    })
    .await?;
    if simulated_pods() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            validator_sets(&ns.api(client), "devnet").await?.len(),
            5,
            "no pod removed on a guess"
        );
        assert_eq!(
            condition(&net, "Reconfiguring"),
            None,
            "nothing answered: nothing known"
        );
    }
    Ok(())
}

/// The operator's memory target: at most 64 MiB resident while it reconciles a
/// 100-validator network (the largest benchmark cluster) on kwok, keys, certificates,
/// StatefulSets, volumes and status polling included. The test prints the peak against
/// it; it fails only past twice the target (a leak or a cache of whole objects), so
/// the allocator's mood on a loaded machine does not decide CI.
const OPERATOR_MEMORY_TARGET: u64 = 64 * 1024 * 1024;
const OPERATOR_MEMORY_GUARD: u64 = 2 * OPERATOR_MEMORY_TARGET;

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn a_100_validator_network_reconciles_and_the_operators_peak_memory_is_reported() -> Result<()>
{
    let (cluster, ns) = setup("hundred").await?;
    let nets: Api<DualChainNetwork> = ns.api(&cluster.client);
    let mut net = devnet_example()?;
    net.spec.validators = 100;
    nets.create(&PostParams::default(), &net).await?;
    let t0 = Instant::now();
    let operator = Operator::start(&cluster, &ns.name).await?;
    wait_all_ready(&nets, "devnet", 100).await?;
    let converged = t0.elapsed();
    ensure!(
        validator_sets(&ns.api(&cluster.client), "devnet")
            .await?
            .len()
            == 100,
        "one StatefulSet per validator"
    );
    // A few status intervals of steady reconciling (every validator polled, none
    // answering on kwok) on top of the creation burst.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let peak = operator.peak_rss_bytes()?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "operator: 100 validators Ready in {converged:?}; peak resident memory {:.1} MiB (target {:.0} MiB)",
        mib(peak),
        mib(OPERATOR_MEMORY_TARGET)
    );
    ensure!(
        peak <= OPERATOR_MEMORY_GUARD,
        "the operator peaked at {:.1} MiB, over twice its {:.0} MiB target",
        mib(peak),
        mib(OPERATOR_MEMORY_TARGET)
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn deleting_the_network_collects_its_children() -> Result<()> {
    let (cluster, ns) = setup("gc").await?;
    let client = &cluster.client;
    let nets: Api<DualChainNetwork> = ns.api(client);
    nets.create(
        &PostParams::default(),
        &network(
            "doomed",
            json!({"validators": 3, "storage": {"whenDeleted": "Delete"}}),
        )?,
    )
    .await?;
    let operator = Operator::start(&cluster, &ns.name).await?;
    wait_all_ready(&nets, "doomed", 3).await?;
    // The operator is gone during the deletion: collection is the API server's and the
    // garbage collector's job, through the owner references alone.
    operator.kill().await?;

    delete(&nets, "doomed").await?;
    wait_gone(&nets, "doomed", DEFAULT_WAIT).await?;
    let gone = Duration::from_secs(120);
    wait_gone(&ns.api::<PodDisruptionBudget>(client), "doomed", gone).await?;
    for name in ["doomed", "doomed-peers"] {
        wait_gone(&ns.api::<Service>(client), name, gone).await?;
    }
    for name in ["doomed-genesis", "doomed-config"] {
        wait_gone(&ns.api::<ConfigMap>(client), name, gone).await?;
    }
    for i in 0..3 {
        wait_gone(
            &ns.api::<Secret>(client),
            &format!("doomed-validator-{i}"),
            gone,
        )
        .await?;
        wait_gone(&ns.api::<StatefulSet>(client), &format!("doomed-{i}"), gone).await?;
        wait_gone(&ns.api::<Pod>(client), &format!("doomed-{i}-0"), gone).await?;
        // whenDeleted: Delete: the operator made the claims owned by the network.
        wait_gone(
            &ns.api::<PersistentVolumeClaim>(client),
            &format!("data-doomed-{i}-0"),
            gone,
        )
        .await?;
    }
    wait_gone(&ns.api::<Secret>(client), "doomed-admin-token-0", gone).await?;
    wait_gone(&ns.api::<Secret>(client), "doomed-admin-tls-0", gone).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn invalid_manifests_are_rejected_with_the_crds_messages() -> Result<()> {
    let (cluster, ns) = setup("invalid").await?;
    let dir = repo_root().join("operator/tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.collect::<std::io::Result<Vec<_>>>()?;
    files.sort_by_key(|e| e.file_name());
    ensure!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut failures = Vec::new();
    for entry in files {
        let text = std::fs::read_to_string(entry.path())?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .with_context(|| format!("{file} has no `# expect:` line"))?;
        let obj: DynamicObject = from_yaml(&text)?;
        let types = obj
            .types
            .clone()
            .with_context(|| format!("{file} has no apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let plural = match gvk.kind.as_str() {
            "DualChainNetwork" => "dualchainnetworks",
            "BenchmarkCluster" => "benchmarkclusters",
            other => bail!("{file}: unexpected kind {other}"),
        };
        // A dry-run create with strict field validation, as `kubectl create` sends it
        // (the API server's default only warns about unknown fields and drops them).
        let url = format!(
            "/apis/{}/{}/namespaces/{}/{plural}?dryRun=All&fieldValidation=Strict",
            gvk.group, gvk.version, ns.name
        );
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&obj)?)?;
        match cluster.client.request::<serde_json::Value>(request).await {
            Ok(_) => failures.push(format!(
                "{file}: accepted, expected a rejection containing {expect:?}"
            )),
            // 422 for schema and CEL violations, 400 for strict decoding (unknown fields).
            Err(kube::Error::Api(status))
                if matches!(status.code, 400 | 422) && status.message.contains(expect) => {}
            Err(kube::Error::Api(status)) => failures.push(format!(
                "{file}: rejected with {} {:?}, expected the message to contain {expect:?}",
                status.code, status.message
            )),
            Err(other) => return Err(other.into()),
        }
    }
    ensure!(
        failures.is_empty(),
        "{} manifest(s) misjudged:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

fn benchmark(name: &str, extra: serde_json::Value) -> Result<BenchmarkCluster> {
    let mut spec = json!({
        "validators": 3,
        "workload": {"profile": "steady", "tps": 20, "durationSeconds": 10, "accounts": 10, "signed": false},
        "readyDeadlineSeconds": 180,
        "ttlSecondsAfterFinished": 5,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "dualchain.dev/v1alpha1",
        "kind": "BenchmarkCluster",
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

/// Polls the benchmark until it finishes, recording every phase it was seen in.
async fn follow_phases(
    api: &Api<BenchmarkCluster>,
    name: &str,
) -> Result<(Vec<String>, BenchmarkCluster)> {
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + CONVERGE + Duration::from_secs(120);
    loop {
        let bench = api.get(name).await?;
        let phase = bench
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default();
        if !phase.is_empty() && seen.last() != Some(&phase) {
            seen.push(phase.clone());
        }
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            return Ok((seen, bench));
        }
        ensure!(
            Instant::now() < deadline,
            "{name} did not finish; phases so far {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn benchmark_runs_as_far_as_its_pods_allow_then_expires() -> Result<()> {
    let (cluster, ns) = setup("bench").await?;
    let client = &cluster.client;
    let benches: Api<BenchmarkCluster> = ns.api(client);
    let bench = benches
        .create(&PostParams::default(), &benchmark("smoke", json!({}))?)
        .await?;
    let _operator = Operator::start(&cluster, &ns.name).await?;

    let watcher = tokio::spawn({
        let jobs: Api<Job> = ns.api(client);
        async move { wait_object(&jobs, "smoke-loadgen", "created", |_| true).await }
    });
    let (phases, finished) = follow_phases(&benches, "smoke").await?;
    let status = finished.status.clone().context("status")?;
    ensure!(
        phases.iter().any(|p| p == "Provisioning") && phases.iter().any(|p| p == "Running"),
        "phases seen: {phases:?} (reason {:?}, message {:?})",
        status.reason,
        status.message
    );
    // The loadgen Job ran with the declared workload against every validator.
    let job = watcher.await??;
    let args = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
        .join(" ");
    assert!(args.starts_with("loadgen "), "loadgen args: {args}");
    assert!(
        args.contains("--tps 20") && args.contains("--duration 10s"),
        "loadgen args: {args}"
    );
    assert!(
        args.contains("smoke-net-2-0.smoke-net-peers"),
        "every validator targeted: {args}"
    );
    assert!(
        controlled_by(&job, &bench),
        "Job is not owned by the benchmark"
    );
    if simulated_pods() {
        // A simulated pod "succeeds" without running: no result was written, which the
        // operator must call out by name rather than guess a verdict.
        assert_eq!(status.phase, "Failed");
        assert_eq!(
            status.reason.as_deref(),
            Some("NoResult"),
            "message {:?}",
            status.message
        );
        assert!(status.message.as_deref().is_some_and(|m| !m.is_empty()));
    }
    assert!(status.finished_at.is_some());

    // ttlSecondsAfterFinished: 5 — the benchmark and, through owner references, its
    // network go away.
    wait_gone(&benches, "smoke", Duration::from_secs(90)).await?;
    wait_gone(
        &ns.api::<DualChainNetwork>(client),
        "smoke-net",
        Duration::from_secs(90),
    )
    .await?;
    wait_gone(
        &ns.api::<StatefulSet>(client),
        "smoke-net-0",
        Duration::from_secs(90),
    )
    .await?;
    Ok(())
}

/// A schedule firing every minute: two runs finish, both are deleted at their 5 s TTL,
/// and the schedule's status (and `kubectl get`) still holds both results.
#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn a_schedule_keeps_both_runs_results_after_their_ttls_expired() -> Result<()> {
    let (cluster, ns) = setup("schedule").await?;
    let client = &cluster.client;
    let benches: Api<BenchmarkCluster> = ns.api(client);
    let schedule = json!({"schedule": "* * * * *", "historyLimit": 2});
    benches
        .create(
            &PostParams::default(),
            &benchmark("every-minute", schedule)?,
        )
        .await?;
    let _operator = Operator::start(&cluster, &ns.name).await?;
    // Ticks a minute apart; a run still active at a tick skips it.
    let recorded = wait_for("two runs recorded", Duration::from_secs(330), || async {
        let bench = benches.get("every-minute").await?;
        let history = bench.status.map(|s| s.history).unwrap_or_default();
        Ok((history.len() >= 2).then_some(history))
    })
    .await?;
    // No third run while the rest is checked.
    benches
        .patch(
            "every-minute",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": "0 0 1 1 *"}})),
        )
        .await?;
    let runs: Vec<String> = recorded.iter().map(|e| e.run.clone()).collect();
    for run in &runs {
        wait_gone(&benches, run, Duration::from_secs(120)).await?;
    }
    let bench = benches.get("every-minute").await?;
    let history = bench.status.map(|s| s.history).unwrap_or_default();
    let kept: Vec<&str> = history.iter().map(|e| e.run.as_str()).collect();
    assert_eq!(kept, runs, "both results outlive their runs");
    for entry in &history {
        assert!(entry.finished_at.is_some() && entry.duration_seconds.is_some());
        if simulated_pods() {
            // No validator ran, so no figures: each run failed, saying why.
            assert_eq!(entry.result, "Failed", "{entry:?}");
            assert!(entry.reason.as_deref().is_some_and(|r| !r.is_empty()));
        } else {
            assert!(entry.average_tps.is_some(), "{entry:?}");
        }
    }
    let listed = cluster
        .kubectl(&["-n", &ns.name, "get", "bench", "every-minute"])
        .await?;
    assert!(
        listed.contains(&history[0].result),
        "kubectl get shows the last result: {listed}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn benchmark_fails_at_its_ready_deadline_with_the_reason() -> Result<()> {
    let (cluster, ns) = setup("deadline").await?;
    let client = &cluster.client;
    let benches: Api<BenchmarkCluster> = ns.api(client);
    // No node carries this label: the validators stay Pending.
    let spec = json!({
        "readyDeadlineSeconds": 10,
        "network": {"nodeSelector": {"dualchain.dev/e2e-no-such-node": "true"}},
    });
    benches
        .create(&PostParams::default(), &benchmark("stuck", spec)?)
        .await?;
    let _operator = Operator::start(&cluster, &ns.name).await?;

    let (phases, finished) = follow_phases(&benches, "stuck").await?;
    let status = finished.status.context("status")?;
    assert_eq!(status.phase, "Failed", "phases {phases:?}");
    assert!(!phases.iter().any(|p| p == "Running"), "phases {phases:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some("NetworkNotReady"),
        "message {:?}",
        status.message
    );
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("0/3 validators ready") && message.contains("readyDeadlineSeconds 10"),
        "{message}"
    );
    let pods = ns.api::<Pod>(client).list(&ListParams::default()).await?;
    assert!(
        pods.iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")),
        "validator pods should be unschedulable"
    );
    wait_gone(&benches, "stuck", Duration::from_secs(90)).await?;
    Ok(())
}

/// Public keys by validator index, from the key Secrets.
fn secret_keys(secrets: &[Secret], network: &str) -> BTreeMap<String, (String, Vec<u8>)> {
    let prefix = format!("{network}-validator-");
    secrets
        .iter()
        .filter(|s| s.name_any().starts_with(&prefix))
        .map(|s| {
            let public = s
                .data
                .as_ref()
                .and_then(|d| d.get("public_key"))
                .map(|b| b.0.clone())
                .unwrap_or_default();
            (s.name_any(), (s.uid().unwrap_or_default(), public))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn operator_killed_mid_reconcile_converges_without_duplicates() -> Result<()> {
    let (cluster, ns) = setup("crash").await?;
    let client = &cluster.client;
    const N: u32 = 100;
    let nets: Api<DualChainNetwork> = ns.api(client);
    nets.create(
        &PostParams::default(),
        &network("big", json!({"validators": N}))?,
    )
    .await?;
    let secrets: Api<Secret> = ns.api(client);
    let sets: Api<StatefulSet> = ns.api(client);

    // Kill the operator while it is still creating key Secrets, before the genesis and
    // the StatefulSets exist.
    let mut operator = Operator::start(&cluster, &ns.name).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let before_kill = loop {
        operator.check_alive()?;
        let list = secrets.list(&ListParams::default()).await?;
        let seen = secret_keys(&list.items, "big").len();
        if seen > 0 {
            break seen;
        }
        ensure!(Instant::now() < deadline, "no key Secret within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    operator.kill().await?;
    ensure!(
        validator_sets(&sets, "big").await?.is_empty() && (before_kill as u32) < N,
        "the operator finished before it could be killed mid-reconcile ({before_kill} key Secrets seen)"
    );
    let snapshot = secret_keys(&secrets.list(&ListParams::default()).await?.items, "big");

    let _operator = Operator::start(&cluster, &ns.name).await?;
    let all_sets = wait_for("a StatefulSet per validator", CONVERGE, || async {
        let list = validator_sets(&sets, "big").await?;
        Ok((list.len() == N as usize).then_some(list))
    })
    .await?;
    let net = nets.get("big").await?;
    assert!(all_sets.iter().all(|set| controlled_by(set, &net)));

    let all = secrets.list(&ListParams::default()).await?;
    let keys = secret_keys(&all.items, "big");
    let expected: BTreeSet<String> = (0..N).map(|i| format!("big-validator-{i}")).collect();
    assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), expected);
    // Keys made before the crash were kept, not regenerated.
    for (name, before) in &snapshot {
        assert_eq!(
            keys.get(name),
            Some(before),
            "Secret {name} changed across the restart"
        );
    }
    // Exactly one network's worth of everything else (an admin token and an admin TLS
    // identity per validator), and the genesis names these keys.
    let others: BTreeSet<String> = all
        .iter()
        .map(|s| s.name_any())
        .filter(|n| n.starts_with("big-") && !n.starts_with("big-validator-"))
        .collect();
    let mut expected_others: BTreeSet<String> = (0..N)
        .flat_map(|i| [format!("big-admin-token-{i}"), format!("big-admin-tls-{i}")])
        .collect();
    expected_others.insert("big-accounts".into());
    assert_eq!(others, expected_others);
    let genesis = ns.api::<ConfigMap>(client).get("big-genesis").await?;
    assert_eq!(genesis_validators(&genesis)?, N as usize);
    let sets_now = sets.list(&ListParams::default()).await?;
    assert_eq!(
        sets_now.items.len(),
        N as usize,
        "exactly one StatefulSet per validator"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn a_standby_operator_takes_over_when_the_leader_dies() -> Result<()> {
    let (cluster, ns) = setup("leader").await?;
    let client = &cluster.client;
    let leases: Api<Lease> = ns.api(client);
    let mut first = Some(Operator::start_elected(&cluster, &ns.name, "first").await?);
    let mut second = Some(Operator::start_elected(&cluster, &ns.name, "second").await?);
    let holder = |lease: &Lease| lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    let leader = holder(
        &wait_object(&leases, "dualchain-operator", "held", |l| {
            holder(l).is_some()
        })
        .await?,
    )
    .context("lease holder")?;

    // Only the leader reconciles; it provisions a network.
    let nets: Api<DualChainNetwork> = ns.api(client);
    nets.create(
        &PostParams::default(),
        &network("before", json!({"validators": 3}))?,
    )
    .await?;
    let sets: Api<StatefulSet> = ns.api(client);
    wait_object(&sets, "before-0", "created by the leader", |_| true).await?;

    // SIGKILL the leader: no release, so the standby must wait out the lease (15 s).
    let (dead, standby) = if leader == "first" {
        (first.take(), "second")
    } else {
        (second.take(), "first")
    };
    dead.context("leader process")?.kill().await?;
    let took_over = wait_object(
        &leases,
        "dualchain-operator",
        &format!("held by {standby}"),
        |l| holder(l).as_deref() == Some(standby),
    )
    .await?;
    let transitions = took_over
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    assert!(transitions >= 1, "lease transitions {transitions}");
    nets.create(
        &PostParams::default(),
        &network("after", json!({"validators": 3}))?,
    )
    .await?;
    wait_object(&sets, "after-0", "created by the new leader", |_| true).await?;
    Ok(())
}
