//! The commit rule: which leader vertices are committed, and the total order of their
//! causal histories.
//!
//! # Reference
//!
//! The rule is Mysticeti's (K. Babel, A. Chursin, G. Danezis, A. Kichidis,
//! L. Kokoris-Kogias, A. Koshy, A. Sonnino, M. Tian: *Mysticeti: Reaching the Limits
//! of Latency with Uncertified DAGs*, NDSS 2025, arXiv:2310.14821), with one leader
//! slot per round and a wave of three rounds: propose (round `r`), vote (`r+1`),
//! certify (`r+2`). We use Mysticeti rather than Bullshark because our DAG is
//! *uncertified* — a vertex is broadcast once, not reliably broadcast with a quorum
//! certificate — so a Byzantine author can show different vertices for one slot to
//! different nodes. Bullshark's `f+1` votes rule is only safe on a certified DAG; the
//! rule below is safe without certificates, and commits a leader in 2 rounds.
//!
//! # Definitions
//!
//! Stake is counted over *distinct authors*; `Q` is the quorum stake (`n - f`, 2f+1
//! for equal stakes). The leader of round `r` is [`LeaderSchedule::leader`]`(r)`; its
//! *slot* may hold several vertices if it equivocated.
//! - A round-`r+1` vertex **votes** for leader vertex `v` if `v` is among its parents
//!   (parents hold at most one vertex per author, so a vertex votes for at most one
//!   vertex of a slot).
//! - A round-`r+2` vertex `c` is a **certificate** for `v` if the parents of `c` that
//!   vote for `v` have stake ≥ `Q`.
//! - **Direct commit** of `v`: the authors of round-`r+2` certificates for `v` have
//!   stake ≥ `Q`.
//! - **Direct skip** of slot `r`: the authors of round-`r+1` vertices that vote for no
//!   vertex of the slot have stake ≥ `Q`.
//! - Otherwise the slot is decided **indirectly**: the *anchor* is the first slot of a
//!   round ≥ `r+3` that is not skipped. If the anchor is undecided, so is `r`. If the
//!   anchor committed vertex `a`, slot `r` commits `v` if the causal history of `a`
//!   contains a certificate for `v`, and is skipped otherwise.
//!
//! Slots are decided from the highest round down, and output in increasing round
//! order up to the first undecided slot.
//!
//! # Safety argument
//!
//! Honest validators sign at most one vertex per round (the engine persists its
//! vertex before broadcasting it, so this holds across restarts). Two quorums share
//! more than `f` stake, hence an honest author.
//!
//! 1. *At most one vertex per slot is ever certified.* If `v ≠ v'` both had
//!    certificates, their voter sets (each of stake ≥ `Q`) would share an honest
//!    author, whose single round-`r+1` vertex would vote for both — impossible.
//! 2. *A direct commit is seen by every later anchor.* If a node directly commits `v`,
//!    the certificate authors have stake ≥ `Q`. Any round-`r+3` vertex has parents of
//!    stake ≥ `Q` at round `r+2`; the two sets share an honest author, whose only
//!    round-`r+2` vertex is a certificate for `v`. Every vertex of round ≥ `r+3`
//!    reaches some round-`r+3` vertex, so the causal history of any anchor contains a
//!    certificate for `v`, and the indirect rule commits `v` too (by 1, no other).
//! 3. *A direct skip excludes any commit.* A direct skip needs non-voters of stake ≥
//!    `Q` at round `r+1`; a certificate needs voters of stake ≥ `Q`; an honest author
//!    would be in both with one vertex. So no vertex of the slot is ever certified,
//!    and neither the direct nor the indirect rule can commit it.
//! 4. *Agreement.* By induction from higher slots down: two nodes that both decide
//!    slot `r` either decide directly (consistent by 1–3) or indirectly from anchors;
//!    they agree on every slot above `r` they both decided, hence pick the same anchor
//!    vertex, whose causal history is fixed by its digest, hence decide the same; a
//!    direct decision on one node and an indirect one on another agree by 2 and 3.
//! 5. *Total order.* Every node outputs decided slots in round order up to its first
//!    undecided slot, so committed leader sequences are prefixes of one sequence. The
//!    sub-DAG of a committed leader is its causal history minus what earlier leaders
//!    committed, restricted to rounds ≥ `leader round - retention` (the deterministic
//!    garbage-collection bound of Bullshark §5), sorted by (round, author, digest): a
//!    function of the digest-determined history and of the earlier sequence only.
//!
//! Liveness (partial synchrony): after GST honest leaders' vertices reach every
//! honest node before it proposes (the engine waits for the leader up to a timeout),
//! so all honest round-`r+1` vertices vote, all honest round-`r+2` vertices are
//! certificates, and the slot is directly committed. Skipped or undecided slots are
//! resolved by the next committed anchor.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::types::{ValidatorIndex, Vertex};

use crate::consensus::{CommittedSubDag, Round, TimeMs};
use crate::dag::{Dag, DigestMap};
use crate::leader::LeaderSchedule;

/// The decision on one leader slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotDecision {
    Commit(Digest),
    Skip,
    Undecided,
}

/// A decided slot, in output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    Commit(CommittedSubDag),
    Skip {
        round: Round,
        leader: ValidatorIndex,
    },
}

/// The part of the committer's state that must survive a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitterState {
    /// The lowest undecided slot.
    pub next_slot: Round,
    /// Sequence number of the next committed sub-DAG.
    pub next_sequence: u64,
    /// Timestamp of the last commit (commit timestamps never decrease).
    pub last_commit_ts: TimeMs,
}

/// Applies the commit rule to a DAG, slot after slot.
pub struct Committer {
    state: CommitterState,
    retention: Round,
    genesis_time_ms: TimeMs,
    /// Memo of "is `c` a certificate for `v`" for slots not decided yet: each DAG
    /// change would otherwise re-count every round-`r+2` vertex's votes.
    certificates: DigestMap<(Digest, Digest), (Round, bool)>,
}

impl Committer {
    pub fn new(retention: Round, genesis_time_ms: TimeMs, state: CommitterState) -> Self {
        Self {
            state,
            retention,
            genesis_time_ms,
            certificates: DigestMap::default(),
        }
    }

    pub fn state(&self) -> CommitterState {
        self.state
    }

    /// Decides what can be decided and returns the newly decided slots in order,
    /// marking committed vertices in `dag`.
    pub fn try_decide(&mut self, dag: &mut Dag, leaders: &LeaderSchedule) -> Vec<Decided> {
        let Some(highest) = dag.highest_round() else {
            return Vec::new();
        };
        if highest < self.state.next_slot + 2 {
            return Vec::new();
        }
        let mut decisions: BTreeMap<Round, SlotDecision> = BTreeMap::new();
        for round in (self.state.next_slot..=highest - 2).rev() {
            let leader = leaders.leader(round);
            let mut decision = self.direct(dag, round, leader);
            if decision == SlotDecision::Undecided {
                decision = self.indirect(dag, round, leader, &decisions);
            }
            decisions.insert(round, decision);
        }
        let mut out = Vec::new();
        for (round, decision) in decisions {
            match decision {
                SlotDecision::Undecided => break,
                SlotDecision::Skip => out.push(Decided::Skip {
                    round,
                    leader: leaders.leader(round),
                }),
                SlotDecision::Commit(v) => out.push(Decided::Commit(self.order(dag, v))),
            }
            self.state.next_slot = round + 1;
        }
        let next = self.state.next_slot;
        self.certificates.retain(|_, (r, _)| *r >= next);
        out
    }

    /// Outputs, in round order, the slots an external rule decided (the Avalanche
    /// engine's Snowball, see [`crate::avalanche`]) up to the first undecided one.
    /// A slot decided for a vertex the DAG does not hold stops the output there; its
    /// digest is returned so the engine fetches it.
    pub fn take_decided(
        &mut self,
        dag: &mut Dag,
        leaders: &LeaderSchedule,
        decision: impl Fn(Round) -> SlotDecision,
    ) -> (Vec<Decided>, Option<(Round, Digest)>) {
        let mut out = Vec::new();
        loop {
            let round = self.state.next_slot;
            match decision(round) {
                SlotDecision::Undecided => return (out, None),
                SlotDecision::Skip => out.push(Decided::Skip {
                    round,
                    leader: leaders.leader(round),
                }),
                SlotDecision::Commit(v) => {
                    if dag.get(&v).is_none() {
                        return (out, Some((round, v)));
                    }
                    out.push(Decided::Commit(self.order(dag, v)));
                }
            }
            self.state.next_slot = round + 1;
        }
    }

    /// The direct rule for slot `round`.
    fn direct(&mut self, dag: &Dag, round: Round, leader: ValidatorIndex) -> SlotDecision {
        let validators = dag.validators();
        let quorum = validators.quorum_stake();
        if dag.round_stake(round + 2, |_| false) >= quorum {
            for v in dag.slot(round, leader).to_vec() {
                let certifiers: Vec<ValidatorIndex> = dag
                    .round(round + 2)
                    .filter(|(_, cs)| {
                        cs.iter()
                            .any(|c| self.is_certificate(dag, round, c, &v, leader))
                    })
                    .map(|(a, _)| a)
                    .collect::<Vec<_>>();
                if validators.stake_of(certifiers) >= quorum {
                    return SlotDecision::Commit(v);
                }
            }
        }
        let blamers = dag
            .round(round + 1)
            .filter(|(_, ds)| ds.iter().any(|d| !votes_for_slot(dag, d, leader)))
            .map(|(a, _)| a);
        if validators.stake_of(blamers) >= quorum {
            return SlotDecision::Skip;
        }
        SlotDecision::Undecided
    }

    /// The indirect rule for slot `round`, given the decisions of the slots above it.
    fn indirect(
        &mut self,
        dag: &Dag,
        round: Round,
        leader: ValidatorIndex,
        above: &BTreeMap<Round, SlotDecision>,
    ) -> SlotDecision {
        let mut anchor = None;
        for decision in above.range(round + 3..).map(|(_, d)| *d) {
            match decision {
                SlotDecision::Skip => continue,
                SlotDecision::Undecided => return SlotDecision::Undecided,
                SlotDecision::Commit(a) => {
                    anchor = Some(a);
                    break;
                }
            }
        }
        let Some(anchor) = anchor else {
            return SlotDecision::Undecided;
        };
        let candidates = history_at_round(dag, &anchor, round + 2);
        for v in dag.slot(round, leader).to_vec() {
            if candidates
                .iter()
                .any(|c| self.is_certificate(dag, round, c, &v, leader))
            {
                return SlotDecision::Commit(v);
            }
        }
        SlotDecision::Skip
    }

    /// Whether round-`slot+2` vertex `c` is a certificate for leader vertex `v`.
    fn is_certificate(
        &mut self,
        dag: &Dag,
        slot: Round,
        c: &Digest,
        v: &Digest,
        leader: ValidatorIndex,
    ) -> bool {
        if let Some((_, known)) = self.certificates.get(&(*c, *v)) {
            return *known;
        }
        let Some(cv) = dag.get(c) else {
            return false;
        };
        let voters = cv
            .content()
            .parents
            .iter()
            .filter(|p| {
                dag.get(&p.digest)
                    .is_some_and(|pv| parent_of(pv, leader) == Some(*v))
            })
            .map(|p| p.author);
        let is = dag.validators().stake_of(voters) >= dag.validators().quorum_stake();
        self.certificates.insert((*c, *v), (slot, is));
        is
    }

    /// The committed sub-DAG of leader vertex `leader`: its causal history not yet
    /// committed, down to `leader round - retention`, in (round, author, digest) order.
    fn order(&mut self, dag: &mut Dag, leader: Digest) -> CommittedSubDag {
        let leader_vertex = dag
            .get(&leader)
            .cloned()
            .expect("a decided leader vertex is held by the DAG");
        let lc = leader_vertex.content();
        let lower = lc.round.saturating_sub(self.retention);
        let mut seen = HashSet::new();
        let mut stack = vec![leader_vertex.clone()];
        let mut vertices: Vec<Arc<Vertex>> = Vec::new();
        while let Some(v) = stack.pop() {
            let d = v.digest();
            if v.content().round < lower || dag.is_committed(&d) || !seen.insert(d) {
                continue;
            }
            for p in &v.content().parents {
                if let Some(pv) = dag.get(&p.digest) {
                    stack.push(pv.clone());
                }
            }
            vertices.push(v);
        }
        vertices.sort_by_key(|v| (v.content().round, v.content().author, v.digest()));
        for v in &vertices {
            dag.mark_committed(&v.digest());
        }
        let mut parent_times: Vec<TimeMs> = lc
            .parents
            .iter()
            .filter_map(|p| dag.get(&p.digest).map(|pv| pv.content().timestamp_ms))
            .collect();
        parent_times.sort_unstable();
        let median = parent_times
            .get(parent_times.len() / 2)
            .copied()
            .unwrap_or(0);
        let timestamp_ms = median
            .max(self.state.last_commit_ts)
            .max(self.genesis_time_ms);
        let subdag = CommittedSubDag {
            sequence: self.state.next_sequence,
            leader: leader_vertex.reference(),
            leader_round: lc.round,
            timestamp_ms,
            vertices,
        };
        self.state.next_sequence += 1;
        self.state.last_commit_ts = timestamp_ms;
        subdag
    }
}

/// The digest of `vertex`'s parent authored by `author`, if any (parents are sorted by
/// author, at most one each).
fn parent_of(vertex: &Vertex, author: ValidatorIndex) -> Option<Digest> {
    let parents = &vertex.content().parents;
    parents
        .binary_search_by_key(&author, |p| p.author)
        .ok()
        .map(|i| parents[i].digest)
}

/// Whether the vertex `d` (of the round after the slot) votes for any vertex of the
/// slot led by `leader`.
fn votes_for_slot(dag: &Dag, d: &Digest, leader: ValidatorIndex) -> bool {
    dag.get(d).is_some_and(|v| parent_of(v, leader).is_some())
}

/// The vertices of round `round` in the causal history of `from`.
fn history_at_round(dag: &Dag, from: &Digest, round: Round) -> Vec<Digest> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![*from];
    while let Some(d) = stack.pop() {
        if !seen.insert(d) {
            continue;
        }
        let Some(v) = dag.get(&d) else { continue };
        let r = v.content().round;
        if r == round {
            found.push(d);
        } else if r > round {
            stack.extend(v.content().parents.iter().map(|p| p.digest));
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests;
