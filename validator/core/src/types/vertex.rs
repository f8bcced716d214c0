//! DAG vertices: a validator's proposal for one round of one chain.

use crate::crypto::{
    NetworkId, SignatureError, SigningDomain, ValidatorKeypair, ValidatorSignature,
};
use crate::encoding::{
    Canonical, Decode, DecodeError, Encode, Reader, check_strictly_increasing, write_vec,
};
use crate::hash::{Digest, HashDomain};

use super::chain::ChainId;
use super::transaction::{
    SignedTransaction,
    limits::{MAX_ATTEST_TX_BYTES, MAX_TX_BYTES},
};
use super::validator::{MAX_VALIDATORS, ValidatorIndex, ValidatorSet};

/// Size limits of vertices.
pub mod limits {
    /// Transactions in one vertex's batch.
    pub const MAX_VERTEX_TXS: usize = 16_384;
    /// Encoded bytes of one vertex's transactions: what a proposer may batch into a
    /// vertex, and what a received vertex may carry (checked at decode, before any
    /// signature work). Two of the largest attestation transactions fit.
    pub const MAX_VERTEX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
    /// Encoded bytes of a vertex without its transactions, at most: fixed fields,
    /// one parent per validator of the largest set, an ML-DSA-87 signature.
    pub const MAX_VERTEX_OVERHEAD_BYTES: usize = 64 * 1024;
    /// Encoded size of one vertex (the transport's frame limit for vertices).
    pub const MAX_VERTEX_BYTES: usize = MAX_VERTEX_PAYLOAD_BYTES + MAX_VERTEX_OVERHEAD_BYTES;
}
use limits::*;

/// A reference to a parent vertex of the previous round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexRef {
    pub author: ValidatorIndex,
    pub digest: Digest,
}

impl Encode for VertexRef {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.author.encode_to(out);
        self.digest.encode_to(out);
    }
}

impl Decode for VertexRef {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            author: r.read_u16("parent author")?,
            digest: Decode::decode_from(r)?,
        })
    }
}

/// The signed content of a vertex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedVertex {
    pub chain: ChainId,
    pub epoch: u64,
    pub round: u64,
    pub author: ValidatorIndex,
    /// Vertices of `round - 1`, sorted by author, at most one per author.
    pub parents: Vec<VertexRef>,
    pub transactions: Vec<SignedTransaction>,
    /// The author's clock at creation (unix ms). Informative: block slots are derived
    /// from committed leaders' timestamps, never from a local clock.
    pub timestamp_ms: u64,
}

impl UnsignedVertex {
    /// Encoded bytes of the batch (at most [`MAX_VERTEX_PAYLOAD_BYTES`] in any vertex
    /// that decodes).
    pub fn payload_bytes(&self) -> usize {
        self.transactions
            .iter()
            .map(SignedTransaction::encoded_len)
            .sum()
    }

    /// The vertex digest: BLAKE3 (vertex domain) of the unsigned content.
    pub fn digest(&self) -> Digest {
        let mut bytes = Vec::with_capacity(256);
        self.encode_to(&mut bytes);
        HashDomain::Vertex.hash(&bytes)
    }

    /// Signs the digest with the author's validator key, for `network`.
    pub fn sign(self, key: &ValidatorKeypair, network: NetworkId) -> Vertex {
        let digest = self.digest();
        let signature = key.sign(SigningDomain::Vertex.on(network), digest.as_bytes());
        Vertex {
            content: self,
            digest,
            signature,
        }
    }
}

impl Encode for UnsignedVertex {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.chain.encode_to(out);
        self.epoch.encode_to(out);
        self.round.encode_to(out);
        self.author.encode_to(out);
        write_vec(out, &self.parents);
        write_vec(out, &self.transactions);
        self.timestamp_ms.encode_to(out);
    }
}

impl Decode for UnsignedVertex {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let chain = Decode::decode_from(r)?;
        let epoch = r.read_u64("epoch")?;
        let round = r.read_u64("round")?;
        let author = r.read_u16("author")?;
        let parents: Vec<VertexRef> = r.read_vec(MAX_VALIDATORS, 2 + 32, "parents")?;
        check_strictly_increasing(parents.iter().map(|p| p.author), "parents")?;
        if round == 0 && !parents.is_empty() {
            return Err(DecodeError::Invalid {
                what: "vertex",
                detail: "a round-0 vertex has no parents".into(),
            });
        }
        let transactions = r.read_vec(MAX_VERTEX_TXS, 1 + 32 + 8 + 8 + 1, "vertex batch")?;
        let timestamp_ms = r.read_u64("timestamp")?;
        let vertex = Self {
            chain,
            epoch,
            round,
            author,
            parents,
            transactions,
            timestamp_ms,
        };
        let payload = vertex.payload_bytes();
        if payload > MAX_VERTEX_PAYLOAD_BYTES {
            return Err(DecodeError::TooLong {
                what: "vertex batch",
                len: payload,
                max: MAX_VERTEX_PAYLOAD_BYTES,
            });
        }
        if let Some(t) = vertex.transactions.iter().find(|t| t.tx().chain != chain) {
            return Err(DecodeError::Invalid {
                what: "vertex batch",
                detail: format!(
                    "a transaction of chain {} in a vertex of chain {chain}",
                    t.tx().chain
                ),
            });
        }
        Ok(vertex)
    }
}

/// Why a vertex was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VertexError {
    #[error("vertex of epoch {vertex} checked against the validator set of epoch {set}")]
    WrongEpoch { vertex: u64, set: u64 },
    #[error("vertex author {0} is not in the validator set")]
    UnknownAuthor(ValidatorIndex),
    #[error("parent author {0} is not in the validator set")]
    UnknownParent(ValidatorIndex),
    #[error("vertex of round {round} has parents with {stake} stake, below the quorum of {quorum}")]
    NotEnoughParents { round: u64, stake: u64, quorum: u64 },
    #[error("vertex signature: {0}")]
    Signature(#[from] SignatureError),
}

/// A signed vertex; its digest is computed on construction and decode, never trusted
/// from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vertex {
    content: UnsignedVertex,
    digest: Digest,
    signature: ValidatorSignature,
}

impl Vertex {
    pub fn content(&self) -> &UnsignedVertex {
        &self.content
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn signature(&self) -> &ValidatorSignature {
        &self.signature
    }

    pub fn reference(&self) -> VertexRef {
        VertexRef {
            author: self.content.author,
            digest: self.digest,
        }
    }

    /// Checks what can be checked without the DAG: epoch, author membership, parents
    /// from the set with quorum stake (except in round 0), and the author's signature
    /// on `network`.
    pub fn verify(&self, validators: &ValidatorSet, network: NetworkId) -> Result<(), VertexError> {
        let c = &self.content;
        if c.epoch != validators.epoch() {
            return Err(VertexError::WrongEpoch {
                vertex: c.epoch,
                set: validators.epoch(),
            });
        }
        let author = validators
            .get(c.author)
            .ok_or(VertexError::UnknownAuthor(c.author))?;
        if let Some(p) = c
            .parents
            .iter()
            .find(|p| validators.get(p.author).is_none())
        {
            return Err(VertexError::UnknownParent(p.author));
        }
        if c.round > 0 {
            let stake = validators.stake_of(c.parents.iter().map(|p| p.author));
            if stake < validators.quorum_stake() {
                return Err(VertexError::NotEnoughParents {
                    round: c.round,
                    stake,
                    quorum: validators.quorum_stake(),
                });
            }
        }
        author.public_key.verify(
            SigningDomain::Vertex.on(network),
            self.digest.as_bytes(),
            &self.signature,
        )?;
        Ok(())
    }
}

impl Encode for Vertex {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.content.encode_to(out);
        self.signature.encode_to(out);
    }
}

impl Decode for Vertex {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.rest();
        let content = UnsignedVertex::decode_from(r)?;
        let digest = HashDomain::Vertex.hash(&start[..start.len() - r.remaining()]);
        let signature = Decode::decode_from(r)?;
        Ok(Self {
            content,
            digest,
            signature,
        })
    }
}

impl Canonical for Vertex {
    const NAME: &'static str = "vertex";
    const MAX_ENCODED_LEN: usize = MAX_VERTEX_BYTES;
}

// A vertex must be able to carry several maximal transactions of every kind.
const _: () = assert!(MAX_VERTEX_PAYLOAD_BYTES > 4 * MAX_TX_BYTES);
const _: () = assert!(MAX_VERTEX_PAYLOAD_BYTES > 2 * MAX_ATTEST_TX_BYTES);
// Everything but the batch fits the overhead: fixed fields, parents, signature.
const _: () = assert!(
    MAX_VERTEX_OVERHEAD_BYTES
        > 1 + 8
            + 8
            + 2
            + 4
            + MAX_VALIDATORS * (2 + 32)
            + 4
            + 8
            + <crate::crypto::ValidatorScheme as crate::crypto::Scheme>::SIGNATURE_LEN
);
