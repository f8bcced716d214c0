//! Block sync messages: a range of blocks, each with its certificate if the
//! serving node holds one.
//!
//! A node far behind asks peers for `count` blocks from height `from`
//! ([`BlockRangeRequest`], transport kind `FetchBlocks`); a peer answers with the
//! blocks it holds from there, as many as fit [`MAX_RANGE_ANSWER_BYTES`] (always at
//! least one if it holds `from`), and its own head height ([`BlockRange`], kind
//! `Blocks`), so the asker learns how far there is to go. Nothing in an answer is
//! trusted: the asker commits a block only once a certificate of the block's epoch
//! covers it (its own, or a later block's whose parent digests lead back to it) and
//! its re-execution reproduces the header's roots.

use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_option, write_vec};

use super::block::{Block, BlockCertificate};
use super::chain::ChainId;

/// Blocks one request may ask for.
pub const MAX_BLOCKS_PER_RANGE: u32 = 256;
/// Encoded size of one answer: one block of the largest size and its certificate fit,
/// and the answer stays below the transport's 64 MiB frame.
pub const MAX_RANGE_ANSWER_BYTES: usize = 48 * 1024 * 1024;

const _: () = assert!(
    MAX_RANGE_ANSWER_BYTES
        > 16 + <Block as Canonical>::MAX_ENCODED_LEN
            + <BlockCertificate as Canonical>::MAX_ENCODED_LEN
);

/// Blocks `from ..< from + count` of `chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRangeRequest {
    pub chain: ChainId,
    pub from: u64,
    pub count: u32,
}

impl Encode for BlockRangeRequest {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.chain.encode_to(out);
        self.from.encode_to(out);
        self.count.encode_to(out);
    }
}

impl Decode for BlockRangeRequest {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request = Self {
            chain: Decode::decode_from(r)?,
            from: r.read_u64("range start")?,
            count: r.read_u32("range length")?,
        };
        if request.from == 0 || !(1..=MAX_BLOCKS_PER_RANGE).contains(&request.count) {
            return Err(DecodeError::Invalid {
                what: "block range request",
                detail: format!(
                    "a range starts at height 1 or above and holds 1 to {MAX_BLOCKS_PER_RANGE} blocks"
                ),
            });
        }
        Ok(request)
    }
}

impl Canonical for BlockRangeRequest {
    const NAME: &'static str = "block range request";
    const MAX_ENCODED_LEN: usize = 1 + 1 + 8 + 4;
}

/// A block and, if the serving node holds it, its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedBlock {
    pub block: Block,
    pub certificate: Option<BlockCertificate>,
}

impl Encode for CertifiedBlock {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.block.encode_to(out);
        write_option(out, &self.certificate);
    }
}

impl Decode for CertifiedBlock {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block: Decode::decode_from(r)?,
            certificate: r.read_option("block certificate")?,
        })
    }
}

/// The answer to a [`BlockRangeRequest`]: the server's head height and the blocks it
/// holds from the requested height on, in order (possibly fewer than asked, or none).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BlockRange {
    pub head: u64,
    pub blocks: Vec<CertifiedBlock>,
}

/// The smallest encoding of one entry: a header (chain tag, four `u64`s, five
/// digests, the transaction count), an empty body (two zero lengths) and no
/// certificate.
const MIN_CERTIFIED_BLOCK_LEN: usize = 1 + 8 * 4 + 32 * 5 + 4 + 4 + 4 + 1;

impl Encode for BlockRange {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.head.encode_to(out);
        write_vec(out, &self.blocks);
    }
}

impl Decode for BlockRange {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            head: r.read_u64("head height")?,
            blocks: r.read_vec(
                MAX_BLOCKS_PER_RANGE as usize,
                MIN_CERTIFIED_BLOCK_LEN,
                "range blocks",
            )?,
        })
    }
}

impl Canonical for BlockRange {
    const NAME: &'static str = "block range";
    const MAX_ENCODED_LEN: usize = MAX_RANGE_ANSWER_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Digest;
    use crate::types::{BlockBody, BlockHeader};

    fn block(height: u64) -> Block {
        let body = BlockBody::default();
        Block {
            header: BlockHeader {
                chain: ChainId::Delta,
                height,
                epoch: 0,
                slot: height,
                parent: Digest([height as u8; 32]),
                timestamp_ms: height * 3_000,
                vertices_root: body.vertices_root(),
                transactions_root: body.transactions_root(),
                receipts_root: Digest::ZERO,
                state_root: Digest([9; 32]),
                tx_count: 0,
            },
            body,
        }
    }

    #[test]
    fn requests_and_ranges_round_trip_and_bad_ranges_are_refused() {
        let request = BlockRangeRequest {
            chain: ChainId::Alpha,
            from: 7,
            count: MAX_BLOCKS_PER_RANGE,
        };
        let bytes = request.to_canonical_bytes();
        assert_eq!(
            BlockRangeRequest::from_canonical_bytes(&bytes).unwrap(),
            request
        );
        for (from, count) in [(0, 1), (1, 0), (1, MAX_BLOCKS_PER_RANGE + 1)] {
            let bad = BlockRangeRequest {
                chain: ChainId::Delta,
                from,
                count,
            };
            assert!(BlockRangeRequest::from_canonical_bytes(&bad.to_canonical_bytes()).is_err());
        }

        let mut empty = Vec::new();
        CertifiedBlock {
            block: block(1),
            certificate: None,
        }
        .encode_to(&mut empty);
        assert_eq!(empty.len(), MIN_CERTIFIED_BLOCK_LEN);

        let range = BlockRange {
            head: 12,
            blocks: (3..6)
                .map(|h| CertifiedBlock {
                    block: block(h),
                    certificate: None,
                })
                .collect(),
        };
        let bytes = range.to_canonical_bytes();
        assert_eq!(BlockRange::from_canonical_bytes(&bytes).unwrap(), range);
        // Truncated or padded answers are refused, never half-read.
        assert!(BlockRange::from_canonical_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(BlockRange::from_canonical_bytes(&padded).is_err());
    }

    #[test]
    fn a_block_count_beyond_the_limit_or_the_input_is_refused_before_allocating() {
        let mut bytes = vec![];
        BlockRange::default().encode_to(&mut bytes);
        // Claim u32::MAX blocks in an answer that holds none.
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut framed = vec![1];
        framed.extend_from_slice(&bytes);
        assert!(BlockRange::from_canonical_bytes(&framed).is_err());
    }
}
