//! Persisted consensus state, so a crashed node restarts where it stopped.
//!
//! What must survive a crash, and why:
//! - every vertex inserted into the DAG (the node's own included): after a restart the
//!   node re-inserts them, so it neither re-fetches its window nor — crucially —
//!   signs a second, different vertex for a round it already proposed;
//! - the committer's state (next undecided slot, next sequence number, last commit
//!   timestamp) and which vertices are committed: the restarted node continues the
//!   committed sequence exactly where it stopped, without re-emitting anything;
//! - **its own commits until the consumer has executed them** (as Sui's
//!   `consensus/core` keeps its commits for its commit observer): every committed
//!   sub-DAG is written as a [`CommitRecord`] (sequence, leader, timestamp and the
//!   (round, digest) of its vertices) in the same batch as the decision, and kept —
//!   with the vertices it names — until the consumer acknowledges the sequence with
//!   [`crate::Input::Executed`]. At restart the records after the acknowledged one
//!   are replayed, so a crash between "decided" and "block written" loses nothing;
//! - our last proposed round, the acknowledged sequence and the GC round.
//!
//! The store keeps vertices for `store_retention_rounds`, longer than the DAG keeps
//! them in memory, so peers that fell behind can still fetch them (see
//! [`crate::engine`]); at restart only the rounds above the GC round re-enter the DAG.
//!
//! The engine collects one [`StoreChanges`] per input and applies it before returning
//! any output, in one atomic write batch.
//!
//! Every epoch runs a new engine from round 0 with its own committee, so the store is
//! one per epoch ([`KvConsensusStore::new`] takes it): the records of an epoch are a
//! key range of their own, and the previous epoch's stay readable (peers still
//! finishing it fetch its vertices from us) until [`drop_epochs_before`] removes them.
//!
//! Layout in a [`KvEngine`] (one database per chain, as everywhere in dualchain):
//! `vertices` column: [`dualchain_storage::keys::vertex_key`] (epoch BE ‖ round BE ‖
//! digest) → canonical vertex bytes; the validator-private `consensus` column (never
//! part of a snapshot, see `dualchain-store`), every key under `dag-bft/` ‖ epoch BE:
//! `state` → [`EngineState`], `committed/` ‖ round BE ‖ digest → empty, `commit/` ‖
//! sequence BE → [`CommitRecord`], `evidence/` ‖ offender → [`Evidence`], `tips` → the
//! vertices of the last rounds of an epoch that ended ([`KvConsensusStore::put_tips`]).

use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_len};
use dualchain_core::types::{ValidatorIndex, Vertex, VertexRef};
use dualchain_storage::{Column, KvEngine, StorageError, WriteBatch, keys::vertex_key};

use crate::avalanche::Preference;
use crate::commit::CommitterState;
use crate::consensus::{CommittedSubDag, Round};
use crate::evidence::Evidence;

/// The column of every record below: validator-private, never exported.
const COLUMN: Column = Column::Consensus;
/// What every key of the consensus column starts with, before the epoch.
const ROOT: &[u8] = b"dag-bft/";
const STATE: &[u8] = b"state";
const COMMITTED: &[u8] = b"committed/";
const COMMIT: &[u8] = b"commit/";
/// Proofs of misbehaviour, one per validator (not garbage-collected with the DAG).
const EVIDENCE: &[u8] = b"evidence/";
const TIPS: &[u8] = b"tips";
const DECIDED: &[u8] = b"decided/";
/// Vertices a tips record names at most (the engine's last rounds are cut there).
pub const MAX_TIPS: usize = dualchain_core::types::MAX_VALIDATORS;
/// Vertices one commit record may name (a leader's whole uncommitted history is
/// bounded by the retention window times the committee; this is far above).
const MAX_COMMIT_VERTICES: usize = 1_000_000;

/// Why the consensus store failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("consensus store: {0}")]
    Storage(#[from] StorageError),
    #[error("consensus store holds an undecodable {what}: {error}")]
    Corrupt {
        what: &'static str,
        error: DecodeError,
    },
}

/// The engine's small persisted record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineState {
    pub committer: CommitterState,
    pub last_proposed_round: Option<Round>,
    pub gc_round: Round,
    /// The highest commit sequence the consumer acknowledged as executed.
    pub executed_through: Option<u64>,
}

impl Encode for EngineState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.committer.next_slot.encode_to(out);
        self.committer.next_sequence.encode_to(out);
        self.committer.last_commit_ts.encode_to(out);
        dualchain_core::encoding::write_option(out, &self.last_proposed_round);
        self.gc_round.encode_to(out);
        dualchain_core::encoding::write_option(out, &self.executed_through);
    }
}

impl Decode for EngineState {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            committer: CommitterState {
                next_slot: r.read_u64("next slot")?,
                next_sequence: r.read_u64("next sequence")?,
                last_commit_ts: r.read_u64("last commit timestamp")?,
            },
            last_proposed_round: r.read_option("last proposed round")?,
            gc_round: r.read_u64("gc round")?,
            executed_through: r.read_option("executed through")?,
        })
    }
}

impl Canonical for EngineState {
    const NAME: &'static str = "dag-bft engine state";
    const MAX_ENCODED_LEN: usize = 1 + 8 * 4 + 2 * (1 + 8);
}

/// A committed sub-DAG as the engine keeps it until the consumer executed it: the
/// vertices are named, not copied (they stay in the `vertices` column meanwhile).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRecord {
    pub sequence: u64,
    pub leader: VertexRef,
    pub leader_round: Round,
    pub timestamp_ms: u64,
    /// (round, digest) of every vertex, in the sub-DAG's order.
    pub vertices: Vec<(Round, Digest)>,
}

impl CommitRecord {
    pub fn of(subdag: &CommittedSubDag) -> Self {
        Self {
            sequence: subdag.sequence,
            leader: subdag.leader,
            leader_round: subdag.leader_round,
            timestamp_ms: subdag.timestamp_ms,
            vertices: subdag
                .vertices
                .iter()
                .map(|v| (v.content().round, v.digest()))
                .collect(),
        }
    }

    /// The lowest vertex round the record names (its vertices must outlive it).
    pub fn lowest_round(&self) -> Round {
        self.vertices
            .iter()
            .map(|(r, _)| *r)
            .min()
            .unwrap_or(self.leader_round)
    }
}

/// Writes a list of (round, digest) vertex names: a length, then each pair.
pub(crate) fn write_named(out: &mut Vec<u8>, named: &[(Round, Digest)]) {
    write_len(out, named.len());
    for (round, digest) in named {
        round.encode_to(out);
        digest.encode_to(out);
    }
}

/// Reads a list written by [`write_named`] of at most `max` pairs.
pub(crate) fn read_named(
    r: &mut Reader<'_>,
    max: usize,
    what: &'static str,
) -> Result<Vec<(Round, Digest)>, DecodeError> {
    let count = r.read_len(max, 8 + 32, what)?;
    let mut named = Vec::with_capacity(count);
    for _ in 0..count {
        let round = r.read_u64("vertex round")?;
        named.push((round, Digest::decode_from(r)?));
    }
    Ok(named)
}

impl Encode for CommitRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.sequence.encode_to(out);
        self.leader.author.encode_to(out);
        self.leader.digest.encode_to(out);
        self.leader_round.encode_to(out);
        self.timestamp_ms.encode_to(out);
        write_named(out, &self.vertices);
    }
}

impl Decode for CommitRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let sequence = r.read_u64("sequence")?;
        let author: ValidatorIndex = r.read_u16("leader author")?;
        let digest = Digest::decode_from(r)?;
        let leader_round = r.read_u64("leader round")?;
        let timestamp_ms = r.read_u64("timestamp")?;
        let vertices = read_named(r, MAX_COMMIT_VERTICES, "commit vertices")?;
        Ok(Self {
            sequence,
            leader: VertexRef { author, digest },
            leader_round,
            timestamp_ms,
            vertices,
        })
    }
}

impl Canonical for CommitRecord {
    const NAME: &'static str = "dag-bft commit record";
    const MAX_ENCODED_LEN: usize = 1 + 8 + 2 + 32 + 8 + 8 + 4 + MAX_COMMIT_VERTICES * 40;
}

/// Everything the engine reloads at restart.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    pub state: EngineState,
    /// In (round, digest) order, so parents come before children.
    pub vertices: Vec<Arc<Vertex>>,
    pub committed: Vec<Digest>,
    /// Commits not acknowledged as executed, in sequence order.
    pub commits: Vec<CommitRecord>,
    /// Proofs of misbehaviour, one per offending validator, in validator order.
    pub evidence: Vec<Evidence>,
    /// Leader slots the Avalanche rule decided (and still answers peers about), in
    /// slot order.
    pub decided: Vec<(Round, Preference)>,
}

/// The writes of one engine step, applied atomically.
#[derive(Clone, Debug, Default)]
pub struct StoreChanges {
    pub vertices: Vec<Arc<Vertex>>,
    pub committed: Vec<(Round, Digest)>,
    /// Garbage-collected vertices (their commit marks go too).
    pub removed: Vec<(Round, Digest)>,
    /// New commits, kept until executed.
    pub commits: Vec<CommitRecord>,
    /// Sequences of commits the consumer executed (their records go).
    pub executed: Vec<u64>,
    pub state: Option<EngineState>,
    /// New proofs of misbehaviour (kept until the validator set changes).
    pub evidence: Vec<Evidence>,
    /// The changes record a vertex we signed (our last proposed round moved):
    /// they must survive power loss before the vertex leaves, whatever the
    /// store's sync policy, or a restart could sign another vertex for the
    /// same round.
    pub signed: bool,
    /// Avalanche decisions: `Some` records a decided slot, `None` forgets one.
    pub decided: Vec<(Round, Option<Preference>)>,
}

impl StoreChanges {
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
            && self.committed.is_empty()
            && self.removed.is_empty()
            && self.commits.is_empty()
            && self.executed.is_empty()
            && self.evidence.is_empty()
            && self.decided.is_empty()
            && self.state.is_none()
    }
}

/// Where the engine keeps its persisted state.
pub trait ConsensusStore {
    /// The persisted state, or `None` for a node that never ran.
    fn load(&self) -> Result<Option<Persisted>, StoreError>;
    /// Applies `changes` all-or-nothing.
    fn apply(&mut self, changes: &StoreChanges) -> Result<(), StoreError>;
    /// One persisted vertex (to answer sync requests for rounds evicted from memory).
    fn vertex(&self, round: Round, digest: &Digest) -> Result<Option<Arc<Vertex>>, StoreError>;
}

/// A [`ConsensusStore`] of one epoch over any [`KvEngine`] (RocksDB in the node, the
/// in-memory engine in the simulator).
pub struct KvConsensusStore<E> {
    engine: E,
    epoch: u64,
}

/// The consensus-column prefix of `epoch`'s records.
fn epoch_prefix(epoch: u64) -> Vec<u8> {
    let mut key = ROOT.to_vec();
    key.extend_from_slice(&epoch.to_be_bytes());
    key
}

/// Whether `key` (of the consensus column) is a commit record, of any epoch (a
/// simulator plants store bugs on exactly these records).
pub fn is_commit_record_key(key: &[u8]) -> bool {
    let at = ROOT.len() + 8;
    key.starts_with(ROOT) && key.len() > at && key[at..].starts_with(COMMIT)
}

impl<E: KvEngine> KvConsensusStore<E> {
    /// The store of `epoch`'s engine.
    pub fn new(engine: E, epoch: u64) -> Self {
        Self { engine, epoch }
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = epoch_prefix(self.epoch);
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    fn vertex_key(&self, round: Round, digest: &Digest) -> [u8; 48] {
        vertex_key(self.epoch, round, digest.as_bytes())
    }

    fn committed_key(&self, round: Round, digest: &Digest) -> Vec<u8> {
        self.key(&[COMMITTED, &self.vertex_key(round, digest)[8..]])
    }

    fn evidence_key(&self, offender: ValidatorIndex) -> Vec<u8> {
        self.key(&[EVIDENCE, &offender.to_be_bytes()])
    }

    fn decided_key(&self, slot: Round) -> Vec<u8> {
        self.key(&[DECIDED, &slot.to_be_bytes()])
    }

    fn commit_key(&self, sequence: u64) -> Vec<u8> {
        self.key(&[COMMIT, &sequence.to_be_bytes()])
    }

    /// Records the vertices of the last rounds of this epoch's DAG
    /// ([`crate::DagBft::tips`]), once the epoch ended: a peer still finishing the
    /// epoch asks for them (a sync request naming no vertex) to learn what to fetch.
    pub fn put_tips(&self, tips: &[(Round, Digest)]) -> Result<(), StoreError> {
        assert!(
            tips.len() <= MAX_TIPS,
            "tips are cut at {MAX_TIPS} vertices"
        );
        let mut value = Vec::with_capacity(4 + tips.len() * 40);
        write_named(&mut value, tips);
        let mut batch = WriteBatch::new();
        batch.put(COLUMN, self.key(&[TIPS]), value);
        self.engine.write(batch)?;
        Ok(())
    }

    /// The tips recorded when this epoch ended; empty while it runs.
    pub fn tips(&self) -> Result<Vec<(Round, Digest)>, StoreError> {
        let Some(bytes) = self.engine.get(COLUMN, &self.key(&[TIPS]))? else {
            return Ok(Vec::new());
        };
        let decode = |bytes: &[u8]| -> Result<Vec<(Round, Digest)>, DecodeError> {
            let mut r = Reader::new(bytes);
            let tips = read_named(&mut r, MAX_TIPS, "tips")?;
            r.finish("tips")?;
            Ok(tips)
        };
        decode(&bytes).map_err(corrupt("tips"))
    }
}

/// Deletes the consensus records and vertices of every epoch before `epoch`; returns
/// how many entries went. Called when an epoch begins, with the previous one's
/// number, so the store holds at most two epochs.
pub fn drop_epochs_before<E: KvEngine>(engine: &E, epoch: u64) -> Result<usize, StoreError> {
    const CHUNK: usize = 4_096;
    let mut dropped = 0;
    // Each range holds exactly the older epochs' keys: `[start, end)` of a column whose
    // keys there all begin with `start` (vertex keys begin with the epoch).
    for (column, start, end) in [
        (Column::Vertices, &[][..], epoch.to_be_bytes().to_vec()),
        (COLUMN, ROOT, epoch_prefix(epoch)),
    ] {
        loop {
            let mut batch = WriteBatch::new();
            let mut count = 0;
            for item in engine.scan_from(column, start)? {
                let (key, _) = item?;
                if key.as_slice() >= end.as_slice() {
                    break;
                }
                batch.delete(column, key);
                count += 1;
                if count == CHUNK {
                    break;
                }
            }
            if count == 0 {
                break;
            }
            engine.write(batch)?;
            dropped += count;
        }
    }
    Ok(dropped)
}

fn corrupt(what: &'static str) -> impl FnOnce(DecodeError) -> StoreError {
    move |error| StoreError::Corrupt { what, error }
}

impl<E: KvEngine> ConsensusStore for KvConsensusStore<E> {
    fn load(&self) -> Result<Option<Persisted>, StoreError> {
        let Some(state_bytes) = self.engine.get(COLUMN, &self.key(&[STATE]))? else {
            return Ok(None);
        };
        let state =
            EngineState::from_canonical_bytes(&state_bytes).map_err(corrupt("engine state"))?;
        let mut vertices = Vec::new();
        for item in self
            .engine
            .scan_prefix(Column::Vertices, &self.epoch.to_be_bytes())?
        {
            let (_, value) = item?;
            let v = Vertex::from_canonical_bytes(&value).map_err(corrupt("vertex"))?;
            vertices.push(Arc::new(v));
        }
        let mut committed = Vec::new();
        for item in self.engine.scan_prefix(COLUMN, &self.key(&[COMMITTED]))? {
            let (key, _) = item?;
            let digest: [u8; 32] = key[key.len() - 32..].try_into().expect("32-byte suffix");
            committed.push(Digest(digest));
        }
        let mut commits: Vec<CommitRecord> = Vec::new();
        for item in self.engine.scan_prefix(COLUMN, &self.key(&[COMMIT]))? {
            let (_, value) = item?;
            let record = CommitRecord::from_canonical_bytes(&value).map_err(corrupt("commit"))?;
            if state.executed_through.is_some_and(|t| record.sequence <= t) {
                continue;
            }
            commits.push(record);
        }
        let mut evidence = Vec::new();
        for item in self.engine.scan_prefix(COLUMN, &self.key(&[EVIDENCE]))? {
            let (_, value) = item?;
            evidence.push(Evidence::from_canonical_bytes(&value).map_err(corrupt("evidence"))?);
        }
        let mut decided = Vec::new();
        for item in self.engine.scan_prefix(COLUMN, &self.key(&[DECIDED]))? {
            let (key, value) = item?;
            let slot = u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8-byte suffix"));
            let mut r = Reader::new(&value);
            let preference = Preference::decode_from(&mut r)
                .and_then(|p| r.finish("decision").map(|()| p))
                .map_err(corrupt("decision"))?;
            decided.push((slot, preference));
        }
        Ok(Some(Persisted {
            state,
            vertices,
            committed,
            commits,
            evidence,
            decided,
        }))
    }

    fn apply(&mut self, changes: &StoreChanges) -> Result<(), StoreError> {
        let mut batch = WriteBatch::with_capacity(
            changes.vertices.len()
                + changes.committed.len()
                + 2 * changes.removed.len()
                + changes.commits.len()
                + changes.executed.len()
                + 1,
        );
        for v in &changes.vertices {
            let c = v.content();
            batch.put(
                Column::Vertices,
                self.vertex_key(c.round, &v.digest()),
                v.to_canonical_bytes(),
            );
        }
        for (round, digest) in &changes.committed {
            batch.put(COLUMN, self.committed_key(*round, digest), Vec::new());
        }
        for (round, digest) in &changes.removed {
            batch.delete(Column::Vertices, self.vertex_key(*round, digest));
            batch.delete(COLUMN, self.committed_key(*round, digest));
        }
        for record in &changes.commits {
            batch.put(
                COLUMN,
                self.commit_key(record.sequence),
                record.to_canonical_bytes(),
            );
        }
        for sequence in &changes.executed {
            batch.delete(COLUMN, self.commit_key(*sequence));
        }
        if let Some(state) = &changes.state {
            batch.put(COLUMN, self.key(&[STATE]), state.to_canonical_bytes());
        }
        for evidence in &changes.evidence {
            batch.put(
                COLUMN,
                self.evidence_key(evidence.offender()),
                evidence.to_canonical_bytes(),
            );
        }
        for (slot, decision) in &changes.decided {
            let key = self.decided_key(*slot);
            match decision {
                Some(p) => {
                    let mut value = Vec::with_capacity(33);
                    p.encode_to(&mut value);
                    batch.put(COLUMN, key, value);
                }
                None => batch.delete(COLUMN, key),
            }
        }
        if changes.signed {
            assert!(
                changes.state.is_some(),
                "a signed vertex is recorded with the state that remembers its round"
            );
            batch.require_sync();
        }
        self.engine.write(batch)?;
        Ok(())
    }

    fn vertex(&self, round: Round, digest: &Digest) -> Result<Option<Arc<Vertex>>, StoreError> {
        let Some(bytes) = self
            .engine
            .get(Column::Vertices, &self.vertex_key(round, digest))?
        else {
            return Ok(None);
        };
        let v = Vertex::from_canonical_bytes(&bytes).map_err(corrupt("vertex"))?;
        Ok(Some(Arc::new(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;
    use dualchain_storage::MemoryEngine;

    #[test]
    fn changes_round_trip_through_a_kv_engine() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let mut store = KvConsensusStore::new(MemoryEngine::new(), 0);
        assert!(store.load().unwrap().is_none());
        let state = EngineState {
            committer: CommitterState {
                next_slot: 3,
                next_sequence: 2,
                last_commit_ts: 99,
            },
            last_proposed_round: Some(1),
            gc_round: 0,
            executed_through: None,
        };
        store
            .apply(&StoreChanges {
                vertices: b.all().to_vec(),
                committed: vec![(0, b.vertex(0, 1).digest())],
                removed: vec![],
                commits: vec![],
                executed: vec![],
                state: Some(state),
                evidence: vec![],
                signed: true,
                decided: vec![
                    (4, Some(Preference::Skip)),
                    (2, Some(Preference::Commit(Digest([5; 32])))),
                ],
            })
            .unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.state, state);
        // Avalanche decisions come back in slot order; a forgotten one is gone.
        assert_eq!(
            loaded.decided,
            vec![
                (2, Preference::Commit(Digest([5; 32]))),
                (4, Preference::Skip)
            ]
        );
        store
            .apply(&StoreChanges {
                decided: vec![(2, None)],
                ..StoreChanges::default()
            })
            .unwrap();
        assert_eq!(
            store.load().unwrap().unwrap().decided,
            vec![(4, Preference::Skip)]
        );
        let v = b.vertex(1, 3);
        assert_eq!(
            store.vertex(1, &v.digest()).unwrap().as_deref(),
            Some(v.as_ref())
        );
        assert_eq!(store.vertex(0, &v.digest()).unwrap(), None);
        assert_eq!(loaded.vertices.len(), 8);
        assert!(
            loaded
                .vertices
                .windows(2)
                .all(|w| w[0].content().round <= w[1].content().round)
        );
        assert_eq!(loaded.committed, vec![b.vertex(0, 1).digest()]);
        store
            .apply(&StoreChanges {
                removed: vec![(0, b.vertex(0, 1).digest())],
                ..Default::default()
            })
            .unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.vertices.len(), 7);
        assert!(loaded.committed.is_empty());
    }

    #[test]
    fn each_epoch_has_its_own_store_and_older_epochs_are_dropped() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let db = std::sync::Arc::new(MemoryEngine::new());
        let mut first = KvConsensusStore::new(db.clone(), 0);
        let mut second = KvConsensusStore::new(db.clone(), 1);
        let mut third = KvConsensusStore::new(db.clone(), 2);
        let write = |store: &mut KvConsensusStore<_>, vertices: &[Arc<Vertex>], sequence| {
            let record = CommitRecord {
                sequence,
                leader: vertices[0].reference(),
                leader_round: 0,
                timestamp_ms: 1,
                vertices: vec![(0, vertices[0].digest())],
            };
            store
                .apply(&StoreChanges {
                    vertices: vertices.to_vec(),
                    commits: vec![record],
                    state: Some(EngineState::default()),
                    ..Default::default()
                })
                .unwrap();
        };
        write(&mut first, b.all(), 0);
        assert!(second.load().unwrap().is_none(), "a new epoch starts empty");
        write(&mut second, &b.all()[..4], 0);
        write(&mut third, &b.all()[..1], 0);
        assert_eq!(first.load().unwrap().unwrap().vertices.len(), 8);
        assert_eq!(second.load().unwrap().unwrap().vertices.len(), 4);
        assert_eq!(second.load().unwrap().unwrap().commits.len(), 1);
        assert_eq!(
            first
                .vertex(1, &b.vertex(1, 2).digest())
                .unwrap()
                .as_deref(),
            Some(b.vertex(1, 2).as_ref())
        );
        assert_eq!(second.vertex(1, &b.vertex(1, 2).digest()).unwrap(), None);
        assert!(is_commit_record_key(&second.commit_key(0)));
        assert!(!is_commit_record_key(&second.key(&[STATE])));

        // Tips are recorded when an epoch ends.
        assert!(first.tips().unwrap().is_empty());
        let tips: Vec<_> = (0..4).map(|a| (1, b.vertex(1, a).digest())).collect();
        first.put_tips(&tips).unwrap();
        assert_eq!(first.tips().unwrap(), tips);
        assert!(second.tips().unwrap().is_empty());

        // Entering epoch 2 drops epoch 0 (8 vertices, state, commit, tips) only.
        assert_eq!(drop_epochs_before(&db, 1).unwrap(), 8 + 3);
        assert!(first.load().unwrap().is_none());
        assert!(first.tips().unwrap().is_empty());
        assert_eq!(second.load().unwrap().unwrap().vertices.len(), 4);
        assert_eq!(third.load().unwrap().unwrap().vertices.len(), 1);
        assert_eq!(drop_epochs_before(&db, 1).unwrap(), 0);
    }

    #[test]
    fn failed_writes_and_corrupt_records_are_errors() {
        let engine = std::sync::Arc::new(MemoryEngine::new());
        let mut store = KvConsensusStore::new(engine.clone(), 0);
        engine.set_fail_writes(true);
        let changes = StoreChanges {
            state: Some(EngineState::default()),
            ..Default::default()
        };
        assert!(matches!(store.apply(&changes), Err(StoreError::Storage(_))));
        engine.set_fail_writes(false);
        let mut batch = WriteBatch::new();
        batch.put(COLUMN, store.key(&[STATE]), vec![1, 2, 3]);
        engine.write(batch).unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
    }
}
