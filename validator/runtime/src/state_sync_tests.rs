//! State sync's trust steps against synthetic certified histories: the epoch links a
//! node serves verify from genesis, snapshots are served by manifest and chunks, and
//! a snapshot's head counts only when a certificate of its epoch covers it.

use super::*;
use crate::replay::tests::History;
use crate::state_server::answer;
use crate::synthetic::SyntheticSpec;
use dualchain_core::Digest;
use dualchain_core::types::{BlockCertificate, SnapshotManifest};
use dualchain_store::{export_snapshot, snapshot_file_name};

fn history(chain: ChainId, blocks: u64, certify_every: u64) -> History {
    History::write(&SyntheticSpec {
        chain,
        blocks,
        txs_per_block: if chain == ChainId::Delta { 2 } else { 0 },
        accounts: 10,
        validators: 4,
        certify_every,
        epoch_length_alpha_blocks: 4,
        seed: 3,
    })
}

#[test]
fn served_epoch_links_verify_from_genesis_and_end_where_the_chain_does() {
    let h = history(ChainId::Alpha, 14, 1);
    let genesis = h.network.genesis.validator_set().unwrap();
    let network = h.network.genesis.network_id();
    let links = |from_epoch| match answer(
        &h.reader,
        None,
        StateSyncRequest::EpochLinks {
            chain: ChainId::Alpha,
            from_epoch,
        },
    ) {
        StateSyncAnswer::EpochLinks(links) => links,
        other => panic!("{other:?}"),
    };
    let all = links(1);
    // Fourteen blocks of four-block epochs: three boundaries.
    assert_eq!(all.len(), 3);
    let newest = verify_epoch_chain_of(ChainId::Alpha, network, &genesis, &all).unwrap();
    assert_eq!(newest.epoch(), 3);
    assert_eq!(links(3), all[2..].to_vec());
    assert!(links(4).is_empty());

    let mut sets = EpochSets::genesis(&genesis);
    sets.extend(all.clone());
    assert_eq!(sets.newest().epoch(), 3);
    assert_eq!(
        sets.of(2),
        verify_epoch_chain_of(ChainId::Alpha, network, &genesis, &all[..2])
            .ok()
            .as_ref()
    );
    // Out of order, a link proves nothing.
    assert!(verify_epoch_chain_of(ChainId::Alpha, network, &genesis, &all[1..]).is_err());
}

#[test]
fn snapshots_are_served_by_manifest_and_by_chunks_of_the_file_their_checksum_names() {
    let h = history(ChainId::Delta, 6, 3);
    let dir = tempfile::tempdir().unwrap();
    let manifest = |dir: Option<&Path>| {
        answer(
            &h.reader,
            dir,
            StateSyncRequest::Manifest {
                chain: ChainId::Delta,
            },
        )
    };
    assert_eq!(manifest(None), StateSyncAnswer::Manifest(None));
    assert_eq!(manifest(Some(dir.path())), StateSyncAnswer::Manifest(None));
    let path = dir.path().join(snapshot_file_name(ChainId::Delta.tag(), 6));
    let info = export_snapshot(h.reader.engine().as_ref(), &path).unwrap();
    let expected = manifest_of(&info);
    assert_eq!(
        manifest(Some(dir.path())),
        StateSyncAnswer::Manifest(Some(expected))
    );

    let file = std::fs::read(&path).unwrap();
    let chunk = |checksum, offset, len| {
        answer(
            &h.reader,
            Some(dir.path()),
            StateSyncRequest::Chunk {
                chain: ChainId::Delta,
                checksum,
                offset,
                len,
            },
        )
    };
    assert_eq!(
        chunk(expected.checksum, 10, 100),
        StateSyncAnswer::Chunk(file[10..110].to_vec())
    );
    let size = file.len() as u64;
    assert_eq!(
        chunk(expected.checksum, size - 5, 100),
        StateSyncAnswer::Chunk(file[file.len() - 5..].to_vec()),
        "the last chunk is shorter"
    );
    assert_eq!(chunk(expected.checksum, size, 100), StateSyncAnswer::Gone);
    assert_eq!(chunk(Digest([9; 32]), 0, 100), StateSyncAnswer::Gone);
}

/// The blocks from `from` on as a peer serves them.
fn served(h: &History, from: u64, to: u64) -> Vec<CertifiedBlock> {
    (from..=to)
        .map(|height| {
            let (block, certificate) = h.block(height);
            CertifiedBlock { block, certificate }
        })
        .collect()
}

fn manifest_at(h: &History, height: u64) -> SnapshotManifest {
    let header = h.block(height).0.header;
    SnapshotManifest {
        height,
        state_root: header.state_root,
        block_digest: header.digest(),
        size: 1,
        checksum: Digest([1; 32]),
    }
}

#[test]
fn a_snapshot_head_counts_only_when_a_certificate_of_its_epoch_covers_it() {
    // Certificates on blocks 4 and 8 only.
    let h = history(ChainId::Delta, 8, 4);
    let genesis = h.network.genesis.validator_set().unwrap();
    let network = h.network.genesis.network_id();
    let sets = EpochSets::genesis(&genesis);
    let cover = |manifest: &SnapshotManifest, blocks: &[CertifiedBlock]| {
        covered_head(ChainId::Delta, network, &sets, manifest, blocks)
    };
    let head = manifest_at(&h, 2);

    // Block 4's certificate covers blocks 2 and 3 through their digests.
    assert_eq!(
        cover(&head, &served(&h, 2, 6)),
        Cover::Head(h.block(2).0.header)
    );
    // No certificate among them (yet).
    assert_eq!(cover(&head, &served(&h, 2, 3)), Cover::NotYet);
    assert_eq!(cover(&head, &[]), Cover::NotYet);
    // A broken link: what follows it covers nothing.
    let mut gap = served(&h, 2, 6);
    gap.remove(1);
    assert_eq!(cover(&head, &gap), Cover::NotYet);
    // The certified block at that height is another than the offer's.
    let mut lie = head;
    lie.block_digest = Digest([7; 32]);
    assert_eq!(cover(&lie, &served(&h, 2, 6)), Cover::Differs);
    let mut lie = head;
    lie.state_root = Digest([7; 32]);
    assert_eq!(cover(&lie, &served(&h, 2, 6)), Cover::Differs);
    // The answerer's own lies: another height, a forged certificate.
    assert!(matches!(cover(&head, &served(&h, 3, 6)), Cover::Lie(_)));
    let mut forged = served(&h, 2, 6);
    let stranger = dualchain_core::crypto::ValidatorKeypair::from_seed(&[77; 32]);
    let header = forged[2].block.header.clone();
    forged[2].certificate = Some(BlockCertificate::from_votes(
        &header,
        (0..3u16).map(|i| (i, BlockCertificate::vote(&stranger, &header, network))),
    ));
    assert!(matches!(cover(&head, &forged), Cover::Lie(_)));
    // A certificate of an epoch no link proved yet waits.
    let mut later = served(&h, 2, 6);
    later[2].block.header.epoch = 5;
    assert_eq!(cover(&head, &later), Cover::NotYet);
}

#[test]
fn a_download_needs_room_for_its_rest_and_its_database() {
    const MIB: u64 = 1 << 20;
    let spare = DISK_HEADROOM_BYTES;
    // One filesystem: the rest of the file plus a database as large as the file.
    let one = |free| [(7, free), (7, free)];
    assert_eq!(room_shortfall(100 * MIB, 0, one(200 * MIB + spare)), None);
    assert_eq!(
        room_shortfall(100 * MIB, 0, one(200 * MIB + spare - 1)),
        Some((0, 200 * MIB + spare, 200 * MIB + spare - 1))
    );
    // What is already downloaded is not needed again.
    assert_eq!(
        room_shortfall(100 * MIB, 60 * MIB, one(140 * MIB + spare)),
        None
    );
    // Two filesystems: each holds its own part.
    let two = |file, db| [(1, file), (2, db)];
    assert_eq!(
        room_shortfall(100 * MIB, 0, two(100 * MIB + spare, 100 * MIB + spare)),
        None
    );
    assert_eq!(
        room_shortfall(100 * MIB, 0, two(100 * MIB + spare, 100 * MIB)),
        Some((1, 100 * MIB + spare, 100 * MIB))
    );
    // The sums saturate instead of wrapping round to a small need.
    assert_eq!(
        room_shortfall(u64::MAX, 0, one(u64::MAX - 1)),
        Some((0, u64::MAX, u64::MAX - 1))
    );
}

#[test]
fn a_download_that_cannot_fit_is_refused_with_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (downloads, db_dir) = (dir.path().join("dl"), dir.path().join("db").join("delta"));
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::create_dir_all(&db_dir).unwrap();
    let error = ensure_room(&downloads, &db_dir, u64::MAX / 2, 0).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("bytes free under"), "{message}");
    assert!(
        message.contains(&downloads.display().to_string()),
        "{message}"
    );
    assert!(
        ensure_room(&downloads, &db_dir, 1 << 20, 0).is_ok(),
        "1 MiB fits in a test's temporary directory"
    );
}

#[test]
fn a_snapshot_file_whose_import_cannot_fit_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db").join("delta");
    std::fs::create_dir_all(db_dir.parent().unwrap()).unwrap();
    let error = ensure_import_room(&db_dir, u64::MAX / 2).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("snapshot file needs"), "{message}");
    assert!(
        message.contains(&db_dir.parent().unwrap().display().to_string()),
        "{message}"
    );
    assert!(!db_dir.exists(), "nothing was created");
    assert!(
        ensure_import_room(&db_dir, 1 << 20).is_ok(),
        "1 MiB fits in a test's temporary directory"
    );
}
