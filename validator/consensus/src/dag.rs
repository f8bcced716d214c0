//! The DAG store: validated vertices by digest and by (round, author).
//!
//! Invariants (every method keeps them):
//! - a vertex is present only if each of its parents is present, or lies below the
//!   garbage-collection round (`gc_round`); parents are always of the previous round,
//!   so the DAG is acyclic by construction — an edge always points one round down;
//! - a (round, author) slot holds one digest per distinct vertex, in arrival order;
//!   more than one means the author equivocated (the engine turns that into evidence);
//! - nothing below `gc_round` is held; rounds are dropped whole.
//!
//! Ownership: the engine owns its DAG and is its only writer; vertices are
//! `Arc<Vertex>`, so readers (telemetry, sync answers, the sealer) share them without
//! copying. A snapshot ([`Dag::snapshot`]) exports the structure for replay and
//! telemetry (depth, width).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::types::{ValidatorIndex, ValidatorSet, Vertex};
use serde::Serialize;

use crate::consensus::Round;

/// Why a vertex's parents are unacceptable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParentError {
    #[error("parent {digest} is a vertex of round {found}, expected round {expected}")]
    WrongRound {
        digest: Digest,
        found: Round,
        expected: Round,
    },
    #[error("parent {digest} is authored by {found}, the reference names {claimed}")]
    WrongAuthor {
        digest: Digest,
        found: ValidatorIndex,
        claimed: ValidatorIndex,
    },
}

/// What [`Dag::insert`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
    /// Inserted, and the author already had `existing` in this round.
    Equivocation {
        existing: Digest,
    },
}

/// A vertex [`Dag::gc_below`] dropped.
#[derive(Clone, Debug)]
pub struct Collected {
    pub round: Round,
    pub vertex: Arc<Vertex>,
    /// Whether a committed sub-DAG held it.
    pub committed: bool,
}

struct Entry {
    vertex: Arc<Vertex>,
    committed: bool,
    encoded_len: usize,
}

/// Hashes a digest by its first eight bytes. Keys of the DAG's maps are BLAKE3
/// digests of verified vertices, already uniformly distributed, so re-hashing them
/// with SipHash (a fifth of intake time at 100 validators) buys nothing.
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Digests hash as one 32-byte write; fold anything else in 8-byte words.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

/// A hash map keyed by digests (see [`DigestHasher`]).
pub type DigestMap<K, V> = HashMap<K, V, BuildHasherDefault<DigestHasher>>;

/// Slots of one round: author → digests of that author's vertices in the round.
type RoundSlots = BTreeMap<ValidatorIndex, Vec<Digest>>;

/// The local DAG of one chain.
pub struct Dag {
    validators: Arc<ValidatorSet>,
    by_digest: DigestMap<Digest, Entry>,
    rounds: BTreeMap<Round, RoundSlots>,
    gc_round: Round,
    encoded_bytes: usize,
}

impl Dag {
    pub fn new(validators: Arc<ValidatorSet>) -> Self {
        Self {
            validators,
            by_digest: DigestMap::default(),
            rounds: BTreeMap::new(),
            gc_round: 0,
            encoded_bytes: 0,
        }
    }

    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    pub fn get(&self, digest: &Digest) -> Option<&Arc<Vertex>> {
        self.by_digest.get(digest).map(|e| &e.vertex)
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.by_digest.contains_key(digest)
    }

    /// Vertices held.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Canonical encoded bytes of the vertices held (the DAG's memory footprint is
    /// this plus small per-vertex indexes).
    pub fn encoded_bytes(&self) -> usize {
        self.encoded_bytes
    }

    /// Rounds below this are garbage-collected.
    pub fn gc_round(&self) -> Round {
        self.gc_round
    }

    pub fn highest_round(&self) -> Option<Round> {
        self.rounds.keys().next_back().copied()
    }

    pub fn lowest_round(&self) -> Option<Round> {
        self.rounds.keys().next().copied()
    }

    /// The digests of `author`'s vertices in `round` (more than one: equivocation).
    pub fn slot(&self, round: Round, author: ValidatorIndex) -> &[Digest] {
        self.rounds
            .get(&round)
            .and_then(|r| r.get(&author))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The slots of `round` in author order.
    pub fn round(&self, round: Round) -> impl Iterator<Item = (ValidatorIndex, &[Digest])> {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(|r| r.iter().map(|(a, d)| (*a, d.as_slice())))
    }

    /// Stake of the distinct authors with a vertex in `round`, not counting `excluded`.
    pub fn round_stake(&self, round: Round, excluded: impl Fn(ValidatorIndex) -> bool) -> u64 {
        self.validators
            .stake_of(self.round(round).map(|(a, _)| a).filter(|a| !excluded(*a)))
    }

    /// Checks `vertex`'s parents against the DAG: returns the parents not yet held
    /// (those below the GC round count as held), or an error if a held parent does not
    /// match its reference.
    pub fn missing_parents(&self, vertex: &Vertex) -> Result<Vec<Digest>, ParentError> {
        let c = vertex.content();
        let mut missing = Vec::new();
        if c.round == 0 {
            return Ok(missing);
        }
        let expected = c.round - 1;
        for p in &c.parents {
            match self.by_digest.get(&p.digest) {
                Some(e) => {
                    let pc = e.vertex.content();
                    if pc.round != expected {
                        return Err(ParentError::WrongRound {
                            digest: p.digest,
                            found: pc.round,
                            expected,
                        });
                    }
                    if pc.author != p.author {
                        return Err(ParentError::WrongAuthor {
                            digest: p.digest,
                            found: pc.author,
                            claimed: p.author,
                        });
                    }
                }
                None if expected < self.gc_round => {}
                None => missing.push(p.digest),
            }
        }
        Ok(missing)
    }

    /// Inserts a vertex whose parents are all held (see [`Dag::missing_parents`]).
    /// Vertices below the GC round are refused as duplicates would be: not inserted.
    pub fn insert(&mut self, vertex: Arc<Vertex>) -> Inserted {
        let digest = vertex.digest();
        if self.by_digest.contains_key(&digest) || vertex.content().round < self.gc_round {
            return Inserted::Duplicate;
        }
        debug_assert!(matches!(self.missing_parents(&vertex), Ok(m) if m.is_empty()));
        let c = vertex.content();
        let slot = self
            .rounds
            .entry(c.round)
            .or_default()
            .entry(c.author)
            .or_default();
        let outcome = match slot.first() {
            Some(existing) => Inserted::Equivocation {
                existing: *existing,
            },
            None => Inserted::New,
        };
        slot.push(digest);
        let encoded_len = encoded_len(&vertex);
        self.encoded_bytes += encoded_len;
        self.by_digest.insert(
            digest,
            Entry {
                vertex,
                committed: false,
                encoded_len,
            },
        );
        outcome
    }

    pub fn is_committed(&self, digest: &Digest) -> bool {
        self.by_digest.get(digest).is_some_and(|e| e.committed)
    }

    /// Marks a vertex as committed; `false` if it is not held.
    pub fn mark_committed(&mut self, digest: &Digest) -> bool {
        match self.by_digest.get_mut(digest) {
            Some(e) => {
                e.committed = true;
                true
            }
            None => false,
        }
    }

    /// Drops every round below `round`; returns the removed vertices so the caller
    /// can drop them from its store too, and find those that were never committed
    /// (no later commit can reach them: parents are of the previous round only).
    pub fn gc_below(&mut self, round: Round) -> Vec<Collected> {
        if round <= self.gc_round {
            return Vec::new();
        }
        self.gc_round = round;
        let keep = self.rounds.split_off(&round);
        let dropped = std::mem::replace(&mut self.rounds, keep);
        let mut removed = Vec::new();
        for (r, slots) in dropped {
            for digest in slots.into_values().flatten() {
                let Some(e) = self.by_digest.remove(&digest) else {
                    continue;
                };
                self.encoded_bytes -= e.encoded_len;
                removed.push(Collected {
                    round: r,
                    vertex: e.vertex,
                    committed: e.committed,
                });
            }
        }
        removed
    }

    /// Restores the GC round after a restart (before re-inserting persisted vertices).
    pub fn set_gc_round(&mut self, round: Round) {
        self.gc_round = self.gc_round.max(round);
    }

    /// All vertices held, in (round, author, arrival) order: a replay of this list into
    /// an empty DAG rebuilds the same DAG.
    pub fn export_vertices(&self) -> Vec<Arc<Vertex>> {
        self.rounds
            .values()
            .flat_map(|slots| slots.values().flatten())
            .filter_map(|d| self.get(d).cloned())
            .collect()
    }

    /// The structure of the DAG for replay checks and telemetry.
    pub fn snapshot(&self) -> DagSnapshot {
        let vertices: Vec<SnapshotVertex> = self
            .rounds
            .iter()
            .flat_map(|(r, slots)| {
                slots
                    .iter()
                    .flat_map(move |(a, ds)| ds.iter().map(move |d| (*r, *a, *d)))
            })
            .filter_map(|(round, author, digest)| {
                let e = self.by_digest.get(&digest)?;
                Some(SnapshotVertex {
                    round,
                    author,
                    digest,
                    parents: e
                        .vertex
                        .content()
                        .parents
                        .iter()
                        .map(|p| p.digest)
                        .collect(),
                    committed: e.committed,
                })
            })
            .collect();
        DagSnapshot {
            gc_round: self.gc_round,
            lowest_round: self.lowest_round(),
            highest_round: self.highest_round(),
            depth: match (self.lowest_round(), self.highest_round()) {
                (Some(lo), Some(hi)) => hi - lo + 1,
                _ => 0,
            },
            max_width: self
                .rounds
                .values()
                .map(|s| s.values().map(Vec::len).sum::<usize>())
                .max()
                .unwrap_or(0),
            vertex_count: self.len(),
            encoded_bytes: self.encoded_bytes,
            vertices,
        }
    }
}

/// The canonical encoded length of a vertex, computed without encoding the fixed
/// parts (the signature alone is 4.6 KB): chain, epoch, round, author, parents,
/// transactions, timestamp, signature.
pub fn encoded_len(vertex: &Vertex) -> usize {
    let c = vertex.content();
    let txs = c.payload_bytes();
    1 + 8
        + 8
        + 2
        + 4
        + c.parents.len() * (2 + 32)
        + 4
        + txs
        + 8
        + vertex.signature().as_bytes().len()
}

/// An exported view of the DAG (JSON-serialisable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DagSnapshot {
    pub gc_round: Round,
    pub lowest_round: Option<Round>,
    pub highest_round: Option<Round>,
    /// Rounds held.
    pub depth: u64,
    /// Most vertices held in one round.
    pub max_width: usize,
    pub vertex_count: usize,
    pub encoded_bytes: usize,
    pub vertices: Vec<SnapshotVertex>,
}

/// One vertex of a [`DagSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotVertex {
    pub round: Round,
    pub author: ValidatorIndex,
    pub digest: Digest,
    pub parents: Vec<Digest>,
    pub committed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;
    use dualchain_core::encoding::Encode;

    #[test]
    fn insert_detects_duplicates_equivocation_and_gc() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..3);
        let mut dag = b.dag();
        assert_eq!(dag.len(), 12);
        assert_eq!(dag.highest_round(), Some(2));
        let v = b.vertex(1, 2).clone();
        assert_eq!(dag.insert(v), Inserted::Duplicate);
        let twin = b.equivocate(1, 2, 99);
        assert_eq!(dag.missing_parents(&twin), Ok(vec![]));
        assert!(matches!(dag.insert(twin), Inserted::Equivocation { .. }));
        assert_eq!(dag.slot(1, 2).len(), 2);
        let snapshot = dag.snapshot();
        assert_eq!(snapshot.depth, 3);
        assert_eq!(snapshot.max_width, 5);
        let bytes_before = dag.encoded_bytes();
        let removed = dag.gc_below(2);
        assert_eq!(removed.len(), 9);
        assert_eq!(dag.len(), 4);
        assert!(dag.encoded_bytes() < bytes_before);
        // Round-2 vertices now have their parents below the GC round: nothing missing.
        assert_eq!(dag.missing_parents(b.vertex(2, 0)), Ok(vec![]));
    }

    #[test]
    fn encoded_len_matches_the_encoding() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        for v in b.all() {
            let mut buf = Vec::new();
            v.encode_to(&mut buf);
            assert_eq!(encoded_len(v), buf.len());
        }
    }

    #[test]
    fn exported_vertices_replay_into_an_identical_dag() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..4);
        let twin = b.equivocate(2, 1, 3);
        let mut dag = b.dag();
        dag.mark_committed(&b.vertex(0, 0).digest());
        let mut replayed = Dag::new(b.validators_arc());
        for v in dag.export_vertices() {
            assert_eq!(replayed.missing_parents(&v), Ok(vec![]));
            replayed.insert(v);
        }
        replayed.mark_committed(&b.vertex(0, 0).digest());
        assert_eq!(replayed.snapshot(), dag.snapshot());
        assert_eq!(replayed.slot(2, 1)[1], twin.digest());
        let json = serde_json::to_value(dag.snapshot()).unwrap();
        assert_eq!(json["vertex_count"], 17);
        assert_eq!(json["depth"], 4);
    }

    #[test]
    fn parents_must_be_of_the_previous_round_and_named_author() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let dag = b.dag();
        // A round-2 vertex whose "parents" are round-0 vertices.
        let bad = b.custom_vertex(2, 0, &[(0, 0), (0, 1), (0, 2)], 0);
        assert!(matches!(
            dag.missing_parents(&bad),
            Err(ParentError::WrongRound { .. })
        ));
        let mislabeled = b.custom_vertex_refs(
            2,
            0,
            vec![
                dualchain_core::types::VertexRef {
                    author: 0,
                    digest: b.vertex(1, 1).digest(),
                },
                b.vertex(1, 2).reference(),
                b.vertex(1, 3).reference(),
            ],
        );
        assert!(matches!(
            dag.missing_parents(&mislabeled),
            Err(ParentError::WrongAuthor { .. })
        ));
    }
}
