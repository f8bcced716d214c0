//! The cross-chain governance flow every whole-node run drives beside the load:
//! three stakers lock sAX on Alpha; the validators' relays attest the locks to
//! Delta (stake); one staker proposes a parameter change, all three vote (two for,
//! one against), the proposal is finalized after its deadline and passes; the result
//! is attested to Alpha and executed there; after the time lock the stakers unlock
//! on Delta, Alpha releases the locks when that is attested, and the release is
//! attested back. Each step waits for the previous one's effect in the observer's
//! state, and a step whose transaction got lost is sent again, to another validator.
//! A flow that does not reach [`Stage::Done`] by the end of the drain is a liveness
//! failure.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use dualchain_api::{AdmissionStatus, ChainApi};
use dualchain_core::Digest;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, ChainId, CrossChainOp, GovernanceExecution, LockRecord, LockStatus, ParameterChange,
    ParameterName, ParameterRecord, ProposalRecord, ProposalStatus, RecordKey, RecordKind,
    StakeRecord, StakeStatus, Transaction, TxPayload,
};
use dualchain_execution::crosschain::vote_id;
use dualchain_storage::{Column, KvEngine};

use crate::config::SIM_EPOCH_MS;
use crate::seams::SimStore;

/// Stakers of the flow (accounts of their own, funded on both chains).
pub const STAKERS: usize = 3;
/// sAX each staker locks: far above the load's locks, so the flow's votes make quorum.
pub const STAKE: u64 = 100_000_000_000;
/// Simulated time after which the flow's locks expire.
const UNLOCK_AFTER_MS: u64 = 45_000;
const VOTING_PERIOD_MS: u64 = 20_000;
/// A step's transaction not taking effect after this long is sent again.
const RETRY_MS: [u64; 2] = [40_000, 12_000];
/// The parameter the flow's proposal sets.
pub const PARAMETER: &str = "sim.flow";

/// The address of flow staker `i`.
pub fn staker_address(i: usize) -> Address {
    Address(blake3::derive_key(
        "dualchain 2026-12 simulated staker v1",
        &(i as u64).to_le_bytes(),
    ))
}

/// How far the flow got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Lock,
    Stake,
    Propose,
    Vote,
    Finalize,
    Execute,
    Unlock,
    Release,
    Done,
}

/// The observer's view the flow reads.
pub struct FlowView<'a> {
    pub alpha: &'a SimStore,
    pub delta: &'a SimStore,
    /// Newest block timestamps (ms since the Unix epoch).
    pub delta_time_ms: u64,
    /// Live APIs per chain (Alpha, Delta).
    pub targets: [&'a [Arc<dyn ChainApi>]; 2],
}

/// The flow's state.
pub struct GovernanceFlow {
    stage: Stage,
    value: u64,
    locks: [Option<Digest>; STAKERS],
    proposal: Option<Digest>,
    /// Last send per (stage, staker): when, and how many times.
    sent: BTreeMap<(Stage, usize), (u64, usize)>,
    /// When each stage was reached (simulated ms).
    pub reached: Vec<(Stage, u64)>,
    /// Refusals a valid flow transaction should never get.
    pub unexpected: Vec<String>,
}

impl GovernanceFlow {
    /// A flow whose proposal sets [`PARAMETER`] to `value`.
    pub fn new(value: u64) -> Self {
        Self {
            stage: Stage::Lock,
            value,
            locks: [None; STAKERS],
            proposal: None,
            sent: BTreeMap::new(),
            reached: vec![(Stage::Lock, 0)],
            unexpected: Vec::new(),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// The change the flow's proposal makes.
    pub fn change(&self) -> ParameterChange {
        ParameterChange {
            name: ParameterName::new(PARAMETER).expect("a valid name"),
            value: self.value,
        }
    }

    /// Advances as far as the view allows and sends what the current stage needs.
    pub fn step(&mut self, now_ms: u64, view: &FlowView<'_>) {
        loop {
            let next = match self.stage {
                Stage::Lock => self.lock(now_ms, view),
                Stage::Stake => self.stake(view),
                Stage::Propose => self.propose(now_ms, view),
                Stage::Vote => self.vote(now_ms, view),
                Stage::Finalize => self.finalize(now_ms, view),
                Stage::Execute => self.executed(view),
                Stage::Unlock => self.unlock(now_ms, view),
                Stage::Release => self.released(view),
                Stage::Done => None,
            };
            match next {
                Some(stage) => {
                    self.stage = stage;
                    self.reached.push((stage, now_ms));
                }
                None => return,
            }
        }
    }

    fn lock(&mut self, now_ms: u64, view: &FlowView<'_>) -> Option<Stage> {
        let mut all = true;
        for staker in 0..STAKERS {
            let lock = self.locks[staker];
            if lock
                .is_some_and(|id| decode::<LockRecord>(view.alpha, RecordKind::Lock, id).is_some())
            {
                continue;
            }
            all = false;
            let op = CrossChainOp::SaxLock {
                amount: STAKE,
                unlock_at_ms: SIM_EPOCH_MS + UNLOCK_AFTER_MS,
            };
            if let Some(digest) = self.send(now_ms, view, ChainId::Alpha, Stage::Lock, staker, op) {
                self.locks[staker] = Some(digest);
            }
        }
        all.then_some(Stage::Stake)
    }

    fn stake(&self, view: &FlowView<'_>) -> Option<Stage> {
        self.stakes(view)
            .iter()
            .all(|s| s.is_some_and(|s| s.status == StakeStatus::Active))
            .then_some(Stage::Propose)
    }

    fn propose(&mut self, now_ms: u64, view: &FlowView<'_>) -> Option<Stage> {
        if let Some(id) = self.proposal
            && decode::<ProposalRecord>(view.delta, RecordKind::Proposal, id).is_some()
        {
            return Some(Stage::Vote);
        }
        let op = CrossChainOp::Propose {
            change: self.change().into(),
            voting_period_ms: VOTING_PERIOD_MS,
        };
        if let Some(digest) = self.send(now_ms, view, ChainId::Delta, Stage::Propose, 0, op) {
            self.proposal = Some(digest);
        }
        None
    }

    fn vote(&mut self, now_ms: u64, view: &FlowView<'_>) -> Option<Stage> {
        let proposal = self.proposal.expect("voting follows the proposal");
        let record = decode::<ProposalRecord>(view.delta, RecordKind::Proposal, proposal)?;
        if view.delta_time_ms > record.voting_deadline_ms {
            // Whatever was cast decides (a vote that missed the deadline failed
            // with `VotingClosed`).
            return Some(Stage::Finalize);
        }
        let mut all = true;
        for staker in 0..STAKERS {
            let ballot = vote_id(&proposal, &staker_address(staker));
            let key = RecordKey::new(RecordKind::Vote, ballot).state_key();
            if view.delta.get(Column::State, &key).ok().flatten().is_some() {
                continue;
            }
            all = false;
            let op = CrossChainOp::Vote {
                proposal,
                approve: staker != STAKERS - 1,
            };
            self.send(now_ms, view, ChainId::Delta, Stage::Vote, staker, op);
        }
        all.then_some(Stage::Finalize)
    }

    fn finalize(&mut self, now_ms: u64, view: &FlowView<'_>) -> Option<Stage> {
        let proposal = self.proposal.expect("finalizing follows the proposal");
        let record = decode::<ProposalRecord>(view.delta, RecordKind::Proposal, proposal)?;
        match record.status {
            ProposalStatus::Passed => return Some(Stage::Execute),
            ProposalStatus::Open => {}
            other => {
                self.unexpected.push(format!(
                    "the flow's proposal did not pass: {other:?} ({record:?})"
                ));
                return Some(Stage::Done);
            }
        }
        if view.delta_time_ms > record.voting_deadline_ms {
            let op = CrossChainOp::FinalizeProposal { proposal };
            self.send(now_ms, view, ChainId::Delta, Stage::Finalize, 0, op);
        }
        None
    }

    fn executed(&self, view: &FlowView<'_>) -> Option<Stage> {
        let proposal = self.proposal.expect("execution follows the proposal");
        decode::<GovernanceExecution>(view.alpha, RecordKind::Governance, proposal)?;
        let parameter = decode::<ParameterRecord>(
            view.alpha,
            RecordKind::Parameter,
            Digest(self.change().name.record_id()),
        )?;
        (parameter.proposal == proposal && parameter.value == self.value).then_some(Stage::Unlock)
    }

    fn unlock(&mut self, now_ms: u64, view: &FlowView<'_>) -> Option<Stage> {
        if view.delta_time_ms < SIM_EPOCH_MS + UNLOCK_AFTER_MS {
            return None;
        }
        let stakes = self.stakes(view);
        let mut all = true;
        for (staker, stake) in stakes.iter().enumerate() {
            if stake.is_some_and(|s| s.status != StakeStatus::Active) {
                continue;
            }
            all = false;
            let lock = self.locks[staker].expect("locked before");
            let op = CrossChainOp::SaxUnlock { lock };
            self.send(now_ms, view, ChainId::Delta, Stage::Unlock, staker, op);
        }
        all.then_some(Stage::Release)
    }

    fn released(&self, view: &FlowView<'_>) -> Option<Stage> {
        let stakes = self.stakes(view);
        let all = (0..STAKERS).all(|staker| {
            let id = self.locks[staker].expect("locked before");
            let lock = decode::<LockRecord>(view.alpha, RecordKind::Lock, id);
            matches!(
                (lock.map(|l| l.status), stakes[staker].map(|s| s.status)),
                (Some(LockStatus::Released { at_ms }), Some(StakeStatus::Released { at_ms: back }))
                    if at_ms == back
            )
        });
        all.then_some(Stage::Done)
    }

    fn stakes(&self, view: &FlowView<'_>) -> [Option<StakeRecord>; STAKERS] {
        self.locks.map(|lock| {
            lock.and_then(|id| decode::<StakeRecord>(view.delta, RecordKind::Stake, id))
        })
    }

    /// Sends `op` from `staker` on `chain` unless a send of this step is recent;
    /// returns the transaction's digest when it sent. Each attempt goes to the next
    /// validator, with the account's nonce as the observer sees it.
    fn send(
        &mut self,
        now_ms: u64,
        view: &FlowView<'_>,
        chain: ChainId,
        stage: Stage,
        staker: usize,
        op: CrossChainOp,
    ) -> Option<Digest> {
        let retry = RETRY_MS[usize::from(chain == ChainId::Delta)];
        let (last, attempts) = self.sent.get(&(stage, staker)).copied().unwrap_or((0, 0));
        if attempts > 0 && now_ms < last + retry {
            return None;
        }
        let targets = view.targets[usize::from(chain == ChainId::Delta)];
        if targets.is_empty() {
            return None;
        }
        let store = match chain {
            ChainId::Alpha => view.alpha,
            ChainId::Delta => view.delta,
        };
        let sender = staker_address(staker);
        let nonce = store.next_nonce(&sender);
        let tx = Transaction {
            chain,
            sender,
            nonce,
            fee: 1,
            payload: TxPayload::CrossChain(op),
        }
        .unsigned();
        let digest = tx.digest();
        let target = &targets[(staker + attempts) % targets.len()];
        let admission = target.submit(&[Bytes::from(tx.to_canonical_bytes())]);
        match admission.first().map(|a| a.status) {
            Some(AdmissionStatus::Accepted | AdmissionStatus::Duplicate) => {}
            // Transient, or the nonce read from the store was already spent by the
            // stage's previous attempt: the next attempt reads it again.
            Some(
                AdmissionStatus::MempoolFull
                | AdmissionStatus::RateLimited
                | AdmissionStatus::Overloaded
                | AdmissionStatus::NonceTooOld,
            )
            | None => {}
            Some(other) => self.unexpected.push(format!(
                "flow {stage:?} transaction of staker {staker} refused: {other:?}"
            )),
        }
        self.sent.insert((stage, staker), (now_ms, attempts + 1));
        Some(digest)
    }
}

/// The record `kind`/`id` in `store`, decoded (None when absent or undecodable).
fn decode<T: Canonical>(store: &SimStore, kind: RecordKind, id: Digest) -> Option<T> {
    let key = RecordKey::new(kind, id.0).state_key();
    let bytes = store.get(Column::State, &key).ok().flatten()?;
    T::from_canonical_bytes(&bytes).ok()
}
