//! Blocks, and the certificates that make them final.

use crate::crypto::{
    NetworkId, SignatureError, SigningDomain, ValidatorKeypair, ValidatorSignature,
};
use crate::encoding::{
    Canonical, Decode, DecodeError, Encode, Reader, check_strictly_increasing, write_len, write_vec,
};
use crate::hash::{Digest, HashDomain, list_root};

use super::chain::ChainId;
use super::transaction::SignedTransaction;
use super::validator::{MAX_VALIDATORS, ValidatorIndex, ValidatorSet};

/// Transactions in one block body.
pub const MAX_BLOCK_TXS: usize = 262_144;
/// Vertices committed into one block.
pub const MAX_BLOCK_VERTICES: usize = 65_536;
/// Encoded size of one block body (with its version byte). A block must fit what
/// reads it back: the gRPC `GetBlock` answer (64 MiB by default), a snapshot value
/// (64 MiB) and a sync frame with its certificate. The sealer starts another block
/// of the same slot rather than exceed any of these three limits.
pub const MAX_BLOCK_BODY_BYTES: usize = 32 * 1024 * 1024;

// One vertex always fits a block on its own, so the sealer can always make progress.
const _: () = assert!(MAX_BLOCK_TXS >= super::vertex::limits::MAX_VERTEX_TXS);
const _: () = assert!(
    MAX_BLOCK_BODY_BYTES
        > 1 + BlockBody::encoded_len_of(1, super::vertex::limits::MAX_VERTEX_PAYLOAD_BYTES)
);

/// The executed block header that validators sign.
///
/// It commits to the previous block (`parent`), to the vertices and transactions
/// sealed in this slot, and to the state and receipts after executing them, so a
/// certificate over it is a finality proof for all of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub chain: ChainId,
    pub height: u64,
    pub epoch: u64,
    /// The slot this block seals (`timestamp_ms / block_time`), derived from committed
    /// leader timestamps so that every node cuts the same blocks.
    pub slot: u64,
    /// Digest of the previous block's header; zero for the first block.
    pub parent: Digest,
    pub timestamp_ms: u64,
    /// Root of the ordered vertex digests sealed into this block.
    pub vertices_root: Digest,
    pub transactions_root: Digest,
    pub receipts_root: Digest,
    /// State root after executing the block.
    pub state_root: Digest,
    pub tx_count: u32,
}

impl BlockHeader {
    pub fn digest(&self) -> Digest {
        let mut bytes = Vec::with_capacity(200);
        self.encode_to(&mut bytes);
        HashDomain::BlockHeader.hash(&bytes)
    }
}

impl Encode for BlockHeader {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.chain.encode_to(out);
        self.height.encode_to(out);
        self.epoch.encode_to(out);
        self.slot.encode_to(out);
        self.parent.encode_to(out);
        self.timestamp_ms.encode_to(out);
        self.vertices_root.encode_to(out);
        self.transactions_root.encode_to(out);
        self.receipts_root.encode_to(out);
        self.state_root.encode_to(out);
        self.tx_count.encode_to(out);
    }
}

impl Decode for BlockHeader {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            chain: Decode::decode_from(r)?,
            height: r.read_u64("height")?,
            epoch: r.read_u64("epoch")?,
            slot: r.read_u64("slot")?,
            parent: Decode::decode_from(r)?,
            timestamp_ms: r.read_u64("timestamp")?,
            vertices_root: Decode::decode_from(r)?,
            transactions_root: Decode::decode_from(r)?,
            receipts_root: Decode::decode_from(r)?,
            state_root: Decode::decode_from(r)?,
            tx_count: r.read_u32("tx count")?,
        })
    }
}

impl Canonical for BlockHeader {
    const NAME: &'static str = "block header";
    const MAX_ENCODED_LEN: usize = 1 + 1 + 8 * 4 + 32 * 5 + 4 + 8;
}

/// The content of a block: committed vertices and their transactions, in order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BlockBody {
    pub vertices: Vec<Digest>,
    pub transactions: Vec<SignedTransaction>,
}

impl BlockBody {
    /// The length of `encode_to`'s output for a body of `vertices` vertex digests and
    /// transactions whose encodings total `tx_bytes` (the canonical form adds one
    /// version byte).
    pub const fn encoded_len_of(vertices: usize, tx_bytes: usize) -> usize {
        4 + 32 * vertices + 4 + tx_bytes
    }

    pub fn vertices_root(&self) -> Digest {
        list_root(HashDomain::VertexListRoot, &self.vertices)
    }

    pub fn transactions_root(&self) -> Digest {
        let digests: Vec<Digest> = self.transactions.iter().map(|t| t.digest()).collect();
        list_root(HashDomain::TransactionsRoot, &digests)
    }
}

impl Encode for BlockBody {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_vec(out, &self.vertices);
        write_vec(out, &self.transactions);
    }
}

impl Decode for BlockBody {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            vertices: r.read_vec(MAX_BLOCK_VERTICES, 32, "block vertices")?,
            transactions: r.read_vec(MAX_BLOCK_TXS, 1 + 32 + 8 + 8 + 1, "block transactions")?,
        })
    }
}

impl Canonical for BlockBody {
    const NAME: &'static str = "block body";
    const MAX_ENCODED_LEN: usize = MAX_BLOCK_BODY_BYTES;
}

/// A block: header plus body. The body must match the header's roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub body: BlockBody,
}

impl Block {
    /// Checks that the body is the one the header commits to.
    pub fn body_matches_header(&self) -> bool {
        self.header.vertices_root == self.body.vertices_root()
            && self.header.transactions_root == self.body.transactions_root()
            && self.header.tx_count as usize == self.body.transactions.len()
    }
}

impl Encode for Block {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.header.encode_to(out);
        self.body.encode_to(out);
    }
}

impl Decode for Block {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block = Self {
            header: Decode::decode_from(r)?,
            body: Decode::decode_from(r)?,
        };
        if !block.body_matches_header() {
            return Err(DecodeError::Invalid {
                what: "block",
                detail: "body does not match the header's vertex/transaction roots or count".into(),
            });
        }
        Ok(block)
    }
}

impl Canonical for Block {
    const NAME: &'static str = "block";
    const MAX_ENCODED_LEN: usize = BlockHeader::MAX_ENCODED_LEN + MAX_BLOCK_BODY_BYTES;
}

/// Why a certificate was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertificateError {
    #[error("certificate of epoch {certificate} checked against the validator set of epoch {set}")]
    WrongEpoch { certificate: u64, set: u64 },
    #[error(
        "certificate is for {certificate_chain} height {certificate_height}, not the given header"
    )]
    WrongHeader {
        certificate_chain: ChainId,
        certificate_height: u64,
    },
    #[error("signer {0} is not in the validator set")]
    UnknownSigner(ValidatorIndex),
    #[error("signatures carry {stake} stake, below the quorum of {quorum}")]
    NoQuorum { stake: u64, quorum: u64 },
    #[error("signature of validator {index}: {source}")]
    BadSignature {
        index: ValidatorIndex,
        source: SignatureError,
    },
}

/// At least 2f+1 (by stake) validator signatures over an executed block header: the
/// finality proof of the block, for light clients, the other chain and audits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockCertificate {
    pub chain: ChainId,
    pub height: u64,
    pub epoch: u64,
    pub header_digest: Digest,
    /// `(signer, signature)` sorted by signer index, one per signer.
    pub signatures: Vec<(ValidatorIndex, ValidatorSignature)>,
}

impl BlockCertificate {
    /// A validator's vote: its signature over the header digest, on `network`.
    pub fn vote(
        key: &ValidatorKeypair,
        header: &BlockHeader,
        network: NetworkId,
    ) -> ValidatorSignature {
        key.sign(
            SigningDomain::BlockVote.on(network),
            header.digest().as_bytes(),
        )
    }

    /// Builds a certificate from votes (any order; duplicates keep the first).
    pub fn from_votes(
        header: &BlockHeader,
        votes: impl IntoIterator<Item = (ValidatorIndex, ValidatorSignature)>,
    ) -> Self {
        let mut signatures: Vec<_> = votes.into_iter().collect();
        signatures.sort_by_key(|(i, _)| *i);
        signatures.dedup_by_key(|(i, _)| *i);
        Self {
            chain: header.chain,
            height: header.height,
            epoch: header.epoch,
            header_digest: header.digest(),
            signatures,
        }
    }

    /// Checks the certificate against `header` and the epoch's validator set of
    /// `network`: every signer is a member, every signature verifies, and the signers
    /// hold a quorum.
    pub fn verify(
        &self,
        header: &BlockHeader,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), CertificateError> {
        if self.epoch != validators.epoch() {
            return Err(CertificateError::WrongEpoch {
                certificate: self.epoch,
                set: validators.epoch(),
            });
        }
        if self.chain != header.chain
            || self.height != header.height
            || self.header_digest != header.digest()
        {
            return Err(CertificateError::WrongHeader {
                certificate_chain: self.chain,
                certificate_height: self.height,
            });
        }
        let mut stake = 0u64;
        for (index, _) in &self.signatures {
            stake += validators
                .get(*index)
                .ok_or(CertificateError::UnknownSigner(*index))?
                .stake;
        }
        if stake < validators.quorum_stake() {
            return Err(CertificateError::NoQuorum {
                stake,
                quorum: validators.quorum_stake(),
            });
        }
        for (index, signature) in &self.signatures {
            let member = validators.get(*index).expect("checked above");
            member
                .public_key
                .verify(
                    SigningDomain::BlockVote.on(network),
                    self.header_digest.as_bytes(),
                    signature,
                )
                .map_err(|source| CertificateError::BadSignature {
                    index: *index,
                    source,
                })?;
        }
        Ok(())
    }
}

impl Encode for BlockCertificate {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.chain.encode_to(out);
        self.height.encode_to(out);
        self.epoch.encode_to(out);
        self.header_digest.encode_to(out);
        write_len(out, self.signatures.len());
        for (index, signature) in &self.signatures {
            index.encode_to(out);
            signature.encode_to(out);
        }
    }
}

impl Decode for BlockCertificate {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let chain = Decode::decode_from(r)?;
        let height = r.read_u64("height")?;
        let epoch = r.read_u64("epoch")?;
        let header_digest = Decode::decode_from(r)?;
        let count = r.read_len(MAX_VALIDATORS, 2 + 4627, "certificate signatures")?;
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            signatures.push((r.read_u16("signer")?, Decode::decode_from(r)?));
        }
        check_strictly_increasing(signatures.iter().map(|(i, _)| *i), "certificate signers")?;
        Ok(Self {
            chain,
            height,
            epoch,
            header_digest,
            signatures,
        })
    }
}

impl Canonical for BlockCertificate {
    const NAME: &'static str = "block certificate";
    const MAX_ENCODED_LEN: usize = 1 + 1 + 8 + 8 + 32 + 4 + MAX_VALIDATORS * (2 + 4627);
}
