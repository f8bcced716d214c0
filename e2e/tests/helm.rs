//! `helm install` of the chart against a real API server. `e2e/run.sh` runs this binary
//! first on a new cluster, so the chart's `crds/` are what creates the CRDs there.

use std::time::Duration;

use anyhow::{Context as _, Result};
use dualchain_e2e::{Cluster, DEFAULT_WAIT, repo_root, wait_for, wait_gone};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

const CRDS: [&str; 2] = [
    "dualchainnetworks.dualchain.dev",
    "benchmarkclusters.dualchain.dev",
];

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn helm_install_creates_the_crds_and_a_namespaced_operator() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let client = &cluster.client;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut preexisting = Vec::new();
    for name in CRDS {
        if crds.get_opt(name).await?.is_some() {
            preexisting.push(name);
        }
    }
    let ns = cluster.namespace("helm").await?;
    let release = "e2e";
    let chart = repo_root().join("helm/dualchain");
    let chart = chart.to_str().context("chart path is not UTF-8")?;
    let watch = format!("operator.watchNamespace={}", ns.name);
    let out = cluster
        .helm(&[
            "install",
            release,
            chart,
            "--namespace",
            &ns.name,
            "--set",
            &watch,
            "--wait",
            "--timeout",
            "3m",
        ])
        .await?;
    assert!(out.contains("STATUS: deployed"), "{out}");

    // CRDs from the chart's crds/ directory, served by the API server.
    for name in CRDS {
        let crd = wait_for(&format!("CRD {name} Established"), DEFAULT_WAIT, || async {
            let crd = crds.get(name).await?;
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            Ok(established.then_some(crd))
        })
        .await?;
        if preexisting.is_empty() {
            // Nothing but this install can have created them.
            let managers: Vec<String> = crd
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter_map(|m| m.manager.clone())
                .collect();
            assert!(
                managers.iter().any(|m| m.to_lowercase().contains("helm")),
                "{name} managers {managers:?}"
            );
        }
        let served: Vec<&str> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(served, ["v1alpha1"], "{name}");
    }
    if !preexisting.is_empty() {
        eprintln!(
            "note: {preexisting:?} existed before the install; helm leaves existing CRDs alone"
        );
    }

    // A watchNamespace install is namespaced: a Role, not a ClusterRole.
    let fullname = format!("{release}-operator");
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    let ready = deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    assert_eq!(
        ready, 1,
        "helm --wait returned before the operator was ready"
    );
    let container = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .context("operator container")?;
    let watch_env = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "WATCH_NAMESPACE")
        .and_then(|e| e.value.clone());
    assert_eq!(watch_env.as_deref(), Some(ns.name.as_str()));
    let security = container
        .security_context
        .as_ref()
        .context("securityContext")?;
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    Api::<Role>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    Api::<Role>::namespaced(client.clone(), &ns.name)
        .get(&format!("{fullname}-leader-election"))
        .await?;
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .get(&format!("{fullname}-metrics"))
        .await?;

    // Uninstall removes what the release created, and keeps the CRDs (and so every
    // user's networks), as Helm does for crds/.
    cluster
        .helm(&["uninstall", release, "--namespace", &ns.name, "--wait"])
        .await?;
    wait_gone(
        &Api::<Deployment>::namespaced(client.clone(), &ns.name),
        &fullname,
        Duration::from_secs(60),
    )
    .await?;
    for name in CRDS {
        assert!(
            crds.get_opt(name).await?.is_some(),
            "{name} was removed by helm uninstall"
        );
    }
    Ok(())
}
