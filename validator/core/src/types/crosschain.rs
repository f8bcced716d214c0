//! The cross-chain records of both chains, the operations that change them, and why an
//! operation is refused.
//!
//! Records are state entries under `R ‖ kind ‖ id(32)` (see [`RecordKey`]), so they are
//! leaves of the chain's sparse Merkle tree and can be attested to the other chain. Each
//! record value is a canonical encoding that changes whenever the record's meaning does
//! (a lock that is released is a different value than the same lock held), because an
//! attestation is identified by `(source chain, key, value)` and consumed once.
//!
//! | kind | chain | id | value |
//! |---|---|---|---|
//! | `Lock` | Alpha | digest of the locking transaction | [`LockRecord`] |
//! | `Governance` | Alpha | proposal id | [`GovernanceExecution`] |
//! | `ValidatorSet` | both | epoch (big-endian, zero-padded) | a `ValidatorSet` (Alpha writes it at its boundary, Delta when it is attested) |
//! | `Epoch` | both | zero | the current [`EpochRecord`](super::EpochRecord) |
//! | `PendingSetChanges` | Alpha | zero | [`PendingSetChanges`](super::PendingSetChanges) of the epoch |
//! | `Member` | Alpha | validator key id | [`MemberRecord`](super::MemberRecord) of a validator that joined with a lock |
//! | `Bond` | Alpha | lock id | the member id the lock backs |
//! | `Stake` | Delta | lock id | [`StakeRecord`] |
//! | `StakeWeight` | Delta | owner address | voting weight, `u64` little-endian |
//! | `TotalStake` | Delta | zero | sum of all weights, `u64` little-endian |
//! | `Proposal` | Delta | digest of the proposing transaction | [`ProposalRecord`] |
//! | `Vote` | Delta | `H(proposal, voter)` | [`VoteRecord`] |
//! | `Parameter` | Alpha | parameter name, zero-padded | [`ParameterRecord`] |
//! | `Consumed` | both | attestation id | `[1]` |
//! | `SourceHeight` | both | zero | newest attested source height, `u64` little-endian |
//!
//! The transitions live in `dualchain_execution::crosschain`; the protocol is written
//! out in ARCHITECTURE.md ("Cross-chain protocol").

use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_var_bytes};
use crate::hash::Digest;

use super::account::Address;
use super::attestation::{Attestation, AttestationError};
use super::block::CertificateError;
use super::chain::ChainId;
use super::epoch::validator_set_key;
use super::validator::ValidatorSet;
use crate::crypto::{ValidatorPublicKey, ValidatorSignature};

/// Namespace byte of records in the `state` column.
pub const RECORD_PREFIX: u8 = b'R';
/// Longest governance parameter name.
pub const MAX_PARAMETER_NAME: usize = 32;

/// Protocol parameters of the cross-chain flows (the same on every validator).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossChainParams {
    /// How many source blocks an attestation may lag the newest one accepted.
    pub freshness_blocks: u64,
    /// Share of the total stake (basis points) that must vote for a result to count.
    pub quorum_bps: u16,
    /// A proposal passes when more than this share (basis points) of the cast weight
    /// approves.
    pub threshold_bps: u16,
    /// Longest voting period a proposal may ask for.
    pub max_voting_period_ms: u64,
    /// How long after its voting deadline a passed result may execute on Alpha.
    pub execution_window_ms: u64,
    /// Smallest sAX lock that backs a validator's join request (its voting stake).
    pub min_validator_stake: u64,
}

impl Default for CrossChainParams {
    fn default() -> Self {
        Self {
            // 600 Alpha blocks are 2.5 h; 600 Delta blocks 30 min.
            freshness_blocks: 600,
            quorum_bps: 3_334,
            threshold_bps: 5_000,
            max_voting_period_ms: 7 * 24 * 3_600_000,
            execution_window_ms: 24 * 3_600_000,
            min_validator_stake: 1,
        }
    }
}

impl CrossChainParams {
    /// Refuses parameters no network should run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.quorum_bps > 10_000 || self.threshold_bps >= 10_000 {
            return Err(format!(
                "quorum_bps ({}) must be at most 10000 and threshold_bps ({}) below 10000",
                self.quorum_bps, self.threshold_bps
            ));
        }
        if self.freshness_blocks == 0 || self.max_voting_period_ms == 0 {
            return Err("freshness_blocks and max_voting_period_ms must be positive".into());
        }
        if self.min_validator_stake == 0 {
            return Err(
                "min_validator_stake must be positive (a validator's weight is its stake)".into(),
            );
        }
        Ok(())
    }
}

impl Encode for CrossChainParams {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.freshness_blocks.encode_to(out);
        self.quorum_bps.encode_to(out);
        self.threshold_bps.encode_to(out);
        self.max_voting_period_ms.encode_to(out);
        self.execution_window_ms.encode_to(out);
        self.min_validator_stake.encode_to(out);
    }
}

impl Decode for CrossChainParams {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            freshness_blocks: r.read_u64("freshness window")?,
            quorum_bps: r.read_u16("quorum")?,
            threshold_bps: r.read_u16("threshold")?,
            max_voting_period_ms: r.read_u64("voting period")?,
            execution_window_ms: r.read_u64("execution window")?,
            min_validator_stake: r.read_u64("minimum validator stake")?,
        })
    }
}

/// What kind of record a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// Alpha: an sAX lock.
    Lock = 1,
    /// Alpha: an executed governance result.
    Governance = 2,
    /// Alpha: a validator set of an epoch.
    ValidatorSet = 3,
    /// Delta: the stake an attested lock gives its owner.
    Stake = 4,
    /// Delta: an owner's voting weight (sum of their active stakes).
    StakeWeight = 5,
    /// Delta: the sum of all voting weights.
    TotalStake = 6,
    /// Delta: a governance proposal and its tally.
    Proposal = 7,
    /// Delta: one account's vote on one proposal.
    Vote = 8,
    /// Alpha: a parameter set by governance.
    Parameter = 9,
    /// Both: an attestation already applied on this chain.
    Consumed = 10,
    /// Both: the newest source height this chain accepted an attestation of.
    SourceHeight = 11,
    /// Both: the current epoch.
    Epoch = 12,
    /// Alpha: the set changes requested in the current epoch.
    PendingSetChanges = 13,
    /// Alpha: a validator that joined with a lock.
    Member = 14,
    /// Alpha: a lock bonded to a validator (not releasable while it is).
    Bond = 15,
    /// Alpha: a validator key (by id) governance admitted to join without a lock, and
    /// the stake it joins with.
    Admission = 16,
}

impl RecordKind {
    pub fn from_u8(tag: u8) -> Option<Self> {
        use RecordKind::*;
        [
            Lock,
            Governance,
            ValidatorSet,
            Stake,
            StakeWeight,
            TotalStake,
            Proposal,
            Vote,
            Parameter,
            Consumed,
            SourceHeight,
            Epoch,
            PendingSetChanges,
            Member,
            Bond,
            Admission,
        ]
        .into_iter()
        .find(|kind| *kind as u8 == tag)
    }
}

/// The key of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub kind: RecordKind,
    pub id: [u8; 32],
}

impl RecordKey {
    pub fn new(kind: RecordKind, id: [u8; 32]) -> Self {
        Self { kind, id }
    }

    /// A record whose kind has a single instance (id zero).
    pub fn singleton(kind: RecordKind) -> Self {
        Self { kind, id: [0; 32] }
    }

    /// The key in the `state` column.
    pub fn state_key(&self) -> [u8; 34] {
        let mut key = [0u8; 34];
        key[0] = RECORD_PREFIX;
        key[1] = self.kind as u8;
        key[2..].copy_from_slice(&self.id);
        key
    }

    /// Parses a `state` column key; `None` for anything that is not a record key.
    pub fn from_state_key(key: &[u8]) -> Option<Self> {
        let key: &[u8; 34] = key.try_into().ok()?;
        if key[0] != RECORD_PREFIX {
            return None;
        }
        let kind = RecordKind::from_u8(key[1])?;
        Some(Self {
            kind,
            id: key[2..].try_into().ok()?,
        })
    }
}

/// Whether a record version committed on `source` is meant for the other chain: the
/// records the other chain's executor acts on when attested (Alpha's locks, held or
/// released; Delta's stakes being unlocked and its passed proposals). The source chain
/// keeps an inclusion proof of exactly these at the height that changed them, so a
/// relayer can build the attestation once the block is certified.
pub fn is_attestable(source: ChainId, key: &[u8], value: &[u8]) -> bool {
    let Some(key) = RecordKey::from_state_key(key) else {
        return false;
    };
    match (source, key.kind) {
        (ChainId::Alpha, RecordKind::Lock) => LockRecord::from_canonical_bytes(value).is_ok(),
        (ChainId::Delta, RecordKind::Stake) => StakeRecord::from_canonical_bytes(value)
            .is_ok_and(|stake| matches!(stake.status, StakeStatus::Unlocking { .. })),
        (ChainId::Delta, RecordKind::Proposal) => ProposalRecord::from_canonical_bytes(value)
            .is_ok_and(|proposal| proposal.status == ProposalStatus::Passed),
        (ChainId::Alpha, RecordKind::ValidatorSet) => ValidatorSet::from_canonical_bytes(value)
            .is_ok_and(|set| key == validator_set_key(set.epoch())),
        _ => false,
    }
}

/// Decodes a `u64` record value (weights, totals, heights): exactly 8 bytes.
pub fn decode_u64_record(bytes: &[u8]) -> Result<u64, DecodeError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| DecodeError::Invalid {
        what: "u64 record",
        detail: format!("a u64 record is 8 bytes, got {}", bytes.len()),
    })?;
    Ok(u64::from_le_bytes(array))
}

macro_rules! canonical_record {
    ($ty:ty, $name:literal, $max:expr) => {
        impl Canonical for $ty {
            const NAME: &'static str = $name;
            const MAX_ENCODED_LEN: usize = $max;
        }
    };
}

/// The state of an sAX lock on Alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockStatus {
    /// The amount is held until `unlock_at_ms`.
    Locked,
    /// Returned to the owner in the Alpha block of time `at_ms`.
    Released { at_ms: u64 },
}

/// An sAX lock: `amount` of the owner's Alpha balance held until `unlock_at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockRecord {
    pub owner: Address,
    pub amount: u64,
    pub unlock_at_ms: u64,
    pub status: LockStatus,
}

impl Encode for LockRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.owner.encode_to(out);
        self.amount.encode_to(out);
        self.unlock_at_ms.encode_to(out);
        match self.status {
            LockStatus::Locked => out.push(0),
            LockStatus::Released { at_ms } => {
                out.push(1);
                at_ms.encode_to(out);
            }
        }
    }
}

impl Decode for LockRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            owner: Decode::decode_from(r)?,
            amount: r.read_u64("lock amount")?,
            unlock_at_ms: r.read_u64("unlock time")?,
            status: match r.read_u8("lock status")? {
                0 => LockStatus::Locked,
                1 => LockStatus::Released {
                    at_ms: r.read_u64("release time")?,
                },
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "lock status",
                        tag,
                    });
                }
            },
        })
    }
}
canonical_record!(LockRecord, "lock record", 1 + 32 + 8 + 8 + 1 + 8);

/// The state of a stake on Delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StakeStatus {
    /// Counts as voting weight.
    Active,
    /// The owner asked for the unlock at `requested_at_ms`; no longer voting weight.
    /// This record version, attested to Alpha, releases the lock there.
    Unlocking { requested_at_ms: u64 },
    /// Alpha's release was attested back: both chains agree the lock is over.
    Released { at_ms: u64 },
}

/// The stake an attested Alpha lock gives its owner on Delta (keyed by the lock id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StakeRecord {
    pub owner: Address,
    pub amount: u64,
    pub unlock_at_ms: u64,
    pub status: StakeStatus,
}

impl Encode for StakeRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.owner.encode_to(out);
        self.amount.encode_to(out);
        self.unlock_at_ms.encode_to(out);
        match self.status {
            StakeStatus::Active => out.push(0),
            StakeStatus::Unlocking { requested_at_ms } => {
                out.push(1);
                requested_at_ms.encode_to(out);
            }
            StakeStatus::Released { at_ms } => {
                out.push(2);
                at_ms.encode_to(out);
            }
        }
    }
}

impl Decode for StakeRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            owner: Decode::decode_from(r)?,
            amount: r.read_u64("stake amount")?,
            unlock_at_ms: r.read_u64("unlock time")?,
            status: match r.read_u8("stake status")? {
                0 => StakeStatus::Active,
                1 => StakeStatus::Unlocking {
                    requested_at_ms: r.read_u64("unlock request time")?,
                },
                2 => StakeStatus::Released {
                    at_ms: r.read_u64("release time")?,
                },
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "stake status",
                        tag,
                    });
                }
            },
        })
    }
}
canonical_record!(StakeRecord, "stake record", 1 + 32 + 8 + 8 + 1 + 8);

/// A governance parameter name: 1–32 bytes of `[a-z0-9_.-]`, stored zero-padded as a
/// record id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParameterName(String);

impl ParameterName {
    pub fn new(name: &str) -> Result<Self, DecodeError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_PARAMETER_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !valid {
            return Err(DecodeError::Invalid {
                what: "parameter name",
                detail: format!(
                    "{name:?}: a parameter name is 1-{MAX_PARAMETER_NAME} characters of a-z, 0-9, '_', '.', '-'"
                ),
            });
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record id of this parameter.
    pub fn record_id(&self) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[..self.0.len()].copy_from_slice(self.0.as_bytes());
        id
    }
}

impl Encode for ParameterName {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_var_bytes(out, self.0.as_bytes());
    }
}

impl Decode for ParameterName {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name = r.read_string(MAX_PARAMETER_NAME, "parameter name")?;
        Self::new(&name)
    }
}

/// What a proposal does on Alpha when it passes: set a parameter record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterChange {
    pub name: ParameterName,
    pub value: u64,
}

impl Encode for ParameterChange {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.name.encode_to(out);
        self.value.encode_to(out);
    }
}

impl Decode for ParameterChange {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: Decode::decode_from(r)?,
            value: r.read_u64("parameter value")?,
        })
    }
}

/// Encoded length bound of a [`GovernanceChange`] (the parameter form is the longest).
pub const MAX_GOVERNANCE_CHANGE_LEN: usize = 1 + 4 + MAX_PARAMETER_NAME + 8;

/// What a proposal does on Alpha when it passes: set a parameter record, or change
/// the validator set at the next epoch boundary (the set changes a validator cannot
/// ask for itself: taking a member out, re-weighting one, admitting one without a
/// lock). A member is named by
/// its key's id (`ValidatorPublicKey::id`, what the events and the API show).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GovernanceChange {
    Parameter(ParameterChange),
    /// The member leaves the set at the next boundary (its lock's bond ends then).
    RemoveValidator {
        member: Digest,
    },
    /// The member's stake — its weight in every quorum of both chains — is `stake`
    /// from the next boundary on (its bonded lock stays as it is).
    ValidatorStake {
        member: Digest,
        stake: u64,
    },
    /// The key may join without a lock, with `stake`: its holder sends the join
    /// request (signed by the key, as every join is), which proves possession of a
    /// key the proposal names only by id.
    AdmitValidator {
        member: Digest,
        stake: u64,
    },
}

impl GovernanceChange {
    /// Whether the change can ever execute, from its bytes alone: a stake is
    /// positive. Delta refuses a proposal that fails this, before anyone votes.
    pub fn is_well_formed(&self) -> bool {
        !matches!(
            self,
            GovernanceChange::ValidatorStake { stake: 0, .. }
                | GovernanceChange::AdmitValidator { stake: 0, .. }
        )
    }

    /// The change's kind, as the API names it.
    pub fn action(&self) -> &'static str {
        match self {
            GovernanceChange::Parameter(_) => "parameter",
            GovernanceChange::RemoveValidator { .. } => "remove_validator",
            GovernanceChange::ValidatorStake { .. } => "validator_stake",
            GovernanceChange::AdmitValidator { .. } => "admit_validator",
        }
    }
}

impl From<ParameterChange> for GovernanceChange {
    fn from(change: ParameterChange) -> Self {
        GovernanceChange::Parameter(change)
    }
}

impl Encode for GovernanceChange {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            GovernanceChange::Parameter(change) => {
                out.push(0);
                change.encode_to(out);
            }
            GovernanceChange::RemoveValidator { member } => {
                out.push(1);
                member.encode_to(out);
            }
            GovernanceChange::ValidatorStake { member, stake } => {
                out.push(2);
                member.encode_to(out);
                stake.encode_to(out);
            }
            GovernanceChange::AdmitValidator { member, stake } => {
                out.push(3);
                member.encode_to(out);
                stake.encode_to(out);
            }
        }
    }
}

impl Decode for GovernanceChange {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8("governance change")? {
            0 => GovernanceChange::Parameter(Decode::decode_from(r)?),
            1 => GovernanceChange::RemoveValidator {
                member: Decode::decode_from(r)?,
            },
            2 => GovernanceChange::ValidatorStake {
                member: Decode::decode_from(r)?,
                stake: r.read_u64("validator stake")?,
            },
            3 => GovernanceChange::AdmitValidator {
                member: Decode::decode_from(r)?,
                stake: r.read_u64("validator stake")?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "governance change",
                    tag,
                });
            }
        })
    }
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalStatus {
    /// Votes are accepted until the voting deadline.
    Open,
    /// Quorum and threshold were met at the deadline; this record version, attested to
    /// Alpha before `execute_by_ms`, executes the change there.
    Passed,
    /// Too little of the stake voted.
    RejectedNoQuorum,
    /// Quorum met, but not enough of the votes approved.
    RejectedThreshold,
}

/// A governance proposal on Delta and its running tally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalRecord {
    pub proposer: Address,
    pub change: GovernanceChange,
    pub voting_deadline_ms: u64,
    /// Alpha executes a passed result only in blocks no later than this.
    pub execute_by_ms: u64,
    /// Total stake when the proposal opened: the base of the quorum.
    pub total_stake: u64,
    pub votes_for: u64,
    pub votes_against: u64,
    pub status: ProposalStatus,
}

impl Encode for ProposalRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.proposer.encode_to(out);
        self.change.encode_to(out);
        self.voting_deadline_ms.encode_to(out);
        self.execute_by_ms.encode_to(out);
        self.total_stake.encode_to(out);
        self.votes_for.encode_to(out);
        self.votes_against.encode_to(out);
        self.status.encode_to(out);
    }
}

impl Encode for ProposalStatus {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(match self {
            ProposalStatus::Open => 0,
            ProposalStatus::Passed => 1,
            ProposalStatus::RejectedNoQuorum => 2,
            ProposalStatus::RejectedThreshold => 3,
        });
    }
}

impl Decode for ProposalStatus {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8("proposal status")? {
            0 => ProposalStatus::Open,
            1 => ProposalStatus::Passed,
            2 => ProposalStatus::RejectedNoQuorum,
            3 => ProposalStatus::RejectedThreshold,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "proposal status",
                    tag,
                });
            }
        })
    }
}

impl Decode for ProposalRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            proposer: Decode::decode_from(r)?,
            change: Decode::decode_from(r)?,
            voting_deadline_ms: r.read_u64("voting deadline")?,
            execute_by_ms: r.read_u64("execution deadline")?,
            total_stake: r.read_u64("total stake")?,
            votes_for: r.read_u64("votes for")?,
            votes_against: r.read_u64("votes against")?,
            status: Decode::decode_from(r)?,
        })
    }
}
canonical_record!(
    ProposalRecord,
    "proposal record",
    1 + 32 + MAX_GOVERNANCE_CHANGE_LEN + 8 * 5 + 1
);

/// One account's vote on one proposal (the record makes a second vote fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    pub approve: bool,
    pub weight: u64,
}

impl Encode for VoteRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.approve.encode_to(out);
        self.weight.encode_to(out);
    }
}

impl Decode for VoteRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            approve: r.read_bool("vote")?,
            weight: r.read_u64("vote weight")?,
        })
    }
}
canonical_record!(VoteRecord, "vote record", 1 + 1 + 8);

/// A governance result executed on Alpha (keyed by the proposal id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GovernanceExecution {
    pub change: GovernanceChange,
    pub executed_at_ms: u64,
}

impl Encode for GovernanceExecution {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.change.encode_to(out);
        self.executed_at_ms.encode_to(out);
    }
}

impl Decode for GovernanceExecution {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            change: Decode::decode_from(r)?,
            executed_at_ms: r.read_u64("execution time")?,
        })
    }
}
canonical_record!(
    GovernanceExecution,
    "governance execution",
    1 + MAX_GOVERNANCE_CHANGE_LEN + 8
);

/// A parameter's value on Alpha and the proposal that set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParameterRecord {
    pub value: u64,
    pub proposal: Digest,
}

impl Encode for ParameterRecord {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.value.encode_to(out);
        self.proposal.encode_to(out);
    }
}

impl Decode for ParameterRecord {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            value: r.read_u64("parameter value")?,
            proposal: Decode::decode_from(r)?,
        })
    }
}
canonical_record!(ParameterRecord, "parameter record", 1 + 8 + 32);

/// A cross-chain operation, sent by an account (which pays the fee and whose nonce
/// advances like any transaction's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrossChainOp {
    /// Alpha: lock `amount` of the sender's sAX until `unlock_at_ms`.
    SaxLock { amount: u64, unlock_at_ms: u64 },
    /// Either chain: apply an attested record of the other chain. Anyone may relay.
    Attest(Box<Attestation>),
    /// Delta: end the sender's stake of `lock` (its voting weight goes at once; the
    /// lock is released on Alpha when this request is attested there).
    SaxUnlock { lock: Digest },
    /// Delta: propose a parameter or validator-set change, voted on for
    /// `voting_period_ms`.
    Propose {
        change: GovernanceChange,
        voting_period_ms: u64,
    },
    /// Delta: vote on an open proposal with the sender's whole voting weight.
    Vote { proposal: Digest, approve: bool },
    /// Delta: close the vote of a proposal whose deadline passed. Anyone may send it.
    FinalizeProposal { proposal: Digest },
    /// Alpha: `key` asks to join the validator set at the next epoch boundary, with the
    /// sender's lock `lock` as its stake; `proof` is `key`'s signature over
    /// `set_change_message(Join, sender, lock, current epoch)`.
    ValidatorJoin {
        key: ValidatorPublicKey,
        lock: Digest,
        proof: ValidatorSignature,
    },
    /// Alpha: `key` asks to leave the set at the next boundary; `proof` as for a join
    /// (without a lock).
    ValidatorLeave {
        key: ValidatorPublicKey,
        proof: ValidatorSignature,
    },
}

impl CrossChainOp {
    /// First transaction-kind tag of the cross-chain operations (the reserved range
    /// is 16–31; this version uses 16–23).
    pub const FIRST_TAG: u8 = 16;
    const SAX_LOCK: u8 = 16;
    pub(crate) const ATTEST: u8 = 17;
    const SAX_UNLOCK: u8 = 18;
    const PROPOSE: u8 = 19;
    const VOTE: u8 = 20;
    const FINALIZE_PROPOSAL: u8 = 21;
    const VALIDATOR_JOIN: u8 = 22;
    const VALIDATOR_LEAVE: u8 = 23;

    /// The transaction-kind tag of this operation.
    pub fn tag(&self) -> u8 {
        match self {
            CrossChainOp::SaxLock { .. } => Self::SAX_LOCK,
            CrossChainOp::Attest(_) => Self::ATTEST,
            CrossChainOp::SaxUnlock { .. } => Self::SAX_UNLOCK,
            CrossChainOp::Propose { .. } => Self::PROPOSE,
            CrossChainOp::Vote { .. } => Self::VOTE,
            CrossChainOp::FinalizeProposal { .. } => Self::FINALIZE_PROPOSAL,
            CrossChainOp::ValidatorJoin { .. } => Self::VALIDATOR_JOIN,
            CrossChainOp::ValidatorLeave { .. } => Self::VALIDATOR_LEAVE,
        }
    }

    /// Whether `tag` is a cross-chain operation this version knows.
    pub fn is_tag(tag: u8) -> bool {
        (Self::SAX_LOCK..=Self::VALIDATOR_LEAVE).contains(&tag)
    }

    /// The account an operation may credit besides its sender, read from the
    /// transaction alone (so executors can declare it before running): the owner of
    /// the lock an attested unlock request releases.
    pub fn credited_account(&self) -> Option<Address> {
        let CrossChainOp::Attest(attestation) = self else {
            return None;
        };
        let key = RecordKey::from_state_key(&attestation.key)?;
        if key.kind != RecordKind::Stake {
            return None;
        }
        StakeRecord::from_canonical_bytes(&attestation.value)
            .ok()
            .map(|stake| stake.owner)
    }

    /// Encodes the operation's body (the tag is written by the transaction payload).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            CrossChainOp::SaxLock {
                amount,
                unlock_at_ms,
            } => {
                amount.encode_to(out);
                unlock_at_ms.encode_to(out);
            }
            CrossChainOp::Attest(attestation) => attestation.encode_to(out),
            CrossChainOp::SaxUnlock { lock } => lock.encode_to(out),
            CrossChainOp::Propose {
                change,
                voting_period_ms,
            } => {
                change.encode_to(out);
                voting_period_ms.encode_to(out);
            }
            CrossChainOp::Vote { proposal, approve } => {
                proposal.encode_to(out);
                approve.encode_to(out);
            }
            CrossChainOp::FinalizeProposal { proposal } => proposal.encode_to(out),
            CrossChainOp::ValidatorJoin { key, lock, proof } => {
                key.encode_to(out);
                lock.encode_to(out);
                proof.encode_to(out);
            }
            CrossChainOp::ValidatorLeave { key, proof } => {
                key.encode_to(out);
                proof.encode_to(out);
            }
        }
    }

    /// Decodes the body of the operation with transaction-kind `tag`.
    pub fn decode_body(tag: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match tag {
            Self::SAX_LOCK => CrossChainOp::SaxLock {
                amount: r.read_u64("lock amount")?,
                unlock_at_ms: r.read_u64("unlock time")?,
            },
            Self::ATTEST => CrossChainOp::Attest(Box::new(Decode::decode_from(r)?)),
            Self::SAX_UNLOCK => CrossChainOp::SaxUnlock {
                lock: Decode::decode_from(r)?,
            },
            Self::PROPOSE => CrossChainOp::Propose {
                change: Decode::decode_from(r)?,
                voting_period_ms: r.read_u64("voting period")?,
            },
            Self::VOTE => CrossChainOp::Vote {
                proposal: Decode::decode_from(r)?,
                approve: r.read_bool("vote")?,
            },
            Self::FINALIZE_PROPOSAL => CrossChainOp::FinalizeProposal {
                proposal: Decode::decode_from(r)?,
            },
            Self::VALIDATOR_JOIN => CrossChainOp::ValidatorJoin {
                key: Decode::decode_from(r)?,
                lock: Decode::decode_from(r)?,
                proof: Decode::decode_from(r)?,
            },
            Self::VALIDATOR_LEAVE => CrossChainOp::ValidatorLeave {
                key: Decode::decode_from(r)?,
                proof: Decode::decode_from(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "transaction kind",
                    tag,
                });
            }
        })
    }
}

/// What an operation did, for the event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrossChainEvent {
    SaxLocked {
        lock: Digest,
        owner: Address,
        amount: u64,
    },
    /// Delta credited the stake of an attested lock (`sax_lock_attested`).
    SaxLockAttested {
        lock: Digest,
        owner: Address,
        amount: u64,
    },
    SaxUnlockRequested {
        lock: Digest,
    },
    /// Alpha released a lock whose unlock request was attested.
    SaxReleased {
        lock: Digest,
        owner: Address,
        amount: u64,
    },
    /// Delta saw Alpha's release: both chains agree the lock is over.
    SaxUnlockCompleted {
        lock: Digest,
    },
    ProposalOpened {
        proposal: Digest,
    },
    VoteCast {
        proposal: Digest,
        voter: Address,
        weight: u64,
    },
    ProposalFinalized {
        proposal: Digest,
        status: ProposalStatus,
    },
    /// Alpha executed an attested passed result (`governance_executed`).
    GovernanceExecuted {
        proposal: Digest,
        change: GovernanceChange,
    },
    /// Alpha recorded a join request for the next boundary (`validator_join_requested`).
    ValidatorJoinRequested {
        validator: Digest,
        owner: Address,
        stake: u64,
    },
    /// Alpha recorded a leave request for the next boundary (`validator_leave_requested`).
    ValidatorLeaveRequested {
        validator: Digest,
    },
    /// The chain entered `epoch`, run by `validators` validators whose set has digest
    /// `set` (`epoch_boundary_reached`): on Alpha in its boundary block (an event of
    /// the block, under the zero transaction digest), on Delta when the set's
    /// attestation applied.
    EpochBoundaryReached {
        epoch: u64,
        validators: u32,
        set: Digest,
    },
}

impl CrossChainEvent {
    /// The event's name in the specification (`sax_lock_attested`, `governance_executed`, …).
    pub const fn name(&self) -> &'static str {
        match self {
            CrossChainEvent::SaxLocked { .. } => "sax_locked",
            CrossChainEvent::SaxLockAttested { .. } => "sax_lock_attested",
            CrossChainEvent::SaxUnlockRequested { .. } => "sax_unlock_requested",
            CrossChainEvent::SaxReleased { .. } => "sax_released",
            CrossChainEvent::SaxUnlockCompleted { .. } => "sax_unlock_completed",
            CrossChainEvent::ProposalOpened { .. } => "proposal_opened",
            CrossChainEvent::VoteCast { .. } => "vote_cast",
            CrossChainEvent::ProposalFinalized { .. } => "proposal_finalized",
            CrossChainEvent::GovernanceExecuted { .. } => "governance_executed",
            CrossChainEvent::ValidatorJoinRequested { .. } => "validator_join_requested",
            CrossChainEvent::ValidatorLeaveRequested { .. } => "validator_leave_requested",
            CrossChainEvent::EpochBoundaryReached { .. } => "epoch_boundary_reached",
        }
    }
}

impl Encode for CrossChainEvent {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            CrossChainEvent::SaxLocked {
                lock,
                owner,
                amount,
            } => {
                out.push(0);
                encode_triple(out, lock, owner, *amount);
            }
            CrossChainEvent::SaxLockAttested {
                lock,
                owner,
                amount,
            } => {
                out.push(1);
                encode_triple(out, lock, owner, *amount);
            }
            CrossChainEvent::SaxUnlockRequested { lock } => {
                out.push(2);
                lock.encode_to(out);
            }
            CrossChainEvent::SaxReleased {
                lock,
                owner,
                amount,
            } => {
                out.push(3);
                encode_triple(out, lock, owner, *amount);
            }
            CrossChainEvent::SaxUnlockCompleted { lock } => {
                out.push(4);
                lock.encode_to(out);
            }
            CrossChainEvent::ProposalOpened { proposal } => {
                out.push(5);
                proposal.encode_to(out);
            }
            CrossChainEvent::VoteCast {
                proposal,
                voter,
                weight,
            } => {
                out.push(6);
                encode_triple(out, proposal, voter, *weight);
            }
            CrossChainEvent::ProposalFinalized { proposal, status } => {
                out.push(7);
                proposal.encode_to(out);
                status.encode_to(out);
            }
            CrossChainEvent::GovernanceExecuted { proposal, change } => {
                out.push(8);
                proposal.encode_to(out);
                change.encode_to(out);
            }
            CrossChainEvent::ValidatorJoinRequested {
                validator,
                owner,
                stake,
            } => {
                out.push(9);
                encode_triple(out, validator, owner, *stake);
            }
            CrossChainEvent::ValidatorLeaveRequested { validator } => {
                out.push(10);
                validator.encode_to(out);
            }
            CrossChainEvent::EpochBoundaryReached {
                epoch,
                validators,
                set,
            } => {
                out.push(11);
                epoch.encode_to(out);
                validators.encode_to(out);
                set.encode_to(out);
            }
        }
    }
}

/// `(id, account, amount)`, the shape most events share.
fn encode_triple(out: &mut Vec<u8>, id: &Digest, account: &Address, amount: u64) {
    id.encode_to(out);
    account.encode_to(out);
    amount.encode_to(out);
}

fn decode_triple(r: &mut Reader<'_>) -> Result<(Digest, Address, u64), DecodeError> {
    Ok((
        Decode::decode_from(r)?,
        Decode::decode_from(r)?,
        r.read_u64("event amount")?,
    ))
}

impl Decode for CrossChainEvent {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8("cross-chain event")? {
            0 => {
                let (lock, owner, amount) = decode_triple(r)?;
                CrossChainEvent::SaxLocked {
                    lock,
                    owner,
                    amount,
                }
            }
            1 => {
                let (lock, owner, amount) = decode_triple(r)?;
                CrossChainEvent::SaxLockAttested {
                    lock,
                    owner,
                    amount,
                }
            }
            2 => CrossChainEvent::SaxUnlockRequested {
                lock: Decode::decode_from(r)?,
            },
            3 => {
                let (lock, owner, amount) = decode_triple(r)?;
                CrossChainEvent::SaxReleased {
                    lock,
                    owner,
                    amount,
                }
            }
            4 => CrossChainEvent::SaxUnlockCompleted {
                lock: Decode::decode_from(r)?,
            },
            5 => CrossChainEvent::ProposalOpened {
                proposal: Decode::decode_from(r)?,
            },
            6 => {
                let (proposal, voter, weight) = decode_triple(r)?;
                CrossChainEvent::VoteCast {
                    proposal,
                    voter,
                    weight,
                }
            }
            7 => CrossChainEvent::ProposalFinalized {
                proposal: Decode::decode_from(r)?,
                status: Decode::decode_from(r)?,
            },
            8 => CrossChainEvent::GovernanceExecuted {
                proposal: Decode::decode_from(r)?,
                change: Decode::decode_from(r)?,
            },
            9 => {
                let (validator, owner, stake) = decode_triple(r)?;
                CrossChainEvent::ValidatorJoinRequested {
                    validator,
                    owner,
                    stake,
                }
            }
            10 => CrossChainEvent::ValidatorLeaveRequested {
                validator: Decode::decode_from(r)?,
            },
            11 => CrossChainEvent::EpochBoundaryReached {
                epoch: r.read_u64("epoch")?,
                validators: r.read_u32("validators")?,
                set: Decode::decode_from(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "cross-chain event",
                    tag,
                });
            }
        })
    }
}

/// Longest encoding of one [`TxEvent`].
const MAX_TX_EVENT_LEN: usize = 32 + 1 + 32 + MAX_GOVERNANCE_CHANGE_LEN;

/// A cross-chain event and the transaction that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxEvent {
    pub tx: Digest,
    pub event: CrossChainEvent,
}

impl Encode for TxEvent {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.tx.encode_to(out);
        self.event.encode_to(out);
    }
}

impl Decode for TxEvent {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            tx: Decode::decode_from(r)?,
            event: Decode::decode_from(r)?,
        })
    }
}

/// The cross-chain events of one block in block order (what the node stores beside
/// the block and streams with its finality event). Derived data: not part of any root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockEvents(pub Vec<TxEvent>);

impl Encode for BlockEvents {
    fn encode_to(&self, out: &mut Vec<u8>) {
        crate::encoding::write_vec(out, &self.0);
    }
}

impl Decode for BlockEvents {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.read_vec(
            super::block::MAX_BLOCK_TXS,
            32 + 1 + 32,
            "block events",
        )?))
    }
}

canonical_record!(
    BlockEvents,
    "block events",
    1 + 4 + super::block::MAX_BLOCK_TXS * MAX_TX_EVENT_LEN
);

/// Which attestation check refused (a flat code, so a receipt stays small and
/// canonical; the node logs the full [`AttestationError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AttestationRefusal {
    WrongSourceChain = 0,
    EpochMismatch = 1,
    UnknownEpoch = 2,
    CertificateWrongEpoch = 3,
    CertificateWrongHeader = 4,
    CertificateUnknownSigner = 5,
    CertificateNoQuorum = 6,
    CertificateBadSignature = 7,
    BadKey = 8,
    Proof = 9,
    Stale = 10,
    Replayed = 11,
}

impl From<&AttestationError> for AttestationRefusal {
    fn from(error: &AttestationError) -> Self {
        use AttestationRefusal as R;
        match error {
            AttestationError::WrongSourceChain { .. } => R::WrongSourceChain,
            AttestationError::EpochMismatch { .. } => R::EpochMismatch,
            AttestationError::UnknownEpoch { .. } => R::UnknownEpoch,
            AttestationError::Certificate(c) => match c {
                CertificateError::WrongEpoch { .. } => R::CertificateWrongEpoch,
                CertificateError::WrongHeader { .. } => R::CertificateWrongHeader,
                CertificateError::UnknownSigner(_) => R::CertificateUnknownSigner,
                CertificateError::NoQuorum { .. } => R::CertificateNoQuorum,
                CertificateError::BadSignature { .. } => R::CertificateBadSignature,
            },
            AttestationError::BadKey { .. } => R::BadKey,
            AttestationError::Proof(_) => R::Proof,
            AttestationError::Stale { .. } => R::Stale,
            AttestationError::Replayed(_) => R::Replayed,
        }
    }
}

/// Why a cross-chain operation was refused. Each is its own typed receipt reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CrossChainFailure {
    #[error("the operation is not accepted on this chain")]
    WrongChainForOp,
    #[error("the attestation was refused: {0:?}")]
    Attestation(AttestationRefusal),
    #[error("the attested record is not one this chain acts on")]
    UnattestableRecord,
    #[error("a record of this chain is unreadable (a consensus bug)")]
    CorruptRecord,
    #[error("an amount of zero")]
    ZeroAmount,
    #[error("the unlock time is not after the current block time")]
    UnlockTimeInPast,
    #[error("no such lock")]
    UnknownLock,
    #[error("the lock belongs to another account")]
    NotLockOwner,
    #[error("the time lock runs until {unlock_at_ms} ms; the block time is {now_ms} ms")]
    LockNotExpired { unlock_at_ms: u64, now_ms: u64 },
    #[error("the lock is already being unlocked or released")]
    AlreadyUnlocked,
    #[error("the lock was already attested")]
    AlreadyStaked,
    #[error("the sender has no voting weight")]
    NoVotingWeight,
    #[error("the voting period is zero or longer than allowed")]
    BadVotingPeriod,
    #[error("no such proposal")]
    UnknownProposal,
    #[error("the proposal's voting is closed")]
    VotingClosed,
    #[error("the proposal's voting deadline has not passed")]
    VotingOpen,
    #[error("this account already voted on the proposal")]
    AlreadyVoted,
    #[error("the proposal did not pass")]
    NotPassed,
    #[error("the governance result's execution window has ended")]
    GovernanceExpired,
    #[error("the governance result was already executed")]
    AlreadyExecuted,
    #[error("insufficient sAX: needed {needed}, {available} available")]
    InsufficientBalance { available: u64, needed: u64 },
    #[error("an amount or tally would overflow")]
    Overflow,
    #[error(
        "this executor runs without a cross-chain setup (benchmarks only; nodes always have one)"
    )]
    Disabled,
    #[error("the key is already a validator (or asked to join this epoch)")]
    AlreadyValidator,
    #[error("the key is not a validator of this epoch")]
    NotAValidator,
    #[error("the validator key's signature over the request does not verify")]
    BadSetChangeProof,
    #[error("the lock backs a validator and cannot be released while it is one")]
    LockBonded,
    #[error("a lock of {stake} sAX is below the validator minimum of {min}")]
    StakeBelowMinimum { stake: u64, min: u64 },
    #[error("this epoch's set changes are full; ask again after the boundary")]
    TooManySetChanges,
    #[error("the set would be left without validators")]
    SetWouldBeEmpty,
    #[error("the key already has a request pending for this boundary")]
    ChangeAlreadyPending,
    #[error("the attested validator set is not of the epoch after this chain's")]
    EpochOutOfOrder,
    #[error(
        "validator join requests are not accepted on this network (its cross-chain setup turns them off); leave requests are accepted"
    )]
    JoinsNotAccepted,
    #[error("the proposal's change can never execute (a validator stake of zero)")]
    BadGovernanceChange,
    #[error("a join without a lock needs the key admitted by governance first")]
    NotAdmitted,
}

impl CrossChainFailure {
    fn tag(&self) -> u8 {
        use CrossChainFailure::*;
        match self {
            WrongChainForOp => 0,
            Attestation(_) => 1,
            UnattestableRecord => 2,
            CorruptRecord => 3,
            ZeroAmount => 4,
            UnlockTimeInPast => 5,
            UnknownLock => 6,
            NotLockOwner => 7,
            LockNotExpired { .. } => 8,
            AlreadyUnlocked => 9,
            AlreadyStaked => 10,
            NoVotingWeight => 11,
            BadVotingPeriod => 12,
            UnknownProposal => 13,
            VotingClosed => 14,
            VotingOpen => 15,
            AlreadyVoted => 16,
            NotPassed => 17,
            GovernanceExpired => 18,
            AlreadyExecuted => 19,
            InsufficientBalance { .. } => 20,
            Overflow => 21,
            Disabled => 22,
            AlreadyValidator => 23,
            NotAValidator => 24,
            BadSetChangeProof => 25,
            LockBonded => 26,
            StakeBelowMinimum { .. } => 27,
            TooManySetChanges => 28,
            SetWouldBeEmpty => 29,
            ChangeAlreadyPending => 30,
            EpochOutOfOrder => 31,
            JoinsNotAccepted => 32,
            BadGovernanceChange => 33,
            NotAdmitted => 34,
        }
    }

    /// A stable snake-case code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        use CrossChainFailure::*;
        match self {
            WrongChainForOp => "wrong_chain_for_operation",
            Attestation(_) => "attestation_refused",
            UnattestableRecord => "unattestable_record",
            CorruptRecord => "corrupt_record",
            ZeroAmount => "zero_amount",
            UnlockTimeInPast => "unlock_time_in_past",
            UnknownLock => "unknown_lock",
            NotLockOwner => "not_lock_owner",
            LockNotExpired { .. } => "lock_not_expired",
            AlreadyUnlocked => "already_unlocked",
            AlreadyStaked => "already_staked",
            NoVotingWeight => "no_voting_weight",
            BadVotingPeriod => "bad_voting_period",
            UnknownProposal => "unknown_proposal",
            VotingClosed => "voting_closed",
            VotingOpen => "voting_open",
            AlreadyVoted => "already_voted",
            NotPassed => "not_passed",
            GovernanceExpired => "governance_expired",
            AlreadyExecuted => "already_executed",
            InsufficientBalance { .. } => "insufficient_balance",
            Overflow => "overflow",
            Disabled => "cross_chain_disabled",
            AlreadyValidator => "already_validator",
            NotAValidator => "not_a_validator",
            BadSetChangeProof => "bad_set_change_proof",
            LockBonded => "lock_bonded",
            StakeBelowMinimum { .. } => "stake_below_minimum",
            TooManySetChanges => "too_many_set_changes",
            SetWouldBeEmpty => "set_would_be_empty",
            ChangeAlreadyPending => "change_already_pending",
            EpochOutOfOrder => "epoch_out_of_order",
            JoinsNotAccepted => "joins_not_accepted",
            BadGovernanceChange => "bad_governance_change",
            NotAdmitted => "not_admitted",
        }
    }
}

impl Encode for CrossChainFailure {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            CrossChainFailure::Attestation(refusal) => out.push(*refusal as u8),
            CrossChainFailure::LockNotExpired {
                unlock_at_ms,
                now_ms,
            } => {
                unlock_at_ms.encode_to(out);
                now_ms.encode_to(out);
            }
            CrossChainFailure::InsufficientBalance { available, needed } => {
                available.encode_to(out);
                needed.encode_to(out);
            }
            CrossChainFailure::StakeBelowMinimum { stake, min } => {
                stake.encode_to(out);
                min.encode_to(out);
            }
            _ => {}
        }
    }
}

impl Decode for CrossChainFailure {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use CrossChainFailure::*;
        let tag = r.read_u8("cross-chain failure")?;
        let unit = [
            WrongChainForOp,
            UnattestableRecord,
            CorruptRecord,
            ZeroAmount,
            UnlockTimeInPast,
            UnknownLock,
            NotLockOwner,
            AlreadyUnlocked,
            AlreadyStaked,
            NoVotingWeight,
            BadVotingPeriod,
            UnknownProposal,
            VotingClosed,
            VotingOpen,
            AlreadyVoted,
            NotPassed,
            GovernanceExpired,
            AlreadyExecuted,
            Overflow,
            Disabled,
            AlreadyValidator,
            NotAValidator,
            BadSetChangeProof,
            LockBonded,
            TooManySetChanges,
            SetWouldBeEmpty,
            ChangeAlreadyPending,
            EpochOutOfOrder,
            JoinsNotAccepted,
            BadGovernanceChange,
            NotAdmitted,
        ];
        if let Some(failure) = unit.into_iter().find(|f| f.tag() == tag) {
            return Ok(failure);
        }
        match tag {
            1 => {
                let code = r.read_u8("attestation refusal")?;
                let refusal = ATTESTATION_REFUSALS
                    .into_iter()
                    .find(|r| *r as u8 == code)
                    .ok_or(DecodeError::UnknownTag {
                        what: "attestation refusal",
                        tag: code,
                    })?;
                Ok(Attestation(refusal))
            }
            8 => Ok(LockNotExpired {
                unlock_at_ms: r.read_u64("unlock time")?,
                now_ms: r.read_u64("block time")?,
            }),
            20 => Ok(InsufficientBalance {
                available: r.read_u64("available")?,
                needed: r.read_u64("needed")?,
            }),
            27 => Ok(StakeBelowMinimum {
                stake: r.read_u64("stake")?,
                min: r.read_u64("minimum stake")?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "cross-chain failure",
                tag,
            }),
        }
    }
}

const ATTESTATION_REFUSALS: [AttestationRefusal; 12] = {
    use AttestationRefusal::*;
    [
        WrongSourceChain,
        EpochMismatch,
        UnknownEpoch,
        CertificateWrongEpoch,
        CertificateWrongHeader,
        CertificateUnknownSigner,
        CertificateNoQuorum,
        CertificateBadSignature,
        BadKey,
        Proof,
        Stale,
        Replayed,
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Canonical + PartialEq + std::fmt::Debug>(value: T) {
        let bytes = value.to_canonical_bytes();
        assert!(bytes.len() <= T::MAX_ENCODED_LEN, "{} bound", T::NAME);
        assert_eq!(T::from_canonical_bytes(&bytes).unwrap(), value);
    }

    #[test]
    fn every_event_roundtrips_and_unknown_tags_are_refused() {
        let (id, account) = (Digest([3; 32]), Address([4; 32]));
        let change = ParameterChange {
            name: ParameterName::new(&"y".repeat(MAX_PARAMETER_NAME)).unwrap(),
            value: u64::MAX,
        };
        let events = vec![
            CrossChainEvent::SaxLocked {
                lock: id,
                owner: account,
                amount: 1,
            },
            CrossChainEvent::SaxLockAttested {
                lock: id,
                owner: account,
                amount: 2,
            },
            CrossChainEvent::SaxUnlockRequested { lock: id },
            CrossChainEvent::SaxReleased {
                lock: id,
                owner: account,
                amount: 3,
            },
            CrossChainEvent::SaxUnlockCompleted { lock: id },
            CrossChainEvent::ProposalOpened { proposal: id },
            CrossChainEvent::VoteCast {
                proposal: id,
                voter: account,
                weight: 4,
            },
            CrossChainEvent::ProposalFinalized {
                proposal: id,
                status: ProposalStatus::RejectedThreshold,
            },
            CrossChainEvent::GovernanceExecuted {
                proposal: id,
                change: change.into(),
            },
            CrossChainEvent::GovernanceExecuted {
                proposal: id,
                change: GovernanceChange::ValidatorStake {
                    member: id,
                    stake: u64::MAX,
                },
            },
            CrossChainEvent::ValidatorJoinRequested {
                validator: id,
                owner: account,
                stake: u64::MAX,
            },
            CrossChainEvent::ValidatorLeaveRequested { validator: id },
            CrossChainEvent::EpochBoundaryReached {
                epoch: u64::MAX,
                validators: u32::MAX,
                set: id,
            },
        ];
        let names: std::collections::BTreeSet<_> = events.iter().map(|e| e.name()).collect();
        assert_eq!(names.len() + 1, events.len(), "one name per kind");
        let block = BlockEvents(
            events
                .into_iter()
                .enumerate()
                .map(|(i, event)| TxEvent {
                    tx: Digest([i as u8; 32]),
                    event,
                })
                .collect(),
        );
        let longest = block.0.iter().map(|e| {
            let mut out = Vec::new();
            e.encode_to(&mut out);
            out.len()
        });
        assert!(longest.max().unwrap() <= MAX_TX_EVENT_LEN);
        roundtrip(block.clone());
        roundtrip(BlockEvents::default());
        let mut bytes = block.to_canonical_bytes();
        // The first event's tag follows the version, the count and its digest.
        bytes[1 + 4 + 32] = 12;
        assert!(matches!(
            BlockEvents::from_canonical_bytes(&bytes),
            Err(DecodeError::UnknownTag {
                what: "cross-chain event",
                tag: 12
            })
        ));
    }

    #[test]
    fn records_roundtrip_within_their_bounds() {
        let owner = Address([7; 32]);
        let name = ParameterName::new(&"x".repeat(MAX_PARAMETER_NAME)).unwrap();
        roundtrip(LockRecord {
            owner,
            amount: u64::MAX,
            unlock_at_ms: 9,
            status: LockStatus::Released { at_ms: u64::MAX },
        });
        roundtrip(StakeRecord {
            owner,
            amount: 1,
            unlock_at_ms: 2,
            status: StakeStatus::Unlocking { requested_at_ms: 3 },
        });
        roundtrip(ProposalRecord {
            proposer: owner,
            change: ParameterChange {
                name: name.clone(),
                value: u64::MAX,
            }
            .into(),
            voting_deadline_ms: u64::MAX,
            execute_by_ms: u64::MAX,
            total_stake: u64::MAX,
            votes_for: u64::MAX,
            votes_against: u64::MAX,
            status: ProposalStatus::RejectedThreshold,
        });
        roundtrip(VoteRecord {
            approve: true,
            weight: 5,
        });
        roundtrip(GovernanceExecution {
            change: ParameterChange { name, value: 1 }.into(),
            executed_at_ms: u64::MAX,
        });
        for change in [
            GovernanceChange::RemoveValidator {
                member: Digest([9; 32]),
            },
            GovernanceChange::ValidatorStake {
                member: Digest([9; 32]),
                stake: u64::MAX,
            },
            GovernanceChange::AdmitValidator {
                member: Digest([9; 32]),
                stake: 1,
            },
        ] {
            roundtrip(GovernanceExecution {
                change,
                executed_at_ms: 1,
            });
        }
        let mut bytes = GovernanceExecution {
            change: GovernanceChange::RemoveValidator {
                member: Digest::ZERO,
            },
            executed_at_ms: 1,
        }
        .to_canonical_bytes();
        bytes[1] = 4;
        assert!(matches!(
            GovernanceExecution::from_canonical_bytes(&bytes),
            Err(DecodeError::UnknownTag {
                what: "governance change",
                tag: 4
            })
        ));
        roundtrip(ParameterRecord {
            value: 3,
            proposal: Digest::ZERO,
        });
    }

    #[test]
    fn parameter_names_are_checked() {
        assert!(ParameterName::new("alpha.block_time-ms2").is_ok());
        for bad in [
            "",
            "Upper",
            "space here",
            &"x".repeat(MAX_PARAMETER_NAME + 1),
        ] {
            assert!(ParameterName::new(bad).is_err(), "{bad:?}");
        }
        let name = ParameterName::new("gov.id").unwrap();
        assert_eq!(&name.record_id()[..6], b"gov.id");
        assert!(name.record_id()[6..].iter().all(|b| *b == 0));
    }

    #[test]
    fn record_keys_parse_back_and_refuse_other_keys() {
        let key = RecordKey::new(RecordKind::Vote, [3; 32]);
        assert_eq!(RecordKey::from_state_key(&key.state_key()), Some(key));
        let mut other = key.state_key();
        other[1] = 200;
        assert_eq!(RecordKey::from_state_key(&other), None);
        assert_eq!(RecordKey::from_state_key(b"A"), None);
    }

    #[test]
    fn failures_roundtrip_and_unknown_tags_are_refused() {
        let mut all = vec![
            CrossChainFailure::LockNotExpired {
                unlock_at_ms: 1,
                now_ms: 2,
            },
            CrossChainFailure::WrongChainForOp,
            CrossChainFailure::AlreadyExecuted,
            CrossChainFailure::InsufficientBalance {
                available: 3,
                needed: 4,
            },
            CrossChainFailure::Overflow,
            CrossChainFailure::StakeBelowMinimum { stake: 1, min: 2 },
            CrossChainFailure::EpochOutOfOrder,
            CrossChainFailure::LockBonded,
            CrossChainFailure::JoinsNotAccepted,
            CrossChainFailure::BadGovernanceChange,
            CrossChainFailure::NotAdmitted,
        ];
        all.extend(ATTESTATION_REFUSALS.map(CrossChainFailure::Attestation));
        for failure in all {
            let mut bytes = Vec::new();
            failure.encode_to(&mut bytes);
            let mut r = Reader::new(&bytes);
            assert_eq!(CrossChainFailure::decode_from(&mut r).unwrap(), failure);
            r.finish("failure").unwrap();
        }
        for bytes in [&[35u8][..], &[1, 12], &[8, 0], &[20, 1], &[27, 1]] {
            assert!(CrossChainFailure::decode_from(&mut Reader::new(bytes)).is_err());
        }
    }
}
