//! Serving peers' block range requests (block sync) off the consensus task, each
//! peer within limits.
//!
//! A peer far behind asks for up to [`MAX_BLOCKS_PER_RANGE`] blocks from a height
//! ([`BlockRangeRequest`]); the answer ([`BlockRange`]) holds the blocks this node has
//! committed from there, each with its certificate if this node holds one, as many as
//! fit [`MAX_RANGE_ANSWER_BYTES`] (at least one), and this node's head height. Only
//! durable blocks are read (the chain store's reader sees nothing else). As with
//! vertex sync ([`crate::sync_server`]), answers are made on a blocking thread (inline
//! in the simulator), and each peer has its own allowance: at most two answers in
//! the making, [`REQUESTS_PER_SECOND`] requests and [`BYTES_PER_SECOND`] of answers;
//! a request beyond it is answered with the head alone and no blocks, at once, so
//! the peer asks someone else.

use std::collections::HashMap;

use bytes::Bytes;
use dualchain_core::chain_store::ChainReader;
use dualchain_core::encoding::{Canonical, Encode, write_len};
use dualchain_core::types::{
    BlockRange, BlockRangeRequest, CertifiedBlock, MAX_BLOCKS_PER_RANGE, MAX_RANGE_ANSWER_BYTES,
};
use dualchain_net::{InboundRequest, PeerId};
use dualchain_storage::KvEngine;

use crate::seams::Placement;
use crate::sync_server::{Allowance, Served, admitted};

pub use crate::sync_server::{BYTES_PER_SECOND, REQUESTS_PER_SECOND};

/// Answers the block range requests of one chain's peers.
pub struct BlockServer<E: KvEngine> {
    reader: ChainReader<E>,
    placement: Placement,
    peers: HashMap<PeerId, Allowance>,
}

impl<E: KvEngine + Clone + 'static> BlockServer<E> {
    pub fn new(reader: ChainReader<E>, placement: Placement) -> Self {
        Self {
            reader,
            placement,
            peers: HashMap::new(),
        }
    }

    /// Answers `request` from peer `from` at monotonic time `now_ms`.
    pub fn serve(
        &mut self,
        from: PeerId,
        request: BlockRangeRequest,
        inbound: InboundRequest,
        now_ms: u64,
    ) -> Served {
        let head = self.reader.head().map_or(0, |h| h.height);
        let chain = self.reader.chain();
        // Every request is charged, one for another chain too.
        let Some(allowance) =
            admitted(&mut self.peers, from, now_ms).filter(|_| request.chain == chain)
        else {
            respond(
                inbound,
                BlockRange {
                    head,
                    blocks: Vec::new(),
                }
                .to_canonical_bytes(),
            );
            return Served::Declined;
        };
        let reader = self.reader.clone();
        allowance.answer(self.placement, move || {
            respond(inbound, answer_range(&reader, request))
        });
        Served::Answering
    }
}

/// The canonical encoding of the [`BlockRange`] answering `request`: the blocks this
/// node holds from `request.from`, within the answer limit (a read error ends the
/// answer where it happened: the peer asks again or elsewhere). Each block is
/// encoded once, straight into the answer.
pub fn answer_range<E: KvEngine>(reader: &ChainReader<E>, request: BlockRangeRequest) -> Vec<u8> {
    let head = reader.head().map_or(0, |h| h.height);
    let count = u64::from(request.count.min(MAX_BLOCKS_PER_RANGE));
    let last = request.from.saturating_add(count - 1).min(head);
    let mut entries = Vec::new();
    let mut blocks = 0usize;
    for height in request.from..=last {
        let Ok(Some(block)) = reader.get_block(height) else {
            break;
        };
        let certificate = reader.get_certificate(height).ok().flatten();
        let mark = entries.len();
        CertifiedBlock { block, certificate }.encode_to(&mut entries);
        if blocks > 0 && FRAMING + entries.len() > MAX_RANGE_ANSWER_BYTES {
            entries.truncate(mark);
            break;
        }
        blocks += 1;
    }
    let mut payload = Vec::with_capacity(FRAMING + entries.len());
    payload.push(BlockRange::VERSION);
    head.encode_to(&mut payload);
    write_len(&mut payload, blocks);
    payload.extend_from_slice(&entries);
    debug_assert!(payload.len() <= MAX_RANGE_ANSWER_BYTES);
    payload
}

/// A range's own bytes: version, head height, block count.
const FRAMING: usize = 1 + 8 + 4;

/// Sends `payload` as the answer; returns its size. A peer that stopped waiting is
/// not an error.
fn respond(inbound: InboundRequest, payload: Vec<u8>) -> usize {
    let len = payload.len();
    let _ = inbound.respond(Bytes::from(payload));
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::tests::History;
    use crate::synthetic::SyntheticSpec;
    use dualchain_core::types::ChainId;
    use dualchain_net::{Message, MessageKind};
    use tokio::sync::oneshot;

    fn history() -> History {
        History::write(&SyntheticSpec {
            blocks: 30,
            txs_per_block: 2,
            accounts: 10,
            certify_every: 10,
            ..SyntheticSpec::default()
        })
    }

    fn request(chain: ChainId, from: u64, count: u32) -> BlockRangeRequest {
        BlockRangeRequest { chain, from, count }
    }

    fn decoded(bytes: &[u8]) -> BlockRange {
        BlockRange::from_canonical_bytes(bytes).unwrap()
    }

    #[test]
    fn a_range_holds_the_blocks_up_to_the_head_with_their_certificates() {
        let history = history();
        let range = decoded(&answer_range(
            &history.reader,
            request(ChainId::Delta, 25, 16),
        ));
        assert_eq!(range.head, 30);
        let heights: Vec<u64> = range.blocks.iter().map(|b| b.block.header.height).collect();
        assert_eq!(heights, (25..=30).collect::<Vec<_>>());
        for entry in &range.blocks {
            let (block, certificate) = history.block(entry.block.header.height);
            assert_eq!(entry.block, block);
            assert_eq!(entry.certificate, certificate);
        }
        assert!(range.blocks.last().unwrap().certificate.is_some());
        let beyond = decoded(&answer_range(
            &history.reader,
            request(ChainId::Delta, 31, 5),
        ));
        assert_eq!((beyond.head, beyond.blocks.len()), (30, 0));
    }

    fn inbound() -> (InboundRequest, oneshot::Receiver<Bytes>) {
        let (tx, rx) = oneshot::channel();
        let message = Message::new(ChainId::Delta, MessageKind::FetchBlocks, Vec::new());
        (
            InboundRequest::new(PeerId::from_bytes([1; 32]), message, tx),
            rx,
        )
    }

    #[test]
    fn a_peer_over_its_allowance_or_asking_for_another_chain_gets_the_head_alone() {
        let history = history();
        let mut server = BlockServer::new(history.reader.clone(), Placement::Inline);
        let peer = PeerId::from_bytes([1; 32]);
        let (req, mut rx) = inbound();
        assert_eq!(
            server.serve(peer, request(ChainId::Alpha, 1, 4), req, 0),
            Served::Declined
        );
        assert_eq!(
            decoded(&rx.try_recv().unwrap()),
            BlockRange {
                head: 30,
                blocks: vec![]
            }
        );
        let mut answered = 0;
        loop {
            let (req, mut rx) = inbound();
            let served = server.serve(peer, request(ChainId::Delta, 1, 4), req, 0);
            let range = decoded(&rx.try_recv().unwrap());
            if served == Served::Declined {
                assert!(range.blocks.is_empty());
                break;
            }
            assert_eq!(range.blocks.len(), 4);
            answered += 1;
        }
        assert_eq!(answered, crate::sync_server::REQUEST_BURST as usize - 1);
    }
}
