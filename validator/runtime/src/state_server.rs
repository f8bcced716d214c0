//! Serving state sync (`FetchState`): this chain's epoch links, and its newest
//! snapshot file by manifest and chunks, to a peer bootstrapping from an empty data
//! directory ([`crate::state_sync`] is the asking side).
//!
//! The snapshots served are the ones the executor already writes every
//! `snapshot_interval_blocks` ([`dualchain_store::maybe_snapshot`], the newest two
//! kept): serving costs reads of finished files, never an export on demand. A chunk
//! names its file by checksum, so a file replaced meanwhile is answered `Gone` rather
//! than mixed with another. As with block sync ([`crate::block_server`]) answers are
//! made off the consensus task, and each peer has its own allowance (requests and
//! bytes per second, two answers in the making); beyond it the answer is `Declined`
//! at once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use dualchain_core::Digest;
use dualchain_core::chain_store::ChainReader;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Attestation, MAX_LINKS_PER_ANSWER, SnapshotManifest, StateSyncAnswer, StateSyncRequest,
};
use dualchain_net::{InboundRequest, PeerId};
use dualchain_storage::KvEngine;
use dualchain_store::{describe_snapshot, list_snapshots};

use crate::seams::Placement;
use crate::sync_server::{Allowance, Served, admitted};

/// Answers the state sync requests of one chain's peers.
pub struct StateServer<E: KvEngine> {
    reader: ChainReader<E>,
    snapshot_dir: Option<PathBuf>,
    placement: Placement,
    peers: HashMap<PeerId, Allowance>,
}

impl<E: KvEngine + Clone + 'static> StateServer<E> {
    /// Serves links from `reader` and snapshots from `snapshot_dir` (`None`: this
    /// node serves none, as in the simulator).
    pub fn new(
        reader: ChainReader<E>,
        snapshot_dir: Option<PathBuf>,
        placement: Placement,
    ) -> Self {
        Self {
            reader,
            snapshot_dir,
            placement,
            peers: HashMap::new(),
        }
    }

    /// Answers `request` from peer `from` at monotonic time `now_ms`.
    pub fn serve(
        &mut self,
        from: PeerId,
        request: StateSyncRequest,
        inbound: InboundRequest,
        now_ms: u64,
    ) -> Served {
        let chain = self.reader.chain();
        let Some(allowance) =
            admitted(&mut self.peers, from, now_ms).filter(|_| request.chain() == chain)
        else {
            respond(inbound, &StateSyncAnswer::Declined);
            return Served::Declined;
        };
        let (reader, dir) = (self.reader.clone(), self.snapshot_dir.clone());
        allowance.answer(self.placement, move || {
            respond(inbound, &answer(&reader, dir.as_deref(), request))
        });
        Served::Answering
    }
}

/// The answer to `request`, read from this node's store and snapshot directory.
pub fn answer<E: KvEngine>(
    reader: &ChainReader<E>,
    snapshot_dir: Option<&Path>,
    request: StateSyncRequest,
) -> StateSyncAnswer {
    match request {
        StateSyncRequest::EpochLinks { from_epoch, .. } => {
            StateSyncAnswer::EpochLinks(links_from(reader, from_epoch))
        }
        StateSyncRequest::Manifest { .. } => StateSyncAnswer::Manifest(
            snapshot_dir.and_then(|dir| described(dir, reader.chain().tag()).next().map(|s| s.0)),
        ),
        StateSyncRequest::Chunk {
            checksum,
            offset,
            len,
            ..
        } => {
            let file = snapshot_dir.and_then(|dir| {
                described(dir, reader.chain().tag())
                    .find(|(manifest, _)| manifest.checksum == checksum)
                    .map(|(_, path)| path)
            });
            match file.and_then(|path| read_chunk(&path, offset, len)) {
                Some(bytes) => StateSyncAnswer::Chunk(bytes),
                None => StateSyncAnswer::Gone,
            }
        }
    }
}

/// Consecutive links from `from_epoch` that this node can attest, at most
/// [`MAX_LINKS_PER_ANSWER`] (which the core types check fit one frame).
fn links_from<E: KvEngine>(reader: &ChainReader<E>, from_epoch: u64) -> Vec<Attestation> {
    (from_epoch..from_epoch.saturating_add(MAX_LINKS_PER_ANSWER as u64))
        .map_while(|epoch| reader.epoch_link(epoch).ok().flatten())
        .collect()
}

/// The snapshots of `chain` in `dir` that describe themselves, newest first.
fn described(dir: &Path, chain: u8) -> impl Iterator<Item = (SnapshotManifest, PathBuf)> {
    let files = list_snapshots(dir, chain).unwrap_or_default();
    files.into_iter().rev().filter_map(|(_, path)| {
        let info = describe_snapshot(&path).ok()?;
        Some((manifest_of(&info), path))
    })
}

pub fn manifest_of(info: &dualchain_store::SnapshotInfo) -> SnapshotManifest {
    SnapshotManifest {
        height: info.height,
        state_root: Digest(info.state_root),
        block_digest: Digest(info.block_digest),
        size: info.bytes,
        checksum: Digest(info.checksum),
    }
}

/// Up to `len` bytes of `path` at `offset` (fewer at the end; `None` past it).
fn read_chunk(path: &Path, offset: u64, len: u32) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    if offset >= size {
        return None;
    }
    let take = (size - offset).min(u64::from(len)) as usize;
    let mut bytes = vec![0; take];
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Sends `answer`; returns its size. A peer that stopped waiting is not an error.
fn respond(inbound: InboundRequest, answer: &StateSyncAnswer) -> usize {
    let payload = answer.to_canonical_bytes();
    let len = payload.len();
    let _ = inbound.respond(Bytes::from(payload));
    len
}
