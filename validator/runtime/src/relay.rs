//! The attestation relay: carries the records one chain finalizes for the other.
//!
//! Each block a chain commits stores inclusion proofs of the records the other chain
//! acts on (Alpha's locks, Delta's unlocking stakes and passed proposals; see
//! [`dualchain_core::types::is_attestable`]). Once this validator holds the block's
//! certificate, the records become [`Attestation`]s; the relay submits each to the other
//! chain as a `CrossChainOp::Attest` transaction from the validator's relay account,
//! whose key is derived from the validator key ([`relay_keypair`]).
//!
//! Every validator relays, but not every validator at once: the *designated* relayer
//! of an attestation (its id modulo the committee size) submits it as soon as it knows
//! it, the next validator in index order when the target chain has committed
//! blocks for [`BACKUP_AFTER_MS`] without consuming it, the one after that after twice
//! as many, and so on. A silent or Byzantine relayer therefore delays an
//! attestation by a few target blocks, never loses it; a duplicate that still gets
//! through is refused by the target as `Replayed` and changes nothing. Anyone else may
//! relay the same bytes through the public API. The exception is the next epoch's
//! validator set: Delta's consensus cannot switch sets before it executes that
//! attestation, so every validator relays it at once (one duplicate per validator
//! and epoch, refused as `Replayed`, against a backup delay in every transition whose
//! designated relayer is down or Byzantine). While one chain of this validator passed
//! an epoch boundary the other has not reached ([`crate::epoch_transition`]) the
//! validator set is all that goes out: the other records wait, so none is judged
//! against a set one chain has left and the other has not reached; the target blocks
//! of a pause do not count towards their backup delays.
//!
//! [`RelayPlanner`] is the sans-I/O core (what to submit, with which nonce, given what
//! the target chain shows); [`run_relay`] is its loop over a [`RelaySource`] and a
//! [`RelayTarget`] — in-process chains here ([`InProcessSource`], [`InProcessTarget`]),
//! the same traits over gRPC for two containers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dualchain_api::{Admission, AdmissionStatus, ChainApi};
use dualchain_core::crypto::{AccountKeypair, AccountScheme, NetworkId, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, Attestation, AttestationId, ChainId, CrossChainOp, RecordKey, RecordKind, Transaction,
    TxPayload, decode_u64_record,
};
use dualchain_execution::keys::{AccountRecord, account_key};
use futures::future::BoxFuture;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

use crate::context::ChainContext;
use crate::seams::Seams;

/// Whether `attestation` carries a validator set (what a chain's epoch switch waits
/// for).
fn is_set_record(attestation: &Attestation) -> bool {
    RecordKey::from_state_key(&attestation.key).is_some_and(|k| k.kind == RecordKind::ValidatorSet)
}

/// Derive-key context of a validator's relay account key.
pub const RELAY_ACCOUNT_CONTEXT: &str = "dualchain 2026-12 attestation relay account v1";
/// Target time (in its blocks, at least one) each backup relayer waits after the one
/// before it.
pub const BACKUP_AFTER_MS: u64 = 9_000;
/// Target time (in its blocks, at least two) after which a submitted, still
/// unexecuted relay transaction counts as lost (dropped with an orphaned vertex or a
/// restart) and its nonce is reused. Not shorter than the mempool's refusal of a
/// proposed transaction (30 s), or the same bytes would be refused again.
pub const RESUBMIT_AFTER_MS: u64 = 30_000;
/// Relay transactions of one relayer in the target's mempool at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// Attestations a relayer tracks; beyond it the oldest are forgotten (a client or
/// another validator can still relay them).
pub const MAX_PENDING: usize = 4_096;
/// Uncertified source heights with records a relay waits for at most; beyond it the
/// oldest is given up (other validators, or any client, relay its records).
pub const MAX_WAITING_HEIGHTS: usize = 1_024;
/// Source heights read per pass, so one pass stays short after a long outage.
pub const MAX_HEIGHTS_PER_PASS: u64 = 256;

/// The relay account of a validator: an ML-DSA-44 account key derived from its
/// validator key, so it exists wherever the validator key exists and nowhere else.
pub fn relay_keypair(validator: &ValidatorKeypair) -> AccountKeypair {
    validator.derive::<AccountScheme>(RELAY_ACCOUNT_CONTEXT)
}

/// Where a relay reads attestations: the other chain of this validator, in this
/// process ([`InProcessSource`]) or in the pod's other container over gRPC (the node's
/// sibling source). Answers are futures so a remote source reads without blocking.
pub trait RelaySource: Send + Sync {
    /// Newest committed height (0 when unknown or not running).
    fn head_height(&self) -> BoxFuture<'_, anyhow::Result<u64>>;
    /// Attestations of the attestable records changed at `height`; `None` while this
    /// node holds no certificate for it.
    fn attestations_at(
        &self,
        height: u64,
    ) -> BoxFuture<'_, anyhow::Result<Option<Vec<Attestation>>>>;
}

/// Who relays: this validator's index in the target chain's current set (`None`:
/// not a member, e.g. it left) and the set's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relayers {
    pub me: Option<u64>,
    pub committee: u64,
}

/// What the target chain shows a relayer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetView {
    /// The target's committed height.
    pub height: u64,
    /// The relayers of the target's current epoch (`None`: unchanged).
    pub relayers: Option<Relayers>,
    /// The relay account's next nonce there.
    pub nonce: u64,
    /// The newest source height the target accepted an attestation of.
    pub newest_source_height: u64,
    /// Which of the asked ids the target consumed.
    pub consumed: BTreeSet<AttestationId>,
    /// One chain of this validator passed an epoch boundary the other has not
    /// reached: only validator sets go out (what the other needs to reach it); the
    /// rest waits, and its backup delays stand still meanwhile.
    pub paused: bool,
}

/// Where a relay delivers: the other chain.
pub trait RelayTarget: Send + Sync {
    fn chain(&self) -> ChainId;
    /// The target's block time (the relay's delays are counted in its blocks).
    fn block_time_ms(&self) -> u64;
    /// The target's view for `relayer` and the ids of interest; `None` while the
    /// target is not running.
    fn view(&self, relayer: &Address, ids: &[AttestationId]) -> anyhow::Result<Option<TargetView>>;
    /// Submits canonical transactions (one admission each, in order).
    fn submit(&self, transactions: &[Bytes]) -> Vec<Admission>;
}

/// One attestation the relayer knows of.
#[derive(Clone, Debug)]
struct Pending {
    attestation: Attestation,
    id: AttestationId,
    /// 0 for the designated relayer, 1 for the first backup, and so on.
    rank: u64,
    /// Target height at the first plan after the relay learned of it (for the
    /// backup delay).
    seen_at_target: Option<u64>,
    /// `(nonce, target height)` of the transaction carrying it, while in flight.
    submitted: Option<(u64, u64)>,
    /// Not planned before this target height: the target refused it at admission, and
    /// the attestations behind it go first (one that can never be admitted must not
    /// hold up the relayer's lane; it is forgotten once consumed or stale).
    retry_at: u64,
}

/// A transaction the planner wants submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub nonce: u64,
    pub id: AttestationId,
    pub transaction: Transaction,
}

/// The relay's decisions, without I/O: fed with source attestations and target views,
/// it says what to submit under which nonce.
pub struct RelayPlanner {
    target: ChainId,
    relayers: Relayers,
    relayer: Address,
    freshness_blocks: u64,
    /// [`BACKUP_AFTER_MS`] and [`RESUBMIT_AFTER_MS`] in target blocks.
    backup_blocks: u64,
    resubmit_blocks: u64,
    /// Next source height to read.
    cursor: u64,
    /// Heights read before this node held their certificate.
    waiting: BTreeSet<u64>,
    /// By (source height, position): relay order is source order.
    pending: BTreeMap<(u64, u32), Pending>,
    /// Consumed or superseded ids recently dropped, so a re-read height does not
    /// bring them back.
    done: BTreeSet<AttestationId>,
    /// The target height of the last plan (how far a pause moved the target).
    planned_at: u64,
}

impl RelayPlanner {
    /// A planner for validator `me` of `committee` (`None`: not a member, it relays
    /// after every member), relaying to `target` (whose
    /// blocks come every `target_block_ms`) from the account `relayer`, starting at
    /// source height `from`.
    pub fn new(
        (target, target_block_ms): (ChainId, u64),
        me: Option<u64>,
        committee: u64,
        relayer: Address,
        freshness_blocks: u64,
        from: u64,
    ) -> Self {
        assert!(
            committee > 0 && me.is_none_or(|me| me < committee),
            "relayer outside the committee"
        );
        let block_ms = target_block_ms.max(1);
        Self {
            backup_blocks: BACKUP_AFTER_MS.div_ceil(block_ms).max(1),
            resubmit_blocks: RESUBMIT_AFTER_MS.div_ceil(block_ms).max(2),
            target,
            relayers: Relayers { me, committee },
            relayer,
            freshness_blocks,
            cursor: from.max(1),
            waiting: BTreeSet::new(),
            pending: BTreeMap::new(),
            done: BTreeSet::new(),
            planned_at: 0,
        }
    }

    /// The next source height to read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Attestations tracked and not yet consumed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Ids the planner needs the target's consumption status of.
    pub fn ids(&self) -> Vec<AttestationId> {
        self.pending.values().map(|p| p.id).collect()
    }

    /// Reads source heights from the cursor: each certified height's attestations are
    /// tracked; a height with records but no certificate on this node yet (its votes
    /// are late: a crashed or partitioned validator votes when it catches up) waits
    /// and is read again on every pass until it is certified or stale.
    pub async fn read_source(&mut self, source: &dyn RelaySource) -> anyhow::Result<()> {
        let head = source.head_height().await?;
        for height in self.heights_to_read(head) {
            let attestations = source.attestations_at(height).await?;
            self.read(height, attestations);
        }
        Ok(())
    }

    /// The source heights to read now, given the source's `head`: those still waiting
    /// for a certificate, then up to [`MAX_HEIGHTS_PER_PASS`] new ones from the cursor
    /// (which moves past them: each waits until [`RelayPlanner::read`] gets it, so a
    /// failed read is retried on the next pass).
    pub fn heights_to_read(&mut self, head: u64) -> Vec<u64> {
        let oldest = head.saturating_sub(self.freshness_blocks).max(1);
        // Older heights are stale on the target whatever it has seen: skip them (after
        // a start or a long outage).
        self.cursor = self.cursor.max(oldest);
        self.waiting.retain(|height| *height >= oldest);
        while self.waiting.len() > MAX_WAITING_HEIGHTS {
            if let Some(height) = self.waiting.pop_first() {
                tracing::warn!(target_chain = %self.target, height, "too many uncertified heights; no longer waiting for this one (other validators relay its records)");
            }
        }
        let last = head.min(self.cursor.saturating_add(MAX_HEIGHTS_PER_PASS - 1));
        while self.cursor <= last {
            self.waiting.insert(self.cursor);
            self.cursor += 1;
        }
        self.waiting.iter().copied().collect()
    }

    /// What the source answered for `height`: its attestations once certified
    /// (tracked from now on), `None` while it waits for its certificate.
    pub fn read(&mut self, height: u64, attestations: Option<Vec<Attestation>>) {
        if let Some(attestations) = attestations
            && self.waiting.remove(&height)
        {
            self.add(height, attestations);
        }
    }

    /// This relayer's turn for `attestation`: 0 for its designated relayer (its id
    /// modulo the committee), 1 for the next member in index order, and so on; a
    /// non-member comes after every member; everyone relays a validator set at once.
    fn rank_of(&self, attestation: &Attestation) -> u64 {
        if is_set_record(attestation) {
            return 0;
        }
        let Relayers { me, committee } = self.relayers;
        let id = attestation.id();
        let designated = u64::from_le_bytes(id.0.0[..8].try_into().expect("8 bytes")) % committee;
        me.map_or(committee, |me| (me + committee - designated) % committee)
    }

    /// The target's set changed (an epoch left a member out, or this validator): the
    /// turns of everything pending follow the new set.
    fn set_relayers(&mut self, relayers: Relayers) {
        if relayers == self.relayers || relayers.committee == 0 {
            return;
        }
        self.relayers = relayers;
        let ranks: Vec<u64> = self
            .pending
            .values()
            .map(|p| self.rank_of(&p.attestation))
            .collect();
        for (pending, rank) in self.pending.values_mut().zip(ranks) {
            pending.rank = rank;
        }
    }

    /// Source heights with records waiting for this node's certificate.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Tracks the attestations of source `height`.
    pub fn add(&mut self, height: u64, attestations: Vec<Attestation>) {
        for (position, attestation) in attestations.into_iter().enumerate() {
            let id = attestation.id();
            if self.done.contains(&id) {
                continue;
            }
            let rank = self.rank_of(&attestation);
            self.pending.insert(
                (height, position as u32),
                Pending {
                    attestation,
                    id,
                    rank,
                    seen_at_target: None,
                    submitted: None,
                    retry_at: 0,
                },
            );
        }
        while self.pending.len() > MAX_PENDING {
            if let Some((_, dropped)) = self.pending.pop_first() {
                tracing::warn!(target_chain = %self.target, id = %dropped.id.0, "relay backlog full; forgetting the oldest attestation");
            }
        }
    }

    /// Given the target's view, the transactions to submit now (nonces ascending).
    pub fn plan(&mut self, view: &TargetView) -> Vec<Submission> {
        if let Some(relayers) = view.relayers {
            self.set_relayers(relayers);
        }
        self.forget_finished(view);
        self.release_lost(view);
        let mut in_flight: Vec<u64> = self
            .pending
            .values()
            .filter_map(|p| p.submitted.map(|(nonce, _)| nonce))
            .collect();
        in_flight.sort_unstable();
        let mut next = in_flight
            .last()
            .map_or(view.nonce, |n| n + 1)
            .max(view.nonce);
        let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
        let paused_for = if view.paused {
            view.height.saturating_sub(self.planned_at)
        } else {
            0
        };
        self.planned_at = view.height;
        let mut out = Vec::new();
        for pending in self.pending.values_mut() {
            if view.paused && !is_set_record(&pending.attestation) {
                // Its backup delay stands still while paused (the target blocks of a
                // pause do not count), so neither does every relayer's turn come at
                // once after it, nor does a later backup's never come when pauses
                // are frequent (one-block epochs).
                if let Some(seen) = pending.seen_at_target.as_mut() {
                    *seen += paused_for;
                }
                continue;
            }
            if out.len() >= room {
                continue;
            }
            let seen = *pending.seen_at_target.get_or_insert(view.height);
            let due = view.height >= seen + pending.rank * self.backup_blocks;
            if pending.submitted.is_some() || !due || view.height < pending.retry_at {
                continue;
            }
            pending.submitted = Some((next, view.height));
            out.push(Submission {
                nonce: next,
                id: pending.id,
                transaction: Transaction {
                    chain: self.target,
                    sender: self.relayer,
                    nonce: next,
                    fee: 0,
                    payload: TxPayload::CrossChain(CrossChainOp::Attest(Box::new(
                        pending.attestation.clone(),
                    ))),
                },
            });
            next += 1;
        }
        out
    }

    /// The target refused the submission with `nonce`: it and every later one are
    /// free again (the nonces after it were not admitted either, see [`run_relay`]);
    /// the refused one waits a backup delay, so the others go out first.
    pub fn refused(&mut self, nonce: u64) {
        let delay = self.backup_blocks.max(1);
        for pending in self.pending.values_mut() {
            match pending.submitted {
                Some((n, at)) if n == nonce => pending.retry_at = at + delay,
                Some((n, _)) if n > nonce => {}
                _ => continue,
            }
            pending.submitted = None;
        }
    }

    /// Drops what the target consumed or can no longer accept (stale).
    fn forget_finished(&mut self, view: &TargetView) {
        let freshness = self.freshness_blocks;
        let done = &mut self.done;
        self.pending.retain(|(height, _), pending| {
            let stale = height.saturating_add(freshness) < view.newest_source_height;
            let finished = view.consumed.contains(&pending.id) || stale;
            if finished {
                done.insert(pending.id);
            }
            !finished
        });
        while self.done.len() > MAX_PENDING {
            self.done.pop_first();
        }
    }

    /// A transaction whose nonce the target's account passed without consuming its
    /// attestation executed and failed (or another transaction took the nonce): free
    /// it. An in-flight transaction still unexecuted after [`RESUBMIT_AFTER_MS`]
    /// means the lane is stuck (it, or one before it, was lost): free every in-flight
    /// one, so they go out again from the account's nonce.
    fn release_lost(&mut self, view: &TargetView) {
        let stuck = self.pending.values().any(|p| {
            p.submitted.is_some_and(|(nonce, at)| {
                nonce >= view.nonce && view.height >= at + self.resubmit_blocks
            })
        });
        for pending in self.pending.values_mut() {
            if pending
                .submitted
                .is_some_and(|(nonce, _)| nonce < view.nonce || stuck)
            {
                pending.submitted = None;
            }
        }
    }
}

/// A chain of this process as a relay source.
pub struct InProcessSource<S: Seams> {
    pub ctx: Arc<ChainContext<S>>,
}

impl<S: Seams> RelaySource for InProcessSource<S> {
    fn head_height(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
        let height = self.ctx.head().height;
        Box::pin(async move { Ok(height) })
    }

    fn attestations_at(
        &self,
        height: u64,
    ) -> BoxFuture<'_, anyhow::Result<Option<Vec<Attestation>>>> {
        // A local store read: answered at once.
        let answer = match self.ctx.live().reader.clone() {
            Some(reader) => reader.attestations_at(height).map_err(Into::into),
            None => Ok(None),
        };
        Box::pin(async move { answer })
    }
}

/// A chain of this process as a relay target (state read from its store, submissions
/// through its API like any client's).
pub struct InProcessTarget<S: Seams> {
    pub ctx: Arc<ChainContext<S>>,
    pub api: Arc<dyn ChainApi>,
}

impl<S: Seams> RelayTarget for InProcessTarget<S> {
    fn chain(&self) -> ChainId {
        self.ctx.chain
    }

    fn block_time_ms(&self) -> u64 {
        self.ctx.block_time_ms
    }

    fn view(&self, relayer: &Address, ids: &[AttestationId]) -> anyhow::Result<Option<TargetView>> {
        let Some(reader) = self.ctx.live().reader.clone() else {
            return Ok(None);
        };
        // The height first: state read afterwards is at least that new.
        let height = reader.head().map_or(0, |h| h.height);
        let nonce = match reader.get_state(&account_key(relayer))? {
            Some(bytes) => AccountRecord::decode_value(&bytes)?.nonce,
            None => 0,
        };
        let newest =
            match reader.get_state(&RecordKey::singleton(RecordKind::SourceHeight).state_key())? {
                Some(bytes) => decode_u64_record(&bytes)?,
                None => 0,
            };
        let mut consumed = BTreeSet::new();
        for id in ids {
            let key = RecordKey::new(RecordKind::Consumed, id.0.0).state_key();
            if reader.get_state(&key)?.is_some() {
                consumed.insert(*id);
            }
        }
        let set = self.ctx.committee();
        let relayers = Relayers {
            me: set.index_of(self.ctx.key().public()).map(u64::from),
            committee: set.len() as u64,
        };
        Ok(Some(TargetView {
            height,
            relayers: Some(relayers),
            nonce,
            newest_source_height: newest,
            consumed,
            paused: self.ctx.cross_chain_paused.load(Ordering::Acquire),
        }))
    }

    fn submit(&self, transactions: &[Bytes]) -> Vec<Admission> {
        self.api.submit(transactions)
    }
}

/// How often a relay looks at its source and target.
pub const RELAY_INTERVAL: Duration = Duration::from_millis(500);

/// Starts the two relays (Alpha → Delta, Delta → Alpha) of a validator running both
/// chains in this process; `apis[i]` is the API of `contexts[i]`. Returns no task
/// when a chain is missing.
pub fn spawn_in_process<S: Seams>(
    contexts: &[Arc<ChainContext<S>>],
    apis: &[Arc<dyn ChainApi>],
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    assert_eq!(contexts.len(), apis.len(), "one API per chain");
    let find = |chain: ChainId| contexts.iter().position(|c| c.chain == chain);
    let (Some(alpha), Some(delta)) = (find(ChainId::Alpha), find(ChainId::Delta)) else {
        return Vec::new();
    };
    [(alpha, delta), (delta, alpha)]
        .into_iter()
        .map(|(from, to)| {
            let source = Arc::new(InProcessSource {
                ctx: contexts[from].clone(),
            });
            spawn_into(source, &contexts[to], &apis[to], shutdown)
        })
        .collect()
}

/// Starts a relay from `source` (the other chain, wherever it runs) into `target`, a
/// chain of this process whose API is `api`: how a validator running one chain per
/// process (one per container) gets the other container's records.
pub fn spawn_into<S: Seams>(
    source: Arc<dyn RelaySource>,
    target: &Arc<ChainContext<S>>,
    api: &Arc<dyn ChainApi>,
    shutdown: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let key = Arc::new(relay_keypair(target.key()));
    let network = target.identity.network();
    let current = target.committee();
    let committee = current.len() as u64;
    let me = current.index_of(target.key().public()).map(u64::from);
    let freshness = target.genesis().cross_chain.freshness_blocks;
    let target = Arc::new(InProcessTarget {
        ctx: target.clone(),
        api: api.clone(),
    });
    tokio::spawn(run_relay(
        source,
        target,
        key,
        network,
        me,
        committee,
        freshness,
        RELAY_INTERVAL,
        shutdown.clone(),
    ))
}

/// Relays from `source` to `target` every `interval` until shutdown. `me` (`None`:
/// not a member) and `committee` pick the designated relayer until the first pass
/// reads the target's current set.
#[allow(clippy::too_many_arguments)]
pub async fn run_relay(
    source: Arc<dyn RelaySource>,
    target: Arc<dyn RelayTarget>,
    key: Arc<AccountKeypair>,
    network: NetworkId,
    me: Option<u64>,
    committee: u64,
    freshness_blocks: u64,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let relayer = Address::of(key.public());
    let target_chain = (target.chain(), target.block_time_ms());
    let mut planner = RelayPlanner::new(target_chain, me, committee, relayer, freshness_blocks, 1);
    // A source that is down (the sibling process restarting) fails every pass: say so
    // when the reason changes, not twice a second.
    let mut last_error: Option<String> = None;
    loop {
        match relay_pass(
            &mut planner,
            source.as_ref(),
            target.as_ref(),
            &key,
            network,
        )
        .await
        {
            Ok(()) => {
                if last_error.take().is_some() {
                    tracing::info!(target_chain = %target.chain(), "relay passes succeed again");
                }
            }
            Err(e) => {
                let error = format!("{e:#}");
                if last_error.as_ref() != Some(&error) {
                    tracing::warn!(target_chain = %target.chain(), %error, "relay pass failed; retrying every pass");
                }
                last_error = Some(error);
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One pass: read the source, look at the target, submit what is due (signed by
/// `key` for `network`).
pub async fn relay_pass(
    planner: &mut RelayPlanner,
    source: &dyn RelaySource,
    target: &dyn RelayTarget,
    key: &AccountKeypair,
    network: NetworkId,
) -> anyhow::Result<()> {
    planner.read_source(source).await?;
    if planner.pending() == 0 {
        return Ok(());
    }
    let relayer = Address::of(key.public());
    let Some(view) = target.view(&relayer, &planner.ids())? else {
        return Ok(());
    };
    for submission in planner.plan(&view) {
        let bytes = Bytes::from(
            submission
                .transaction
                .sign(key, network)
                .to_canonical_bytes(),
        );
        let admission = target.submit(&[bytes]).pop();
        let admitted = admission.as_ref().is_some_and(|a| {
            matches!(
                a.status,
                AdmissionStatus::Accepted | AdmissionStatus::Duplicate
            )
        });
        if !admitted {
            tracing::debug!(target_chain = %target.chain(), nonce = submission.nonce, reason = ?admission.map(|a| a.reason), "relay transaction not admitted; retrying later");
            planner.refused(submission.nonce);
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use dualchain_core::Digest;
    use dualchain_core::types::{BlockCertificate, BlockHeader, RecordProof};

    use super::*;

    const ME: u64 = 1;
    const COMMITTEE: u64 = 4;
    const FRESHNESS: u64 = 100;
    /// A 3 s target: backups after 3 blocks, resubmission after 10.
    const BLOCK_MS: u64 = 3_000;
    const BACKUP_AFTER_BLOCKS: u64 = 3;
    const RESUBMIT_AFTER_BLOCKS: u64 = 10;

    /// An attestation of Alpha height `height` whose id is unique per `n` (verification
    /// is the target's business; the relay only carries bytes).
    fn attestation(height: u64, n: u32) -> Attestation {
        let header = BlockHeader {
            chain: ChainId::Alpha,
            height,
            epoch: 0,
            slot: height,
            parent: Digest::ZERO,
            timestamp_ms: 0,
            vertices_root: Digest::ZERO,
            transactions_root: Digest::ZERO,
            receipts_root: Digest::ZERO,
            state_root: Digest::ZERO,
            tx_count: 0,
        };
        let certificate = BlockCertificate::from_votes(&header, []);
        let key = RecordKey::new(RecordKind::Lock, [n as u8; 32])
            .state_key()
            .to_vec();
        RecordProof {
            key,
            value: n.to_le_bytes().to_vec(),
            proof: dualchain_merkle::SparseMerkleTree::new().prove(&[0; 32]),
        }
        .attest(header, certificate)
    }

    fn planner() -> RelayPlanner {
        planner_from(1)
    }

    fn planner_from(height: u64) -> RelayPlanner {
        RelayPlanner::new(
            (ChainId::Delta, BLOCK_MS),
            Some(ME),
            COMMITTEE,
            Address([9; 32]),
            FRESHNESS,
            height,
        )
    }

    /// `count` attestations at `height` for which `ME` is backup number `rank` (0: the
    /// designated relayer).
    fn ranked(height: u64, rank: u64, count: usize) -> Vec<Attestation> {
        (0..u32::MAX)
            .map(|n| attestation(height, n))
            .filter(|a| {
                let designated =
                    u64::from_le_bytes(a.id().0.0[..8].try_into().unwrap()) % COMMITTEE;
                (ME + COMMITTEE - designated) % COMMITTEE == rank
            })
            .take(count)
            .collect()
    }

    fn designated(height: u64, count: usize) -> Vec<Attestation> {
        ranked(height, 0, count)
    }

    fn view(height: u64, nonce: u64) -> TargetView {
        TargetView {
            height,
            nonce,
            ..TargetView::default()
        }
    }

    #[test]
    fn the_designated_relayer_goes_first_then_one_backup_after_another() {
        let mut planner = planner();
        let mine = designated(5, 2);
        let first_backup = ranked(5, 1, 1);
        let second_backup = ranked(5, 2, 1);
        planner.add(
            5,
            [&mine[..], &first_backup[..], &second_backup[..]].concat(),
        );
        let first = planner.plan(&view(10, 7));
        let ids: Vec<_> = first.iter().map(|s| s.id).collect();
        assert_eq!(ids, mine.iter().map(Attestation::id).collect::<Vec<_>>());
        assert_eq!(first.iter().map(|s| s.nonce).collect::<Vec<_>>(), [7, 8]);
        assert!(first.iter().all(|s| s.transaction.nonce == s.nonce
            && s.transaction.fee == 0
            && s.transaction.chain == ChainId::Delta));
        // The designated two executed; the backups follow at their turns.
        let after = |height: u64| {
            let mut v = view(height, 9);
            v.consumed.extend(mine.iter().map(Attestation::id));
            v
        };
        assert!(
            planner
                .plan(&after(10 + BACKUP_AFTER_BLOCKS - 1))
                .is_empty()
        );
        let backup = planner.plan(&after(10 + BACKUP_AFTER_BLOCKS));
        assert_eq!(backup.len(), 1);
        assert_eq!(backup[0].id, first_backup[0].id());
        assert_eq!(backup[0].nonce, 9);
        assert!(
            planner
                .plan(&after(10 + 2 * BACKUP_AFTER_BLOCKS - 1))
                .is_empty()
        );
        let second = planner.plan(&after(10 + 2 * BACKUP_AFTER_BLOCKS));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].id, second_backup[0].id());
        assert_eq!(
            second[0].nonce, 10,
            "after the first backup, still in flight"
        );
    }

    #[test]
    fn turns_follow_the_target_set_and_a_non_member_comes_last() {
        let mut planner = planner();
        let second = ranked(5, 2, 1);
        planner.add(5, second.clone());
        assert!(planner.plan(&view(10, 0)).is_empty(), "a backup's turn");
        // The set changed so that this validator designates it now (the same id
        // modulo a committee of one).
        let mut shrunk = view(10, 0);
        shrunk.relayers = Some(Relayers {
            me: Some(0),
            committee: 1,
        });
        assert_eq!(planner.plan(&shrunk).len(), 1);
        // Out of the set: after every member's turn.
        let mut planner = planner_from(1);
        planner.add(5, designated(5, 1));
        let mut out = view(10, 0);
        out.relayers = Some(Relayers {
            me: None,
            committee: COMMITTEE,
        });
        assert!(planner.plan(&out).is_empty());
        let mut later = view(10 + COMMITTEE * BACKUP_AFTER_BLOCKS, 0);
        later.relayers = out.relayers;
        assert_eq!(planner.plan(&later).len(), 1);
    }

    #[test]
    fn every_validator_relays_the_next_set_at_once() {
        // Backups only, for ordinary records: nothing goes out at first.
        let mut planner = planner();
        let backup_only = ranked(5, 2, 1);
        let mut set = backup_only[0].clone();
        set.key = dualchain_core::types::validator_set_key(1)
            .state_key()
            .to_vec();
        planner.add(5, backup_only);
        assert!(planner.plan(&view(10, 0)).is_empty());
        planner.add(6, vec![set.clone()]);
        let out = planner.plan(&view(10, 0));
        assert_eq!(out.len(), 1, "the set goes out without a backup delay");
        assert_eq!(out[0].id, set.id());
    }

    #[test]
    fn a_transition_holds_all_but_validator_sets_and_stops_the_backup_clock() {
        let mut planner = planner();
        let mine = designated(5, 1).remove(0);
        let backup = ranked(5, 1, 1).remove(0);
        let mut set = backup.clone();
        set.key = dualchain_core::types::validator_set_key(1)
            .state_key()
            .to_vec();
        planner.add(5, vec![mine.clone(), backup.clone()]);
        planner.add(6, vec![set.clone()]);
        let during = |height, nonce, consumed: &[&Attestation]| TargetView {
            paused: true,
            consumed: consumed.iter().map(|a| a.id()).collect(),
            ..view(height, nonce)
        };
        let ids = |out: Vec<Submission>| out.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(planner.plan(&during(10, 0, &[]))), [set.id()]);
        assert!(
            planner.plan(&during(20, 1, &[&set])).is_empty(),
            "long past every backup delay, nothing else goes out during the transition"
        );
        let after = |height, nonce, consumed: &[&Attestation]| TargetView {
            paused: false,
            ..during(height, nonce, consumed)
        };
        assert_eq!(ids(planner.plan(&after(21, 1, &[]))), [mine.id()]);
        assert!(planner.plan(&after(23, 1, &[])).is_empty());
        // Seven target blocks of another pause do not count towards the backup's
        // delay (three blocks from 21): it is due at 31, not 24.
        assert!(planner.plan(&during(30, 1, &[])).is_empty());
        assert!(planner.plan(&after(30, 2, &[&mine])).is_empty());
        let out = ids(planner.plan(&after(31, 2, &[&mine])));
        assert_eq!(out, [backup.id()]);
    }

    #[test]
    fn consumed_and_stale_attestations_are_dropped_and_not_read_again() {
        let mut planner = planner();
        let old = designated(3, 1);
        let fresh = designated(200, 1);
        planner.add(3, old.clone());
        planner.add(200, fresh.clone());
        let mut v = view(10, 0);
        v.newest_source_height = 3 + FRESHNESS + 1;
        let out = planner.plan(&v);
        assert_eq!(out.len(), 1, "the stale one is never sent");
        assert_eq!(out[0].id, fresh[0].id());
        let mut v = view(11, 1);
        v.consumed.insert(fresh[0].id());
        assert!(planner.plan(&v).is_empty());
        assert_eq!(planner.pending(), 0);
        planner.add(200, fresh);
        assert_eq!(planner.pending(), 0, "a consumed id does not come back");
    }

    #[test]
    fn a_refused_submission_frees_its_nonce_and_every_later_one() {
        let mut planner = planner();
        planner.add(5, designated(5, 3));
        let first = planner.plan(&view(1, 0));
        assert_eq!(first.len(), 3);
        planner.refused(1);
        // The refused attestation waits; the one behind it takes its nonce.
        let again = planner.plan(&view(1, 0));
        assert_eq!(again.iter().map(|s| s.nonce).collect::<Vec<_>>(), [1]);
        assert_eq!(again[0].id, first[2].id);
        assert!(planner.plan(&view(BACKUP_AFTER_BLOCKS, 0)).is_empty());
        let retried = planner.plan(&view(1 + BACKUP_AFTER_BLOCKS, 0));
        assert_eq!(retried.len(), 1);
        assert_eq!((retried[0].nonce, retried[0].id), (2, first[1].id));
    }

    #[test]
    fn a_lost_transaction_is_sent_again_after_the_resubmit_delay() {
        let mut planner = planner();
        planner.add(5, designated(5, 2));
        assert_eq!(planner.plan(&view(1, 0)).len(), 2);
        // Nonce 0 executed without consuming its attestation (it failed): the
        // attestation goes out again after the one still in flight.
        let out = planner.plan(&view(2, 1));
        assert_eq!(out.iter().map(|s| s.nonce).collect::<Vec<_>>(), [2]);
        assert!(planner.plan(&view(RESUBMIT_AFTER_BLOCKS, 1)).is_empty());
        // Nonce 1 never executed: the lane is stuck, everything goes out again from
        // the account's nonce.
        let resent = planner.plan(&view(1 + RESUBMIT_AFTER_BLOCKS, 1));
        assert_eq!(resent.iter().map(|s| s.nonce).collect::<Vec<_>>(), [1, 2]);
    }

    struct Source {
        head: u64,
        certified: Mutex<BTreeMap<u64, Vec<Attestation>>>,
    }

    impl RelaySource for Source {
        fn head_height(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
            Box::pin(async move { Ok(self.head) })
        }

        fn attestations_at(
            &self,
            height: u64,
        ) -> BoxFuture<'_, anyhow::Result<Option<Vec<Attestation>>>> {
            Box::pin(async move { Ok(self.certified.lock().unwrap().get(&height).cloned()) })
        }
    }

    fn read(planner: &mut RelayPlanner, source: &Source) {
        futures::executor::block_on(planner.read_source(source)).unwrap();
    }

    #[test]
    fn a_height_whose_read_failed_is_read_again_on_the_next_pass() {
        let mut planner = planner();
        let mut certified = BTreeMap::new();
        certified.insert(1, designated(1, 1));
        certified.insert(2, designated(2, 1));
        // The source (the sibling process, say) fails after answering height 1.
        assert_eq!(planner.heights_to_read(2), [1, 2]);
        planner.read(1, certified.get(&1).cloned());
        assert_eq!((planner.pending(), planner.waiting()), (1, 1));
        assert_eq!(planner.cursor(), 3, "the cursor moved past both");
        // Next pass: height 2 comes again, and nothing new.
        assert_eq!(planner.heights_to_read(2), [2]);
        planner.read(2, certified.get(&2).cloned());
        assert_eq!((planner.pending(), planner.waiting()), (2, 0));
    }

    #[test]
    fn uncertified_heights_wait_and_are_read_once_certified_until_stale() {
        let mut planner = planner();
        let mut certified = BTreeMap::new();
        certified.insert(1, designated(1, 1));
        certified.insert(3, designated(3, 1));
        let late = designated(2, 1);
        let source = Source {
            head: 3,
            certified: Mutex::new(certified),
        };
        read(&mut planner, &source);
        assert_eq!(planner.cursor(), 4, "height 2 does not hold up height 3");
        assert_eq!((planner.pending(), planner.waiting()), (2, 1));
        read(&mut planner, &source);
        assert_eq!((planner.pending(), planner.waiting()), (2, 1));
        source.certified.lock().unwrap().insert(2, late.clone());
        read(&mut planner, &source);
        assert_eq!((planner.pending(), planner.waiting()), (3, 0));
        let sent = planner.plan(&view(1, 0));
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[1].id, late[0].id(), "relayed in source height order");

        // A height that never gets a certificate is given up once stale.
        let mut planner = planner_from(1);
        let source = Source {
            head: 5,
            certified: Mutex::new(BTreeMap::new()),
        };
        read(&mut planner, &source);
        assert_eq!(planner.waiting(), 5);
        let source = Source {
            head: 3 + FRESHNESS,
            ..source
        };
        read(&mut planner, &source);
        assert_eq!(planner.cursor(), 4 + FRESHNESS);
        assert_eq!(
            planner.waiting(),
            FRESHNESS as usize + 1,
            "heights 1 and 2 are stale"
        );
    }
}
