//! Evidence of misbehaviour that anyone holding the validator set can check.

use std::sync::Arc;

use dualchain_core::types::{ValidatorIndex, ValidatorSet, Vertex};

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

    /// Checks the evidence: both vertices verify under `validators` (signatures
    /// included) and occupy the same slot with different digests.
    pub fn verify(&self, validators: &ValidatorSet) -> Result<(), EvidenceError> {
        match self {
            Evidence::Equivocation { first, second } => {
                if first.digest() == second.digest() {
                    return Err(EvidenceError::SameVertex);
                }
                let (a, b) = (first.content(), second.content());
                if (a.chain, a.epoch, a.round, a.author) != (b.chain, b.epoch, b.round, b.author) {
                    return Err(EvidenceError::DifferentSlots);
                }
                first.verify(validators)?;
                second.verify(validators)?;
                Ok(())
            }
        }
    }
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
        assert_eq!(ev.verify(b.validators()), Ok(()));
        assert_eq!(ev.offender(), 3);
        let same = Evidence::Equivocation {
            first: first.clone(),
            second: first.clone(),
        };
        assert_eq!(same.verify(b.validators()), Err(EvidenceError::SameVertex));
        let other_slot = Evidence::Equivocation {
            first,
            second: b.vertex(1, 2).clone(),
        };
        assert_eq!(
            other_slot.verify(b.validators()),
            Err(EvidenceError::DifferentSlots)
        );
    }
}
