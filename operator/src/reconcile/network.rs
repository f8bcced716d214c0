//! The DualChainNetwork reconciler.
//!
//! Order of work (each step idempotent, so a crash anywhere converges on retry):
//! 1. validator key Secrets — created when absent, never updated or overwritten;
//! 2. one admin token Secret per validator — likewise (only the operator reads them);
//!    their digests go into a ConfigMap, which is what the pods mount;
//! 3. genesis ConfigMap — built once from the keys; later only checked against them;
//! 4. config ConfigMap, Services, NetworkPolicy, PodDisruptionBudget, optional
//!    ServiceMonitor — applied with server-side apply (field manager
//!    `dualchain-operator`);
//! 5. one StatefulSet per validator, each with the data volume claim the operator made
//!    for it — the new template applied to those the roll has reached
//!    ([`crate::rollout::plan`]); the sets of validators out of the set deleted;
//! 6. status — pod readiness plus each validator's gRPC status (unreachable validators
//!    become a `Degraded` condition, not an error).
//!
//! Permanent problems (invalid spec, corrupt key Secret, genesis that no longer matches
//! the keys) set `phase: Failed` with a condition and wait for a spec change.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::crypto::ValidatorPublicKey;
use dualchain_core::types::{Address, Genesis};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, ObjectReference, PersistentVolumeClaim, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument, warn};
use zeroize::Zeroizing;

use crate::build::network::{self as build, ChainName, NetworkRef};
use crate::conditions::{self, Desired};
use crate::context::Context;
use crate::crd::common::{ChainProgress, MAX_VALIDATORS, fault_tolerance, quorum};
use crate::crd::network::{
    DualChainNetwork, DualChainNetworkSpec, DualChainNetworkStatus, SetChangeProgress,
    ValidatorSetStatus,
};
use crate::error::{Error, Result, is_conflict};
use crate::keys;
use crate::names::{self, FIELD_MANAGER};
use crate::reconcile::set_changes;
use crate::reconcile::validator_sets::{self, ValidatorSets};
use crate::rollout::{self, Step};
use crate::scaling;
use crate::status_patch::status_patch;
use crate::validators::{ChainReport, SetView, Target};

/// Controller name (metrics label).
pub const CONTROLLER: &str = "dualchainnetwork";

/// Most unreachable validators listed in status.
const MAX_LISTED_UNREACHABLE: usize = 20;

/// Checks the rules a network needs even if the API server's CEL rules were bypassed
/// (e.g. an older CRD): the same bounds as the schema.
pub fn validate_spec(spec: &DualChainNetworkSpec) -> Result<()> {
    let t = &spec.template;
    let fail = |m: String| Err(Error::InvalidSpec(m));
    if spec.validators == 0 || spec.validators > MAX_VALIDATORS {
        return fail(format!(
            "validators must be between 1 and {MAX_VALIDATORS}, got {}",
            spec.validators
        ));
    }
    if t.alpha.block_time_ms == 0 || t.delta.block_time_ms == 0 {
        return fail("block times must be greater than 0".into());
    }
    if !t.alpha.block_time_ms.is_multiple_of(t.delta.block_time_ms) {
        return fail(format!(
            "delta.blockTimeMs ({}) must divide alpha.blockTimeMs ({})",
            t.delta.block_time_ms, t.alpha.block_time_ms
        ));
    }
    if t.genesis.accounts > 5000 {
        return fail("genesis.accounts must be at most 5000".into());
    }
    if t.image.is_empty() {
        return fail("image must not be empty".into());
    }
    Ok(())
}

/// Entry point for the controller.
#[instrument(skip_all, fields(network = %net.name_any(), namespace = net.namespace().unwrap_or_default()))]
pub async fn reconcile(net: Arc<DualChainNetwork>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    if net.metadata.deletion_timestamp.is_some() {
        // Owner references make the API server delete every child; nothing to do.
        return Ok(Action::await_change());
    }
    match reconcile_inner(&net, &ctx).await {
        Ok(action) => Ok(action),
        Err(error) if error.is_permanent() => {
            ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
            warn!(%error, "permanent error; waiting for a spec change");
            ctx.event(
                &net.object_ref(&()),
                true,
                error.reason(),
                "Reconcile",
                error.to_string(),
            )
            .await;
            write_failed_status(&net, &ctx, &error).await?;
            Ok(Action::await_change())
        }
        Err(error) => {
            ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
            Err(error)
        }
    }
}

/// Requeue policy for transient errors.
pub fn error_policy(_net: Arc<DualChainNetwork>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed; retrying");
    Action::requeue(std::time::Duration::from_secs(10))
}

async fn write_failed_status(net: &DualChainNetwork, ctx: &Context, error: &Error) -> Result<()> {
    let previous = net.status.clone().unwrap_or_default();
    let generation = net.metadata.generation;
    let message = error.to_string();
    let mut status = previous.clone();
    status.phase = "Failed".into();
    status.observed_generation = generation;
    status.conditions = conditions::merge(
        &previous.conditions,
        vec![
            Desired::new("Ready", false, error.reason(), message.clone()),
            Desired::new(
                "Progressing",
                false,
                error.reason(),
                "waiting for the spec to be fixed",
            ),
            Desired::new("Degraded", true, error.reason(), message),
        ],
        generation,
        &ctx.now_rfc3339(),
    );
    patch_status(net, ctx, &previous, status).await
}

async fn patch_status(
    net: &DualChainNetwork,
    ctx: &Context,
    previous: &DualChainNetworkStatus,
    status: DualChainNetworkStatus,
) -> Result<()> {
    if net.status.is_some() && *previous == status {
        return Ok(());
    }
    let api: Api<DualChainNetwork> =
        Api::namespaced(ctx.client.clone(), &net.namespace().unwrap_or_default());
    api.patch_status(
        &net.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status_patch(net.status.as_ref(), &status)?),
    )
    .await?;
    Ok(())
}

/// Server-side apply of one owned object.
pub async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

async fn reconcile_inner(net: &DualChainNetwork, ctx: &Context) -> Result<Action> {
    validate_spec(&net.spec)?;
    let r = NetworkRef::of(net)?;
    let object_ref = net.object_ref(&());
    let client = ctx.client.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &r.namespace);

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &r.namespace);
    let sets = ValidatorSets::load(&statefulsets, &r.name).await?;
    // Validators with pods now: `spec.validators` may have changed since (the set
    // follows it through join and leave requests, see `crate::scaling`).
    let running = sets.running();
    let known = net.spec.validators.max(running.unwrap_or(0));
    let keys = ensure_validator_keys(ctx, &r, &object_ref, &secrets, known).await?;
    let admin_digests = ensure_admin_tokens(ctx, &r, &object_ref, &secrets, known).await?;
    ensure_admin_tls(ctx, &r, &object_ref, &secrets, known).await?;
    let genesis = ensure_genesis(ctx, net, &r, &object_ref, &secrets, &config_maps, &keys).await?;
    let genesis_hash = genesis.hash().to_hex();

    let probe = if sets.ready() > 0 {
        probe_validators(ctx, &r, running.unwrap_or(net.spec.validators)).await
    } else {
        ProbeSummary::default()
    };
    let key_ids: Vec<String> = keys.iter().map(|k| k.id().to_hex()).collect();
    let scale = scaling::plan(
        net.spec.validators,
        running,
        &key_ids,
        probe.set.as_ref(),
        probe.delta_member_epoch,
    );
    let previous = net.status.clone().unwrap_or_default();
    let member_alpha = probe.set.as_ref().zip(probe.asked.clone());
    // A set that must grow past the genesis and cannot stake a newcomer does not get
    // pods that could never join.
    let needs_stake = net.spec.validators > genesis.validators.len() as u32
        || scale
            .needed
            .iter()
            .any(|n| n.change == scaling::Change::Join);
    let blocked = needs_stake
        .then(|| set_changes::stake_blocker(&net.spec.template.genesis))
        .flatten();
    let progress = set_changes::advance(
        ctx,
        net,
        &r,
        &object_ref,
        &secrets,
        &scale,
        member_alpha,
        &previous.set_changes,
        blocked.as_deref(),
    )
    .await;
    let replicas = match (&blocked, running) {
        (Some(_), Some(running)) => scale.replicas.min(running.max(1)),
        _ => scale.replicas,
    };

    let config = build::config_configmap(&r, net, replicas)?;
    apply(&config_maps, &names::config_configmap(&r.name), &config).await?;
    let config_data = config.data.clone().unwrap_or_default();
    // Nodes read their token digest at start: a new token (a deleted token Secret is
    // regenerated) rolls the validators like any config change.
    let digests_text: String = admin_digests
        .iter()
        .map(|(pod, digest)| format!("{pod}={digest}\n"))
        .collect();
    let config_hash = build::digest(&[
        genesis_hash.as_bytes(),
        config_data
            .get(build::CONFIG_KEY)
            .map(String::as_bytes)
            .unwrap_or_default(),
        config_data
            .get(build::PEERS_KEY)
            .map(String::as_bytes)
            .unwrap_or_default(),
        digests_text.as_bytes(),
    ]);

    let services: Api<Service> = Api::namespaced(client.clone(), &r.namespace);
    apply(
        &services,
        &names::headless_service(&r.name),
        &build::headless_service(&r),
    )
    .await?;
    apply(
        &services,
        &names::client_service(&r.name),
        &build::client_service(&r),
    )
    .await?;
    // The pods mount this (never a token), so it exists before the StatefulSet.
    apply(
        &config_maps,
        &names::admin_digests_configmap(&r.name),
        &build::admin_digests_configmap(&r, admin_digests),
    )
    .await?;
    // Before the StatefulSet, so no validator pod runs unprotected.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &r.namespace);
    apply(
        &policies,
        &names::network_policy(&r.name),
        &build::network_policy(&r, ctx.settings.operator_pods.as_ref()),
    )
    .await?;
    // The disruption budget follows the set as Alpha runs it (its fault tolerance),
    // or the wanted size before a member answered.
    let set_size = probe
        .set
        .as_ref()
        .map_or(net.spec.validators, |s| s.members.len() as u32);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &r.namespace);
    apply(&pdbs, &names::pdb(&r.name), &build::pdb(&r, set_size)).await?;
    let service_monitor_note = ensure_service_monitor(ctx, net, &r).await?;

    // The validators' StatefulSets, the new template where the roll has reached.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &r.namespace);
    validator_sets::ensure_data_claims(&claims, &r, net, replicas).await?;
    let applied = sets
        .apply(&statefulsets, &r, net, &config_hash, replicas)
        .await?;
    sets.remove_above(&statefulsets, &claims, &r, net, replicas)
        .await?;
    let plan = applied.plan;
    let desired_hash = applied.template_hash;
    announce_rollout(ctx, &object_ref, running.is_none(), plan, replicas).await;
    announce_scaling(ctx, &object_ref, running, replicas).await;
    let ready = applied.ready;
    let names_of = |id: &str| match key_ids.iter().position(|k| k == id) {
        Some(i) => names::validator_pod(&r.name, i as u32),
        None => scaling::short(id),
    };
    let scaling = ScaleStatus {
        validator_set: probe.set.as_ref().map(|s| set_status(s, names_of)),
        settled: scale.settled(net.spec.validators),
        awaiting_delta: scale
            .awaiting_delta
            .iter()
            .map(|&i| names::validator_pod(&r.name, i))
            .collect(),
        progress,
        blocked,
    };
    let status = compute_status(
        net,
        &previous,
        ready,
        plan.step,
        probe,
        scaling,
        genesis_hash,
        desired_hash,
        plan.partition,
        service_monitor_note,
        &ctx.now_rfc3339(),
    );
    if status.phase != previous.phase {
        info!(from = %previous.phase, to = %status.phase, "phase changed");
        ctx.event(
            &object_ref,
            status.phase == "Degraded",
            &status.phase,
            "Reconcile",
            format!(
                "network is {} ({} validators ready)",
                status.phase, status.ready
            ),
        )
        .await;
    }
    recovery_event(ctx, &object_ref, &previous, &status).await;
    let converged = status.phase == "Running";
    patch_status(net, ctx, &previous, status).await?;
    Ok(Action::requeue(if converged {
        ctx.settings.status_interval
    } else {
        ctx.settings.converging_interval
    }))
}

/// An event when validators get or lose their pods.
async fn announce_scaling(
    ctx: &Context,
    object: &ObjectReference,
    running: Option<u32>,
    replicas: u32,
) {
    let Some(running) = running.filter(|&n| n != replicas) else {
        return;
    };
    let note = if replicas > running {
        format!(
            "{running} → {replicas} validator pods; the new validators follow the chains and ask to join at the next epoch boundary"
        )
    } else {
        format!(
            "{running} → {replicas} validator pods: the removed validators left the set on both chains"
        )
    };
    ctx.event(object, false, "Scaled", "Scale", note).await;
}

async fn announce_rollout(
    ctx: &Context,
    object: &ObjectReference,
    created: bool,
    plan: rollout::Plan,
    n: u32,
) {
    let (warning, reason, note) = match plan.step {
        Step::Idle if created => (
            false,
            "StatefulSetsCreated",
            format!("created the StatefulSets of {n} validators"),
        ),
        Step::Idle => return,
        Step::Started => (
            false,
            "RolloutStarted",
            format!("pod template changed; rolling validator {}", plan.partition),
        ),
        Step::Advanced => (
            false,
            "RolloutAdvanced",
            format!("rolling validator {}", plan.partition),
        ),
        Step::Finished => (
            false,
            "RolloutFinished",
            "every validator runs the new template".to_string(),
        ),
        Step::WaitingToStart => (
            true,
            "RolloutBlocked",
            format!(
                "pod template changed, but fewer than {} validators are ready; waiting so a quorum stays up",
                rollout::ready_needed_to_roll(n)
            ),
        ),
        Step::Waiting => return,
    };
    ctx.event(object, warning, reason, "Rollout", note).await;
}

async fn ensure_validator_keys(
    ctx: &Context,
    r: &NetworkRef,
    object: &ObjectReference,
    secrets: &Api<Secret>,
    validators: u32,
) -> Result<Vec<ValidatorPublicKey>> {
    // Each key Secret is read by its name: the operator never lists Secrets (its RBAC
    // grants only get and create), so it cannot read a Secret it did not name.
    let results: Vec<(ValidatorPublicKey, bool)> = futures::stream::iter(0..validators)
        .map(|index| {
            let name = names::validator_secret(&r.name, index);
            async move {
                match secrets.get_opt(&name).await? {
                    Some(secret) => Ok((read_key(&name, &secret)?, false)),
                    None => create_key(r, secrets, index, &name).await,
                }
            }
        })
        .buffered(ctx.settings.write_concurrency.max(1))
        .try_collect()
        .await?;
    let created = results.iter().filter(|(_, created)| *created).count();
    if created > 0 {
        info!(created, "generated validator keys");
        ctx.event(
            object,
            false,
            "ValidatorKeysGenerated",
            "CreateSecrets",
            format!("generated {created} ML-DSA-87 validator key Secret(s)"),
        )
        .await;
    }
    Ok(results.into_iter().map(|(k, _)| k).collect())
}

fn read_key(name: &str, secret: &Secret) -> Result<ValidatorPublicKey> {
    Ok(keys::validator_public_key(
        name,
        &secret.data.clone().unwrap_or_default(),
    )?)
}

/// Creates a key Secret; if another writer won the race, uses theirs (never overwrites).
async fn create_key(
    r: &NetworkRef,
    secrets: &Api<Secret>,
    index: u32,
    name: &str,
) -> Result<(ValidatorPublicKey, bool)> {
    let key = tokio::task::spawn_blocking(keys::new_validator_key)
        .await
        .map_err(|e| Error::Keys(keys::KeyError::Entropy(e.to_string())))??;
    let secret = build::validator_key_secret(r, index, keys::validator_key_data(&key));
    match secrets.create(&post_params(), &secret).await {
        Ok(_) => Ok((key.public().clone(), true)),
        Err(e) if is_conflict(&e) => Ok((read_key(name, &secrets.get(name).await?)?, false)),
        Err(e) => Err(e.into()),
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// One admin token per validator, each in a Secret of its own that only the operator
/// reads (created when absent, never updated; read by name). Returns each validator's
/// token digest, keyed by pod name, for the ConfigMap the pods mount.
async fn ensure_admin_tokens(
    ctx: &Context,
    r: &NetworkRef,
    object: &ObjectReference,
    secrets: &Api<Secret>,
    validators: u32,
) -> Result<BTreeMap<String, String>> {
    let results: Vec<(String, String, bool)> = futures::stream::iter(0..validators)
        .map(|index| async move {
            let name = names::admin_token_secret(&r.name, index);
            let (token, created) = match secrets.get_opt(&name).await? {
                Some(secret) => (read_admin_token(&name, &secret)?, false),
                None => {
                    let token = keys::new_admin_token()?;
                    match secrets
                        .create(&post_params(), &build::admin_token_secret(r, index, &token))
                        .await
                    {
                        Ok(_) => (token, true),
                        // Another writer won the race: theirs is the token.
                        Err(e) if is_conflict(&e) => {
                            (read_admin_token(&name, &secrets.get(&name).await?)?, false)
                        }
                        Err(e) => return Err(Error::from(e)),
                    }
                }
            };
            Ok::<_, Error>((
                names::validator_pod(&r.name, index),
                keys::admin_token_digest(&token),
                created,
            ))
        })
        .buffered(ctx.settings.write_concurrency.max(1))
        .try_collect()
        .await?;
    let created = results.iter().filter(|(_, _, created)| *created).count();
    if created > 0 {
        info!(created, "generated admin tokens");
        ctx.event(
            object,
            false,
            "AdminTokensGenerated",
            "CreateSecrets",
            format!("generated {created} per-validator admin token Secret(s)"),
        )
        .await;
    }
    Ok(results
        .into_iter()
        .map(|(pod, digest, _)| (pod, digest))
        .collect())
}

/// One admin TLS identity per validator, each in a Secret of its own (created when
/// absent, never updated; read by name): the validator's pod mounts its own, and the
/// operator trusts exactly that certificate when it calls the validator's `Admin`.
async fn ensure_admin_tls(
    ctx: &Context,
    r: &NetworkRef,
    object: &ObjectReference,
    secrets: &Api<Secret>,
    validators: u32,
) -> Result<()> {
    let created: Vec<bool> = futures::stream::iter(0..validators)
        .map(|index| async move {
            let name = names::admin_tls_secret(&r.name, index);
            if let Some(secret) = secrets.get_opt(&name).await? {
                read_admin_certificate(&name, &secret)?;
                return Ok(false);
            }
            let pod = names::validator_pod(&r.name, index);
            let tls = tokio::task::spawn_blocking(move || keys::new_admin_tls(&pod))
                .await
                .map_err(|e| Error::Keys(keys::KeyError::Certificate(e.to_string())))??;
            match secrets
                .create(&post_params(), &build::admin_tls_secret(r, index, &tls))
                .await
            {
                Ok(_) => Ok(true),
                // Another writer won the race: theirs is the identity.
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(Error::from(e)),
            }
        })
        .buffered(ctx.settings.write_concurrency.max(1))
        .try_collect()
        .await?;
    let created = created.into_iter().filter(|c| *c).count();
    if created > 0 {
        info!(created, "generated admin TLS identities");
        ctx.event(
            object,
            false,
            "AdminTlsGenerated",
            "CreateSecrets",
            format!("generated {created} per-validator admin TLS Secret(s)"),
        )
        .await;
    }
    Ok(())
}

/// The certificate of an admin TLS Secret; one without a PEM certificate is a
/// permanent error (the Secret is never rewritten by the operator).
pub fn read_admin_certificate(name: &str, secret: &Secret) -> Result<Vec<u8>> {
    let data = secret.data.clone().unwrap_or_default();
    Ok(keys::admin_tls_certificate(name, &data)?)
}

/// The token of an admin token Secret; one that is not a usable bearer token is a
/// permanent error (the Secret is never rewritten by the operator).
pub fn read_admin_token(name: &str, secret: &Secret) -> Result<Zeroizing<String>> {
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(keys::ADMIN_TOKEN_KEY))
        .map(|b| Zeroizing::new(String::from_utf8_lossy(&b.0).trim().to_string()))
        .unwrap_or_default();
    if dualchain_proto::AdminToken::new(&token).is_err() {
        return Err(Error::Keys(keys::KeyError::BadAdminToken {
            secret: name.to_string(),
        }));
    }
    Ok(token)
}

fn parse_genesis(cm: &ConfigMap) -> Result<Genesis> {
    let json = cm
        .data
        .as_ref()
        .and_then(|d| d.get(build::GENESIS_KEY))
        .ok_or_else(|| {
            Error::Genesis(format!(
                "ConfigMap {} has no {}",
                cm.name_any(),
                build::GENESIS_KEY
            ))
        })?;
    Genesis::from_json(json)
        .map_err(|e| Error::Genesis(format!("ConfigMap {}: {e}", cm.name_any())))
}

async fn ensure_genesis(
    ctx: &Context,
    net: &DualChainNetwork,
    r: &NetworkRef,
    object: &ObjectReference,
    secrets: &Api<Secret>,
    config_maps: &Api<ConfigMap>,
    keys: &[ValidatorPublicKey],
) -> Result<Genesis> {
    let name = names::genesis_configmap(&r.name);
    let check = |genesis: Genesis| {
        if crate::genesis::matches_validators(&genesis, keys) {
            Ok(genesis)
        } else {
            Err(Error::Genesis(format!(
                "ConfigMap {name} lists other validator keys than the key Secrets of its {} ordinals; \
                 the network's identity is fixed, restore the original Secrets",
                keys.len()
            )))
        }
    };
    if let Some(cm) = config_maps.get_opt(&name).await? {
        return check(parse_genesis(&cm)?);
    }
    let accounts = ensure_accounts(ctx, net, r, secrets).await?;
    let now_ms = ctx.clock.now().as_millisecond().max(0) as u64;
    let genesis = crate::genesis::build(&r.name, &net.spec, keys, &accounts, now_ms)
        .map_err(|e| Error::Genesis(e.to_string()))?;
    let hash = genesis.hash().to_hex();
    let json = crate::genesis::configmap_json(&genesis).map_err(Error::Genesis)?;
    match config_maps
        .create(&post_params(), &build::genesis_configmap(r, json, &hash))
        .await
    {
        Ok(_) => {
            ctx.event(
                object,
                false,
                "GenesisCreated",
                "CreateGenesis",
                format!(
                    "genesis {hash} with {} validators and {} accounts",
                    keys.len(),
                    accounts.len()
                ),
            )
            .await;
            Ok(genesis)
        }
        Err(e) if is_conflict(&e) => check(parse_genesis(&config_maps.get(&name).await?)?),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_accounts(
    ctx: &Context,
    net: &DualChainNetwork,
    r: &NetworkRef,
    secrets: &Api<Secret>,
) -> Result<Vec<Address>> {
    let count = net.spec.template.genesis.accounts as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    let name = names::accounts_secret(&r.name);
    let read = |secret: Secret| -> Result<Vec<Address>> {
        Ok(keys::keyring_addresses(&name, &keys::keyring_of(&secret))?)
    };
    if let Some(secret) = secrets.get_opt(&name).await? {
        return read(secret);
    }
    let seed = match net.spec.template.genesis.accounts_seed {
        Some(seed) => keys::AccountSeed::Public(seed),
        None => keys::AccountSeed::secret()?,
    };
    let account_keys = tokio::task::spawn_blocking(move || seed.keys(count))
        .await
        .map_err(|e| Error::Keys(keys::KeyError::Entropy(e.to_string())))?;
    let text = keys::keyring_text(&account_keys);
    match secrets
        .create(&post_params(), &build::accounts_secret(r, &text))
        .await
    {
        Ok(_) => {
            ctx.event(
                &net.object_ref(&()),
                false,
                "AccountsGenerated",
                "CreateSecrets",
                format!("generated {count} funded account keys in Secret {name}"),
            )
            .await;
            Ok(account_keys
                .iter()
                .map(|k| Address::of(k.public()))
                .collect())
        }
        Err(e) if is_conflict(&e) => read(secrets.get(&name).await?),
        Err(e) => Err(e.into()),
    }
}

/// Returns a note for the status when the ServiceMonitor could not be created.
async fn ensure_service_monitor(
    ctx: &Context,
    net: &DualChainNetwork,
    r: &NetworkRef,
) -> Result<Option<String>> {
    if !net.spec.template.service_monitor.enabled {
        return Ok(None);
    }
    let resource = build::service_monitor_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &r.namespace, &resource);
    let object = build::service_monitor(r, net);
    match api
        .patch(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
    {
        Ok(_) => Ok(None),
        Err(e) if crate::error::is_not_found(&e) => Ok(Some(
            "serviceMonitor.enabled is set but the monitoring.coreos.com/v1 ServiceMonitor CRD is not installed".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// What the gRPC probes found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeSummary {
    pub alpha: ChainProgress,
    pub delta: ChainProgress,
    pub unreachable: Vec<String>,
    pub probed: bool,
    /// Validators that answered on at least one chain.
    pub answered: u32,
    /// Validators in an epoch transition: their chains run sets of different epochs,
    /// or a chain has not committed a block of its epoch yet (pod: detail).
    pub transitioning: Vec<String>,
    /// Validators whose status says they are no longer in the set (they left).
    pub left_set: Vec<String>,
    /// The set Alpha runs and the changes it holds for its next boundary (asked of
    /// one member that answered; `None` when none could say).
    pub set: Option<SetView>,
    /// That member's Alpha endpoint (set-change requests go there).
    pub asked: Option<Target>,
    /// The lowest epoch a member's Delta reports (`None`: no member's Delta answered).
    pub delta_member_epoch: Option<u64>,
    /// Validators restoring a chain (pod chain: the node's health reason): filling an
    /// empty data directory from a snapshot, or catching up by block sync.
    pub recovering: Vec<String>,
}

/// Whether a chain's health reason says it is restoring its state rather than
/// failing: state sync into an empty data directory, block sync after being away
/// longer than the consensus window, or a re-seed after its data diverged from the
/// certified chain (the node's own words, `runtime::health` and `runtime::reseed`).
pub fn is_recovering(health_reason: &str) -> bool {
    health_reason.starts_with("state sync")
        || health_reason.starts_with("catching up by block sync")
        || health_reason.starts_with("re-seeding")
}

/// One validator's chains as the probe saw them, into the summary's epoch lists.
fn note_epochs(summary: &mut ProbeSummary, pod: &str, reports: [Option<&ChainReport>; 2]) {
    let seen: Vec<(ChainName, &ChainReport)> = ChainName::ALL
        .into_iter()
        .zip(reports)
        .filter_map(|(chain, report)| Some((chain, report?)))
        .collect();
    if seen.is_empty() {
        return;
    }
    summary.answered += 1;
    if seen.iter().any(|(_, report)| !report.member) {
        summary.left_set.push(pod.to_string());
        return;
    }
    if let Some((_, delta)) = seen.iter().find(|(chain, _)| *chain == ChainName::Delta) {
        summary.delta_member_epoch = Some(
            summary
                .delta_member_epoch
                .map_or(delta.epoch, |e| e.min(delta.epoch)),
        );
    }
    let epochs_differ = seen.windows(2).any(|w| w[0].1.epoch != w[1].1.epoch);
    let applying = seen.iter().any(|(_, r)| r.head_epoch < r.epoch);
    if epochs_differ || applying {
        let detail = seen
            .iter()
            .map(|(chain, r)| {
                format!(
                    "{} epoch {} (head block of {})",
                    chain.as_str(),
                    r.epoch,
                    r.head_epoch
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        summary.transitioning.push(format!("{pod}: {detail}"));
    }
}

/// The first [`MAX_LISTED_UNREACHABLE`] of `items`, for a condition's message.
fn list(items: &[String]) -> String {
    items
        .iter()
        .take(MAX_LISTED_UNREACHABLE)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the operator knows and does about the validator set, for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleStatus {
    pub validator_set: Option<ValidatorSetStatus>,
    /// The set holds exactly `spec.validators` of this network's validators and no
    /// other pod is kept (see [`crate::scaling::ScalePlan::settled`]).
    pub settled: bool,
    /// Pods of validators out of Alpha's set, kept until Delta's boundary.
    pub awaiting_delta: Vec<String>,
    /// The operator's set-change requests in progress.
    pub progress: Vec<SetChangeProgress>,
    /// Why the set cannot grow, when it must.
    pub blocked: Option<String>,
}

/// The status view of a set; `name` turns a key id into a pod name (or a short id).
fn set_status(set: &SetView, name: impl Fn(&str) -> String) -> ValidatorSetStatus {
    ValidatorSetStatus {
        epoch: set.epoch,
        size: set.members.len() as u32,
        members: set.members.iter().map(|id| name(id)).collect(),
        joining: set.pending.joining.iter().map(|id| name(id)).collect(),
        leaving: set.pending.leaving.iter().map(|id| name(id)).collect(),
    }
}

/// The `Reconfiguring` condition: whether the validator set is changing, as far as
/// the probe saw (no condition when no validator answered: nothing is known).
fn reconfiguring_condition(
    net: &DualChainNetwork,
    probe: &ProbeSummary,
    scale: &ScaleStatus,
) -> Option<Desired> {
    let n = net.spec.validators;
    if let Some(blocked) = &scale.blocked {
        return Some(Desired::new(
            "Reconfiguring",
            true,
            "CannotGrow",
            format!("cannot grow the set to {n} validators: {blocked}"),
        ));
    }
    if probe.answered == 0 {
        return None;
    }
    Some(
        if !scale.progress.is_empty() || !scale.awaiting_delta.is_empty() {
            let mut steps: Vec<String> = scale
                .progress
                .iter()
                .map(|p| format!("{} ({}): {}", p.validator, p.change.to_lowercase(), p.state))
                .collect();
            steps.extend(scale.awaiting_delta.iter().map(|pod| {
                format!("{pod}: out of Alpha's set; its pod stays until Delta reaches the boundary")
            }));
            Desired::new(
                "Reconfiguring",
                true,
                "Scaling",
                format!("changing the set to {n} validators: {}", list(&steps)),
            )
        } else if scale.validator_set.is_none() && !scale.settled {
            Desired::new(
                "Reconfiguring",
                true,
                "SetUnknown",
                format!(
                    "no member answered with the validator set; the operator cannot tell whether it holds {n} validators, and removes no pod meanwhile{}",
                    if probe.left_set.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (not in the set by their own status: {})",
                            list(&probe.left_set)
                        )
                    }
                ),
            )
        } else if let Some(set) = scale
            .validator_set
            .as_ref()
            .filter(|s| !s.joining.is_empty() || !s.leaving.is_empty())
        {
            let mut changes: Vec<String> =
                set.leaving.iter().map(|v| format!("{v} leaves")).collect();
            changes.extend(set.joining.iter().map(|v| format!("{v} joins")));
            Desired::new(
                "Reconfiguring",
                true,
                "SetChangePending",
                format!("at the next epoch boundary: {}", changes.join(", ")),
            )
        } else if !probe.transitioning.is_empty() {
            Desired::new(
                "Reconfiguring",
                true,
                "EpochTransition",
                format!(
                    "an epoch transition is in progress: {}",
                    list(&probe.transitioning)
                ),
            )
        } else {
            Desired::new(
                "Reconfiguring",
                false,
                "Stable",
                format!(
                    "the set holds the {n} validators and every validator that answered runs the same epoch's set on both chains"
                ),
            )
        },
    )
}

/// An event when validators start restoring a chain's state (`Recovering` turns
/// true) and when they are done (it turns false). Not on every change of its
/// message: that carries each node's progress, which moves on every probe.
async fn recovery_event(
    ctx: &Context,
    object: &ObjectReference,
    previous: &DualChainNetworkStatus,
    status: &DualChainNetworkStatus,
) {
    let recovering = |s: &DualChainNetworkStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Recovering")
            .map(|c| (c.status == "True", c.message.clone()))
    };
    match (recovering(previous), recovering(status)) {
        (None | Some((false, _)), Some((true, message))) => {
            ctx.event(object, false, "ValidatorsRecovering", "Recover", message)
                .await
        }
        (Some((true, _)), Some((false, _))) => {
            ctx.event(
                object,
                false,
                "ValidatorsRecovered",
                "Recover",
                "every validator that answered runs its chains from its own state again".into(),
            )
            .await
        }
        _ => {}
    }
}

/// The `Recovering` condition: validators restoring a chain's state (a replacement
/// pod with an empty volume syncing from a snapshot, a validator back from a long
/// outage following by blocks) — expected work, not a failure; none when no
/// validator answered.
fn recovering_condition(probe: &ProbeSummary) -> Option<Desired> {
    if probe.answered == 0 {
        return None;
    }
    Some(if probe.recovering.is_empty() {
        Desired::new(
            "Recovering",
            false,
            "NoneRecovering",
            "no validator is restoring a chain's state",
        )
    } else {
        Desired::new(
            "Recovering",
            true,
            "ValidatorsRecovering",
            list(&probe.recovering),
        )
    })
}

/// Probes both chains of every validator, bounded in concurrency and time.
pub async fn probe_validators(ctx: &Context, r: &NetworkRef, validators: u32) -> ProbeSummary {
    let targets: Vec<Target> = (0..validators)
        .flat_map(|i| {
            ChainName::ALL.map(|chain| Target {
                index: i,
                validator: names::validator_pod(&r.name, i),
                host: names::validator_host(&r.name, &r.namespace, i),
                chain,
            })
        })
        .collect();
    // Each validator's Alpha endpoint, to ask one member for the pending changes.
    let targets_by_pod: std::collections::BTreeMap<String, Target> = targets
        .iter()
        .filter(|t| t.chain == ChainName::Alpha)
        .map(|t| (t.validator.clone(), t.clone()))
        .collect();
    let results: Vec<(
        Target,
        Result<ChainReport, crate::validators::ValidatorError>,
    )> = futures::stream::iter(targets)
        .map(|t| {
            let call = ctx.validators.status(t.clone());
            async move { (t, call.await) }
        })
        .buffer_unordered(ctx.settings.probe_concurrency.max(1))
        .collect()
        .await;
    let mut summary = ProbeSummary {
        probed: true,
        ..Default::default()
    };
    let mut unreachable = std::collections::BTreeSet::new();
    let mut by_pod: std::collections::BTreeMap<String, [Option<ChainReport>; 2]> =
        std::collections::BTreeMap::new();
    for (target, result) in results {
        match result {
            Ok(report) => {
                let slot = match target.chain {
                    ChainName::Alpha => 0,
                    ChainName::Delta => 1,
                };
                by_pod.entry(target.validator.clone()).or_default()[slot] = Some(report.clone());
                if is_recovering(&report.health_reason) {
                    summary.recovering.push(format!(
                        "{} {}: {}",
                        target.validator,
                        target.chain.as_str(),
                        report.health_reason
                    ));
                }
                let p = match target.chain {
                    ChainName::Alpha => &mut summary.alpha,
                    ChainName::Delta => &mut summary.delta,
                };
                p.height = p.height.max(report.height);
                p.finalized_height = p.finalized_height.max(report.finalized_height);
                p.epoch = p.epoch.max(report.epoch);
                p.reachable_validators += 1;
            }
            Err(error) => {
                tracing::debug!(%error, "validator status probe failed");
                unreachable.insert(target.validator);
            }
        }
    }
    summary.unreachable = unreachable.into_iter().collect();
    for (pod, [alpha, delta]) in &by_pod {
        note_epochs(&mut summary, pod, [alpha.as_ref(), delta.as_ref()]);
    }
    let asked = by_pod
        .iter()
        .find(|(_, [alpha, _])| alpha.as_ref().is_some_and(|r| r.member))
        .and_then(|(pod, _)| targets_by_pod.get(pod).cloned());
    if let Some(target) = asked {
        match ctx.validators.validator_set(target.clone()).await {
            Ok(set) => {
                summary.set = Some(set);
                summary.asked = Some(target);
            }
            Err(error) => tracing::debug!(%error, "reading the validator set failed"),
        }
    }
    summary
}

/// Derives the status (pure, unit-tested).
#[allow(clippy::too_many_arguments)]
pub fn compute_status(
    net: &DualChainNetwork,
    previous: &DualChainNetworkStatus,
    ready: u32,
    step: Step,
    probe: ProbeSummary,
    scale: ScaleStatus,
    genesis_hash: String,
    template_hash: String,
    partition: u32,
    service_monitor_note: Option<String>,
    now: &str,
) -> DualChainNetworkStatus {
    let n = net.spec.validators;
    // Fault tolerance and quorum are the set's, as Alpha runs it (the wanted size
    // until a member said).
    let set_size = scale.validator_set.as_ref().map_or(n, |s| s.size);
    let f = fault_tolerance(set_size);
    let q = quorum(set_size);
    let all_ready = ready >= n;
    let unreachable_count = probe.unreachable.len();
    let was_up = matches!(previous.phase.as_str(), "Running" | "Degraded");
    let phase = if all_ready && unreachable_count == 0 {
        "Running"
    } else if ready >= q || was_up {
        "Degraded"
    } else {
        "Provisioning"
    };
    let rolling = !matches!(step, Step::Idle | Step::Finished);
    let mut desired = vec![
        if all_ready {
            Desired::new(
                "Ready",
                true,
                "AllValidatorsReady",
                format!("{ready}/{n} validators ready"),
            )
        } else if ready >= q {
            Desired::new(
                "Ready",
                false,
                "ValidatorsNotReady",
                format!("{ready}/{n} validators ready (quorum {q} met)"),
            )
        } else {
            Desired::new(
                "Ready",
                false,
                "BelowQuorum",
                format!("{ready}/{n} validators ready, {q} needed for a quorum"),
            )
        },
        if rolling {
            Desired::new(
                "Progressing",
                true,
                "RollingUpdate",
                format!(
                    "rolling validators one at a time; validators below index {partition} still run the old template"
                ),
            )
        } else if !all_ready {
            Desired::new(
                "Progressing",
                true,
                "Provisioning",
                format!("waiting for {} validator(s)", n - ready.min(n)),
            )
        } else {
            Desired::new(
                "Progressing",
                false,
                "Stable",
                "every validator runs the current template",
            )
        },
    ];
    desired.push(if unreachable_count > 0 {
        Desired::new(
            "Degraded",
            true,
            "ValidatorsUnreachable",
            format!(
                "{unreachable_count} validator(s) did not answer the gRPC status probe: {}",
                probe
                    .unreachable
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if phase == "Degraded" {
        Desired::new(
            "Degraded",
            true,
            "ValidatorsNotReady",
            format!("{ready}/{n} validators ready"),
        )
    } else if let Some(note) = &service_monitor_note {
        Desired::new("Degraded", true, "ServiceMonitorUnavailable", note.clone())
    } else {
        Desired::new("Degraded", false, "AsExpected", "")
    });
    desired.push(if f == 0 {
        Desired::new("FaultTolerant", false, "TooFewValidators", format!(
            "{set_size} validator(s) tolerate no faulty validator; 4 or more are needed to tolerate one"))
    } else {
        Desired::new("FaultTolerant", true, "QuorumMargin", format!("tolerates {f} faulty validator(s) of {set_size}"))
    });
    desired.extend(reconfiguring_condition(net, &probe, &scale));
    desired.extend(recovering_condition(&probe));
    // Keep the last known heights when a probe round could not run.
    let (alpha, delta) = if probe.probed {
        (probe.alpha, probe.delta)
    } else {
        (
            ChainProgress {
                reachable_validators: 0,
                ..previous.alpha.clone()
            },
            ChainProgress {
                reachable_validators: 0,
                ..previous.delta.clone()
            },
        )
    };
    DualChainNetworkStatus {
        phase: phase.into(),
        observed_generation: net.metadata.generation,
        validators: n,
        ready_validators: ready.min(n),
        ready: format!("{}/{n}", ready.min(n)),
        fault_tolerance: f,
        quorum: q,
        conditions: conditions::merge(&previous.conditions, desired, net.metadata.generation, now),
        alpha,
        delta,
        genesis_hash: Some(genesis_hash),
        template_hash: Some(template_hash),
        rollout_partition: rolling.then_some(partition),
        unreachable_validators: probe
            .unreachable
            .into_iter()
            .take(MAX_LISTED_UNREACHABLE)
            .collect(),
        // Keep the last known set when no member answered this time.
        validator_set: scale
            .validator_set
            .or_else(|| previous.validator_set.clone()),
        set_changes: scale.progress,
    }
}

#[cfg(test)]
mod epoch_tests {
    use super::*;

    fn report(epoch: u64, head_epoch: u64, member: bool) -> ChainReport {
        ChainReport {
            epoch,
            head_epoch,
            member,
            ..ChainReport::default()
        }
    }

    /// The condition's status, reason and message (a validator answered).
    fn verdict(probe: &ProbeSummary, scale: &ScaleStatus) -> (bool, String, String) {
        let net = crate::tests::fixtures::network("n", serde_json::json!({"validators": 4}));
        let condition = reconfiguring_condition(&net, probe, scale).expect("a validator answered");
        (condition.status, condition.reason, condition.message)
    }

    fn summary(pods: &[(&str, [Option<ChainReport>; 2])]) -> ProbeSummary {
        let mut s = ProbeSummary {
            probed: true,
            ..ProbeSummary::default()
        };
        for (pod, [alpha, delta]) in pods {
            note_epochs(&mut s, pod, [alpha.as_ref(), delta.as_ref()]);
        }
        s
    }

    /// The set of four, as Alpha runs it in epoch 3, with nothing to do.
    fn settled() -> ScaleStatus {
        ScaleStatus {
            validator_set: Some(ValidatorSetStatus {
                epoch: 3,
                size: 4,
                members: (0..4).map(|i| format!("n-{i}")).collect(),
                ..Default::default()
            }),
            settled: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_reconfiguring_condition_says_what_changes_the_set() {
        let steady = Some(report(3, 3, true));
        let stable = summary(&[("n-0", [steady.clone(), steady.clone()])]);
        let (status, reason, _) = verdict(&stable, &settled());
        assert_eq!((status, reason.as_str()), (false, "Stable"));

        // Alpha passed the boundary into epoch 4 and Delta has not applied it yet;
        // another validator's Alpha has not sealed a block of epoch 4 yet.
        let moving = summary(&[
            ("n-0", [Some(report(4, 4, true)), steady.clone()]),
            ("n-1", [Some(report(4, 3, true)), Some(report(4, 4, true))]),
            ("n-2", [Some(report(4, 4, true)), Some(report(4, 4, true))]),
        ]);
        assert_eq!(moving.answered, 3);
        assert_eq!(
            moving.delta_member_epoch,
            Some(3),
            "the lowest member Delta"
        );
        let (status, reason, message) = verdict(&moving, &settled());
        assert_eq!((status, reason.as_str()), (true, "EpochTransition"));
        assert_eq!(
            message,
            "an epoch transition is in progress: n-0: alpha epoch 4 (head block of 4), delta epoch 3 (head block of 3); n-1: alpha epoch 4 (head block of 3), delta epoch 4 (head block of 4)"
        );

        // The operator's own changes outrank a transition, each with its step.
        let mut scaling = settled();
        scaling.settled = false;
        scaling.progress = vec![SetChangeProgress {
            validator: "n-4".into(),
            change: "Join".into(),
            state: "waiting for its stake lock 0a0b to commit on Alpha".into(),
            ..Default::default()
        }];
        scaling.awaiting_delta = vec!["n-5".into()];
        let (status, reason, message) = verdict(&moving, &scaling);
        assert_eq!((status, reason.as_str()), (true, "Scaling"));
        assert_eq!(
            message,
            "changing the set to 4 validators: n-4 (join): waiting for its stake lock 0a0b to commit on Alpha; n-5: out of Alpha's set; its pod stays until Delta reaches the boundary"
        );
        // A set that must grow and cannot says why first.
        scaling.blocked = Some("genesis.accounts is 0".into());
        assert_eq!(verdict(&stable, &scaling).1, "CannotGrow");

        // A change somebody else asked for, waiting for the next boundary.
        let mut waiting = settled();
        waiting.validator_set.as_mut().unwrap().leaving = vec!["1a2b3c4d5e6f7a8b".into()];
        let (status, reason, message) = verdict(&stable, &waiting);
        assert_eq!((status, reason.as_str()), (true, "SetChangePending"));
        assert_eq!(
            message,
            "at the next epoch boundary: 1a2b3c4d5e6f7a8b leaves"
        );

        // Validators answered but none with the set: nothing is removed on a guess.
        let left = summary(&[("n-3", [None, Some(report(4, 4, false))])]);
        assert_eq!(left.left_set, vec!["n-3".to_string()]);
        let (status, reason, _) = verdict(&left, &ScaleStatus::default());
        assert_eq!((status, reason.as_str()), (true, "SetUnknown"));

        // Nobody answered: nothing is known, no condition.
        let net = crate::tests::fixtures::network("n", serde_json::json!({"validators": 4}));
        assert_eq!(
            reconfiguring_condition(&net, &summary(&[("n-0", [None, None])]), &settled()),
            None
        );
    }

    #[test]
    fn validators_restoring_their_state_are_recovering_not_failing() {
        // The node's own health reasons (runtime::health).
        assert!(is_recovering(
            "state sync: filling the empty data directory from a verified snapshot; the chain then follows by block sync to the tip"
        ));
        assert!(is_recovering(
            "catching up by block sync (further behind than the consensus window): at height 7 of epoch 1; consensus resumes at an epoch boundary"
        ));
        assert!(is_recovering(
            "re-seeding: the certified block 9 names parent 0101…, but this node's block 8 is 0202…: this node's chain diverged from the network's; its data was moved to /data/delta/diverged-1767225600000"
        ));
        for other in [
            "",
            "restarting (restart 2) after: disk full",
            "no block for 9.0 s",
        ] {
            assert!(!is_recovering(other), "{other}");
        }
        let steady = Some(report(3, 3, true));
        let mut probe = summary(&[("n-0", [steady.clone(), steady])]);
        let condition = recovering_condition(&probe).unwrap();
        assert_eq!(
            (condition.status, condition.reason.as_str()),
            (false, "NoneRecovering")
        );
        probe.recovering = vec!["n-3 delta: state sync: filling the empty data directory".into()];
        let condition = recovering_condition(&probe).unwrap();
        assert_eq!(
            (condition.status, condition.reason.as_str()),
            (true, "ValidatorsRecovering")
        );
        assert_eq!(
            condition.message,
            "n-3 delta: state sync: filling the empty data directory"
        );
        assert_eq!(
            recovering_condition(&summary(&[("n-0", [None, None])])),
            None
        );
    }
}
