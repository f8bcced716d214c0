//! Evidence of misbehaviour that anyone holding the validator set can check.

use std::sync::Arc;

use dualchain_core::crypto::NetworkId;
use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader};
use dualchain_core::types::{ValidatorIndex, ValidatorSet, Vertex, vertex_limits};

/// Provable misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Two different vertices signed by one author for the same chain, epoch and round.
    Equivocation {
        first: Arc<Vertex>,
        second: Arc<Vertex>,
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
}

impl Evidence {
    /// The validator the evidence accuses.
    pub fn offender(&self) -> ValidatorIndex {
        match self {
            Evidence::Equivocation { first, .. } => first.content().author,
        }
    }

    /// The chain whose vertices the evidence holds.
    pub fn chain(&self) -> dualchain_core::types::ChainId {
        match self {
            Evidence::Equivocation { first, .. } => first.content().chain,
        }
    }

    /// Checks the evidence: both vertices verify under `validators` of `network`
    /// (signatures included) and occupy the same slot with different digests.
    pub fn verify(
        &self,
        validators: &ValidatorSet,
        network: NetworkId,
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
        }
    }
}

const TAG_EQUIVOCATION: u8 = 0;

impl Encode for Evidence {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Evidence::Equivocation { first, second } => {
                out.push(TAG_EQUIVOCATION);
                first.encode_to(out);
                second.encode_to(out);
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
        assert_eq!(ev.verify(b.validators(), b.network()), Ok(()));
        assert_eq!(ev.offender(), 3);
        let same = Evidence::Equivocation {
            first: first.clone(),
            second: first.clone(),
        };
        assert_eq!(
            same.verify(b.validators(), b.network()),
            Err(EvidenceError::SameVertex)
        );
        let other_slot = Evidence::Equivocation {
            first,
            second: b.vertex(1, 2).clone(),
        };
        assert_eq!(
            other_slot.verify(b.validators(), b.network()),
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
        back.verify(b.validators(), b.network()).unwrap();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Evidence::from_canonical_bytes(&bytes[..cut]).is_err());
        }
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert!(Evidence::from_canonical_bytes(&unknown).is_err());
    }
}
