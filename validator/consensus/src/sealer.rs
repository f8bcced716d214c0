//! The block sealer: cuts the committed sequence into blocks, one per slot.
//!
//! Rules (identical on every node, because they read only the committed sequence):
//! - the slot of a committed sub-DAG is `commit timestamp / block_time_ms`; commit
//!   timestamps are medians of the leader's parents' timestamps made non-decreasing
//!   (see [`crate::commit`]), so they track honest clocks and never go back;
//! - a block holds the vertices (and their transactions, in order) of every sub-DAG of
//!   its slot; it is sealed when the first sub-DAG of a later slot arrives;
//! - slots in between without commits get empty blocks (at most `max_gap_blocks` per
//!   gap), so heights follow time: with Alpha at 15 s and Delta at 3 s, Delta seals
//!   five blocks per Alpha block;
//! - heights increase by one per sealed block; each header names its predecessor;
//! - a block never exceeds the protocol's block limits (transactions, vertices, body
//!   bytes: what the decoder, the API and snapshots accept): when the next vertex of a
//!   slot would not fit, the open block is sealed and another block of the same slot
//!   begins. Vertices are never split, and one always fits an empty block (the vertex
//!   limits are below the block limits), so a proposer stuffing vertices makes more
//!   blocks, never a block nobody can read.
//!
//! - an epoch ends at a block the executor names (on Alpha the boundary height, on
//!   Delta the block that applied the next set's attestation): the sealer of the next
//!   epoch ([`BlockSealer::next_epoch`]) continues the heights after it, with the new
//!   engine's commit sequence from 0, and its first block takes the slot after the
//!   last block's: the new engine's first commits carry the time of parents from
//!   before the switch (or, for its parentless first round, the genesis time), so
//!   they join that block instead of making another block of an old slot. One block
//!   per slot holds across a switch, which matters most when every block ends an
//!   epoch: a block per switch in the same slot would end the next epoch at once.
//!
//! The header is the *pre-execution* header: `receipts_root` and `state_root` are
//! zero until the executor fills them.

use dualchain_core::Digest;
use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_vec};
use dualchain_core::types::{
    Block, BlockBody, BlockHeader, ChainId, MAX_BLOCK_BODY_BYTES, MAX_BLOCK_TXS,
    MAX_BLOCK_VERTICES, SignedTransaction, Vertex,
};

use crate::consensus::{CommittedSubDag, TimeMs};

/// Sealer parameters of one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealerConfig {
    pub chain: ChainId,
    pub epoch: u64,
    pub block_time_ms: TimeMs,
    /// Height of the first sealed block (the genesis block has height 0).
    pub first_height: u64,
    /// Parent digest of the first sealed block (the genesis block's header digest).
    pub genesis_parent: Digest,
    /// Empty blocks emitted at most for one gap between commits.
    pub max_gap_blocks: u64,
    /// Limits of one block: the protocol's, unless a test needs smaller ones (never
    /// larger: [`BlockSealer::new`] refuses them).
    pub limits: BlockLimits,
}

/// What one block may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    pub max_txs: usize,
    pub max_vertices: usize,
    /// Canonical encoding of the body, version byte included.
    pub max_body_bytes: usize,
}

impl BlockLimits {
    /// The limits every block of the protocol is held to.
    pub const PROTOCOL: Self = Self {
        max_txs: MAX_BLOCK_TXS,
        max_vertices: MAX_BLOCK_VERTICES,
        max_body_bytes: MAX_BLOCK_BODY_BYTES,
    };

    /// Whether a block of `vertices` vertices and `txs` transactions whose encodings
    /// total `tx_bytes` is within these limits.
    fn admit(&self, vertices: usize, txs: usize, tx_bytes: usize) -> bool {
        // The canonical body: its version byte, then the encoding.
        let body_bytes = 1 + BlockBody::encoded_len_of(vertices, tx_bytes);
        vertices <= self.max_vertices && txs <= self.max_txs && body_bytes <= self.max_body_bytes
    }

    fn within_protocol(&self) -> bool {
        self.max_txs <= MAX_BLOCK_TXS
            && self.max_vertices <= MAX_BLOCK_VERTICES
            && self.max_body_bytes <= MAX_BLOCK_BODY_BYTES
            && self.max_vertices > 0
    }
}

impl SealerConfig {
    /// Defaults: Alpha 15 s, Delta 3 s blocks.
    pub fn for_chain(chain: ChainId) -> Self {
        Self {
            chain,
            epoch: 0,
            block_time_ms: match chain {
                ChainId::Alpha => 15_000,
                ChainId::Delta => 3_000,
            },
            first_height: 1,
            genesis_parent: Digest::ZERO,
            max_gap_blocks: 10_000,
            limits: BlockLimits::PROTOCOL,
        }
    }
}

/// Why the sealer refused a commit.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SealError {
    #[error("committed sub-DAG {got} arrived, expected sequence {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("block time must be positive")]
    ZeroBlockTime,
    #[error("block limits {0:?} are zero or above the protocol's")]
    Limits(BlockLimits),
}

/// A sealed block (pre-execution header and body) and the commits it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlock {
    pub block: Block,
    /// Sequence numbers of the first and last committed sub-DAG in the block, if any.
    pub commits: Option<(u64, u64)>,
}

impl SealedBlock {
    pub fn digest(&self) -> Digest {
        self.block.header.digest()
    }

    pub fn height(&self) -> u64 {
        self.block.header.height
    }
}

/// The block being filled.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OpenSlot {
    slot: u64,
    vertices: Vec<Digest>,
    transactions: Vec<SignedTransaction>,
    first_sequence: u64,
    last_sequence: u64,
    /// Encoded bytes of `transactions` (derived, not persisted).
    tx_bytes: usize,
}

impl OpenSlot {
    fn new(slot: u64, sequence: u64) -> Self {
        Self {
            slot,
            vertices: Vec::new(),
            transactions: Vec::new(),
            first_sequence: sequence,
            last_sequence: sequence,
            tx_bytes: 0,
        }
    }

    /// Whether `vertex`, whose transactions' encodings total `payload` bytes, may
    /// join this block. An empty block takes any vertex: a decoded vertex is within
    /// every block limit on its own.
    fn fits(&self, vertex: &Vertex, payload: usize, limits: &BlockLimits) -> bool {
        self.vertices.is_empty()
            || limits.admit(
                self.vertices.len() + 1,
                self.transactions.len() + vertex.content().transactions.len(),
                self.tx_bytes + payload,
            )
    }

    fn push(&mut self, vertex: &Vertex, payload: usize, sequence: u64) {
        self.last_sequence = sequence;
        self.vertices.push(vertex.digest());
        self.tx_bytes += payload;
        let txs = &vertex.content().transactions;
        self.transactions.extend(txs.iter().cloned());
    }
}

/// Seals blocks of one chain from its committed sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSealer {
    cfg: SealerConfig,
    next_height: u64,
    parent: Digest,
    next_sequence: u64,
    open: Option<OpenSlot>,
    /// The slot of the previous epoch's last block, until the first commit of this
    /// epoch: this epoch's first block takes a later slot, and the slots in between
    /// up to that commit's get empty blocks.
    floor_slot: Option<u64>,
}

impl BlockSealer {
    pub fn new(cfg: SealerConfig) -> Result<Self, SealError> {
        if cfg.block_time_ms == 0 {
            return Err(SealError::ZeroBlockTime);
        }
        if !cfg.limits.within_protocol() {
            return Err(SealError::Limits(cfg.limits));
        }
        Ok(Self {
            next_height: cfg.first_height,
            parent: cfg.genesis_parent,
            next_sequence: 0,
            open: None,
            floor_slot: None,
            cfg,
        })
    }

    /// The sealer of the epoch after this one, which ended with the block `last` (as
    /// this sealer sealed it: like every parent this sealer tracks, the pre-execution
    /// header; the chain store links executed headers itself). The new engine numbers
    /// its commits from 0; whatever this sealer still held belongs to the abandoned
    /// rest of the old epoch.
    pub fn next_epoch(&self, last: &BlockHeader) -> Self {
        assert!(
            last.epoch == self.cfg.epoch && last.chain == self.cfg.chain,
            "epoch {} of {} ends with its own block, not {:?}",
            self.cfg.epoch,
            self.cfg.chain,
            (last.chain, last.epoch)
        );
        Self {
            cfg: SealerConfig {
                epoch: self.cfg.epoch + 1,
                ..self.cfg.clone()
            },
            next_height: last.height + 1,
            parent: last.digest(),
            next_sequence: 0,
            open: None,
            floor_slot: Some(last.slot),
        }
    }

    /// The epoch whose commits this sealer takes.
    pub fn epoch(&self) -> u64 {
        self.cfg.epoch
    }

    pub fn config(&self) -> &SealerConfig {
        &self.cfg
    }

    /// Height the next sealed block will get.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Sequence number of the committed sub-DAG the sealer expects next.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Takes the next committed sub-DAG; returns the blocks it completes.
    pub fn on_commit(&mut self, subdag: &CommittedSubDag) -> Result<Vec<SealedBlock>, SealError> {
        if subdag.sequence != self.next_sequence {
            return Err(SealError::OutOfOrder {
                expected: self.next_sequence,
                got: subdag.sequence,
            });
        }
        self.next_sequence += 1;
        let mut slot = subdag.timestamp_ms / self.cfg.block_time_ms;
        let mut sealed = Vec::new();
        if let Some(floor) = self.floor_slot.take() {
            slot = slot.max(floor + 1);
            self.seal_empty_between(floor, slot, &mut sealed);
        }
        // A commit whose slot is not after the open one joins it (commit timestamps
        // never go back, so this is only ever the same slot).
        let slot = match self.open.take() {
            Some(open) if slot <= open.slot => {
                let slot = open.slot;
                self.open = Some(open);
                slot
            }
            Some(open) => {
                let last_slot = open.slot;
                sealed.push(self.seal(open));
                self.seal_empty_between(last_slot, slot, &mut sealed);
                slot
            }
            None => slot,
        };
        for vertex in &subdag.vertices {
            let payload = vertex.content().payload_bytes();
            match self.open.take() {
                Some(open) if open.fits(vertex, payload, &self.cfg.limits) => {
                    self.open = Some(open)
                }
                Some(full) => sealed.push(self.seal(full)),
                None => {}
            }
            self.open
                .get_or_insert_with(|| OpenSlot::new(slot, subdag.sequence))
                .push(vertex, payload, subdag.sequence);
        }
        self.open
            .get_or_insert_with(|| OpenSlot::new(slot, subdag.sequence))
            .last_sequence = subdag.sequence;
        Ok(sealed)
    }

    /// Empty blocks for the slots strictly between `last` and `next`, unless the gap
    /// is longer than `max_gap_blocks`.
    fn seal_empty_between(&mut self, last: u64, next: u64, sealed: &mut Vec<SealedBlock>) {
        if next.saturating_sub(last) <= self.cfg.max_gap_blocks + 1 {
            for empty in last + 1..next {
                sealed.push(self.seal(OpenSlot::new(empty, 0)));
            }
        }
    }

    fn seal(&mut self, open: OpenSlot) -> SealedBlock {
        let commits =
            (!open.vertices.is_empty()).then_some((open.first_sequence, open.last_sequence));
        assert!(
            open.vertices.len() <= 1
                || self.cfg.limits.admit(
                    open.vertices.len(),
                    open.transactions.len(),
                    open.tx_bytes
                ),
            "the sealer filled a block of slot {} beyond its limits",
            open.slot
        );
        let body = BlockBody {
            vertices: open.vertices,
            transactions: open.transactions,
        };
        let header = BlockHeader {
            chain: self.cfg.chain,
            height: self.next_height,
            epoch: self.cfg.epoch,
            slot: open.slot,
            parent: self.parent,
            timestamp_ms: open.slot * self.cfg.block_time_ms,
            vertices_root: body.vertices_root(),
            transactions_root: body.transactions_root(),
            receipts_root: Digest::ZERO,
            state_root: Digest::ZERO,
            tx_count: body.transactions.len() as u32,
        };
        self.parent = header.digest();
        self.next_height += 1;
        SealedBlock {
            block: Block { header, body },
            commits,
        }
    }

    /// The sealer's state as bytes, to persist next to the consensus state.
    pub fn to_state_bytes(&self) -> Vec<u8> {
        SealerState {
            epoch: self.cfg.epoch,
            next_height: self.next_height,
            parent: self.parent,
            next_sequence: self.next_sequence,
            open: self.open.clone(),
            floor_slot: self.floor_slot,
        }
        .to_canonical_bytes()
    }

    /// A sealer resumed from [`BlockSealer::to_state_bytes`]; the epoch is the
    /// persisted one (`cfg.epoch` is only where a new chain starts).
    pub fn from_state_bytes(cfg: SealerConfig, bytes: &[u8]) -> Result<Self, DecodeError> {
        let state = SealerState::from_canonical_bytes(bytes)?;
        let cfg = SealerConfig {
            epoch: state.epoch,
            ..cfg
        };
        let mut sealer = Self::new(cfg).map_err(|e| DecodeError::Invalid {
            what: "sealer config",
            detail: e.to_string(),
        })?;
        sealer.next_height = state.next_height;
        sealer.parent = state.parent;
        sealer.next_sequence = state.next_sequence;
        sealer.open = state.open;
        sealer.floor_slot = state.floor_slot;
        Ok(sealer)
    }
}

struct SealerState {
    epoch: u64,
    next_height: u64,
    parent: Digest,
    next_sequence: u64,
    open: Option<OpenSlot>,
    floor_slot: Option<u64>,
}

impl Encode for SealerState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.epoch.encode_to(out);
        self.next_height.encode_to(out);
        self.parent.encode_to(out);
        self.next_sequence.encode_to(out);
        match &self.open {
            None => out.push(0),
            Some(o) => {
                out.push(1);
                o.slot.encode_to(out);
                write_vec(out, &o.vertices);
                write_vec(out, &o.transactions);
                o.first_sequence.encode_to(out);
                o.last_sequence.encode_to(out);
            }
        }
        dualchain_core::encoding::write_option(out, &self.floor_slot);
    }
}

impl Decode for SealerState {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let epoch = r.read_u64("epoch")?;
        let next_height = r.read_u64("next height")?;
        let parent = Decode::decode_from(r)?;
        let next_sequence = r.read_u64("next sequence")?;
        let open = match r.read_u8("open slot tag")? {
            0 => None,
            1 => {
                let slot = r.read_u64("slot")?;
                let vertices = r.read_vec(MAX_BLOCK_VERTICES, 32, "open vertices")?;
                let transactions: Vec<SignedTransaction> =
                    r.read_vec(MAX_BLOCK_TXS, 1 + 32 + 8 + 8 + 1, "open transactions")?;
                Some(OpenSlot {
                    slot,
                    vertices,
                    tx_bytes: transactions.iter().map(|t| t.encoded_len()).sum(),
                    transactions,
                    first_sequence: r.read_u64("first sequence")?,
                    last_sequence: r.read_u64("last sequence")?,
                })
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "open slot",
                    tag,
                });
            }
        };
        let floor_slot = r.read_option("floor slot")?;
        Ok(Self {
            epoch,
            next_height,
            parent,
            next_sequence,
            open,
            floor_slot,
        })
    }
}

impl Canonical for SealerState {
    const NAME: &'static str = "sealer state";
    /// Positions and at most one open block.
    const MAX_ENCODED_LEN: usize = 1024 + MAX_BLOCK_BODY_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::testing::DagBuilder;
    use dualchain_core::types::{
        Address, AssetId, Output, Transaction, TxPayload, UnsignedVertex, VertexRef,
        vertex_limits::MAX_VERTEX_PAYLOAD_BYTES,
    };

    fn subdag(seq: u64, ts: u64, b: &DagBuilder) -> CommittedSubDag {
        let v = b.vertex(0, (seq % 4) as u16).clone();
        CommittedSubDag {
            sequence: seq,
            leader: VertexRef {
                author: v.content().author,
                digest: v.digest(),
            },
            leader_round: seq,
            timestamp_ms: ts,
            vertices: vec![v],
        }
    }

    fn builder() -> DagBuilder {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..1);
        b
    }

    #[test]
    fn blocks_follow_slots_with_consecutive_heights_and_parent_links() {
        let b = builder();
        let mut s = BlockSealer::new(SealerConfig::for_chain(ChainId::Delta)).unwrap();
        let mut blocks = Vec::new();
        // Commits every 1 s for 30 s: 10 slots of 3 s.
        for i in 0..31 {
            blocks.extend(s.on_commit(&subdag(i, i * 1_000, &b)).unwrap());
        }
        assert_eq!(blocks.len(), 10);
        for (i, blk) in blocks.iter().enumerate() {
            assert_eq!(blk.height(), 1 + i as u64);
            assert_eq!(blk.block.header.slot, i as u64);
            assert!(blk.block.body_matches_header());
            assert_eq!(blk.block.body.vertices.len(), 3);
            if i > 0 {
                assert_eq!(blk.block.header.parent, blocks[i - 1].digest());
            }
        }
        assert_eq!(blocks[0].commits, Some((0, 2)));
    }

    #[test]
    fn the_next_epoch_continues_the_heights_from_sequence_zero_and_never_goes_back_a_slot() {
        let b = builder();
        let mut s = BlockSealer::new(SealerConfig::for_chain(ChainId::Delta)).unwrap();
        assert!(s.on_commit(&subdag(0, 100, &b)).unwrap().is_empty());
        // Slot 0 sealed and slot 1 empty; the epoch ends with the slot-0 block (the
        // empty block and the open slot 2 are the abandoned rest of the epoch).
        let sealed = s.on_commit(&subdag(1, 7_000, &b)).unwrap();
        assert_eq!(sealed.len(), 2);
        let last = sealed[0].block.header.clone();
        let next = s.next_epoch(&last);
        assert_eq!(
            (next.epoch(), next.next_height(), next.next_sequence()),
            (1, 2, 0)
        );
        let resumed = |s: &BlockSealer| {
            let cfg = SealerConfig::for_chain(ChainId::Delta);
            BlockSealer::from_state_bytes(cfg, &s.to_state_bytes()).unwrap()
        };
        assert_eq!(resumed(&next), next);

        // The new engine's first commit in slot 2: slot 1 gets its empty block now.
        let mut later = resumed(&next);
        let blocks = later.on_commit(&subdag(0, 7_000, &b)).unwrap();
        let shape = |blocks: &[SealedBlock]| -> Vec<(u64, u64, u64)> {
            blocks
                .iter()
                .map(|x| (x.height(), x.block.header.slot, x.block.header.epoch))
                .collect()
        };
        assert_eq!(shape(&blocks), vec![(2, 1, 1)]);
        assert_eq!(blocks[0].block.header.parent, last.digest());
        assert_eq!(
            shape(&later.on_commit(&subdag(1, 9_500, &b)).unwrap()),
            vec![(3, 2, 1)]
        );

        // First commits timed in or before the last block's slot (the parentless
        // first round carries the genesis time) make the block of the slot after it,
        // never a second block of an old slot.
        let mut early = next.clone();
        assert!(early.on_commit(&subdag(0, 0, &b)).unwrap().is_empty());
        assert!(early.on_commit(&subdag(1, 2_900, &b)).unwrap().is_empty());
        assert!(early.on_commit(&subdag(2, 3_500, &b)).unwrap().is_empty());
        let first = early.on_commit(&subdag(3, 6_100, &b)).unwrap();
        assert_eq!(shape(&first), vec![(2, 1, 1)]);
        assert_eq!(first[0].commits, Some((0, 2)));
        // Commits of the old engine's numbering are refused.
        assert!(matches!(
            next.clone().on_commit(&subdag(5, 9_000, &b)),
            Err(SealError::OutOfOrder {
                expected: 0,
                got: 5
            })
        ));
    }

    #[test]
    fn delta_seals_five_blocks_per_alpha_block() {
        let b = builder();
        let mut alpha = BlockSealer::new(SealerConfig::for_chain(ChainId::Alpha)).unwrap();
        let mut delta = BlockSealer::new(SealerConfig::for_chain(ChainId::Delta)).unwrap();
        let (mut na, mut nd) = (0, 0);
        for i in 0..=600 {
            let sd = subdag(i, i * 500, &b);
            na += alpha.on_commit(&sd).unwrap().len();
            nd += delta.on_commit(&sd).unwrap().len();
        }
        assert_eq!((na, nd), (20, 100));
    }

    #[test]
    fn gaps_get_empty_blocks_and_order_is_enforced() {
        let b = builder();
        let mut s = BlockSealer::new(SealerConfig::for_chain(ChainId::Delta)).unwrap();
        assert!(s.on_commit(&subdag(0, 100, &b)).unwrap().is_empty());
        let blocks = s.on_commit(&subdag(1, 10_000, &b)).unwrap();
        // Slot 0 sealed, slots 1 and 2 empty; slot 3 is open.
        assert_eq!(blocks.len(), 3);
        assert!(blocks[1].block.body.vertices.is_empty() && blocks[1].commits.is_none());
        assert_eq!(
            s.on_commit(&subdag(5, 20_000, &b)),
            Err(SealError::OutOfOrder {
                expected: 2,
                got: 5
            })
        );
    }

    #[test]
    fn same_sequence_same_blocks_and_state_survives_restart() {
        let b = builder();
        let cfg = SealerConfig::for_chain(ChainId::Delta);
        let mut straight = BlockSealer::new(cfg.clone()).unwrap();
        let mut restarted = BlockSealer::new(cfg.clone()).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..40 {
            let sd = subdag(i, i * 700, &b);
            x.extend(straight.on_commit(&sd).unwrap());
            y.extend(restarted.on_commit(&sd).unwrap());
            if i % 7 == 3 {
                let bytes = restarted.to_state_bytes();
                restarted = BlockSealer::from_state_bytes(cfg.clone(), &bytes).unwrap();
            }
        }
        assert_eq!(x, y);
        assert!(BlockSealer::from_state_bytes(cfg, &[1, 2, 3]).is_err());
    }

    /// A vertex of `author` carrying `txs` unsigned transfers of `outputs` outputs each.
    fn stuffed(b: &DagBuilder, author: u16, txs: usize, outputs: usize) -> Arc<Vertex> {
        let transactions = (0..txs as u64)
            .map(|nonce| {
                Transaction {
                    chain: ChainId::Delta,
                    sender: Address([author as u8; 32]),
                    nonce,
                    fee: 1,
                    payload: TxPayload::Transfer {
                        outputs: vec![
                            Output {
                                to: Address([9; 32]),
                                asset: AssetId::NATIVE,
                                amount: 1,
                            };
                            outputs
                        ],
                    },
                }
                .unsigned()
            })
            .collect();
        Arc::new(
            UnsignedVertex {
                chain: ChainId::Delta,
                epoch: 0,
                round: 1,
                author,
                parents: vec![],
                transactions,
                timestamp_ms: 1,
            }
            .sign(b.key(author), b.network()),
        )
    }

    fn commit_of(seq: u64, ts: u64, vertices: Vec<Arc<Vertex>>) -> CommittedSubDag {
        CommittedSubDag {
            sequence: seq,
            leader: vertices[0].reference(),
            leader_round: seq,
            timestamp_ms: ts,
            vertices,
        }
    }

    fn check_within(blk: &SealedBlock, limits: &BlockLimits) {
        let body = &blk.block.body;
        assert!(body.vertices.len() <= limits.max_vertices);
        assert!(body.transactions.len() <= limits.max_txs);
        assert!(body.to_canonical_bytes().len() <= limits.max_body_bytes);
        assert!(blk.block.body_matches_header());
    }

    #[test]
    fn a_stuffed_slot_becomes_several_blocks_of_that_slot_each_within_the_limits() {
        let b = builder();
        let limits = BlockLimits {
            max_txs: 10,
            max_vertices: 3,
            max_body_bytes: 2_000,
        };
        let cfg = SealerConfig {
            limits,
            ..SealerConfig::for_chain(ChainId::Delta)
        };
        // Slot 0: a commit of five vertices of four small transactions, then a commit
        // of two vertices with larger ones; slot 1 closes it.
        let commits = [
            commit_of(0, 100, (0..5).map(|a| stuffed(&b, a % 4, 4, 1)).collect()),
            commit_of(1, 200, vec![stuffed(&b, 0, 2, 8), stuffed(&b, 1, 1, 1)]),
            commit_of(2, 3_100, vec![stuffed(&b, 2, 1, 1)]),
        ];
        let mut straight = BlockSealer::new(cfg.clone()).unwrap();
        let mut restarted = BlockSealer::new(cfg.clone()).unwrap();
        let (mut blocks, mut again) = (Vec::new(), Vec::new());
        for c in &commits {
            blocks.extend(straight.on_commit(c).unwrap());
            again.extend(restarted.on_commit(c).unwrap());
            let bytes = restarted.to_state_bytes();
            restarted = BlockSealer::from_state_bytes(cfg.clone(), &bytes).unwrap();
        }
        assert_eq!(blocks, again, "sealing is deterministic across restarts");
        assert!(blocks.len() >= 3, "{} blocks", blocks.len());
        for (i, blk) in blocks.iter().enumerate() {
            check_within(blk, &limits);
            assert_eq!(blk.block.header.slot, 0);
            assert_eq!(blk.height(), 1 + i as u64);
            if i > 0 {
                assert_eq!(blk.block.header.parent, blocks[i - 1].digest());
            }
        }
        // Every vertex and transaction of slot 0, in committed order, exactly once.
        let sealed_vertices: Vec<Digest> = blocks
            .iter()
            .flat_map(|b| b.block.body.vertices.clone())
            .collect();
        let committed: Vec<Digest> = commits[..2]
            .iter()
            .flat_map(|c| c.vertices.iter().map(|v| v.digest()))
            .collect();
        assert_eq!(sealed_vertices, committed);
        let sealed_txs: usize = blocks.iter().map(|b| b.block.body.transactions.len()).sum();
        assert_eq!(sealed_txs, 5 * 4 + 2 + 1);
        // A commit split over two blocks is named by both.
        assert_eq!(blocks[0].commits.map(|c| c.0), Some(0));
        assert_eq!(blocks.last().unwrap().commits.map(|c| c.1), Some(1));
    }

    #[test]
    fn vertices_at_the_payload_limit_make_blocks_that_decode() {
        let b = builder();
        // 256-output transfers of about 12 KB: as many as one vertex may carry.
        let one = stuffed(&b, 0, 1, 256).content().payload_bytes();
        let per_vertex = MAX_VERTEX_PAYLOAD_BYTES / one;
        let vertices: Vec<_> = (0..3).map(|a| stuffed(&b, a, per_vertex, 256)).collect();
        let mut s = BlockSealer::new(SealerConfig::for_chain(ChainId::Delta)).unwrap();
        let mut blocks = s.on_commit(&commit_of(0, 100, vertices)).unwrap();
        blocks.extend(
            s.on_commit(&commit_of(1, 3_100, vec![stuffed(&b, 3, 1, 1)]))
                .unwrap(),
        );
        // Two such vertices fill a block; the third starts another one of slot 0.
        let per_block: Vec<_> = blocks.iter().map(|b| b.block.body.vertices.len()).collect();
        assert_eq!(per_block, vec![2, 1]);
        assert!(blocks.iter().all(|b| b.block.header.slot == 0));
        for blk in &blocks {
            check_within(blk, &BlockLimits::PROTOCOL);
            let bytes = blk.block.to_canonical_bytes();
            assert_eq!(Block::from_canonical_bytes(&bytes).unwrap(), blk.block);
        }
    }

    #[test]
    fn limits_above_the_protocol_are_refused() {
        let mut cfg = SealerConfig::for_chain(ChainId::Delta);
        cfg.limits.max_body_bytes += 1;
        assert!(matches!(BlockSealer::new(cfg), Err(SealError::Limits(_))));
        let mut cfg = SealerConfig::for_chain(ChainId::Delta);
        cfg.limits.max_vertices = 0;
        assert!(matches!(BlockSealer::new(cfg), Err(SealError::Limits(_))));
    }
}
