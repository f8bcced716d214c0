//! Core block types → `dualchain.v1` messages.
//!
//! Byte fields carry the canonical encodings of `dualchain_core::encoding`
//! (`Canonical::to_canonical_bytes`: a version byte followed by the encoding),
//! so a client decodes them with `from_canonical_bytes` and gets exactly the
//! objects the validators hashed and signed:
//!
//! - `Block.header_bytes` = canonical [`BlockHeader`] bytes. The header digest
//!   (`BlockHeader.digest`, the message validators sign) is the block-header
//!   domain BLAKE3 hash of the encoding *after* the version byte, i.e.
//!   `HashDomain::BlockHeader.hash(&header_bytes[1..])`;
//! - `Block.body` = canonical [`dualchain_core::types::BlockBody`] bytes;
//! - `BlockCertificate.certificate_bytes` = canonical [`BlockCertificate`] bytes.
//!
//! `FinalityEvent.confirmation_depth` counts blocks built *on top of* the block
//! (0 when BFT commit finalized it at the tip), while
//! [`FinalizedBlock::confirmation_depth`] counts the block itself too, hence the
//! subtraction of one.

use dualchain_core::encoding::Canonical;
use dualchain_core::types::{BlockCertificate, BlockHeader};
use dualchain_proto::v1;

use crate::FinalizedBlock;
use crate::chain::to_proto;

/// The proto header of a core header (decoded fields plus its digest).
fn header_to_proto(header: &BlockHeader) -> v1::BlockHeader {
    v1::BlockHeader {
        chain: to_proto(header.chain) as i32,
        height: header.height,
        parent_digest: header.parent.as_bytes().to_vec(),
        state_root: header.state_root.as_bytes().to_vec(),
        tx_root: header.transactions_root.as_bytes().to_vec(),
        receipts_root: header.receipts_root.as_bytes().to_vec(),
        timestamp_unix_ms: header.timestamp_ms,
        epoch: header.epoch,
        tx_count: header.tx_count,
        digest: header.digest().as_bytes().to_vec(),
    }
}

/// The proto certificate: signer indices in increasing order (the core type
/// keeps them sorted and the decoder refuses anything else), the validator
/// count of the block's epoch when known (0 otherwise), and the canonical bytes.
fn certificate_to_proto(
    certificate: &BlockCertificate,
    validator_count: Option<u32>,
) -> v1::BlockCertificate {
    let signer_indices: Vec<u32> = certificate
        .signatures
        .iter()
        .map(|(index, _)| u32::from(*index))
        .collect();
    v1::BlockCertificate {
        signer_count: u32::try_from(signer_indices.len()).unwrap_or(u32::MAX),
        signer_indices,
        validator_count: validator_count.unwrap_or(0),
        certificate_bytes: certificate.to_canonical_bytes(),
    }
}

/// Builds the `GetBlock` answer for a committed block.
///
/// `finalized` is whether the block is at or below the chain's finalized height;
/// the body and certificate are included only when asked for (the certificate
/// also only when the block has one), as `GetBlockRequest` documents.
pub fn block_to_proto(
    block: &FinalizedBlock,
    include_body: bool,
    include_certificate: bool,
    finalized: bool,
    validator_count: Option<u32>,
) -> v1::Block {
    let header = &block.block.header;
    v1::Block {
        header: Some(header_to_proto(header)),
        header_bytes: header.to_canonical_bytes(),
        body: include_body.then(|| block.block.body.to_canonical_bytes()),
        certificate: if include_certificate {
            block
                .certificate
                .as_ref()
                .map(|certificate| certificate_to_proto(certificate, validator_count))
        } else {
            None
        },
        finalized,
    }
}

/// Builds the finality event of a committed block; the kind follows the
/// block's chain. Transaction digests are included only when asked for, and
/// then there is one per transaction, in block order.
pub fn finality_event(
    block: &FinalizedBlock,
    include_tx_digests: bool,
    replayed: bool,
) -> v1::FinalityEvent {
    let header = &block.block.header;
    let chain = to_proto(header.chain);
    let tx_digests = if include_tx_digests {
        block
            .block
            .body
            .transactions
            .iter()
            .map(|tx| tx.digest().as_bytes().to_vec())
            .collect()
    } else {
        Vec::new()
    };
    v1::FinalityEvent {
        kind: chain.finality_event_kind() as i32,
        chain: chain as i32,
        height: header.height,
        block_digest: header.digest().as_bytes().to_vec(),
        state_root: header.state_root.as_bytes().to_vec(),
        tx_count: header.tx_count,
        finalized_at_unix_ms: block.finalized_at_unix_ms,
        block_timestamp_unix_ms: header.timestamp_ms,
        confirmation_depth: block.confirmation_depth.saturating_sub(1),
        tx_digests,
        replayed,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use dualchain_core::crypto::ValidatorKeypair;
    use dualchain_core::hash::{Digest, HashDomain};
    use dualchain_core::types::{
        Address, AssetId, Block, BlockBody, BlockHeader, ChainId, Output, Transaction, TxPayload,
    };
    use dualchain_proto::v1::{Chain, FinalityEventKind};

    use super::*;

    /// A block at `height` with `tx_count` unsigned transfers whose header
    /// commits to its body, as the chain store would hold it.
    pub(crate) fn sample_block(chain: ChainId, height: u64, tx_count: usize) -> Block {
        let transactions: Vec<_> = (0..tx_count)
            .map(|i| {
                Transaction {
                    chain,
                    sender: Address([7; 32]),
                    nonce: height * 1_000 + i as u64,
                    fee: 1,
                    payload: TxPayload::Transfer {
                        outputs: vec![Output {
                            to: Address([9; 32]),
                            asset: AssetId::NATIVE,
                            amount: 5,
                        }],
                    },
                }
                .unsigned()
            })
            .collect();
        let body = BlockBody {
            vertices: vec![Digest([height as u8; 32])],
            transactions,
        };
        let header = BlockHeader {
            chain,
            height,
            epoch: 3,
            slot: height,
            parent: Digest([height.wrapping_sub(1) as u8; 32]),
            timestamp_ms: 1_700_000_000_000 + height * 3_000,
            vertices_root: body.vertices_root(),
            transactions_root: body.transactions_root(),
            receipts_root: Digest([0xEE; 32]),
            state_root: Digest([height as u8 ^ 0x5A; 32]),
            tx_count: tx_count as u32,
        };
        Block { header, body }
    }

    fn certified(block: Block) -> FinalizedBlock {
        let keys: Vec<_> = (0..3u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 1; 32]))
            .collect();
        let votes = [0u16, 2]
            .into_iter()
            .map(|i| (i, BlockCertificate::vote(&keys[i as usize], &block.header)));
        FinalizedBlock {
            certificate: Some(BlockCertificate::from_votes(&block.header, votes)),
            block: Arc::new(block),
            finalized_at_unix_ms: 1_700_000_001_234,
            confirmation_depth: 1,
        }
    }

    #[test]
    fn block_fields_and_bytes_round_trip() {
        let finalized = certified(sample_block(ChainId::Delta, 12, 3));
        let proto = block_to_proto(&finalized, true, true, true, Some(4));
        let header = proto.header.as_ref().unwrap();
        let core = &finalized.block.header;
        assert_eq!(header.chain(), Chain::Delta);
        assert_eq!(header.height, 12);
        assert_eq!(header.tx_count, 3);
        assert_eq!(header.digest, core.digest().as_bytes().to_vec());
        assert_eq!(header.state_root, core.state_root.as_bytes().to_vec());
        assert_eq!(header.tx_root, core.transactions_root.as_bytes().to_vec());
        assert_eq!(header.parent_digest.len(), 32);

        let decoded = BlockHeader::from_canonical_bytes(&proto.header_bytes).unwrap();
        assert_eq!(&decoded, core);
        assert_eq!(
            HashDomain::BlockHeader.hash(&proto.header_bytes[1..]),
            core.digest()
        );
        let body = BlockBody::from_canonical_bytes(proto.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, finalized.block.body);

        let certificate = proto.certificate.unwrap();
        assert_eq!(certificate.signer_indices, vec![0, 2]);
        assert_eq!(certificate.signer_count, 2);
        assert_eq!(certificate.validator_count, 4);
        let decoded = BlockCertificate::from_canonical_bytes(&certificate.certificate_bytes)
            .expect("canonical certificate");
        assert_eq!(Some(decoded), finalized.certificate);
        assert!(proto.finalized);
    }

    #[test]
    fn body_and_certificate_only_when_asked() {
        let finalized = certified(sample_block(ChainId::Alpha, 2, 0));
        let proto = block_to_proto(&finalized, false, false, false, None);
        assert!(proto.body.is_none());
        assert!(proto.certificate.is_none());
        assert!(!proto.finalized);
        let with_body = block_to_proto(&finalized, true, false, false, None);
        assert!(with_body.body.is_some(), "an empty block still has a body");
        let uncertified = FinalizedBlock {
            certificate: None,
            ..finalized
        };
        assert!(
            block_to_proto(&uncertified, false, true, true, None)
                .certificate
                .is_none()
        );
    }

    #[test]
    fn finality_event_kind_digests_and_depth() {
        let finalized = certified(sample_block(ChainId::Alpha, 5, 4));
        let event = finality_event(&finalized, true, true);
        assert_eq!(event.kind(), FinalityEventKind::AlphaBlockFinalized);
        assert_eq!(event.chain(), Chain::Alpha);
        assert_eq!(event.height, 5);
        assert_eq!(event.tx_count, 4);
        assert_eq!(event.tx_digests.len(), 4);
        assert_eq!(
            event.tx_digests[1],
            finalized.block.body.transactions[1]
                .digest()
                .as_bytes()
                .to_vec()
        );
        assert_eq!(event.confirmation_depth, 0, "finalized at the tip");
        assert_eq!(event.finalized_at_unix_ms, 1_700_000_001_234);
        assert!(event.replayed);
        let delta = finality_event(&certified(sample_block(ChainId::Delta, 1, 2)), false, false);
        assert_eq!(delta.kind(), FinalityEventKind::DeltaBlockFinalized);
        assert!(delta.tx_digests.is_empty());
        assert!(!delta.replayed);
    }
}
