//! Epochs in the record state: validator join and leave requests on Alpha, the
//! boundary block that fixes the next epoch's set, and Delta taking that set from its
//! attestation.
//!
//! - **Join** (`ValidatorJoin`, Alpha): the validator key signs
//!   `set_change_message(Join, sender, lock, epoch)`; the sender's held lock of at
//!   least `min_validator_stake` becomes the stake and is bonded (a `Bond` record;
//!   an attested unlock cannot release it while it backs a member or a request).
//! - **Leave** (`ValidatorLeave`, Alpha): the member's key signs the request; the set
//!   never empties.
//! - **Governance** ([`govern`], [`admit`], Alpha): a passed proposal attested from
//!   Delta takes a member out or sets its stake (its quorum weight) at the next
//!   boundary, under the same limits as a request (a re-weighted member's lock stays
//!   bonded as it was), or admits a key by id: its holder then joins without a lock
//!   (`lock` = [`ADMITTED_LOCK`]) with the admitted stake, and no bond.
//! - **Boundary** ([`close_epoch`], the executor calls it after the transactions of
//!   Alpha's boundary block): the next set is `next_validator_set(current, pending)`,
//!   written as the `ValidatorSet` record of the next epoch with the next
//!   [`EpochRecord`]; joined members get `Member` records, leavers lose theirs and
//!   their lock's bond.
//! - **Delta** ([`set_attested`]): an attested Alpha `ValidatorSet` record of the epoch
//!   after Delta's current one becomes Delta's record of that set, with the same
//!   `EpochRecord` Alpha wrote; out-of-order sets are refused (and can be relayed
//!   again once their predecessor applied).
//!
//! Requests are limited per epoch ([`MAX_PENDING_SET_CHANGES`]) and the pending record
//! is one bounded value, so the boundary block does bounded work. Both chains look up
//! an attestation's certifying set in their own `ValidatorSet` records
//! ([`validator_set`]), so certificates of later epochs verify as soon as the chain
//! knows the epoch, and never before.

use dualchain_core::crypto::{ValidatorPublicKey, ValidatorSignature};
use dualchain_core::encoding::Canonical;
use dualchain_core::hash::Digest;
use dualchain_core::types::{
    ADMITTED_LOCK, CrossChainEvent, CrossChainFailure, EpochRecord, EpochSchedule, LockRecord,
    LockStatus, MAX_PENDING_SET_CHANGES, MAX_VALIDATORS, MemberRecord, PendingSetChanges,
    RecordKey, RecordKind, SetChange, SetChangeKind, ValidatorSet, member_id, next_validator_set,
    set_change_message, validator_set_key, verify_set_change,
};

use crate::crosschain::{CrossChainEnv, RecordRead, Staged, Step};
use crate::state::StateError;

use CrossChainFailure as F;

fn epoch_key() -> RecordKey {
    RecordKey::singleton(RecordKind::Epoch)
}

fn pending_key() -> RecordKey {
    RecordKey::singleton(RecordKind::PendingSetChanges)
}

fn bond_key(lock: &Digest) -> RecordKey {
    RecordKey::new(RecordKind::Bond, lock.0)
}

fn admission_key(member: &Digest) -> RecordKey {
    RecordKey::new(RecordKind::Admission, member.0)
}

/// The validator set of `epoch` as this chain's records hold it.
pub fn validator_set(
    records: &impl RecordRead,
    epoch: u64,
) -> Result<Option<ValidatorSet>, StateError> {
    recorded_set(&Staged::new(records), epoch)
}

/// The committed epoch record of a chain and the validator set it names: what the
/// chain's consensus runs (a node reads it when it opens a chain, and after each
/// block that ended an epoch).
pub fn committed_epoch<E: dualchain_storage::KvEngine>(
    cache: &crate::StateCache<E>,
) -> Result<(EpochRecord, ValidatorSet), StateError> {
    current(&Staged::new(&crate::records::RecordBlock::new(cache)))
}

/// Alpha: the keys of the current set's members and of the validators whose joins
/// wait for the next boundary, from committed state. Transports admit them before
/// the boundary, so a joiner can follow the chains and be ready to vote when its
/// epoch starts (its request is backed by a bonded lock, so admission costs stake).
pub fn committed_members_and_joiners<E: dualchain_storage::KvEngine>(
    cache: &crate::StateCache<E>,
) -> Result<Vec<ValidatorPublicKey>, StateError> {
    let records = crate::records::RecordBlock::new(cache);
    let tx = Staged::new(&records);
    let (_, set) = current(&tx)?;
    let joins = pending(&tx)?
        .0
        .into_iter()
        .filter_map(|change| match change {
            SetChange::Join { key, .. } => Some(key),
            SetChange::Leave { .. } | SetChange::Stake { .. } => None,
        });
    let mut keys: Vec<ValidatorPublicKey> = set
        .validators()
        .iter()
        .map(|v| v.public_key.clone())
        .collect();
    keys.extend(joins);
    Ok(keys)
}

/// The validator set of `epoch` in a chain's committed records.
pub fn committed_set<E: dualchain_storage::KvEngine>(
    cache: &crate::StateCache<E>,
    epoch: u64,
) -> Result<Option<ValidatorSet>, StateError> {
    validator_set(&crate::records::RecordBlock::new(cache), epoch)
}

/// The epoch a block's events say the chain entered (`epoch_boundary_reached`), if any.
pub fn entered_epoch(events: &[dualchain_core::types::TxEvent]) -> Option<u64> {
    events.iter().find_map(|e| match e.event {
        CrossChainEvent::EpochBoundaryReached { epoch, .. } => Some(epoch),
        _ => None,
    })
}

/// [`validator_set`] as one operation's staged view sees it.
pub(crate) fn recorded_set(
    tx: &Staged<'_, impl RecordRead>,
    epoch: u64,
) -> Result<Option<ValidatorSet>, StateError> {
    tx.decode(&validator_set_key(epoch))
}

/// The chain's current epoch record and its validator set. Every chain's genesis
/// writes both; a chain without them has corrupt state.
fn current(tx: &Staged<'_, impl RecordRead>) -> Result<(EpochRecord, ValidatorSet), StateError> {
    let record: EpochRecord = tx
        .decode(&epoch_key())?
        .ok_or_else(|| StateError::Corrupt("the chain has no epoch record".into()))?;
    let set = recorded_set(tx, record.epoch)?.ok_or_else(|| {
        StateError::Corrupt(format!(
            "the chain has no validator set for its epoch {}",
            record.epoch
        ))
    })?;
    Ok((record, set))
}

fn pending(tx: &Staged<'_, impl RecordRead>) -> Result<PendingSetChanges, StateError> {
    Ok(tx.decode(&pending_key())?.unwrap_or_default())
}

/// The pending list, if it has room for one more change of `key` (none pending for
/// it already).
fn pending_for(
    tx: &Staged<'_, impl RecordRead>,
    key: &ValidatorPublicKey,
) -> Result<Result<PendingSetChanges, F>, StateError> {
    let pending = pending(tx)?;
    if pending.0.iter().any(|change| change.key() == key) {
        return Ok(Err(F::ChangeAlreadyPending));
    }
    if pending.0.len() >= MAX_PENDING_SET_CHANGES {
        return Ok(Err(F::TooManySetChanges));
    }
    Ok(Ok(pending))
}

fn put_pending(tx: &mut Staged<'_, impl RecordRead>, pending: &PendingSetChanges) {
    if pending.0.is_empty() {
        tx.delete(pending_key());
    } else {
        tx.put(pending_key(), pending.to_canonical_bytes());
    }
}

/// Members after the pending changes, counted (joins add, leaves remove).
fn size_after(set: &ValidatorSet, pending: &PendingSetChanges) -> usize {
    pending.0.iter().fold(set.len(), |n, change| match change {
        SetChange::Join { .. } => n + 1,
        SetChange::Leave { .. } => n.saturating_sub(1),
        SetChange::Stake { .. } => n,
    })
}

/// `key` as this process holds it: the genesis set's key of equal bytes if there is
/// one (see [`ValidatorSet::with_known_keys`]: the same key, whose verifier may be the
/// whole-node simulator's), else `key` as decoded.
fn known_key<'k>(
    env: &'k CrossChainEnv<'_>,
    key: &'k ValidatorPublicKey,
) -> &'k ValidatorPublicKey {
    (env.source_sets)(0)
        .and_then(|genesis| genesis.member_key(key))
        .unwrap_or(key)
}

/// Alpha: `key` asks to join at the next boundary with the sender's `lock` as stake.
pub(crate) fn join(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    key: &ValidatorPublicKey,
    lock: Digest,
    proof: &ValidatorSignature,
) -> Step {
    let (epoch, set) = current(tx)?;
    let message = set_change_message(SetChangeKind::Join, &env.sender, Some(&lock), epoch.epoch);
    if !verify_set_change(env.network, known_key(env, key), &message, proof) {
        return Ok(Err(F::BadSetChangeProof));
    }
    let mut pending = pending(tx)?;
    if set.index_of(key).is_some() {
        return Ok(Err(F::AlreadyValidator));
    }
    if pending.0.iter().any(|change| change.key() == key) {
        return Ok(Err(F::ChangeAlreadyPending));
    }
    if pending.0.len() >= MAX_PENDING_SET_CHANGES || size_after(&set, &pending) >= MAX_VALIDATORS {
        return Ok(Err(F::TooManySetChanges));
    }
    let stake = if lock == ADMITTED_LOCK {
        match admitted_stake(tx, key)? {
            Some(stake) => stake,
            None => return Ok(Err(F::NotAdmitted)),
        }
    } else {
        match lock_stake(env, tx, lock)? {
            Ok(stake) => stake,
            Err(failure) => return Ok(Err(failure)),
        }
    };
    if lock != ADMITTED_LOCK {
        tx.put(bond_key(&lock), member_id(key).to_vec());
    }
    pending.0.push(SetChange::Join {
        key: key.clone(),
        owner: env.sender,
        lock,
        stake,
    });
    put_pending(tx, &pending);
    let event = CrossChainEvent::ValidatorJoinRequested {
        validator: key.id(),
        owner: env.sender,
        stake,
    };
    Ok(Ok((event, 0, None)))
}

/// The stake the sender's `lock` gives a join: a held lock of the sender's, not
/// bonded yet, of at least `min_validator_stake`.
fn lock_stake(
    env: &CrossChainEnv<'_>,
    tx: &Staged<'_, impl RecordRead>,
    lock: Digest,
) -> Result<Result<u64, F>, StateError> {
    let lock_key = RecordKey::new(RecordKind::Lock, lock.0);
    let Some(record) = tx.decode::<LockRecord>(&lock_key)? else {
        return Ok(Err(F::UnknownLock));
    };
    if record.owner != env.sender {
        return Ok(Err(F::NotLockOwner));
    }
    if record.status != LockStatus::Locked {
        return Ok(Err(F::AlreadyUnlocked));
    }
    if is_bonded(tx, &lock)? {
        return Ok(Err(F::LockBonded));
    }
    let min = env.params.min_validator_stake;
    if record.amount < min {
        return Ok(Err(F::StakeBelowMinimum {
            stake: record.amount,
            min,
        }));
    }
    Ok(Ok(record.amount))
}

/// The stake governance admitted `key` with, if it did (an admission is never of
/// zero stake, and a `u64` record is absent at zero).
fn admitted_stake(
    tx: &Staged<'_, impl RecordRead>,
    key: &ValidatorPublicKey,
) -> Result<Option<u64>, StateError> {
    let stake = tx.u64_record(&admission_key(&key.id()))?;
    Ok((stake > 0).then_some(stake))
}

/// Alpha: member `key` asks to leave at the next boundary.
pub(crate) fn leave(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    key: &ValidatorPublicKey,
    proof: &ValidatorSignature,
) -> Step {
    let (epoch, set) = current(tx)?;
    let message = set_change_message(SetChangeKind::Leave, &env.sender, None, epoch.epoch);
    if !verify_set_change(env.network, known_key(env, key), &message, proof) {
        return Ok(Err(F::BadSetChangeProof));
    }
    if set.index_of(key).is_none() {
        return Ok(Err(F::NotAValidator));
    }
    let mut pending = match pending_for(tx, key)? {
        Ok(pending) => pending,
        Err(failure) => return Ok(Err(failure)),
    };
    if size_after(&set, &pending) <= 1 {
        return Ok(Err(F::SetWouldBeEmpty));
    }
    pending.0.push(SetChange::Leave { key: key.clone() });
    put_pending(tx, &pending);
    let event = CrossChainEvent::ValidatorLeaveRequested {
        validator: key.id(),
    };
    Ok(Ok((event, 0, None)))
}

/// Alpha: a passed governance result asks member `member` (a key id) to leave
/// (`stake` None) or to weigh `stake` from the next boundary. Checked as a
/// validator's own request is — a member of this epoch, nothing else pending for its
/// key, room in the list, the set never emptied — and the next set must stay valid
/// (its total stake within u64), so one result cannot void the boundary's other
/// changes. On success the change is pending; the caller records the execution.
pub(crate) fn govern(
    tx: &mut Staged<'_, impl RecordRead>,
    member: &Digest,
    stake: Option<u64>,
) -> Result<Result<(), F>, StateError> {
    let (_, set) = current(tx)?;
    let Some(key) = set
        .validators()
        .iter()
        .map(|v| &v.public_key)
        .find(|key| key.id() == *member)
    else {
        return Ok(Err(F::NotAValidator));
    };
    let mut pending = match pending_for(tx, key)? {
        Ok(pending) => pending,
        Err(failure) => return Ok(Err(failure)),
    };
    let change = match stake {
        None if size_after(&set, &pending) <= 1 => return Ok(Err(F::SetWouldBeEmpty)),
        None => SetChange::Leave { key: key.clone() },
        Some(0) => return Ok(Err(F::BadGovernanceChange)),
        Some(stake) => SetChange::Stake {
            key: key.clone(),
            stake,
        },
    };
    pending.0.push(change);
    if next_validator_set(&set, &pending.0).is_err() {
        return Ok(Err(F::Overflow));
    }
    put_pending(tx, &pending);
    Ok(Ok(()))
}

/// Alpha: a passed governance result admits the key with id `member` to join
/// without a lock, with `stake` (the key's holder then sends the signed join). A
/// later admission of the same key replaces an earlier one; the join consumes it.
pub(crate) fn admit(
    tx: &mut Staged<'_, impl RecordRead>,
    member: &Digest,
    stake: u64,
) -> Result<Result<(), F>, StateError> {
    if stake == 0 {
        return Ok(Err(F::BadGovernanceChange));
    }
    let (_, set) = current(tx)?;
    let pending = pending(tx)?;
    let joining = pending.0.iter().filter_map(|change| match change {
        SetChange::Join { key, .. } => Some(key),
        _ => None,
    });
    let mut known = set
        .validators()
        .iter()
        .map(|v| &v.public_key)
        .chain(joining);
    if known.any(|key| key.id() == *member) {
        return Ok(Err(F::AlreadyValidator));
    }
    tx.put_u64(admission_key(member), stake);
    Ok(Ok(()))
}

/// Record writes in key order (`None` deletes).
pub type RecordWrites = std::collections::BTreeMap<RecordKey, Option<Vec<u8>>>;

/// Alpha, after the transactions of the boundary block of `height`: fixes the next
/// epoch's set and returns its record writes and the event of the boundary. Storage
/// errors abort the block.
pub fn close_epoch(
    records: &impl RecordRead,
    schedule: EpochSchedule,
    height: u64,
) -> Result<(RecordWrites, CrossChainEvent), StateError> {
    assert!(
        schedule.is_boundary(height),
        "only a boundary block closes an epoch"
    );
    let mut tx = Staged::new(records);
    let (epoch, set) = current(&tx)?;
    let changes = pending(&tx)?.0;
    let next = next_validator_set(&set, &changes).unwrap_or_else(|error| {
        // Only a total stake beyond u64 gets here: the epoch keeps its members.
        tracing::warn!(%error, "the requested set changes do not form a valid set; none applied");
        next_validator_set(&set, &[]).expect("the current set renumbered is valid")
    });
    for change in &changes {
        settle(&mut tx, change, &next)?;
    }
    let start = schedule
        .first_height_of(next.epoch())
        .ok_or_else(|| StateError::Corrupt("epoch numbers exhausted".into()))?;
    let record = epoch.successor(&next, start);
    tx.put(validator_set_key(next.epoch()), next.to_canonical_bytes());
    tx.put(epoch_key(), record.to_canonical_bytes());
    tx.delete(pending_key());
    let event = CrossChainEvent::EpochBoundaryReached {
        epoch: next.epoch(),
        validators: next.len() as u32,
        set: record.set,
    };
    Ok((tx.writes, event))
}

/// The membership and bond records of one applied (or skipped) change.
fn settle(
    tx: &mut Staged<'_, impl RecordRead>,
    change: &SetChange,
    next: &ValidatorSet,
) -> Result<(), StateError> {
    let id = member_id(change.key());
    let member_key = RecordKey::new(RecordKind::Member, id);
    match change {
        SetChange::Join { key, lock, .. } if *lock == ADMITTED_LOCK => {
            // Admitted by governance: no lock and no member record (as a genesis
            // validator); the admission is used up once the key is a member.
            if next.index_of(key).is_some() {
                tx.delete(admission_key(&Digest(id)));
            }
        }
        SetChange::Join {
            key, owner, lock, ..
        } => {
            if next.index_of(key).is_some() {
                let member = MemberRecord {
                    owner: *owner,
                    lock: *lock,
                };
                tx.put(member_key, member.to_canonical_bytes());
            } else {
                tx.delete(bond_key(lock));
            }
        }
        SetChange::Leave { key } => {
            if next.index_of(key).is_none()
                && let Some(member) = tx.decode::<MemberRecord>(&member_key)?
            {
                tx.delete(bond_key(&member.lock));
                tx.delete(member_key);
            }
        }
        // The member's lock stays bonded as it was; only its weight changed.
        SetChange::Stake { .. } => {}
    }
    Ok(())
}

/// Delta: Alpha's set of the epoch after Delta's current one, attested.
pub(crate) fn set_attested(
    tx: &mut Staged<'_, impl RecordRead>,
    schedule: EpochSchedule,
    value: &[u8],
) -> Step {
    let Ok(next) = ValidatorSet::from_canonical_bytes(value) else {
        return Ok(Err(F::UnattestableRecord));
    };
    let (epoch, _) = current(tx)?;
    if Some(next.epoch()) != epoch.epoch.checked_add(1) {
        return Ok(Err(F::EpochOutOfOrder));
    }
    let Some(start) = schedule.first_height_of(next.epoch()) else {
        return Ok(Err(F::Overflow));
    };
    let record = epoch.successor(&next, start);
    tx.put(validator_set_key(next.epoch()), value.to_vec());
    tx.put(epoch_key(), record.to_canonical_bytes());
    let event = CrossChainEvent::EpochBoundaryReached {
        epoch: next.epoch(),
        validators: next.len() as u32,
        set: record.set,
    };
    Ok(Ok((event, 0, None)))
}

/// Alpha: whether `lock` backs a validator or a join request (its release waits).
pub(crate) fn is_bonded(
    tx: &Staged<'_, impl RecordRead>,
    lock: &Digest,
) -> Result<bool, StateError> {
    Ok(tx.get(&bond_key(lock))?.is_some())
}

/// The genesis records of epochs on either chain: the set of epoch 0 and its epoch
/// record.
pub fn genesis_records(set: &ValidatorSet) -> [(RecordKey, Vec<u8>); 2] {
    [
        (validator_set_key(set.epoch()), set.to_canonical_bytes()),
        (epoch_key(), EpochRecord::genesis(set).to_canonical_bytes()),
    ]
}

#[cfg(test)]
#[path = "epochs_tests.rs"]
mod tests;
