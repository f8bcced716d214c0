//! The validators' StatefulSets: one per validator, so that each pod mounts only its own
//! key Secrets, rolled one validator at a time by [`crate::rollout`], with data volumes
//! the operator creates and removes itself.
//!
//! Why not one StatefulSet for all: its pods share one template, so every pod would
//! mount every validator's key (a `subPath` hides the others from the container's view,
//! not from a process in the pod or from `kubectl exec`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tracing::info;

use crate::build::network::{self as build, NetworkRef};
use crate::crd::common::MAX_VALIDATORS;
use crate::crd::network::{DualChainNetwork, RetentionPolicy};
use crate::error::{Error, Result, is_conflict};
use crate::names::{self, TEMPLATE_HASH_ANNOTATION, VALIDATOR_INDEX_LABEL};
use crate::reconcile::network::apply;
use crate::rollout::{self, SetObservation};

/// The validators' StatefulSets as they exist, by index.
pub struct ValidatorSets {
    by_index: BTreeMap<u32, StatefulSet>,
}

/// What applying the desired templates did.
pub struct Applied {
    pub plan: rollout::Plan,
    /// Validators whose pod is Ready (of the sets kept).
    pub ready: u32,
    /// Digest of every validator's desired template (the network's, for the status).
    pub template_hash: String,
}

impl ValidatorSets {
    /// Lists the network's StatefulSets. A StatefulSet of the network without a
    /// validator index is the single set of an operator before per-validator sets: it is
    /// refused (its pods mount every key, and its selector overlaps the new ones').
    pub async fn load(api: &Api<StatefulSet>, network: &str) -> Result<Self> {
        let selector = names::selector_string(&names::network_selector(network));
        let list = api.list(&ListParams::default().labels(&selector)).await?;
        let mut by_index = BTreeMap::new();
        for set in list.items {
            let index = set
                .labels()
                .get(VALIDATOR_INDEX_LABEL)
                .and_then(|i| i.parse::<u32>().ok())
                .filter(|&i| i < MAX_VALIDATORS);
            match index {
                Some(i) if set.name_any() == names::validator_statefulset(network, i) => {
                    by_index.insert(i, set);
                }
                _ => {
                    return Err(Error::InvalidSpec(format!(
                        "StatefulSet {} is not one of this operator's per-validator sets (an earlier operator ran all validators in one, mounting every key in every pod); delete it, or recreate the network",
                        set.name_any()
                    )));
                }
            }
        }
        Ok(Self { by_index })
    }

    /// Validators that have a StatefulSet: `0..running` (`None` before the first).
    pub fn running(&self) -> Option<u32> {
        self.by_index.keys().next_back().map(|&i| i + 1)
    }

    /// Ready pods over every existing set (before this reconcile applies anything).
    pub fn ready(&self) -> u32 {
        self.by_index.values().filter(|s| ready(s)).count() as u32
    }

    /// Applies validators `0..replicas`: a missing one is created with the desired
    /// template, an existing one gets it only once the roll reaches it (and one whose
    /// template is already the desired one is left alone: nothing else in a
    /// validator's StatefulSet changes, so a steady network costs no writes).
    pub async fn apply(
        &self,
        api: &Api<StatefulSet>,
        r: &NetworkRef,
        net: &DualChainNetwork,
        config_hash: &str,
        replicas: u32,
    ) -> Result<Applied> {
        let templates: Vec<_> = (0..replicas)
            .map(|i| build::pod_template(net, config_hash, i))
            .collect();
        let hashes: Vec<String> = templates.iter().map(build::template_hash).collect();
        let existing = self.running().unwrap_or(0).min(replicas);
        let observations: Vec<SetObservation> = (0..existing)
            .map(|i| match self.by_index.get(&i) {
                Some(set) => observe(set, &hashes[i as usize]),
                None => SetObservation {
                    template_current: true,
                    ..Default::default()
                },
            })
            .collect();
        let plan = rollout::plan(replicas, rollout::observe(&observations));
        let mut ready_count = 0;
        for (i, template) in (0..replicas).zip(templates) {
            let current = self.by_index.get(&i);
            let set = match current {
                Some(set) if i < plan.partition => set.clone(),
                Some(set) if has_template(set, &hashes[i as usize]) => set.clone(),
                _ => {
                    let name = names::validator_statefulset(&r.name, i);
                    apply(api, &name, &build::statefulset(r, net, i, template)).await?
                }
            };
            ready_count += u32::from(ready(&set));
        }
        Ok(Applied {
            plan,
            ready: ready_count,
            template_hash: build::digest(&hashes.iter().map(String::as_bytes).collect::<Vec<_>>()),
        })
    }

    /// Deletes the StatefulSets of validators `replicas..` (out of the set on both
    /// chains), and their volumes when `storage.whenScaled` is `Delete`.
    pub async fn remove_above(
        &self,
        api: &Api<StatefulSet>,
        claims: &Api<PersistentVolumeClaim>,
        r: &NetworkRef,
        net: &DualChainNetwork,
        replicas: u32,
    ) -> Result<()> {
        for &i in self.by_index.keys().filter(|&&i| i >= replicas) {
            let name = names::validator_statefulset(&r.name, i);
            info!(statefulset = %name, "validator left the set; removing its StatefulSet");
            ignore_missing(api.delete(&name, &DeleteParams::background()).await)?;
            if net.spec.template.storage.when_scaled == RetentionPolicy::Delete {
                let claim = names::validator_data_claim(&r.name, i);
                ignore_missing(claims.delete(&claim, &DeleteParams::background()).await)?;
            }
        }
        Ok(())
    }
}

/// Creates the data volume claims of validators `0..replicas` that do not exist yet
/// (never updates one: a claim's spec is immutable once bound).
pub async fn ensure_data_claims(
    claims: &Api<PersistentVolumeClaim>,
    r: &NetworkRef,
    net: &DualChainNetwork,
    replicas: u32,
) -> Result<()> {
    let selector = names::selector_string(&names::network_selector(&r.name));
    let existing: Vec<String> = claims
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    for i in 0..replicas {
        if existing.contains(&names::validator_data_claim(&r.name, i)) {
            continue;
        }
        match claims
            .create(&PostParams::default(), &build::data_claim(r, net, i))
            .await
        {
            Err(e) if is_conflict(&e) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

fn ignore_missing<T>(result: kube::Result<T>) -> Result<()> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

fn ready(set: &StatefulSet) -> bool {
    set.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        > 0
}

fn has_template(set: &StatefulSet, hash: &str) -> bool {
    set.annotations()
        .get(TEMPLATE_HASH_ANNOTATION)
        .map(String::as_str)
        == Some(hash)
}

fn observe(set: &StatefulSet, desired_hash: &str) -> SetObservation {
    let status = set.status.clone().unwrap_or_default();
    // A status older than the spec says nothing about the current template's pod.
    let fresh = status.observed_generation.is_some()
        && status.observed_generation == set.metadata.generation;
    SetObservation {
        template_current: has_template(set, desired_hash),
        ready: status.ready_replicas.unwrap_or(0) > 0,
        updated: fresh && status.updated_replicas.unwrap_or(0) > 0,
    }
}
