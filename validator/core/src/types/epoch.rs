//! Epochs: where one validator set ends and the next begins, the Alpha records that
//! change the set, and the chain of sets a newcomer verifies from genesis.
//!
//! An epoch is a fixed number of Alpha blocks ([`EpochSchedule`], the genesis'
//! `epoch_length_alpha_blocks`). Alpha is the source of truth: its boundary block (the
//! last of an epoch) fixes the next epoch's [`ValidatorSet`] from the current one and
//! the [`SetChange`]s requested during the epoch, and writes it as the `ValidatorSet`
//! record of the next epoch with a new [`EpochRecord`]. Delta learns the next set only
//! through an attestation of that record (certified by the set of the epoch that
//! ends), never through clocks. The same attestations, one per boundary, form the
//! [epoch chain](verify_epoch_chain) a joining validator checks from the genesis set.
//!
//! Determinism: [`next_validator_set`] is a pure function of the current set and the
//! changes in request order; members keep their relative order (so their indices move
//! only when someone before them leaves) and newcomers are appended in request order.

use crate::crypto::{
    AccountKeypair, AccountScheme, NetworkId, SigningDomain, ValidatorKeypair, ValidatorPublicKey,
    ValidatorSignature,
};
use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_vec};
use crate::hash::{Digest, HashDomain};

use super::account::Address;
use super::attestation::{Attestation, AttestationError};
use super::chain::ChainId;
use super::crosschain::{CrossChainOp, RecordKey, RecordKind};
use super::validator::{MAX_VALIDATORS, ValidatorSet, ValidatorSetError};

/// Set changes one epoch may collect (requests beyond it are refused until the
/// boundary): bounds the pending record and the work of the boundary block.
pub const MAX_PENDING_SET_CHANGES: usize = 64;

/// Encoded length of a validator public key (ML-DSA-87).
const KEY_LEN: usize = 2592;

/// Where epochs start and end, in Alpha heights. Epoch `e` covers Alpha heights
/// `e·L + 1 ..= (e+1)·L`; its last block, `(e+1)·L`, is the boundary that fixes the
/// set of epoch `e + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    length: u64,
}

impl EpochSchedule {
    /// A schedule of `length` Alpha blocks per epoch (the genesis refuses zero).
    pub fn new(length: u64) -> Self {
        assert!(length > 0, "an epoch is at least one Alpha block");
        Self { length }
    }

    /// The epoch an Alpha block of `height` belongs to (the genesis block, height 0,
    /// to epoch 0).
    pub fn epoch_of(&self, height: u64) -> u64 {
        height.saturating_sub(1) / self.length
    }

    /// Whether the Alpha block of `height` ends its epoch.
    pub fn is_boundary(&self, height: u64) -> bool {
        height > 0 && height.is_multiple_of(self.length)
    }

    /// The boundary block of `epoch` (`None` past the end of the height range).
    pub fn boundary_of(&self, epoch: u64) -> Option<u64> {
        epoch.checked_add(1)?.checked_mul(self.length)
    }

    /// The first Alpha height of `epoch`.
    pub fn first_height_of(&self, epoch: u64) -> Option<u64> {
        epoch.checked_mul(self.length)?.checked_add(1)
    }
}

/// The `ValidatorSet` record of `epoch` (both chains keep one per epoch they know).
/// The seed of `epoch`'s leader schedule on a network with genesis digest `genesis`:
/// the genesis digest itself in epoch 0, then a hash of it and the epoch, the same on
/// every node of the network and on both chains.
pub fn epoch_seed(genesis: Digest, epoch: u64) -> Digest {
    if epoch == 0 {
        return genesis;
    }
    let mut h = HashDomain::EpochSeed.hasher();
    h.update(genesis.as_bytes());
    h.update(&epoch.to_be_bytes());
    Digest(*h.finalize().as_bytes())
}

pub fn validator_set_key(epoch: u64) -> RecordKey {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&epoch.to_be_bytes());
    RecordKey::new(RecordKind::ValidatorSet, id)
}

/// The record id of a validator's membership record: its key's id.
pub fn member_id(key: &ValidatorPublicKey) -> [u8; 32] {
    key.id().0
}

/// The digest of a validator set (what an [`EpochRecord`] commits to).
pub fn set_digest(set: &ValidatorSet) -> Digest {
    let mut h = HashDomain::RecordId.hasher();
    h.update(b"validator set");
    h.update(&set.to_canonical_bytes());
    Digest(*h.finalize().as_bytes())
}

/// The epoch a chain is in, as its `Epoch` record holds it. Both chains hold the same
/// record for the same epoch (Alpha writes it at its boundary, Delta when the next
/// set is attested), chained to the previous epoch's record by digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    pub epoch: u64,
    /// The first Alpha height of the epoch.
    pub alpha_start_height: u64,
    /// [`set_digest`] of the epoch's validator set.
    pub set: Digest,
    /// Digest of the previous epoch's record (zero for epoch 0).
    pub previous: Digest,
}

impl EpochRecord {
    /// The record of epoch 0.
    pub fn genesis(set: &ValidatorSet) -> Self {
        Self {
            epoch: 0,
            alpha_start_height: 1,
            set: set_digest(set),
            previous: Digest::ZERO,
        }
    }

    /// The record of the epoch after this one, run by `next`.
    pub fn successor(&self, next: &ValidatorSet, alpha_start_height: u64) -> Self {
        Self {
            epoch: self.epoch + 1,
            alpha_start_height,
            set: set_digest(next),
            previous: self.digest(),
        }
    }

    pub fn digest(&self) -> Digest {
        let mut h = HashDomain::RecordId.hasher();
        h.update(b"epoch record");
        h.update(&self.to_canonical_bytes());
        Digest(*h.finalize().as_bytes())
    }
}

impl Encode for EpochRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.epoch.encode_to(out);
        self.alpha_start_height.encode_to(out);
        self.set.encode_to(out);
        self.previous.encode_to(out);
    }
}

impl Decode for EpochRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            epoch: r.read_u64("epoch")?,
            alpha_start_height: r.read_u64("epoch start height")?,
            set: Decode::decode_from(r)?,
            previous: Decode::decode_from(r)?,
        })
    }
}

impl Canonical for EpochRecord {
    const NAME: &'static str = "epoch record";
    const MAX_ENCODED_LEN: usize = 1 + 8 + 8 + 32 + 32;
}

/// The lock a join request names when governance admitted its key
/// (`GovernanceChange::AdmitValidator`): no lock, no bond, the admitted stake.
pub const ADMITTED_LOCK: Digest = Digest::ZERO;

/// A change of the validator set requested during an epoch, applied at its boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetChange {
    /// `key` joins with the stake of `owner`'s sAX lock `lock` (bonded until it
    /// leaves), or, with `lock` = [`ADMITTED_LOCK`], with the stake governance
    /// admitted it with.
    Join {
        key: ValidatorPublicKey,
        owner: Address,
        lock: Digest,
        stake: u64,
    },
    /// `key` leaves the set (its own request, or governance's).
    Leave { key: ValidatorPublicKey },
    /// Member `key`'s stake becomes `stake` (governance only).
    Stake { key: ValidatorPublicKey, stake: u64 },
}

impl SetChange {
    pub fn key(&self) -> &ValidatorPublicKey {
        match self {
            SetChange::Join { key, .. }
            | SetChange::Leave { key }
            | SetChange::Stake { key, .. } => key,
        }
    }
}

impl Encode for SetChange {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            SetChange::Join {
                key,
                owner,
                lock,
                stake,
            } => {
                out.push(0);
                key.encode_to(out);
                owner.encode_to(out);
                lock.encode_to(out);
                stake.encode_to(out);
            }
            SetChange::Leave { key } => {
                out.push(1);
                key.encode_to(out);
            }
            SetChange::Stake { key, stake } => {
                out.push(2);
                key.encode_to(out);
                stake.encode_to(out);
            }
        }
    }
}

impl Decode for SetChange {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8("set change")? {
            0 => SetChange::Join {
                key: Decode::decode_from(r)?,
                owner: Decode::decode_from(r)?,
                lock: Decode::decode_from(r)?,
                stake: r.read_u64("stake")?,
            },
            1 => SetChange::Leave {
                key: Decode::decode_from(r)?,
            },
            2 => SetChange::Stake {
                key: Decode::decode_from(r)?,
                stake: r.read_u64("stake")?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "set change",
                    tag,
                });
            }
        })
    }
}

/// The set changes requested in the current epoch, in request order (Alpha's
/// `PendingSetChanges` record; absent when there are none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingSetChanges(pub Vec<SetChange>);

impl Encode for PendingSetChanges {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_vec(out, &self.0);
    }
}

impl Decode for PendingSetChanges {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.read_vec(
            MAX_PENDING_SET_CHANGES,
            1 + KEY_LEN,
            "pending set changes",
        )?))
    }
}

impl Canonical for PendingSetChanges {
    const NAME: &'static str = "pending set changes";
    const MAX_ENCODED_LEN: usize = 1 + 4 + MAX_PENDING_SET_CHANGES * (1 + KEY_LEN + 32 + 32 + 8);
}

/// A validator that joined with a lock (Alpha's `Member` record, keyed by
/// [`member_id`]): the lock stays bonded, and cannot be released, while it is a
/// member. Genesis validators have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub owner: Address,
    pub lock: Digest,
}

impl Encode for MemberRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.owner.encode_to(out);
        self.lock.encode_to(out);
    }
}

impl Decode for MemberRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            owner: Decode::decode_from(r)?,
            lock: Decode::decode_from(r)?,
        })
    }
}

impl Canonical for MemberRecord {
    const NAME: &'static str = "member record";
    const MAX_ENCODED_LEN: usize = 1 + 32 + 32;
}

/// Which request a validator key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetChangeKind {
    Join,
    Leave,
}

/// Derive-key context of a validator's set-change account.
pub const SET_CHANGE_ACCOUNT_CONTEXT: &str = "dualchain 2026-12 validator set-change account v1";

/// The account a validator's own leave request is sent from: an ML-DSA-44 key
/// derived from the validator key, so whoever holds the validator key (the node, its
/// operator) can send it without a funded account. Alpha admits a `ValidatorLeave`
/// with no fee from an account that does not exist yet, because its proof is checked
/// at admission: only a member's key can make one.
pub fn set_change_keypair(validator: &ValidatorKeypair) -> AccountKeypair {
    validator.derive::<AccountScheme>(SET_CHANGE_ACCOUNT_CONTEXT)
}

/// What a validator's key signs to ask for a set change: the request kind, the
/// account sending it, the lock (joins) and the epoch it is made in. The epoch makes a
/// signed request single-use: replayed in a later epoch it no longer verifies.
pub fn set_change_message(
    kind: SetChangeKind,
    sender: &Address,
    lock: Option<&Digest>,
    epoch: u64,
) -> Digest {
    let mut h = HashDomain::RecordId.hasher();
    h.update(match kind {
        SetChangeKind::Join => b"join ",
        SetChangeKind::Leave => b"leave",
    });
    h.update(sender.as_bytes());
    h.update(lock.map_or(&[0u8; 32], |l| l.as_bytes()));
    h.update(&epoch.to_le_bytes());
    Digest(*h.finalize().as_bytes())
}

/// `key`'s own request, sent by `sender` in Alpha's `epoch`, to join the set with
/// `sender`'s lock `lock` as its stake or, without a lock, to leave it: the operation
/// with `key`'s signature over [`set_change_message`] on `network`.
pub fn set_change_op(
    network: NetworkId,
    key: &ValidatorKeypair,
    sender: &Address,
    lock: Option<Digest>,
    epoch: u64,
) -> CrossChainOp {
    let kind = match lock {
        Some(_) => SetChangeKind::Join,
        None => SetChangeKind::Leave,
    };
    let message = set_change_message(kind, sender, lock.as_ref(), epoch);
    let proof = key.sign(
        SigningDomain::ValidatorSetChange.on(network),
        message.as_bytes(),
    );
    let key = key.public().clone();
    match lock {
        Some(lock) => CrossChainOp::ValidatorJoin { key, lock, proof },
        None => CrossChainOp::ValidatorLeave { key, proof },
    }
}

/// Checks that `key` signed a set-change request of `kind` for this network.
pub fn verify_set_change(
    network: NetworkId,
    key: &ValidatorPublicKey,
    message: &Digest,
    proof: &ValidatorSignature,
) -> bool {
    key.verify(
        SigningDomain::ValidatorSetChange.on(network),
        message.as_bytes(),
        proof,
    )
    .is_ok()
}

/// The set of epoch `current.epoch() + 1`: `current` with `changes` applied in order.
/// Leaves and stake changes of non-members and joins of members are skipped
/// (admission refuses them, so only a stale request meets them); a change list that
/// would empty the set keeps its last member; a stake of zero is skipped.
pub fn next_validator_set(
    current: &ValidatorSet,
    changes: &[SetChange],
) -> Result<ValidatorSet, ValidatorSetError> {
    let mut members: Vec<(ValidatorPublicKey, u64)> = current
        .validators()
        .iter()
        .map(|v| (v.public_key.clone(), v.stake))
        .collect();
    for change in changes {
        let position = members.iter().position(|(key, _)| key == change.key());
        match (change, position) {
            (SetChange::Join { key, stake, .. }, None) if members.len() < MAX_VALIDATORS => {
                members.push((key.clone(), *stake));
            }
            (SetChange::Leave { .. }, Some(at)) if members.len() > 1 => {
                members.remove(at);
            }
            (SetChange::Stake { stake, .. }, Some(at)) if *stake > 0 => {
                members[at].1 = *stake;
            }
            _ => {}
        }
    }
    ValidatorSet::new(current.epoch() + 1, members)
}

/// Why an epoch chain does not lead from the genesis set to a current one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EpochChainError {
    #[error("link {link}: not this chain's record of the validator set of epoch {expected}")]
    NotTheNextSet { link: usize, expected: u64 },
    #[error("link {link}: certified by epoch {got}, expected epoch {expected}")]
    WrongEpoch {
        link: usize,
        expected: u64,
        got: u64,
    },
    #[error("link {link}: the record is not a validator set: {detail}")]
    BadSet { link: usize, detail: String },
    #[error("link {link}: {source}")]
    Unproven {
        link: usize,
        #[source]
        source: AttestationError,
    },
}

/// Verifies an epoch chain: link `i` is an attestation of Alpha's `ValidatorSet`
/// record of epoch `i + 1`, in a block of epoch `i` certified by a quorum of that
/// epoch's set (starting from `genesis_set`). Returns the newest set. What a validator
/// joining a running network checks before it trusts any certificate of the present.
pub fn verify_epoch_chain(
    network: NetworkId,
    genesis_set: &ValidatorSet,
    links: &[Attestation],
) -> Result<ValidatorSet, EpochChainError> {
    verify_epoch_chain_of(ChainId::Alpha, network, genesis_set, links)
}

/// [`verify_epoch_chain`] over the set records of `chain`: Delta holds the same sets
/// (each from an attestation of Alpha's record, applied by a Delta block of the epoch
/// before, which that epoch's set certified), so a node bootstrapping its Delta chain
/// alone verifies Delta's own links.
pub fn verify_epoch_chain_of(
    chain: ChainId,
    network: NetworkId,
    genesis_set: &ValidatorSet,
    links: &[Attestation],
) -> Result<ValidatorSet, EpochChainError> {
    let mut set = genesis_set.clone();
    for (link, attestation) in links.iter().enumerate() {
        let expected = set.epoch() + 1;
        let key = validator_set_key(expected).state_key();
        if attestation.source() != chain || attestation.key != key {
            return Err(EpochChainError::NotTheNextSet { link, expected });
        }
        if attestation.header.epoch != set.epoch() {
            return Err(EpochChainError::WrongEpoch {
                link,
                expected: set.epoch(),
                got: attestation.header.epoch,
            });
        }
        attestation
            .verify_against(&set, network)
            .map_err(|source| EpochChainError::Unproven { link, source })?;
        let next = ValidatorSet::from_canonical_bytes(&attestation.value).map_err(|e| {
            EpochChainError::BadSet {
                link,
                detail: e.to_string(),
            }
        })?;
        if next.epoch() != expected {
            return Err(EpochChainError::BadSet {
                link,
                detail: format!("the set names epoch {}", next.epoch()),
            });
        }
        set = next;
    }
    Ok(set)
}

#[cfg(test)]
#[path = "epoch_tests.rs"]
mod tests;
