//! `helm install` of the chart against a real API server. `e2e/run.sh` runs this binary
//! first on a new cluster, so the chart's `crds/` are what creates the CRDs there.

use std::time::Duration;

use anyhow::{Context as _, Result};
use dualchain_e2e::{Cluster, DEFAULT_WAIT, repo_root, wait_for, wait_gone};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;

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

/// What the API server's authorizer answers for `user` doing `verb` on `resource` of
/// `group` in `namespace` (empty: cluster scope), as `kubectl auth can-i --as` asks it.
async fn can(
    client: &kube::Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
) -> Result<bool> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!(
                    "system:serviceaccounts:{}",
                    user.split(':').nth(2).unwrap_or_default()
                ),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The default install (no values set) is namespaced and holds no right to enumerate
/// Secrets: a Role in the release namespace, the operator watching only it, and an
/// authorizer that refuses listing Secrets, reading them elsewhere, and cluster scope.
#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run e2e/run.sh"]
async fn default_install_is_namespaced_and_cannot_list_secrets() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let client = &cluster.client;
    let ns = cluster.namespace("rbac").await?;
    let elsewhere = cluster.namespace("rbac-other").await?;
    let release = "rbac";
    let chart = repo_root().join("helm/dualchain");
    let chart = chart.to_str().context("chart path is not UTF-8")?;
    let out = cluster
        .helm(&["install", release, chart, "--namespace", &ns.name])
        .await?;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let fullname = format!("{release}-operator");

    // Namespaced objects only, and the operator told to watch only its namespace.
    Api::<Role>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&fullname)
            .await?
            .is_none(),
        "the default install created a ClusterRole"
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(&fullname)
            .await?
            .is_none(),
        "the default install created a ClusterRoleBinding"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&fullname)
        .await?;
    let watch = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.as_ref())
        .and_then(|env| env.iter().find(|e| e.name == "WATCH_NAMESPACE"))
        .and_then(|e| e.value.clone());
    assert_eq!(watch.as_deref(), Some(ns.name.as_str()));
    // The operator names its own pods, which every network's NetworkPolicy admits.
    let args = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default();
    assert!(
        args.iter().any(|a| a
            == &format!(
                "--operator-pod-labels=app.kubernetes.io/name=dualchain-operator,app.kubernetes.io/instance={release}"
            )),
        "{args:?}"
    );

    let sa = format!("system:serviceaccount:{}:{fullname}", ns.name);
    let here = ns.name.as_str();
    let other = elsewhere.name.as_str();
    // What reconciling needs. The authorizer's cache sees a new RoleBinding shortly
    // after it is written, so the first answer is awaited.
    wait_for(
        "the operator's RoleBinding to take effect",
        DEFAULT_WAIT,
        || async {
            Ok(can(client, &sa, "get", "", "secrets", here)
                .await?
                .then_some(()))
        },
    )
    .await?;
    let allowed = [
        ("get", "", "secrets", here),
        ("create", "", "secrets", here),
        ("get", "", "configmaps", here),
        ("patch", "", "configmaps", here),
        ("create", "apps", "statefulsets", here),
        ("patch", "apps", "statefulsets", here),
        ("watch", "apps", "statefulsets", here),
        ("delete", "apps", "statefulsets", here),
        ("list", "", "persistentvolumeclaims", here),
        ("create", "", "persistentvolumeclaims", here),
        ("delete", "", "persistentvolumeclaims", here),
        ("list", "dualchain.dev", "dualchainnetworks", here),
        ("watch", "dualchain.dev", "dualchainnetworks", here),
        ("patch", "dualchain.dev", "dualchainnetworks/status", here),
        ("create", "rbac.authorization.k8s.io", "roles", here),
        ("patch", "rbac.authorization.k8s.io", "rolebindings", here),
        ("create", "events.k8s.io", "events", here),
        ("create", "networking.k8s.io", "networkpolicies", here),
        ("patch", "networking.k8s.io", "networkpolicies", here),
    ];
    for (verb, group, resource, namespace) in allowed {
        assert!(
            can(client, &sa, verb, group, resource, namespace).await?,
            "the operator cannot {verb} {resource} in {namespace}, which reconciling needs"
        );
    }
    let refused = [
        // Never enumerate Secrets, nor rewrite or delete one.
        ("list", "", "secrets", here),
        ("watch", "", "secrets", here),
        ("update", "", "secrets", here),
        ("patch", "", "secrets", here),
        ("delete", "", "secrets", here),
        // Nothing outside the release namespace.
        ("get", "", "secrets", other),
        ("create", "", "secrets", other),
        ("list", "", "secrets", ""),
        ("get", "", "secrets", ""),
        ("list", "dualchain.dev", "dualchainnetworks", other),
        ("list", "dualchain.dev", "dualchainnetworks", ""),
        ("create", "rbac.authorization.k8s.io", "roles", other),
        ("create", "rbac.authorization.k8s.io", "rolebindings", other),
        // No way around RBAC's escalation check, and no reading RBAC back.
        ("bind", "rbac.authorization.k8s.io", "roles", here),
        ("escalate", "rbac.authorization.k8s.io", "roles", here),
        ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("list", "rbac.authorization.k8s.io", "roles", here),
        ("update", "rbac.authorization.k8s.io", "roles", here),
        ("list", "", "configmaps", here),
    ];
    for (verb, group, resource, namespace) in refused {
        assert!(
            !can(client, &sa, verb, group, resource, namespace).await?,
            "the operator may {verb} {resource} in {:?}",
            namespace
        );
    }

    cluster
        .helm(&["uninstall", release, "--namespace", &ns.name, "--wait"])
        .await?;
    Ok(())
}
