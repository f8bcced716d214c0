//! Snapshot files: one self-verifying file per snapshot, from which a fresh node
//! bootstraps.
//!
//! # File format (version 1)
//!
//! All integers little-endian. `H` = header length = 89, `T` = trailer length = 49.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"DCSNAP\0\x01"` ([`MAGIC`]) |
//! | 8 | 4 | format version, u32 ([`FORMAT_VERSION`] = 1) |
//! | 12 | 4 | storage schema version, u32 ([`dualchain_storage::SCHEMA_VERSION`]) |
//! | 16 | 1 | chain (0 = Alpha, 1 = Delta) |
//! | 17 | 8 | height of the chain head, u64 |
//! | 25 | 32 | state root of the chain head |
//! | 57 | 32 | block digest of the chain head |
//! | 89 | … | entries, each: column tag u8 ([`Column::index`]: 1 `blocks`, 3 `state`, 4 `certificates`, 5 `meta`; any other tag is refused) ‖ key length u32 ‖ value length u32 ‖ key ‖ value |
//! | len − 49 | 1 | end-of-entries tag `0xFF` |
//! | len − 48 | 8 | number of entries, u64 |
//! | len − 40 | 8 | trailer magic `b"DCSNEND\x01"` ([`TRAILER_MAGIC`]) |
//! | len − 32 | 32 | BLAKE3 of bytes `0 .. len − 32` (everything before it) |
//!
//! Entries are sorted by (column tag, key), strictly: no duplicates. Keys are at most
//! [`MAX_KEY_LEN`] (1 KiB) and values at most [`MAX_VALUE_LEN`] (64 MiB). A snapshot holds
//! what a node needs to resume at the head: every entry of `state` and `meta` (which
//! includes the schema version and the chain head records), plus the `blocks` and
//! `certificates` entries at the head height. Receipts, older blocks and DAG vertices
//! are not part of it.
//!
//! The trailer magic lets an importer tell a file cut short ([`SnapshotError::Truncated`])
//! from one with damaged bytes ([`SnapshotError::ChecksumMismatch`]) before parsing.
//!
//! # Export
//!
//! [`export_snapshot`] streams the file through a `BufWriter` into a temporary file
//! next to the target, fsyncs it, checks that the exported `state` entries hash to the
//! head's state root and that the head did not move meanwhile, and only then renames it
//! into place (and fsyncs the directory). A crash or error never leaves a partial file
//! under the final name. Memory use is 64 bytes per state entry (the leaf hashes for
//! the root check), never the entries themselves.
//!
//! # Import: verify, then rename
//!
//! [`import_snapshot`] never exposes anything it has not verified:
//! 1. the target directory must be missing or empty, else it is left untouched;
//! 2. a first pass checks the magic, the length, the trailer magic and the checksum of
//!    the whole file, then the header (format, schema version, chain);
//! 3. a second pass streams the entries into a new database in a sibling temporary
//!    directory `<db_dir>.importing-<random>`, checking every length against the
//!    limits, the entry order, the checksum again and the entry count;
//! 4. the state root is recomputed from the `state` column *of the new database* (with
//!    `dualchain-merkle`) and compared with the header, as is the imported chain head;
//! 5. only then is the temporary directory renamed to `db_dir` (an atomic step), and the
//!    parent directory fsynced.
//!
//! On any error the temporary directory is deleted. A node that crashes mid-import
//! therefore sees either no database or a complete, verified one: never a half-imported
//! database that would open fine and silently miss state.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};
use dualchain_storage::meta::{self, ChainHead};
use dualchain_storage::{
    Column, KvEngine, SCHEMA_VERSION, StorageError, SyncPolicy, WriteBatch, keys,
};

use crate::{RocksEngine, StoreOptions};

/// First 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"DCSNAP\0\x01";
/// Marks the end of the trailer's fixed fields, just before the checksum.
pub const TRAILER_MAGIC: [u8; 8] = *b"DCSNEND\x01";
/// The snapshot format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the header, magic included.
pub const HEADER_LEN: usize = 89;
/// Length of the trailer: end tag, entry count, trailer magic, checksum.
pub const TRAILER_LEN: usize = 1 + 8 + 8 + 32;
/// Longest key a snapshot may hold.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest value a snapshot may hold.
pub const MAX_VALUE_LEN: usize = 64 << 20;
/// File extension of snapshots written by [`maybe_snapshot`].
pub const SNAPSHOT_EXTENSION: &str = "dcsnap";

/// The columns a snapshot carries, in tag order. Never `consensus` (validator-private
/// records), `vertices` or `receipts`.
pub const SNAPSHOT_COLUMNS: [Column; 4] = [
    Column::Blocks,
    Column::State,
    Column::Certificates,
    Column::Meta,
];

const END_TAG: u8 = 0xFF;
const ENTRY_HEADER_LEN: u64 = 1 + 4 + 4;
const MAX_CHAIN: u8 = 1;
/// Imported entries are written in batches of about this many payload bytes.
const IMPORT_BATCH_BYTES: usize = 4 << 20;
const IMPORT_BATCH_OPS: usize = 10_000;

/// What a snapshot holds, as returned by [`export_snapshot`] and [`import_snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// 0 = Alpha, 1 = Delta.
    pub chain: u8,
    pub height: u64,
    pub state_root: [u8; 32],
    pub block_digest: [u8; 32],
    /// Number of entries (all columns).
    pub entries: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// The BLAKE3 checksum stored in the trailer.
    pub checksum: [u8; 32],
}

impl SnapshotInfo {
    /// The chain head this snapshot resumes from.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            chain: self.chain,
            height: self.height,
            block_digest: self.block_digest,
            state_root: self.state_root,
        }
    }
}

fn hex32(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

/// Why a snapshot could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O error: {context} ({}): {source}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "cannot export a snapshot: the database has no chain head (no block was committed yet)"
    )]
    NoHead,
    #[error("snapshot file {} is empty", .path.display())]
    Empty { path: PathBuf },
    #[error(
        "{} is not a dualchain snapshot: it starts with {found} instead of the magic {}",
        .path.display(), hex::encode(MAGIC)
    )]
    BadMagic { path: PathBuf, found: String },
    #[error("snapshot file {} is truncated ({len} bytes): {detail}", .path.display())]
    Truncated {
        path: PathBuf,
        len: u64,
        detail: String,
    },
    #[error(
        "snapshot file {} is corrupt: its contents hash to {} but the trailer records {}",
        .path.display(), hex32(.computed), hex32(.stored)
    )]
    ChecksumMismatch {
        path: PathBuf,
        stored: [u8; 32],
        computed: [u8; 32],
    },
    #[error(
        "snapshot file {} has format version {found}; this build reads version {}",
        .path.display(), FORMAT_VERSION
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error(
        "snapshot file {} was written with storage schema version {found}; this build uses \
         version {expected}",
        .path.display()
    )]
    SchemaMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("snapshot file {} has an invalid header: {detail}", .path.display())]
    BadHeader { path: PathBuf, detail: String },
    #[error("snapshot file {} was refused: {detail}", .path.display())]
    Rejected { path: PathBuf, detail: String },
    #[error(
        "snapshot file {}: the entry at byte {offset} has a {what} of {len} bytes, over the \
         limit of {limit}",
        .path.display()
    )]
    LimitExceeded {
        path: PathBuf,
        offset: u64,
        what: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("snapshot file {} is malformed at byte {offset}: {detail}", .path.display())]
    Malformed {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error(
        "snapshot file {} holds {found} entries but its trailer records {recorded}",
        .path.display()
    )]
    EntryCountMismatch {
        path: PathBuf,
        found: u64,
        recorded: u64,
    },
    #[error(
        "state root mismatch on {context}: the state entries hash to {} but the chain head \
         records {}",
        hex32(.computed), hex32(.expected)
    )]
    StateRootMismatch {
        context: &'static str,
        expected: [u8; 32],
        computed: [u8; 32],
    },
    #[error("the imported chain head {found:?} differs from the snapshot header {expected:?}")]
    HeadMismatch {
        expected: Box<ChainHead>,
        found: Option<Box<ChainHead>>,
    },
    #[error(
        "refusing to import a snapshot into {}: it exists and is not an empty directory; \
         nothing was changed",
        .path.display()
    )]
    TargetNotEmpty { path: PathBuf },
    #[error(
        "the chain head changed while the snapshot was being exported (height {before} → \
         {after:?}); export from a database that is not being written"
    )]
    ConcurrentWrite { before: u64, after: Option<u64> },
    #[error(
        "cannot export: a {what} of {len} bytes in column `{column}` exceeds the snapshot \
         limit of {limit} bytes"
    )]
    EntryTooLarge {
        column: Column,
        what: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("cannot export: the chain head has chain id {0}, expected 0 (Alpha) or 1 (Delta)")]
    InvalidChain(u8),
    #[error("the head to snapshot ({requested:?}) is not the database's chain head ({actual:?})")]
    StaleHead {
        requested: Box<ChainHead>,
        actual: Option<Box<ChainHead>>,
    },
    #[error("invalid path {}: {detail}", .path.display())]
    InvalidPath { path: PathBuf, detail: &'static str },
}

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

fn io_err<'a>(
    context: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------
// Header

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    format: u32,
    schema: u32,
    head: ChainHead,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.format.to_le_bytes());
        out[12..16].copy_from_slice(&self.schema.to_le_bytes());
        out[16] = self.head.chain;
        out[17..25].copy_from_slice(&self.head.height.to_le_bytes());
        out[25..57].copy_from_slice(&self.head.state_root);
        out[57..89].copy_from_slice(&self.head.block_digest);
        out
    }

    /// Decodes a header whose magic was already checked.
    fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let mut state_root = [0u8; 32];
        let mut block_digest = [0u8; 32];
        state_root.copy_from_slice(&bytes[25..57]);
        block_digest.copy_from_slice(&bytes[57..89]);
        Self {
            format: u32_at(8),
            schema: u32_at(12),
            head: ChainHead {
                chain: bytes[16],
                height: u64::from_le_bytes(bytes[17..25].try_into().expect("8 bytes")),
                state_root,
                block_digest,
            },
        }
    }

    fn validate(&self, path: &Path) -> Result<()> {
        if self.format != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: self.format,
            });
        }
        if self.schema != SCHEMA_VERSION {
            return Err(SnapshotError::SchemaMismatch {
                path: path.to_path_buf(),
                found: self.schema,
                expected: SCHEMA_VERSION,
            });
        }
        if self.head.chain > MAX_CHAIN {
            return Err(SnapshotError::BadHeader {
                path: path.to_path_buf(),
                detail: format!(
                    "chain id {} (expected 0 = Alpha or 1 = Delta)",
                    self.head.chain
                ),
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Export

/// A writer that hashes and counts everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Deletes a temporary file or directory when dropped, unless disarmed.
struct TempPath {
    path: Option<PathBuf>,
    dir: bool,
}

impl TempPath {
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let result = if self.dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = result
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary snapshot path");
            }
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name_of(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SnapshotError::InvalidPath {
            path: path.to_path_buf(),
            detail: "it has no file name",
        })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot sync the directory", dir))
}

fn write_entry<W: Write>(
    w: &mut W,
    column: Column,
    key: &[u8],
    value: &[u8],
    path: &Path,
) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(SnapshotError::EntryTooLarge {
            column,
            what: "key",
            len: key.len(),
            limit: MAX_KEY_LEN,
        });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(SnapshotError::EntryTooLarge {
            column,
            what: "value",
            len: value.len(),
            limit: MAX_VALUE_LEN,
        });
    }
    let mut entry_header = [0u8; ENTRY_HEADER_LEN as usize];
    entry_header[0] = column.index() as u8;
    entry_header[1..5].copy_from_slice(&(key.len() as u32).to_le_bytes());
    entry_header[5..9].copy_from_slice(&(value.len() as u32).to_le_bytes());
    w.write_all(&entry_header)
        .and_then(|_| w.write_all(key))
        .and_then(|_| w.write_all(value))
        .map_err(io_err("cannot write the snapshot", path))
}

/// Exports the chain head's resumable state of `engine` to the snapshot file `out`.
///
/// The file appears under `out` only when complete and verified (see the module docs);
/// an existing file there is replaced. The database must not be written meanwhile: a
/// moved chain head is detected and reported as [`SnapshotError::ConcurrentWrite`].
pub fn export_snapshot(engine: &dyn KvEngine, out: &Path) -> Result<SnapshotInfo> {
    let head = meta::read_head(engine)?.ok_or(SnapshotError::NoHead)?;
    if head.chain > MAX_CHAIN {
        return Err(SnapshotError::InvalidChain(head.chain));
    }
    let dir = parent_dir(out);
    let name = file_name_of(out)?;
    fs::create_dir_all(dir).map_err(io_err("cannot create the snapshot directory", dir))?;
    let tmp_path = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(io_err(
            "cannot create the temporary snapshot file",
            &tmp_path,
        ))?;
    let mut guard = TempPath {
        path: Some(tmp_path.clone()),
        dir: false,
    };

    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let header = Header {
        format: FORMAT_VERSION,
        schema: SCHEMA_VERSION,
        head,
    };
    w.write_all(&header.encode())
        .map_err(io_err("cannot write the snapshot", &tmp_path))?;

    let mut entries = 0u64;
    let mut leaves = Vec::new();
    let head_key = keys::height_key(head.height);
    // Columns in ascending tag order, keys ascending within each: the order import checks.
    for column in SNAPSHOT_COLUMNS {
        match column {
            Column::Blocks | Column::Certificates => {
                if let Some(value) = engine.get(column, &head_key)? {
                    write_entry(&mut w, column, &head_key, &value, &tmp_path)?;
                    entries += 1;
                }
            }
            _ => {
                for item in engine.scan_from(column, b"")? {
                    let (key, value) = item?;
                    write_entry(&mut w, column, &key, &value, &tmp_path)?;
                    if column == Column::State {
                        leaves.push((hash_key(&key), hash_value(&value)));
                    }
                    entries += 1;
                }
            }
        }
    }
    w.write_all(&[END_TAG])
        .and_then(|_| w.write_all(&entries.to_le_bytes()))
        .and_then(|_| w.write_all(&TRAILER_MAGIC))
        .map_err(io_err("cannot write the snapshot", &tmp_path))?;
    let checksum: [u8; 32] = *w.hasher.finalize().as_bytes();
    let bytes = w.bytes + 32;
    let mut inner = w.inner;
    inner
        .write_all(&checksum)
        .map_err(io_err("cannot write the snapshot", &tmp_path))?;
    let file = inner
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_err("cannot write the snapshot", &tmp_path))?;
    file.sync_all()
        .map_err(io_err("cannot sync the snapshot", &tmp_path))?;
    drop(file);

    let computed = SparseMerkleTree::from_leaves(leaves).root();
    if computed != head.state_root {
        return Err(SnapshotError::StateRootMismatch {
            context: "export",
            expected: head.state_root,
            computed,
        });
    }
    let after = meta::read_head(engine)?;
    if after != Some(head) {
        return Err(SnapshotError::ConcurrentWrite {
            before: head.height,
            after: after.map(|h| h.height),
        });
    }

    fs::rename(&tmp_path, out).map_err(io_err("cannot move the snapshot into place", out))?;
    guard.disarm();
    sync_dir(dir)?;
    tracing::info!(path = %out.display(), chain = head.chain, height = head.height, entries, bytes, "exported snapshot");
    Ok(SnapshotInfo {
        chain: head.chain,
        height: head.height,
        state_root: head.state_root,
        block_digest: head.block_digest,
        entries,
        bytes,
        checksum,
    })
}

// ---------------------------------------------------------------------------------------
// Import

/// What the first pass established about a snapshot file.
struct Verified {
    header: Header,
    len: u64,
    checksum: [u8; 32],
}

/// What a snapshot file says it holds, from its header and trailer alone (the
/// checksum is read, not recomputed): how a node describes its own snapshots to peers
/// without reading them whole. Anyone who then downloads the file verifies it all.
pub fn describe_snapshot(path: &Path) -> Result<SnapshotInfo> {
    let ends = read_ends(path)?;
    let header = Header::decode(&ends.header);
    header.validate(path)?;
    Ok(SnapshotInfo {
        chain: header.head.chain,
        height: header.head.height,
        state_root: header.head.state_root,
        block_digest: header.head.block_digest,
        entries: ends.entries,
        bytes: ends.len,
        checksum: ends.stored,
    })
}

/// A snapshot file's framing, checked: its length, header bytes, the entry count and
/// checksum its trailer records, and the open file.
struct Ends {
    file: File,
    len: u64,
    header: [u8; HEADER_LEN],
    entries: u64,
    stored: [u8; 32],
}

/// Opens `path` and checks its framing: not empty, the magic, room for header and
/// trailer, the trailer magic (a file cut short lacks it).
fn read_ends(path: &Path) -> Result<Ends> {
    let mut file = File::open(path).map_err(io_err("cannot open the snapshot file", path))?;
    let len = file
        .metadata()
        .map_err(io_err("cannot read the snapshot file's metadata", path))?
        .len();
    if len == 0 {
        return Err(SnapshotError::Empty {
            path: path.to_path_buf(),
        });
    }
    let truncated = |detail: String| SnapshotError::Truncated {
        path: path.to_path_buf(),
        len,
        detail,
    };
    let mut start = [0u8; 8];
    let n = len.min(8) as usize;
    file.read_exact(&mut start[..n])
        .map_err(io_err("cannot read the snapshot file", path))?;
    if start[..n] != MAGIC[..n] {
        return Err(SnapshotError::BadMagic {
            path: path.to_path_buf(),
            found: hex::encode(&start[..n]),
        });
    }
    let min_len = (HEADER_LEN + TRAILER_LEN) as u64;
    if len < min_len {
        return Err(truncated(format!(
            "a snapshot has at least {min_len} bytes (header and trailer)"
        )));
    }
    // Entry count, trailer magic, checksum.
    let mut tail = [0u8; 48];
    file.seek(SeekFrom::Start(len - 48))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(io_err("cannot read the snapshot file", path))?;
    if tail[8..16] != TRAILER_MAGIC {
        return Err(truncated(
            "the trailer is missing: the file was cut short (or its last bytes are damaged)".into(),
        ));
    }
    let mut header = [0u8; HEADER_LEN];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(io_err("cannot read the snapshot file", path))?;
    Ok(Ends {
        file,
        len,
        header,
        entries: u64::from_le_bytes(tail[..8].try_into().expect("8 bytes")),
        stored: tail[16..].try_into().expect("32 bytes"),
    })
}

/// First pass: framing, checksum and header, without touching any database.
fn verify_file(path: &Path) -> Result<Verified> {
    let Ends {
        mut file,
        len,
        header,
        stored,
        ..
    } = read_ends(path)?;
    file.seek(SeekFrom::Start(0))
        .map_err(io_err("cannot read the snapshot file", path))?;
    let mut hasher = blake3::Hasher::new();
    let hashed = io::copy(
        &mut BufReader::with_capacity(1 << 20, (&mut file).take(len - 32)),
        &mut hasher,
    )
    .map_err(io_err("cannot read the snapshot file", path))?;
    if hashed != len - 32 {
        return Err(SnapshotError::Truncated {
            path: path.to_path_buf(),
            len,
            detail: "the file shrank while it was being read".into(),
        });
    }
    let computed: [u8; 32] = *hasher.finalize().as_bytes();
    if computed != stored {
        return Err(SnapshotError::ChecksumMismatch {
            path: path.to_path_buf(),
            stored,
            computed,
        });
    }
    // The header is trusted only once the checksum covers it.
    let header = Header::decode(&header);
    header.validate(path)?;
    Ok(Verified {
        header,
        len,
        checksum: stored,
    })
}

/// A reader that hashes everything read through it and tracks the offset.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    offset: u64,
}

impl<R: Read> HashingReader<R> {
    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a premature end of file.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.hasher.update(buf);
                self.offset += buf.len() as u64;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Second pass: streams the entries into a new database at `tmp_dir` and verifies it.
fn import_into(
    file: &Path,
    tmp_dir: &Path,
    opts: &StoreOptions,
    verified: &Verified,
    check: impl FnOnce(&RocksEngine, &SnapshotInfo) -> std::result::Result<(), String>,
) -> Result<SnapshotInfo> {
    let engine_opts = StoreOptions {
        // Durability comes from the flush below, before the rename.
        sync: SyncPolicy::OsBuffered,
        create_if_missing: true,
        ..opts.clone()
    };
    let engine = RocksEngine::open(tmp_dir, &engine_opts)?;
    let f = File::open(file).map_err(io_err("cannot open the snapshot file", file))?;
    let mut r = HashingReader {
        inner: BufReader::with_capacity(1 << 20, f),
        hasher: blake3::Hasher::new(),
        offset: 0,
    };
    let data_end = verified.len - TRAILER_LEN as u64;
    let read_err = io_err("cannot read the snapshot file", file);
    let truncated = |offset: u64| SnapshotError::Truncated {
        path: file.to_path_buf(),
        len: verified.len,
        detail: format!("the file ended at byte {offset} (it shrank during the import)"),
    };
    let malformed = |offset: u64, detail: String| SnapshotError::Malformed {
        path: file.to_path_buf(),
        offset,
        detail,
    };

    let mut header_bytes = [0u8; HEADER_LEN];
    if !r.fill(&mut header_bytes).map_err(read_err)? {
        return Err(truncated(r.offset));
    }
    if Header::decode(&header_bytes) != verified.header {
        return Err(malformed(0, "the header changed during the import".into()));
    }

    let mut batch = WriteBatch::new();
    let mut count = 0u64;
    let mut last: Option<(u8, Vec<u8>)> = None;
    loop {
        let entry_offset = r.offset;
        let mut tag = [0u8; 1];
        if !r
            .fill(&mut tag)
            .map_err(io_err("cannot read the snapshot file", file))?
        {
            return Err(truncated(r.offset));
        }
        if tag[0] == END_TAG {
            if entry_offset != data_end {
                return Err(malformed(
                    entry_offset,
                    format!("end-of-entries tag found, expected it at byte {data_end}"),
                ));
            }
            break;
        }
        let Some(&column) = Column::ALL.get(tag[0] as usize) else {
            return Err(malformed(
                entry_offset,
                format!("unknown column tag {:#04x}", tag[0]),
            ));
        };
        if !SNAPSHOT_COLUMNS.contains(&column) {
            // In particular `consensus`: a validator's private records (what it signed)
            // must never come from a file.
            return Err(malformed(
                entry_offset,
                format!("column `{column}` is never part of a snapshot"),
            ));
        }
        let mut lens = [0u8; 8];
        if !r
            .fill(&mut lens)
            .map_err(io_err("cannot read the snapshot file", file))?
        {
            return Err(truncated(r.offset));
        }
        let key_len = u32::from_le_bytes(lens[..4].try_into().expect("4 bytes")) as u64;
        let value_len = u32::from_le_bytes(lens[4..].try_into().expect("4 bytes")) as u64;
        let limit_err = |what, len, limit: usize| SnapshotError::LimitExceeded {
            path: file.to_path_buf(),
            offset: entry_offset,
            what,
            len,
            limit: limit as u64,
        };
        if key_len > MAX_KEY_LEN as u64 {
            return Err(limit_err("key", key_len, MAX_KEY_LEN));
        }
        if value_len > MAX_VALUE_LEN as u64 {
            return Err(limit_err("value", value_len, MAX_VALUE_LEN));
        }
        if r.offset + key_len + value_len > data_end {
            return Err(malformed(
                entry_offset,
                format!(
                    "the entry ({key_len}-byte key, {value_len}-byte value) runs into the trailer"
                ),
            ));
        }
        let mut key = vec![0u8; key_len as usize];
        let mut value = vec![0u8; value_len as usize];
        let complete = r
            .fill(&mut key)
            .and_then(|ok| if ok { r.fill(&mut value) } else { Ok(false) })
            .map_err(io_err("cannot read the snapshot file", file))?;
        if !complete {
            return Err(truncated(r.offset));
        }
        if let Some((last_tag, last_key)) = &last
            && (*last_tag, last_key.as_slice()) >= (tag[0], key.as_slice())
        {
            return Err(malformed(
                entry_offset,
                "entries are not in strictly ascending (column, key) order".into(),
            ));
        }
        last = Some((tag[0], key.clone()));
        batch.put(column, key, value);
        count += 1;
        if batch.payload_bytes() >= IMPORT_BATCH_BYTES || batch.len() >= IMPORT_BATCH_OPS {
            engine.write(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        engine.write(batch)?;
    }

    let mut fixed = [0u8; 16];
    if !r
        .fill(&mut fixed)
        .map_err(io_err("cannot read the snapshot file", file))?
    {
        return Err(truncated(r.offset));
    }
    let recorded = u64::from_le_bytes(fixed[..8].try_into().expect("8 bytes"));
    let computed: [u8; 32] = *r.hasher.finalize().as_bytes();
    let mut stored = [0u8; 32];
    r.inner
        .read_exact(&mut stored)
        .map_err(|_| truncated(r.offset))?;
    if computed != stored || stored != verified.checksum || fixed[8..] != TRAILER_MAGIC {
        return Err(SnapshotError::ChecksumMismatch {
            path: file.to_path_buf(),
            stored,
            computed,
        });
    }
    if recorded != count {
        return Err(SnapshotError::EntryCountMismatch {
            path: file.to_path_buf(),
            found: count,
            recorded,
        });
    }

    // Verify what the new database actually holds, not what was read.
    engine.flush_memtables()?;
    let computed = state_root(&engine)?;
    let expected = verified.header.head;
    if computed != expected.state_root {
        return Err(SnapshotError::StateRootMismatch {
            context: "import",
            expected: expected.state_root,
            computed,
        });
    }
    let found = meta::read_head(&engine)?;
    if found != Some(expected) {
        return Err(SnapshotError::HeadMismatch {
            expected: Box::new(expected),
            found: found.map(Box::new),
        });
    }
    meta::check_or_init_schema(&engine, false)?;
    let info = SnapshotInfo {
        chain: expected.chain,
        height: expected.height,
        state_root: expected.state_root,
        block_digest: expected.block_digest,
        entries: count,
        bytes: verified.len,
        checksum: stored,
    };
    check(&engine, &info).map_err(|detail| SnapshotError::Rejected {
        path: file.to_path_buf(),
        detail,
    })?;
    engine.flush_memtables()?;
    Ok(info)
}

/// The state root of a database: the sparse Merkle root over `(hash_key(key),
/// hash_value(value))` of every entry of the `state` column.
pub fn state_root(engine: &dyn KvEngine) -> Result<[u8; 32], StorageError> {
    Ok(dualchain_storage::state::state_tree(engine)?.root())
}

/// `Ok` if `db_dir` is missing or an empty directory.
fn check_target(db_dir: &Path) -> Result<()> {
    let not_empty = || SnapshotError::TargetNotEmpty {
        path: db_dir.to_path_buf(),
    };
    match fs::metadata(db_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("cannot inspect the target directory", db_dir)(e)),
        Ok(m) if !m.is_dir() => Err(not_empty()),
        Ok(_) => {
            let mut entries =
                fs::read_dir(db_dir).map_err(io_err("cannot list the target directory", db_dir))?;
            if entries.next().is_some() {
                Err(not_empty())
            } else {
                Ok(())
            }
        }
    }
}

/// Creates the database `db_dir` from the snapshot `file`, verifying everything first.
///
/// `db_dir` must be missing or empty; it is only ever created complete (see the module
/// docs). `opts` configures the new database (its `create_if_missing` is ignored).
pub fn import_snapshot(file: &Path, db_dir: &Path, opts: &StoreOptions) -> Result<SnapshotInfo> {
    import_snapshot_checked(file, db_dir, opts, |_, _| Ok(()))
}

/// [`import_snapshot`] with one more check before the database becomes visible:
/// `check` sees the imported database (complete and verified against the file's own
/// header) and may refuse it (`Err(reason)`: [`SnapshotError::Rejected`], nothing is
/// kept) or add writes of its own, which land in the same atomic rename. State sync
/// verifies the head block's certificate here, against a validator set the file
/// cannot forge.
pub fn import_snapshot_checked(
    file: &Path,
    db_dir: &Path,
    opts: &StoreOptions,
    check: impl FnOnce(&RocksEngine, &SnapshotInfo) -> std::result::Result<(), String>,
) -> Result<SnapshotInfo> {
    check_target(db_dir)?;
    let name = file_name_of(db_dir)?;
    let verified = verify_file(file)?;

    let parent = parent_dir(db_dir);
    fs::create_dir_all(parent).map_err(io_err("cannot create the parent directory", parent))?;
    let tmp_dir = parent.join(format!("{name}.importing-{:016x}", rand::random::<u64>()));
    let mut guard = TempPath {
        path: Some(tmp_dir.clone()),
        dir: true,
    };
    let info = import_into(file, &tmp_dir, opts, &verified, check)?;

    check_target(db_dir)?;
    fs::rename(&tmp_dir, db_dir).map_err(io_err(
        "cannot move the imported database into place",
        db_dir,
    ))?;
    guard.disarm();
    sync_dir(parent)?;
    tracing::info!(
        snapshot = %file.display(), db = %db_dir.display(), chain = info.chain,
        height = info.height, entries = info.entries, "imported snapshot"
    );
    Ok(info)
}

// ---------------------------------------------------------------------------------------
// Automatic snapshots

/// When and where [`maybe_snapshot`] writes snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot at every height that is a multiple of this; 0 disables snapshots.
    pub every_blocks: u64,
    /// Directory of the snapshot files.
    pub dir: PathBuf,
    /// How many snapshots of a chain to keep (at least 1: the newest is never pruned).
    pub keep: usize,
}

impl SnapshotPolicy {
    /// Every 1000 blocks into `dir`, keeping the 2 newest.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            every_blocks: 1000,
            dir: dir.into(),
            keep: 2,
        }
    }
}

/// The lower-case name of a chain id, as used in snapshot file names.
pub fn chain_name(chain: u8) -> String {
    match chain {
        0 => "alpha".into(),
        1 => "delta".into(),
        n => format!("chain{n}"),
    }
}

/// `<chain>-<height, 20 digits>.dcsnap`, e.g. `alpha-00000000000000001000.dcsnap`.
pub fn snapshot_file_name(chain: u8, height: u64) -> String {
    format!("{}-{height:020}.{SNAPSHOT_EXTENSION}", chain_name(chain))
}

/// The snapshots of `chain` in `dir`, by ascending height. A missing `dir` has none.
pub fn list_snapshots(dir: &Path, chain: u8) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(io_err("cannot list the snapshot directory", dir))?,
    };
    let prefix = format!("{}-", chain_name(chain));
    let suffix = format!(".{SNAPSHOT_EXTENSION}");
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("cannot list the snapshot directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&suffix))
        else {
            continue;
        };
        if digits.len() == 20
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(height) = digits.parse::<u64>()
        {
            found.push((height, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Called by the node after each committed block: exports a snapshot when `head.height`
/// is a multiple of `policy.every_blocks`, then deletes the oldest snapshots of the chain
/// beyond `policy.keep`. `head` must be the database's current chain head.
///
/// Returns `Ok(None)` when no snapshot was due. A failure to prune is logged, not
/// returned: the new snapshot exists either way.
pub fn maybe_snapshot(
    engine: &dyn KvEngine,
    policy: &SnapshotPolicy,
    head: &ChainHead,
) -> Result<Option<SnapshotInfo>> {
    if policy.every_blocks == 0 || !head.height.is_multiple_of(policy.every_blocks) {
        return Ok(None);
    }
    let actual = meta::read_head(engine)?;
    if actual != Some(*head) {
        return Err(SnapshotError::StaleHead {
            requested: Box::new(*head),
            actual: actual.map(Box::new),
        });
    }
    let out = policy.dir.join(snapshot_file_name(head.chain, head.height));
    let info = export_snapshot(engine, &out)?;
    match list_snapshots(&policy.dir, head.chain) {
        Ok(existing) => {
            let excess = existing.len().saturating_sub(policy.keep.max(1));
            for (height, path) in existing.into_iter().take(excess) {
                if height == head.height {
                    continue;
                }
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot prune an old snapshot");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list snapshots to prune"),
    }
    Ok(Some(info))
}
