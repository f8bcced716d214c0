use crate::crypto::ValidatorPublicKey;
use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_vec};

/// Position of a validator in its epoch's set (0-based).
pub type ValidatorIndex = u16;

/// Upper bound on the size of a validator set (the operator allows 1..=200).
pub const MAX_VALIDATORS: usize = 512;

/// One member of a validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    pub index: ValidatorIndex,
    pub public_key: ValidatorPublicKey,
    /// Voting weight; every quorum is counted in stake, not in heads.
    pub stake: u64,
}

impl Encode for ValidatorInfo {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.index.encode_to(out);
        self.public_key.encode_to(out);
        self.stake.encode_to(out);
    }
}

impl Decode for ValidatorInfo {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            index: r.read_u16("validator index")?,
            public_key: Decode::decode_from(r)?,
            stake: r.read_u64("stake")?,
        })
    }
}

/// Why a validator set is not usable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("a validator set holds at most {MAX_VALIDATORS} validators, got {0}")]
    TooMany(usize),
    #[error(
        "validator at position {position} has index {index}; indices must be 0, 1, 2, … in order"
    )]
    BadIndex {
        position: usize,
        index: ValidatorIndex,
    },
    #[error("validator {0} has zero stake")]
    ZeroStake(ValidatorIndex),
    #[error("validators {0} and {1} share a public key")]
    DuplicateKey(ValidatorIndex, ValidatorIndex),
    #[error("total stake overflows u64")]
    StakeOverflow,
}

/// The validators of one epoch, with stake-weighted quorum arithmetic.
///
/// With total stake `n` the set tolerates `f = ⌊(n-1)/3⌋` stake of faulty validators;
/// a quorum is `n - f` (that is 2f+1 when `n = 3f+1`), so any two quorums intersect in
/// at least `f+1` stake, hence in at least one honest validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    epoch: u64,
    validators: Vec<ValidatorInfo>,
    total_stake: u64,
}

impl ValidatorSet {
    /// Builds a set from `(public key, stake)` pairs; indices follow the given order.
    pub fn new(
        epoch: u64,
        members: impl IntoIterator<Item = (ValidatorPublicKey, u64)>,
    ) -> Result<Self, ValidatorSetError> {
        let validators = members
            .into_iter()
            .enumerate()
            .map(|(i, (public_key, stake))| ValidatorInfo {
                index: i as ValidatorIndex,
                public_key,
                stake,
            })
            .collect::<Vec<_>>();
        Self::from_validators(epoch, validators)
    }

    fn from_validators(
        epoch: u64,
        validators: Vec<ValidatorInfo>,
    ) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany(validators.len()));
        }
        let mut total: u64 = 0;
        // Keyed by the key bytes: `PublicKey` caches its expanded form inside.
        let mut seen = std::collections::HashMap::new();
        for (position, v) in validators.iter().enumerate() {
            if usize::from(v.index) != position {
                return Err(ValidatorSetError::BadIndex {
                    position,
                    index: v.index,
                });
            }
            if v.stake == 0 {
                return Err(ValidatorSetError::ZeroStake(v.index));
            }
            if let Some(other) = seen.insert(v.public_key.as_bytes(), v.index) {
                return Err(ValidatorSetError::DuplicateKey(other, v.index));
            }
            total = total
                .checked_add(v.stake)
                .ok_or(ValidatorSetError::StakeOverflow)?;
        }
        Ok(Self {
            epoch,
            validators,
            total_stake: total,
        })
    }

    /// This set, with each member's public key that `known` holds too (equal bytes)
    /// taken from `known`. A key decoded from a record verifies as ML-DSA-87; one the
    /// process built itself may carry another verifier (the whole-node simulator's
    /// keyed-hash signatures), which a set read back from the chain keeps this way.
    /// The bytes, and so the set's encoding and digest, do not change.
    pub fn with_known_keys(mut self, known: &ValidatorSet) -> Self {
        for member in &mut self.validators {
            if let Some(key) = known.member_key(&member.public_key) {
                member.public_key = key.clone();
            }
        }
        self
    }

    /// The key object this set holds for `key` (equal bytes), if `key` is a member.
    pub fn member_key(&self, key: &ValidatorPublicKey) -> Option<&ValidatorPublicKey> {
        self.validators
            .iter()
            .map(|v| &v.public_key)
            .find(|member| *member == key)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn validators(&self) -> &[ValidatorInfo] {
        &self.validators
    }

    pub fn get(&self, index: ValidatorIndex) -> Option<&ValidatorInfo> {
        self.validators.get(usize::from(index))
    }

    /// The index of the validator holding `key`, if it is a member.
    pub fn index_of(&self, key: &ValidatorPublicKey) -> Option<ValidatorIndex> {
        self.validators
            .iter()
            .find(|v| &v.public_key == key)
            .map(|v| v.index)
    }

    pub fn total_stake(&self) -> u64 {
        self.total_stake
    }

    /// Stake that may be faulty without breaking safety: ⌊(total-1)/3⌋.
    pub fn max_faulty_stake(&self) -> u64 {
        (self.total_stake - 1) / 3
    }

    /// Stake needed for a quorum (2f+1 with equal stakes).
    pub fn quorum_stake(&self) -> u64 {
        self.total_stake - self.max_faulty_stake()
    }

    /// Stake that guarantees at least one honest member (f+1 with equal stakes).
    pub fn validity_stake(&self) -> u64 {
        self.max_faulty_stake() + 1
    }

    /// Sum of the stakes of `indices` (unknown indices count zero; duplicates count once
    /// only if the caller deduplicates — certificates enforce strictly increasing indices).
    pub fn stake_of(&self, indices: impl IntoIterator<Item = ValidatorIndex>) -> u64 {
        indices
            .into_iter()
            .filter_map(|i| self.get(i))
            .map(|v| v.stake)
            .sum()
    }
}

impl Encode for ValidatorSet {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.epoch.encode_to(out);
        write_vec(out, &self.validators);
    }
}

impl Decode for ValidatorSet {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let epoch = r.read_u64("epoch")?;
        let validators = r.read_vec(MAX_VALIDATORS, 2 + 2592 + 8, "validator set")?;
        Self::from_validators(epoch, validators).map_err(|e| DecodeError::Invalid {
            what: "validator set",
            detail: e.to_string(),
        })
    }
}

impl Canonical for ValidatorSet {
    const NAME: &'static str = "validator set";
    const MAX_ENCODED_LEN: usize = 1 + 8 + 4 + MAX_VALIDATORS * (2 + 2592 + 8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ValidatorKeypair;

    pub(crate) fn keys(n: usize) -> Vec<ValidatorPublicKey> {
        (0..n)
            .map(|i| ValidatorKeypair::from_seed(&[i as u8; 32]).public().clone())
            .collect()
    }

    #[test]
    fn quorum_arithmetic_for_equal_stakes() {
        for (n, f) in [(1, 0), (3, 0), (4, 1), (7, 2), (10, 3), (100, 33)] {
            let set = ValidatorSet::new(0, keys(n).into_iter().map(|k| (k, 1))).unwrap();
            assert_eq!(set.max_faulty_stake(), f, "n = {n}");
            assert_eq!(set.quorum_stake(), n as u64 - f, "n = {n}");
            // Two quorums always intersect in more than f stake.
            assert!(2 * set.quorum_stake() > set.total_stake() + set.max_faulty_stake());
        }
    }

    #[test]
    fn invalid_sets_are_refused() {
        assert_eq!(ValidatorSet::new(0, []), Err(ValidatorSetError::Empty));
        let k = keys(2);
        assert_eq!(
            ValidatorSet::new(0, [(k[0].clone(), 1), (k[0].clone(), 1)]),
            Err(ValidatorSetError::DuplicateKey(0, 1))
        );
        assert_eq!(
            ValidatorSet::new(0, [(k[0].clone(), 1), (k[1].clone(), 0)]),
            Err(ValidatorSetError::ZeroStake(1))
        );
        assert_eq!(
            ValidatorSet::new(0, [(k[0].clone(), u64::MAX), (k[1].clone(), 1)]),
            Err(ValidatorSetError::StakeOverflow)
        );
    }

    #[test]
    fn canonical_round_trip_and_lookup() {
        let set = ValidatorSet::new(7, keys(4).into_iter().zip([1, 2, 3, 4])).unwrap();
        let bytes = set.to_canonical_bytes();
        let back = ValidatorSet::from_canonical_bytes(&bytes).unwrap();
        assert_eq!(back, set);
        assert_eq!(back.index_of(&keys(4)[2]), Some(2));
        assert_eq!(back.stake_of([0, 3]), 5);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            ValidatorSet::from_canonical_bytes(&trailing),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }
}
