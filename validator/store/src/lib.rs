//! RocksDB storage engine and snapshot files of a dualchain validator.
//!
//! - [`RocksEngine`] implements [`dualchain_storage::KvEngine`] on RocksDB: one column
//!   family per [`dualchain_storage::Column`], one RocksDB write batch per
//!   [`dualchain_storage::WriteBatch`], schema check at open. See [`engine`] for what the
//!   [`dualchain_storage::SyncPolicy`] guarantees (WAL and flush behaviour).
//! - [`snapshot`] writes and reads single-file snapshots from which a fresh node
//!   bootstraps: [`export_snapshot`], [`import_snapshot`] (verify everything, then rename
//!   into place) and [`maybe_snapshot`], which the node calls after each committed block.
//!   See [`snapshot`] for the byte layout.

pub mod engine;
pub mod snapshot;

pub use engine::{MAX_OPEN_FILES, RocksEngine, StoreOptions};
pub use snapshot::{
    SnapshotError, SnapshotInfo, SnapshotPolicy, describe_snapshot, export_snapshot,
    import_snapshot, import_snapshot_checked, list_snapshots, maybe_snapshot, snapshot_file_name,
    state_root,
};
