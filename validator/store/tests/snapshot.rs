//! Snapshot export/import: round trips, rejection of damaged files, automatic snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};
use dualchain_storage::meta::{self, ChainHead};
use dualchain_storage::{Column, KvEngine, SCHEMA_VERSION, SyncPolicy, WriteBatch, keys};
use dualchain_store::snapshot::{
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_KEY_LEN, TRAILER_LEN, TRAILER_MAGIC,
};
use dualchain_store::{
    RocksEngine, SnapshotError, SnapshotPolicy, StoreOptions, describe_snapshot, export_snapshot,
    import_snapshot, import_snapshot_checked, list_snapshots, maybe_snapshot, snapshot_file_name,
    state_root,
};
use proptest::prelude::*;

fn opts() -> StoreOptions {
    StoreOptions {
        sync: SyncPolicy::OsBuffered,
        block_cache_bytes: 4 << 20,
        write_buffer_bytes: 4 << 20,
        max_background_jobs: Some(2),
        ..StoreOptions::default()
    }
}

fn root_of(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> [u8; 32] {
    SparseMerkleTree::from_leaves(state.iter().map(|(k, v)| (hash_key(k), hash_value(v)))).root()
}

/// Commits block `height` that sets `state` (replacing nothing else), like a node would.
fn commit(
    engine: &dyn KvEngine,
    height: u64,
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    chain: u8,
) -> ChainHead {
    let mut batch = WriteBatch::new();
    for (k, v) in state {
        batch.put(Column::State, k.clone(), v.clone());
    }
    let block = format!("block {height}").into_bytes();
    batch.put(
        Column::Blocks,
        keys::height_key(height).to_vec(),
        block.clone(),
    );
    batch.put(
        Column::Certificates,
        keys::height_key(height).to_vec(),
        format!("cert {height}").into_bytes(),
    );
    batch.put(
        Column::Receipts,
        keys::receipt_key(height, 0).to_vec(),
        b"receipt".to_vec(),
    );
    engine.write(batch).unwrap();
    let head = ChainHead {
        chain,
        height,
        block_digest: *blake3::hash(&block).as_bytes(),
        state_root: state_root(engine).unwrap(),
    };
    let mut batch = WriteBatch::new();
    head.put_into(&mut batch);
    engine.write(batch).unwrap();
    head
}

fn sample_state(n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .map(|i| {
            (
                format!("account/{i:04}").into_bytes(),
                format!("balance {}", i * 7).repeat(1 + i % 5).into_bytes(),
            )
        })
        .collect()
}

fn all_entries(engine: &dyn KvEngine, column: Column) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan_from(column, b"")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A source database with a few committed blocks; returns (engine, head, snapshot path).
fn exported(dir: &Path) -> (RocksEngine, ChainHead, PathBuf) {
    let engine = RocksEngine::open(dir.join("source"), &opts()).unwrap();
    commit(&engine, 1, &sample_state(50), 1);
    let head = commit(&engine, 2, &sample_state(120), 1);
    let file = dir.join("snaps").join("s.dcsnap");
    export_snapshot(&engine, &file).unwrap();
    (engine, head, file)
}

/// Nothing named after the target (neither it nor a temporary import directory) exists.
fn assert_no_trace(target: &Path) {
    assert!(!target.exists(), "{} exists", target.display());
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers: Vec<_> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn export_import_round_trip_reproduces_root_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let (source, head, file) = exported(dir.path());
    let target = dir.path().join("imported");
    let info = import_snapshot(&file, &target, &opts()).unwrap();
    assert_eq!(info.head(), head);
    assert_eq!(info.bytes, std::fs::metadata(&file).unwrap().len());
    // 120 state + block + certificate + meta (schema version, head).
    assert_eq!(info.entries, 120 + 2 + 2);

    let imported = RocksEngine::open(&target, &opts()).unwrap();
    assert_eq!(state_root(&imported).unwrap(), head.state_root);
    assert_eq!(root_of(&sample_state(120)), head.state_root);
    assert_eq!(meta::read_head(&imported).unwrap(), Some(head));
    assert_eq!(
        all_entries(&imported, Column::State),
        all_entries(&source, Column::State)
    );
    assert_eq!(
        all_entries(&imported, Column::Meta),
        all_entries(&source, Column::Meta)
    );
    assert_eq!(
        imported.get(Column::Blocks, &keys::height_key(2)).unwrap(),
        Some(b"block 2".to_vec())
    );
    assert_eq!(
        imported
            .get(Column::Certificates, &keys::height_key(2))
            .unwrap(),
        Some(b"cert 2".to_vec())
    );
    // Only what is needed to resume: no older blocks, no receipts.
    assert_eq!(
        imported.get(Column::Blocks, &keys::height_key(1)).unwrap(),
        None
    );
    assert!(all_entries(&imported, Column::Receipts).is_empty());
}

#[test]
fn validator_private_records_never_leave_in_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path().join("source"), &opts()).unwrap();
    let head = commit(&engine, 1, &sample_state(10), 1);
    let mut batch = WriteBatch::new();
    batch.put(Column::Consensus, b"dag-bft/state".to_vec(), vec![7; 40]);
    batch.put(Column::Vertices, vec![0; 40], b"vertex".to_vec());
    engine.write(batch).unwrap();
    let file = dir.path().join("s.dcsnap");
    let info = export_snapshot(&engine, &file).unwrap();
    assert_eq!(info.head(), head);
    let target = dir.path().join("imported");
    import_snapshot(&file, &target, &opts()).unwrap();
    let imported = RocksEngine::open(&target, &opts()).unwrap();
    assert!(all_entries(&imported, Column::Consensus).is_empty());
    assert!(all_entries(&imported, Column::Vertices).is_empty());
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(13).any(|w| w == b"dag-bft/state"),
        "the private record's key appears in the file"
    );
}

#[test]
fn describe_reads_what_export_wrote_without_reading_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path().join("source"), &opts()).unwrap();
    commit(&engine, 1, &sample_state(30), 0);
    let file = dir.path().join("s.dcsnap");
    let exported = export_snapshot(&engine, &file).unwrap();
    assert_eq!(describe_snapshot(&file).unwrap(), exported);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() - 1);
    let cut = dir.path().join("cut.dcsnap");
    std::fs::write(&cut, &bytes).unwrap();
    assert!(matches!(
        describe_snapshot(&cut),
        Err(SnapshotError::Truncated { .. })
    ));
}

#[test]
fn a_checked_import_that_refuses_leaves_nothing_and_one_that_accepts_keeps_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, head, file) = exported(dir.path());
    let target = dir.path().join("refused");
    let refused = import_snapshot_checked(&file, &target, &opts(), |_, info| {
        assert_eq!(info.head(), head);
        Err("no certificate covers it".into())
    })
    .unwrap_err();
    assert!(
        matches!(&refused, SnapshotError::Rejected { detail, .. } if detail == "no certificate covers it"),
        "{refused}"
    );
    assert_no_trace(&target);

    let target = dir.path().join("accepted");
    import_snapshot_checked(&file, &target, &opts(), |engine, _| {
        let mut batch = WriteBatch::new();
        batch.put(Column::Meta, b"node/own".to_vec(), b"mine".to_vec());
        engine.write(batch).map_err(|e| e.to_string())
    })
    .unwrap();
    let imported = RocksEngine::open(&target, &opts()).unwrap();
    assert_eq!(meta::read_head(&imported).unwrap(), Some(head));
    assert_eq!(
        imported.get(Column::Meta, b"node/own").unwrap(),
        Some(b"mine".to_vec())
    );
}

#[test]
fn import_into_an_existing_empty_directory_works() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, head, file) = exported(dir.path());
    let target = dir.path().join("empty");
    std::fs::create_dir(&target).unwrap();
    let info = import_snapshot(&file, &target, &opts()).unwrap();
    assert_eq!(info.head(), head);
    let imported = RocksEngine::open(&target, &opts()).unwrap();
    assert_eq!(meta::read_head(&imported).unwrap(), Some(head));
}

#[test]
fn flipped_bytes_anywhere_are_rejected_and_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, _head, file) = exported(dir.path());
    let good = std::fs::read(&file).unwrap();
    let len = good.len();
    let positions = [
        0,                     // magic
        9,                     // format version
        13,                    // schema version
        16,                    // chain
        20,                    // height
        30,                    // state root
        60,                    // block digest
        HEADER_LEN,            // first entry's column tag
        HEADER_LEN + 2,        // first entry's key length
        HEADER_LEN + 6,        // first entry's value length
        len / 2,               // somewhere in the body
        len - TRAILER_LEN,     // end-of-entries tag
        len - TRAILER_LEN + 1, // entry count
        len - 40,              // trailer magic
        len - 32,              // checksum
        len - 1,               // checksum
    ];
    let target = dir.path().join("target");
    for pos in positions {
        for mask in [0x01u8, 0xFF] {
            let mut bad = good.clone();
            bad[pos] ^= mask;
            let bad_file = dir.path().join("bad.dcsnap");
            std::fs::write(&bad_file, &bad).unwrap();
            let err = import_snapshot(&bad_file, &target, &opts())
                .expect_err(&format!("flipped byte {pos} (mask {mask:#x}) was accepted"));
            match pos {
                0 => assert!(
                    matches!(err, SnapshotError::BadMagic { .. }),
                    "{pos}: {err}"
                ),
                p if p == len - 40 => {
                    assert!(
                        matches!(err, SnapshotError::Truncated { .. }),
                        "{pos}: {err}"
                    )
                }
                _ => assert!(
                    matches!(err, SnapshotError::ChecksumMismatch { .. }),
                    "{pos}: {err}"
                ),
            }
            assert_no_trace(&target);
        }
    }
    // The undamaged file still imports.
    import_snapshot(&file, &target, &opts()).unwrap();
}

#[test]
fn truncated_empty_and_foreign_files_are_rejected_distinctly() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, _head, file) = exported(dir.path());
    let good = std::fs::read(&file).unwrap();
    let target = dir.path().join("target");
    let bad_file = dir.path().join("bad.dcsnap");

    for cut in [
        good.len() - 1,
        good.len() - 33,
        good.len() / 2,
        HEADER_LEN + 3,
        40,
        5,
    ] {
        std::fs::write(&bad_file, &good[..cut]).unwrap();
        let err = import_snapshot(&bad_file, &target, &opts()).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_no_trace(&target);
    }

    std::fs::write(&bad_file, b"").unwrap();
    let err = import_snapshot(&bad_file, &target, &opts()).unwrap_err();
    assert!(matches!(err, SnapshotError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    assert_no_trace(&target);

    std::fs::write(&bad_file, b"PK\x03\x04 this is a zip file, not a snapshot").unwrap();
    let err = import_snapshot(&bad_file, &target, &opts()).unwrap_err();
    assert!(matches!(err, SnapshotError::BadMagic { .. }), "{err}");
    assert!(
        err.to_string().contains("not a dualchain snapshot"),
        "{err}"
    );
    assert_no_trace(&target);

    let err = import_snapshot(&dir.path().join("missing.dcsnap"), &target, &opts()).unwrap_err();
    assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
    assert_no_trace(&target);
}

#[test]
fn import_into_a_non_empty_directory_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, _head, file) = exported(dir.path());
    let target = dir.path().join("occupied");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"precious").unwrap();
    let err = import_snapshot(&file, &target, &opts()).unwrap_err();
    assert!(matches!(err, SnapshotError::TargetNotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);
    assert_eq!(std::fs::read(target.join("keep.txt")).unwrap(), b"precious");
    let siblings = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("importing")
        })
        .count();
    assert_eq!(siblings, 0);
}

#[test]
fn export_needs_a_head_and_a_matching_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path().join("db"), &opts()).unwrap();
    let out = dir.path().join("s.dcsnap");
    assert!(matches!(
        export_snapshot(&engine, &out),
        Err(SnapshotError::NoHead)
    ));
    assert!(!out.exists());

    commit(&engine, 1, &sample_state(3), 0);
    // A head whose root does not commit to the state is refused, and no file appears.
    let mut batch = WriteBatch::new();
    ChainHead {
        chain: 0,
        height: 1,
        block_digest: [1; 32],
        state_root: [2; 32],
    }
    .put_into(&mut batch);
    engine.write(batch).unwrap();
    let err = export_snapshot(&engine, &out).unwrap_err();
    assert!(
        matches!(err, SnapshotError::StateRootMismatch { .. }),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temp file left behind"
    );
}

/// Builds a file with a valid checksum around hand-made entries, to reach the checks a
/// flipped byte cannot (the checksum catches those first).
fn craft(head: &ChainHead, body: &[u8], count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    out.push(head.chain);
    out.extend_from_slice(&head.height.to_le_bytes());
    out.extend_from_slice(&head.state_root);
    out.extend_from_slice(&head.block_digest);
    assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(body);
    out.push(0xFF);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&TRAILER_MAGIC);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

fn entry(column: Column, key: &[u8], value_len: u32, value: &[u8]) -> Vec<u8> {
    let mut out = vec![column.index() as u8];
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

#[test]
fn well_checksummed_but_invalid_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let file = dir.path().join("crafted.dcsnap");
    let state: BTreeMap<Vec<u8>, Vec<u8>> = [(b"k".to_vec(), b"v".to_vec())].into();
    let head = ChainHead {
        chain: 0,
        height: 1,
        block_digest: [3; 32],
        state_root: root_of(&state),
    };
    let head_entry = entry(Column::Meta, meta::HEAD_KEY, 74, &head.encode());
    let good_body = [entry(Column::State, b"k", 1, b"v"), head_entry.clone()].concat();

    // The baseline imports.
    std::fs::write(&file, craft(&head, &good_body, 2)).unwrap();
    import_snapshot(&file, &target, &opts()).unwrap();
    std::fs::remove_dir_all(&target).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("entry count", craft(&head, &good_body, 3)),
        (
            "key limit",
            craft(
                &head,
                &entry(Column::State, &vec![1; MAX_KEY_LEN + 1], 0, b""),
                1,
            ),
        ),
        (
            "value limit",
            craft(&head, &entry(Column::State, b"k", (64 << 20) + 1, b""), 1),
        ),
        (
            "order",
            craft(
                &head,
                &[head_entry.clone(), entry(Column::State, b"k", 1, b"v")].concat(),
                2,
            ),
        ),
        (
            "duplicate",
            craft(
                &head,
                &[
                    entry(Column::State, b"k", 1, b"v"),
                    entry(Column::State, b"k", 1, b"v"),
                    head_entry.clone(),
                ]
                .concat(),
                3,
            ),
        ),
        (
            "column tag",
            craft(
                &head,
                &[vec![9u8, 0, 0, 0, 0, 0, 0, 0, 0], head_entry.clone()].concat(),
                2,
            ),
        ),
        (
            "private column",
            craft(
                &head,
                &[
                    entry(Column::State, b"k", 1, b"v"),
                    head_entry.clone(),
                    entry(Column::Consensus, b"dag-bft/state", 1, b"x"),
                ]
                .concat(),
                3,
            ),
        ),
        (
            "state root",
            craft(
                &head,
                &[entry(Column::State, b"k", 1, b"w"), head_entry.clone()].concat(),
                2,
            ),
        ),
        (
            "head",
            craft(&head, &entry(Column::State, b"k", 1, b"v"), 1),
        ),
        ("format version", {
            let mut f = craft(&head, &good_body, 2);
            f[8] = 2;
            let n = f.len();
            let sum = blake3::hash(&f[..n - 32]);
            f[n - 32..].copy_from_slice(sum.as_bytes());
            f
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let err = import_snapshot(&file, &target, &opts()).expect_err(what);
        let ok = match what {
            "entry count" => matches!(err, SnapshotError::EntryCountMismatch { .. }),
            "key limit" | "value limit" => matches!(err, SnapshotError::LimitExceeded { .. }),
            "order" | "duplicate" | "column tag" | "private column" => {
                matches!(err, SnapshotError::Malformed { .. })
            }
            "state root" => matches!(err, SnapshotError::StateRootMismatch { .. }),
            "head" => matches!(err, SnapshotError::HeadMismatch { .. }),
            "format version" => matches!(err, SnapshotError::UnsupportedVersion { found: 2, .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{what}: unexpected error {err}");
        assert_no_trace(&target);
    }
}

#[test]
fn maybe_snapshot_writes_at_multiples_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path().join("db"), &opts()).unwrap();
    let policy = SnapshotPolicy {
        every_blocks: 5,
        keep: 2,
        ..SnapshotPolicy::new(dir.path().join("snapshots"))
    };
    let mut written = Vec::new();
    for height in 1..=17u64 {
        let state: BTreeMap<_, _> = [(b"counter".to_vec(), height.to_le_bytes().to_vec())].into();
        let head = commit(&engine, height, &state, 0);
        if let Some(info) = maybe_snapshot(&engine, &policy, &head).unwrap() {
            assert_eq!(info.head(), head);
            written.push(height);
        }
    }
    assert_eq!(written, vec![5, 10, 15]);
    let kept: Vec<u64> = list_snapshots(&policy.dir, 0)
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert_eq!(kept, vec![10, 15]);
    let names: Vec<_> = std::fs::read_dir(&policy.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "unexpected files: {names:?}");
    assert!(policy.dir.join(snapshot_file_name(0, 15)).is_file());
    assert_eq!(
        snapshot_file_name(0, 15),
        "alpha-00000000000000000015.dcsnap"
    );

    // The newest snapshot bootstraps a node at height 15.
    let target = dir.path().join("fresh");
    let info = import_snapshot(
        &policy.dir.join(snapshot_file_name(0, 15)),
        &target,
        &opts(),
    )
    .unwrap();
    assert_eq!(info.height, 15);
    let fresh = RocksEngine::open(&target, &opts()).unwrap();
    assert_eq!(
        fresh.get(Column::State, b"counter").unwrap(),
        Some(15u64.to_le_bytes().to_vec())
    );

    // A head that is not the database's is refused.
    let stale = ChainHead {
        chain: 0,
        height: 20,
        block_digest: [0; 32],
        state_root: [0; 32],
    };
    assert!(matches!(
        maybe_snapshot(&engine, &policy, &stale),
        Err(SnapshotError::StaleHead { .. })
    ));
    // every_blocks = 0 disables snapshots.
    let off = SnapshotPolicy {
        every_blocks: 0,
        ..policy.clone()
    };
    assert!(maybe_snapshot(&engine, &off, &stale).unwrap().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn random_states_round_trip(
        state in prop::collection::btree_map(
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..200),
            0..40,
        ),
        height in 0u64..1_000_000,
        chain in 0u8..2,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path().join("db"), &opts()).unwrap();
        let head = commit(&engine, height, &state, chain);
        prop_assert_eq!(head.state_root, root_of(&state));
        let file = dir.path().join("s.dcsnap");
        let exported = export_snapshot(&engine, &file).unwrap();
        let target = dir.path().join("imported");
        let imported = import_snapshot(&file, &target, &opts()).unwrap();
        prop_assert_eq!(exported, imported);
        let fresh = RocksEngine::open(&target, &opts()).unwrap();
        prop_assert_eq!(state_root(&fresh).unwrap(), head.state_root);
        prop_assert_eq!(meta::read_head(&fresh).unwrap(), Some(head));
        let expected: Vec<_> = state.into_iter().collect();
        prop_assert_eq!(all_entries(&fresh, Column::State), expected);
    }
}
