//! State sync messages: how a node with an empty data directory gets a chain's state
//! from its peers instead of re-executing the chain from genesis.
//!
//! Three questions, one transport kind (`FetchState`, answered by `State`):
//! - [`StateSyncRequest::EpochLinks`]: the links of the chain's epoch chain from an
//!   epoch on (each the attestation of the next epoch's validator set record, see
//!   [`crate::types::verify_epoch_chain_of`]), so the asker knows which set certifies
//!   the snapshot's block without trusting anyone's word;
//! - [`StateSyncRequest::Manifest`]: the newest snapshot the peer serves — its head
//!   (height, state root, block digest), size and whole-file checksum;
//! - [`StateSyncRequest::Chunk`]: a byte range of that file, named by its checksum, so
//!   a download resumes where it stopped and never mixes two files.
//!
//! Nothing in an answer is trusted: the downloaded file is checked (checksum, every
//! entry, the state root recomputed) and its head block's certificate verified
//! against the set of the block's epoch before anything becomes visible.

use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_option, write_vec};
use crate::hash::Digest;

use super::attestation::Attestation;
use super::chain::ChainId;

/// Largest chunk of a snapshot file one request may ask for.
pub const MAX_SNAPSHOT_CHUNK_BYTES: u32 = 4 * 1024 * 1024;
/// Links in one answer: each can be a few MiB (a full validator set record and a
/// full-set certificate), and the answer must fit one transport frame.
pub const MAX_LINKS_PER_ANSWER: usize = 8;

const _: () = assert!(
    1 + 1 + 4 + MAX_LINKS_PER_ANSWER * <Attestation as Canonical>::MAX_ENCODED_LEN
        < 64 * 1024 * 1024
);

/// What a node asks a peer while bootstrapping a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateSyncRequest {
    /// Links of the epoch chain proving the sets of `from_epoch` (at least 1) and on.
    EpochLinks { chain: ChainId, from_epoch: u64 },
    /// The newest snapshot the peer serves.
    Manifest { chain: ChainId },
    /// `len` bytes at `offset` of the snapshot file whose checksum is `checksum`.
    Chunk {
        chain: ChainId,
        checksum: Digest,
        offset: u64,
        len: u32,
    },
}

impl StateSyncRequest {
    pub fn chain(&self) -> ChainId {
        match *self {
            Self::EpochLinks { chain, .. }
            | Self::Manifest { chain }
            | Self::Chunk { chain, .. } => chain,
        }
    }
}

impl Encode for StateSyncRequest {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::EpochLinks { chain, from_epoch } => {
                out.push(0);
                chain.encode_to(out);
                from_epoch.encode_to(out);
            }
            Self::Manifest { chain } => {
                out.push(1);
                chain.encode_to(out);
            }
            Self::Chunk {
                chain,
                checksum,
                offset,
                len,
            } => {
                out.push(2);
                chain.encode_to(out);
                checksum.encode_to(out);
                offset.encode_to(out);
                len.encode_to(out);
            }
        }
    }
}

impl Decode for StateSyncRequest {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request = match r.read_u8("state sync request")? {
            0 => Self::EpochLinks {
                chain: Decode::decode_from(r)?,
                from_epoch: r.read_u64("first epoch")?,
            },
            1 => Self::Manifest {
                chain: Decode::decode_from(r)?,
            },
            2 => Self::Chunk {
                chain: Decode::decode_from(r)?,
                checksum: Decode::decode_from(r)?,
                offset: r.read_u64("chunk offset")?,
                len: r.read_u32("chunk length")?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "state sync request",
                    tag,
                });
            }
        };
        let invalid = |detail: String| DecodeError::Invalid {
            what: "state sync request",
            detail,
        };
        match request {
            Self::EpochLinks { from_epoch: 0, .. } => {
                Err(invalid("the epoch chain starts at epoch 1".into()))
            }
            Self::Chunk { len, .. } if len == 0 || len > MAX_SNAPSHOT_CHUNK_BYTES => Err(invalid(
                format!("a chunk is 1 to {MAX_SNAPSHOT_CHUNK_BYTES} bytes, not {len}"),
            )),
            request => Ok(request),
        }
    }
}

impl Canonical for StateSyncRequest {
    const NAME: &'static str = "state sync request";
    const MAX_ENCODED_LEN: usize = 1 + 1 + 1 + 32 + 8 + 4;
}

/// A snapshot a peer serves: its head and the file's size and checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotManifest {
    pub height: u64,
    pub state_root: Digest,
    pub block_digest: Digest,
    /// File size in bytes.
    pub size: u64,
    /// The BLAKE3 checksum in the file's trailer (names the file in chunk requests).
    pub checksum: Digest,
}

impl Encode for SnapshotManifest {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.height.encode_to(out);
        self.state_root.encode_to(out);
        self.block_digest.encode_to(out);
        self.size.encode_to(out);
        self.checksum.encode_to(out);
    }
}

impl Decode for SnapshotManifest {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            height: r.read_u64("snapshot height")?,
            state_root: Decode::decode_from(r)?,
            block_digest: Decode::decode_from(r)?,
            size: r.read_u64("snapshot size")?,
            checksum: Decode::decode_from(r)?,
        })
    }
}

/// A peer's answer to a [`StateSyncRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSyncAnswer {
    /// Consecutive links from the epoch asked (fewer than asked for when the peer's
    /// chain is not further, or the answer is full).
    EpochLinks(Vec<Attestation>),
    /// The newest snapshot served, if any.
    Manifest(Option<SnapshotManifest>),
    /// The bytes asked for (shorter at the end of the file).
    Chunk(Vec<u8>),
    /// The snapshot named is no longer served (replaced by a newer one).
    Gone,
    /// Not now: beyond this asker's allowance. Ask someone else.
    Declined,
}

impl Encode for StateSyncAnswer {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::EpochLinks(links) => {
                out.push(0);
                write_vec(out, links);
            }
            Self::Manifest(manifest) => {
                out.push(1);
                write_option(out, manifest);
            }
            Self::Chunk(bytes) => {
                out.push(2);
                crate::encoding::write_var_bytes(out, bytes);
            }
            Self::Gone => out.push(3),
            Self::Declined => out.push(4),
        }
    }
}

impl Decode for StateSyncAnswer {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8("state sync answer")? {
            0 => Self::EpochLinks(r.read_vec(MAX_LINKS_PER_ANSWER, 1, "epoch links")?),
            1 => Self::Manifest(r.read_option("snapshot manifest")?),
            2 => Self::Chunk(
                r.read_var_bytes(MAX_SNAPSHOT_CHUNK_BYTES as usize, "snapshot chunk")?
                    .to_vec(),
            ),
            3 => Self::Gone,
            4 => Self::Declined,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "state sync answer",
                    tag,
                });
            }
        })
    }
}

impl Canonical for StateSyncAnswer {
    const NAME: &'static str = "state sync answer";
    const MAX_ENCODED_LEN: usize =
        1 + 1 + 4 + MAX_LINKS_PER_ANSWER * <Attestation as Canonical>::MAX_ENCODED_LEN;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_out_of_range_ones_are_refused() {
        let chunk = StateSyncRequest::Chunk {
            chain: ChainId::Delta,
            checksum: Digest([7; 32]),
            offset: 1 << 40,
            len: MAX_SNAPSHOT_CHUNK_BYTES,
        };
        for request in [
            chunk,
            StateSyncRequest::Manifest {
                chain: ChainId::Alpha,
            },
            StateSyncRequest::EpochLinks {
                chain: ChainId::Alpha,
                from_epoch: 3,
            },
        ] {
            let bytes = request.to_canonical_bytes();
            assert_eq!(
                StateSyncRequest::from_canonical_bytes(&bytes).unwrap(),
                request
            );
        }
        let too_long = StateSyncRequest::Chunk {
            chain: ChainId::Delta,
            checksum: Digest([7; 32]),
            offset: 0,
            len: MAX_SNAPSHOT_CHUNK_BYTES + 1,
        };
        assert!(StateSyncRequest::from_canonical_bytes(&too_long.to_canonical_bytes()).is_err());
        let epoch_zero = StateSyncRequest::EpochLinks {
            chain: ChainId::Alpha,
            from_epoch: 0,
        };
        assert!(StateSyncRequest::from_canonical_bytes(&epoch_zero.to_canonical_bytes()).is_err());
        assert!(StateSyncRequest::from_canonical_bytes(&[9, 0]).is_err());
    }

    #[test]
    fn answers_round_trip_and_oversized_chunks_are_refused() {
        let manifest = SnapshotManifest {
            height: 42,
            state_root: Digest([1; 32]),
            block_digest: Digest([2; 32]),
            size: 1234,
            checksum: Digest([3; 32]),
        };
        for answer in [
            StateSyncAnswer::Manifest(Some(manifest)),
            StateSyncAnswer::Manifest(None),
            StateSyncAnswer::Chunk(vec![5; 1000]),
            StateSyncAnswer::EpochLinks(Vec::new()),
            StateSyncAnswer::Gone,
            StateSyncAnswer::Declined,
        ] {
            let bytes = answer.to_canonical_bytes();
            assert_eq!(
                StateSyncAnswer::from_canonical_bytes(&bytes).unwrap(),
                answer
            );
        }
        let mut oversized = vec![2u8];
        oversized.extend_from_slice(&(MAX_SNAPSHOT_CHUNK_BYTES + 1).to_le_bytes());
        assert!(StateSyncAnswer::from_canonical_bytes(&oversized).is_err());
        // Nine links claimed: refused before any is decoded.
        let mut too_many = vec![0u8];
        too_many.extend_from_slice(&9u32.to_le_bytes());
        assert!(StateSyncAnswer::from_canonical_bytes(&too_many).is_err());
    }
}
