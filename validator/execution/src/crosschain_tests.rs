//! The cross-chain flows end to end over two record maps, with real attestations:
//! every attested record is proven against a sparse Merkle root of the source chain's
//! records and certified by three of four ML-DSA-87 validators.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::types::{
    BlockCertificate, BlockHeader, GovernanceChange, ParameterChange, ParameterName,
};
use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};

use super::*;
pub(crate) const NET: dualchain_core::crypto::NetworkId =
    dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

pub(crate) const T0: u64 = 1_767_225_600_000;
pub(crate) const ALICE: Address = Address([0xA1; 32]);
pub(crate) const BOB: Address = Address([0xB0; 32]);
pub(crate) const MALLORY: Address = Address([0x66; 32]);

pub(crate) fn keys() -> &'static [ValidatorKeypair] {
    static KEYS: OnceLock<Vec<ValidatorKeypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..4u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 90; 32]))
            .collect()
    })
}

pub(crate) fn validators() -> &'static ValidatorSet {
    static SET: OnceLock<ValidatorSet> = OnceLock::new();
    SET.get_or_init(|| {
        ValidatorSet::new(0, keys().iter().map(|k| (k.public().clone(), 1))).unwrap()
    })
}

/// One chain: its records, sAX balances (Alpha), height and clock.
pub(crate) struct Chain {
    pub(crate) id: ChainId,
    pub(crate) records: BTreeMap<RecordKey, Vec<u8>>,
    pub(crate) balances: BTreeMap<Address, u64>,
    pub(crate) height: u64,
    pub(crate) now_ms: u64,
    txs: u64,
    pub(crate) params: CrossChainParams,
    /// The epoch of the headers `attest` makes.
    pub(crate) epoch: u64,
    pub(crate) schedule: EpochSchedule,
    pub(crate) accept_joins: bool,
}

impl Chain {
    /// A chain at genesis: the set of epoch 0 and its epoch record, Alice and Bob funded.
    pub(crate) fn new(id: ChainId) -> Self {
        Self {
            id,
            records: crate::epochs::genesis_records(validators())
                .into_iter()
                .collect(),
            balances: BTreeMap::from([(ALICE, 1_000), (BOB, 500)]),
            height: 0,
            now_ms: T0,
            txs: 0,
            params: CrossChainParams::default(),
            epoch: 0,
            schedule: EpochSchedule::new(10),
            accept_joins: true,
        }
    }

    /// Runs `op` from `sender` in a new block and applies its effects.
    pub(crate) fn run(&mut self, sender: Address, op: CrossChainOp) -> Result<CrossChainEvent, F> {
        self.txs += 1;
        self.height += 1;
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&self.txs.to_le_bytes());
        digest[8] = self.id as u8;
        let sets = |epoch: u64| (epoch == 0).then(validators);
        let env = CrossChainEnv {
            chain: self.id,
            now_ms: self.now_ms,
            tx_digest: Digest(digest),
            sender,
            sender_balance: self.balances.get(&sender).copied().unwrap_or(0),
            params: &self.params,
            source_sets: &sets,
            certificates: None,
            network: NET,
            epochs: self.schedule,
            accept_joins: self.accept_joins,
        };
        let effects = apply(&env, &op, &self.records).expect("no storage error")?;
        for (key, value) in effects.writes {
            match value {
                Some(value) => self.records.insert(key, value),
                None => self.records.remove(&key),
            };
        }
        *self.balances.entry(sender).or_default() -= effects.debit_sender;
        if let Some((owner, amount)) = effects.credit {
            *self.balances.entry(owner).or_default() += amount;
        }
        Ok(effects.event)
    }

    /// An attestation of the record under `key` at the current height, certified by
    /// validators 0, 1 and 2 of the set of `self.epoch`.
    pub(crate) fn attest(&self, key: RecordKey) -> Attestation {
        let mut tree = SparseMerkleTree::new();
        for (k, v) in &self.records {
            tree.insert(hash_key(&k.state_key()), hash_value(v));
        }
        let header = BlockHeader {
            chain: self.id,
            height: self.height,
            epoch: self.epoch,
            slot: self.height,
            parent: Digest::ZERO,
            timestamp_ms: self.now_ms,
            vertices_root: Digest::ZERO,
            transactions_root: Digest::ZERO,
            receipts_root: Digest::ZERO,
            state_root: Digest(tree.root()),
            tx_count: 1,
        };
        let state_key = key.state_key();
        Attestation {
            certificate: BlockCertificate::from_votes(
                &header,
                (0..3u16).map(|i| {
                    (
                        i,
                        BlockCertificate::vote(&keys()[usize::from(i)], &header, NET),
                    )
                }),
            ),
            header,
            value: self.records[&key].clone(),
            proof: tree.prove(&hash_key(&state_key)),
            key: state_key.to_vec(),
        }
    }

    pub(crate) fn decode<T: Canonical>(&self, kind: RecordKind, id: [u8; 32]) -> Option<T> {
        let bytes = self.records.get(&RecordKey::new(kind, id))?;
        Some(T::from_canonical_bytes(bytes).unwrap())
    }

    fn weight(&self, owner: Address) -> u64 {
        self.records
            .get(&RecordKey::new(RecordKind::StakeWeight, owner.0))
            .map_or(0, |b| decode_u64_record(b).unwrap())
    }
}

pub(crate) fn lock_id(event: &CrossChainEvent) -> Digest {
    match event {
        CrossChainEvent::SaxLocked { lock, .. } => *lock,
        other => panic!("expected SaxLocked, got {other:?}"),
    }
}

pub(crate) fn attest(att: Attestation) -> CrossChainOp {
    CrossChainOp::Attest(Box::new(att))
}

/// Alice locks 400 sAX on Alpha until T0 + 60 s; the lock is attested on Delta.
fn locked_and_staked() -> (Chain, Chain, Digest) {
    let (mut alpha, mut delta) = (Chain::new(ChainId::Alpha), Chain::new(ChainId::Delta));
    let lock = lock_id(
        &alpha
            .run(
                ALICE,
                CrossChainOp::SaxLock {
                    amount: 400,
                    unlock_at_ms: T0 + 60_000,
                },
            )
            .unwrap(),
    );
    assert_eq!(alpha.balances[&ALICE], 600);
    let att = alpha.attest(RecordKey::new(RecordKind::Lock, lock.0));
    let event = delta.run(MALLORY, attest(att)).unwrap();
    assert_eq!(
        event,
        CrossChainEvent::SaxLockAttested {
            lock,
            owner: ALICE,
            amount: 400
        }
    );
    (alpha, delta, lock)
}

#[test]
fn lock_stake_unlock_and_release_leave_both_chains_agreeing() {
    let (mut alpha, mut delta, lock) = locked_and_staked();
    assert_eq!(delta.weight(ALICE), 400);

    // Unlock: only after the time lock, only by the owner.
    assert_eq!(
        delta.run(ALICE, CrossChainOp::SaxUnlock { lock }),
        Err(F::LockNotExpired {
            unlock_at_ms: T0 + 60_000,
            now_ms: T0
        })
    );
    delta.now_ms = T0 + 60_000;
    assert_eq!(
        delta.run(BOB, CrossChainOp::SaxUnlock { lock }),
        Err(F::NotLockOwner)
    );
    delta.run(ALICE, CrossChainOp::SaxUnlock { lock }).unwrap();
    assert_eq!(delta.weight(ALICE), 0, "an unlocking stake does not vote");
    assert_eq!(
        delta.run(ALICE, CrossChainOp::SaxUnlock { lock }),
        Err(F::AlreadyUnlocked)
    );

    // Alpha releases on its own clock: early there is refused and nothing is consumed.
    let request = delta.attest(RecordKey::new(RecordKind::Stake, lock.0));
    alpha.now_ms = T0 + 59_999;
    assert!(matches!(
        alpha.run(MALLORY, attest(request.clone())),
        Err(F::LockNotExpired { .. })
    ));
    alpha.now_ms = T0 + 75_000;
    assert_eq!(
        alpha.run(MALLORY, attest(request.clone())).unwrap(),
        CrossChainEvent::SaxReleased {
            lock,
            owner: ALICE,
            amount: 400
        }
    );
    assert_eq!(alpha.balances[&ALICE], 1_000, "the lock is credited back");
    assert_eq!(
        alpha.run(MALLORY, attest(request)),
        Err(F::Attestation(AttestationRefusal::Replayed))
    );

    // The release goes back to Delta: both chains now hold "over" for the lock.
    let release = alpha.attest(RecordKey::new(RecordKind::Lock, lock.0));
    assert_eq!(
        delta.run(BOB, attest(release)).unwrap(),
        CrossChainEvent::SaxUnlockCompleted { lock }
    );
    let alpha_lock: LockRecord = alpha.decode(RecordKind::Lock, lock.0).unwrap();
    let delta_stake: StakeRecord = delta.decode(RecordKind::Stake, lock.0).unwrap();
    assert_eq!(
        alpha_lock.status,
        LockStatus::Released { at_ms: T0 + 75_000 }
    );
    assert_eq!(
        delta_stake.status,
        StakeStatus::Released { at_ms: T0 + 75_000 }
    );
    assert_eq!(
        (alpha_lock.owner, alpha_lock.amount),
        (delta_stake.owner, delta_stake.amount)
    );
}

#[test]
fn a_lock_is_staked_once_and_locks_need_funds_and_a_future_unlock_time() {
    let (mut alpha, mut delta, lock) = locked_and_staked();
    let again = alpha.attest(RecordKey::new(RecordKind::Lock, lock.0));
    assert_eq!(
        delta.run(BOB, attest(again)),
        Err(F::Attestation(AttestationRefusal::Replayed)),
        "the same record version at a later height is the same attestation"
    );
    assert_eq!(
        alpha.run(
            BOB,
            CrossChainOp::SaxLock {
                amount: 501,
                unlock_at_ms: T0 + 1
            }
        ),
        Err(F::InsufficientBalance {
            available: 500,
            needed: 501
        })
    );
    for (amount, until, failure) in [(0, T0 + 1, F::ZeroAmount), (1, T0, F::UnlockTimeInPast)] {
        let op = CrossChainOp::SaxLock {
            amount,
            unlock_at_ms: until,
        };
        assert_eq!(alpha.run(BOB, op), Err(failure));
    }
    assert_eq!(
        delta.run(
            ALICE,
            CrossChainOp::SaxLock {
                amount: 1,
                unlock_at_ms: T0 + 1
            }
        ),
        Err(F::WrongChainForOp)
    );
}

/// Bob locks 5 sAX on Alpha (a lock not yet attested); the key of its record.
fn bob_locks(alpha: &mut Chain) -> RecordKey {
    let lock = lock_id(
        &alpha
            .run(
                BOB,
                CrossChainOp::SaxLock {
                    amount: 5,
                    unlock_at_ms: T0 + 1,
                },
            )
            .unwrap(),
    );
    RecordKey::new(RecordKind::Lock, lock.0)
}

#[test]
fn forged_and_misdirected_attestations_are_refused_with_their_reason() {
    let (mut alpha, mut delta, lock) = locked_and_staked();
    // A second lock, not yet attested, so the forgeries are not refused as replays.
    let key = bob_locks(&mut alpha);
    let before = delta.records.clone();

    let mut inflated = alpha.attest(key);
    let mut record = LockRecord::from_canonical_bytes(&inflated.value).unwrap();
    record.amount = 1_000_000;
    inflated.value = record.to_canonical_bytes();
    assert_eq!(
        delta.run(MALLORY, attest(inflated)),
        Err(F::Attestation(AttestationRefusal::Proof))
    );

    let mut unsigned = alpha.attest(key);
    unsigned.certificate.signatures.truncate(2);
    assert_eq!(
        delta.run(MALLORY, attest(unsigned)),
        Err(F::Attestation(AttestationRefusal::CertificateNoQuorum))
    );

    // Delta's own record sent back to Delta, and an Alpha record Delta does not act on.
    let own = delta.attest(RecordKey::new(RecordKind::Stake, lock.0));
    assert_eq!(
        delta.run(MALLORY, attest(own)),
        Err(F::Attestation(AttestationRefusal::WrongSourceChain))
    );
    alpha.records.insert(
        RecordKey::new(RecordKind::Parameter, [1; 32]),
        b"anything".to_vec(),
    );
    let parameter = alpha.attest(RecordKey::new(RecordKind::Parameter, [1; 32]));
    assert_eq!(
        delta.run(MALLORY, attest(parameter)),
        Err(F::UnattestableRecord)
    );
    assert_eq!(delta.records, before, "refused operations change nothing");

    // Stale: far behind the newest source height Delta accepted.
    let old = alpha.attest(key);
    delta.records.insert(
        RecordKey::singleton(RecordKind::SourceHeight),
        (old.header.height + 601).to_le_bytes().to_vec(),
    );
    assert_eq!(
        delta.run(MALLORY, attest(old)),
        Err(F::Attestation(AttestationRefusal::Stale))
    );
}

/// Alice (400) and Bob (300) hold stake; a proposal to set `gov.id` to 7.
fn governance() -> (Chain, Chain, Digest) {
    governance_of(
        ParameterChange {
            name: ParameterName::new("gov.id").unwrap(),
            value: 7,
        }
        .into(),
    )
}

/// Alice (400) and Bob (300) hold stake; Alice proposes `change`.
pub(crate) fn governance_of(change: GovernanceChange) -> (Chain, Chain, Digest) {
    let (mut alpha, mut delta, _) = locked_and_staked();
    let bob_lock = lock_id(
        &alpha
            .run(
                BOB,
                CrossChainOp::SaxLock {
                    amount: 300,
                    unlock_at_ms: T0 + 600_000,
                },
            )
            .unwrap(),
    );
    let att = alpha.attest(RecordKey::new(RecordKind::Lock, bob_lock.0));
    delta.run(ALICE, attest(att)).unwrap();
    assert_eq!(
        delta.run(
            MALLORY,
            CrossChainOp::Propose {
                change: change.clone(),
                voting_period_ms: 30_000
            }
        ),
        Err(F::NoVotingWeight)
    );
    let event = delta
        .run(
            ALICE,
            CrossChainOp::Propose {
                change,
                voting_period_ms: 30_000,
            },
        )
        .unwrap();
    let CrossChainEvent::ProposalOpened { proposal } = event else {
        panic!("expected ProposalOpened, got {event:?}");
    };
    (alpha, delta, proposal)
}

/// Alice approves `proposal`, the vote closes passed, and the result is attested
/// from Delta, within Alpha's execution window.
pub(crate) fn passed(alpha: &mut Chain, delta: &mut Chain, proposal: Digest) -> Attestation {
    let approve = CrossChainOp::Vote {
        proposal,
        approve: true,
    };
    delta.run(ALICE, approve).unwrap();
    let record: ProposalRecord = delta.decode(RecordKind::Proposal, proposal.0).unwrap();
    delta.now_ms = delta.now_ms.max(record.voting_deadline_ms);
    let finalize = CrossChainOp::FinalizeProposal { proposal };
    assert_eq!(
        delta.run(MALLORY, finalize).unwrap(),
        CrossChainEvent::ProposalFinalized {
            proposal,
            status: ProposalStatus::Passed
        }
    );
    alpha.now_ms = alpha.now_ms.max(record.voting_deadline_ms + 15_000);
    delta.attest(RecordKey::new(RecordKind::Proposal, proposal.0))
}

#[test]
fn a_passed_proposal_is_attested_and_executed_on_alpha_once() {
    let (mut alpha, mut delta, proposal) = governance();
    delta
        .run(
            ALICE,
            CrossChainOp::Vote {
                proposal,
                approve: true,
            },
        )
        .unwrap();
    assert_eq!(
        delta.run(
            ALICE,
            CrossChainOp::Vote {
                proposal,
                approve: true
            }
        ),
        Err(F::AlreadyVoted)
    );
    delta
        .run(
            BOB,
            CrossChainOp::Vote {
                proposal,
                approve: false,
            },
        )
        .unwrap();
    assert_eq!(
        delta.run(MALLORY, CrossChainOp::FinalizeProposal { proposal }),
        Err(F::VotingOpen)
    );
    delta.now_ms = T0 + 30_000;
    assert_eq!(
        delta.run(
            MALLORY,
            CrossChainOp::Vote {
                proposal,
                approve: true
            }
        ),
        Err(F::VotingClosed)
    );
    assert_eq!(
        delta
            .run(MALLORY, CrossChainOp::FinalizeProposal { proposal })
            .unwrap(),
        CrossChainEvent::ProposalFinalized {
            proposal,
            status: ProposalStatus::Passed
        },
        "400 of 700 cast approve: over the 50% threshold, and all stake voted"
    );

    let result = delta.attest(RecordKey::new(RecordKind::Proposal, proposal.0));
    alpha.now_ms = T0 + 45_000;
    let event = alpha.run(MALLORY, attest(result.clone())).unwrap();
    assert!(matches!(event, CrossChainEvent::GovernanceExecuted { .. }));
    let name = ParameterName::new("gov.id").unwrap();
    let parameter: ParameterRecord = alpha
        .decode(RecordKind::Parameter, name.record_id())
        .unwrap();
    assert_eq!(parameter, ParameterRecord { value: 7, proposal });
    assert_eq!(
        alpha.run(MALLORY, attest(result)),
        Err(F::Attestation(AttestationRefusal::Replayed))
    );
}

#[test]
fn rejected_or_late_results_do_not_execute() {
    // Only Bob (300 of 700) votes, against: 300/700 meets the one-third quorum, and
    // no approving weight fails the threshold.
    let (mut alpha, mut delta, proposal) = governance();
    delta
        .run(
            BOB,
            CrossChainOp::Vote {
                proposal,
                approve: false,
            },
        )
        .unwrap();
    delta.now_ms = T0 + 30_000;
    delta
        .run(MALLORY, CrossChainOp::FinalizeProposal { proposal })
        .unwrap();
    let record: ProposalRecord = delta.decode(RecordKind::Proposal, proposal.0).unwrap();
    assert_eq!(record.status, ProposalStatus::RejectedThreshold);
    let result = delta.attest(RecordKey::new(RecordKind::Proposal, proposal.0));
    assert_eq!(alpha.run(MALLORY, attest(result)), Err(F::NotPassed));

    // Nobody votes: no quorum. A passed result attested too late: expired.
    let (mut alpha, mut delta, proposal) = governance();
    delta.now_ms = T0 + 30_000;
    delta
        .run(MALLORY, CrossChainOp::FinalizeProposal { proposal })
        .unwrap();
    let record: ProposalRecord = delta.decode(RecordKind::Proposal, proposal.0).unwrap();
    assert_eq!(record.status, ProposalStatus::RejectedNoQuorum);

    let (_, mut late, proposal) = governance();
    late.run(
        ALICE,
        CrossChainOp::Vote {
            proposal,
            approve: true,
        },
    )
    .unwrap();
    late.now_ms = T0 + 30_000;
    late.run(MALLORY, CrossChainOp::FinalizeProposal { proposal })
        .unwrap();
    let result = late.attest(RecordKey::new(RecordKind::Proposal, proposal.0));
    let window = CrossChainParams::default().execution_window_ms;
    alpha.now_ms = T0 + 30_000 + window + 1;
    assert_eq!(
        alpha.run(MALLORY, attest(result)),
        Err(F::GovernanceExpired)
    );
}

#[test]
fn params_are_validated() {
    assert!(CrossChainParams::default().validate().is_ok());
    let bad = CrossChainParams {
        threshold_bps: 10_000,
        ..CrossChainParams::default()
    };
    assert!(bad.validate().is_err());
}

/// What a random schedule may do next.
#[derive(Clone, Debug)]
enum Step {
    Lock {
        bob: bool,
        amount: u64,
        secs: u64,
    },
    /// Relay the `n`-th Alpha lock record (held or released) to Delta.
    RelayLock(usize),
    Unlock {
        bob: bool,
        n: usize,
    },
    /// Relay the `n`-th Delta stake record to Alpha.
    RelayStake(usize),
    Wait(u64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<bool>(), 0..700u64, 0..120u64).prop_map(|(bob, amount, secs)| Step::Lock {
            bob,
            amount,
            secs
        }),
        (0..6usize).prop_map(Step::RelayLock),
        (any::<bool>(), 0..6usize).prop_map(|(bob, n)| Step::Unlock { bob, n }),
        (0..6usize).prop_map(Step::RelayStake),
        (0..90u64).prop_map(Step::Wait),
    ]
}

fn ids(chain: &Chain, kind: RecordKind) -> Vec<[u8; 32]> {
    chain
        .records
        .keys()
        .filter(|k| k.kind == kind)
        .map(|k| k.id)
        .collect()
}

/// sAX is conserved on Alpha, stake adds up on Delta, and no stake contradicts its lock.
fn check_invariants(alpha: &Chain, delta: &Chain) {
    let locks: Vec<LockRecord> = ids(alpha, RecordKind::Lock)
        .into_iter()
        .map(|id| alpha.decode(RecordKind::Lock, id).unwrap())
        .collect();
    let held: u64 = locks
        .iter()
        .filter(|l| l.status == LockStatus::Locked)
        .map(|l| l.amount)
        .sum();
    assert_eq!(alpha.balances.values().sum::<u64>() + held, 1_500);

    let mut active = 0;
    for id in ids(delta, RecordKind::Stake) {
        let stake: StakeRecord = delta.decode(RecordKind::Stake, id).unwrap();
        let lock: LockRecord = alpha
            .decode(RecordKind::Lock, id)
            .expect("every stake has its lock on Alpha");
        assert_eq!(
            (stake.owner, stake.amount, stake.unlock_at_ms),
            (lock.owner, lock.amount, lock.unlock_at_ms)
        );
        match (stake.status, lock.status) {
            (StakeStatus::Active, LockStatus::Locked) => active += stake.amount,
            (StakeStatus::Unlocking { .. }, _) => {}
            (StakeStatus::Released { at_ms }, LockStatus::Released { at_ms: released }) => {
                assert_eq!(at_ms, released)
            }
            (stake, lock) => panic!("stake {stake:?} contradicts lock {lock:?}"),
        }
    }
    let total = delta
        .records
        .get(&RecordKey::singleton(RecordKind::TotalStake))
        .map_or(0, |b| decode_u64_record(b).unwrap());
    assert_eq!(total, active);
    assert_eq!(delta.weight(ALICE) + delta.weight(BOB), active);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn random_schedules_keep_both_chains_consistent(
        steps in proptest::collection::vec(step(), 1..30)
    ) {
        let (mut alpha, mut delta) = (Chain::new(ChainId::Alpha), Chain::new(ChainId::Delta));
        for step in steps {
            // Refusals are expected (early unlocks, replays, others' locks): the
            // invariants must hold whatever was refused.
            let (alpha_locks, stakes) = (ids(&alpha, RecordKind::Lock), ids(&delta, RecordKind::Stake));
            match step {
                Step::Lock { bob, amount, secs } => {
                    let op = CrossChainOp::SaxLock {
                        amount,
                        unlock_at_ms: alpha.now_ms + secs * 1_000,
                    };
                    let _ = alpha.run(if bob { BOB } else { ALICE }, op);
                }
                Step::RelayLock(n) => {
                    if let Some(id) = alpha_locks.get(n) {
                        let att = alpha.attest(RecordKey::new(RecordKind::Lock, *id));
                        let _ = delta.run(MALLORY, attest(att));
                    }
                }
                Step::Unlock { bob, n } => {
                    if let Some(id) = stakes.get(n) {
                        let op = CrossChainOp::SaxUnlock { lock: Digest(*id) };
                        let _ = delta.run(if bob { BOB } else { ALICE }, op);
                    }
                }
                Step::RelayStake(n) => {
                    if let Some(id) = stakes.get(n) {
                        let att = delta.attest(RecordKey::new(RecordKind::Stake, *id));
                        let _ = alpha.run(MALLORY, attest(att));
                    }
                }
                Step::Wait(secs) => {
                    alpha.now_ms += secs * 1_000;
                    delta.now_ms += secs * 1_000;
                }
            }
            check_invariants(&alpha, &delta);
        }
    }
}

/// Admission refuses an `Attest` that could only fail, with the executor's reasons,
/// and passes one that may apply without consuming it.
#[test]
fn admission_refuses_attestations_that_could_only_fail() {
    let (mut alpha, mut delta, lock) = locked_and_staked();
    let setup = CrossChainSetup::new(
        CrossChainParams::default(),
        BTreeMap::from([(0, validators().clone())]),
        NET,
    );
    let admit = |records: &BTreeMap<RecordKey, Vec<u8>>, att: &Attestation| {
        check_attest_admission(&setup, ChainId::Delta, att, records).expect("no storage error")
    };
    let replay = alpha.attest(RecordKey::new(RecordKind::Lock, lock.0));
    assert_eq!(
        admit(&delta.records, &replay),
        Err(F::Attestation(AttestationRefusal::Replayed))
    );

    let key = bob_locks(&mut alpha);
    let fresh = alpha.attest(key);
    assert_eq!(admit(&delta.records, &fresh), Ok(()));
    assert_eq!(
        admit(&delta.records, &fresh),
        Ok(()),
        "admission consumes nothing"
    );

    let mut inflated = fresh.clone();
    let mut record = LockRecord::from_canonical_bytes(&inflated.value).unwrap();
    record.amount = 1_000_000;
    inflated.value = record.to_canonical_bytes();
    assert_eq!(
        admit(&delta.records, &inflated),
        Err(F::Attestation(AttestationRefusal::Proof))
    );
    let mut unsigned = fresh.clone();
    unsigned.certificate.signatures.truncate(2);
    assert_eq!(
        admit(&delta.records, &unsigned),
        Err(F::Attestation(AttestationRefusal::CertificateNoQuorum))
    );
    let mut huge = fresh.clone();
    huge.value = vec![0; 1 << 20];
    assert_eq!(admit(&delta.records, &huge), Err(F::UnattestableRecord));
    // Delta's own record, and an Alpha record Delta does not act on.
    let own = delta.attest(RecordKey::new(RecordKind::Stake, lock.0));
    assert_eq!(admit(&delta.records, &own), Err(F::UnattestableRecord));
    alpha.records.insert(
        RecordKey::new(RecordKind::Parameter, [1; 32]),
        b"anything".to_vec(),
    );
    let parameter = alpha.attest(RecordKey::new(RecordKind::Parameter, [1; 32]));
    assert_eq!(
        admit(&delta.records, &parameter),
        Err(F::UnattestableRecord)
    );

    delta.records.insert(
        RecordKey::singleton(RecordKind::SourceHeight),
        (fresh.header.height + 601).to_le_bytes().to_vec(),
    );
    assert_eq!(
        admit(&delta.records, &fresh),
        Err(F::Attestation(AttestationRefusal::Stale))
    );
}
