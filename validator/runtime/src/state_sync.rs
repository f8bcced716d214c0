//! State sync, the asking side: a chain whose data directory is empty gets its state
//! from a snapshot (a peer's, or a file) instead of re-executing from genesis, then
//! block-syncs the rest ([`crate::follower`]).
//!
//! **When** ([`Bootstrap`]): with `--bootstrap-from peers` or `FILE` whenever the
//! chain's database directory is empty; by default (`auto`) when it is empty, the
//! genesis is older than the consensus window (a network that just started has
//! nothing worth a snapshot) and a peer offers a snapshot at least a consensus window
//! of blocks high. `genesis` never syncs state.
//!
//! **Trust, in order; nothing becomes visible before all of it holds:**
//! 1. *The sets.* The epoch chain from the genesis set ([`verify_epoch_chain_of`]):
//!    each link is this chain's record of the next epoch's validator set, proven
//!    against a block of the epoch before and certified by that epoch's set. A peer
//!    whose links do not verify is banned.
//! 2. *The head.* The snapshot's head block (height and digest, from the peer's
//!    manifest) must be on the certified chain: peers are asked for the blocks from
//!    that height, and a certificate of one of them, verified against the set of its
//!    epoch, must cover it through parent digests. A head no peer can certify is not
//!    downloaded.
//! 3. *The file.* Downloaded in chunks named by the file's checksum (resumable: a
//!    restart goes on from the partial file), then imported by
//!    [`import_snapshot_checked`]: checksum, every entry, the state root recomputed
//!    from the imported state and compared with the header, the imported head with
//!    the certified one. A file that fails any check is deleted and its peer banned;
//!    the next offer is tried. Before a byte is written, the free space must hold
//!    the rest of the file and a database as large as it, with headroom
//!    ([`ensure_room`]); otherwise state sync fails with what it needs.
//!
//! The imported database also receives the verified links (so this node serves them
//! in turn: it holds none of the blocks they came from) and the follow mark, so the
//! chain opens by block sync from the snapshot's height to the next epoch boundary,
//! where consensus resumes. Snapshots hold no validator-private records (the
//! `consensus` column is never part of one).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use dualchain_consensus::BlockSealer;
use dualchain_core::chain_store::epoch_links_batch;
use dualchain_core::crypto::NetworkId;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Attestation, BlockHeader, BlockRange, BlockRangeRequest, CertifiedBlock, ChainId,
    MAX_SNAPSHOT_CHUNK_BYTES, SnapshotManifest, StateSyncAnswer, StateSyncRequest, ValidatorSet,
    verify_epoch_chain_of,
};
use dualchain_net::{
    EventReceiver, Message, MessageKind, NetError, NetEvent, Network, Offence, PeerId,
};
use dualchain_storage::meta::{HEAD_KEY, SCHEMA_VERSION_KEY};
use dualchain_storage::{Column, KvEngine, WriteBatch};
use dualchain_store::{
    RocksEngine, SnapshotError, SnapshotInfo, StoreOptions, describe_snapshot,
    import_snapshot_checked,
};

use crate::chain::sealer_config;
use crate::clock::Clock;
use crate::context::ChainContext;
use crate::executor::SEALER_STATE_KEY;
use crate::follower::{FOLLOW_KEY, window_blocks};
use crate::membership::transport_members;
use crate::seams::Seams;
use crate::state_server::manifest_of;

/// How a chain with an empty data directory starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Bootstrap {
    /// From a peer's snapshot if one is further ahead than the consensus window and
    /// the genesis is older than it; else from genesis.
    #[default]
    Auto,
    /// From a peer's snapshot; the chain fails (and is retried) until one verifies.
    Peers,
    /// From this snapshot file (of this chain), verified like a peer's.
    File(PathBuf),
    /// From genesis, catching up by blocks.
    Genesis,
}

/// Directory of partial downloads, beside the chain's database directory.
pub const DOWNLOAD_DIR: &str = "state-sync";
/// How long one request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long peers are waited for (connections, answers) before giving up on them.
const PEER_WAIT: Duration = Duration::from_secs(30);
/// How long f+1 connected peers wait for the others.
const PEERS_SETTLE: Duration = Duration::from_secs(5);
/// Blocks asked from a snapshot's height to find a certificate that covers it.
const COVER_BLOCKS: u32 = 32;
/// Failed chunk requests in a row after which a download moves to the next offer.
const CHUNK_ATTEMPTS: u32 = 5;

/// Creates the chain's database at `db_dir` from a snapshot if [`Bootstrap`] says so
/// and `db_dir` is empty, over `net` (already started with the genesis set).
/// `Ok(None)`: nothing was imported, the chain starts from genesis.
pub async fn bootstrap<S: Seams>(
    ctx: &Arc<ChainContext<S>>,
    net: &Arc<S::Net>,
    db_dir: &Path,
    options: &StoreOptions,
) -> anyhow::Result<Option<SnapshotInfo>> {
    let chain = ctx.chain;
    let mut banned = HashSet::new();
    let sets = fetch_epoch_chain(ctx, net, &mut banned).await;
    tracing::info!(%chain, newest_epoch = sets.newest().epoch(), "state sync: epoch chain verified from genesis");
    // The members of today may not be those of the genesis.
    net.set_members(transport_members(
        sets.newest(),
        Some(ctx.validators()),
        &[],
    ));
    let downloads = db_dir
        .parent()
        .map_or_else(|| PathBuf::from(DOWNLOAD_DIR), |p| p.join(DOWNLOAD_DIR));
    match ctx.bootstrap.clone() {
        Bootstrap::File(file) => {
            let info = describe_snapshot(&file)
                .with_context(|| format!("reading snapshot file {}", file.display()))?;
            let size = fs::metadata(&file)
                .with_context(|| format!("reading snapshot file {}", file.display()))?
                .len();
            ensure_import_room(db_dir, size)?;
            let head = certified_head(ctx, net, &sets, &manifest_of(&info), &mut banned)
                .await
                .map_err(|why| {
                    anyhow::anyhow!(
                        "the head of snapshot file {} (height {}) is not certified: {why}",
                        file.display(),
                        info.height
                    )
                })?;
            let info = import(ctx, &file, db_dir, options, &sets, &head)
                .with_context(|| format!("importing snapshot file {}", file.display()))?;
            Ok(Some(info))
        }
        Bootstrap::Peers | Bootstrap::Auto => {
            let min_height = match ctx.bootstrap {
                Bootstrap::Auto => window_blocks(ctx),
                _ => 1,
            };
            let offers = offers(ctx, net, min_height, &banned).await;
            for (peer, manifest) in offers {
                let imported = from_peer(
                    ctx,
                    net,
                    peer,
                    &manifest,
                    db_dir,
                    &downloads,
                    options,
                    &sets,
                    &mut banned,
                )
                .await?;
                if imported.is_some() {
                    return Ok(imported);
                }
            }
            if ctx.bootstrap == Bootstrap::Peers {
                bail!(
                    "state sync of the {chain} chain: no peer offered a snapshot that verifies \
                     (see the warnings above); retrying"
                );
            }
            tracing::info!(%chain, min_height, "state sync: no peer offers a snapshot that far ahead; starting from genesis");
            Ok(None)
        }
        Bootstrap::Genesis => Ok(None),
    }
}

/// Whether state sync should be tried for a chain whose database directory is
/// `db_dir` (see [`Bootstrap`]).
pub fn wanted<S: Seams>(ctx: &ChainContext<S>, db_dir: &Path) -> anyhow::Result<bool> {
    if ctx.bootstrap == Bootstrap::Genesis || !is_empty_dir(db_dir)? {
        return Ok(false);
    }
    if ctx.bootstrap == Bootstrap::Auto {
        let age = ctx.unix_ms().saturating_sub(ctx.genesis().genesis_time_ms);
        return Ok(age > ctx.consensus_window_ms);
    }
    Ok(true)
}

fn is_empty_dir(dir: &Path) -> anyhow::Result<bool> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(mut entries) => Ok(entries.next().is_none()),
    }
}

/// The validator sets of every epoch the epoch chain proves, from genesis on, and
/// the links that prove them.
pub struct EpochSets {
    sets: BTreeMap<u64, ValidatorSet>,
    links: Vec<Attestation>,
}

impl EpochSets {
    fn genesis(set: &ValidatorSet) -> Self {
        Self {
            sets: BTreeMap::from([(set.epoch(), set.clone())]),
            links: Vec::new(),
        }
    }

    fn newest(&self) -> &ValidatorSet {
        self.sets.values().next_back().expect("the genesis set")
    }

    fn of(&self, epoch: u64) -> Option<&ValidatorSet> {
        self.sets.get(&epoch)
    }

    /// Adds `links`, already verified to follow the newest set.
    fn extend(&mut self, links: Vec<Attestation>) {
        for link in links {
            let set = ValidatorSet::from_canonical_bytes(&link.value).expect("a verified link");
            self.sets.insert(set.epoch(), set);
            self.links.push(link);
        }
    }
}

/// Asks the connected peers for links after the newest set known until none has
/// more; a peer whose links do not verify is banned.
async fn fetch_epoch_chain<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    banned: &mut HashSet<PeerId>,
) -> EpochSets {
    let mut sets = EpochSets::genesis(ctx.validators());
    wait_for_peers(ctx, net).await;
    loop {
        let request = StateSyncRequest::EpochLinks {
            chain: ctx.chain,
            from_epoch: sets.newest().epoch() + 1,
        };
        let mut answers: Vec<(PeerId, Vec<Attestation>)> = ask_all(ctx, net, request, banned)
            .await
            .into_iter()
            .filter_map(|(peer, answer)| match answer {
                StateSyncAnswer::EpochLinks(links) if !links.is_empty() => Some((peer, links)),
                _ => None,
            })
            .collect();
        answers.sort_by_key(|(_, links)| std::cmp::Reverse(links.len()));
        let mut progressed = false;
        for (peer, links) in answers {
            match verify_epoch_chain_of(ctx.chain, ctx.identity.network(), sets.newest(), &links) {
                Ok(_) => {
                    sets.extend(links);
                    progressed = true;
                    break;
                }
                Err(e) => ban(
                    ctx,
                    net,
                    banned,
                    peer,
                    &format!("its epoch chain does not verify: {e}"),
                ),
            }
        }
        if !progressed {
            return sets;
        }
    }
}

/// Waits until every other member of the genesis set is connected, or f+1 of them
/// have been for [`PEERS_SETTLE`] (more peers, more offers to choose from; peers may
/// take a while to admit a node that vanished and came back), or [`PEER_WAIT`].
async fn wait_for_peers<S: Seams>(ctx: &ChainContext<S>, net: &Arc<S::Net>) {
    let others = ctx.validators().len().saturating_sub(1);
    let enough = (others / 3 + 1).min(others);
    let start = ctx.clock.monotonic_ms();
    let mut enough_since = None;
    loop {
        let now = ctx.clock.monotonic_ms();
        let connected = net.connected_peers().len();
        if connected >= enough {
            enough_since.get_or_insert(now);
        }
        let settled =
            enough_since.is_some_and(|since| now - since >= PEERS_SETTLE.as_millis() as u64);
        if connected >= others || settled || now - start >= PEER_WAIT.as_millis() as u64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every connected peer's (not banned) answer to `request` within [`ASK_TIMEOUT`].
async fn ask_all<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    request: StateSyncRequest,
    banned: &HashSet<PeerId>,
) -> Vec<(PeerId, StateSyncAnswer)> {
    request_each(ctx, net, state_message(request), banned)
        .await
        .into_iter()
        .filter_map(|(peer, answer)| {
            let answer = StateSyncAnswer::from_canonical_bytes(&answer.ok()?).ok()?;
            Some((peer, answer))
        })
        .collect()
}

/// Sends `message` (a request) to every connected peer not banned at once; their
/// answers, failures included, within [`ASK_TIMEOUT`].
async fn request_each<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    message: Message,
    banned: &HashSet<PeerId>,
) -> Vec<(PeerId, Result<Bytes, NetError>)> {
    let asks = net
        .connected_peers()
        .into_iter()
        .filter(|p| *p != ctx.peer_id && !banned.contains(p))
        .map(|peer| {
            let (net, message) = (net.clone(), message.clone());
            async move { (peer, net.request(peer, message, ASK_TIMEOUT).await) }
        });
    futures::future::join_all(asks).await
}

/// One peer's answer to `request`; `None` on timeout or an undecodable answer.
async fn ask<N: Network + ?Sized>(
    net: &N,
    peer: PeerId,
    request: StateSyncRequest,
) -> Option<StateSyncAnswer> {
    let bytes = net
        .request(peer, state_message(request), ASK_TIMEOUT)
        .await
        .ok()?;
    StateSyncAnswer::from_canonical_bytes(&bytes).ok()
}

fn state_message(request: StateSyncRequest) -> Message {
    Message::new(
        request.chain(),
        MessageKind::FetchState,
        request.to_canonical_bytes(),
    )
}

/// The snapshots peers offer at `min_height` or above, highest first.
async fn offers<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    min_height: u64,
    banned: &HashSet<PeerId>,
) -> Vec<(PeerId, SnapshotManifest)> {
    let request = StateSyncRequest::Manifest { chain: ctx.chain };
    let mut offers: Vec<(PeerId, SnapshotManifest)> = ask_all(ctx, net, request, banned)
        .await
        .into_iter()
        .filter_map(|(peer, answer)| match answer {
            StateSyncAnswer::Manifest(Some(m)) if m.height >= min_height => Some((peer, m)),
            _ => None,
        })
        .collect();
    offers.sort_by_key(|(_, m)| std::cmp::Reverse(m.height));
    tracing::info!(
        chain = %ctx.chain,
        offers = ?offers.iter().map(|(p, m)| (p.to_string(), m.height)).collect::<Vec<_>>(),
        "state sync: snapshots offered"
    );
    offers
}

/// Certifies, downloads and imports `manifest` from `peer`. `Ok(None)`: this offer
/// failed (logged; a lying peer banned); `Err`: a local failure.
#[allow(clippy::too_many_arguments)]
async fn from_peer<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    peer: PeerId,
    manifest: &SnapshotManifest,
    db_dir: &Path,
    downloads: &Path,
    options: &StoreOptions,
    sets: &EpochSets,
    banned: &mut HashSet<PeerId>,
) -> anyhow::Result<Option<SnapshotInfo>> {
    let chain = ctx.chain;
    if banned.contains(&peer) {
        return Ok(None);
    }
    let head = match certified_head(ctx, net, sets, manifest, banned).await {
        Ok(head) => head,
        Err(HeadUnproven::Differs) => {
            ban(
                ctx,
                net,
                banned,
                peer,
                "its snapshot's head is not the certified block at that height",
            );
            return Ok(None);
        }
        Err(HeadUnproven::NoCover) => {
            tracing::warn!(%chain, %peer, height = manifest.height, "state sync: no certificate covers the offered snapshot's head; trying the next offer");
            return Ok(None);
        }
    };
    let started = ctx.clock.monotonic_ms();
    let file = match download(ctx, net, peer, manifest, (downloads, db_dir)).await? {
        Downloaded::File(file) => file,
        Downloaded::Failed(why) => {
            tracing::warn!(%chain, %peer, why, "state sync: download failed; trying the next offer");
            return Ok(None);
        }
        Downloaded::Lied(why) => {
            ban(ctx, net, banned, peer, &why);
            return Ok(None);
        }
    };
    let imported = import(ctx, &file, db_dir, options, sets, &head);
    let _ = fs::remove_file(&file);
    match imported {
        Ok(info) => {
            tracing::info!(
                %chain, %peer, height = info.height, bytes = info.bytes, entries = info.entries,
                seconds = (ctx.clock.monotonic_ms() - started) as f64 / 1000.0,
                "state sync: snapshot verified and imported; following the chain from its height"
            );
            Ok(Some(info))
        }
        Err(e) if is_files_fault(&e) => {
            ban(
                ctx,
                net,
                banned,
                peer,
                &format!("its snapshot is invalid: {e:#}"),
            );
            Ok(None)
        }
        Err(e) => Err(e).context("importing a downloaded snapshot"),
    }
}

/// Whether an import failed because of the file (not our disk).
fn is_files_fault(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<SnapshotError>() {
        Some(SnapshotError::Io { .. } | SnapshotError::TargetNotEmpty { .. }) | None => false,
        Some(_) => true,
    }
}

/// Why a snapshot's head was not shown to be on the certified chain.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum HeadUnproven {
    #[error("the certified block at that height is another one")]
    Differs,
    #[error("no peer showed a certificate that covers it in time")]
    NoCover,
}

/// The header of `manifest`'s head block, once peers showed it on the certified
/// chain: blocks from its height whose parent digests link to a block whose
/// certificate verifies against the set of its epoch. A peer answering with blocks
/// that do not link or a certificate that does not verify is banned.
async fn certified_head<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    sets: &EpochSets,
    manifest: &SnapshotManifest,
    banned: &mut HashSet<PeerId>,
) -> Result<BlockHeader, HeadUnproven> {
    let request = BlockRangeRequest {
        chain: ctx.chain,
        from: manifest.height,
        count: COVER_BLOCKS,
    };
    let message = Message::new(
        ctx.chain,
        MessageKind::FetchBlocks,
        request.to_canonical_bytes(),
    );
    let deadline = ctx.clock.monotonic_ms() + PEER_WAIT.as_millis() as u64;
    while ctx.clock.monotonic_ms() < deadline {
        for (peer, answer) in request_each(ctx, net, message.clone(), banned).await {
            let Ok(bytes) = answer else { continue };
            let Ok(range) = BlockRange::from_canonical_bytes(&bytes) else {
                ban(ctx, net, banned, peer, "its block range does not decode");
                continue;
            };
            match covered_head(
                ctx.chain,
                ctx.identity.network(),
                sets,
                manifest,
                &range.blocks,
            ) {
                Cover::Head(header) => return Ok(header),
                Cover::Differs => return Err(HeadUnproven::Differs),
                Cover::NotYet => {}
                Cover::Lie(why) => ban(ctx, net, banned, peer, &why),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(HeadUnproven::NoCover)
}

#[derive(Debug, PartialEq, Eq)]
enum Cover {
    Head(BlockHeader),
    /// The certified block at the manifest's height is not the manifest's.
    Differs,
    /// No certificate among these blocks (yet), or of an epoch not proven.
    NotYet,
    Lie(String),
}

/// Whether `blocks` (a peer's answer from the manifest's height) show the manifest's
/// head on the certified chain.
fn covered_head(
    chain: ChainId,
    network: NetworkId,
    sets: &EpochSets,
    manifest: &SnapshotManifest,
    blocks: &[CertifiedBlock],
) -> Cover {
    let Some(first) = blocks.first() else {
        return Cover::NotYet;
    };
    let head = &first.block.header;
    if head.height != manifest.height || head.chain != chain {
        return Cover::Lie(format!(
            "answered height {} of {} for a request from {}",
            head.height, head.chain, manifest.height
        ));
    }
    let mut previous: Option<&BlockHeader> = None;
    for entry in blocks {
        let header = &entry.block.header;
        if let Some(before) = previous
            && (header.parent != before.digest() || header.height != before.height + 1)
        {
            // The link breaks here: only what a certificate covers counts.
            return Cover::NotYet;
        }
        previous = Some(header);
        let Some(certificate) = &entry.certificate else {
            continue;
        };
        let Some(set) = sets.of(header.epoch) else {
            return Cover::NotYet;
        };
        if let Err(e) = certificate.verify(header, set, network) {
            return Cover::Lie(format!(
                "its certificate of block {} does not verify: {e}",
                header.height
            ));
        }
        if !entry.block.body_matches_header() {
            return Cover::Lie(format!(
                "its block {} does not match its header",
                header.height
            ));
        }
        // Certified, and linked back to the first block: the head's digest is the
        // certified chain's at that height.
        return if head.digest() == manifest.block_digest && head.state_root == manifest.state_root {
            Cover::Head(head.clone())
        } else {
            // The certified block at that height is another: the offer was a lie
            // (by its peer, not by this one).
            Cover::Differs
        };
    }
    Cover::NotYet
}

enum Downloaded {
    File(PathBuf),
    /// The peer stopped answering or no longer serves the file.
    Failed(String),
    /// The peer answered with bytes that cannot be part of the file it offered.
    Lied(String),
}

/// Downloads the file `manifest` names from `peer` into `dir`, going on from a
/// partial file of the same checksum left by an interrupted attempt. Refuses (an
/// error: no other offer of that size fits either) when `dir` and `db_dir` lack the
/// room the rest of the file and its import take.
async fn download<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    peer: PeerId,
    manifest: &SnapshotManifest,
    (dir, db_dir): (&Path, &Path),
) -> anyhow::Result<Downloaded> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = format!(
        "{}-{}.partial",
        dualchain_store::snapshot::chain_name(ctx.chain.tag()),
        hex::encode(manifest.checksum.0)
    );
    let path = dir.join(&name);
    remove_other_partials(dir, &name);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut offset = file.metadata()?.len();
    if offset > manifest.size {
        file.set_len(0)?;
        offset = 0;
    }
    ensure_room(dir, db_dir, manifest.size, offset)?;
    if offset > 0 {
        tracing::info!(chain = %ctx.chain, offset, size = manifest.size, "state sync: resuming a partial download");
    }
    let mut failures = 0;
    while offset < manifest.size {
        let len = (manifest.size - offset).min(u64::from(MAX_SNAPSHOT_CHUNK_BYTES)) as u32;
        let request = StateSyncRequest::Chunk {
            chain: ctx.chain,
            checksum: manifest.checksum,
            offset,
            len,
        };
        match ask(&**net, peer, request).await {
            Some(StateSyncAnswer::Chunk(bytes)) if bytes.len() == len as usize => {
                file.write_all(&bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                offset += u64::from(len);
                failures = 0;
            }
            Some(StateSyncAnswer::Chunk(bytes)) => {
                let _ = fs::remove_file(&path);
                return Ok(Downloaded::Lied(format!(
                    "it sent {} bytes for a chunk of {len} at {offset} of a {}-byte file",
                    bytes.len(),
                    manifest.size
                )));
            }
            Some(StateSyncAnswer::Gone) => {
                let _ = fs::remove_file(&path);
                return Ok(Downloaded::Failed(
                    "the peer no longer serves that snapshot".into(),
                ));
            }
            _ => {
                failures += 1;
                if failures >= CHUNK_ATTEMPTS {
                    // The partial file stays: a later attempt goes on from it.
                    return Ok(Downloaded::Failed(format!(
                        "{failures} chunk requests in a row went unanswered at byte {offset}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
            }
        }
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(Downloaded::File(path))
}

/// Free space kept beyond a download's and its import's own: RocksDB's logs and
/// compaction output, and room for the chain to go on.
const DISK_HEADROOM_BYTES: u64 = 256 << 20;

/// Checks that the rest of a `size`-byte snapshot file (`downloaded` bytes are
/// there) fits under `downloads`, and the database its import builds (taken as large
/// as the file) under `db_dir`'s parent, with [`DISK_HEADROOM_BYTES`] to spare. Better
/// a clear refusal now than a disk filled halfway through, under the chain's own
/// database.
fn ensure_room(downloads: &Path, db_dir: &Path, size: u64, downloaded: u64) -> anyhow::Result<()> {
    let database = db_dir.parent().unwrap_or(db_dir);
    let filesystems = [filesystem(downloads)?, filesystem(database)?];
    match room_shortfall(size, downloaded, filesystems) {
        None => Ok(()),
        Some((which, need, free)) => {
            let path = [downloads, database][which];
            anyhow::bail!(
                "state sync: a {size}-byte snapshot needs {need} bytes free under {} ({downloaded} already downloaded, the import's database, {DISK_HEADROOM_BYTES} spare); {free} are free: grow the volume or free space",
                path.display()
            )
        }
    }
}

/// Checks that the database a `size`-byte snapshot file's import builds (taken as
/// large as the file) fits under `db_dir`'s parent with [`DISK_HEADROOM_BYTES`] to
/// spare. The file is already there, wherever it is (it may be on a read-only or full
/// volume): only the database's filesystem must have room.
fn ensure_import_room(db_dir: &Path, size: u64) -> anyhow::Result<()> {
    let database = db_dir.parent().unwrap_or(db_dir);
    let (_, free) = filesystem(database)?;
    let need = size.saturating_add(DISK_HEADROOM_BYTES);
    if free < need {
        anyhow::bail!(
            "state sync: importing a {size}-byte snapshot file needs {need} bytes free under {} (the import's database, {DISK_HEADROOM_BYTES} spare); {free} are free: grow the volume or free space",
            database.display()
        );
    }
    Ok(())
}

/// [`ensure_room`]'s arithmetic: given the (id, free bytes) of the downloads' and
/// the database's filesystems, the first that lacks room, with what it needs and
/// has. One filesystem holding both must hold the sum.
fn room_shortfall(
    size: u64,
    downloaded: u64,
    [file_fs, db_fs]: [(u64, u64); 2],
) -> Option<(usize, u64, u64)> {
    let rest = size.saturating_sub(downloaded);
    let needs = if file_fs.0 == db_fs.0 {
        vec![(0, rest.saturating_add(size), file_fs.1)]
    } else {
        vec![(0, rest, file_fs.1), (1, size, db_fs.1)]
    };
    needs.into_iter().find_map(|(which, need, free)| {
        let need = need.saturating_add(DISK_HEADROOM_BYTES);
        (free < need).then_some((which, need, free))
    })
}

/// The filesystem `path` is on (its id) and the bytes an unprivileged writer may
/// still use there.
fn filesystem(path: &Path) -> anyhow::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(path)
        .with_context(|| format!("reading the free space under {}", path.display()))?;
    Ok((stat.f_fsid, stat.f_bavail.saturating_mul(stat.f_frsize)))
}

/// Deletes partial downloads other than `keep` (of files no longer offered).
fn remove_other_partials(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.ends_with(".partial") && n != keep)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Imports `file` into `db_dir` if its head is `head` (certified), adding the
/// verified links and the follow mark in the same atomic step.
fn import<S: Seams>(
    ctx: &ChainContext<S>,
    file: &Path,
    db_dir: &Path,
    options: &StoreOptions,
    sets: &EpochSets,
    head: &BlockHeader,
) -> anyhow::Result<SnapshotInfo> {
    let chain = ctx.chain;
    // Where the follower starts: the head's epoch, derived from the certified header
    // rather than taken from the file (the block that ends the epoch sets the next).
    let sealer = BlockSealer::new(sealer_config(ctx, head.epoch))?.to_state_bytes();
    let check = |engine: &RocksEngine, info: &SnapshotInfo| -> Result<(), String> {
        if info.chain != chain.tag()
            || info.height != head.height
            || info.block_digest != head.digest().0
            || info.state_root != head.state_root.0
        {
            return Err(format!(
                "its head (chain {}, height {}, block {}) is not the certified block {} of {chain}",
                info.chain,
                info.height,
                hex::encode(info.block_digest),
                head.height
            ));
        }
        let mut batch =
            local_meta(engine).map_err(|e| format!("cannot read its meta column: {e}"))?;
        batch.extend(epoch_links_batch(&sets.links));
        batch.put(Column::Meta, SEALER_STATE_KEY.to_vec(), sealer.clone());
        batch.put(Column::Meta, FOLLOW_KEY.to_vec(), Vec::new());
        engine
            .write(batch)
            .map_err(|e| format!("cannot write the node's own records: {e}"))
    };
    Ok(import_snapshot_checked(file, db_dir, options, check)?)
}

/// The deletes of every `meta` record the snapshot carried except the chain head and the
/// schema version: the rest (the exporter's sealer position, record proofs, events,
/// epoch links) is history of the exporting node that no root covers, so none of it
/// is taken on trust. The follower rebuilds what this node needs.
fn local_meta(engine: &RocksEngine) -> Result<WriteBatch, dualchain_storage::StorageError> {
    let mut batch = WriteBatch::new();
    for item in engine.scan_from(Column::Meta, b"")? {
        let (key, _) = item?;
        if key != HEAD_KEY && key != SCHEMA_VERSION_KEY {
            batch.delete(Column::Meta, key);
        }
    }
    Ok(batch)
}

/// Bans `peer` for the rest of this sync and reports it to the transport.
fn ban<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    banned: &mut HashSet<PeerId>,
    peer: PeerId,
    why: &str,
) {
    tracing::warn!(chain = %ctx.chain, %peer, reason = why, "state sync: banned a peer");
    banned.insert(peer);
    net.report(peer, Offence::InvalidContent);
}

/// Runs `work` while answering nothing else the transport brings: requests are
/// dropped (declined; peers ask someone else), broadcasts are for a chain that is not
/// running yet.
pub async fn draining<F: std::future::Future>(events: &mut EventReceiver, work: F) -> F::Output {
    handling_events(events, drop, work).await
}

/// Runs `work` while every event the transport brings goes to `on_event` (which drops
/// what it does not answer; a dropped request is declined at once).
pub async fn handling_events<F: std::future::Future>(
    events: &mut EventReceiver,
    mut on_event: impl FnMut(NetEvent),
    work: F,
) -> F::Output {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            event = events.recv() => match event {
                Some(event) => on_event(event),
                None => return work.await,
            }
        }
    }
}

#[cfg(test)]
#[path = "state_sync_tests.rs"]
mod tests;
