//! Block votes → block certificates.
//!
//! After executing a block every validator signs its executed header (state root
//! included) and broadcasts the signature as a one-signer [`BlockCertificate`]. Votes
//! are checked on arrival (signer in the set, ML-DSA-87 signature over the header
//! digest) and kept per (height, header digest) — a vote may arrive before we
//! executed the block. Once our own header for a height is known and votes for that
//! same digest carry a quorum of stake, the certificate is formed; it is the
//! finality proof persisted next to the block. Votes for a digest other than ours
//! are evidence that someone executed differently; they never count for our header.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::{SigningDomain, ValidatorSignature};
use dualchain_core::types::{BlockCertificate, BlockHeader, ValidatorIndex, ValidatorSet};

/// Heights above our head we buffer votes for (a peer slightly ahead).
const MAX_HEIGHTS_AHEAD: u64 = 1_000;
/// Executed headers kept waiting for votes before they are given up on.
const MAX_PENDING_HEADERS: usize = 4_096;
/// Times our vote for one header is sent again while it is not certified (a lost
/// vote would otherwise leave the height uncertified on every node that missed it).
pub const MAX_VOTE_RESENDS: u32 = 5;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("vote from validator {0}, who is not in the validator set")]
    UnknownSigner(ValidatorIndex),
    #[error("vote signature of validator {0} does not verify")]
    BadSignature(ValidatorIndex),
    #[error("vote for height {height} is too far ahead of our head {head}")]
    TooFarAhead { height: u64, head: u64 },
    #[error("vote for another chain or epoch")]
    WrongChainOrEpoch,
}

#[derive(Default)]
struct HeightVotes {
    by_digest: HashMap<Digest, BTreeMap<ValidatorIndex, ValidatorSignature>>,
}

/// A header we executed, with our vote and when we last sent it.
struct Own {
    header: BlockHeader,
    vote: ValidatorSignature,
    sent_at_ms: u64,
    resends: u32,
}

pub struct VoteBook {
    validators: Arc<ValidatorSet>,
    chain: dualchain_core::types::ChainId,
    votes: BTreeMap<u64, HeightVotes>,
    ours: BTreeMap<u64, Own>,
    certified: u64,
}

impl VoteBook {
    pub fn new(
        chain: dualchain_core::types::ChainId,
        validators: Arc<ValidatorSet>,
        certified: u64,
    ) -> Self {
        Self {
            validators,
            chain,
            votes: BTreeMap::new(),
            ours: BTreeMap::new(),
            certified,
        }
    }

    pub fn certified_height(&self) -> u64 {
        self.certified
    }

    /// Checks and records a peer's vote (or a full certificate's signatures); returns
    /// the certificate if this completed one for a header we executed.
    pub fn add_votes(
        &mut self,
        votes: &BlockCertificate,
        head: u64,
    ) -> Result<Option<BlockCertificate>, VoteError> {
        if votes.chain != self.chain || votes.epoch != self.validators.epoch() {
            return Err(VoteError::WrongChainOrEpoch);
        }
        if votes.height > head + MAX_HEIGHTS_AHEAD {
            return Err(VoteError::TooFarAhead {
                height: votes.height,
                head,
            });
        }
        if votes.height <= self.certified && !self.ours.contains_key(&votes.height) {
            return Ok(None);
        }
        // Resends make repeated votes routine: a signature identical to one already
        // recorded was verified when it was recorded.
        let known = self
            .votes
            .get(&votes.height)
            .and_then(|h| h.by_digest.get(&votes.header_digest));
        for (index, signature) in &votes.signatures {
            let member = self
                .validators
                .get(*index)
                .ok_or(VoteError::UnknownSigner(*index))?;
            if known.and_then(|k| k.get(index)) == Some(signature) {
                continue;
            }
            member
                .public_key
                .verify(
                    SigningDomain::BlockVote,
                    votes.header_digest.as_bytes(),
                    signature,
                )
                .map_err(|_| VoteError::BadSignature(*index))?;
        }
        let entry = self
            .votes
            .entry(votes.height)
            .or_default()
            .by_digest
            .entry(votes.header_digest)
            .or_default();
        for (index, signature) in &votes.signatures {
            entry.entry(*index).or_insert_with(|| signature.clone());
        }
        Ok(self.try_certify(votes.height))
    }

    /// Records our own executed header and vote, sent at `now_ms`; returns the
    /// certificate if the votes already there complete it.
    pub fn add_own(
        &mut self,
        me: ValidatorIndex,
        header: BlockHeader,
        vote: ValidatorSignature,
        now_ms: u64,
    ) -> Option<BlockCertificate> {
        let height = header.height;
        self.votes
            .entry(height)
            .or_default()
            .by_digest
            .entry(header.digest())
            .or_default()
            .insert(me, vote.clone());
        self.ours.insert(
            height,
            Own {
                header,
                vote,
                sent_at_ms: now_ms,
                resends: 0,
            },
        );
        while self.ours.len() > MAX_PENDING_HEADERS {
            self.ours.pop_first();
        }
        self.try_certify(height)
    }

    /// Our votes for uncertified headers last sent at least `every_ms` ago (lowest
    /// heights first, at most `max`, each at most [`MAX_VOTE_RESENDS`] times), as
    /// one-signer certificates to broadcast again.
    pub fn due_resends(
        &mut self,
        me: ValidatorIndex,
        now_ms: u64,
        every_ms: u64,
        max: usize,
    ) -> Vec<BlockCertificate> {
        let mut out = Vec::new();
        for own in self.ours.values_mut() {
            if out.len() >= max {
                break;
            }
            if own.resends >= MAX_VOTE_RESENDS || now_ms < own.sent_at_ms + every_ms {
                continue;
            }
            own.resends += 1;
            own.sent_at_ms = now_ms;
            out.push(BlockCertificate::from_votes(
                &own.header,
                [(me, own.vote.clone())],
            ));
        }
        out
    }

    fn try_certify(&mut self, height: u64) -> Option<BlockCertificate> {
        let header = &self.ours.get(&height)?.header;
        let digest = header.digest();
        let signers = self.votes.get(&height)?.by_digest.get(&digest)?;
        if self.validators.stake_of(signers.keys().copied()) < self.validators.quorum_stake() {
            return None;
        }
        let certificate =
            BlockCertificate::from_votes(header, signers.iter().map(|(i, s)| (*i, s.clone())));
        self.ours.remove(&height);
        self.votes.remove(&height);
        self.certified = self.certified.max(height);
        // Anything older than a certified height that is still uncertified keeps
        // waiting; but votes for heights we will never execute again are dropped.
        let floor = self.certified.saturating_sub(MAX_HEIGHTS_AHEAD);
        self.votes.retain(|h, _| *h > floor);
        Some(certificate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_consensus::keys::sim_validators;
    use dualchain_core::types::ChainId;

    fn header(height: u64, root: u8) -> BlockHeader {
        BlockHeader {
            chain: ChainId::Delta,
            height,
            epoch: 0,
            slot: height,
            parent: Digest::ZERO,
            timestamp_ms: 0,
            vertices_root: Digest::ZERO,
            transactions_root: Digest::ZERO,
            receipts_root: Digest::ZERO,
            state_root: Digest([root; 32]),
            tx_count: 0,
        }
    }

    fn vote_of(
        keys: &[Arc<dualchain_core::crypto::ValidatorKeypair>],
        i: u16,
        h: &BlockHeader,
    ) -> BlockCertificate {
        BlockCertificate::from_votes(h, [(i, BlockCertificate::vote(&keys[i as usize], h))])
    }

    #[test]
    fn quorum_of_matching_votes_certifies_and_verifies() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let set = Arc::new(set);
        let mut book = VoteBook::new(ChainId::Delta, set.clone(), 0);
        let h = header(1, 7);
        // A peer's vote before we executed: buffered.
        assert_eq!(book.add_votes(&vote_of(&keys, 1, &h), 0).unwrap(), None);
        // A vote for a different executed header never counts for ours.
        let other = header(1, 8);
        assert_eq!(book.add_votes(&vote_of(&keys, 2, &other), 0).unwrap(), None);
        assert_eq!(
            book.add_own(0, h.clone(), BlockCertificate::vote(&keys[0], &h), 0),
            None
        );
        let cert = book
            .add_votes(&vote_of(&keys, 3, &h), 1)
            .unwrap()
            .expect("3 of 4");
        cert.verify(&h, &set).unwrap();
        assert_eq!(cert.signatures.len(), 3);
        assert_eq!(book.certified_height(), 1);
    }

    #[test]
    fn uncertified_votes_are_resent_a_bounded_number_of_times() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let set = Arc::new(set);
        let mut book = VoteBook::new(ChainId::Delta, set.clone(), 0);
        let (h1, h2) = (header(1, 1), header(2, 2));
        book.add_own(0, h1.clone(), BlockCertificate::vote(&keys[0], &h1), 0);
        book.add_own(0, h2.clone(), BlockCertificate::vote(&keys[0], &h2), 500);
        assert!(book.due_resends(0, 999, 1_000, 8).is_empty());
        let due = book.due_resends(0, 1_000, 1_000, 8);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].height, 1);
        assert_eq!(due[0].signatures[0].0, 0);
        // A resent vote is a vote peers accept.
        let mut peer = VoteBook::new(ChainId::Delta, set, 0);
        assert_eq!(peer.add_votes(&due[0], 0).unwrap(), None);
        assert_eq!(
            book.due_resends(0, 1_500, 1_000, 1).len(),
            1,
            "height 2 now"
        );
        // Once certified, a height is no longer resent; the others stop after the cap.
        book.add_votes(&vote_of(&keys, 1, &h2), 2).unwrap();
        assert!(
            book.add_votes(&vote_of(&keys, 2, &h2), 2)
                .unwrap()
                .is_some()
        );
        let mut resent = 0;
        for t in 2..20 {
            for v in book.due_resends(0, t * 1_000, 1_000, 8) {
                assert_eq!(v.height, 1);
                resent += 1;
            }
        }
        assert_eq!(resent, MAX_VOTE_RESENDS - 1);
    }

    #[test]
    fn forged_and_foreign_votes_are_refused() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let mut book = VoteBook::new(ChainId::Delta, Arc::new(set), 0);
        let h = header(1, 7);
        let mut forged = vote_of(&keys, 1, &h);
        forged.signatures[0].0 = 2;
        assert_eq!(book.add_votes(&forged, 0), Err(VoteError::BadSignature(2)));
        let mut unknown = vote_of(&keys, 1, &h);
        unknown.signatures[0].0 = 9;
        assert_eq!(
            book.add_votes(&unknown, 0),
            Err(VoteError::UnknownSigner(9))
        );
        let far = header(5_000, 1);
        assert!(matches!(
            book.add_votes(&vote_of(&keys, 1, &far), 0),
            Err(VoteError::TooFarAhead { .. })
        ));
    }
}
