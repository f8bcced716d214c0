//! The [`Consensus`] trait every engine implements, and its inputs and outputs.
//!
//! An engine is a deterministic state machine in the sans-I/O style of quinn-proto
//! and Sui's `consensus/core`: the caller feeds it [`Input`]s together with the
//! current time, and carries out the [`Output`]s it returns (send bytes, arm a timer,
//! hand a committed sub-DAG to the block sealer). The engine never reads a clock,
//! never draws unseeded randomness and never touches a socket; the only side effect
//! it performs itself is writing its own persisted state through a
//! [`crate::store::ConsensusStore`], *before* it returns outputs that depend on it
//! (a vertex is persisted before it is broadcast, so a restarted node can never sign
//! a second vertex for a round it already proposed).
//!
//! Why time is a parameter of [`Consensus::handle`] rather than read inside: the same
//! engine then runs unchanged under the simulator's virtual clock and under the node's
//! tokio clock, and a recorded input trace replays to the same outputs.
//!
//! Engine-specific protocol traffic (the Avalanche rule's queries and signed
//! responses, [`crate::avalanche::AvalancheMessage`]) travels as
//! [`Consensus::Message`] through [`Input::Engine`] and [`Output::SendEngine`]; under
//! DAG-BFT's commit rule the engine sends none and counts any it receives as rejected.

use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::types::{SignedTransaction, ValidatorIndex, Vertex, VertexRef};

use crate::evidence::Evidence;

/// A round number of the DAG.
pub type Round = u64;
/// Milliseconds on the caller's clock (unix time in a node, virtual time in the simulator).
pub type TimeMs = u64;

/// The time of one input, on the caller's two clocks.
///
/// Timers and delays run on `monotonic_ms`, which never goes backwards (an engine
/// asserts it); the timestamps of our vertices come from `unix_ms` (made
/// non-decreasing per author by the engine), because commit timestamps, and through
/// them block slots, are compared with the genesis time. A simulator with one virtual
/// clock passes the same value for both (`Now::from(ms)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub monotonic_ms: TimeMs,
    pub unix_ms: TimeMs,
}

impl From<TimeMs> for Now {
    fn from(ms: TimeMs) -> Self {
        Self {
            monotonic_ms: ms,
            unix_ms: ms,
        }
    }
}

/// A deterministic consensus state machine.
pub trait Consensus {
    /// Engine-specific peer messages besides vertices and sync traffic.
    type Message;

    /// Processes one input at time `now` and returns what the caller must do.
    ///
    /// Calls must be made with a non-decreasing monotonic time; the engine never blocks.
    fn handle(
        &mut self,
        now: impl Into<Now>,
        input: Input<Self::Message>,
    ) -> Vec<Output<Self::Message>>;
}

/// Something that happened outside the engine.
#[derive(Clone, Debug)]
pub enum Input<M> {
    /// The node (re)started: propose the first vertex or re-announce the last one.
    Start,
    /// A peer sent a vertex (broadcast or retransmission).
    VertexReceived {
        from: ValidatorIndex,
        vertex: Arc<Vertex>,
    },
    /// Several vertices that arrived together (a burst of network events), handled
    /// as one step: their store writes become one batch (one fsync), and the caller
    /// can verify their signatures together, off its event loop, beforehand.
    VerticesReceived {
        vertices: Vec<(ValidatorIndex, Arc<Vertex>)>,
    },
    /// A peer asks for vertices it is missing.
    SyncRequest {
        from: ValidatorIndex,
        request: SyncRequest,
    },
    /// A peer answered one of our sync requests.
    SyncResponse {
        from: ValidatorIndex,
        vertices: Vec<Arc<Vertex>>,
    },
    /// A peer passed on evidence of a validator's misbehaviour (checked here:
    /// forged evidence is rejected like any invalid content).
    EvidenceReceived {
        from: ValidatorIndex,
        evidence: crate::evidence::Evidence,
    },
    /// The mempool has transactions for our next vertex.
    BatchReady {
        transactions: Vec<SignedTransaction>,
    },
    /// The timer armed by the latest [`Output::SetTimer`] expired.
    TimeoutFired,
    /// The consumer of [`Output::Committed`] has made every sub-DAG up to sequence
    /// `through` durable in its own store (blocks written). The engine may forget
    /// those commits; until then it keeps them, with their vertices, and replays them
    /// after a restart.
    Executed { through: u64 },
    /// An engine-specific message from a peer.
    Engine { from: ValidatorIndex, message: M },
}

/// A request for missing vertices.
///
/// The `wanted` vertices (round and digest: the round lets the peer find vertices it
/// evicted from memory but still keeps in its store) are always answered if the peer
/// holds them; besides them the peer adds their ancestors of rounds above
/// `have_through_round`, so a node that fell behind (partition, restart) catches up in
/// a few round trips instead of one per round.
///
/// The request names the `epoch` its vertices belong to (every epoch's DAG starts at
/// round 0 again). A request naming no vertex asks for the *tips* of an epoch that
/// ended at the peer: the vertices of its last rounds there, with their ancestors; a
/// validator still finishing that epoch learns from them what to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub epoch: u64,
    pub wanted: Vec<(Round, Digest)>,
    pub have_through_round: Round,
}

/// Something the caller must do on the engine's behalf.
#[derive(Clone, Debug)]
pub enum Output<M> {
    /// Send our new (or re-announced) vertex to every peer.
    Broadcast(Arc<Vertex>),
    /// Answer a sync request.
    SendVertices {
        to: ValidatorIndex,
        vertices: Vec<Arc<Vertex>>,
    },
    /// Ask `to` for vertices we are missing.
    RequestVertices {
        to: ValidatorIndex,
        request: SyncRequest,
    },
    /// The next committed sub-DAG, in sequence order. After a restart the engine
    /// first replays, on [`Input::Start`], every commit not yet acknowledged with
    /// [`Input::Executed`]; a consumer therefore sees a sequence number again at most
    /// for commits it had not acknowledged, and must skip those it already applied.
    Committed(Commit),
    /// A leader slot was decided as skipped (no leader vertex will ever be committed
    /// for it); informative, for telemetry.
    Skipped {
        round: Round,
        leader: ValidatorIndex,
    },
    /// Provable misbehaviour of a validator.
    Misbehaviour(Evidence),
    /// A vertex was refused; informative (the sender may be faulty or merely late).
    Rejected {
        from: ValidatorIndex,
        reason: crate::engine::RejectReason,
    },
    /// Call [`Consensus::handle`] with [`Input::TimeoutFired`] at `at_ms` (replaces any
    /// timer armed before).
    SetTimer { at_ms: TimeMs },
    /// Send an engine-specific message to one peer, or to all with `to: None`.
    SendEngine {
        to: Option<ValidatorIndex>,
        message: M,
    },
    /// Our own vertices, garbage-collected without ever being committed: a vertex that
    /// arrived too late for every vertex of the next round, so no commit can reach it.
    /// Their transactions were admitted and must go back to the mempool, or they would
    /// be lost without a word to the clients that sent them.
    Orphaned(Vec<Arc<Vertex>>),
    /// The engine cannot continue safely (its store refused a write); it ignores
    /// every further input. The node must restart it from its store.
    Halted { reason: String },
}

/// A committed leader and the part of its causal history not committed before, in
/// the deterministic total order every honest node outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedSubDag {
    /// Position of this sub-DAG in the committed sequence (0, 1, 2, …).
    pub sequence: u64,
    pub leader: VertexRef,
    pub leader_round: Round,
    /// Commit timestamp: the median timestamp of the leader's parents, made
    /// non-decreasing along the sequence (see [`crate::commit`]). The block sealer cuts
    /// slots from it, so every node cuts the same blocks.
    pub timestamp_ms: u64,
    /// Newly committed vertices, ordered by (round, author, digest); the leader is last
    /// in its round.
    pub vertices: Vec<Arc<Vertex>>,
}

impl CommittedSubDag {
    /// A digest of the sub-DAG's identity (sequence, leader and vertex order), used to
    /// compare committed sequences across nodes.
    pub fn digest(&self) -> Digest {
        let mut h = blake3::Hasher::new_derive_key("dualchain 2026-11 committed sub-dag v1");
        h.update(&self.sequence.to_le_bytes());
        h.update(self.leader.digest.as_bytes());
        h.update(&self.timestamp_ms.to_le_bytes());
        for v in &self.vertices {
            h.update(v.digest().as_bytes());
        }
        Digest(*h.finalize().as_bytes())
    }
}

/// A commit as seen by one node: the deterministic sub-DAG plus local facts.
#[derive(Clone, Debug)]
pub struct Commit {
    pub subdag: CommittedSubDag,
    /// The highest DAG round this node held when it decided the commit; commit latency
    /// in rounds of a vertex is `decided_at_round - vertex round`. Local, not agreed.
    pub decided_at_round: Round,
}
