//! Carries out the steps [`crate::scaling`] decides: the stake locks, join and leave
//! requests of this network's validators, sent to a member's Alpha.
//!
//! At most one transaction per validator and per sponsor account in one reconcile
//! (a sponsor's next nonce is read from the chain, so two sends at once would collide).
//! Every failure becomes the validator's `state` in the status (and a Warning event
//! when it changes), never a failed reconcile: the next reconcile tries again.

use std::collections::BTreeSet;

use dualchain_core::crypto::{AccountKeypair, ValidatorKeypair};
use dualchain_core::types::{Address, set_change_keypair};
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::Api;

use crate::build::network::NetworkRef;
use crate::context::Context;
use crate::crd::network::{DualChainNetwork, GenesisSettings, SetChangeProgress};
use crate::keys;
use crate::names;
use crate::scaling::{self, Change, Needed, ScalePlan, Step};
use crate::validators::{SetChangeRequest, SetView, Target};

/// Fee of a join (paid by its sponsor); a leave is sent fee-free from the validator's
/// own unfunded set-change account, as `dualchain validator leave` does.
const JOIN_FEE: u64 = dualchain_client::crosschain::OPERATION_FEE;

/// The state of a join whose sponsor account another join uses in this reconcile.
const SPONSOR_BUSY: &str =
    "waiting: its sponsor account sends another join's transaction in this reconcile";

/// How long a stake lock holds: a bonded lock cannot be released before its validator
/// left the set anyway.
const STAKE_LOCK_MS: u64 = 365 * 24 * 3600 * 1000;

/// Why this network cannot stake a newcomer (growing is then refused), from its
/// genesis settings (fixed at creation).
pub fn stake_blocker(genesis: &GenesisSettings) -> Option<String> {
    if genesis.accounts == 0 {
        Some("growing the set needs a funded account to stake each newcomer, and genesis.accounts is 0 (fixed at creation); validators 0..the genesis size can still be kept or removed".into())
    } else if genesis.sax < genesis.stake {
        Some(format!(
            "each newcomer's stake is genesis.stake = {} sAX, more than a genesis account holds (genesis.sax = {}, fixed at creation)",
            genesis.stake, genesis.sax
        ))
    } else {
        None
    }
}

/// Takes the next step of every validator in `plan.needed`, against `target` (a
/// member's Alpha) when the set is known; returns where each stands (one entry per
/// validator whose membership must change). `blocker` is why newcomers cannot be
/// staked ([`stake_blocker`]). While the set is unknown nothing is sent and the
/// previous records are kept (a lock made earlier is not made again).
#[allow(clippy::too_many_arguments)]
pub async fn advance(
    ctx: &Context,
    net: &DualChainNetwork,
    r: &NetworkRef,
    object: &ObjectReference,
    secrets: &Api<Secret>,
    plan: &ScalePlan,
    set: Option<(&SetView, Target)>,
    previous: &[SetChangeProgress],
    blocker: Option<&str>,
) -> Vec<SetChangeProgress> {
    announce_done(
        ctx,
        object,
        plan,
        r,
        previous,
        set.as_ref().map(|(s, _)| s.epoch),
    )
    .await;
    let Some((set, target)) = set else {
        return previous.to_vec();
    };
    let step = StepContext {
        ctx,
        r,
        secrets,
        genesis: &net.spec.template.genesis,
        target: &target,
        epoch: set.epoch,
    };
    let mut sponsors_busy = BTreeSet::new();
    let mut progress = Vec::with_capacity(plan.needed.len());
    for needed in &plan.needed {
        let pod = names::validator_pod(&r.name, needed.index);
        let before = previous
            .iter()
            .find(|p| p.validator == pod && p.change == needed.change.as_str());
        let mut record = before.cloned().unwrap_or_else(|| SetChangeProgress {
            validator: pod.clone(),
            change: needed.change.as_str().into(),
            ..Default::default()
        });
        let result = step
            .take(needed, &mut record, blocker, &mut sponsors_busy)
            .await;
        match result {
            Ok(Some(done)) => {
                ctx.event(
                    object,
                    false,
                    "SetChangeRequested",
                    "Scale",
                    format!("{pod}: {done}"),
                )
                .await;
                record.state = done;
            }
            Ok(None) => {}
            Err(error) => {
                if before.map(|b| &b.state) != Some(&error) {
                    ctx.event(
                        object,
                        true,
                        "SetChangeFailed",
                        "Scale",
                        format!("{pod}: {error}"),
                    )
                    .await;
                }
                record.state = error;
            }
        }
        progress.push(record);
    }
    progress
}

/// Events for the validators whose change the boundary applied since the last reconcile.
async fn announce_done(
    ctx: &Context,
    object: &ObjectReference,
    plan: &ScalePlan,
    r: &NetworkRef,
    previous: &[SetChangeProgress],
    epoch: Option<u64>,
) {
    let (Some(epoch), true) = (epoch, plan.set_known) else {
        return;
    };
    for p in previous {
        let still = plan.needed.iter().any(|n| {
            names::validator_pod(&r.name, n.index) == p.validator && n.change.as_str() == p.change
        });
        if !still {
            let verb = if p.change == "Join" { "joined" } else { "left" };
            ctx.event(
                object,
                false,
                if p.change == "Join" {
                    "ValidatorJoined"
                } else {
                    "ValidatorLeft"
                },
                "Scale",
                format!(
                    "{} {verb} the validator set (Alpha epoch {epoch})",
                    p.validator
                ),
            )
            .await;
        }
    }
}

/// What one validator's step needs.
struct StepContext<'a> {
    ctx: &'a Context,
    r: &'a NetworkRef,
    secrets: &'a Api<Secret>,
    genesis: &'a GenesisSettings,
    target: &'a Target,
    epoch: u64,
}

impl StepContext<'_> {
    /// Takes `needed`'s next step, updating `record`; `Ok(Some(what))` when something
    /// was sent, `Ok(None)` when waiting (`record.state` says why), `Err` with the
    /// reason when a step failed.
    async fn take(
        &self,
        needed: &Needed,
        record: &mut SetChangeProgress,
        blocker: Option<&str>,
        sponsors_busy: &mut BTreeSet<u32>,
    ) -> Result<Option<String>, String> {
        let lock = record.lock.as_deref().and_then(|h| h.parse().ok());
        let lock_committed = match (needed.change, lock, needed.pending) {
            (Change::Join, Some(lock), false) => Some(
                self.ctx
                    .validators
                    .lock_committed(self.target.clone(), lock)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        let step = scaling::next_step(needed, Some(&*record), self.epoch, lock_committed);
        match step {
            Step::Wait(why) => {
                record.state = why;
                Ok(None)
            }
            Step::Lock | Step::Join { .. } if blocker.is_some() => {
                Err(blocker.unwrap_or_default().to_string())
            }
            Step::Lock => {
                let Some((account, sponsor)) = self.sponsor(needed.index, sponsors_busy).await?
                else {
                    record.state = SPONSOR_BUSY.into();
                    return Ok(None);
                };
                let unlock_at_ms = (self.ctx.clock.now().as_millisecond().max(0) as u64)
                    .saturating_add(STAKE_LOCK_MS);
                let lock = self
                    .ctx
                    .validators
                    .lock_stake(
                        self.target.clone(),
                        sponsor,
                        self.genesis.stake,
                        unlock_at_ms,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                record.lock = Some(lock.to_hex());
                record.lock_sent_in_epoch = Some(self.epoch);
                record.signed_for_epoch = None;
                Ok(Some(format!(
                    "stake lock {} of {} sAX sent from genesis account {account} in epoch {}",
                    scaling::short(&lock.to_hex()),
                    self.genesis.stake,
                    self.epoch
                )))
            }
            Step::Join { lock } => {
                let Some((_, sponsor)) = self.sponsor(needed.index, sponsors_busy).await? else {
                    record.state = SPONSOR_BUSY.into();
                    return Ok(None);
                };
                let request = SetChangeRequest {
                    key: self.validator_key(needed.index).await?,
                    sender: sponsor,
                    lock: Some(lock),
                    fee: JOIN_FEE,
                    epoch: self.epoch,
                };
                self.send(record, request, "join").await
            }
            Step::Leave => {
                let key = self.validator_key(needed.index).await?;
                let request = SetChangeRequest {
                    sender: set_change_keypair(&key),
                    key,
                    lock: None,
                    fee: 0,
                    epoch: self.epoch,
                };
                self.send(record, request, "leave").await
            }
        }
    }

    async fn send(
        &self,
        record: &mut SetChangeProgress,
        request: SetChangeRequest,
        what: &str,
    ) -> Result<Option<String>, String> {
        let transaction = self
            .ctx
            .validators
            .request_set_change(self.target.clone(), request)
            .await
            .map_err(|e| e.to_string())?;
        record.signed_for_epoch = Some(self.epoch);
        Ok(Some(format!(
            "{what} request signed for epoch {} sent (transaction {})",
            self.epoch,
            scaling::short(&transaction.to_hex())
        )))
    }

    /// The validator's key pair, from its key Secret.
    async fn validator_key(&self, index: u32) -> Result<ValidatorKeypair, String> {
        let name = names::validator_secret(&self.r.name, index);
        let secret = self
            .secrets
            .get(&name)
            .await
            .map_err(|e| format!("reading Secret {name}: {e}"))?;
        keys::validator_keypair(&name, &secret.data.unwrap_or_default()).map_err(|e| e.to_string())
    }

    /// The sponsor account of `index`'s join (its keyring position and key); `None`
    /// when another step already uses that account in this reconcile.
    async fn sponsor(
        &self,
        index: u32,
        busy: &mut BTreeSet<u32>,
    ) -> Result<Option<(u32, AccountKeypair)>, String> {
        let account = scaling::sponsor_account(index, self.genesis.accounts)
            .ok_or("the network has no genesis account to stake a newcomer")?;
        if !busy.insert(account) {
            return Ok(None);
        }
        let name = names::accounts_secret(&self.r.name);
        let secret = self
            .secrets
            .get(&name)
            .await
            .map_err(|e| format!("reading Secret {name}: {e}"))?;
        let key = keys::keyring_account(&name, &keys::keyring_of(&secret), account as usize)
            .map_err(|e| e.to_string())?;
        tracing::debug!(account, address = %Address::of(key.public()), "sponsor of a join");
        Ok(Some((account, key)))
    }
}
