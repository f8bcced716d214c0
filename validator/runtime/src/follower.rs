//! Catching up by blocks: a member whose chain is further behind than its peers'
//! consensus stores reach follows the chain through block sync, and resumes
//! consensus at an epoch boundary.
//!
//! **When.** At every start of a chain, before its engine opens, the node asks its
//! peers for their head ([`probe`]); and while a chain runs, whenever its head is
//! older than the consensus window — on Alpha, or than one epoch's time if that is
//! shorter ([`BehindWatch`]: a partition, a process stopped and continued, an engine
//! stuck in an epoch its peers left) — the same probe runs off the driver's loop
//! every [`BEHIND_PROBE_INTERVAL`], and a chain that fell out of reach ends its
//! driver ([`FellBehind`], which the supervisor does not count as a failure) so it
//! reopens here. If the (f+1)-th highest head it hears (so at least one honest
//! validator stands behind it) is more blocks ahead than the consensus window covers
//! (`consensus_window_ms / block time`), or on Alpha past the second boundary after
//! the start of our epoch (peers dropped that epoch's rounds), the vertices the
//! engine would need are gone from every peer's store, and vertex sync cannot bring
//! it back. A node whose data directory was emptied is the same case from height 0.
//! A follow that was interrupted (a restart) goes on regardless of the probe: a
//! meta record marks it until it ends.
//!
//! **How.** [`follow`] runs [`BlockSync`] over the transport and applies what it
//! allows through a [`BlockReplayer`] on the chain's own store: only blocks covered
//! by a verified certificate of their epoch, each re-executed to its roots. It
//! answers peers' block range requests meanwhile and declines the rest.
//!
//! **Where consensus resumes.** An engine can only start where every node's state
//! is determined by the committed chain alone: at the start of an epoch (round 0,
//! commit sequence 0, and the sealer that every node derives from the block that
//! ended the previous epoch, [`BlockSealer::next_epoch`]). So the follower stops
//! after a block that ended its epoch, once that block is recent enough for the
//! next epoch's first rounds to still be in the peers' stores (within half a window,
//! and less than one and a half epochs' time old: peers drop an epoch two boundaries
//! on), and
//! persists the next epoch's sealer in the same batch that clears the follow mark.
//! The chain then opens as after any restart and takes part from that epoch on,
//! catching its first rounds up through vertex sync. Until then it votes on no
//! block and proposes nothing: with the default one-hour epochs, a validator back
//! from a long outage is a member again within an epoch. (Resuming mid-epoch needs
//! a certified consensus position in the block header; not built.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use dualchain_consensus::BlockSealer;
use dualchain_core::Digest;
use dualchain_core::chain_store::ChainReader;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    BlockHeader, BlockRange, BlockRangeRequest, ChainId, EpochSchedule, StateSyncRequest,
    ValidatorSet,
};
use dualchain_execution::ExecutionMode;
use dualchain_net::{
    EventReceiver, InboundRequest, Message, MessageKind, NetEvent, Network, Offence, PeerId,
};
use dualchain_storage::{Column, KvEngine, WriteBatch};
use tokio::sync::{mpsc, watch};

use crate::block_server::BlockServer;
use crate::block_sync::{BlockSync, BlockSyncConfig, Ready};
use crate::clock::Clock;
use crate::context::{ChainContext, Head, Live};
use crate::executor::SEALER_STATE_KEY;
use crate::replay::BlockReplayer;
use crate::seams::Seams;
use crate::state_server::StateServer;
use crate::sync_server::Served;

/// Meta key present while a chain follows by block sync.
pub const FOLLOW_KEY: &[u8] = b"node/following";
/// How long the probe of peers' heads waits for f+1 answers at most. It runs only
/// when the head is older than the consensus window (so the node is behind unless
/// the whole network stopped), and peers may take a while to admit a node that
/// vanished: waiting here is cheaper than an engine that can never catch up.
const PROBE_WINDOW: Duration = Duration::from_secs(30);
/// How long one range request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the follower polls for requests and commits when nothing else wakes it.
const STEP: Duration = Duration::from_millis(50);

/// How often a running chain whose head is older than the consensus window probes
/// its peers' heads ([`BehindWatch`]).
pub const BEHIND_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Watches a running chain for falling further behind than the consensus window.
/// Its engine could never catch up then (the rounds it misses are gone from every
/// peer's store), so the driver ends with an error and the supervisor reopens the
/// chain, whose opening probes again and follows by block sync. The head's age is
/// checked on every tick (a clock read); a probe runs only while the head is that
/// old, at most every [`BEHIND_PROBE_INTERVAL`], off the loop — so a network that
/// stopped as a whole (every head old, nobody ahead) costs a few requests, never a
/// restart.
#[derive(Debug, Default)]
pub struct BehindWatch {
    probe: Option<tokio::sync::oneshot::Receiver<Option<u64>>>,
    next_probe_ms: u64,
}

impl BehindWatch {
    /// `Err` when the chain must stop to catch up by block sync.
    pub fn check<S: Seams>(
        &mut self,
        ctx: &Arc<ChainContext<S>>,
        net: &Arc<S::Net>,
    ) -> anyhow::Result<()> {
        if let Some(answer) = self.probe.as_mut() {
            match answer.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return Ok(()),
                Ok(Some(ahead)) => {
                    self.probe = None;
                    return fell_behind(ctx, ahead);
                }
                Ok(None) | Err(_) => self.probe = None,
            }
        }
        let now = ctx.clock.monotonic_ms();
        if now < self.next_probe_ms || !head_older_than_window(ctx) {
            return Ok(());
        }
        let head = ctx.head();
        self.next_probe_ms = now + BEHIND_PROBE_INTERVAL.as_millis() as u64;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ctx, net) = (ctx.clone(), net.clone());
        tokio::spawn(async move {
            let committee = ctx.committee();
            let _ = tx.send(probe(&ctx, &net, &committee, head.height).await);
        });
        self.probe = Some(rx);
        Ok(())
    }
}

/// The error that ends a driver whose peers are out of its engine's reach: not a
/// failure but the way to catch up, so the supervisor reopens the chain at once
/// (it follows by block sync then) and counts no restart.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FellBehind(pub String);

/// Ends the driver with [`FellBehind`] if peers at `ahead` are out of its engine's
/// reach.
fn fell_behind<S: Seams>(ctx: &ChainContext<S>, ahead: u64) -> anyhow::Result<()> {
    let head = ctx.head().height;
    let Some((behind, window)) = beyond_window(ctx, head, ahead) else {
        return Ok(());
    };
    tracing::warn!(
        chain = %ctx.chain,
        head,
        peers_at = ahead,
        window_blocks = window,
        "fell out of the engine's reach while running: reopening the chain to catch up by block sync"
    );
    Err(FellBehind(format!(
        "the {} chain is {behind} blocks behind its peers, out of its engine's reach (the consensus window's \
         {window} blocks, or on Alpha two epoch boundaries): reopening to catch up by block sync",
        ctx.chain
    ))
    .into())
}

/// How a follow ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// A block ended its epoch; the next epoch's sealer is persisted.
    EpochEnded,
    /// The node is stopping.
    Shutdown,
}

/// Blocks the consensus window covers on this chain.
pub fn window_blocks<S: Seams>(ctx: &ChainContext<S>) -> u64 {
    (ctx.consensus_window_ms / ctx.block_time_ms.max(1)).max(1)
}

/// How old our head must be before peers can be out of our engine's reach: the
/// consensus window, and on Alpha at most one epoch's time (peers drop an epoch's
/// rounds two boundaries on, which short epochs reach long before the window).
fn reach_ms<S: Seams>(ctx: &ChainContext<S>) -> u64 {
    match ctx.chain {
        ChainId::Alpha => {
            let epoch_ms = alpha_epoch_length(ctx).saturating_mul(ctx.block_time_ms.max(1));
            ctx.consensus_window_ms.min(epoch_ms)
        }
        ChainId::Delta => ctx.consensus_window_ms,
    }
}

fn alpha_epoch_length<S: Seams>(ctx: &ChainContext<S>) -> u64 {
    ctx.identity.genesis.epoch_length_alpha_blocks.max(1)
}

/// Whether our head is older than [`reach_ms`]: only then can peers be out of our
/// engine's reach (blocks follow slots, so no head is newer than now).
fn head_older_than_window<S: Seams>(ctx: &ChainContext<S>) -> bool {
    let head_age = ctx.unix_ms().saturating_sub(ctx.head().block_timestamp_ms);
    head_age > reach_ms(ctx)
}

/// `(blocks behind, window blocks)` if a head at `ahead` is out of the reach of an
/// engine whose head is `head`: further ahead than the consensus window covers, or
/// on Alpha past the second boundary after the start of our epoch (peers dropped its
/// rounds then). Vertex sync cannot bridge either.
fn beyond_window<S: Seams>(ctx: &ChainContext<S>, head: u64, ahead: u64) -> Option<(u64, u64)> {
    let window = window_blocks(ctx);
    let behind = ahead.saturating_sub(head);
    let epochs_gone =
        ctx.chain == ChainId::Alpha && epoch_out_of_reach(head, ahead, alpha_epoch_length(ctx));
    (behind > window || epochs_gone).then_some((behind, window))
}

/// Whether peers at height `ahead` dropped the rounds of the epoch an engine whose
/// head is `head` runs, with epochs of `length` blocks: they sealed a block past the
/// second boundary after its start. (The engine after a head at `h` runs the epoch
/// of height `h + 1`.)
fn epoch_out_of_reach(head: u64, ahead: u64, length: u64) -> bool {
    let schedule = EpochSchedule::new(length.max(1));
    let epoch = schedule.epoch_of(head.saturating_add(1));
    epoch
        .checked_add(1)
        .and_then(|next| schedule.boundary_of(next))
        .is_some_and(|boundary| ahead > boundary)
}

/// Whether the chain should follow by blocks instead of starting its engine: an
/// interrupted follow, or peers further ahead than the window.
///
/// While it probes, it answers its peers' block range requests from `reader` (its
/// own head) and drops the rest of what the transport brings, as a chain not running
/// yet: when a whole network starts after Alpha's reach (pods that took longer to
/// come up than a few short epochs), every validator probes at once, and each must
/// hear the others' heads (all at genesis: no catching up) rather than wait out its
/// window on requests nobody reads, whose timeouts would also cost the peers their
/// score until they banned each other.
pub async fn should_follow<S: Seams>(
    ctx: &ChainContext<S>,
    db: &S::Engine,
    (net, events): (&Arc<S::Net>, &mut EventReceiver),
    reader: ChainReader<S::Engine>,
    committee: &ValidatorSet,
    head: u64,
) -> anyhow::Result<bool> {
    if db.get(Column::Meta, FOLLOW_KEY)?.is_some() {
        tracing::info!(chain = %ctx.chain, head, "resuming an interrupted catch-up by block sync");
        return Ok(true);
    }
    // Blocks follow slots, so no peer's head is newer than now: a head younger than
    // the window cannot be further behind than it, and needs no probe.
    if !head_older_than_window(ctx) {
        return Ok(false);
    }
    let mut server = BlockServer::new(reader, ctx.seams.placement());
    let asked = probe(ctx, net, committee, head);
    let Some(ahead) = answering_blocks(ctx, events, &mut server, asked).await else {
        return Ok(false);
    };
    let Some((_, window)) = beyond_window(ctx, head, ahead) else {
        return Ok(false);
    };
    tracing::warn!(
        chain = %ctx.chain,
        head,
        peers_at = ahead,
        window_blocks = window,
        "further behind than the consensus window: catching up by block sync"
    );
    Ok(true)
}

/// Runs `work` while answering peers' block range requests with `server`; every
/// other event is dropped (a dropped request is declined at once).
async fn answering_blocks<S: Seams, F: std::future::Future>(
    ctx: &ChainContext<S>,
    events: &mut EventReceiver,
    server: &mut BlockServer<S::Engine>,
    work: F,
) -> F::Output {
    let on_event = |event| match event {
        NetEvent::Request(request) if request.message.kind == MessageKind::FetchBlocks => {
            serve_range(ctx, server, request)
        }
        _ => {}
    };
    crate::state_sync::handling_events(events, on_event, work).await
}

/// Answers one block range request (malformed ones are dropped, hence declined).
fn serve_range<S: Seams>(
    ctx: &ChainContext<S>,
    server: &mut BlockServer<S::Engine>,
    request: InboundRequest,
) {
    let Ok(range) = BlockRangeRequest::from_canonical_bytes(&request.message.payload) else {
        return;
    };
    let now = ctx.clock.monotonic_ms();
    match server.serve(request.from, range, request, now) {
        Served::Answering => ctx.metrics.block_requests_served.inc(),
        Served::Declined => ctx.metrics.block_requests_declined.inc(),
    }
}

/// The (f+1)-th highest head among the peers that answer within the probe window
/// (`None` if fewer than f+1 answer): a head at least one honest member holds.
async fn probe<S: Seams>(
    ctx: &ChainContext<S>,
    net: &Arc<S::Net>,
    committee: &ValidatorSet,
    head: u64,
) -> Option<u64> {
    let faulty = (committee.len().saturating_sub(1)) / 3;
    let peers: Vec<PeerId> = committee
        .validators()
        .iter()
        .map(|v| PeerId::of(&v.public_key))
        .filter(|p| *p != ctx.peer_id)
        .collect();
    if peers.len() <= faulty {
        return None;
    }
    let request = BlockRangeRequest {
        chain: ctx.chain,
        from: head + 1,
        count: 1,
    };
    let mut heads: std::collections::HashMap<PeerId, u64> = Default::default();
    let deadline = ctx.clock.monotonic_ms() + PROBE_WINDOW.as_millis() as u64;
    while heads.len() < peers.len() && ctx.clock.monotonic_ms() < deadline {
        let asks = peers.iter().filter(|p| !heads.contains_key(p)).map(|peer| {
            let message = Message::new(
                ctx.chain,
                MessageKind::FetchBlocks,
                request.to_canonical_bytes(),
            );
            let net = net.clone();
            let peer = *peer;
            async move {
                let answer: Result<Bytes, dualchain_net::NetError> =
                    net.request(peer, message, Duration::from_millis(500)).await;
                (peer, answer)
            }
        });
        for (peer, answer) in futures::future::join_all(asks).await {
            if let Ok(bytes) = answer
                && let Ok(range) = BlockRange::from_canonical_bytes(bytes.as_ref())
            {
                heads.insert(peer, range.head);
            }
        }
        if heads.len() > faulty * 2 || (heads.len() > faulty && probe_settled(ctx, deadline)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut claims: Vec<u64> = heads.into_values().collect();
    claims.sort_unstable_by(|a, b| b.cmp(a));
    tracing::info!(chain = %ctx.chain, head, ?claims, "peers' heads (our head is older than the engine's reach)");
    claims.get(faulty).copied()
}

/// Whether the probe has waited long enough to decide on f+1 answers rather than
/// 2f+1: five seconds into its window.
fn probe_settled<S: Seams>(ctx: &ChainContext<S>, deadline: u64) -> bool {
    let waited =
        PROBE_WINDOW.as_millis() as u64 - deadline.saturating_sub(ctx.clock.monotonic_ms());
    waited >= 5_000
}

/// Follows the chain by block sync until a recent block ends its epoch (see the
/// module docs), or shutdown.
pub async fn follow<S: Seams>(
    ctx: &Arc<ChainContext<S>>,
    db: S::Engine,
    net: &Arc<S::Net>,
    events: &mut EventReceiver,
    committee: &ValidatorSet,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<Followed> {
    let chain = ctx.chain;
    let mut mark = WriteBatch::new();
    mark.put(Column::Meta, FOLLOW_KEY.to_vec(), Vec::new());
    db.write(mark).context("marking the catch-up")?;
    let mut replayer =
        BlockReplayer::open(db.clone(), chain, ctx.genesis(), ExecutionMode::Parallel)?;
    let head = replayer
        .store()
        .head()
        .context("the store is initialised")?;
    let mut sync = BlockSync::new(
        BlockSyncConfig {
            refresh_ms: ctx.block_time_ms.clamp(100, 5_000),
            ..BlockSyncConfig::default()
        },
        chain,
        head.height,
        Digest(head.block_digest),
    );
    for member in committee.validators().iter() {
        let peer = PeerId::of(&member.public_key);
        if peer != ctx.peer_id {
            sync.add_peer(peer);
        }
    }
    let mut server = BlockServer::new(replayer.store().reader(), ctx.seams.placement());
    let mut state_server = StateServer::new(
        replayer.store().reader(),
        ctx.snapshot_dir.clone(),
        ctx.seams.placement(),
    );
    // The API reads what the follower commits meanwhile.
    *ctx.live() = Live {
        reader: Some(replayer.store().reader()),
        ..Live::default()
    };
    let (answers_tx, mut answers) = mpsc::channel(64);
    let mut step = tokio::time::interval(STEP);
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Biased (a fixed order, so that a simulated run replays): the step ticks at
        // most once per STEP and answers are bounded by our own asks, so neither
        // starves the transport's events.
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(Followed::Shutdown);
                }
            }
            _ = step.tick() => {}
            Some((peer, from, answer)) = answers.recv() => {
                on_answer(&mut sync, peer, from, answer, ctx.clock.monotonic_ms());
            }
            event = events.recv() => {
                let Some(event) = event else {
                    anyhow::bail!("the {chain} transport stopped while catching up");
                };
                on_event(ctx, (&mut server, &mut state_server), &mut sync, event);
            }
        }
        for (peer, why) in sync.take_bans() {
            tracing::warn!(%chain, %peer, reason = %why, "block sync: banned a peer");
            net.report(peer, Offence::InvalidContent);
        }
        if let Some(last) = commit_ready(ctx, &mut replayer, &mut sync)? {
            let resume = resume_here(ctx, &sync, &last);
            persist_next_sealer(ctx, &db, &last, resume)?;
            if resume {
                return Ok(Followed::EpochEnded);
            }
        }
        let now = ctx.clock.monotonic_ms();
        for (peer, request) in sync.poll_requests(now) {
            ask(net, peer, request, answers_tx.clone());
        }
    }
}

fn on_answer(
    sync: &mut BlockSync,
    peer: PeerId,
    from: u64,
    answer: Result<Bytes, dualchain_net::NetError>,
    now_ms: u64,
) {
    use dualchain_net::NetError;
    let bytes = match answer {
        Ok(bytes) => bytes,
        Err(NetError::NotConnected(_) | NetError::Connection { .. }) => {
            return sync.on_unreachable(peer, from, now_ms);
        }
        // Timed out or declined: the sync asks elsewhere after its timeout.
        Err(_) => return,
    };
    match BlockRange::from_canonical_bytes(&bytes) {
        Ok(range) => sync.on_answer(peer, from, range, bytes.len()),
        Err(_) => sync.on_undecodable(peer, from),
    }
}

/// Serves block ranges, declines every other request, and learns who connects.
fn on_event<S: Seams>(
    ctx: &ChainContext<S>,
    (server, state_server): (&mut BlockServer<S::Engine>, &mut StateServer<S::Engine>),
    sync: &mut BlockSync,
    event: NetEvent,
) {
    match event {
        NetEvent::Request(request) if request.message.kind == MessageKind::FetchBlocks => {
            serve_range(ctx, server, request);
        }
        NetEvent::Request(request) if request.message.kind == MessageKind::FetchState => {
            if let Ok(state) = StateSyncRequest::from_canonical_bytes(&request.message.payload) {
                let now = ctx.clock.monotonic_ms();
                let m = &ctx.metrics;
                match state_server.serve(request.from, state, request, now) {
                    Served::Answering => m.state_requests_served.inc(),
                    Served::Declined => m.state_requests_declined.inc(),
                }
            }
        }
        NetEvent::PeerConnected(peer) => sync.add_peer(peer),
        // Vertices, votes and vertex sync belong to an engine this node does not
        // run yet; a dropped request is declined.
        _ => {}
    }
}

fn ask(
    net: &Arc<impl Network + ?Sized + 'static>,
    peer: PeerId,
    request: BlockRangeRequest,
    answers: mpsc::Sender<(PeerId, u64, Result<Bytes, dualchain_net::NetError>)>,
) {
    let message = Message::new(
        request.chain,
        MessageKind::FetchBlocks,
        request.to_canonical_bytes(),
    );
    let net = net.clone();
    tokio::spawn(async move {
        let answer = net.request(peer, message, REQUEST_TIMEOUT).await;
        let _ = answers.send((peer, request.from, answer)).await;
    });
}

/// Commits what the sync allows; returns the header of a committed block that ended
/// its epoch, if one did (committing stops there).
fn commit_ready<S: Seams>(
    ctx: &ChainContext<S>,
    replayer: &mut BlockReplayer<S::Engine>,
    sync: &mut BlockSync,
) -> anyhow::Result<Option<BlockHeader>> {
    loop {
        let ready = sync.take_ready(replayer.epoch(), |header, certificate| {
            replayer.check_certificate(header, certificate).is_ok()
        })?;
        let Ready::Blocks(blocks) = ready else {
            return Ok(None);
        };
        for entry in blocks {
            let applied = replayer
                .apply(&entry.block, entry.certificate.as_ref())
                .context("a certified block does not re-execute to its roots")?;
            let header = &entry.block.header;
            ctx.set_head(Head {
                height: header.height,
                digest: header.digest(),
                state_root: header.state_root,
                epoch: header.epoch,
                block_timestamp_ms: header.timestamp_ms,
                committed_at_unix_ms: ctx.unix_ms(),
            });
            ctx.metrics.height.set(header.height as i64);
            ctx.metrics.finalized_height.set(header.height as i64);
            if applied.entered_epoch.is_some() {
                // The rest, of the next epoch, is applied after the sealer moved on.
                return Ok(Some(header.clone()));
            }
        }
    }
}

/// Whether consensus should resume after `last`, the block that ended its epoch:
/// the next epoch began recently enough for its first rounds to be in the peers'
/// stores. Two bounds: within half the window of the best head claimed (peers prune
/// rounds older than the window), and less than one and a half epochs' time ago
/// (peers drop an epoch's store when they enter the epoch after the next, two
/// epochs' time after it began: with short epochs, a block well inside the window
/// can start an epoch nobody runs any more, whose engine would wait for rounds that
/// never come).
fn resume_here<S: Seams>(ctx: &ChainContext<S>, sync: &BlockSync, last: &BlockHeader) -> bool {
    let best = sync.best_claim().unwrap_or(last.height);
    let within_window = best.saturating_sub(last.height) <= window_blocks(ctx) / 2;
    let age_ms = ctx.unix_ms().saturating_sub(last.timestamp_ms);
    within_window && age_ms <= epoch_duration_ms(ctx).saturating_mul(3) / 2
}

/// How long an epoch lasts: its Alpha blocks at Alpha's block time (Delta's epochs
/// follow Alpha's through the set's attestation).
fn epoch_duration_ms<S: Seams>(ctx: &ChainContext<S>) -> u64 {
    let genesis = ctx.genesis();
    let alpha_block_ms = genesis
        .chain(dualchain_core::types::ChainId::Alpha)
        .block_time_ms;
    genesis
        .epoch_length_alpha_blocks
        .saturating_mul(alpha_block_ms)
}

/// Persists the sealer of the epoch `last` ended (a restart opens that epoch), and,
/// when consensus resumes there, clears the follow mark in the same batch.
fn persist_next_sealer<S: Seams>(
    ctx: &ChainContext<S>,
    db: &S::Engine,
    last: &BlockHeader,
    resume: bool,
) -> anyhow::Result<()> {
    let sealer = BlockSealer::new(crate::chain::sealer_config(ctx, last.epoch))?.next_epoch(last);
    let mut batch = WriteBatch::new();
    batch.put(
        Column::Meta,
        SEALER_STATE_KEY.to_vec(),
        sealer.to_state_bytes(),
    );
    if resume {
        batch.delete(Column::Meta, FOLLOW_KEY.to_vec());
    }
    db.write(batch)
        .context("persisting the next epoch's sealer")?;
    let (chain, height, epoch) = (ctx.chain, last.height, last.epoch + 1);
    if resume {
        tracing::info!(%chain, height, epoch, "caught up by block sync: consensus resumes with this epoch");
    } else {
        tracing::info!(%chain, height, epoch, "block sync crossed an epoch boundary; the tip is further on");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::epoch_out_of_reach;

    #[test]
    fn an_engine_is_out_of_reach_once_peers_passed_the_second_boundary_of_its_epoch() {
        // Two-block epochs: a head at 3 runs epoch 1 (heights 3 and 4).
        assert!(!epoch_out_of_reach(3, 4, 2));
        assert!(!epoch_out_of_reach(3, 6, 2), "peers at the end of epoch 2");
        assert!(epoch_out_of_reach(3, 7, 2), "peers sealing epoch 3");
        // The boundary block 4 ends epoch 1: its engine runs epoch 2.
        assert!(!epoch_out_of_reach(4, 8, 2));
        assert!(epoch_out_of_reach(4, 9, 2));
        // Hour-long epochs: far within reach for hundreds of blocks.
        assert!(!epoch_out_of_reach(0, 480, 240));
        assert!(epoch_out_of_reach(0, 481, 240));
        assert!(
            !epoch_out_of_reach(u64::MAX - 1, u64::MAX, 240),
            "no overflow"
        );
    }
}
