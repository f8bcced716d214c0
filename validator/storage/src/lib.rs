//! Storage engine traits of dualchain, free of RocksDB types.
//!
//! The consensus core, the executor and the simulator talk to storage only through
//! [`KvEngine`]: a handful of named column families holding byte keys and values,
//! read point-wise or by ordered scan, written through an all-or-nothing
//! [`WriteBatch`]. The production engine (RocksDB) lives in `dualchain-store`; the
//! [`MemoryEngine`] here serves unit tests and the deterministic simulator, and obeys
//! the same contract (atomic batches, ordered scans, schema check at open).
//!
//! Why bytes and not typed records: typed encodings belong to `dualchain-core` (the
//! canonical encoding), while an engine only has to guarantee durability and
//! atomicity. Keeping the trait byte-level keeps engines small and swappable, as in
//! TiKV's `engine_traits`.
//!
//! Layout conventions shared by every engine (see [`keys`] and [`meta`]):
//! - `blocks`, `certificates`: key = block height, 8 bytes big-endian (so scans run
//!   in height order);
//! - `receipts`: key = height (8 bytes BE) ‖ transaction index (4 bytes BE);
//! - `vertices`: key = round (8 bytes BE) ‖ vertex digest (32 bytes);
//! - `state`: key = the state key itself; the state root is the sparse Merkle root
//!   over `(hash_key(key), hash_value(value))` of every entry of this column;
//! - `meta`: a few named records, among them the schema version and the chain head;
//! - `consensus`: the consensus engine's validator-private records (never in a
//!   snapshot).

pub mod keys;
mod memory;
pub mod meta;
pub mod state;

pub use memory::MemoryEngine;

use std::fmt;

/// The storage schema this build reads and writes ("storage v3": v2 plus the
/// validator-private `consensus` column).
///
/// Bumped whenever the layout of any column changes incompatibly; an engine refuses
/// to open a database written with another version instead of misreading it.
pub const SCHEMA_VERSION: u32 = 3;

/// A column family. Every engine creates all of them when it opens a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// DAG vertices by round and digest.
    Vertices,
    /// Sealed blocks (header and body) by height.
    Blocks,
    /// Transaction receipts by height and index.
    Receipts,
    /// The chain state (accounts, balances, records) by state key.
    State,
    /// Block certificates (2f+1 signatures over a header) by height.
    Certificates,
    /// Small named records: schema version, chain head, snapshot bookkeeping.
    Meta,
    /// Validator-private records: the consensus engine's own state (its last proposed
    /// round among them), its commit records and commit marks. Never exported in a
    /// snapshot: importing another node's (or an old) snapshot must not be able to
    /// roll back what this validator signed.
    Consensus,
}

impl Column {
    /// Every column, in a fixed order.
    pub const ALL: [Column; 7] = [
        Column::Vertices,
        Column::Blocks,
        Column::Receipts,
        Column::State,
        Column::Certificates,
        Column::Meta,
        Column::Consensus,
    ];

    /// The column-family name on disk.
    pub const fn name(self) -> &'static str {
        match self {
            Column::Vertices => "vertices",
            Column::Blocks => "blocks",
            Column::Receipts => "receipts",
            Column::State => "state",
            Column::Certificates => "certificates",
            Column::Meta => "meta",
            Column::Consensus => "consensus",
        }
    }

    /// Position in [`Column::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or overwrite `key` with `value`.
    Put {
        column: Column,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove `key` (a no-op if it is absent).
    Delete { column: Column, key: Vec<u8> },
}

/// An ordered list of writes applied all-or-nothing by [`KvEngine::write`].
///
/// A sealed block — header, body, receipts, state changes, certificate and the new
/// chain head — is always one batch, so a crash can never leave half a block behind.
/// Operations apply in order: a later put or delete of the same key wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
    payload_bytes: usize,
    /// Must reach stable storage before `write` returns whatever the engine's
    /// [`SyncPolicy`] (see [`WriteBatch::require_sync`]).
    must_sync: bool,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(ops: usize) -> Self {
        Self {
            ops: Vec::with_capacity(ops),
            payload_bytes: 0,
            must_sync: false,
        }
    }

    /// Makes this batch durable before `write` returns even under
    /// [`SyncPolicy::OsBuffered`]: for what a validator signed (its last
    /// proposed round and vertex). Losing that to a power cut would let it sign
    /// a second, different vertex for the same round — equivocation by an
    /// honest node.
    pub fn require_sync(&mut self) {
        self.must_sync = true;
    }

    /// Whether this batch must be synced regardless of the policy.
    pub fn requires_sync(&self) -> bool {
        self.must_sync
    }

    pub fn put(&mut self, column: Column, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.payload_bytes += key.len() + value.len();
        self.ops.push(WriteOp::Put { column, key, value });
    }

    pub fn delete(&mut self, column: Column, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.payload_bytes += key.len();
        self.ops.push(WriteOp::Delete { column, key });
    }

    /// Appends every operation of `other` after the operations of `self`.
    pub fn extend(&mut self, other: WriteBatch) {
        self.payload_bytes += other.payload_bytes;
        self.must_sync |= other.must_sync;
        self.ops.extend(other.ops);
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of keys and values carried (for metrics and size limits).
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<WriteOp> {
        self.ops
    }
}

/// When a committed batch reaches stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync the write-ahead log before `write` returns: a committed block survives
    /// power loss. The default for validators.
    #[default]
    EveryBatch,
    /// Leave the flush to the operating system: a killed process loses nothing, a
    /// power loss may lose the most recent batches (never a partial one). For
    /// benchmarks and simulations.
    OsBuffered,
}

impl SyncPolicy {
    /// Whether `batch` must be synced before the write returns.
    pub fn syncs(self, batch: &WriteBatch) -> bool {
        self == SyncPolicy::EveryBatch || batch.requires_sync()
    }
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every-batch" | "sync" => Ok(SyncPolicy::EveryBatch),
            "os-buffered" | "none" => Ok(SyncPolicy::OsBuffered),
            other => Err(format!(
                "unknown sync policy {other:?}: expected \"every-batch\" or \"os-buffered\""
            )),
        }
    }
}

/// Errors of a storage engine. Messages name the database path where it helps.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    #[error(
        "storage schema mismatch: the database has schema version {found}, this build reads version {expected}; \
         export a snapshot with the matching release and import it, or start from an empty directory"
    )]
    SchemaMismatch { found: u32, expected: u32 },
    #[error("storage corruption: {0}")]
    Corruption(String),
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("invalid storage request: {0}")]
    Invalid(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An ordered scan of one column: `(key, value)` pairs in ascending key order.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send + 'a>;

/// A key-value storage engine with column families and atomic batches.
///
/// Contract (checked by [`conformance`] for every engine):
/// - `write` applies a whole batch or nothing, also across a crash;
/// - after `write` returns, `get` and scans see the batch;
/// - scans return keys in ascending bytewise order; a scan sees a consistent view of
///   its column as of its creation;
/// - engines check [`SCHEMA_VERSION`] at open (see [`meta::check_or_init_schema`]).
pub trait KvEngine: Send + Sync {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Applies `batch` atomically under the engine's [`SyncPolicy`] (synced
    /// anyway if [`WriteBatch::requires_sync`]).
    fn write(&self, batch: WriteBatch) -> Result<()>;

    /// Scans `column` from `start` (inclusive) upwards.
    fn scan_from<'a>(&'a self, column: Column, start: &[u8]) -> Result<KvIter<'a>>;

    /// Scans the keys of `column` that begin with `prefix`.
    fn scan_prefix<'a>(&'a self, column: Column, prefix: &[u8]) -> Result<KvIter<'a>> {
        let prefix = prefix.to_vec();
        let iter = self.scan_from(column, &prefix)?;
        Ok(Box::new(iter.take_while(move |item| match item {
            Ok((key, _)) => key.starts_with(&prefix),
            Err(_) => true,
        })))
    }

    /// Forces everything written so far to stable storage.
    fn flush(&self) -> Result<()>;
}

impl<E: KvEngine + ?Sized> KvEngine for std::sync::Arc<E> {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(column, key)
    }
    fn write(&self, batch: WriteBatch) -> Result<()> {
        (**self).write(batch)
    }
    fn scan_from<'a>(&'a self, column: Column, start: &[u8]) -> Result<KvIter<'a>> {
        (**self).scan_from(column, start)
    }
    fn scan_prefix<'a>(&'a self, column: Column, prefix: &[u8]) -> Result<KvIter<'a>> {
        (**self).scan_prefix(column, prefix)
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
}

/// Behaviour every [`KvEngine`] must show; engines run these from their own tests.
pub mod conformance {
    use super::*;

    /// Puts, overwrites, deletes, batch ordering, ordered and prefix scans.
    pub fn basic_contract(engine: &dyn KvEngine) {
        let mut batch = WriteBatch::new();
        batch.put(Column::State, b"b".to_vec(), b"2".to_vec());
        batch.put(Column::State, b"a".to_vec(), b"1".to_vec());
        batch.put(Column::State, b"ab".to_vec(), b"x".to_vec());
        batch.put(Column::State, b"c".to_vec(), b"3".to_vec());
        batch.put(Column::Blocks, b"a".to_vec(), b"other column".to_vec());
        batch.delete(Column::State, b"c".to_vec());
        batch.put(Column::State, b"b".to_vec(), b"2'".to_vec());
        engine.write(batch).expect("write batch");

        assert_eq!(
            engine.get(Column::State, b"a").unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(
            engine.get(Column::State, b"b").unwrap(),
            Some(b"2'".to_vec())
        );
        assert_eq!(engine.get(Column::State, b"c").unwrap(), None);
        assert_eq!(
            engine.get(Column::Blocks, b"a").unwrap(),
            Some(b"other column".to_vec())
        );
        assert_eq!(engine.get(Column::Receipts, b"a").unwrap(), None);

        let all: Vec<_> = engine
            .scan_from(Column::State, b"")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(all, vec![b"a".to_vec(), b"ab".to_vec(), b"b".to_vec()]);

        let from_ab: Vec<_> = engine
            .scan_from(Column::State, b"ab")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(from_ab, vec![b"ab".to_vec(), b"b".to_vec()]);

        let prefixed: Vec<_> = engine
            .scan_prefix(Column::State, b"a")
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(prefixed, vec![b"a".to_vec(), b"ab".to_vec()]);

        engine.flush().expect("flush");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_and_indexed_in_order() {
        let names: std::collections::BTreeSet<_> = Column::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Column::ALL.len());
        for (i, c) in Column::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn batch_counts_payload() {
        let mut b = WriteBatch::new();
        b.put(Column::Meta, b"k".to_vec(), b"vv".to_vec());
        b.delete(Column::Meta, b"kk".to_vec());
        assert_eq!(b.len(), 2);
        assert_eq!(b.payload_bytes(), 5);
        let mut c = WriteBatch::new();
        c.put(Column::State, b"x".to_vec(), b"y".to_vec());
        b.extend(c);
        assert_eq!(b.len(), 3);
        assert_eq!(b.payload_bytes(), 7);
    }

    #[test]
    fn sync_policy_parses() {
        assert_eq!("every-batch".parse(), Ok(SyncPolicy::EveryBatch));
        let mut signed = WriteBatch::new();
        signed.put(Column::Consensus, b"state".to_vec(), b"round 7".to_vec());
        assert!(!SyncPolicy::OsBuffered.syncs(&signed));
        signed.require_sync();
        assert!(SyncPolicy::OsBuffered.syncs(&signed));
        let mut merged = WriteBatch::new();
        merged.extend(signed);
        assert!(merged.requires_sync(), "extending keeps the requirement");
        assert!(SyncPolicy::EveryBatch.syncs(&WriteBatch::new()));
        assert_eq!("os-buffered".parse(), Ok(SyncPolicy::OsBuffered));
        assert!("sometimes".parse::<SyncPolicy>().is_err());
    }
}
