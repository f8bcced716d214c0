//! The commit journal: what makes a crash between "consensus decided" and "block
//! written" harmless.
//!
//! The consensus engine persists its decisions (the committer's next sequence) when it
//! makes them; the block that carries a decision is executed and written later, by the
//! executor. A crash in between would leave the engine past sub-DAGs no block holds,
//! and the sealer would refuse the gap forever. So every committed sub-DAG is written,
//! with its vertices, **in the same batch** as the engine's own state change (the
//! driver buffers the engine's writes, see [`BufferedEngine`]), and removed in the
//! batch that commits the block holding it, together with the sealer's state. At
//! start the executor replays the journal from the sealer's next sequence.

use std::sync::{Arc, Mutex, PoisonError};

use dualchain_consensus::consensus::CommittedSubDag;
use dualchain_core::Digest;
use dualchain_core::encoding::{Canonical, DecodeError, Reader, write_len};
use dualchain_core::types::{Vertex, VertexRef};
use dualchain_storage::{Column, KvEngine, StorageError, WriteBatch};

/// Meta key of the sealer state (written with every block).
pub const SEALER_STATE_KEY: &[u8] = b"node/sealer-state";
/// Meta key prefix of journal entries, followed by the big-endian sequence number.
const JOURNAL_PREFIX: &[u8] = b"node/journal/";
/// Vertices one journaled sub-DAG may hold (a leader's whole uncommitted history).
const MAX_JOURNAL_VERTICES: usize = 1_000_000;
const JOURNAL_VERSION: u8 = 1;

pub fn journal_key(sequence: u64) -> Vec<u8> {
    let mut key = JOURNAL_PREFIX.to_vec();
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// Encodes a committed sub-DAG, vertices included.
pub fn encode_subdag(subdag: &CommittedSubDag) -> Vec<u8> {
    let mut out = vec![JOURNAL_VERSION];
    out.extend_from_slice(&subdag.sequence.to_le_bytes());
    out.extend_from_slice(&subdag.leader.author.to_le_bytes());
    out.extend_from_slice(subdag.leader.digest.as_bytes());
    out.extend_from_slice(&subdag.leader_round.to_le_bytes());
    out.extend_from_slice(&subdag.timestamp_ms.to_le_bytes());
    write_len(&mut out, subdag.vertices.len());
    for v in &subdag.vertices {
        let bytes = v.to_canonical_bytes();
        write_len(&mut out, bytes.len());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes [`encode_subdag`]'s bytes; every vertex is re-hashed and size-checked.
pub fn decode_subdag(bytes: &[u8]) -> Result<CommittedSubDag, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.read_u8("journal entry")?;
    if version != JOURNAL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            what: "journal entry",
            found: version,
            expected: JOURNAL_VERSION,
        });
    }
    let sequence = r.read_u64("sequence")?;
    let author = r.read_u16("leader author")?;
    let digest: Digest = dualchain_core::encoding::Decode::decode_from(&mut r)?;
    let leader_round = r.read_u64("leader round")?;
    let timestamp_ms = r.read_u64("timestamp")?;
    let count = r.read_len(MAX_JOURNAL_VERTICES, 4, "vertices")?;
    let mut vertices = Vec::with_capacity(count);
    for _ in 0..count {
        let bytes = r.read_var_bytes(<Vertex as Canonical>::MAX_ENCODED_LEN, "vertex")?;
        vertices.push(Arc::new(Vertex::from_canonical_bytes(bytes)?));
    }
    r.finish("journal entry")?;
    Ok(CommittedSubDag {
        sequence,
        leader: VertexRef { author, digest },
        leader_round,
        timestamp_ms,
        vertices,
    })
}

/// Journal entries from `from_sequence` on, in order.
pub fn read_journal(
    engine: &dyn KvEngine,
    from_sequence: u64,
) -> Result<Vec<CommittedSubDag>, anyhow::Error> {
    let mut out = Vec::new();
    for item in engine.scan_from(Column::Meta, &journal_key(from_sequence))? {
        let (key, value) = item?;
        if !key.starts_with(JOURNAL_PREFIX) {
            break;
        }
        let subdag = decode_subdag(&value)
            .map_err(|e| anyhow::anyhow!("corrupt commit journal entry: {e}"))?;
        if let Some(prev) = out.last().map(|s: &CommittedSubDag| s.sequence)
            && subdag.sequence != prev + 1
        {
            anyhow::bail!(
                "commit journal has a gap: sequence {} follows {prev}",
                subdag.sequence
            );
        }
        out.push(subdag);
    }
    Ok(out)
}

/// Deletes of journal entries below `below` (those already inside committed blocks).
pub fn prune_ops(
    engine: &dyn KvEngine,
    below: u64,
    batch: &mut WriteBatch,
) -> Result<(), StorageError> {
    for item in engine.scan_prefix(Column::Meta, JOURNAL_PREFIX)? {
        let (key, _) = item?;
        let seq = key[JOURNAL_PREFIX.len()..]
            .try_into()
            .map(u64::from_be_bytes)
            .unwrap_or(u64::MAX);
        if seq >= below {
            break;
        }
        batch.delete(Column::Meta, key);
    }
    Ok(())
}

/// A [`KvEngine`] that holds back writes until [`BufferedEngine::take`]: the engine's
/// store writes land in the driver's batch next to the journal entries. Reads go to
/// the underlying engine (the consensus engine only reads vertices it evicted from
/// memory long before, never what it wrote in the same step).
#[derive(Clone)]
pub struct BufferedEngine<E> {
    inner: E,
    pending: Arc<Mutex<WriteBatch>>,
}

impl<E: KvEngine> BufferedEngine<E> {
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            pending: Arc::new(Mutex::new(WriteBatch::new())),
        }
    }

    /// The writes held back since the last call.
    pub fn take(&self) -> WriteBatch {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<E: KvEngine> KvEngine for BufferedEngine<E> {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(column, key)
    }

    fn scan_from<'a>(
        &'a self,
        column: Column,
        start: &[u8],
    ) -> Result<dualchain_storage::KvIter<'a>, StorageError> {
        self.inner.scan_from(column, start)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch);
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::types::{ChainId, UnsignedVertex};
    use dualchain_storage::MemoryEngine;

    fn subdag(sequence: u64) -> CommittedSubDag {
        let keys = dualchain_consensus::keys::sim_validator_key(0);
        let vertices: Vec<Arc<Vertex>> = (0..3)
            .map(|round| {
                Arc::new(
                    UnsignedVertex {
                        chain: ChainId::Delta,
                        epoch: 0,
                        round,
                        author: 0,
                        parents: vec![],
                        transactions: vec![],
                        timestamp_ms: 1000 + round,
                    }
                    .sign(&keys),
                )
            })
            .collect();
        CommittedSubDag {
            sequence,
            leader: VertexRef {
                author: 0,
                digest: vertices[2].digest(),
            },
            leader_round: 2,
            timestamp_ms: 1234,
            vertices,
        }
    }

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let s = subdag(7);
        let bytes = encode_subdag(&s);
        assert_eq!(decode_subdag(&bytes).unwrap(), s);
        for cut in [0, 1, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_subdag(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        // A flipped byte inside a vertex changes its digest or breaks its encoding;
        // either way the entry is not the same sub-DAG.
        assert_ne!(decode_subdag(&flipped).ok(), Some(s));
    }

    #[test]
    fn journal_reads_in_order_from_a_sequence_and_prunes_below() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for seq in 0..5 {
            batch.put(Column::Meta, journal_key(seq), encode_subdag(&subdag(seq)));
        }
        batch.put(Column::Meta, SEALER_STATE_KEY, vec![1]);
        engine.write(batch).unwrap();
        let from2: Vec<u64> = read_journal(&engine, 2)
            .unwrap()
            .iter()
            .map(|s| s.sequence)
            .collect();
        assert_eq!(from2, vec![2, 3, 4]);
        let mut prune = WriteBatch::new();
        prune_ops(&engine, 3, &mut prune).unwrap();
        assert_eq!(prune.len(), 3);
        engine.write(prune).unwrap();
        let left: Vec<u64> = read_journal(&engine, 0)
            .unwrap()
            .iter()
            .map(|s| s.sequence)
            .collect();
        assert_eq!(left, vec![3, 4]);
    }

    #[test]
    fn buffered_engine_holds_writes_until_taken() {
        let inner = Arc::new(MemoryEngine::new());
        let buffered = BufferedEngine::new(inner.clone());
        let mut b = WriteBatch::new();
        b.put(Column::Meta, b"k".to_vec(), b"v".to_vec());
        buffered.write(b).unwrap();
        assert_eq!(inner.get(Column::Meta, b"k").unwrap(), None);
        let taken = buffered.take();
        assert_eq!(taken.len(), 1);
        inner.write(taken).unwrap();
        assert_eq!(
            buffered.get(Column::Meta, b"k").unwrap(),
            Some(b"v".to_vec())
        );
        assert!(buffered.take().is_empty());
    }
}
