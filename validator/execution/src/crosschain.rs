//! The cross-chain state machine: what each [`CrossChainOp`] does to the records of the
//! chain it runs on.
//!
//! [`apply`] is pure: it reads records through [`RecordRead`], the sender's sAX
//! balance and the block time from [`CrossChainEnv`], and returns either an
//! [`Effects`] (record writes, a debit of the sender, a credit of an owner, the event)
//! or the typed [`CrossChainFailure`] of the receipt. A failed operation changes no
//! record, so an attestation refused for a reason that can pass later (a time lock that
//! has not run out on this chain's clock) can be relayed again. The caller applies the
//! effects all together, after the fee and nonce, as for every transaction.
//!
//! The flows (ARCHITECTURE.md, "Cross-chain protocol"):
//! - **lock**: `SaxLock` on Alpha moves sAX from the sender's balance into a
//!   [`LockRecord`]; its attestation on Delta creates an active [`StakeRecord`] and
//!   adds the amount to the owner's voting weight and the total stake.
//! - **unlock**: `SaxUnlock` on Delta (owner only, after the time lock) turns the stake
//!   to `Unlocking` and removes its weight; that record attested on Alpha releases the
//!   lock (Alpha checks the time lock again on its own clock) and credits the owner;
//!   the release attested back on Delta marks the stake `Released`. Both chains then
//!   hold "over" for the lock.
//! - **governance**: `Propose`, `Vote` (weight = the voter's stake at the vote) and,
//!   after the deadline, `FinalizeProposal` on Delta, which checks quorum (of the total
//!   stake when the proposal opened) and threshold; a `Passed` proposal record attested
//!   on Alpha before its `execute_by_ms` sets the parameter record there.
//!
//! Every attestation is checked by [`Attestation::verify`] against this chain's records
//! (newest source height, consumed ids) and the source chain's validator sets; applying
//! one writes its `Consumed` record, so each attested record version acts once.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use dualchain_core::crypto::{NetworkId, ValidatorPublicKey, ValidatorSignature};
use dualchain_core::encoding::{Canonical, DecodeError};
use dualchain_core::hash::{Digest, HashDomain};
use dualchain_core::types::{
    Address, Attestation, AttestationContext, AttestationId, AttestationRefusal, CertificateCache,
    ChainId, CrossChainEvent, CrossChainFailure, CrossChainOp, EpochSchedule, GovernanceChange,
    GovernanceExecution, LockRecord, LockStatus, ParameterRecord, ProposalRecord, ProposalStatus,
    RecordKey, RecordKind, StakeRecord, StakeStatus, TxEvent, ValidatorSet, VoteRecord,
    decode_u64_record, is_attestable,
};
use dualchain_storage::KvEngine;

use crate::epochs;
use crate::records::{RecordBlock, RecordChanges};
use crate::state::{StateCache, StateError};

use CrossChainFailure as F;

pub use dualchain_core::types::CrossChainParams;

/// What every validator of a network uses to run cross-chain operations: the
/// parameters and the other chain's validator sets (from the genesis), and the cache
/// of verified certificates (which never changes a verdict, see `CertificateCache`).
pub struct CrossChainSetup {
    pub params: CrossChainParams,
    /// Source-chain sets known without the records (the genesis set). Later epochs'
    /// sets are read from the chain's own `ValidatorSet` records.
    pub source_sets: BTreeMap<u64, ValidatorSet>,
    /// Where Alpha's epochs end (the genesis' `epoch_length_alpha_blocks`).
    pub epochs: EpochSchedule,
    /// Whether `ValidatorJoin` runs (`ValidatorLeave` always does). A consensus rule,
    /// not only an API check (a proposer may skip admission). On by default: a joining
    /// validator (`dualchain run --join`) follows both chains by block sync or starts
    /// from a verified snapshot, and votes from its first epoch. Off, every join is
    /// refused with `JoinsNotAccepted` (a network that must keep its genesis set).
    pub accept_joins: bool,
    pub certificates: CertificateCache,
    /// The network whose certificates attestations must carry (the genesis hash).
    pub network: NetworkId,
}

impl CrossChainSetup {
    /// Certificates remembered by the cache.
    pub const CERTIFICATE_CACHE: usize = 1024;

    pub fn new(
        params: CrossChainParams,
        source_sets: BTreeMap<u64, ValidatorSet>,
        network: NetworkId,
    ) -> Self {
        Self {
            params,
            source_sets,
            epochs: EpochSchedule::new(DEFAULT_EPOCH_LENGTH),
            accept_joins: true,
            certificates: CertificateCache::new(Self::CERTIFICATE_CACHE),
            network,
        }
    }

    /// The same setup with epochs of `length` Alpha blocks (nodes pass the genesis').
    pub fn with_epoch_length(mut self, length: u64) -> Self {
        self.epochs = EpochSchedule::new(length);
        self
    }
}

/// Epoch length of a setup that does not name one (the genesis default).
pub const DEFAULT_EPOCH_LENGTH: u64 = dualchain_core::types::DEFAULT_EPOCH_LENGTH_ALPHA_BLOCKS;

/// One block's cross-chain context: its clock and its records overlay. The overlay is
/// behind a mutex because the parallel executor shares the rule context between
/// workers; every cross-chain transaction declares the same records slot, so they
/// all run in one group, in block order, and the lock is never contended.
pub struct CrossChainBlock<'a, E: KvEngine> {
    records: Mutex<RecordBlock<'a, E>>,
    pub now_ms: u64,
    pub setup: &'a CrossChainSetup,
}

impl<'a, E: KvEngine> CrossChainBlock<'a, E> {
    pub fn new(cache: &'a StateCache<E>, now_ms: u64, setup: &'a CrossChainSetup) -> Self {
        Self {
            records: Mutex::new(RecordBlock::new(cache)),
            now_ms,
            setup,
        }
    }

    pub fn records(&self) -> MutexGuard<'_, RecordBlock<'a, E>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The block's record changes (the overlay is empty afterwards).
    pub fn take_changes(&self) -> Result<RecordChanges, StateError> {
        self.records().finish()
    }

    /// The block's events, in the order the operations ran.
    pub fn take_events(&self) -> Vec<TxEvent> {
        self.records().take_events()
    }
}

/// Reads committed-or-staged records.
pub trait RecordRead {
    fn record(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError>;
}

impl<E: KvEngine> RecordRead for RecordBlock<'_, E> {
    fn record(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError> {
        self.get(key)
    }
}

impl RecordRead for BTreeMap<RecordKey, Vec<u8>> {
    fn record(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.get(key).cloned())
    }
}

/// What an operation sees besides the records.
pub struct CrossChainEnv<'a> {
    pub chain: ChainId,
    /// The block's timestamp (consensus time, the same on every validator).
    pub now_ms: u64,
    /// The digest of the carrying transaction: the id of a new lock or proposal.
    pub tx_digest: Digest,
    pub sender: Address,
    /// The sender's sAX (Alpha native) balance after the fee.
    pub sender_balance: u64,
    pub params: &'a CrossChainParams,
    /// The other chain's validator set of an epoch.
    pub source_sets: &'a dyn Fn(u64) -> Option<&'a ValidatorSet>,
    pub certificates: Option<&'a CertificateCache>,
    /// The network attestations' certificates are signed for.
    pub network: NetworkId,
    /// Where Alpha's epochs end.
    pub epochs: EpochSchedule,
    /// See [`CrossChainSetup::accept_joins`].
    pub accept_joins: bool,
}

/// What a successful operation changes; the caller applies all of it or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effects {
    /// Record writes in key order (`None` deletes).
    pub writes: BTreeMap<RecordKey, Option<Vec<u8>>>,
    /// sAX taken from the sender (a lock).
    pub debit_sender: u64,
    /// sAX returned to an owner (a release).
    pub credit: Option<(Address, u64)>,
    pub event: CrossChainEvent,
}

/// Outer error: storage (aborts the block). Inner: the receipt.
pub type Applied = Result<Result<Effects, CrossChainFailure>, StateError>;

/// Applies `op` on `env.chain`.
pub fn apply(env: &CrossChainEnv<'_>, op: &CrossChainOp, records: &impl RecordRead) -> Applied {
    let mut tx = Staged::new(records);
    let outcome = match (op, env.chain) {
        (
            CrossChainOp::SaxLock {
                amount,
                unlock_at_ms,
            },
            ChainId::Alpha,
        ) => lock(env, &mut tx, *amount, *unlock_at_ms),
        (CrossChainOp::Attest(attestation), _) => attest(env, &mut tx, attestation),
        (CrossChainOp::SaxUnlock { lock }, ChainId::Delta) => unlock(env, &mut tx, *lock),
        (
            CrossChainOp::Propose {
                change,
                voting_period_ms,
            },
            ChainId::Delta,
        ) => propose(env, &mut tx, change, *voting_period_ms),
        (CrossChainOp::Vote { proposal, approve }, ChainId::Delta) => {
            vote(env, &mut tx, *proposal, *approve)
        }
        (CrossChainOp::FinalizeProposal { proposal }, ChainId::Delta) => {
            finalize(env, &mut tx, *proposal)
        }
        (CrossChainOp::ValidatorJoin { .. }, _) if !env.accept_joins => {
            Ok(Err(F::JoinsNotAccepted))
        }
        (CrossChainOp::ValidatorJoin { key, lock, proof }, ChainId::Alpha) => {
            epochs::join(env, &mut tx, key, *lock, proof)
        }
        (CrossChainOp::ValidatorLeave { key, proof }, ChainId::Alpha) => {
            epochs::leave(env, &mut tx, key, proof)
        }
        _ => Ok(Err(F::WrongChainForOp)),
    }?;
    Ok(outcome.map(|(event, debit_sender, credit)| Effects {
        writes: tx.writes,
        debit_sender,
        credit,
        event,
    }))
}

/// The event and the balance effects of one operation.
pub(crate) type Step =
    Result<Result<(CrossChainEvent, u64, Option<(Address, u64)>), F>, StateError>;

/// The id of a vote record: one per (proposal, voter).
pub fn vote_id(proposal: &Digest, voter: &Address) -> [u8; 32] {
    let mut h = HashDomain::RecordId.hasher();
    h.update(b"vote");
    h.update(proposal.as_bytes());
    h.update(voter.as_bytes());
    *h.finalize().as_bytes()
}

fn lock(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    amount: u64,
    until: u64,
) -> Step {
    if amount == 0 {
        return Ok(Err(F::ZeroAmount));
    }
    if until <= env.now_ms {
        return Ok(Err(F::UnlockTimeInPast));
    }
    if env.sender_balance < amount {
        return Ok(Err(F::InsufficientBalance {
            available: env.sender_balance,
            needed: amount,
        }));
    }
    let key = RecordKey::new(RecordKind::Lock, env.tx_digest.0);
    assert!(
        tx.get(&key)?.is_none(),
        "a lock id is the digest of a transaction that executes once"
    );
    let record = LockRecord {
        owner: env.sender,
        amount,
        unlock_at_ms: until,
        status: LockStatus::Locked,
    };
    tx.put(key, record.to_canonical_bytes());
    let event = CrossChainEvent::SaxLocked {
        lock: env.tx_digest,
        owner: env.sender,
        amount,
    };
    Ok(Ok((event, amount, None)))
}

fn unlock(env: &CrossChainEnv<'_>, tx: &mut Staged<'_, impl RecordRead>, lock: Digest) -> Step {
    let key = RecordKey::new(RecordKind::Stake, lock.0);
    let Some(mut stake) = tx.decode::<StakeRecord>(&key)? else {
        return Ok(Err(F::UnknownLock));
    };
    if stake.owner != env.sender {
        return Ok(Err(F::NotLockOwner));
    }
    if stake.status != StakeStatus::Active {
        return Ok(Err(F::AlreadyUnlocked));
    }
    if env.now_ms < stake.unlock_at_ms {
        return Ok(Err(F::LockNotExpired {
            unlock_at_ms: stake.unlock_at_ms,
            now_ms: env.now_ms,
        }));
    }
    if let Err(failure) = tx.add_weight(&stake.owner, stake.amount, false)? {
        return Ok(Err(failure));
    }
    stake.status = StakeStatus::Unlocking {
        requested_at_ms: env.now_ms,
    };
    tx.put(key, stake.to_canonical_bytes());
    Ok(Ok((CrossChainEvent::SaxUnlockRequested { lock }, 0, None)))
}

fn propose(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    change: &GovernanceChange,
    period: u64,
) -> Step {
    if period == 0 || period > env.params.max_voting_period_ms {
        return Ok(Err(F::BadVotingPeriod));
    }
    if !change.is_well_formed() {
        return Ok(Err(F::BadGovernanceChange));
    }
    if tx.weight(&env.sender)? == 0 {
        return Ok(Err(F::NoVotingWeight));
    }
    let Some(deadline) = env.now_ms.checked_add(period) else {
        return Ok(Err(F::Overflow));
    };
    let record = ProposalRecord {
        proposer: env.sender,
        change: change.clone(),
        voting_deadline_ms: deadline,
        execute_by_ms: deadline.saturating_add(env.params.execution_window_ms),
        total_stake: tx.u64_record(&RecordKey::singleton(RecordKind::TotalStake))?,
        votes_for: 0,
        votes_against: 0,
        status: ProposalStatus::Open,
    };
    tx.put(
        RecordKey::new(RecordKind::Proposal, env.tx_digest.0),
        record.to_canonical_bytes(),
    );
    let event = CrossChainEvent::ProposalOpened {
        proposal: env.tx_digest,
    };
    Ok(Ok((event, 0, None)))
}

fn vote(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    proposal: Digest,
    approve: bool,
) -> Step {
    let key = RecordKey::new(RecordKind::Proposal, proposal.0);
    let Some(mut record) = tx.decode::<ProposalRecord>(&key)? else {
        return Ok(Err(F::UnknownProposal));
    };
    if record.status != ProposalStatus::Open || env.now_ms >= record.voting_deadline_ms {
        return Ok(Err(F::VotingClosed));
    }
    let ballot = RecordKey::new(RecordKind::Vote, vote_id(&proposal, &env.sender));
    if tx.get(&ballot)?.is_some() {
        return Ok(Err(F::AlreadyVoted));
    }
    let weight = tx.weight(&env.sender)?;
    if weight == 0 {
        return Ok(Err(F::NoVotingWeight));
    }
    let tally = if approve {
        &mut record.votes_for
    } else {
        &mut record.votes_against
    };
    let Some(sum) = tally.checked_add(weight) else {
        return Ok(Err(F::Overflow));
    };
    *tally = sum;
    tx.put(key, record.to_canonical_bytes());
    tx.put(ballot, VoteRecord { approve, weight }.to_canonical_bytes());
    let event = CrossChainEvent::VoteCast {
        proposal,
        voter: env.sender,
        weight,
    };
    Ok(Ok((event, 0, None)))
}

fn finalize(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    proposal: Digest,
) -> Step {
    let key = RecordKey::new(RecordKind::Proposal, proposal.0);
    let Some(mut record) = tx.decode::<ProposalRecord>(&key)? else {
        return Ok(Err(F::UnknownProposal));
    };
    if record.status != ProposalStatus::Open {
        return Ok(Err(F::VotingClosed));
    }
    if env.now_ms < record.voting_deadline_ms {
        return Ok(Err(F::VotingOpen));
    }
    record.status = tally(&record, env.params);
    tx.put(key, record.to_canonical_bytes());
    let event = CrossChainEvent::ProposalFinalized {
        proposal,
        status: record.status,
    };
    Ok(Ok((event, 0, None)))
}

/// Quorum: cast weight ≥ `quorum_bps` of the stake at opening (and some weight was
/// cast). Threshold: approving weight > `threshold_bps` of the cast weight.
fn tally(record: &ProposalRecord, params: &CrossChainParams) -> ProposalStatus {
    let cast = u128::from(record.votes_for) + u128::from(record.votes_against);
    let quorum =
        cast > 0 && cast * 10_000 >= u128::from(params.quorum_bps) * u128::from(record.total_stake);
    if !quorum {
        return ProposalStatus::RejectedNoQuorum;
    }
    if u128::from(record.votes_for) * 10_000 > u128::from(params.threshold_bps) * cast {
        ProposalStatus::Passed
    } else {
        ProposalStatus::RejectedThreshold
    }
}

/// The admission check of an `Attest` for chain `target`, against its committed
/// `records`: the record is one `target` applies (an attestable record of the other
/// chain, which also bounds the value) and the attestation passes the executor's own
/// verification ([`verify_attestation`], with the shared certificate cache, so a
/// block's certificate is checked once for both). A refusal means the transaction
/// could only fail: consumption, the newest source height and a certificate's verdict
/// never go back. A pass promises nothing (the state moves before the block), so the
/// executor checks again.
pub fn check_attest_admission(
    setup: &CrossChainSetup,
    target: ChainId,
    attestation: &Attestation,
    records: &impl RecordRead,
) -> Result<Result<(), CrossChainFailure>, StateError> {
    if !is_attestable(target.other(), &attestation.key, &attestation.value) {
        return Ok(Err(F::UnattestableRecord));
    }
    let sets = |epoch: u64| setup.source_sets.get(&epoch);
    let verified = verify_attestation(
        (target, &sets, setup.network),
        &setup.params,
        Some(&setup.certificates),
        attestation,
        &Staged::new(records),
    )?;
    Ok(verified.map(|_| ()))
}

/// Admission of a `ValidatorLeave` on Alpha: what the executor would decide against
/// the committed `records` (the proof signed by a member's key for this epoch and
/// `sender`, no change pending for it, the set not emptied). A leave that passes
/// needs no funded sender ([`dualchain_core::types::set_change_keypair`]); one that
/// would fail is refused before it takes block space for free.
pub fn check_leave_admission(
    setup: &CrossChainSetup,
    sender: Address,
    key: &ValidatorPublicKey,
    proof: &ValidatorSignature,
    records: &impl RecordRead,
) -> Result<Result<(), CrossChainFailure>, StateError> {
    let sets = |epoch: u64| setup.source_sets.get(&epoch);
    let env = CrossChainEnv {
        chain: ChainId::Alpha,
        now_ms: 0,
        tx_digest: Digest::ZERO,
        sender,
        sender_balance: 0,
        params: &setup.params,
        source_sets: &sets,
        certificates: None,
        network: setup.network,
        epochs: setup.epochs,
        accept_joins: setup.accept_joins,
    };
    let verdict = epochs::leave(&env, &mut Staged::new(records), key, proof)?;
    Ok(verdict.map(|_| ()))
}

/// Verifies `attestation` for the chain `target` (whose known source validator sets
/// `sets` gives) against the records `tx` sees: the newest source height accepted
/// (freshness) and whether it was consumed. Returns that newest height.
fn verify_attestation<'s>(
    (target, sets, network): (ChainId, &dyn Fn(u64) -> Option<&'s ValidatorSet>, NetworkId),
    params: &CrossChainParams,
    certificates: Option<&CertificateCache>,
    attestation: &Attestation,
    tx: &Staged<'_, impl RecordRead>,
) -> Result<Result<u64, CrossChainFailure>, StateError> {
    let newest = tx.u64_record(&RecordKey::singleton(RecordKind::SourceHeight))?;
    let id = attestation.id();
    let consumed = tx
        .get(&RecordKey::new(RecordKind::Consumed, id.0.0))?
        .is_some();
    let is_consumed = |candidate: &AttestationId| consumed && *candidate == id;
    // The certifying set: the genesis one, or this chain's record of its epoch (one
    // set runs both chains, so each chain's own records name the other's sets too).
    let epoch = attestation.header.epoch;
    let recorded = match sets(epoch) {
        Some(_) => None,
        None => epochs::recorded_set(tx, epoch)?.map(|set| match sets(0) {
            Some(genesis) => set.with_known_keys(genesis),
            None => set,
        }),
    };
    // Local closures, so the context borrows nothing longer than this call.
    let sets = |e: u64| sets(e).or(recorded.as_ref().filter(|set| set.epoch() == e));
    let context = AttestationContext {
        target,
        validator_sets: &sets,
        newest_source_height: newest,
        freshness_blocks: params.freshness_blocks,
        consumed: &is_consumed,
        network,
    };
    Ok(attestation
        .verify(&context, certificates)
        .map(|_| newest)
        .map_err(|error| F::Attestation(AttestationRefusal::from(&error))))
}

fn attest(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    attestation: &Attestation,
) -> Step {
    let newest = match verify_attestation(
        (env.chain, env.source_sets, env.network),
        env.params,
        env.certificates,
        attestation,
        tx,
    )? {
        Ok(newest) => newest,
        Err(failure) => return Ok(Err(failure)),
    };
    let Some(key) = RecordKey::from_state_key(&attestation.key) else {
        return Ok(Err(F::UnattestableRecord));
    };
    let step = match (env.chain, key.kind) {
        (ChainId::Delta, RecordKind::Lock) => lock_attested(tx, key, &attestation.value)?,
        (ChainId::Alpha, RecordKind::Stake) => unlock_attested(env, tx, key, &attestation.value)?,
        (ChainId::Alpha, RecordKind::Proposal) => {
            result_attested(env, tx, key, &attestation.value)?
        }
        (ChainId::Delta, RecordKind::ValidatorSet) => {
            epochs::set_attested(tx, env.epochs, &attestation.value)?
        }
        _ => Err(F::UnattestableRecord),
    };
    if step.is_ok() {
        tx.put(
            RecordKey::new(RecordKind::Consumed, attestation.id().0.0),
            vec![1],
        );
        let height = attestation.header.height.max(newest);
        tx.put(
            RecordKey::singleton(RecordKind::SourceHeight),
            height.to_le_bytes().to_vec(),
        );
    }
    Ok(step)
}

/// Delta: an Alpha lock, held (→ stake) or released (→ the stake's unlock completes).
fn lock_attested(tx: &mut Staged<'_, impl RecordRead>, key: RecordKey, value: &[u8]) -> Step {
    let Ok(lock) = LockRecord::from_canonical_bytes(value) else {
        return Ok(Err(F::UnattestableRecord));
    };
    let lock_id = Digest(key.id);
    let stake_key = RecordKey::new(RecordKind::Stake, key.id);
    let stake = tx.decode::<StakeRecord>(&stake_key)?;
    match (lock.status, stake) {
        (LockStatus::Locked, None) => {
            if let Err(failure) = tx.add_weight(&lock.owner, lock.amount, true)? {
                return Ok(Err(failure));
            }
            let stake = StakeRecord {
                owner: lock.owner,
                amount: lock.amount,
                unlock_at_ms: lock.unlock_at_ms,
                status: StakeStatus::Active,
            };
            tx.put(stake_key, stake.to_canonical_bytes());
            let event = CrossChainEvent::SaxLockAttested {
                lock: lock_id,
                owner: lock.owner,
                amount: lock.amount,
            };
            Ok(Ok((event, 0, None)))
        }
        (LockStatus::Locked, Some(_)) => Ok(Err(F::AlreadyStaked)),
        (LockStatus::Released { at_ms }, Some(mut stake)) => {
            if !matches!(stake.status, StakeStatus::Unlocking { .. }) {
                return Ok(Err(F::AlreadyUnlocked));
            }
            stake.status = StakeStatus::Released { at_ms };
            tx.put(stake_key, stake.to_canonical_bytes());
            Ok(Ok((
                CrossChainEvent::SaxUnlockCompleted { lock: lock_id },
                0,
                None,
            )))
        }
        (LockStatus::Released { .. }, None) => Ok(Err(F::UnknownLock)),
    }
}

/// Alpha: a Delta stake in `Unlocking` releases the lock once its time lock ran out.
fn unlock_attested(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    key: RecordKey,
    value: &[u8],
) -> Step {
    let Ok(stake) = StakeRecord::from_canonical_bytes(value) else {
        return Ok(Err(F::UnattestableRecord));
    };
    if !matches!(stake.status, StakeStatus::Unlocking { .. }) {
        return Ok(Err(F::UnattestableRecord));
    }
    let lock_key = RecordKey::new(RecordKind::Lock, key.id);
    let Some(mut lock) = tx.decode::<LockRecord>(&lock_key)? else {
        return Ok(Err(F::UnknownLock));
    };
    if lock.owner != stake.owner || lock.amount != stake.amount {
        return Ok(Err(F::NotLockOwner));
    }
    if lock.status != LockStatus::Locked {
        return Ok(Err(F::AlreadyUnlocked));
    }
    if epochs::is_bonded(tx, &Digest(key.id))? {
        return Ok(Err(F::LockBonded));
    }
    if env.now_ms < lock.unlock_at_ms {
        return Ok(Err(F::LockNotExpired {
            unlock_at_ms: lock.unlock_at_ms,
            now_ms: env.now_ms,
        }));
    }
    lock.status = LockStatus::Released { at_ms: env.now_ms };
    tx.put(lock_key, lock.to_canonical_bytes());
    let event = CrossChainEvent::SaxReleased {
        lock: Digest(key.id),
        owner: lock.owner,
        amount: lock.amount,
    };
    Ok(Ok((event, 0, Some((lock.owner, lock.amount)))))
}

/// Alpha: a passed Delta proposal sets its parameter or queues its validator-set
/// change for the next boundary, within the execution window. A change refused here
/// (the member left, the boundary's list is full) writes nothing: relayed again
/// before `execute_by_ms`, it can still execute.
fn result_attested(
    env: &CrossChainEnv<'_>,
    tx: &mut Staged<'_, impl RecordRead>,
    key: RecordKey,
    value: &[u8],
) -> Step {
    let Ok(proposal) = ProposalRecord::from_canonical_bytes(value) else {
        return Ok(Err(F::UnattestableRecord));
    };
    if proposal.status != ProposalStatus::Passed {
        return Ok(Err(F::NotPassed));
    }
    let executed_key = RecordKey::new(RecordKind::Governance, key.id);
    if tx.get(&executed_key)?.is_some() {
        return Ok(Err(F::AlreadyExecuted));
    }
    if env.now_ms > proposal.execute_by_ms {
        return Ok(Err(F::GovernanceExpired));
    }
    let change = proposal.change;
    match &change {
        GovernanceChange::Parameter(parameter) => {
            let record = ParameterRecord {
                value: parameter.value,
                proposal: Digest(key.id),
            };
            tx.put(
                RecordKey::new(RecordKind::Parameter, parameter.name.record_id()),
                record.to_canonical_bytes(),
            );
        }
        GovernanceChange::RemoveValidator { member } => {
            if let Err(failure) = epochs::govern(tx, member, None)? {
                return Ok(Err(failure));
            }
        }
        GovernanceChange::ValidatorStake { member, stake } => {
            if let Err(failure) = epochs::govern(tx, member, Some(*stake))? {
                return Ok(Err(failure));
            }
        }
        GovernanceChange::AdmitValidator { member, stake } => {
            if let Err(failure) = epochs::admit(tx, member, *stake)? {
                return Ok(Err(failure));
            }
        }
    }
    let execution = GovernanceExecution {
        change: change.clone(),
        executed_at_ms: env.now_ms,
    };
    tx.put(executed_key, execution.to_canonical_bytes());
    let event = CrossChainEvent::GovernanceExecuted {
        proposal: Digest(key.id),
        change,
    };
    Ok(Ok((event, 0, None)))
}

/// Read-your-writes staging over the records for one operation.
pub(crate) struct Staged<'r, R: RecordRead> {
    records: &'r R,
    pub(crate) writes: BTreeMap<RecordKey, Option<Vec<u8>>>,
}

impl<'r, R: RecordRead> Staged<'r, R> {
    pub(crate) fn new(records: &'r R) -> Self {
        Self {
            records,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.records.record(key),
        }
    }

    pub(crate) fn put(&mut self, key: RecordKey, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: RecordKey) {
        self.writes.insert(key, None);
    }

    /// A record of this chain, decoded. This chain wrote it, so a value that does
    /// not decode is corrupt state: the block fails rather than guessing.
    pub(crate) fn decode<T: Canonical>(&self, key: &RecordKey) -> Result<Option<T>, StateError> {
        self.get(key)?
            .map(|bytes| T::from_canonical_bytes(&bytes).map_err(|e| corrupt(key, e)))
            .transpose()
    }

    /// A `u64` record, zero when absent.
    pub(crate) fn u64_record(&self, key: &RecordKey) -> Result<u64, StateError> {
        match self.get(key)? {
            Some(bytes) => decode_u64_record(&bytes).map_err(|e| corrupt(key, e)),
            None => Ok(0),
        }
    }

    /// Writes a `u64` record, deleting it at zero (absent means zero).
    pub(crate) fn put_u64(&mut self, key: RecordKey, value: u64) {
        let value = (value != 0).then(|| value.to_le_bytes().to_vec());
        self.writes.insert(key, value);
    }

    fn weight(&self, owner: &Address) -> Result<u64, StateError> {
        self.u64_record(&RecordKey::new(RecordKind::StakeWeight, owner.0))
    }

    /// Adds (or removes) `amount` to the owner's weight and the total stake.
    fn add_weight(
        &mut self,
        owner: &Address,
        amount: u64,
        add: bool,
    ) -> Result<Result<(), F>, StateError> {
        let weight_key = RecordKey::new(RecordKind::StakeWeight, owner.0);
        let total_key = RecordKey::singleton(RecordKind::TotalStake);
        let (weight, total) = (self.u64_record(&weight_key)?, self.u64_record(&total_key)?);
        let changed = if add {
            weight.checked_add(amount).zip(total.checked_add(amount))
        } else {
            weight.checked_sub(amount).zip(total.checked_sub(amount))
        };
        let Some((weight, total)) = changed else {
            return Ok(Err(F::Overflow));
        };
        self.put_u64(weight_key, weight);
        self.put_u64(total_key, total);
        Ok(Ok(()))
    }
}

fn corrupt(key: &RecordKey, source: DecodeError) -> StateError {
    tracing::error!(kind = ?key.kind, id = %Digest(key.id), "a cross-chain record of this chain does not decode: {source}");
    StateError::Decode {
        what: "cross-chain record",
        source,
    }
}

#[cfg(test)]
#[path = "crosschain_tests.rs"]
pub(crate) mod tests;
