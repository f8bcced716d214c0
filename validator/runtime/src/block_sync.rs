//! Block sync, the asking side: which ranges to ask which peer for, and which of
//! the blocks that came back may be committed. Sans-I/O: time comes in as
//! milliseconds, answers come in decoded, requests and bans go out as values; the
//! caller owns the transport and the [`crate::replay::BlockReplayer`] that applies.
//!
//! **Parallel ranges.** Up to `parallel` ranges of `range_len` blocks are asked at
//! once, each from a different peer, the one claiming the highest head; a range
//! not answered within `timeout_ms` is asked again elsewhere and its peer rests
//! for a timeout. Blocks are held by height until they can be committed; at most
//! `parallel × range_len` heights and [`MAX_HELD_BYTES`] are held at once.
//!
//! **Trust.** Nothing a peer sends is believed on its word. A held block is
//! committed only when it is *covered*: a later held block of the same epoch (or
//! itself) carries a certificate that verifies against that epoch's set (the
//! caller's check), and the parent digests link every block in between, and the
//! first to the head already committed. Authenticity flows backwards from the
//! certificate, so when a link breaks, the block below the break is the false one
//! and its peer is banned; a certificate that does not verify bans its peer. Blocks
//! of the next epoch wait until the block that ends this one is committed (its set
//! is then in the records); the boundary block must therefore be certified itself,
//! and one that came without its certificate (its peer had not formed it yet) is
//! asked for again.
//! A covered block whose re-execution does not reproduce its roots is not a peer's
//! fault (a quorum signed it): the caller stops with an error.
//!
//! **Heads.** Every answer carries its server's head height; the sync is caught up
//! once nothing above the committed head is claimed by a peer in good standing. A
//! peer that claims blocks and answers none three times in a row (a liar, or
//! overloaded) has its claim disregarded until it delivers again.

use std::collections::BTreeMap;

use dualchain_core::Digest;
use dualchain_core::types::{
    BlockCertificate, BlockHeader, BlockRange, BlockRangeRequest, CertifiedBlock, ChainId,
    MAX_BLOCKS_PER_RANGE,
};
use dualchain_net::PeerId;

/// Bytes of blocks held (answered, not yet committed) beyond which no new range is
/// asked.
pub const MAX_HELD_BYTES: usize = 256 * 1024 * 1024;
/// Empty answers in a row after which a peer's claimed head is disregarded.
const EMPTY_ANSWERS_TOLERATED: u32 = 3;

/// How block sync asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSyncConfig {
    /// Blocks per request (at most [`MAX_BLOCKS_PER_RANGE`]).
    pub range_len: u32,
    /// Ranges asked at once, each from another peer.
    pub parallel: usize,
    /// How long an answer may take before the range is asked elsewhere.
    pub timeout_ms: u64,
    /// How often a peer whose head is not above ours is asked again (once caught
    /// up, this is how new blocks are learnt).
    pub refresh_ms: u64,
}

impl Default for BlockSyncConfig {
    fn default() -> Self {
        Self {
            range_len: 64,
            parallel: 4,
            timeout_ms: 10_000,
            refresh_ms: 1_000,
        }
    }
}

/// Why a peer was banned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    #[error("answered with blocks other than those asked (height {got}, expected {expected})")]
    WrongBlocks { expected: u64, got: u64 },
    #[error("sent a block {height} of another chain")]
    WrongChain { height: u64 },
    #[error("sent block {height} whose body does not match its header")]
    BodyMismatch { height: u64 },
    #[error("sent a certificate for block {height} that does not verify")]
    BadCertificate { height: u64 },
    #[error("sent block {height}, which is not the certified chain's")]
    NotOnCertifiedChain { height: u64 },
    #[error("answered with bytes that do not decode as a block range")]
    Undecodable,
}

/// What a step asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Ready {
    /// Commit these blocks, in order; the last carries the certificate that covers
    /// them all.
    Blocks(Vec<CertifiedBlock>),
    /// Nothing can be committed yet.
    Waiting,
}

/// The network's certified chain does not extend ours: the block at our next
/// height is certified (through its successors) with a parent other than our head.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the certified block {height} names parent {certified_parent}, but this node's block {below} is {ours}: this node's chain diverged from the network's"
)]
pub struct Diverged {
    pub height: u64,
    pub below: u64,
    pub certified_parent: Digest,
    pub ours: Digest,
}

#[derive(Clone, Debug, Default)]
struct Peer {
    /// The head it last claimed; `None` until it answered once.
    head: Option<u64>,
    empty_in_a_row: u32,
    /// The range it is asked for now (start height), if any.
    asked: Option<u64>,
    answered_at_ms: u64,
    resting_until_ms: u64,
    banned: Option<Misbehaviour>,
}

impl Peer {
    /// The head it claims, if the claim is in good standing.
    fn claim(&self) -> Option<u64> {
        match self.banned {
            None if self.empty_in_a_row < EMPTY_ANSWERS_TOLERATED => self.head,
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Asked {
    peer: PeerId,
    count: u32,
    at_ms: u64,
}

#[derive(Clone, Debug)]
struct Held {
    peer: PeerId,
    entry: CertifiedBlock,
    bytes: usize,
    /// When it arrived ([`BlockSync::poll_requests`]' clock).
    at_ms: u64,
}

/// The asking side of block sync for one chain (see the module docs).
pub struct BlockSync {
    cfg: BlockSyncConfig,
    chain: ChainId,
    /// The first height not committed, and the digest of the block below it.
    next: u64,
    head_digest: Digest,
    peers: BTreeMap<PeerId, Peer>,
    asked: BTreeMap<u64, Asked>,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    bans: Vec<(PeerId, Misbehaviour)>,
    /// The time of the last [`BlockSync::poll_requests`].
    now_ms: u64,
}

impl BlockSync {
    /// Sync of `chain` after the committed block `head` (height and digest; the
    /// genesis digest at height 0).
    pub fn new(cfg: BlockSyncConfig, chain: ChainId, head: u64, head_digest: Digest) -> Self {
        assert!((1..=MAX_BLOCKS_PER_RANGE).contains(&cfg.range_len));
        assert!(cfg.parallel > 0);
        Self {
            cfg,
            chain,
            next: head + 1,
            head_digest,
            peers: BTreeMap::new(),
            asked: BTreeMap::new(),
            held: BTreeMap::new(),
            held_bytes: 0,
            bans: Vec::new(),
            now_ms: 0,
        }
    }

    /// A peer that may be asked (already known peers keep their standing).
    pub fn add_peer(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// A peer that went away: its range is asked elsewhere; its held blocks stay
    /// (they are checked like any other).
    pub fn remove_peer(&mut self, peer: PeerId) {
        if let Some(Peer {
            asked: Some(start), ..
        }) = self.peers.remove(&peer)
        {
            self.asked.remove(&start);
        }
    }

    /// The first height not committed.
    pub fn next_height(&self) -> u64 {
        self.next
    }

    /// The highest head a peer in good standing claims.
    pub fn best_claim(&self) -> Option<u64> {
        self.peers.values().filter_map(Peer::claim).max()
    }

    /// Whether no peer in good standing claims a block above the committed head
    /// (and at least one answered).
    pub fn caught_up(&self) -> bool {
        self.best_claim().is_some_and(|best| best < self.next)
    }

    /// Peers banned since the last call, and why.
    pub fn take_bans(&mut self) -> Vec<(PeerId, Misbehaviour)> {
        std::mem::take(&mut self.bans)
    }

    /// Requests to send now: timed-out ranges are freed first.
    pub fn poll_requests(&mut self, now_ms: u64) -> Vec<(PeerId, BlockRangeRequest)> {
        self.now_ms = now_ms;
        self.expire(now_ms);
        let mut out = Vec::new();
        let window_end = self.next + self.cfg.parallel as u64 * u64::from(self.cfg.range_len);
        let mut start = self.next;
        while self.asked.len() < self.cfg.parallel
            && self.held_bytes < MAX_HELD_BYTES
            && let Some((from, count)) = self.gap(start, window_end)
        {
            let Some(peer) = self.idle_peer_for(from, now_ms) else {
                break;
            };
            let request = BlockRangeRequest {
                chain: self.chain,
                from,
                count,
            };
            self.asked.insert(
                from,
                Asked {
                    peer,
                    count,
                    at_ms: now_ms,
                },
            );
            self.peers.get_mut(&peer).expect("idle peer").asked = Some(from);
            out.push((peer, request));
            start = from + u64::from(count);
        }
        out
    }

    /// Takes `peer`'s answer to the range it was asked from `from` (`bytes`: its size
    /// on the wire). A stale answer (the range was given up) is ignored.
    pub fn on_answer(&mut self, peer: PeerId, from: u64, answer: BlockRange, bytes: usize) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.asked != Some(from) {
            return;
        }
        state.asked = None;
        let asked = self.asked.remove(&from).expect("asked ranges are tracked");
        state.head = Some(answer.head);
        state.answered_at_ms = asked.at_ms;
        if answer.blocks.is_empty() {
            if answer.head >= from {
                state.empty_in_a_row += 1;
            }
            return;
        }
        state.empty_in_a_row = 0;
        if let Err(why) = self.check_shape(from, asked.count, &answer) {
            return self.ban(peer, why);
        }
        let share = bytes / answer.blocks.len();
        for entry in answer.blocks {
            let height = entry.block.header.height;
            if height >= self.next && !self.held.contains_key(&height) {
                self.held_bytes += share;
                self.held.insert(
                    height,
                    Held {
                        peer,
                        entry,
                        bytes: share,
                        at_ms: self.now_ms,
                    },
                );
            }
        }
    }

    /// `peer` could not be asked for the range from `from` (not connected, the link
    /// failed): the range is asked elsewhere at once, and the peer rests one refresh
    /// interval rather than a timeout, since it may be reachable in a moment (a
    /// peer that has just admitted us, a restart).
    pub fn on_unreachable(&mut self, peer: PeerId, from: u64, now_ms: u64) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.asked != Some(from) {
            return;
        }
        state.asked = None;
        state.resting_until_ms = now_ms + self.cfg.refresh_ms;
        self.asked.remove(&from);
    }

    /// `peer`'s answer to the range from `from` did not decode: it is banned and the
    /// range asked elsewhere.
    pub fn on_undecodable(&mut self, peer: PeerId, from: u64) {
        if self.peers.get(&peer).is_some_and(|p| p.asked == Some(from)) {
            self.ban(peer, Misbehaviour::Undecodable);
        }
    }

    /// The blocks that may be committed now (see the module docs). `epoch` is the
    /// epoch of the next block to commit; `verify` checks a certificate against that
    /// epoch's set.
    pub fn take_ready(
        &mut self,
        epoch: u64,
        mut verify: impl FnMut(&BlockHeader, &BlockCertificate) -> bool,
    ) -> Result<Ready, Diverged> {
        let prefix: Vec<u64> = (self.next..)
            .take_while(|h| {
                self.held
                    .get(h)
                    .is_some_and(|held| held.entry.block.header.epoch == epoch)
            })
            .collect();
        // The newest certified block of the prefix whose certificate verifies.
        let mut covering = None;
        for &height in prefix.iter().rev() {
            let held = &self.held[&height];
            let Some(certificate) = &held.entry.certificate else {
                continue;
            };
            if verify(&held.entry.block.header, certificate) {
                covering = Some(height);
                break;
            }
            let peer = held.peer;
            self.ban(peer, Misbehaviour::BadCertificate { height });
            return Ok(Ready::Waiting);
        }
        let Some(top) = covering else {
            self.forget_uncertified_boundary(&prefix);
            return Ok(Ready::Waiting);
        };
        // Parent links, from the certified block down to our head.
        for height in (self.next..top).rev() {
            let above = &self.held[&(height + 1)].entry.block.header;
            let here = &self.held[&height];
            if above.parent != here.entry.block.header.digest() {
                let peer = here.peer;
                self.ban(peer, Misbehaviour::NotOnCertifiedChain { height });
                return Ok(Ready::Waiting);
            }
        }
        let first = &self.held[&self.next].entry.block.header;
        if first.parent != self.head_digest {
            return Err(Diverged {
                height: self.next,
                below: self.next - 1,
                certified_parent: first.parent,
                ours: self.head_digest,
            });
        }
        let mut blocks = Vec::with_capacity((top - self.next + 1) as usize);
        for height in self.next..=top {
            let held = self.held.remove(&height).expect("in the prefix");
            self.held_bytes -= held.bytes;
            blocks.push(held.entry);
        }
        self.head_digest = blocks.last().expect("top ≥ next").block.header.digest();
        self.next = top + 1;
        Ok(Ready::Blocks(blocks))
    }

    /// When none of the held blocks of this epoch carries a certificate that covers
    /// them, and either they run up to the next epoch's (so the last of them ended
    /// the epoch) or the last is the newest block any peer claims and has waited a
    /// refresh interval, the last block came without its own certificate: a peer
    /// answering near its tip may not have formed it yet. Only that block's
    /// certificate can cover it (nothing later of its epoch will come; and a chain
    /// whose next epoch waits for this very node, a joiner, makes no later block at
    /// all), so it is forgotten and asked again, and its peer rests for a refresh
    /// interval so another may be asked first.
    fn forget_uncertified_boundary(&mut self, prefix: &[u64]) {
        let Some(&last) = prefix.last() else {
            return;
        };
        let ended_epoch = self.held.contains_key(&(last + 1));
        let at_tip = self.best_claim().is_some_and(|best| best <= last)
            && self.now_ms.saturating_sub(self.held[&last].at_ms) >= self.cfg.refresh_ms;
        if !ended_epoch && !at_tip {
            return;
        }
        let held = self.held.remove(&last).expect("in the prefix");
        self.held_bytes -= held.bytes;
        if let Some(peer) = self.peers.get_mut(&held.peer) {
            peer.resting_until_ms = self.now_ms + self.cfg.refresh_ms;
        }
    }

    fn check_shape(&self, from: u64, count: u32, answer: &BlockRange) -> Result<(), Misbehaviour> {
        if answer.blocks.len() > count as usize {
            return Err(Misbehaviour::WrongBlocks {
                expected: from + u64::from(count) - 1,
                got: from + answer.blocks.len() as u64 - 1,
            });
        }
        for (i, entry) in answer.blocks.iter().enumerate() {
            let header = &entry.block.header;
            let expected = from + i as u64;
            if header.height != expected {
                return Err(Misbehaviour::WrongBlocks {
                    expected,
                    got: header.height,
                });
            }
            if header.chain != self.chain {
                return Err(Misbehaviour::WrongChain { height: expected });
            }
            if !entry.block.body_matches_header() {
                return Err(Misbehaviour::BodyMismatch { height: expected });
            }
        }
        Ok(())
    }

    /// Bans `peer` and forgets every block it sent that is still held.
    fn ban(&mut self, peer: PeerId, why: Misbehaviour) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.banned.is_some() {
            return;
        }
        tracing::warn!(chain = %self.chain, %peer, reason = %why, "block sync bans a peer");
        state.banned = Some(why.clone());
        if let Some(start) = state.asked.take() {
            self.asked.remove(&start);
        }
        let mut freed = 0;
        self.held.retain(|_, held| {
            let keep = held.peer != peer;
            if !keep {
                freed += held.bytes;
            }
            keep
        });
        self.held_bytes -= freed;
        self.bans.push((peer, why));
    }

    fn expire(&mut self, now_ms: u64) {
        let timeout = self.cfg.timeout_ms;
        let late: Vec<u64> = self
            .asked
            .iter()
            .filter(|(_, a)| now_ms.saturating_sub(a.at_ms) >= timeout)
            .map(|(start, _)| *start)
            .collect();
        for start in late {
            let asked = self.asked.remove(&start).expect("listed above");
            if let Some(peer) = self.peers.get_mut(&asked.peer) {
                peer.asked = None;
                peer.resting_until_ms = now_ms + timeout;
            }
        }
    }

    /// The first run of heights from `start` below `end` that is neither held nor
    /// asked, as (first height, length ≤ range_len).
    fn gap(&self, start: u64, end: u64) -> Option<(u64, u32)> {
        let mut h = start;
        while h < end {
            if self.held.contains_key(&h) {
                h += 1;
                continue;
            }
            if let Some((s, a)) = self.asked.range(..=h).next_back()
                && h < s + u64::from(a.count)
            {
                h = s + u64::from(a.count);
                continue;
            }
            let limit = (end - h).min(u64::from(self.cfg.range_len));
            let mut len = 1;
            while len < limit
                && !self.held.contains_key(&(h + len))
                && !self.asked.contains_key(&(h + len))
            {
                len += 1;
            }
            return Some((h, len as u32));
        }
        None
    }

    /// The idle peer to ask for blocks from `from`: the one claiming the highest head
    /// at or above it, else one that has not answered yet (to learn its head), else
    /// one not asked for `refresh_ms` (its head may have moved), else one whose claim
    /// is disregarded.
    fn idle_peer_for(&self, from: u64, now_ms: u64) -> Option<PeerId> {
        let idle = self.peers.iter().filter(|(_, p)| {
            p.banned.is_none() && p.asked.is_none() && p.resting_until_ms <= now_ms
        });
        let mut best: Option<(PeerId, u64)> = None;
        let (mut unknown, mut refresh, mut disregarded) = (None, None, None);
        let refresh_ms = self.cfg.refresh_ms;
        for (id, peer) in idle {
            match (peer.head, peer.claim()) {
                (None, _) => unknown = unknown.or(Some(*id)),
                (Some(_), Some(head)) if head >= from => {
                    if best.is_none_or(|(_, b)| head > b) {
                        best = Some((*id, head));
                    }
                }
                (Some(_), Some(_)) => {
                    if now_ms.saturating_sub(peer.answered_at_ms) >= refresh_ms {
                        refresh = refresh.or(Some(*id));
                    }
                }
                (Some(_), None) => disregarded = disregarded.or(Some(*id)),
            }
        }
        // A peer whose claim is disregarded is asked only when nobody else can be:
        // an honest one that was merely overloaded gets its standing back by
        // answering.
        best.map(|(id, _)| id)
            .or(unknown)
            .or(refresh)
            .or(disregarded)
    }
}

#[cfg(test)]
#[path = "block_sync_tests.rs"]
mod tests;
