//! Byzantine behaviours of simulated nodes.
//!
//! A Byzantine node runs the real engine (so it keeps producing well-formed vertices
//! that advance the DAG) but its outgoing vertex broadcasts are rewritten:
//! - [`Behaviour::Equivocate`]: every round, half of the peers get the real vertex and
//!   the other half a second, differently-timestamped vertex for the same round, both
//!   validly signed;
//! - [`Behaviour::Withhold`]: the vertex goes to one peer only (rotating), and sync
//!   requests are never answered;
//! - [`Behaviour::InvalidSignatures`]: every peer first gets a copy with a corrupted
//!   signature, and only half of them the valid vertex;
//! - [`Behaviour::Garbage`]: besides the real vertex every peer gets random bytes, a
//!   truncated vertex, and a vertex claiming another author (signed with the wrong key);
//! - [`Behaviour::OrphanFlood`]: besides the real vertex every peer gets
//!   [`ORPHANS_PER_ROUND`] validly signed vertices of the next few rounds whose parents
//!   do not exist (the pending-buffer attack: they can never attach).
//!
//! Under the Avalanche ordering rule the same behaviours also attack the sampling
//! ([`Behaviour::engine_plan`]): `Equivocate` answers queries with *wrong votes*,
//! validly signed (each slot gets the next slot's vertex, commits not followed by one
//! become skips, skips become a vertex nobody made); `Withhold` never answers; `InvalidSignatures` answers with
//! a corrupted signature; `Garbage` sends random bytes and a response claiming another
//! voter (a sampling-bias attempt: posing as a peer the querier sampled); `OrphanFlood`
//! floods every peer with queries.
//!
//! One behaviour is not in the rotation ([`Behaviour::ALL`]) and is chosen explicitly
//! ([`super::SimConfig::behaviour`]): [`Behaviour::LieToOne`] is honest in everything
//! but its answers to one querier (the next validator), which get `Equivocate`'s wrong
//! votes — a liar that keeps its standing with everyone else, so every other node
//! learns of it only from the victim's evidence.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{UnsignedVertex, ValidatorIndex, Vertex, VertexRef};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::avalanche::{AvalancheMessage, Preference, Response};
use crate::consensus::Round;
use crate::wire::NetMessage;

/// Orphans an [`Behaviour::OrphanFlood`] node sends each peer per round.
pub const ORPHANS_PER_ROUND: usize = 24;

/// What a Byzantine node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Behaviour {
    Equivocate,
    Withhold,
    InvalidSignatures,
    Garbage,
    OrphanFlood,
    /// Honest but for wrong votes to one querier (not in [`Behaviour::ALL`]).
    LieToOne,
}

impl Behaviour {
    pub const ALL: [Behaviour; 5] = [
        Behaviour::Equivocate,
        Behaviour::Withhold,
        Behaviour::InvalidSignatures,
        Behaviour::Garbage,
        Behaviour::OrphanFlood,
    ];

    /// What validator `index` does in the run of `seed` whose Byzantine validators are
    /// `byzantine` (in choice order): the k-th of them takes the behaviour `seed + k`,
    /// so consecutive seeds rotate through every behaviour.
    pub fn of(byzantine: &[ValidatorIndex], index: ValidatorIndex, seed: u64) -> Option<Self> {
        let k = byzantine.iter().position(|b| *b == index)?;
        Some(Self::ALL[(seed as usize + k) % Self::ALL.len()])
    }
}

/// Per-node memory of a Byzantine behaviour.
#[derive(Default)]
pub struct State {
    /// The conflicting vertex of each recent round (re-sent identically on resends).
    twins: BTreeMap<Round, Arc<Vertex>>,
}

/// Outgoing (peer, bytes) pairs.
pub type Plan = Vec<(usize, Arc<[u8]>)>;

fn encode(v: &Arc<Vertex>) -> Arc<[u8]> {
    NetMessage::Vertex(v.clone()).to_canonical_bytes().into()
}

/// An honest broadcast: the same bytes to every peer.
pub fn honest_plan(n: usize, from: usize, vertex: &Arc<Vertex>) -> Plan {
    let bytes = encode(vertex);
    (0..n)
        .filter(|to| *to != from)
        .map(|to| (to, bytes.clone()))
        .collect()
}

impl Behaviour {
    /// The messages a Byzantine node sends instead of broadcasting `vertex`, signing
    /// what it forges with its own key for `network`.
    pub fn plan(
        self,
        state: &mut State,
        rng: &mut ChaCha8Rng,
        (key, network): (&ValidatorKeypair, NetworkId),
        n: usize,
        from: usize,
        vertex: &Arc<Vertex>,
    ) -> Plan {
        let honest = encode(vertex);
        let peers: Vec<usize> = (0..n).filter(|to| *to != from).collect();
        if peers.is_empty() {
            return Vec::new();
        }
        let round = vertex.content().round;
        match self {
            Behaviour::Equivocate => {
                let twin = state
                    .twins
                    .entry(round)
                    .or_insert_with(|| {
                        let c = vertex.content();
                        Arc::new(
                            UnsignedVertex {
                                timestamp_ms: c.timestamp_ms + 1,
                                transactions: Vec::new(),
                                ..c.clone()
                            }
                            .sign(key, network),
                        )
                    })
                    .clone();
                while state.twins.len() > 8 {
                    state.twins.pop_first();
                }
                let twin = encode(&twin);
                peers
                    .iter()
                    .enumerate()
                    .map(|(k, to)| {
                        (
                            *to,
                            if k % 2 == 0 {
                                honest.clone()
                            } else {
                                twin.clone()
                            },
                        )
                    })
                    .collect()
            }
            Behaviour::Withhold => vec![(peers[round as usize % peers.len()], honest)],
            Behaviour::LieToOne => peers.iter().map(|to| (*to, honest.clone())).collect(),
            Behaviour::InvalidSignatures => {
                let mut bad = honest.to_vec();
                let last = bad.len() - 1;
                bad[last] ^= 0x5a;
                bad[last - 100] ^= 0x01;
                let bad: Arc<[u8]> = bad.into();
                let mut plan: Plan = peers.iter().map(|to| (*to, bad.clone())).collect();
                plan.extend(peers.iter().step_by(2).map(|to| (*to, honest.clone())));
                plan
            }
            Behaviour::Garbage => {
                let c = vertex.content();
                let forged = Arc::new(
                    UnsignedVertex {
                        author: ((from + 1) % n) as ValidatorIndex,
                        ..c.clone()
                    }
                    .sign(key, network),
                );
                let forged = encode(&forged);
                let truncated: Arc<[u8]> = honest[..honest.len() / 2].to_vec().into();
                let mut plan = Vec::new();
                for to in peers {
                    let len = rng.random_range(0..512);
                    let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    plan.push((to, Arc::from(junk)));
                    plan.push((to, truncated.clone()));
                    plan.push((to, forged.clone()));
                    plan.push((to, honest.clone()));
                }
                plan
            }
            Behaviour::OrphanFlood => {
                let c = vertex.content();
                let mut plan: Plan = peers.iter().map(|to| (*to, honest.clone())).collect();
                for k in 0..ORPHANS_PER_ROUND {
                    // Parents of a quorum of authors (so the vertex verifies), with
                    // digests nobody ever produced.
                    let parents = (0..n as ValidatorIndex)
                        .map(|author| VertexRef {
                            author,
                            digest: Digest(rng.random()),
                        })
                        .collect();
                    let orphan = Arc::new(
                        UnsignedVertex {
                            round: c.round + 1 + (k as Round % 8),
                            parents,
                            transactions: Vec::new(),
                            ..c.clone()
                        }
                        .sign(key, network),
                    );
                    let bytes = encode(&orphan);
                    plan.extend(peers.iter().map(|to| (*to, bytes.clone())));
                }
                plan
            }
        }
    }

    /// The messages a Byzantine node sends instead of engine message `message` to
    /// `to` (queries and responses of the Avalanche rule).
    pub fn engine_plan(
        self,
        rng: &mut ChaCha8Rng,
        (key, network): (&ValidatorKeypair, NetworkId),
        n: usize,
        from: usize,
        to: usize,
        message: AvalancheMessage,
    ) -> Plan {
        let encode = |m: AvalancheMessage| -> Arc<[u8]> {
            NetMessage::Engine(m).to_canonical_bytes().into()
        };
        match (self, message) {
            (Behaviour::Withhold, AvalancheMessage::Response(_)) => Vec::new(),
            (Behaviour::Equivocate, AvalancheMessage::Response(r)) => {
                let forged = wrong_votes(rng, &r, (key, network));
                vec![(to, encode(AvalancheMessage::Response(forged)))]
            }
            (Behaviour::LieToOne, AvalancheMessage::Response(r)) if to == (from + 1) % n => {
                let forged = wrong_votes(rng, &r, (key, network));
                vec![(to, encode(AvalancheMessage::Response(forged)))]
            }
            (Behaviour::InvalidSignatures, AvalancheMessage::Response(r)) => {
                let mut bytes = encode(AvalancheMessage::Response(r)).to_vec();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x5a;
                vec![(to, bytes.into())]
            }
            (Behaviour::Garbage, AvalancheMessage::Response(mut r)) => {
                let len = rng.random_range(0..256);
                let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                r.votes.voter = ((from + 1) % n) as ValidatorIndex;
                vec![
                    (to, junk.into()),
                    (to, encode(AvalancheMessage::Response(r))),
                ]
            }
            (Behaviour::OrphanFlood, AvalancheMessage::Query(q)) => (0..n)
                .filter(|p| *p != from)
                .flat_map(|p| std::iter::repeat_n((p, encode(AvalancheMessage::Query(q))), 4))
                .collect(),
            (_, m) => vec![(to, encode(m))],
        }
    }
}

/// `r` with every vote moved one slot down, re-signed: a commit becomes a vote for a
/// real vertex of the wrong round (provably wrong to anyone holding it), a slot whose
/// successor had none is voted skipped, and a skip becomes a vertex nobody made.
fn wrong_votes(
    rng: &mut ChaCha8Rng,
    r: &Response,
    (key, network): (&ValidatorKeypair, NetworkId),
) -> Response {
    let prefs = &r.votes.preferences;
    let wrong = (0..prefs.len())
        .map(|i| match prefs.get(i + 1) {
            Some(Preference::Commit(d)) => Preference::Commit(*d),
            _ if matches!(prefs[i], Preference::Commit(_)) => Preference::Skip,
            _ => Preference::Commit(Digest(rng.random())),
        })
        .collect();
    let query = crate::avalanche::Query {
        epoch: r.votes.epoch,
        id: r.votes.id,
        first_slot: r.votes.first_slot,
        count: r.votes.preferences.len() as u16,
    };
    Response::sign(&query, r.votes.querier, r.votes.voter, wrong, key, network)
}
