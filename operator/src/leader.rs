//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only the holder of the Lease runs the controllers, so two replicas (or a replica and
//! a developer's local process) never reconcile the same objects at once. Updates use
//! the Lease's `resourceVersion` (optimistic concurrency): of two candidates racing for
//! an expired Lease exactly one `replace` succeeds, the other gets 409 and stays a
//! follower. A leader that cannot renew before the lease duration runs out stops its
//! controllers (the caller exits) rather than risk two leaders.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::context::Clock;
use crate::error::{is_conflict, is_not_found};

/// Lease parameters.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This candidate's identity (pod name, or host name plus pid).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews (well below `lease_duration`).
    pub renew_interval: Duration,
    /// How often a follower retries.
    pub retry_interval: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            name: "dualchain-operator".into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_interval: Duration::from_secs(2),
        }
    }
}

/// Result of one acquisition attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (acquired or renewed).
    Leader,
    /// Someone else holds a valid lease, or won a race.
    Follower,
}

/// Tries once to acquire or renew the lease.
pub async fn try_acquire(
    client: &Client,
    config: &LeaseConfig,
    clock: &dyn Clock,
) -> Result<Attempt, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let now = clock.now();
    let duration_s = config.lease_duration.as_secs() as i32;
    let mine = |acquire: MicroTime, transitions: i32| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(duration_s),
        acquire_time: Some(acquire),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let existing = match api.get(&config.name).await {
        Ok(lease) => lease,
        Err(e) if is_not_found(&e) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(mine(MicroTime(now), 0)),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leader),
                Err(e) if is_conflict(&e) => Ok(Attempt::Follower),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let spec = existing.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let new_spec = if holder == config.identity {
        mine(
            spec.acquire_time.clone().unwrap_or(MicroTime(now)),
            transitions,
        )
    } else {
        let valid_for = i64::from(spec.lease_duration_seconds.unwrap_or(duration_s));
        let expired = match &spec.renew_time {
            Some(renewed) => renewed.0.as_second() + valid_for < now.as_second(),
            None => true,
        };
        if !holder.is_empty() && !expired {
            return Ok(Attempt::Follower);
        }
        mine(MicroTime(now), transitions + 1)
    };
    let mut updated = existing;
    updated.spec = Some(new_spec);
    match api
        .replace(&config.name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(Attempt::Leader),
        Err(e) if is_conflict(&e) => Ok(Attempt::Follower),
        Err(e) => Err(e),
    }
}

/// Waits until this candidate leads.
pub async fn acquire(client: &Client, config: &LeaseConfig, clock: &dyn Clock) {
    loop {
        match try_acquire(client, config, clock).await {
            Ok(Attempt::Leader) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "acquired leadership");
                return;
            }
            Ok(Attempt::Follower) => tracing::debug!("another operator instance leads; waiting"),
            Err(error) => tracing::warn!(%error, "lease acquisition failed; retrying"),
        }
        tokio::time::sleep(config.retry_interval).await;
    }
}

/// Renews the lease until renewal fails for longer than the lease duration (or another
/// holder took it), then returns: the caller must stop reconciling.
pub async fn hold(client: &Client, config: &LeaseConfig, clock: &dyn Clock) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(config.renew_interval).await;
        match try_acquire(client, config, clock).await {
            Ok(Attempt::Leader) => last_renewal = tokio::time::Instant::now(),
            Ok(Attempt::Follower) => {
                tracing::error!("leadership lost to another instance");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "lease renewal failed");
                if last_renewal.elapsed() >= config.lease_duration {
                    tracing::error!("could not renew the lease in time; giving up leadership");
                    return;
                }
            }
        }
    }
}

/// Gives the lease up on graceful shutdown so a successor need not wait for expiry.
pub async fn release(client: &Client, config: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    if let Ok(mut lease) = api.get(&config.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(config.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(error) = api
            .replace(&config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, "could not release the lease");
        }
    }
}
