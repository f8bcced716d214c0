//! [`RocksEngine`]: the [`KvEngine`] of a validator, on RocksDB.
//!
//! Every [`Column`] is a RocksDB column family of the same name (plus RocksDB's own
//! `default` family, which stays empty). A [`WriteBatch`] becomes one RocksDB write
//! batch, which RocksDB appends to its write-ahead log (WAL) as a single record: on
//! recovery a record is replayed whole or, if its tail was torn, not at all. That is
//! what makes a block (one batch) all-or-nothing across crashes.
//!
//! # What the sync policy guarantees
//!
//! The WAL is always on. [`SyncPolicy`] only decides whether `write` waits for it to
//! reach the disk:
//!
//! | policy | `write` returns after | survives a killed process | survives power loss / kernel crash |
//! |---|---|---|---|
//! | [`SyncPolicy::EveryBatch`] | the WAL record is written **and fsync'ed** | yes | yes |
//! | [`SyncPolicy::OsBuffered`] | the WAL record is in the OS page cache | yes | the most recent batches may be lost, never a part of one |
//!
//! A batch marked [`WriteBatch::require_sync`] is fsync'ed under either policy: the
//! consensus engine marks the batch that records a vertex it signed, so power loss
//! can never make a validator forget a round it signed for and sign it again.
//!
//! Memtables are flushed to SST files by RocksDB in the background; that never affects
//! durability, since the WAL covers everything not yet in an SST file.
//! [`KvEngine::flush`] syncs the WAL (so it turns every earlier `OsBuffered` write into
//! a durable one); [`RocksEngine::flush_memtables`] additionally writes the memtables to
//! SST files (useful before a backup or to shorten WAL replay).

use std::path::{Path, PathBuf};

use dualchain_storage::{
    Column, KvEngine, KvIter, Result, SCHEMA_VERSION, StorageError, SyncPolicy, WriteBatch,
    WriteOp, meta,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, ErrorKind, FlushOptions, IteratorMode, Options, ReadOptions, WriteOptions,
};

/// Most files one database keeps open (SST tables beyond it are reopened on
/// demand through the table cache).
pub const MAX_OPEN_FILES: i32 = 512;

/// How [`RocksEngine::open`] configures RocksDB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// When a committed batch reaches stable storage (see the module docs).
    pub sync: SyncPolicy,
    /// Create the database (and its directory) if it does not exist yet. When `false`,
    /// opening a missing or empty directory is an error.
    pub create_if_missing: bool,
    /// Size of the block cache shared by all column families, in bytes.
    pub block_cache_bytes: usize,
    /// Size of one memtable per column family, in bytes.
    pub write_buffer_bytes: usize,
    /// Background flush and compaction threads; `None` picks one per core, between 2 and 8.
    pub max_background_jobs: Option<i32>,
    /// Compress SST files with LZ4 (default `true`).
    pub compression: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::default(),
            create_if_missing: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
            max_background_jobs: None,
            compression: true,
        }
    }
}

impl StoreOptions {
    fn background_jobs(&self) -> i32 {
        self.max_background_jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(2, 8) as i32
        })
    }

    fn column_options(&self, cache: &Cache) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        let mut cf = Options::default();
        cf.set_block_based_table_factory(&table);
        cf.set_write_buffer_size(self.write_buffer_bytes);
        let compression = if self.compression {
            DBCompressionType::Lz4
        } else {
            DBCompressionType::None
        };
        cf.set_compression_type(compression);
        cf.set_bottommost_compression_type(compression);
        cf
    }
}

/// A [`KvEngine`] on RocksDB. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct RocksEngine {
    db: DB,
    path: PathBuf,
    sync: SyncPolicy,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

/// Maps a RocksDB error to a [`StorageError`], with what was being done and where.
pub(crate) fn map_rocks_error(err: rocksdb::Error, what: &str, path: &Path) -> StorageError {
    let message = format!("{what} ({}): {err}", path.display());
    match err.kind() {
        ErrorKind::Corruption => StorageError::Corruption(message),
        ErrorKind::InvalidArgument | ErrorKind::NotSupported => StorageError::Invalid(message),
        _ => StorageError::Io(message),
    }
}

fn io_error(err: std::io::Error, what: &str, path: &Path) -> StorageError {
    StorageError::Io(format!("{what} ({}): {err}", path.display()))
}

/// Whether `path` holds a database to open (`false`) or is to become a new one (`true`).
fn classify_directory(path: &Path, opts: &StoreOptions) -> Result<bool> {
    let missing = || {
        StorageError::Invalid(format!(
            "no dualchain database at {} and create_if_missing is off",
            path.display()
        ))
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if opts.create_if_missing {
                Ok(true)
            } else {
                Err(missing())
            }
        }
        Err(e) => Err(io_error(e, "cannot inspect the database directory", path)),
        Ok(m) if !m.is_dir() => Err(StorageError::Invalid(format!(
            "{} is not a directory, so it cannot hold a dualchain database",
            path.display()
        ))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(path)
                .map_err(|e| io_error(e, "cannot list the database directory", path))?;
            if entries.next().is_none() {
                return if opts.create_if_missing {
                    Ok(true)
                } else {
                    Err(missing())
                };
            }
            if path.join("CURRENT").is_file() {
                Ok(false)
            } else {
                Err(StorageError::Invalid(format!(
                    "{} is not a dualchain database: the directory is not empty and has no \
                     RocksDB CURRENT file (use an empty or missing directory for a new database)",
                    path.display()
                )))
            }
        }
    }
}

impl RocksEngine {
    /// Opens (or creates) the database at `path` and checks its schema version.
    ///
    /// Errors: [`StorageError::SchemaMismatch`] for a database of another schema
    /// version; [`StorageError::Invalid`] for a directory that is not a dualchain
    /// database (nothing in it is modified); [`StorageError::Io`] naming the path when
    /// another process (or another handle in this one) holds the database's lock.
    pub fn open(path: impl AsRef<Path>, opts: &StoreOptions) -> Result<Self> {
        let path = path.as_ref();
        let is_new = classify_directory(path, opts)?;

        let mut names: Vec<String> = Column::ALL.iter().map(|c| c.name().to_owned()).collect();
        if !is_new {
            let existing = DB::list_cf(&Options::default(), path)
                .map_err(|e| map_rocks_error(e, "cannot list column families", path))?;
            // The schema record lives in `meta`: without it this is not a dualchain
            // database at all. Other missing columns mean another schema version, which
            // the schema check reports; open what exists so nothing is created here.
            if !existing.iter().any(|e| e == Column::Meta.name()) {
                return Err(StorageError::Invalid(format!(
                    "{} is a RocksDB database but not a dualchain one: it has no `meta` \
                     column family (found {existing:?})",
                    path.display()
                )));
            }
            names = existing.into_iter().filter(|n| n != "default").collect();
        }

        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let mut db_opts = opts.column_options(&cache);
        db_opts.create_if_missing(is_new);
        db_opts.create_missing_column_families(is_new);
        db_opts.set_max_background_jobs(opts.background_jobs());
        db_opts.set_keep_log_file_num(10);
        // Bounded so a database with many SST files cannot take the descriptors
        // the API's connections and the peers need (the node budgets for it).
        db_opts.set_max_open_files(MAX_OPEN_FILES);
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, opts.column_options(&cache)));

        let db = DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(|e| {
            let text = e.to_string();
            if text.contains("lock") || text.contains("LOCK") {
                StorageError::Io(format!(
                    "database {} is locked: another process (or another handle in this \
                     process) has it open; stop that first ({text})",
                    path.display()
                ))
            } else {
                map_rocks_error(e, "cannot open the database", path)
            }
        })?;
        let engine = Self {
            db,
            path: path.to_path_buf(),
            sync: opts.sync,
        };
        meta::check_or_init_schema(&engine, is_new)?;
        if let Some(missing) = Column::ALL.iter().find(|c| engine.cf(**c).is_err()) {
            return Err(StorageError::Corruption(format!(
                "{} has schema version {SCHEMA_VERSION} but no `{missing}` column family",
                path.display()
            )));
        }
        if is_new {
            // The schema record is the last step of creating a database: make it durable.
            engine.flush()?;
        }
        tracing::debug!(path = %path.display(), is_new, sync = ?opts.sync, "opened RocksDB store");
        Ok(engine)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync policy of `write`.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.sync
    }

    /// A database-wide RocksDB property, e.g. `"rocksdb.stats"`,
    /// `"rocksdb.estimate-live-data-size"`; `None` if unknown or unavailable.
    pub fn property(&self, name: &str) -> Option<String> {
        self.db.property_value(name).ok().flatten()
    }

    /// A RocksDB property of one column family, e.g. `"rocksdb.estimate-num-keys"`,
    /// `"rocksdb.cfstats"`, `"rocksdb.num-files-at-level0"`.
    pub fn column_property(&self, column: Column, name: &str) -> Option<String> {
        let cf = self.cf(column).ok()?;
        self.db.property_value_cf(cf, name).ok().flatten()
    }

    /// An integer RocksDB property of one column family.
    pub fn column_property_u64(&self, column: Column, name: &str) -> Option<u64> {
        let cf = self.cf(column).ok()?;
        self.db.property_int_value_cf(cf, name).ok().flatten()
    }

    /// Syncs the WAL and writes every memtable to SST files, waiting for it.
    pub fn flush_memtables(&self) -> Result<()> {
        self.flush()?;
        let cfs = Column::ALL
            .iter()
            .map(|c| self.cf(*c))
            .collect::<Result<Vec<_>>>()?;
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        self.db
            .flush_cfs_opt(&cfs, &fo)
            .map_err(|e| map_rocks_error(e, "cannot flush memtables", &self.path))
    }

    fn cf(&self, column: Column) -> Result<&ColumnFamily> {
        self.db.cf_handle(column.name()).ok_or_else(|| {
            StorageError::Corruption(format!(
                "column family `{column}` is missing in {}",
                self.path.display()
            ))
        })
    }

    fn map_iter<'a>(&'a self, iter: rocksdb::DBIterator<'a>) -> KvIter<'a> {
        let path = &self.path;
        Box::new(iter.map(move |item| {
            item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                .map_err(|e| map_rocks_error(e, "scan failed", path))
        }))
    }
}

/// The smallest key greater than every key starting with `prefix`, if there is one.
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < u8::MAX {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

impl KvEngine for RocksEngine {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.cf(column)?;
        self.db
            .get_pinned_cf(cf, key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| map_rocks_error(e, "read failed", &self.path))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let sync = self.sync.syncs(&batch);
        let mut rocks =
            rocksdb::WriteBatch::with_capacity_bytes(batch.payload_bytes() + 16 * batch.len() + 12);
        for op in batch.into_ops() {
            match op {
                WriteOp::Put { column, key, value } => rocks.put_cf(self.cf(column)?, key, value),
                WriteOp::Delete { column, key } => rocks.delete_cf(self.cf(column)?, key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(rocks, &wo).map_err(|e| {
            map_rocks_error(
                e,
                "write batch failed, nothing of it was applied",
                &self.path,
            )
        })
    }

    fn scan_from<'a>(&'a self, column: Column, start: &[u8]) -> Result<KvIter<'a>> {
        let cf = self.cf(column)?;
        // A RocksDB iterator reads from an implicit snapshot taken at its creation.
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(start, Direction::Forward));
        Ok(self.map_iter(iter))
    }

    fn scan_prefix<'a>(&'a self, column: Column, prefix: &[u8]) -> Result<KvIter<'a>> {
        let Some(bound) = prefix_upper_bound(prefix) else {
            // Empty or all-0xFF prefix: every key from `prefix` on matches or the default
            // filter handles it.
            let prefix = prefix.to_vec();
            let iter = self.scan_from(column, &prefix)?;
            return Ok(Box::new(iter.take_while(move |item| match item {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })));
        };
        let cf = self.cf(column)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(bound);
        let iter = self
            .db
            .iterator_cf_opt(cf, ro, IteratorMode::From(prefix, Direction::Forward));
        Ok(self.map_iter(iter))
    }

    fn flush(&self) -> Result<()> {
        self.db
            .flush_wal(true)
            .map_err(|e| map_rocks_error(e, "cannot sync the write-ahead log", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_upper_bound(&[0xff, 0xff]), None);
        assert_eq!(prefix_upper_bound(b""), None);
    }
}
