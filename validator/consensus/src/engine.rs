//! The DAG-BFT engine: vertex intake, round advancement, the commit rule and sync.
//!
//! Rules of the engine (what the simulator checks it against):
//! - **Intake.** A vertex is accepted only if it is of our chain, not below the GC
//!   round, not absurdly far ahead, verifies (epoch, author, parent quorum,
//!   ML-DSA-87 signature) and its parents are held with the right round and author.
//!   A vertex with unknown parents waits in a bounded buffer while they are fetched
//!   from the sender, then from other peers in turn.
//! - **Rounds.** We propose round `h + 1` once the DAG holds a quorum of round-`h`
//!   vertices, the round delay has passed since our previous proposal (minimum delay
//!   of the chain plus back-pressure from the uncommitted depth), and the leader of
//!   round `h` is in the DAG or its timeout expired. The new vertex references one
//!   vertex per author of round `h` (the first one we received).
//! - **Persistence before broadcast.** Our vertex (and our last proposed round) is
//!   written to the store before the broadcast output leaves `handle`, so a restarted
//!   node never equivocates.
//! - **Equivocation.** A second vertex of one author and round is kept (honest vertices
//!   may reference it, and the commit rule is safe with it) but yields
//!   [`Evidence::Equivocation`]; from then on the author's vertices are ignored unless
//!   we need them as parents of vertices we hold, and we do not wait for its leader
//!   slots. (The vertices of its we do hold still count toward a round's quorum and
//!   serve as parents: excluding them could deadlock a round in which one honest node
//!   took no part, as the simulator found.)
//! - **Wrong votes** (Avalanche). A signed response voting to commit a vertex we hold
//!   for a slot it does not occupy yields [`Evidence::WrongVote`] (the response and
//!   the vertex), treated like equivocation: the voter leaves every honest sample and
//!   its vertices are taken only as needed parents. Evidence is persisted and passed
//!   on once, so peers that never sampled the voter exclude it too — each after
//!   checking the proof itself.
//! - **Commit.** See [`crate::commit`]; decided slots are output in order, with the
//!   committed vertices, and rounds below `next slot - retention` are dropped from
//!   memory and store.
//! - **Sync window.** Rounds evicted from memory stay in the store for
//!   `store_retention_rounds`; sync requests name (round, digest), so we answer them
//!   from the store too, and a peer that fell that far behind still catches up.
//!   Beyond it a node needs block sync (not part of consensus).
//! - **Retransmission.** If we cannot advance for `resend_timeout_ms` we re-broadcast
//!   our latest vertex: with message loss, nodes stuck just below quorum learn the
//!   vertices they missed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::types::{
    ChainId, SignedTransaction, UnsignedVertex, ValidatorIndex, ValidatorSet, Vertex, VertexError,
    VertexRef, vertex_limits,
};

use crate::avalanche::peers::Offence;
use crate::avalanche::{AvalancheMessage, Poller, Preference, ResponseRefused, VoteCheck};
use crate::commit::{Committer, Decided, SlotDecision};
use crate::config::{DagBftConfig, Ordering};
use crate::consensus::{
    Commit, CommittedSubDag, Consensus, Input, Now, Output, Round, SyncRequest, TimeMs,
};
use crate::dag::{Dag, DagSnapshot, Inserted, ParentError, encoded_len};
use crate::evidence::Evidence;
use crate::leader::LeaderSchedule;
use crate::pending::{OverBudget, Pending, PendingBudget};
use crate::store::{CommitRecord, ConsensusStore, EngineState, StoreChanges, StoreError};
use crate::sync::{SyncLimits, answer_sync, stored_vertex};
use crate::verify::VertexVerifier;

/// Digests in one sync request: 40 bytes each, so that a full request fits the
/// transport's 64 KiB request frame (4,096 did not, and such a request was refused
/// locally, for ever).
pub const MAX_SYNC_DIGESTS: usize = 1_600;
/// Encoded bytes of vertices in one sync response.
pub const MAX_SYNC_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Why a received vertex was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RejectReason {
    #[error("vertex of chain {0}, this engine runs another chain")]
    WrongChain(ChainId),
    #[error("vertex of round {round} is below the garbage-collection round {gc_round}")]
    TooOld { round: Round, gc_round: Round },
    #[error("vertex of round {round} is more than {lookahead} rounds above our round {ours}")]
    TooFarAhead {
        round: Round,
        ours: Round,
        lookahead: Round,
    },
    #[error("invalid vertex: {0}")]
    Invalid(#[from] VertexError),
    #[error("invalid parents: {0}")]
    Parents(#[from] ParentError),
    #[error("not buffered: {0}")]
    OverBudget(#[from] OverBudget),
    #[error("vertex of round {round} dropped: its parents never arrived")]
    ParentsNeverArrived { round: Round },
    #[error("validator {0} equivocated; its vertices are taken only as needed parents")]
    Equivocator(ValidatorIndex),
    #[error("evidence that proves nothing: {0}")]
    BadEvidence(#[from] crate::evidence::EvidenceError),
    #[error("Avalanche response that is a lie or a forgery ({0:?})")]
    BadResponse(crate::avalanche::peers::Offence),
}

/// Why an engine could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("validator {0} is not in the validator set")]
    NotAValidator(ValidatorIndex),
    #[error("the signing key does not belong to validator {0}")]
    KeyMismatch(ValidatorIndex),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("persisted state is inconsistent: {0}")]
    Inconsistent(String),
}

/// Counters of one engine, for telemetry and the simulator's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    pub proposed: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_signatures: u64,
    pub equivocations: u64,
    pub committed_leaders: u64,
    pub committed_vertices: u64,
    pub skipped_slots: u64,
    pub sync_requests_sent: u64,
    pub sync_requests_served: u64,
    pub resends: u64,
    pub max_pending: usize,
    pub max_pending_bytes: usize,
    /// Vertices too far above our quorum round to buffer (fetched with their
    /// ancestors instead).
    pub deferred_ahead: u64,
    /// Buffered vertices dropped because their parents never arrived.
    pub abandoned: u64,
    /// Our own vertices garbage-collected without ever being committed (late, so no
    /// vertex of the next round referenced them); their transactions go back to the
    /// mempool ([`Output::Orphaned`]).
    pub orphaned: u64,
    /// Buffered vertices evicted by a newer vertex of their author (its allowance
    /// was full).
    pub evicted_pending: u64,
}

/// A missing vertex being fetched.
struct Fetch {
    /// The peer that showed us a reference to it (first asked).
    hint: ValidatorIndex,
    attempts: u32,
    next_at: TimeMs,
    /// Round of the missing vertex (known from the child).
    round: Round,
}

/// How a vertex reached the engine.
enum Arrival {
    /// Sent by a peer (gossip, a push): verified on intake (a verdict cache makes a
    /// vertex the caller pre-verified cheap).
    Sent,
    /// In the answer to our sync request, verified with the whole answer.
    Answer(Result<(), VertexError>),
}

/// Rounds whose vertices an ended epoch's tips name (see [`DagBft::tips`]): the
/// commit rule decides a leader from the two rounds after it, so the last four
/// rounds hold the last decided leader, its votes and certificates, and the round
/// the decision was made in.
pub const TIP_ROUNDS: Round = 4;

/// The DAG-BFT consensus engine of one validator on one chain.
pub struct DagBft<S: ConsensusStore, V: VertexVerifier> {
    cfg: DagBftConfig,
    me: ValidatorIndex,
    key: Arc<ValidatorKeypair>,
    validators: Arc<ValidatorSet>,
    leaders: LeaderSchedule,
    dag: Dag,
    committer: Committer,
    /// The Avalanche ordering rule's Snowball state, when the chain runs it
    /// ([`Ordering::Avalanche`]); `None` under DAG-BFT's commit rule.
    poller: Option<Poller>,
    /// The leader vertex Snowball decided for the next slot to output, while we do
    /// not hold it: accepted even from an equivocator, even with a twin waiting.
    required: Option<Digest>,
    pending: Pending,
    fetches: BTreeMap<Digest, Fetch>,
    /// Per author, the vertex too far ahead to buffer that we fetch (with its
    /// ancestors) to catch up: one per author, so no author can crowd out the rest.
    chasing: BTreeMap<ValidatorIndex, Digest>,
    /// When we last sent each peer a sync request.
    last_request_ms: BTreeMap<ValidatorIndex, TimeMs>,
    /// When we last asked a peer already in a later epoch for the tips of ours.
    last_tips_request_ms: Option<TimeMs>,
    /// Once a later epoch's vertex showed us behind: whom we ask next for our tips
    /// (every `sync_retry_ms`, going round the committee, until this engine ends;
    /// gossip delivers each vertex once, and the peers' new epoch may wait for us).
    tips_from: Option<ValidatorIndex>,
    /// Vertices dropped from memory but still in the store, by round (pruned at
    /// `store_retention_rounds`).
    evicted: BTreeMap<Round, Vec<Digest>>,
    store: S,
    verifier: V,
    started: bool,
    halted: bool,
    last_proposed: Option<Arc<Vertex>>,
    last_proposed_round: Option<Round>,
    last_proposal_ms: TimeMs,
    last_resend_ms: TimeMs,
    /// When we first held a quorum of each recent round (leader timeouts count from it).
    quorum_since: BTreeMap<Round, TimeMs>,
    queue: VecDeque<SignedTransaction>,
    equivocators: BTreeSet<ValidatorIndex>,
    /// Validators whose evidence we hold (persisted, passed on once): at most one
    /// piece per validator, so the store and the gossip stay bounded.
    evidenced: BTreeSet<ValidatorIndex>,
    timer_at: Option<TimeMs>,
    proposal_wake: Option<TimeMs>,
    dag_changed: bool,
    changes: StoreChanges,
    stats: EngineStats,
    /// Monotonic time of the latest input (inputs must not go back in time).
    last_now: TimeMs,
    /// Unix time of the latest input: our vertices' timestamps.
    unix_now: TimeMs,
    /// The highest sequence the consumer acknowledged as executed.
    executed_through: Option<u64>,
    /// Commits not yet acknowledged: sequence → lowest vertex round they name. Their
    /// vertices are not pruned from the store below that round.
    unacked: BTreeMap<u64, Round>,
    /// Commits to hand out again at the next [`Input::Start`] (after a restart).
    replay: Vec<CommitRecord>,
}

impl<S: ConsensusStore, V: VertexVerifier> DagBft<S, V> {
    /// Opens the engine of validator `me`, restoring its persisted state from `store`
    /// if it ran before. Feed it [`Input::Start`] to begin.
    pub fn open(
        cfg: DagBftConfig,
        me: ValidatorIndex,
        key: Arc<ValidatorKeypair>,
        validators: Arc<ValidatorSet>,
        store: S,
        verifier: V,
    ) -> Result<Self, EngineError> {
        let info = validators.get(me).ok_or(EngineError::NotAValidator(me))?;
        if &info.public_key != key.public() {
            return Err(EngineError::KeyMismatch(me));
        }
        let persisted = store.load()?;
        let state = persisted.as_ref().map(|p| p.state).unwrap_or_default();
        let poller = match &cfg.ordering {
            Ordering::DagBft => None,
            Ordering::Avalanche(a) => Some(Poller::new(
                a.clone(),
                me,
                validators.epoch(),
                cfg.epoch_seed,
                cfg.network,
                key.clone(),
                validators.clone(),
            )),
        };
        let mut engine = Self {
            poller,
            required: None,
            leaders: LeaderSchedule::new(cfg.epoch_seed, &validators),
            dag: Dag::new(validators.clone()),
            committer: Committer::new(cfg.retention_rounds, cfg.genesis_time_ms, state.committer),
            cfg,
            me,
            key,
            validators,
            pending: Pending::default(),
            fetches: BTreeMap::new(),
            chasing: BTreeMap::new(),
            last_request_ms: BTreeMap::new(),
            last_tips_request_ms: None,
            tips_from: None,
            evicted: BTreeMap::new(),
            store,
            verifier,
            started: false,
            halted: false,
            last_proposed: None,
            last_proposed_round: state.last_proposed_round,
            last_proposal_ms: 0,
            last_resend_ms: 0,
            quorum_since: BTreeMap::new(),
            queue: VecDeque::new(),
            equivocators: BTreeSet::new(),
            evidenced: BTreeSet::new(),
            timer_at: None,
            proposal_wake: None,
            dag_changed: false,
            changes: StoreChanges::default(),
            stats: EngineStats::default(),
            last_now: 0,
            unix_now: 0,
            executed_through: state.executed_through,
            unacked: BTreeMap::new(),
            replay: Vec::new(),
        };
        if let Some(p) = persisted {
            engine.restore(p)?;
        }
        Ok(engine)
    }

    fn restore(&mut self, p: crate::store::Persisted) -> Result<(), EngineError> {
        self.dag.set_gc_round(p.state.gc_round);
        let next_sequence = p.state.committer.next_sequence;
        let mut expected = p.state.executed_through.map_or(0, |t| t + 1);
        for record in &p.commits {
            if record.sequence != expected || record.sequence >= next_sequence {
                return Err(EngineError::Inconsistent(format!(
                    "commit record {} found where {expected} was expected (next sequence {next_sequence})",
                    record.sequence
                )));
            }
            expected += 1;
            self.unacked.insert(record.sequence, record.lowest_round());
        }
        if expected != next_sequence {
            return Err(EngineError::Inconsistent(format!(
                "commits {expected}..{next_sequence} were decided but neither executed nor kept"
            )));
        }
        self.replay = p.commits;
        for evidence in p.evidence {
            let offender = evidence.offender();
            self.equivocators.insert(offender);
            self.evidenced.insert(offender);
            let epoch = self.epoch();
            if let Some(poller) = self.poller.as_mut().filter(|_| evidence.epoch() == epoch) {
                // Proven Byzantine this epoch: out of the samples again after a restart.
                poller.exclude(offender, 0);
            }
        }
        for v in p.vertices {
            let round = v.content().round;
            if round < p.state.gc_round {
                self.evicted.entry(round).or_default().push(v.digest());
                continue;
            }
            match self.dag.missing_parents(&v) {
                Ok(m) if m.is_empty() => {}
                other => {
                    return Err(EngineError::Inconsistent(format!(
                        "persisted vertex {} of round {} does not attach to the DAG: {other:?}",
                        v.digest(),
                        v.content().round
                    )));
                }
            }
            if let Inserted::Equivocation { .. } = self.dag.insert(v.clone()) {
                self.equivocators.insert(v.content().author);
            }
        }
        for d in p.committed {
            self.dag.mark_committed(&d);
        }
        if let Some(poller) = self.poller.as_mut() {
            poller.restore(&p.decided);
        }
        if let Some(r) = self.last_proposed_round {
            self.last_proposed = self
                .dag
                .slot(r, self.me)
                .first()
                .and_then(|d| self.dag.get(d))
                .cloned();
        }
        let rounds: Vec<Round> = self
            .dag
            .lowest_round()
            .into_iter()
            .flat_map(|lo| lo..=self.dag.highest_round().unwrap_or(lo))
            .collect();
        for r in rounds {
            if self.has_quorum(r) {
                self.quorum_since.insert(r, 0);
            }
        }
        self.dag_changed = true;
        Ok(())
    }

    pub fn me(&self) -> ValidatorIndex {
        self.me
    }

    pub fn config(&self) -> &DagBftConfig {
        &self.cfg
    }

    /// The Avalanche rule's state, when the chain runs it.
    pub fn avalanche(&self) -> Option<&crate::avalanche::Poller> {
        self.poller.as_ref()
    }

    /// A copy of the Avalanche rule's state for an epoch that ended: its decided
    /// slots still answer the queries of peers finishing that epoch.
    pub fn ended_avalanche(&self) -> Option<crate::avalanche::Poller> {
        self.poller.clone()
    }

    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    pub fn snapshot(&self) -> DagSnapshot {
        self.dag.snapshot()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Transactions queued for our next proposals. [`Input::BatchReady`] takes at most
    /// `max_queued_txs - queued_txs()` of a batch, so feed batches only while there is room.
    pub fn queued_txs(&self) -> usize {
        self.queue.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Encoded bytes of the vertices waiting for parents.
    pub fn pending_bytes(&self) -> usize {
        self.pending.bytes()
    }

    /// What one author may hold in the pending buffer: a count, and an equal share
    /// of the byte budget.
    fn pending_budget(&self) -> PendingBudget {
        PendingBudget {
            vertices: self.cfg.max_pending_per_author,
            bytes: self.cfg.max_pending_bytes / self.validators.len().max(1),
        }
    }

    pub fn last_proposed_round(&self) -> Option<Round> {
        self.last_proposed_round
    }

    /// The lowest undecided leader slot.
    pub fn next_slot(&self) -> Round {
        self.committer.state().next_slot
    }

    pub fn equivocators(&self) -> &BTreeSet<ValidatorIndex> {
        &self.equivocators
    }

    pub fn is_halted(&self) -> bool {
        self.halted
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn quorum(&self) -> u64 {
        self.validators.quorum_stake()
    }

    /// Whether the DAG holds vertices of quorum stake in `round`. Equivocators count:
    /// the vertex of theirs we hold is as good a parent as any (the commit rule is safe
    /// with it), and not counting them can deadlock a round in which an honest node
    /// took no part (it may skip rounds when it catches up).
    fn has_quorum(&self, round: Round) -> bool {
        self.dag.round_stake(round, |_| false) >= self.quorum()
    }

    fn engine_state(&self) -> EngineState {
        EngineState {
            committer: self.committer.state(),
            last_proposed_round: self.last_proposed_round,
            gc_round: self.dag.gc_round(),
            executed_through: self.executed_through,
        }
    }

    /// The sequence of the next commit the engine will output.
    pub fn next_sequence(&self) -> u64 {
        self.committer.state().next_sequence
    }

    /// The highest commit sequence acknowledged with [`Input::Executed`].
    pub fn executed_through(&self) -> Option<u64> {
        self.executed_through
    }

    /// Takes every transaction queued for our next proposals (a chain that stops
    /// gives them back to its mempool).
    pub fn take_queued(&mut self) -> Vec<SignedTransaction> {
        self.queue.drain(..).collect()
    }

    /// The epoch this engine runs (its committee's).
    pub fn epoch(&self) -> u64 {
        self.validators.epoch()
    }

    /// Every vertex of the highest [`TIP_ROUNDS`] rounds we hold (at most
    /// [`crate::store::MAX_TIPS`]): what a peer still finishing this epoch asks for
    /// once we left it. Not only the top round's ancestors: the commits that ended
    /// the epoch here were decided on votes and certificates of the last rounds,
    /// which the top vertices need not all reference.
    pub fn tips(&self) -> Vec<(Round, Digest)> {
        let Some(top) = self.dag.highest_round() else {
            return Vec::new();
        };
        (top.saturating_sub(TIP_ROUNDS - 1)..=top)
            .rev()
            .flat_map(|round| {
                self.dag
                    .round(round)
                    .flat_map(move |(_, digests)| digests.iter().map(move |d| (round, *d)))
                    .collect::<Vec<_>>()
            })
            .take(crate::store::MAX_TIPS)
            .collect()
    }

    /// The transactions of our own vertices that no commit took (yet): when the epoch
    /// ends, the DAG they are in is abandoned, and they go back to the mempool.
    pub fn uncommitted_own_transactions(&self) -> Vec<SignedTransaction> {
        let (Some(lo), Some(hi)) = (self.dag.lowest_round(), self.dag.highest_round()) else {
            return Vec::new();
        };
        (lo..=hi)
            .flat_map(|round| self.dag.slot(round, self.me).to_vec())
            .filter(|d| !self.dag.is_committed(d))
            .filter_map(|d| self.dag.get(&d).cloned())
            .flat_map(|v| v.content().transactions.clone())
            .collect()
    }

    /// Rebuilds a kept commit from its record and the stored vertices.
    fn replayed(&self, record: &CommitRecord) -> Result<CommittedSubDag, String> {
        let mut vertices = Vec::with_capacity(record.vertices.len());
        for (round, digest) in &record.vertices {
            let v = match self.dag.get(digest) {
                Some(v) => v.clone(),
                None => self
                    .store
                    .vertex(*round, digest)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "vertex {digest} of round {round} of commit {} is not in the store",
                            record.sequence
                        )
                    })?,
            };
            vertices.push(v);
        }
        Ok(CommittedSubDag {
            sequence: record.sequence,
            leader: record.leader,
            leader_round: record.leader_round,
            timestamp_ms: record.timestamp_ms,
            vertices,
        })
    }

    /// The consumer executed every commit up to `through`: forget their records and
    /// let the store prune their vertices.
    fn on_executed(&mut self, through: u64) {
        assert!(
            through < self.next_sequence(),
            "commit {through} acknowledged as executed but only {} were output",
            self.next_sequence()
        );
        if self.executed_through.is_some_and(|t| through <= t) {
            return;
        }
        self.executed_through = Some(through);
        let keep = self.unacked.split_off(&(through + 1));
        let done = std::mem::replace(&mut self.unacked, keep);
        self.changes.executed.extend(done.into_keys());
        self.prune_store();
        if let Some(poller) = self.poller.as_mut() {
            let gone = poller.forget_below(self.committer.state().next_slot);
            self.changes
                .decided
                .extend(gone.into_iter().map(|r| (r, None)));
        }
        self.changes.state = Some(self.engine_state());
    }

    /// Opens, for Snowball, every slot whose next round holds a quorum here, with
    /// our own view: the slot's leader vertex if we hold one, else skip.
    fn open_slots(&mut self) {
        let (Some(poller), Some(top)) = (self.poller.as_ref(), self.dag.highest_round()) else {
            return;
        };
        let first = self.committer.state().next_slot;
        let limit = first + 4 * poller.config().max_open_slots as Round;
        let opening: Vec<(Round, Preference)> = (first..top.min(limit))
            .take_while(|slot| self.has_quorum(slot + 1))
            .filter(|slot| !poller.is_open(*slot))
            .map(|slot| (slot, self.own_view(slot)))
            .collect();
        let poller = self.poller.as_mut().expect("checked above");
        for (slot, local) in opening {
            poller.open(slot, local);
        }
    }

    /// Our own view of `slot`: the leader's vertex we hold (the earliest, then lowest
    /// digest, if it equivocated), else skip.
    fn own_view(&self, slot: Round) -> Preference {
        self.dag
            .slot(slot, self.leaders.leader(slot))
            .iter()
            .filter_map(|d| self.dag.get(d))
            .min_by_key(|v| (v.content().timestamp_ms, v.digest()))
            .map_or(Preference::Skip, |v| Preference::Commit(v.digest()))
    }

    /// Takes the slots Snowball decided, in order; fetches a decided vertex we lack.
    fn take_sampled_decisions(&mut self) -> Vec<Decided> {
        let poller = self.poller.as_ref().expect("avalanche ordering");
        let (decided, missing) =
            self.committer
                .take_decided(&mut self.dag, &self.leaders, |slot| {
                    match poller.decision(slot) {
                        None | Some(Preference::Unknown) => SlotDecision::Undecided,
                        Some(Preference::Skip) => SlotDecision::Skip,
                        Some(Preference::Commit(d)) => SlotDecision::Commit(d),
                    }
                });
        self.required = missing.map(|(_, digest)| digest);
        if let Some((round, digest)) = missing {
            let hint = self.leaders.leader(round);
            self.fetch(digest, round, hint);
        }
        decided
    }

    /// Starts fetching a vertex no vertex we hold references (one Snowball decided or a
    /// peer voted for), from `hint` first.
    fn fetch(&mut self, digest: Digest, round: Round, hint: ValidatorIndex) {
        if self.dag.contains(&digest) || self.pending.contains(&digest) {
            return;
        }
        self.fetches.entry(digest).or_insert(Fetch {
            hint,
            attempts: 0,
            next_at: self.last_now,
            round,
        });
    }

    /// A peer's query or response (the Avalanche ordering rule).
    fn on_engine_message(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        message: AvalancheMessage,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        let Some(poller) = self.poller.as_mut() else {
            // DAG-BFT has no engine messages: a peer sending one is confused or worse.
            self.stats.rejected += 1;
            return;
        };
        let (dag, leaders) = (&self.dag, &self.leaders);
        let check = |slot: Round, d: &Digest| match dag.get(d) {
            None => VoteCheck::Unknown,
            Some(v) if v.content().round == slot && v.content().author == leaders.leader(slot) => {
                VoteCheck::Valid
            }
            Some(_) => VoteCheck::Invalid,
        };
        match message {
            AvalancheMessage::Query(query) => {
                if let Some(response) = poller.answer(now, from, &query, check) {
                    out.push(Output::SendEngine {
                        to: Some(from),
                        message: AvalancheMessage::Response(response),
                    });
                }
            }
            AvalancheMessage::Response(response) => {
                match poller.on_response(now, from, response, check) {
                    Ok(unknown) => {
                        for (round, digest) in unknown {
                            self.fetch(digest, round, from);
                        }
                    }
                    Err(ResponseRefused::WrongVote { response, digest }) => {
                        // `check` found the vertex in the DAG a moment ago.
                        if let Some(vertex) = self.dag.get(&digest).cloned() {
                            self.record_evidence(Evidence::WrongVote { response, vertex }, out);
                        }
                        let lie = RejectReason::BadResponse(Offence::WrongVote);
                        self.reject(from, lie, out);
                    }
                    Err(ResponseRefused::Misbehaviour(offence)) => {
                        self.reject(from, RejectReason::BadResponse(offence), out);
                    }
                    Err(ResponseRefused::Unexpected | ResponseRefused::Excluded) => {
                        self.stats.rejected += 1
                    }
                }
            }
        }
    }

    /// Decides what the DAG changes allow, and proposes while the round rules let us.
    fn decide_and_propose(&mut self, now: TimeMs, out: &mut Vec<Output<AvalancheMessage>>) {
        loop {
            if self.dag_changed {
                self.dag_changed = false;
                self.decide(out);
            }
            if !self.try_propose(now, out) {
                break;
            }
        }
    }

    /// Runs the poller: finishes and starts polls, marks what they decided for output.
    /// Returns when it needs the engine again.
    fn poll(&mut self, now: TimeMs, out: &mut Vec<Output<AvalancheMessage>>) -> Option<TimeMs> {
        let first = self.committer.state().next_slot;
        let poller = self.poller.as_mut()?;
        let wake = poller.tick(now, first, out);
        let decided = poller.take_new_decisions();
        if !decided.is_empty() {
            // What the poll decided is persisted, then output like a DAG change's
            // decisions.
            self.changes
                .decided
                .extend(decided.into_iter().map(|(r, p)| (r, Some(p))));
            self.dag_changed = true;
        }
        wake
    }

    /// Drops vertices evicted from memory from the store once they are below the
    /// store retention window *and* below every commit still waiting for execution.
    fn prune_store(&mut self) {
        let retention_floor = self.committer.state().next_slot.saturating_sub(
            self.cfg
                .store_retention_rounds
                .max(self.cfg.retention_rounds),
        );
        let floor = self
            .unacked
            .values()
            .copied()
            .min()
            .map_or(retention_floor, |r| r.min(retention_floor));
        if self
            .evicted
            .first_key_value()
            .is_some_and(|(r, _)| *r < floor)
        {
            let keep = self.evicted.split_off(&floor);
            let pruned = std::mem::replace(&mut self.evicted, keep);
            self.changes.removed.extend(
                pruned
                    .into_iter()
                    .flat_map(|(r, ds)| ds.into_iter().map(move |d| (r, d))),
            );
        }
    }

    fn reject(
        &mut self,
        from: ValidatorIndex,
        reason: RejectReason,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        self.stats.rejected += 1;
        if matches!(reason, RejectReason::Invalid(VertexError::Signature(_))) {
            self.stats.rejected_signatures += 1;
            // Honest peers send only vertices they verified: the sender forged this.
            if let Some(poller) = self.poller.as_mut() {
                poller.exclude(from, self.last_now);
            }
        }
        out.push(Output::Rejected { from, reason });
    }

    /// Intake of one vertex from `from`; `arrival` says how it came (a sync answer is
    /// verified as a whole before, and carries each vertex's verdict).
    fn receive(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        vertex: Arc<Vertex>,
        arrival: Arrival,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        let d = vertex.digest();
        if self.dag.contains(&d) || self.pending.contains(&d) {
            return;
        }
        let c = vertex.content();
        if c.chain != self.cfg.chain {
            return self.reject(from, RejectReason::WrongChain(c.chain), out);
        }
        // Before the round checks: rounds of another epoch are not ours to compare.
        if c.epoch != self.epoch() {
            if c.epoch > self.epoch() {
                self.ask_for_tips(now, from, out);
            }
            let wrong = VertexError::WrongEpoch {
                vertex: c.epoch,
                set: self.epoch(),
            };
            return self.reject(from, wrong.into(), out);
        }
        if c.round < self.dag.gc_round() {
            let gc_round = self.dag.gc_round();
            return self.reject(
                from,
                RejectReason::TooOld {
                    round: c.round,
                    gc_round,
                },
                out,
            );
        }
        let ours = self
            .dag
            .highest_round()
            .unwrap_or(0)
            .max(self.last_proposed_round.unwrap_or(0));
        if c.round > ours.saturating_add(self.cfg.max_round_lookahead) {
            let reason = RejectReason::TooFarAhead {
                round: c.round,
                ours,
                lookahead: self.cfg.max_round_lookahead,
            };
            return self.reject(from, reason, out);
        }
        // Behind the epoch, every vertex of an answer counts, an equivocator's too: the
        // peers' last decisions may rest on it, and nothing later will reference it, so
        // it would never be a "needed parent".
        let finishing_epoch = matches!(arrival, Arrival::Answer(_)) && self.tips_from.is_some();
        let verdict = match arrival {
            Arrival::Sent => self
                .verifier
                .verify(&vertex, &self.validators, self.cfg.network),
            Arrival::Answer(verdict) => verdict,
        };
        if let Err(e) = verdict {
            return self.reject(from, e.into(), out);
        }
        // An equivocator's further vertices are ignored unless we need them as parents
        // of vertices we hold (honest nodes may reference them).
        if self.equivocators.contains(&c.author)
            && !finishing_epoch
            && !self.fetches.contains_key(&d)
            && !self.pending.is_wanted(&d)
            && self.required != Some(d)
        {
            return self.reject(from, RejectReason::Equivocator(c.author), out);
        }
        match self.dag.missing_parents(&vertex) {
            Err(e) => self.reject(from, e.into(), out),
            Ok(missing) if missing.is_empty() => self.accept(now, vertex, out),
            Ok(missing) => self.buffer(now, from, vertex, missing, out),
        }
    }

    /// Holds a vertex whose parents are missing while they are fetched, if it is
    /// within a few rounds of our quorum round and its author within its budget.
    fn buffer(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        vertex: Arc<Vertex>,
        missing: Vec<Digest>,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        let c = vertex.content();
        let window_top = self
            .highest_quorum_round()
            .unwrap_or(self.dag.gc_round())
            .saturating_add(self.cfg.max_pending_rounds_ahead);
        if c.round > window_top {
            return self.chase(now, from, &vertex);
        }
        if let Some(first) = self.pending.in_slot(c.author, c.round) {
            if self.required != Some(vertex.digest()) {
                return self.equivocation_in_pending(from, first, vertex, out);
            }
            // The ordering decided this one: its twin waits no longer (it can still
            // enter the DAG later, beside it, once this one is in).
            let dropped = self.pending.drop_waiting(&first.digest());
            self.forget_fetches_for(&dropped);
        }
        let bytes = encoded_len(&vertex);
        match self
            .pending
            .make_room(c.author, bytes, self.pending_budget())
        {
            Ok(evicted) => self.stats.evicted_pending += evicted.len() as u64,
            Err(e) => return self.reject(from, e.into(), out),
        }
        for m in &missing {
            if !self.pending.contains(m) && !self.fetches.contains_key(m) {
                self.fetches.insert(
                    *m,
                    Fetch {
                        hint: from,
                        attempts: 0,
                        next_at: now,
                        round: c.round - 1,
                    },
                );
            }
        }
        let d = vertex.digest();
        self.fetches.remove(&d);
        self.pending.add(vertex, &missing, bytes);
        self.stats.max_pending = self.stats.max_pending.max(self.pending.len());
        self.stats.max_pending_bytes = self.stats.max_pending_bytes.max(self.pending.bytes());
    }

    /// `second` claims the slot of `first`, which waits for its parents: both are
    /// signed (verified before buffering) and differ (intake drops a vertex
    /// already waiting), so this is equivocation even though neither reached the
    /// DAG. The evidence goes out; `first` keeps waiting (an honest vertex may
    /// name it as a parent) and `second` is refused.
    fn equivocation_in_pending(
        &mut self,
        from: ValidatorIndex,
        first: Arc<Vertex>,
        second: Arc<Vertex>,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        debug_assert_ne!(first.digest(), second.digest());
        let author = second.content().author;
        self.stats.equivocations += 1;
        self.record_evidence(Evidence::Equivocation { first, second }, out);
        self.reject(from, RejectReason::Equivocator(author), out);
    }

    /// Keeps the first proof against its offender: persisted with this step and
    /// handed out once ([`Output::Misbehaviour`]), which the runtime passes on to
    /// its peers; later proofs against the same validator add nothing.
    fn record_evidence(&mut self, evidence: Evidence, out: &mut Vec<Output<AvalancheMessage>>) {
        let offender = evidence.offender();
        self.equivocators.insert(offender);
        if let Some(poller) = self.poller.as_mut() {
            poller.exclude(offender, self.last_now);
        }
        if self.evidenced.insert(offender) {
            self.changes.evidence.push(evidence.clone());
            out.push(Output::Misbehaviour(evidence));
        }
    }

    /// Evidence a peer passed on: checked (two signature verifications) unless
    /// we already hold a proof against that validator.
    fn on_evidence(
        &mut self,
        from: ValidatorIndex,
        evidence: Evidence,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        if evidence.chain() != self.cfg.chain {
            return self.reject(from, RejectReason::WrongChain(evidence.chain()), out);
        }
        if self.evidenced.contains(&evidence.offender()) {
            return;
        }
        if matches!(evidence, Evidence::WrongVote { .. }) && evidence.epoch() != self.epoch() {
            // Checked under another epoch's leader schedule, which this engine does not
            // have: an honest relayer near a boundary sends such evidence too.
            return;
        }
        match evidence.verify(&self.validators, self.cfg.network, &self.leaders) {
            Ok(()) => self.record_evidence(evidence, out),
            Err(e) => self.reject(from, e.into(), out),
        }
    }

    /// A vertex too far above our quorum round to buffer: we are behind (or its
    /// author runs ahead). Fetch it from the sender instead; the answer carries its
    /// ancestors above our quorum round, lowest first, so each answer moves us up.
    /// One such fetch per author at a time.
    fn chase(&mut self, now: TimeMs, from: ValidatorIndex, vertex: &Arc<Vertex>) {
        self.stats.deferred_ahead += 1;
        let c = vertex.content();
        if self
            .chasing
            .get(&c.author)
            .is_some_and(|d| self.fetches.contains_key(d))
        {
            return;
        }
        let d = vertex.digest();
        self.fetches.entry(d).or_insert(Fetch {
            hint: from,
            attempts: 0,
            next_at: now,
            round: c.round,
        });
        self.chasing.insert(c.author, d);
    }

    /// `from` sent a vertex of a later epoch: it finished ours and we did not (we
    /// were down or cut off when it ended). The vertices of the last rounds it holds
    /// of our epoch, with their ancestors, let our DAG reach the commits that end
    /// it; we ask at most once per `sync_retry_ms`.
    fn ask_for_tips(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        if from == self.me {
            return;
        }
        if self.tips_from.is_none() {
            self.tips_from = Some(from);
        }
        if self
            .last_tips_request_ms
            .is_some_and(|last| now < last + self.cfg.sync_retry_ms)
        {
            return;
        }
        self.last_tips_request_ms = Some(now);
        self.stats.sync_requests_sent += 1;
        out.push(Output::RequestVertices {
            to: from,
            request: SyncRequest {
                epoch: self.epoch(),
                wanted: Vec::new(),
                have_through_round: self.highest_quorum_round().unwrap_or(0),
            },
        });
    }

    /// Asks the next peer for our epoch's tips when due (see `tips_from`); returns
    /// when the next request is.
    fn retry_tips(
        &mut self,
        now: TimeMs,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) -> Option<TimeMs> {
        let from = self.tips_from?;
        let due = self
            .last_tips_request_ms
            .map_or(now, |last| last + self.cfg.sync_retry_ms);
        if now < due {
            return Some(due);
        }
        let n = self.validators.len() as u64;
        let mut next = ((u64::from(from) + 1) % n) as ValidatorIndex;
        if next == self.me {
            next = ((u64::from(next) + 1) % n) as ValidatorIndex;
        }
        self.tips_from = Some(next);
        self.ask_for_tips(now, from, out);
        Some(now + self.cfg.sync_retry_ms)
    }

    /// Stops fetching the parents of vertices that left the pending buffer unless
    /// another buffered vertex waits for them (or we chase them): otherwise every
    /// orphan of a flood would leave its made-up parents being asked of every peer
    /// until the fetch gives up.
    fn forget_fetches_for(&mut self, dropped: &[Arc<Vertex>]) {
        for v in dropped {
            for p in &v.content().parents {
                let d = &p.digest;
                if self.fetches.contains_key(d)
                    && !self.pending.is_wanted(d)
                    && !self.chasing.values().any(|c| c == d)
                {
                    self.fetches.remove(d);
                }
            }
        }
    }

    /// Vertices dropped from the pending buffer with parents that never came: a
    /// strike for each author (see [`crate::pending`]).
    fn penalise_abandoned(
        &mut self,
        dropped: Vec<Arc<Vertex>>,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        self.forget_fetches_for(&dropped);
        for v in dropped {
            let c = v.content();
            self.stats.abandoned += 1;
            self.pending.strike(c.author);
            let reason = RejectReason::ParentsNeverArrived { round: c.round };
            self.reject(c.author, reason, out);
        }
    }

    /// Inserts a vertex whose parents are held, then every buffered descendant that
    /// becomes complete.
    fn accept(
        &mut self,
        now: TimeMs,
        vertex: Arc<Vertex>,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        let mut work = vec![(vertex, false)];
        while let Some((v, buffered)) = work.pop() {
            let d = v.digest();
            let author = v.content().author;
            // A buffered vertex's parents arrived after it was first checked: re-check.
            if buffered {
                match self.dag.missing_parents(&v) {
                    Ok(m) if m.is_empty() => {}
                    Ok(_) => continue,
                    Err(e) => {
                        self.reject(author, e.into(), out);
                        continue;
                    }
                }
            }
            match self.dag.insert(v.clone()) {
                Inserted::Duplicate => continue,
                Inserted::New => {}
                Inserted::Equivocation { existing } => {
                    self.stats.equivocations += 1;
                    self.equivocators.insert(author);
                    if let Some(first) = self.dag.get(&existing).cloned() {
                        let second = v.clone();
                        self.record_evidence(Evidence::Equivocation { first, second }, out);
                    }
                }
            }
            self.stats.accepted += 1;
            self.pending.forgive(author);
            self.changes.vertices.push(v.clone());
            let round = v.content().round;
            if author == self.me && self.last_proposed_round.is_none_or(|r| round > r) {
                // A vertex of ours we do not remember signing (a wiped or restored
                // store): never sign another one for its round or below.
                self.last_proposed_round = Some(round);
                self.last_proposed = Some(v.clone());
                self.changes.state = Some(self.engine_state());
                self.changes.signed = true;
            }
            // Only vertices above the lowest undecided slot can change a decision
            // (and, under Avalanche, the decided vertex of that slot itself).
            let next_slot = self.committer.state().next_slot;
            if round > next_slot || self.required == Some(d) {
                self.dag_changed = true;
            }
            self.fetches.remove(&d);
            if !self.quorum_since.contains_key(&round) && self.has_quorum(round) {
                self.quorum_since.insert(round, now);
            }
            work.extend(self.pending.release(&d).into_iter().map(|c| (c, true)));
        }
    }

    /// Answers a sync request from the DAG and, for evicted rounds, the store.
    fn serve(
        &mut self,
        from: ValidatorIndex,
        request: SyncRequest,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        // Our DAG answers only for our epoch; tips are asked of peers that left it.
        if from == self.me || request.epoch != self.epoch() || request.wanted.is_empty() {
            return;
        }
        self.stats.sync_requests_served += 1;
        let limits = SyncLimits {
            max_vertices: self.cfg.max_sync_vertices,
            max_bytes: MAX_SYNC_RESPONSE_BYTES,
        };
        let vertices = answer_sync(&request, limits, |r, d| self.lookup(r, d));
        if !vertices.is_empty() {
            out.push(Output::SendVertices { to: from, vertices });
        }
    }

    /// A vertex from memory, or from the store if its round was evicted from memory.
    fn lookup(&self, round: Round, digest: &Digest) -> Option<Arc<Vertex>> {
        if let Some(v) = self.dag.get(digest) {
            return Some(v.clone());
        }
        if round >= self.dag.gc_round() {
            return None;
        }
        stored_vertex(&self.store, round, digest)
    }

    /// The highest round at which we hold a quorum.
    fn highest_quorum_round(&self) -> Option<Round> {
        let hi = self.dag.highest_round()?;
        let lo = self.dag.lowest_round()?;
        (lo..=hi).rev().find(|r| self.has_quorum(*r))
    }

    /// Whether an author of round `h - 1` (not an equivocator) has no vertex in round
    /// `h` yet: proposing now would leave that vertex, when it comes, unreferenced.
    fn straggler_missing(&self, h: Round) -> bool {
        let Some(before) = h.checked_sub(1) else {
            return false;
        };
        self.dag
            .round(before)
            .any(|(a, _)| self.dag.slot(h, a).is_empty() && !self.equivocators.contains(&a))
    }

    /// Proposes our next vertex if the round rules allow it now; `true` if proposed.
    fn try_propose(&mut self, now: TimeMs, out: &mut Vec<Output<AvalancheMessage>>) -> bool {
        self.proposal_wake = None;
        if !self.started || self.halted {
            return false;
        }
        let (round, parents_round) = match self.highest_quorum_round() {
            Some(h) => (h + 1, Some(h)),
            None if self.last_proposed_round.is_none() && self.dag.gc_round() == 0 => (0, None),
            None => return false,
        };
        if self.last_proposed_round.is_some_and(|r| round <= r) {
            return false;
        }
        let mut ready_at = now;
        if self.last_proposed_round.is_some() {
            let depth = round.saturating_sub(self.committer.state().next_slot);
            ready_at = ready_at.max(self.last_proposal_ms + self.cfg.round_delay_ms(depth));
        }
        if let Some(h) = parents_round {
            let since = self.quorum_since.get(&h).copied().unwrap_or(now);
            let leader = self.leaders.leader(h);
            let leader_present = !self.dag.slot(h, leader).is_empty();
            if !leader_present && !self.equivocators.contains(&leader) {
                ready_at = ready_at.max(since + self.cfg.leader_timeout_ms);
            }
            if self.straggler_missing(h) {
                ready_at = ready_at.max(since + self.cfg.straggler_grace_ms);
            }
        }
        if now < ready_at {
            self.proposal_wake = Some(ready_at);
            return false;
        }
        let parents: Vec<VertexRef> = match parents_round {
            None => Vec::new(),
            Some(h) => self
                .dag
                .round(h)
                .map(|(author, ds)| VertexRef {
                    author,
                    digest: ds[0],
                })
                .collect(),
        };
        let transactions = self.take_batch();
        let unix = self.unix_now;
        let timestamp_ms = self
            .last_proposed
            .as_ref()
            .map_or(unix, |v| unix.max(v.content().timestamp_ms));
        let vertex = Arc::new(
            UnsignedVertex {
                chain: self.cfg.chain,
                epoch: self.validators.epoch(),
                round,
                author: self.me,
                parents,
                transactions,
                timestamp_ms,
            }
            .sign(&self.key, self.cfg.network),
        );
        self.last_proposed = Some(vertex.clone());
        self.last_proposed_round = Some(round);
        self.last_proposal_ms = now;
        self.last_resend_ms = now;
        self.stats.proposed += 1;
        // Persisted with the state (our last round) before the broadcast leaves,
        // synced whatever the store's policy.
        self.changes.state = Some(self.engine_state());
        self.changes.signed = true;
        self.accept(now, vertex.clone(), out);
        out.push(Output::Broadcast(vertex));
        true
    }

    /// Transactions for our next vertex, within the vertex payload limit.
    fn take_batch(&mut self) -> Vec<SignedTransaction> {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < self.cfg.max_batch_txs.min(vertex_limits::MAX_VERTEX_TXS) {
            let Some(tx) = self.queue.front() else { break };
            if bytes + tx.encoded_len() > vertex_limits::MAX_VERTEX_PAYLOAD_BYTES {
                break;
            }
            bytes += tx.encoded_len();
            batch.push(self.queue.pop_front().expect("front exists"));
        }
        batch
    }

    /// Applies the commit rule and garbage-collects behind it.
    fn decide(&mut self, out: &mut Vec<Output<AvalancheMessage>>) {
        let decided = if self.poller.is_some() {
            self.open_slots();
            self.take_sampled_decisions()
        } else {
            self.committer.try_decide(&mut self.dag, &self.leaders)
        };
        if decided.is_empty() {
            return;
        }
        let decided_at_round = self.dag.highest_round().unwrap_or(0);
        for d in decided {
            match d {
                Decided::Commit(subdag) => {
                    self.stats.committed_leaders += 1;
                    self.stats.committed_vertices += subdag.vertices.len() as u64;
                    let record = CommitRecord::of(&subdag);
                    self.unacked.insert(record.sequence, record.lowest_round());
                    self.changes.commits.push(record);
                    self.changes.committed.extend(
                        subdag
                            .vertices
                            .iter()
                            .map(|v| (v.content().round, v.digest())),
                    );
                    out.push(Output::Committed(Commit {
                        subdag,
                        decided_at_round,
                    }));
                }
                Decided::Skip { round, leader } => {
                    self.stats.skipped_slots += 1;
                    out.push(Output::Skipped { round, leader });
                }
            }
        }
        let gc = self
            .committer
            .state()
            .next_slot
            .saturating_sub(self.cfg.retention_rounds);
        if gc > self.dag.gc_round() {
            let mut orphaned = Vec::new();
            for collected in self.dag.gc_below(gc) {
                let vertex = collected.vertex;
                self.evicted
                    .entry(collected.round)
                    .or_default()
                    .push(vertex.digest());
                if !collected.committed && vertex.content().author == self.me {
                    orphaned.push(vertex);
                }
            }
            if !orphaned.is_empty() {
                self.stats.orphaned += orphaned.len() as u64;
                out.push(Output::Orphaned(orphaned));
            }
            let dropped = self.pending.gc_below(gc);
            self.penalise_abandoned(dropped, out);
            self.fetches.retain(|_, f| f.round >= gc);
            self.quorum_since = self.quorum_since.split_off(&gc);
        }
        self.prune_store();
        self.changes.state = Some(self.engine_state());
    }

    /// Re-announces our latest vertex if we have been stuck for a while.
    fn resend(&mut self, now: TimeMs, out: &mut Vec<Output<AvalancheMessage>>) -> Option<TimeMs> {
        if !self.started {
            return None;
        }
        let last = self.last_proposed.clone()?;
        let due = self.last_resend_ms.max(self.last_proposal_ms) + self.cfg.resend_timeout_ms;
        if now >= due {
            self.stats.resends += 1;
            self.last_resend_ms = now;
            out.push(Output::Broadcast(last));
            return Some(now + self.cfg.resend_timeout_ms);
        }
        Some(due)
    }

    /// Sends the sync requests that are due; returns when the next one is.
    fn request_missing(
        &mut self,
        now: TimeMs,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) -> Option<TimeMs> {
        let n = self.validators.len() as u64;
        let mut by_peer: BTreeMap<ValidatorIndex, Vec<(Round, Digest)>> = BTreeMap::new();
        let mut give_up = Vec::new();
        let mut next = None::<TimeMs>;
        let interval = self.cfg.min_sync_interval_ms;
        for (d, f) in self.fetches.iter_mut() {
            if f.next_at > now {
                next = Some(next.map_or(f.next_at, |t| t.min(f.next_at)));
                continue;
            }
            if f.attempts >= self.cfg.max_fetch_attempts {
                give_up.push(*d);
                continue;
            }
            // First the peer that referenced it, then every other peer in turn.
            let mut peer = ((u64::from(f.hint) + u64::from(f.attempts)) % n) as ValidatorIndex;
            if peer == self.me {
                peer = ((u64::from(peer) + 1) % n) as ValidatorIndex;
            }
            // One request per peer per interval: what is due waits for the next.
            if let Some(last) = self.last_request_ms.get(&peer)
                && now < last + interval
            {
                next = Some(next.map_or(last + interval, |t| t.min(last + interval)));
                continue;
            }
            f.attempts += 1;
            f.next_at = now + self.cfg.sync_retry_ms;
            next = Some(next.map_or(f.next_at, |t| t.min(f.next_at)));
            by_peer.entry(peer).or_default().push((f.round, *d));
        }
        for d in give_up {
            self.fetches.remove(&d);
            let dropped = self.pending.abandon(&d);
            self.penalise_abandoned(dropped, out);
        }
        if by_peer.is_empty() {
            return next;
        }
        let have_through_round = self.highest_quorum_round().unwrap_or(0);
        for (to, wanted) in by_peer {
            if to == self.me {
                continue;
            }
            self.last_request_ms.insert(to, now);
            for chunk in wanted.chunks(MAX_SYNC_DIGESTS) {
                self.stats.sync_requests_sent += 1;
                out.push(Output::RequestVertices {
                    to,
                    request: SyncRequest {
                        epoch: self.validators.epoch(),
                        wanted: chunk.to_vec(),
                        have_through_round,
                    },
                });
            }
        }
        next
    }

    /// Hands the commits kept across a restart to the consumer again, in order.
    fn replay_commits(&mut self, out: &mut Vec<Output<AvalancheMessage>>) {
        let decided_at_round = self.dag.highest_round().unwrap_or(0);
        for record in std::mem::take(&mut self.replay) {
            match self.replayed(&record) {
                Ok(subdag) => out.push(Output::Committed(Commit {
                    subdag,
                    decided_at_round,
                })),
                Err(reason) => {
                    // The store lost what it promised to keep: continuing would skip
                    // a committed sub-DAG. Stop and let the operator look.
                    self.halted = true;
                    out.clear();
                    out.push(Output::Halted { reason });
                    return;
                }
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Output<AvalancheMessage>>) {
        if self.changes.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.changes);
        if let Err(e) = self.store.apply(&changes) {
            // Nothing that depends on the lost write may leave: drop every output.
            self.halted = true;
            out.clear();
            out.push(Output::Halted {
                reason: e.to_string(),
            });
        }
    }
}

impl<S: ConsensusStore, V: VertexVerifier> Consensus for DagBft<S, V> {
    type Message = AvalancheMessage;

    fn handle(
        &mut self,
        now: impl Into<Now>,
        input: Input<AvalancheMessage>,
    ) -> Vec<Output<AvalancheMessage>> {
        let Now {
            monotonic_ms: now,
            unix_ms,
        } = now.into();
        assert!(
            now >= self.last_now,
            "engine time went backwards: {now} ms after {} ms",
            self.last_now
        );
        self.last_now = now;
        self.unix_now = unix_ms;
        if self.halted {
            return Vec::new();
        }
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if !self.started {
                    self.replay_commits(&mut out);
                    if let Some(poller) = self.poller.as_mut() {
                        poller.set_id_floor(unix_ms << 16);
                    }
                }
                self.started = true;
                self.last_proposal_ms = now;
                self.last_resend_ms = now;
                if let Some(v) = self.last_proposed.clone() {
                    out.push(Output::Broadcast(v));
                }
            }
            Input::VertexReceived { from, vertex } => {
                self.receive(now, from, vertex, Arrival::Sent, &mut out)
            }
            Input::VerticesReceived { vertices } => {
                for (from, vertex) in vertices {
                    self.receive(now, from, vertex, Arrival::Sent, &mut out);
                }
            }
            Input::SyncRequest { from, request } => self.serve(from, request, &mut out),
            Input::SyncResponse { from, mut vertices } => {
                vertices.truncate(self.cfg.max_sync_vertices);
                vertices.retain(|v| {
                    !self.dag.contains(&v.digest()) && !self.pending.contains(&v.digest())
                });
                vertices.sort_by_key(|v| v.content().round);
                let verdicts =
                    self.verifier
                        .verify_batch(&vertices, &self.validators, self.cfg.network);
                for (v, verdict) in vertices.into_iter().zip(verdicts) {
                    self.receive(now, from, v, Arrival::Answer(verdict), &mut out);
                }
            }
            Input::BatchReady { transactions } => {
                let room = self.cfg.max_queued_txs.saturating_sub(self.queue.len());
                self.queue.extend(transactions.into_iter().take(room));
            }
            Input::EvidenceReceived { from, evidence } => {
                self.on_evidence(from, evidence, &mut out)
            }
            Input::TimeoutFired => self.timer_at = None,
            Input::Executed { through } => self.on_executed(through),
            Input::Engine { from, message } => self.on_engine_message(now, from, message, &mut out),
        }
        self.decide_and_propose(now, &mut out);
        // What the poll decides is output (and may let us propose) in this step too.
        let poll_at = self.poll(now, &mut out);
        self.decide_and_propose(now, &mut out);
        let resend_at = self.resend(now, &mut out);
        let fetch_at = self.request_missing(now, &mut out);
        let tips_at = self.retry_tips(now, &mut out);
        let wake = [self.proposal_wake, poll_at, resend_at, fetch_at, tips_at]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();
        if let Some(at) = wake.filter(|at| self.timer_at != Some(*at)) {
            self.timer_at = Some(at);
            out.push(Output::SetTimer { at_ms: at });
        }
        self.flush(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
