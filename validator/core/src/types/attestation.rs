//! Cross-chain attestations: light-client proofs that a record is in a finalized block
//! of the other chain.
//!
//! Alpha and Delta trust each other only through these. An [`Attestation`] carries the
//! source block's header, its [`BlockCertificate`] (a quorum of the source epoch's
//! validators signed the header digest), one state record — its key and value — and a
//! sparse-Merkle inclusion proof of that record against the header's state root.
//!
//! Verification ([`Attestation::verify`]) is pure and deterministic: it reads only the
//! attestation and the [`AttestationContext`] the target chain's state provides, so
//! every validator of the target reaches the same verdict on the same bytes. The cache
//! of verified certificates ([`CertificateCache`]) hits only for the byte-identical
//! certificate of the same header and epoch, so a cache hit can never accept what a cold
//! verification would refuse: a node with a warm cache and one without decide alike.
//!
//! What an attestation proves is identified by its [`AttestationId`]: the source chain,
//! the record key and the value. A record attested twice (at two heights, with other
//! signers, or by two relayers) has one id, so the target chain consumes it once. Records
//! meant to be attested therefore carry a version in their value: a record that changes
//! and changes back is two distinct values, never a replay.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use dualchain_merkle::{Hash32, MAX_PROOF_DEPTH, Proof, ProofError, hash_key, hash_value};

use crate::crypto::NetworkId;
use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_var_bytes};
use crate::hash::{Digest, HashDomain};

use super::block::{BlockCertificate, BlockHeader, CertificateError};
use super::chain::ChainId;
use super::validator::ValidatorSet;

/// Largest state key an attestation may carry (record keys are 34 bytes).
pub const MAX_ATTESTED_KEY_BYTES: usize = 64;
/// Largest record value a chain stores, and so the largest an attestation carries (a
/// validator set of 512 ML-DSA-87 keys fits).
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;
/// Largest encoded inclusion proof: depth, sibling bitmap, every sibling, terminal tag
/// with another leaf's key and value hash.
const MAX_PROOF_BYTES: usize = 2 + MAX_PROOF_DEPTH / 8 + MAX_PROOF_DEPTH * 32 + 1 + 64;

/// A record of the source chain with the proof that a quorum finalized it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub header: BlockHeader,
    pub certificate: BlockCertificate,
    /// The record's state key on the source chain.
    pub key: Vec<u8>,
    /// The record's value at `header`'s state root.
    pub value: Vec<u8>,
    /// Inclusion of `key → value` under `header.state_root`.
    pub proof: Proof,
}

/// The identity of what an attestation proves: `(source chain, key, value)`. The target
/// chain records consumed ids, so each attested record version is used once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttestationId(pub Digest);

/// What the target chain knows when it checks an attestation (all of it from its own
/// state, so every validator of the target uses the same context).
pub struct AttestationContext<'a> {
    /// The chain the attestation is applied on; its source must be the other chain.
    pub target: ChainId,
    /// The source chain's validator set of an epoch, if the target knows it.
    pub validator_sets: &'a dyn Fn(u64) -> Option<&'a ValidatorSet>,
    /// The highest source height the target chain has accepted an attestation of.
    pub newest_source_height: u64,
    /// How many source blocks behind `newest_source_height` an attestation may be.
    pub freshness_blocks: u64,
    /// Whether the target chain already consumed this id.
    pub consumed: &'a dyn Fn(&AttestationId) -> bool,
    /// The network both chains belong to: certificates are signed for it.
    pub network: NetworkId,
}

/// Why an attestation was refused; each reason is its own variant, so a receipt can
/// say exactly which check failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AttestationError {
    #[error(
        "an attestation of {source_chain} cannot be applied on {target}: the source must be the other chain"
    )]
    WrongSourceChain {
        source_chain: ChainId,
        target: ChainId,
    },
    #[error("the certificate is of epoch {certificate} but the header of epoch {header}")]
    EpochMismatch { header: u64, certificate: u64 },
    #[error("the validator set of {chain} epoch {epoch} is not known to this chain")]
    UnknownEpoch { chain: ChainId, epoch: u64 },
    #[error("certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("record key of {len} bytes is empty or over the {MAX_ATTESTED_KEY_BYTES}-byte limit")]
    BadKey { len: usize },
    #[error("the record is not proven under the header's state root: {0}")]
    Proof(ProofError),
    #[error(
        "stale: source block {height} is more than {window} blocks behind the newest attested block {newest}"
    )]
    Stale {
        height: u64,
        newest: u64,
        window: u64,
    },
    #[error("attestation {0:?} was already used on this chain")]
    Replayed(AttestationId),
}

impl Attestation {
    /// The source chain (the chain whose block is attested).
    pub fn source(&self) -> ChainId {
        self.header.chain
    }

    /// What this attestation proves (see [`AttestationId`]).
    pub fn id(&self) -> AttestationId {
        self.id_with(&hash_value(&self.value))
    }

    fn id_with(&self, value_hash: &Hash32) -> AttestationId {
        let mut h = HashDomain::AttestationId.hasher();
        h.update(&[self.source().tag()]);
        h.update(&(self.key.len() as u64).to_le_bytes());
        h.update(&self.key);
        h.update(value_hash);
        AttestationId(Digest(*h.finalize().as_bytes()))
    }

    /// Checks everything, cheapest first: chains, epoch, freshness and single use (state
    /// lookups), then the proof (hashes), then the certificate (signatures, skipped for
    /// a certificate `cache` already verified). Returns the id to record as consumed.
    pub fn verify(
        &self,
        ctx: &AttestationContext<'_>,
        cache: Option<&CertificateCache>,
    ) -> Result<AttestationId, AttestationError> {
        let source = self.source();
        if source == ctx.target {
            return Err(AttestationError::WrongSourceChain {
                source_chain: source,
                target: ctx.target,
            });
        }
        if self.certificate.epoch != self.header.epoch {
            return Err(AttestationError::EpochMismatch {
                header: self.header.epoch,
                certificate: self.certificate.epoch,
            });
        }
        let validators =
            (ctx.validator_sets)(self.header.epoch).ok_or(AttestationError::UnknownEpoch {
                chain: source,
                epoch: self.header.epoch,
            })?;
        if self.header.height.saturating_add(ctx.freshness_blocks) < ctx.newest_source_height {
            return Err(AttestationError::Stale {
                height: self.header.height,
                newest: ctx.newest_source_height,
                window: ctx.freshness_blocks,
            });
        }
        let value_hash = hash_value(&self.value);
        let id = self.id_with(&value_hash);
        if (ctx.consumed)(&id) {
            return Err(AttestationError::Replayed(id));
        }
        self.verify_proof(&value_hash)?;
        match cache {
            Some(cache) => {
                cache.verify(&self.certificate, &self.header, validators, ctx.network)?
            }
            None => self
                .certificate
                .verify(&self.header, validators, ctx.network)?,
        }
        Ok(id)
    }

    /// Checks the proof and the certificate against `validators` alone, without the
    /// target chain's freshness and single-use context: what a link of an epoch chain
    /// needs (`crate::types::verify_epoch_chain`), where the set of each epoch comes
    /// from the link before.
    pub fn verify_against(
        &self,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), AttestationError> {
        if self.certificate.epoch != self.header.epoch {
            return Err(AttestationError::EpochMismatch {
                header: self.header.epoch,
                certificate: self.certificate.epoch,
            });
        }
        self.verify_proof(&hash_value(&self.value))?;
        self.certificate.verify(&self.header, validators, network)?;
        Ok(())
    }

    /// The inclusion proof of `key → value` (its hash given) under the header's state root.
    fn verify_proof(&self, value_hash: &Hash32) -> Result<(), AttestationError> {
        if self.key.is_empty() || self.key.len() > MAX_ATTESTED_KEY_BYTES {
            return Err(AttestationError::BadKey {
                len: self.key.len(),
            });
        }
        self.proof
            .verify(
                &self.header.state_root.0,
                &hash_key(&self.key),
                Some(value_hash),
            )
            .map_err(AttestationError::Proof)
    }
}

impl Encode for Attestation {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.header.encode_to(out);
        self.certificate.encode_to(out);
        write_var_bytes(out, &self.key);
        write_var_bytes(out, &self.value);
        write_var_bytes(out, &self.proof.to_bytes());
    }
}

impl Decode for Attestation {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = Decode::decode_from(r)?;
        let certificate = Decode::decode_from(r)?;
        let key = r
            .read_var_bytes(MAX_ATTESTED_KEY_BYTES, "attested key")?
            .to_vec();
        let value = r
            .read_var_bytes(MAX_RECORD_BYTES, "attested value")?
            .to_vec();
        let proof_bytes = r.read_var_bytes(MAX_PROOF_BYTES, "attestation proof")?;
        let proof = Proof::from_bytes(proof_bytes).map_err(|e| DecodeError::Invalid {
            what: "attestation proof",
            detail: e.to_string(),
        })?;
        Ok(Self {
            header,
            certificate,
            key,
            value,
            proof,
        })
    }
}

impl Canonical for Attestation {
    const NAME: &'static str = "attestation";
    const MAX_ENCODED_LEN: usize = 1
        + BlockHeader::MAX_ENCODED_LEN
        + BlockCertificate::MAX_ENCODED_LEN
        + 4
        + MAX_ATTESTED_KEY_BYTES
        + 4
        + MAX_RECORD_BYTES
        + 4
        + MAX_PROOF_BYTES;
}

/// One attestable record as the source chain committed it: its key, its value and its
/// inclusion proof against the state root of the block that changed it. The source
/// chain stores these with the block ([`crate::types::is_attestable`] says which), so an
/// attestation can be assembled whenever that block's certificate is known, long after
/// the head moved on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordProof {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub proof: Proof,
}

impl RecordProof {
    /// The attestation of this record by `header` (the block that changed it) and the
    /// block's `certificate`.
    pub fn attest(self, header: BlockHeader, certificate: BlockCertificate) -> Attestation {
        Attestation {
            header,
            certificate,
            key: self.key,
            value: self.value,
            proof: self.proof,
        }
    }
}

impl Encode for RecordProof {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_var_bytes(out, &self.key);
        write_var_bytes(out, &self.value);
        write_var_bytes(out, &self.proof.to_bytes());
    }
}

impl Decode for RecordProof {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key = r
            .read_var_bytes(MAX_ATTESTED_KEY_BYTES, "record key")?
            .to_vec();
        let value = r.read_var_bytes(MAX_RECORD_BYTES, "record value")?.to_vec();
        let proof_bytes = r.read_var_bytes(MAX_PROOF_BYTES, "record proof")?;
        let proof = Proof::from_bytes(proof_bytes).map_err(|e| DecodeError::Invalid {
            what: "record proof",
            detail: e.to_string(),
        })?;
        Ok(Self { key, value, proof })
    }
}

impl Canonical for RecordProof {
    const NAME: &'static str = "record proof";
    const MAX_ENCODED_LEN: usize =
        1 + 4 + MAX_ATTESTED_KEY_BYTES + 4 + MAX_RECORD_BYTES + 4 + MAX_PROOF_BYTES;
}

/// Certificates already verified, by header digest: a block whose records are attested
/// many times has its signatures checked once. A hit needs the very same certificate
/// (compared byte for byte) of the same epoch and network, so a warm cache never accepts
/// what a cold check would refuse. Bounded: the oldest entries leave first.
pub struct CertificateCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    verified: HashMap<Digest, (NetworkId, BlockCertificate)>,
    order: VecDeque<Digest>,
}

impl CertificateCache {
    /// A cache of at most `capacity` certificates (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// `certificate.verify(header, validators, network)`, skipped when this exact
    /// certificate was verified for this header and network before.
    pub fn verify(
        &self,
        certificate: &BlockCertificate,
        header: &BlockHeader,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), CertificateError> {
        let digest = header.digest();
        let hit = self
            .lock()
            .verified
            .get(&digest)
            .is_some_and(|(known_network, known)| {
                *known_network == network
                    && known == certificate
                    && known.epoch == validators.epoch()
            });
        if hit {
            return Ok(());
        }
        certificate.verify(header, validators, network)?;
        let mut inner = self.lock();
        let entry = (network, certificate.clone());
        if inner.verified.insert(digest, entry).is_none() {
            inner.order.push_back(digest);
            while inner.order.len() > self.capacity {
                let oldest = inner.order.pop_front().expect("longer than capacity ≥ 1");
                inner.verified.remove(&oldest);
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[path = "attestation_tests.rs"]
mod tests;
