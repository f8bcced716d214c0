//! Persisted consensus state, so a crashed node restarts where it stopped.
//!
//! What must survive a crash, and why:
//! - every vertex inserted into the DAG (the node's own included): after a restart the
//!   node re-inserts them, so it neither re-fetches its window nor — crucially —
//!   signs a second, different vertex for a round it already proposed;
//! - the committer's state (next undecided slot, next sequence number, last commit
//!   timestamp) and which vertices are committed: the restarted node continues the
//!   committed sequence exactly where it stopped, without re-emitting anything;
//! - our last proposed round and the GC round.
//!
//! The store keeps vertices for `store_retention_rounds`, longer than the DAG keeps
//! them in memory, so peers that fell behind can still fetch them (see
//! [`crate::engine`]); at restart only the rounds above the GC round re-enter the DAG.
//!
//! The engine collects one [`StoreChanges`] per input and applies it before returning
//! any output, in one atomic write batch.
//!
//! Layout in a [`KvEngine`] (one database per chain, as everywhere in dualchain):
//! `vertices` column: [`dualchain_storage::keys::vertex_key`] (round BE ‖ digest) →
//! canonical vertex bytes; `meta` column: `dag-bft/state` → [`EngineState`],
//! `dag-bft/committed/` ‖ round BE ‖ digest → empty.

use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader};
use dualchain_core::types::Vertex;
use dualchain_storage::{Column, KvEngine, StorageError, WriteBatch, keys::vertex_key};

use crate::commit::CommitterState;
use crate::consensus::Round;

const STATE_KEY: &[u8] = b"dag-bft/state";
const COMMITTED_PREFIX: &[u8] = b"dag-bft/committed/";

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
}

impl Encode for EngineState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.committer.next_slot.encode_to(out);
        self.committer.next_sequence.encode_to(out);
        self.committer.last_commit_ts.encode_to(out);
        dualchain_core::encoding::write_option(out, &self.last_proposed_round);
        self.gc_round.encode_to(out);
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
        })
    }
}

impl Canonical for EngineState {
    const NAME: &'static str = "dag-bft engine state";
    const MAX_ENCODED_LEN: usize = 1 + 8 * 5 + 1;
}

/// Everything the engine reloads at restart.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    pub state: EngineState,
    /// In (round, digest) order, so parents come before children.
    pub vertices: Vec<Arc<Vertex>>,
    pub committed: Vec<Digest>,
}

/// The writes of one engine step, applied atomically.
#[derive(Clone, Debug, Default)]
pub struct StoreChanges {
    pub vertices: Vec<Arc<Vertex>>,
    pub committed: Vec<(Round, Digest)>,
    /// Garbage-collected vertices (their commit marks go too).
    pub removed: Vec<(Round, Digest)>,
    pub state: Option<EngineState>,
}

impl StoreChanges {
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
            && self.committed.is_empty()
            && self.removed.is_empty()
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

/// A [`ConsensusStore`] over any [`KvEngine`] (RocksDB in the node, the in-memory
/// engine in the simulator).
pub struct KvConsensusStore<E> {
    engine: E,
}

impl<E: KvEngine> KvConsensusStore<E> {
    pub fn new(engine: E) -> Self {
        Self { engine }
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }
}

fn committed_key(round: Round, digest: &Digest) -> Vec<u8> {
    let mut key = COMMITTED_PREFIX.to_vec();
    key.extend_from_slice(&vertex_key(round, digest.as_bytes()));
    key
}

impl<E: KvEngine> ConsensusStore for KvConsensusStore<E> {
    fn load(&self) -> Result<Option<Persisted>, StoreError> {
        let Some(state_bytes) = self.engine.get(Column::Meta, STATE_KEY)? else {
            return Ok(None);
        };
        let state = EngineState::from_canonical_bytes(&state_bytes).map_err(|error| {
            StoreError::Corrupt {
                what: "engine state",
                error,
            }
        })?;
        let mut vertices = Vec::new();
        for item in self.engine.scan_from(Column::Vertices, &[])? {
            let (_, value) = item?;
            let v = Vertex::from_canonical_bytes(&value).map_err(|error| StoreError::Corrupt {
                what: "vertex",
                error,
            })?;
            vertices.push(Arc::new(v));
        }
        let mut committed = Vec::new();
        for item in self.engine.scan_prefix(Column::Meta, COMMITTED_PREFIX)? {
            let (key, _) = item?;
            let digest: [u8; 32] = key[key.len() - 32..].try_into().expect("32-byte suffix");
            committed.push(Digest(digest));
        }
        Ok(Some(Persisted {
            state,
            vertices,
            committed,
        }))
    }

    fn apply(&mut self, changes: &StoreChanges) -> Result<(), StoreError> {
        let mut batch = WriteBatch::with_capacity(
            changes.vertices.len() + changes.committed.len() + 2 * changes.removed.len() + 1,
        );
        for v in &changes.vertices {
            let c = v.content();
            batch.put(
                Column::Vertices,
                vertex_key(c.round, v.digest().as_bytes()),
                v.to_canonical_bytes(),
            );
        }
        for (round, digest) in &changes.committed {
            batch.put(Column::Meta, committed_key(*round, digest), Vec::new());
        }
        for (round, digest) in &changes.removed {
            batch.delete(Column::Vertices, vertex_key(*round, digest.as_bytes()));
            batch.delete(Column::Meta, committed_key(*round, digest));
        }
        if let Some(state) = &changes.state {
            batch.put(Column::Meta, STATE_KEY, state.to_canonical_bytes());
        }
        self.engine.write(batch)?;
        Ok(())
    }

    fn vertex(&self, round: Round, digest: &Digest) -> Result<Option<Arc<Vertex>>, StoreError> {
        let Some(bytes) = self
            .engine
            .get(Column::Vertices, &vertex_key(round, digest.as_bytes()))?
        else {
            return Ok(None);
        };
        let v = Vertex::from_canonical_bytes(&bytes).map_err(|error| StoreError::Corrupt {
            what: "vertex",
            error,
        })?;
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
        let mut store = KvConsensusStore::new(MemoryEngine::new());
        assert!(store.load().unwrap().is_none());
        let state = EngineState {
            committer: CommitterState {
                next_slot: 3,
                next_sequence: 2,
                last_commit_ts: 99,
            },
            last_proposed_round: Some(1),
            gc_round: 0,
        };
        store
            .apply(&StoreChanges {
                vertices: b.all().to_vec(),
                committed: vec![(0, b.vertex(0, 1).digest())],
                removed: vec![],
                state: Some(state),
            })
            .unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.state, state);
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
    fn failed_writes_and_corrupt_records_are_errors() {
        let engine = std::sync::Arc::new(MemoryEngine::new());
        let mut store = KvConsensusStore::new(engine.clone());
        engine.set_fail_writes(true);
        let changes = StoreChanges {
            state: Some(EngineState::default()),
            ..Default::default()
        };
        assert!(matches!(store.apply(&changes), Err(StoreError::Storage(_))));
        engine.set_fail_writes(false);
        let mut batch = WriteBatch::new();
        batch.put(Column::Meta, STATE_KEY, vec![1, 2, 3]);
        engine.write(batch).unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
    }
}
