//! Block votes → block certificates.
//!
//! After executing a block every validator signs its executed header (state root
//! included) and broadcasts the signature as a one-signer [`BlockCertificate`]. Votes
//! are checked on arrival (signer in the set, ML-DSA-87 signature over the header
//! digest) and kept per height, **one per signer** — a vote may arrive before we
//! executed the block. An honest validator signs one header per height, so a
//! signer's second header at a height is verified once and kept as evidence of vote
//! equivocation, and anything further from it at that height is ignored unverified:
//! a member cannot make us store or verify votes for arbitrary digests. Once our own
//! header for a height is known and votes for that
//! same digest carry a quorum of stake, the certificate is formed; it is the
//! finality proof persisted next to the block. Votes for a digest other than ours
//! are evidence that someone executed differently; they never count for our header.
//!
//! Each header is voted on by the set of its own epoch. The book knows the current
//! epoch's set and the previous one's ([`VoteBook::enter_epoch`]): the last blocks of
//! an epoch are certified while the next epoch already runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorSignature};
use dualchain_core::types::{BlockCertificate, BlockHeader, ValidatorIndex, ValidatorSet};

/// Heights above our head we buffer votes for (a peer ahead of us: 256 Delta
/// blocks are almost 13 minutes). With one vote per signer per height, this bounds
/// the book at `validators × 256` votes.
const MAX_HEIGHTS_AHEAD: u64 = 256;
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
    /// Each signer's vote at this height: the header digest it signed.
    by_signer: BTreeMap<ValidatorIndex, (Digest, ValidatorSignature)>,
    /// A second header a signer signed at this height (verified): the evidence.
    conflicting: BTreeMap<ValidatorIndex, (Digest, ValidatorSignature)>,
}

impl HeightVotes {
    fn signers_of(
        &self,
        digest: &Digest,
    ) -> impl Iterator<Item = (ValidatorIndex, &ValidatorSignature)> {
        self.by_signer
            .iter()
            .filter(move |(_, (d, _))| d == digest)
            .map(|(i, (_, s))| (*i, s))
    }
}

/// A header we executed, with our vote and when we last sent it.
struct Own {
    /// Our index in the set of the header's epoch.
    signer: ValidatorIndex,
    header: BlockHeader,
    vote: ValidatorSignature,
    sent_at_ms: u64,
    resends: u32,
}

pub struct VoteBook {
    /// The sets of the current and the previous epoch, by epoch.
    sets: BTreeMap<u64, Arc<ValidatorSet>>,
    /// Votes are signatures for this network (the genesis hash).
    network: NetworkId,
    chain: dualchain_core::types::ChainId,
    votes: BTreeMap<u64, HeightVotes>,
    ours: BTreeMap<u64, Own>,
    certified: u64,
    /// Signers seen signing two headers at one height.
    equivocations: u64,
}

impl VoteBook {
    pub fn new(
        chain: dualchain_core::types::ChainId,
        validators: Arc<ValidatorSet>,
        network: NetworkId,
        certified: u64,
    ) -> Self {
        Self {
            sets: BTreeMap::from([(validators.epoch(), validators)]),
            network,
            chain,
            votes: BTreeMap::new(),
            ours: BTreeMap::new(),
            certified,
            equivocations: 0,
        }
    }

    /// The previous epoch's set too, when a chain reopens in an epoch whose first
    /// blocks may follow uncertified ones of the epoch before.
    pub fn with_previous(mut self, previous: Option<Arc<ValidatorSet>>) -> Self {
        if let Some(set) = previous {
            self.sets.entry(set.epoch()).or_insert(set);
        }
        self
    }

    /// Consensus moved to `set`'s epoch: its votes count from now on, the previous
    /// epoch's still do (for its last blocks), older ones no longer.
    pub fn enter_epoch(&mut self, set: Arc<ValidatorSet>) {
        let epoch = set.epoch();
        self.sets.insert(epoch, set);
        self.sets.retain(|e, _| *e + 1 >= epoch);
    }

    /// The set of the epoch before the newest one the book counts, if it holds it.
    pub fn previous_set(&self) -> Option<Arc<ValidatorSet>> {
        let newest = *self.sets.keys().next_back()?;
        let previous = newest.checked_sub(1)?;
        self.sets.get(&previous).cloned()
    }

    /// Times a signer was seen signing a second header at one height.
    pub fn equivocations(&self) -> u64 {
        self.equivocations
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
        let validators = match self.sets.get(&votes.epoch) {
            Some(set) if votes.chain == self.chain => set.clone(),
            _ => return Err(VoteError::WrongChainOrEpoch),
        };
        if votes.height > head + MAX_HEIGHTS_AHEAD {
            return Err(VoteError::TooFarAhead {
                height: votes.height,
                head,
            });
        }
        if votes.height <= self.certified && !self.ours.contains_key(&votes.height) {
            return Ok(None);
        }
        let digest = votes.header_digest;
        for (index, signature) in &votes.signatures {
            let member = validators
                .get(*index)
                .ok_or(VoteError::UnknownSigner(*index))?;
            let height = self.votes.entry(votes.height).or_default();
            let evidence = match height.by_signer.get(index) {
                // Resends make repeated votes routine; the first one was verified.
                Some((d, _)) if *d == digest => continue,
                None => false,
                // A second header from one signer: verified once, kept as evidence.
                Some(_) if !height.conflicting.contains_key(index) => true,
                Some(_) => continue,
            };
            member
                .public_key
                .verify(
                    SigningDomain::BlockVote.on(self.network),
                    digest.as_bytes(),
                    signature,
                )
                .map_err(|_| VoteError::BadSignature(*index))?;
            let vote = (digest, signature.clone());
            if evidence {
                height.conflicting.insert(*index, vote);
                self.equivocations += 1;
            } else {
                height.by_signer.insert(*index, vote);
            }
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
            .by_signer
            .insert(me, (header.digest(), vote.clone()));
        self.ours.insert(
            height,
            Own {
                signer: me,
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
    pub fn due_resends(&mut self, now_ms: u64, every_ms: u64, max: usize) -> Vec<BlockCertificate> {
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
                [(own.signer, own.vote.clone())],
            ));
        }
        out
    }

    fn try_certify(&mut self, height: u64) -> Option<BlockCertificate> {
        let header = &self.ours.get(&height)?.header;
        let validators = self.sets.get(&header.epoch)?;
        let digest = header.digest();
        let votes = self.votes.get(&height)?;
        let stake = validators.stake_of(votes.signers_of(&digest).map(|(i, _)| i));
        if stake < validators.quorum_stake() {
            return None;
        }
        let certificate = BlockCertificate::from_votes(
            header,
            votes.signers_of(&digest).map(|(i, s)| (i, s.clone())),
        );
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

    /// The network this test signs for.
    const NET: dualchain_core::crypto::NetworkId =
        dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

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
        BlockCertificate::from_votes(h, [(i, BlockCertificate::vote(&keys[i as usize], h, NET))])
    }

    #[test]
    fn quorum_of_matching_votes_certifies_and_verifies() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let set = Arc::new(set);
        let mut book = VoteBook::new(ChainId::Delta, set.clone(), NET, 0);
        let h = header(1, 7);
        // A peer's vote before we executed: buffered.
        assert_eq!(book.add_votes(&vote_of(&keys, 1, &h), 0).unwrap(), None);
        // A vote for a different executed header never counts for ours.
        let other = header(1, 8);
        assert_eq!(book.add_votes(&vote_of(&keys, 2, &other), 0).unwrap(), None);
        assert_eq!(
            book.add_own(0, h.clone(), BlockCertificate::vote(&keys[0], &h, NET), 0),
            None
        );
        let cert = book
            .add_votes(&vote_of(&keys, 3, &h), 1)
            .unwrap()
            .expect("3 of 4");
        cert.verify(&h, &set, NET).unwrap();
        assert_eq!(cert.signatures.len(), 3);
        assert_eq!(book.certified_height(), 1);
    }

    #[test]
    fn each_header_is_certified_by_its_epochs_set_the_previous_one_included() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let mut book = VoteBook::new(ChainId::Delta, Arc::new(set), NET, 0);
        // The last block of epoch 0 executed, then consensus moved to epoch 1, whose
        // set puts the same keys in another order (our index is 3 there).
        let last = header(5, 1);
        let vote = BlockCertificate::vote(&keys[0], &last, NET);
        assert_eq!(book.add_own(0, last.clone(), vote, 0), None);
        let reordered: Vec<_> = keys.iter().rev().cloned().collect();
        let next = ValidatorSet::new(1, reordered.iter().map(|k| (k.public().clone(), 1))).unwrap();
        let next = Arc::new(next);
        book.enter_epoch(next.clone());
        // Epoch 0's votes still certify epoch 0's last block.
        assert_eq!(book.add_votes(&vote_of(&keys, 1, &last), 5).unwrap(), None);
        let cert = book.add_votes(&vote_of(&keys, 2, &last), 5).unwrap();
        cert.expect("3 of epoch 0's 4")
            .verify(&last, &sim_validators(4, 0).unwrap().1, NET)
            .unwrap();
        // The first block of epoch 1: votes are checked against epoch 1's indices.
        let first = BlockHeader {
            epoch: 1,
            ..header(6, 2)
        };
        let vote = |i: u16| {
            BlockCertificate::from_votes(
                &first,
                [(
                    i,
                    BlockCertificate::vote(&reordered[usize::from(i)], &first, NET),
                )],
            )
        };
        assert_eq!(
            book.add_own(
                3,
                first.clone(),
                BlockCertificate::vote(&keys[0], &first, NET),
                0
            ),
            None
        );
        assert_eq!(book.add_votes(&vote(0), 6).unwrap(), None);
        let cert = book
            .add_votes(&vote(1), 6)
            .unwrap()
            .expect("3 of epoch 1's 4");
        cert.verify(&first, &next, NET).unwrap();
        // A vote under epoch 0's index for an epoch 1 header does not verify.
        let wrong_index = BlockCertificate::from_votes(
            &BlockHeader {
                height: 7,
                ..first.clone()
            },
            [(
                1,
                BlockCertificate::vote(
                    &keys[1],
                    &BlockHeader {
                        height: 7,
                        ..first.clone()
                    },
                    NET,
                ),
            )],
        );
        assert_eq!(
            book.add_votes(&wrong_index, 6),
            Err(VoteError::BadSignature(1))
        );
        // Two epochs on, epoch 0's votes are refused.
        book.enter_epoch(Arc::new(
            ValidatorSet::new(2, keys.iter().map(|k| (k.public().clone(), 1))).unwrap(),
        ));
        let stale = header(8, 3);
        assert_eq!(
            book.add_votes(&vote_of(&keys, 1, &stale), 7),
            Err(VoteError::WrongChainOrEpoch)
        );
    }

    #[test]
    fn uncertified_votes_are_resent_a_bounded_number_of_times() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let set = Arc::new(set);
        let mut book = VoteBook::new(ChainId::Delta, set.clone(), NET, 0);
        let (h1, h2) = (header(1, 1), header(2, 2));
        book.add_own(0, h1.clone(), BlockCertificate::vote(&keys[0], &h1, NET), 0);
        book.add_own(
            0,
            h2.clone(),
            BlockCertificate::vote(&keys[0], &h2, NET),
            500,
        );
        assert!(book.due_resends(999, 1_000, 8).is_empty());
        let due = book.due_resends(1_000, 1_000, 8);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].height, 1);
        assert_eq!(due[0].signatures[0].0, 0);
        // A resent vote is a vote peers accept.
        let mut peer = VoteBook::new(ChainId::Delta, set, NET, 0);
        assert_eq!(peer.add_votes(&due[0], 0).unwrap(), None);
        assert_eq!(book.due_resends(1_500, 1_000, 1).len(), 1, "height 2 now");
        // Once certified, a height is no longer resent; the others stop after the cap.
        book.add_votes(&vote_of(&keys, 1, &h2), 2).unwrap();
        assert!(
            book.add_votes(&vote_of(&keys, 2, &h2), 2)
                .unwrap()
                .is_some()
        );
        let mut resent = 0;
        for t in 2..20 {
            for v in book.due_resends(t * 1_000, 1_000, 8) {
                assert_eq!(v.height, 1);
                resent += 1;
            }
        }
        assert_eq!(resent, MAX_VOTE_RESENDS - 1);
    }

    #[test]
    fn one_vote_per_signer_per_height_and_one_conflicting_header_as_evidence() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let set = Arc::new(set);
        let mut book = VoteBook::new(ChainId::Delta, set.clone(), NET, 0);
        let ours = header(1, 7);
        assert_eq!(book.add_votes(&vote_of(&keys, 1, &ours), 0).unwrap(), None);
        // Validator 1 then signs 50 other headers of height 1: the first is kept as
        // evidence, the rest are neither verified nor stored.
        for root in 0..50 {
            let other = header(1, 100 + root);
            let mut v = vote_of(&keys, 1, &other);
            if root > 0 {
                // Not even a valid signature: never looked at.
                v.signatures[0].1 = BlockCertificate::vote(&keys[2], &other, NET);
            }
            assert_eq!(book.add_votes(&v, 0), Ok(None));
        }
        assert_eq!(book.equivocations(), 1);
        let height = &book.votes[&1];
        assert_eq!((height.by_signer.len(), height.conflicting.len()), (1, 1));
        // Its first vote still counts toward our header.
        book.add_own(
            0,
            ours.clone(),
            BlockCertificate::vote(&keys[0], &ours, NET),
            0,
        );
        let cert = book
            .add_votes(&vote_of(&keys, 2, &ours), 0)
            .unwrap()
            .expect("validators 0, 1, 2");
        cert.verify(&ours, &set, NET).unwrap();
    }

    #[test]
    fn forged_and_foreign_votes_are_refused() {
        let (keys, set) = sim_validators(4, 0).unwrap();
        let mut book = VoteBook::new(ChainId::Delta, Arc::new(set), NET, 0);
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
