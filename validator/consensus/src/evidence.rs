//! Evidence of misbehaviour that anyone holding the validator set (and, for a wrong
//! vote, the epoch's leader schedule) can check.
//!
//! Evidence is self-contained: it carries the signed objects that prove the offence,
//! so a node that receives it checks it on its own and never takes the relayer's
//! word. That is what lets every honest node act on one node's detection (exclude
//! the offender from sampling, ignore its vertices) without trusting that node.

use std::sync::Arc;

use dualchain_core::crypto::NetworkId;
use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader};
use dualchain_core::types::{ValidatorIndex, ValidatorSet, Vertex, vertex_limits};

use crate::avalanche::{Preference, Response, ResponseError};
use crate::consensus::Round;
use crate::leader::LeaderSchedule;

/// Provable misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Two different vertices signed by one author for the same chain, epoch and round.
    Equivocation {
        first: Arc<Vertex>,
        second: Arc<Vertex>,
    },
    /// A signed Avalanche response that votes to commit `vertex` for a leader slot the
    /// vertex does not occupy (another round, or not the slot's leader). An honest
    /// voter votes only for a vertex it holds and checked against the slot (see
    /// `Poller::answer`), so this is signed proof of a lie about the DAG.
    WrongVote {
        response: Box<Response>,
        vertex: Arc<Vertex>,
    },
}

/// Why evidence does not prove anything.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EvidenceError {
    #[error("the two vertices are identical")]
    SameVertex,
    #[error("the two vertices differ in chain, epoch, round or author")]
    DifferentSlots,
    #[error("a vertex of the evidence does not verify: {0}")]
    Invalid(#[from] dualchain_core::types::VertexError),
    #[error("the response of the evidence does not verify: {0}")]
    Response(#[from] ResponseError),
    #[error("the response votes for vertex {0} in no slot")]
    NoSuchVote(dualchain_core::Digest),
    #[error("the vote is for the vertex of slot {slot}: nothing wrong with it")]
    RightVote { slot: Round },
    #[error("the response is of epoch {response}, the vertex of epoch {vertex}")]
    EpochMismatch { response: u64, vertex: u64 },
}

impl Evidence {
    /// The validator the evidence accuses.
    pub fn offender(&self) -> ValidatorIndex {
        match self {
            Evidence::Equivocation { first, .. } => first.content().author,
            Evidence::WrongVote { response, .. } => response.votes.voter,
        }
    }

    /// The chain whose vertices the evidence holds.
    pub fn chain(&self) -> dualchain_core::types::ChainId {
        match self {
            Evidence::Equivocation { first, .. } => first.content().chain,
            Evidence::WrongVote { vertex, .. } => vertex.content().chain,
        }
    }

    /// The epoch of the offence (the epoch whose leader schedule checks a wrong vote).
    pub fn epoch(&self) -> u64 {
        match self {
            Evidence::Equivocation { first, .. } => first.content().epoch,
            Evidence::WrongVote { response, .. } => response.votes.epoch,
        }
    }

    /// What was proven, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::Equivocation { .. } => "equivocation",
            Evidence::WrongVote { .. } => "wrong vote",
        }
    }

    /// Checks the evidence under `validators` of `network`, signatures included:
    /// - equivocation: both vertices verify and occupy the same slot with different
    ///   digests;
    /// - wrong vote: the response verifies as its voter's, the vertex verifies and is
    ///   of the response's epoch, and the response votes to commit it for a slot it
    ///   does not occupy under `leaders`, which must be the schedule of
    ///   [`Evidence::epoch`] (the caller's to ensure: the schedule is not in the
    ///   evidence).
    pub fn verify(
        &self,
        validators: &ValidatorSet,
        network: NetworkId,
        leaders: &LeaderSchedule,
    ) -> Result<(), EvidenceError> {
        match self {
            Evidence::Equivocation { first, second } => {
                if first.digest() == second.digest() {
                    return Err(EvidenceError::SameVertex);
                }
                let (a, b) = (first.content(), second.content());
                if (a.chain, a.epoch, a.round, a.author) != (b.chain, b.epoch, b.round, b.author) {
                    return Err(EvidenceError::DifferentSlots);
                }
                first.verify(validators, network)?;
                second.verify(validators, network)?;
                Ok(())
            }
            Evidence::WrongVote { response, vertex } => {
                vote_outside_its_slot(response, vertex, leaders)?;
                response.verify(response.votes.voter, validators, network)?;
                vertex.verify(validators, network)?;
                Ok(())
            }
        }
    }
}

/// Whether `response` votes to commit `vertex` for a slot the vertex does not occupy
/// (cheap checks only: no signature is verified here).
fn vote_outside_its_slot(
    response: &Response,
    vertex: &Vertex,
    leaders: &LeaderSchedule,
) -> Result<(), EvidenceError> {
    let (votes, v) = (&response.votes, vertex.content());
    if votes.epoch != v.epoch {
        return Err(EvidenceError::EpochMismatch {
            response: votes.epoch,
            vertex: v.epoch,
        });
    }
    let wanted = Preference::Commit(vertex.digest());
    let mut right = None;
    for (slot, vote) in (votes.first_slot..).zip(&votes.preferences) {
        if *vote != wanted {
            continue;
        }
        if v.round != slot || v.author != leaders.leader(slot) {
            return Ok(());
        }
        right = Some(slot);
    }
    Err(match right {
        Some(slot) => EvidenceError::RightVote { slot },
        None => EvidenceError::NoSuchVote(vertex.digest()),
    })
}

const TAG_EQUIVOCATION: u8 = 0;
const TAG_WRONG_VOTE: u8 = 1;

impl Encode for Evidence {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Evidence::Equivocation { first, second } => {
                out.push(TAG_EQUIVOCATION);
                first.encode_to(out);
                second.encode_to(out);
            }
            Evidence::WrongVote { response, vertex } => {
                out.push(TAG_WRONG_VOTE);
                response.encode_to(out);
                vertex.encode_to(out);
            }
        }
    }
}

impl Decode for Evidence {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8("evidence")? {
            TAG_EQUIVOCATION => Ok(Evidence::Equivocation {
                first: Arc::new(Vertex::decode_from(r)?),
                second: Arc::new(Vertex::decode_from(r)?),
            }),
            TAG_WRONG_VOTE => Ok(Evidence::WrongVote {
                response: Box::new(Response::decode_from(r)?),
                vertex: Arc::new(Vertex::decode_from(r)?),
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "evidence",
                tag,
            }),
        }
    }
}

impl Canonical for Evidence {
    const NAME: &'static str = "evidence";
    const MAX_ENCODED_LEN: usize = 1 + 2 * vertex_limits::MAX_VERTEX_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;

    #[test]
    fn equivocation_evidence_verifies_and_forgeries_do_not() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let first = b.vertex(1, 3).clone();
        let second = b.equivocate(1, 3, 7);
        let ev = Evidence::Equivocation {
            first: first.clone(),
            second: second.clone(),
        };
        assert_eq!(ev.verify(b.validators(), b.network(), &b.leaders()), Ok(()));
        assert_eq!(ev.offender(), 3);
        let same = Evidence::Equivocation {
            first: first.clone(),
            second: first.clone(),
        };
        assert_eq!(
            same.verify(b.validators(), b.network(), &b.leaders()),
            Err(EvidenceError::SameVertex)
        );
        let other_slot = Evidence::Equivocation {
            first,
            second: b.vertex(1, 2).clone(),
        };
        assert_eq!(
            other_slot.verify(b.validators(), b.network(), &b.leaders()),
            Err(EvidenceError::DifferentSlots)
        );
    }

    #[test]
    fn evidence_round_trips_and_bad_bytes_are_errors() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..1);
        let ev = Evidence::Equivocation {
            first: b.vertex(0, 1).clone(),
            second: b.equivocate(0, 1, 3),
        };
        let bytes = ev.to_canonical_bytes();
        let back = Evidence::from_canonical_bytes(&bytes).unwrap();
        assert_eq!(back, ev);
        back.verify(b.validators(), b.network(), &b.leaders())
            .unwrap();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Evidence::from_canonical_bytes(&bytes[..cut]).is_err());
        }
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert!(Evidence::from_canonical_bytes(&unknown).is_err());
    }

    #[test]
    fn a_vote_for_a_vertex_outside_its_slot_is_evidence_and_a_right_vote_is_not() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..4);
        let leaders = b.leaders();
        let check = |ev: &Evidence| ev.verify(b.validators(), b.network(), &leaders);
        let leader_vertex = |slot: Round| b.vertex(slot, leaders.leader(slot)).clone();
        // The vertex of slot 2 voted for slot 1 (another round): a wrong vote.
        let wrong_round = b.vote_evidence(3, 1, &leader_vertex(2));
        assert_eq!(check(&wrong_round), Ok(()));
        assert_eq!(wrong_round.offender(), 3);
        assert_eq!(wrong_round.kind(), "wrong vote");
        // A vertex of the slot's round by another author than its leader: wrong too.
        let other_author = (leaders.leader(2) + 1) % 4;
        let not_leader = b.vote_evidence(3, 2, b.vertex(2, other_author));
        assert_eq!(check(&not_leader), Ok(()));
        // The slot's own leader vertex: nothing wrong with voting for it.
        let right = b.vote_evidence(3, 2, &leader_vertex(2));
        assert_eq!(check(&right), Err(EvidenceError::RightVote { slot: 2 }));
        // The response must name the vertex, and must be the voter's own signature.
        let Evidence::WrongVote { response, vertex } = wrong_round.clone() else {
            unreachable!()
        };
        let unrelated = Evidence::WrongVote {
            response: response.clone(),
            vertex: b.vertex(3, 0).clone(),
        };
        assert!(matches!(
            check(&unrelated),
            Err(EvidenceError::NoSuchVote(_))
        ));
        let mut framed = response.clone();
        framed.votes.voter = 2;
        let framed = Evidence::WrongVote {
            response: framed,
            vertex: vertex.clone(),
        };
        assert!(matches!(check(&framed), Err(EvidenceError::Response(_))));
        let mut other_epoch = response;
        other_epoch.votes.epoch = 1;
        let other_epoch = Evidence::WrongVote {
            response: other_epoch,
            vertex,
        };
        assert_eq!(
            check(&other_epoch),
            Err(EvidenceError::EpochMismatch {
                response: 1,
                vertex: 0
            })
        );
        // Round trip.
        let back = Evidence::from_canonical_bytes(&wrong_round.to_canonical_bytes()).unwrap();
        assert_eq!(back, wrong_round);
    }
}
