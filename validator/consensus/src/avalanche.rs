//! The Avalanche-style ordering rule: leader slots decided by Snowball sampling.
//!
//! The engine keeps one vertex DAG for both rules (intake, parents, sync, equivocation
//! evidence, persistence and epochs are shared with DAG-BFT, see [`crate::engine`]);
//! what this module replaces is *how a leader slot is decided*. Under DAG-BFT a slot is
//! decided by counting votes and certificates in the DAG ([`crate::commit`]); here each
//! node decides it by repeatedly asking a stake-weighted random sample of `k` peers
//! which value they prefer — commit the slot's leader vertex with digest `D`, or skip
//! the slot — and running Snowball ([`snowball`]) on the answers.
//!
//! # From decided slots to one total order (Snowman over anchors)
//!
//! The executor needs the same committed sequence on every honest node. As Snowman
//! does over a chain of blocks, the engine decides *anchor* slots — one per round, the
//! round's stake-weighted leader ([`crate::leader::LeaderSchedule`]) — in round order:
//! - slot `r` opens on a node once its DAG holds a quorum of round `r + 1` (the round
//!   waited for the leader); its initial preference is `Commit(D)` if the node holds
//!   leader vertex `D` (the lowest timestamp, then digest, if the leader equivocated)
//!   and `Skip` otherwise;
//! - up to [`AvalancheConfig::max_open_slots`] open slots are polled together (one
//!   query, one signed response per peer per poll);
//! - decided slots are output strictly in round order up to the first undecided one:
//!   a skipped slot outputs nothing, a committed one outputs the leader vertex's causal
//!   history minus what earlier commits took, restricted to rounds ≥ `r - retention`
//!   and sorted by (round, author, digest) — exactly DAG-BFT's linearisation
//!   ([`crate::commit::Committer::order`]). A slot decided for a vertex the node does not
//!   hold yet waits while the vertex is fetched from a peer that voted for it.
//!
//! # Safety argument
//!
//! 1. *Per slot.* Two honest nodes decide different values for one slot only if
//!    Snowball's agreement fails; with `f` Byzantine stake below a third, a decision
//!    after `β` consecutive successes of `α_confidence` votes (default `0.8k`), and
//!    preferences that move only to a value that won more majorities (`> k/2`) than
//!    the preferred one, the probability of that falls exponentially in `β` (the
//!    Avalanche paper's analysis; the two thresholds are avalanchego's). On the
//!    networks of up to eleven validators we run, `k = n - 1`: every poll asks every
//!    peer, so a success means `α_confidence + 1` validators including the poller —
//!    at least a quorum for `n ≥ 4` — preferred the value at that moment, and a
//!    decided node's peers have each counted the value's majorities all along its
//!    streak. This is probabilistic finality, not DAG-BFT's deterministic one; the
//!    simulator measures it (every seed, Byzantine and lossy, checks that every
//!    node's committed sequence is a prefix of one sequence).
//! 2. *A decided value is well defined.* `Commit(D)` names a vertex by digest; its
//!    causal history is fixed by that digest (parents are digests), so every node that
//!    commits `D` commits the same history. Honest nodes vote only for vertices they
//!    hold (verified, parents present) that occupy the slot's round and leader; a vote
//!    for anything else is signed proof of misbehaviour and excludes the voter.
//! 3. *Total order.* Given agreement on every slot (1) and identical histories (2),
//!    the output — decided slots in round order, each a deterministic function of the
//!    DAG and of the earlier output — is the same sequence on every honest node, and
//!    each node's output is a prefix of it at every moment.
//! 4. *Finality is final.* A decided slot is never polled again; its value is kept and
//!    answered to peers still polling it, which pulls laggards to the same value.
//!
//! Liveness: after GST an honest leader's vertex reaches every honest node before it
//! holds a quorum of the next round (nodes wait for the leader up to a timeout), so
//! all honest nodes open the slot preferring the same `Commit(D)`, every poll
//! succeeds, and the slot decides after `β` polls. Split preferences (a late or
//! equivocating leader) tip to one side by Snowball's metastability: a majority is
//! enough to move a preference, so a split no poll can confirm still moves (with one
//! `0.8k` threshold it did not, and such a slot stayed open for ever).

pub mod message;
pub mod peers;
pub mod sampler;
pub mod snowball;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::{ValidatorIndex, ValidatorSet};

use crate::consensus::{Output, Round, TimeMs};
pub use message::{
    AvalancheMessage, MAX_QUERY_SLOTS, Preference, Query, Response, ResponseError, Votes,
};
use peers::{Offence, PeerBook, PeerStats};
pub use snowball::{Alphas, FINAL_CONFIDENCE_PPM, PPM, PollOutcome, Snowball};

/// New queries of one peer answered back to back before its rate applies (see
/// `Poller::admit_query`).
const QUERY_BURST: u64 = 4;

/// Snowball's `β` presets (REQUIREMENTS §4: quick, standard, high security).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Quick,
    Standard,
    High,
}

impl Security {
    pub fn beta(self) -> u32 {
        match self {
            Security::Quick => 5,
            Security::Standard => 20,
            Security::High => 50,
        }
    }
}

/// Parameters of the Avalanche ordering rule (local tuning except where noted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvalancheConfig {
    /// Peers asked per poll (capped at `n - 1`).
    pub k: usize,
    /// Consecutive successes that decide a slot.
    pub beta: u32,
    /// A poll's answers are counted at this deadline at the latest.
    pub query_timeout_ms: TimeMs,
    /// Least time between the starts of two of our polls (and, halved, between two
    /// queries of one peer we answer: more are dropped, so a peer cannot make us sign
    /// without bound).
    pub min_poll_interval_ms: TimeMs,
    /// Open slots polled together.
    pub max_open_slots: usize,
    /// How long a peer that kept timing out is left out of samples.
    pub timeout_exclusion_ms: TimeMs,
    /// Queries over which the share of timeouts detects a partition.
    pub partition_window: usize,
    /// Decided slots remembered below the next undecided one, to answer peers that are
    /// still polling them.
    pub answer_window: Round,
}

impl AvalancheConfig {
    pub fn with_security(security: Security) -> Self {
        Self {
            k: 10,
            beta: security.beta(),
            query_timeout_ms: 1_000,
            min_poll_interval_ms: 20,
            max_open_slots: 32,
            timeout_exclusion_ms: 10_000,
            partition_window: 16,
            answer_window: 256,
        }
    }

    /// Peers one poll asks in a committee of `n`.
    pub fn sample_size(&self, n: usize) -> usize {
        self.k.min(n.saturating_sub(1)).max(1)
    }
}

impl Default for AvalancheConfig {
    fn default() -> Self {
        Self::with_security(Security::Standard)
    }
}

/// Counters of the rule, for metrics and the simulator's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AvalancheStats {
    pub polls: u64,
    pub successful_slot_polls: u64,
    pub failed_slot_polls: u64,
    pub queries_sent: u64,
    pub queries_answered: u64,
    pub queries_dropped: u64,
    /// Polls sent with no slot to decide (heartbeats that detect partitions).
    pub idle_polls: u64,
    /// Queries sent again to peers silent at a quarter of the timeout.
    pub queries_retried: u64,
    pub responses: u64,
    pub slots_decided: u64,
    pub peers: PeerStats,
}

impl AvalancheStats {
    /// Adds `other`'s counters to these (totals over nodes or runs).
    pub fn add(&mut self, other: &Self) {
        self.polls += other.polls;
        self.successful_slot_polls += other.successful_slot_polls;
        self.failed_slot_polls += other.failed_slot_polls;
        self.queries_sent += other.queries_sent;
        self.queries_answered += other.queries_answered;
        self.queries_dropped += other.queries_dropped;
        self.idle_polls += other.idle_polls;
        self.queries_retried += other.queries_retried;
        self.responses += other.responses;
        self.slots_decided += other.slots_decided;
        self.peers.add(&other.peers);
    }
}

/// A poll in flight.
#[derive(Clone, Debug)]
struct Poll {
    id: u64,
    first_slot: Round,
    count: usize,
    asked: BTreeSet<ValidatorIndex>,
    answers: BTreeMap<ValidatorIndex, Vec<Preference>>,
    /// Votes for one value that make this poll a success on a slot (fixed when the
    /// sample is drawn, from its size).
    alpha: Alphas,
    /// When silent peers are asked once more (a lost query or answer), if not yet.
    retry_at: Option<TimeMs>,
    deadline: TimeMs,
}

/// What a response's vote names, as the engine's DAG sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteCheck {
    /// A vertex we hold, of the slot's round and leader.
    Valid,
    /// A vertex we hold that is not of the slot: signed misbehaviour.
    Invalid,
    /// A vertex we do not hold (yet).
    Unknown,
}

/// Why a response was not counted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseRefused {
    #[error("not an answer to our current poll")]
    Unexpected,
    #[error("response of a peer excluded as Byzantine")]
    Excluded,
    #[error("misbehaving response: {0:?}")]
    Misbehaviour(Offence),
    /// The response, validly signed, votes to commit vertex `digest`, which we hold
    /// and which does not occupy the slot voted on: signed proof for everyone (see
    /// [`crate::evidence::Evidence::WrongVote`]).
    #[error("the response votes for vertex {digest}, which does not occupy the slot")]
    WrongVote {
        response: Box<Response>,
        digest: Digest,
    },
}

/// The Snowball state of one validator's open slots, its polls and its peers.
#[derive(Clone)]
pub struct Poller {
    cfg: AvalancheConfig,
    me: ValidatorIndex,
    epoch: u64,
    seed: Digest,
    network: NetworkId,
    key: Arc<ValidatorKeypair>,
    validators: Arc<ValidatorSet>,
    slots: BTreeMap<Round, Snowball>,
    poll: Option<Poll>,
    next_poll_at: TimeMs,
    /// When an idle heartbeat poll is due (see [`Poller::start`]).
    next_idle_poll_at: TimeMs,
    next_id: u64,
    /// Each peer's latest query that we answered, and our answer: a repeated query (the
    /// poller retrying after a loss or a slow answer) gets the same response again, not
    /// a new signature.
    answered: BTreeMap<ValidatorIndex, Response>,
    /// Per peer, the theoretical arrival time of its next new query (the generic cell
    /// rate algorithm): new queries are answered at one per half poll interval on
    /// average, with bursts of [`QUERY_BURST`], and dropped past that, so a peer cannot
    /// make us sign without bound.
    query_rate: BTreeMap<ValidatorIndex, TimeMs>,
    /// Peers still silent when a poll settled early: (poll id, deadline). One that has
    /// not answered that poll by its deadline is charged a timeout all the same, so a
    /// peer that never answers is found even when the others always settle polls.
    silent: BTreeMap<ValidatorIndex, (u64, TimeMs)>,
    peers: PeerBook,
    stats: AvalancheStats,
    /// Slots decided since [`Poller::take_new_decisions`] was last called.
    new_decisions: Vec<(Round, Preference)>,
}

impl Poller {
    pub fn new(
        cfg: AvalancheConfig,
        me: ValidatorIndex,
        epoch: u64,
        seed: Digest,
        network: NetworkId,
        key: Arc<ValidatorKeypair>,
        validators: Arc<ValidatorSet>,
    ) -> Self {
        assert!(cfg.beta > 0 && cfg.k > 0, "k and β are positive");
        assert!(cfg.max_open_slots.clamp(1, MAX_QUERY_SLOTS) == cfg.max_open_slots);
        let peers = PeerBook::new(cfg.timeout_exclusion_ms, cfg.partition_window);
        Self {
            cfg,
            me,
            epoch,
            seed,
            network,
            key,
            validators,
            slots: BTreeMap::new(),
            poll: None,
            next_poll_at: 0,
            next_idle_poll_at: 0,
            next_id: 0,
            answered: BTreeMap::new(),
            query_rate: BTreeMap::new(),
            silent: BTreeMap::new(),
            peers,
            stats: AvalancheStats::default(),
            new_decisions: Vec::new(),
        }
    }

    pub fn config(&self) -> &AvalancheConfig {
        &self.cfg
    }

    pub fn stats(&self) -> AvalancheStats {
        AvalancheStats {
            peers: self.peers.stats().clone(),
            ..self.stats.clone()
        }
    }

    pub fn is_partitioned(&self) -> bool {
        self.peers.is_partitioned()
    }

    /// Peers excluded as Byzantine (for the rest of the epoch).
    pub fn byzantine(&self) -> Vec<ValidatorIndex> {
        self.peers.byzantine().collect()
    }

    /// Excludes `peer` for the epoch: the DAG showed it Byzantine.
    pub fn exclude(&mut self, peer: ValidatorIndex, now: TimeMs) {
        if peer != self.me {
            self.peers.offence(peer, Offence::Vertex, now);
        }
    }

    /// Peers excluded at some time this epoch, Byzantine or slow.
    pub fn ever_excluded(&self) -> Vec<ValidatorIndex> {
        self.peers.ever_excluded().iter().copied().collect()
    }

    /// Whether slot `slot` is open (polled or decided).
    pub fn is_open(&self, slot: Round) -> bool {
        self.slots.contains_key(&slot)
    }

    /// Starts query ids above `floor` (the engine passes its clock at start, shifted:
    /// ids then differ from those it used before a restart, and a late answer to an
    /// old query cannot pass for an answer to a new one).
    pub fn set_id_floor(&mut self, floor: u64) {
        self.next_id = self.next_id.max(floor);
    }

    /// Opens `slot` with the node's own view of it.
    pub fn open(&mut self, slot: Round, local: Preference) {
        self.slots
            .entry(slot)
            .or_insert_with(|| Snowball::new(local));
    }

    pub fn decision(&self, slot: Round) -> Option<Preference> {
        self.slots.get(&slot).and_then(Snowball::decided)
    }

    /// Confidence of every open, undecided slot, in parts per million (metrics).
    pub fn open_confidences(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .values()
            .filter(|s| s.decided().is_none())
            .map(Snowball::confidence_ppm)
    }

    /// Forgets slots below `slot - answer_window` (decided and output long ago);
    /// returns the decided ones forgotten (their persisted records go).
    pub fn forget_below(&mut self, slot: Round) -> Vec<Round> {
        let keep_from = slot.saturating_sub(self.cfg.answer_window);
        let kept = self.slots.split_off(&keep_from);
        let gone = std::mem::replace(&mut self.slots, kept);
        gone.into_iter()
            .filter(|(_, s)| s.decided().is_some())
            .map(|(r, _)| r)
            .collect()
    }

    /// Decisions made since the last call, to persist: a restarted node must still
    /// answer peers polling the slots it decided (a restarted node that answered
    /// "unknown" kept a lagging peer from ever reaching α, the simulator found).
    pub fn take_new_decisions(&mut self) -> Vec<(Round, Preference)> {
        std::mem::take(&mut self.new_decisions)
    }

    /// Restores decisions read back from the store after a restart.
    pub fn restore(&mut self, decided: &[(Round, Preference)]) {
        for (slot, value) in decided {
            self.slots.insert(*slot, Snowball::decided_as(*value));
        }
    }

    /// Answers a peer's query with our preferences, signed; `None` drops it (another
    /// epoch, an excluded peer, or a peer asking faster than any honest poller does).
    ///
    /// An undecided slot whose preference names a vertex that `check` does not find
    /// valid for the slot — one we do not hold yet (the preference moved on peers'
    /// votes), or one we now see belongs elsewhere (Byzantine peers swayed a sample)
    /// — is answered `Unknown`: a vote for a vertex says the voter holds it and
    /// checked it, and a vote for a vertex outside its slot is signed evidence against
    /// the voter. A decided slot is answered with its decision, which took `β`
    /// successful polls and stays answerable after its vertex left memory.
    pub fn answer(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        query: &Query,
        check: impl Fn(Round, &Digest) -> VoteCheck,
    ) -> Option<Response> {
        if query.epoch != self.epoch
            || from == self.me
            || self.validators.get(from).is_none()
            || self.peers.is_byzantine(from)
        {
            self.stats.queries_dropped += 1;
            return None;
        }
        if let Some(last) = self.answered.get(&from)
            && last.votes.id == query.id
            && last.votes.first_slot == query.first_slot
            && last.votes.preferences.len() == usize::from(query.count)
        {
            return Some(last.clone());
        }
        if !self.admit_query(now, from) {
            self.stats.queries_dropped += 1;
            return None;
        }
        let count = usize::from(query.count).min(MAX_QUERY_SLOTS) as u64;
        let preferences = (query.first_slot..query.first_slot.saturating_add(count))
            .map(|s| match self.slots.get(&s) {
                None => Preference::Unknown,
                Some(slot) => match (slot.decided(), slot.preference()) {
                    (Some(decided), _) => decided,
                    (None, Preference::Commit(d)) if check(s, &d) != VoteCheck::Valid => {
                        Preference::Unknown
                    }
                    (None, preference) => preference,
                },
            })
            .collect();
        self.stats.queries_answered += 1;
        let response = Response::sign(query, from, self.me, preferences, &self.key, self.network);
        self.answered.insert(from, response.clone());
        Some(response)
    }

    /// Whether a new query of `from` fits its rate (see `query_rate`). An honest poller
    /// starts a poll at most once per poll interval, but a poll that ended late is
    /// followed at once by the next, so two of its queries can arrive back to back: a
    /// strict spacing dropped the second, and every such poll waited for its retry.
    fn admit_query(&mut self, now: TimeMs, from: ValidatorIndex) -> bool {
        let spacing = (self.cfg.min_poll_interval_ms / 2).max(1);
        let tat = self.query_rate.get(&from).copied().unwrap_or(now).max(now);
        if tat > now.saturating_add(spacing * (QUERY_BURST - 1)) {
            return false;
        }
        self.query_rate.insert(from, tat.saturating_add(spacing));
        true
    }

    /// Takes a peer's response to our poll. `check` tells what a vote's digest is in
    /// our DAG; digests we do not hold are returned (with their slot) to be fetched
    /// from the voter.
    pub fn on_response(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        response: Response,
        check: impl Fn(Round, &Digest) -> VoteCheck,
    ) -> Result<Vec<(Round, Digest)>, ResponseRefused> {
        if self.peers.is_byzantine(from) {
            return Err(ResponseRefused::Excluded);
        }
        let votes = &response.votes;
        if self
            .silent
            .get(&from)
            .is_some_and(|(id, _)| *id == votes.id)
        {
            // A late answer to a settled poll: the peer is alive (not counted).
            self.silent.remove(&from);
            self.peers.answered(from);
            return Err(ResponseRefused::Unexpected);
        }
        let Some(poll) = self.poll.as_ref().filter(|p| {
            votes.id == p.id
                && votes.epoch == self.epoch
                && votes.querier == self.me
                && p.asked.contains(&from)
                && !p.answers.contains_key(&from)
        }) else {
            return Err(ResponseRefused::Unexpected);
        };
        let (first_slot, count) = (poll.first_slot, poll.count);
        if votes.first_slot != first_slot || votes.preferences.len() != count {
            // Not for this poll's slots: an answer to an older query of ours that
            // reused the id (before a restart), or nonsense. Ignored, like silence.
            return Err(ResponseRefused::Unexpected);
        }
        if response
            .verify(from, &self.validators, self.network)
            .is_err()
        {
            return Err(self.misbehaved(now, from, Offence::BadSignature));
        }
        let mut unknown = Vec::new();
        for (slot, vote) in (first_slot..).zip(&votes.preferences) {
            if let Preference::Commit(d) = vote {
                match check(slot, d) {
                    VoteCheck::Valid => {}
                    VoteCheck::Invalid => {
                        let digest = *d;
                        self.misbehaved(now, from, Offence::WrongVote);
                        return Err(ResponseRefused::WrongVote {
                            response: Box::new(response),
                            digest,
                        });
                    }
                    VoteCheck::Unknown => unknown.push((slot, *d)),
                }
            }
        }
        self.stats.responses += 1;
        self.peers.answered(from);
        self.peers.record_query(false);
        let poll = self.poll.as_mut().expect("checked above");
        poll.answers.insert(from, response.votes.preferences);
        Ok(unknown)
    }

    /// Scores `offence` against `from` and takes it out of the poll in flight.
    fn misbehaved(
        &mut self,
        now: TimeMs,
        from: ValidatorIndex,
        offence: Offence,
    ) -> ResponseRefused {
        self.peers.offence(from, offence, now);
        if let Some(p) = self.poll.as_mut() {
            p.asked.remove(&from);
        }
        ResponseRefused::Misbehaviour(offence)
    }

    /// Finishes a poll that is complete or past its deadline, and starts the next one
    /// when it is due. `first_undecided` is the engine's next slot to output. Returns
    /// when to be called again.
    pub fn tick(
        &mut self,
        now: TimeMs,
        first_undecided: Round,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) -> Option<TimeMs> {
        if let Some(poll) = &self.poll
            && (now >= poll.deadline || self.is_settled(poll))
        {
            let poll = self.poll.take().expect("present");
            self.finish(now, poll);
        }
        self.retry_silent(now, out);
        self.charge_silence(now);
        if self.poll.is_none() && now >= self.next_poll_at {
            self.start(now, first_undecided, out);
        }
        let silence_due = self.silent.values().map(|(_, deadline)| *deadline).min();
        let poll_due = match &self.poll {
            Some(p) => Some(p.retry_at.unwrap_or(p.deadline)),
            None if self.undecided_from(first_undecided).next().is_some() => {
                Some(self.next_poll_at.max(now + 1))
            }
            None => Some(self.next_idle_poll_at.max(now + 1)),
        };
        [poll_due, silence_due].into_iter().flatten().min()
    }

    /// Asks the peers still silent at the poll's retry time once more (the same query:
    /// they answer with the response they signed, if they did).
    fn retry_silent(&mut self, now: TimeMs, out: &mut Vec<Output<AvalancheMessage>>) {
        let Some(poll) = self.poll.as_mut() else {
            return;
        };
        if poll.retry_at.is_none_or(|at| now < at) {
            return;
        }
        poll.retry_at = None;
        let query = Query {
            epoch: self.epoch,
            id: poll.id,
            first_slot: poll.first_slot,
            count: poll.count as u16,
        };
        for peer in poll.asked.iter().filter(|p| !poll.answers.contains_key(p)) {
            self.stats.queries_retried += 1;
            out.push(Output::SendEngine {
                to: Some(*peer),
                message: AvalancheMessage::Query(query),
            });
        }
    }

    /// Charges a timeout to each peer silent past the deadline of a poll that settled
    /// without it.
    fn charge_silence(&mut self, now: TimeMs) {
        let due: Vec<ValidatorIndex> = self
            .silent
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.silent.remove(&peer);
            self.peers.offence(peer, Offence::Timeout, now);
            self.peers.record_query(true);
        }
    }

    /// Open, undecided slots from `first`.
    fn undecided_from(&self, first: Round) -> impl Iterator<Item = Round> + '_ {
        self.slots
            .range(first..)
            .filter(|(_, s)| s.decided().is_none())
            .map(|(r, _)| *r)
    }

    /// Whether the answers so far already settle the poll: everyone answered, or every
    /// slot has a value with α votes (waiting for the rest changes nothing).
    fn is_settled(&self, poll: &Poll) -> bool {
        if poll.answers.len() == poll.asked.len() {
            return true;
        }
        let alpha = poll.alpha.confidence;
        (0..poll.count).all(|i| {
            let mut tally: BTreeMap<Preference, u32> = BTreeMap::new();
            for votes in poll.answers.values() {
                let v = votes[i];
                if v != Preference::Unknown {
                    *tally.entry(v).or_default() += 1;
                }
            }
            tally.values().any(|n| *n >= alpha)
        })
    }

    /// Starts a poll of the open undecided slots (or an idle heartbeat).
    fn start(
        &mut self,
        now: TimeMs,
        first_undecided: Round,
        out: &mut Vec<Output<AvalancheMessage>>,
    ) {
        let first_open = self.undecided_from(first_undecided).next();
        let (first, count) = match first_open {
            Some(first) => {
                let last = self
                    .slots
                    .range(first..first + self.cfg.max_open_slots as u64)
                    .next_back()
                    .map(|(r, _)| *r)
                    .expect("first is open");
                (first, (last - first + 1) as usize)
            }
            // Nothing to decide: a node cut off from the others opens no slots, so it
            // keeps asking about the next one once per query timeout (a heartbeat
            // whose timeouts detect the partition, and whose answers count nothing).
            None if now >= self.next_idle_poll_at => {
                self.next_idle_poll_at = now + self.cfg.query_timeout_ms;
                self.stats.idle_polls += 1;
                (first_undecided, 1)
            }
            None => return,
        };
        let candidates = sampler::candidates(&self.validators, self.me, |p| {
            self.peers.is_excluded(p, now)
        });
        let id = self.next_id;
        self.next_id += 1;
        let k = self.cfg.sample_size(self.validators.len());
        let asked: BTreeSet<ValidatorIndex> =
            sampler::sample(&self.seed, self.me, id, &candidates, k)
                .into_iter()
                .collect();
        self.next_poll_at = now + self.cfg.min_poll_interval_ms;
        if asked.is_empty() {
            return;
        }
        let query = Query {
            epoch: self.epoch,
            id,
            first_slot: first,
            count: count as u16,
        };
        for peer in &asked {
            out.push(Output::SendEngine {
                to: Some(*peer),
                message: AvalancheMessage::Query(query),
            });
        }
        self.stats.polls += 1;
        self.stats.queries_sent += asked.len() as u64;
        self.poll = Some(Poll {
            id,
            first_slot: first,
            count,
            // `k` is the sample actually drawn: peers excluded as Byzantine or
            // unresponsive leave the candidates, so a node that caught two Byzantine
            // peers of nine polls the seven others with α_confidence = 5.
            alpha: Alphas::for_sample(asked.len()),
            asked,
            answers: BTreeMap::new(),
            retry_at: Some(now + self.cfg.query_timeout_ms / 4),
            deadline: now + self.cfg.query_timeout_ms,
        });
    }

    fn finish(&mut self, now: TimeMs, poll: Poll) {
        // A poll settled early owes nobody anything; one that ran to its deadline
        // charges each silent peer a timeout.
        let silent = poll.asked.iter().filter(|p| !poll.answers.contains_key(p));
        if now >= poll.deadline {
            for peer in silent {
                self.peers.offence(*peer, Offence::Timeout, now);
                self.peers.record_query(true);
            }
        } else {
            for peer in silent {
                self.silent.entry(*peer).or_insert((poll.id, poll.deadline));
            }
        }
        let (alpha, beta) = (poll.alpha, self.cfg.beta);
        for i in 0..poll.count {
            let slot = poll.first_slot + i as u64;
            let Some(snowball) = self.slots.get_mut(&slot) else {
                continue;
            };
            let votes: Vec<Preference> = poll.answers.values().map(|v| v[i]).collect();
            match snowball.record(&votes, alpha, beta) {
                PollOutcome::Success => self.stats.successful_slot_polls += 1,
                PollOutcome::Failure | PollOutcome::Majority => self.stats.failed_slot_polls += 1,
                PollOutcome::AlreadyDecided => continue,
            }
            if let Some(value) = snowball.decided() {
                self.stats.slots_decided += 1;
                self.new_decisions.push((slot, value));
            }
        }
    }
}

#[cfg(test)]
mod tests;
