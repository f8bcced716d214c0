//! Serving peers' vertex sync requests off the consensus task, each peer within
//! limits.
//!
//! A sync answer can take thousands of store reads and 16 MiB of encoding; answered
//! on the driver task (as they were), a member asking in a loop stalls our own
//! consensus. Here each answer is computed from the consensus store alone (every
//! vertex the engine accepted is written there before its effects leave the engine)
//! on a blocking thread, or inline under [`Placement::Inline`] so a simulation stays
//! deterministic. Each peer has at most [`MAX_IN_FLIGHT_PER_PEER`] answers in the
//! making, [`REQUESTS_PER_SECOND`] requests (burst [`REQUEST_BURST`]) and
//! [`BYTES_PER_SECOND`] bytes of answers (burst [`BYTE_BURST`]); a request beyond
//! any of these is answered empty at once (the peer asks someone else, and does not
//! wait for a timeout). An honest engine asks one peer at most once per
//! `min_sync_interval_ms` (50 ms: 20 a second), half the allowance here.
//!
//! A request names its epoch and is answered from that epoch's store: the node keeps
//! the previous epoch's vertices (until the next epoch begins), so a peer that was
//! away when an epoch ended can still finish it. A request naming no vertex asks for
//! the ended epoch's tips (recorded when it ended) and their ancestors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use dualchain_consensus::sync::{SyncLimits, answer_sync, stored_vertex};
use dualchain_consensus::wire::NetMessage;
use dualchain_consensus::{KvConsensusStore, SyncRequest};
use dualchain_core::encoding::Canonical;
use dualchain_net::{InboundRequest, PeerId};
use dualchain_storage::KvEngine;

use crate::seams::Placement;

/// Answers in the making per peer.
pub const MAX_IN_FLIGHT_PER_PEER: usize = 2;
/// Sustained requests per second per peer.
pub const REQUESTS_PER_SECOND: f64 = 40.0;
pub const REQUEST_BURST: f64 = 80.0;
/// Sustained answer bytes per second per peer.
pub const BYTES_PER_SECOND: f64 = 32.0 * 1024.0 * 1024.0;
pub const BYTE_BURST: f64 = 64.0 * 1024.0 * 1024.0;
/// Bytes of vertices in one answer (a prefix, parents before children: the peer
/// asks again for the rest).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One peer's allowance: two token buckets and its answers in the making (the
/// block server's peers have one of these too).
pub(crate) struct Allowance {
    requests: f64,
    bytes: f64,
    refilled_ms: u64,
    in_flight: Arc<AtomicUsize>,
    /// Bytes answered since the last refill (charged when the answer is made).
    served_bytes: Arc<AtomicU64>,
}

impl Allowance {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            requests: REQUEST_BURST,
            bytes: BYTE_BURST,
            refilled_ms: now_ms,
            in_flight: Arc::new(AtomicUsize::new(0)),
            served_bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Refills both buckets for the time since the last refill and charges what
    /// was served since; `true` if one more request may be answered now.
    pub(crate) fn admit(&mut self, now_ms: u64) -> bool {
        let seconds = now_ms.saturating_sub(self.refilled_ms) as f64 / 1000.0;
        self.refilled_ms = self.refilled_ms.max(now_ms);
        self.requests = (self.requests + seconds * REQUESTS_PER_SECOND).min(REQUEST_BURST);
        let served = self.served_bytes.swap(0, Ordering::Relaxed) as f64;
        self.bytes = (self.bytes + seconds * BYTES_PER_SECOND - served).min(BYTE_BURST);
        if self.requests < 1.0
            || self.bytes <= 0.0
            || self.in_flight.load(Ordering::Acquire) >= MAX_IN_FLIGHT_PER_PEER
        {
            return false;
        }
        self.requests -= 1.0;
        true
    }

    /// Makes an answer where `placement` wants it (off the caller's task, or inline
    /// in a simulation), counted in flight while it is made; `answer` returns the
    /// bytes it sent, charged at the next admission.
    pub(crate) fn answer(
        &self,
        placement: Placement,
        answer: impl FnOnce() -> usize + Send + 'static,
    ) {
        let (in_flight, served_bytes) = (self.in_flight.clone(), self.served_bytes.clone());
        in_flight.fetch_add(1, Ordering::AcqRel);
        let work = move || {
            served_bytes.fetch_add(answer() as u64, Ordering::Relaxed);
            in_flight.fetch_sub(1, Ordering::AcqRel);
        };
        match placement {
            Placement::Inline => work(),
            Placement::Threads => {
                tokio::task::spawn_blocking(work);
            }
        }
    }
}

/// The allowance of peer `from` if it admits one more request at `now_ms` (a peer
/// seen for the first time starts with a full one). Every request is charged, one
/// that is then declined for another reason too.
pub(crate) fn admitted(
    peers: &mut HashMap<PeerId, Allowance>,
    from: PeerId,
    now_ms: u64,
) -> Option<&Allowance> {
    let allowance = peers.entry(from).or_insert_with(|| Allowance::new(now_ms));
    allowance.admit(now_ms).then_some(&*allowance)
}

/// Answers sync requests of the peers of one chain.
pub struct SyncServer<E> {
    engine: E,
    limits: SyncLimits,
    placement: Placement,
    /// By identity, not committee index: indexes change with the set, and a member of
    /// the previous epoch (finishing it late) asks too.
    peers: HashMap<PeerId, Allowance>,
}

/// What became of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Answered (or being answered, off this task).
    Answering,
    /// The peer was over a limit: answered empty.
    Declined,
}

impl<E: KvEngine + Clone + 'static> SyncServer<E> {
    /// A server reading `engine` (the chain's database, shared with the engine's
    /// store), answering with at most `max_vertices` vertices (the engine's
    /// `max_sync_vertices`) and [`MAX_ANSWER_BYTES`].
    pub fn new(engine: E, max_vertices: usize, placement: Placement) -> Self {
        Self {
            engine,
            limits: SyncLimits {
                max_vertices,
                max_bytes: MAX_ANSWER_BYTES,
            },
            placement,
            peers: HashMap::new(),
        }
    }

    /// Answers `request` from peer `from` at monotonic time `now_ms`.
    pub fn serve(
        &mut self,
        from: PeerId,
        request: SyncRequest,
        inbound: InboundRequest,
        now_ms: u64,
    ) -> Served {
        let Some(allowance) = admitted(&mut self.peers, from, now_ms) else {
            respond(inbound, Vec::new());
            return Served::Declined;
        };
        let store = KvConsensusStore::new(self.engine.clone(), request.epoch);
        let limits = self.limits;
        allowance.answer(self.placement, move || {
            let mut request = request;
            if request.wanted.is_empty() {
                // Tips of an ended epoch (none while it runs here, or if unreadable).
                request.wanted = store.tips().unwrap_or_default();
                tracing::debug!(
                    epoch = request.epoch,
                    tips = request.wanted.len(),
                    "tips of an ended epoch asked"
                );
            }
            let vertices = answer_sync(&request, limits, |round, digest| {
                stored_vertex(&store, round, digest)
            });
            respond(inbound, vertices)
        });
        Served::Answering
    }
}

/// Sends `vertices` as the answer; returns its size. A peer that stopped waiting is
/// not an error.
fn respond(inbound: InboundRequest, vertices: Vec<Arc<dualchain_core::types::Vertex>>) -> usize {
    let payload = NetMessage::SyncResponse(vertices).to_canonical_bytes();
    let len = payload.len();
    let _ = inbound.respond(Bytes::from(payload));
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_consensus::ConsensusStore;
    use dualchain_consensus::keys::sim_validator_key;
    use dualchain_consensus::store::StoreChanges;
    use dualchain_core::types::{ChainId, UnsignedVertex, Vertex, VertexRef};
    use dualchain_net::{Message, MessageKind, PeerId};
    use dualchain_storage::MemoryEngine;
    use tokio::sync::oneshot;

    /// The network this test signs for.
    const NET: dualchain_core::crypto::NetworkId =
        dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

    /// Rounds `0..rounds` of 4 validators, each vertex referencing the whole round
    /// before.
    fn full_rounds(rounds: u64) -> Vec<Vec<Arc<Vertex>>> {
        let mut dag: Vec<Vec<Arc<Vertex>>> = Vec::new();
        for round in 0..rounds {
            let parents: Vec<VertexRef> = dag.last().map_or(Vec::new(), |prev| {
                prev.iter().map(|v| v.reference()).collect()
            });
            let vertices = (0..4u16)
                .map(|author| {
                    Arc::new(
                        UnsignedVertex {
                            chain: ChainId::Delta,
                            epoch: 0,
                            round,
                            author,
                            parents: parents.clone(),
                            transactions: vec![],
                            timestamp_ms: round,
                        }
                        .sign(&sim_validator_key(usize::from(author)), NET),
                    )
                })
                .collect();
            dag.push(vertices);
        }
        dag
    }

    /// A request from a peer, and where its answer arrives.
    fn inbound() -> (InboundRequest, oneshot::Receiver<Bytes>) {
        let (tx, rx) = oneshot::channel();
        let from = PeerId::of(sim_validator_key(1).public());
        let message = Message::new(ChainId::Delta, MessageKind::FetchVertices, Vec::new());
        (InboundRequest::new(from, message, tx), rx)
    }

    fn answered(mut rx: oneshot::Receiver<Bytes>) -> Vec<Arc<Vertex>> {
        let bytes = rx.try_recv().expect("answered at once (inline)");
        match NetMessage::from_canonical_bytes(&bytes).unwrap() {
            NetMessage::SyncResponse(vertices) => vertices,
            other => panic!("not a sync response: {other:?}"),
        }
    }

    #[test]
    fn answers_from_the_store_and_declines_a_peer_over_its_rate_with_an_empty_answer() {
        let dag = full_rounds(3);
        let db = Arc::new(MemoryEngine::new());
        let mut store = KvConsensusStore::new(db.clone(), 0);
        let changes = StoreChanges {
            vertices: dag.concat(),
            ..StoreChanges::default()
        };
        store.apply(&changes).unwrap();
        let mut server = SyncServer::new(db, 2_000, Placement::Inline);
        let tip = dag[2][3].clone();
        let request = SyncRequest {
            epoch: 0,
            wanted: vec![(2, tip.digest())],
            have_through_round: 0,
        };
        let mut served = 0;
        for _ in 0..REQUEST_BURST as usize {
            let (req, rx) = inbound();
            assert_eq!(
                server.serve(PeerId::from_bytes([1; 32]), request.clone(), req, 0),
                Served::Answering
            );
            let vertices = answered(rx);
            assert_eq!(vertices[0], tip);
            assert_eq!(vertices.len(), 1 + 4, "the tip and round 1");
            served += 1;
        }
        assert_eq!(served, REQUEST_BURST as usize);
        let (req, rx) = inbound();
        assert_eq!(
            server.serve(PeerId::from_bytes([1; 32]), request.clone(), req, 0),
            Served::Declined
        );
        assert!(answered(rx).is_empty());
        // Another peer has its own allowance.
        let (req, rx) = inbound();
        assert_eq!(
            server.serve(PeerId::from_bytes([2; 32]), request, req, 0),
            Served::Answering
        );
        assert_eq!(answered(rx).len(), 5);
    }

    #[test]
    fn requests_beyond_the_burst_wait_for_the_rate() {
        let mut a = Allowance::new(0);
        let admitted = (0..100).filter(|_| a.admit(0)).count();
        assert_eq!(admitted, REQUEST_BURST as usize);
        assert!(!a.admit(10), "0.4 of a request refilled in 10 ms");
        assert!(a.admit(25), "one request refilled in 25 ms");
    }

    #[test]
    fn answered_bytes_and_answers_in_the_making_bind_too() {
        let mut a = Allowance::new(0);
        a.served_bytes
            .store(BYTE_BURST as u64 + 1, Ordering::Relaxed);
        assert!(!a.admit(0), "over the byte burst");
        // A second later the rate has paid the excess back.
        assert!(a.admit(1_000));
        a.in_flight.store(MAX_IN_FLIGHT_PER_PEER, Ordering::Relaxed);
        assert!(!a.admit(2_000), "too many answers in the making");
        a.in_flight.store(0, Ordering::Relaxed);
        assert!(a.admit(2_000));
    }
}
