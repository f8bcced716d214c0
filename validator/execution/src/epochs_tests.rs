//! Validator-set changes over the cross-chain harness's two record maps: requests on
//! Alpha, the boundary that applies them, Delta taking the set from its attestation,
//! and the bond that keeps a member's lock from being released.

use std::sync::OnceLock;

use dualchain_core::crypto::{SigningDomain, ValidatorKeypair};
use dualchain_core::types::{
    Address, AttestationRefusal, ChainId, CrossChainOp, CrossChainParams, GovernanceChange,
    GovernanceExecution, MemberRecord, StakeRecord, StakeStatus, set_change_keypair, set_digest,
};

use super::*;
use crate::crosschain::tests::{
    ALICE, BOB, Chain, MALLORY, NET, T0, attest, governance_of, keys, lock_id, passed, validators,
};

/// Keys of validators that are not in the genesis set.
fn newcomers() -> &'static [ValidatorKeypair] {
    static KEYS: OnceLock<Vec<ValidatorKeypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..2u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 150; 32]))
            .collect()
    })
}

fn join_op(key: &ValidatorKeypair, sender: &Address, lock: Digest, epoch: u64) -> CrossChainOp {
    let message = set_change_message(SetChangeKind::Join, sender, Some(&lock), epoch);
    CrossChainOp::ValidatorJoin {
        key: key.public().clone(),
        lock,
        proof: key.sign(
            SigningDomain::ValidatorSetChange.on(NET),
            message.as_bytes(),
        ),
    }
}

fn leave_op(key: &ValidatorKeypair, sender: &Address, epoch: u64) -> CrossChainOp {
    let message = set_change_message(SetChangeKind::Leave, sender, None, epoch);
    CrossChainOp::ValidatorLeave {
        key: key.public().clone(),
        proof: key.sign(
            SigningDomain::ValidatorSetChange.on(NET),
            message.as_bytes(),
        ),
    }
}

/// `owner` locks `amount` sAX until T0 + 60 s on Alpha.
fn lock(alpha: &mut Chain, owner: Address, amount: u64) -> Digest {
    let op = CrossChainOp::SaxLock {
        amount,
        unlock_at_ms: T0 + 60_000,
    };
    lock_id(&alpha.run(owner, op).unwrap())
}

/// Runs Alpha's boundary: the harness's next block is the boundary block.
fn boundary(alpha: &mut Chain) -> CrossChainEvent {
    alpha.height = alpha.schedule.boundary_of(alpha.epoch).unwrap();
    let (writes, event) = close_epoch(&alpha.records, alpha.schedule, alpha.height).unwrap();
    for (key, value) in writes {
        match value {
            Some(value) => alpha.records.insert(key, value),
            None => alpha.records.remove(&key),
        };
    }
    event
}

fn set_of(chain: &Chain, epoch: u64) -> ValidatorSet {
    validator_set(&chain.records, epoch).unwrap().unwrap()
}

#[test]
fn a_join_enters_the_next_set_at_the_boundary_and_a_leave_leaves_it() {
    let mut alpha = Chain::new(ChainId::Alpha);
    let stake = lock(&mut alpha, ALICE, 400);
    let newcomer = &newcomers()[0];
    let event = alpha
        .run(ALICE, join_op(newcomer, &ALICE, stake, 0))
        .unwrap();
    assert_eq!(
        event,
        CrossChainEvent::ValidatorJoinRequested {
            validator: newcomer.public().id(),
            owner: ALICE,
            stake: 400
        }
    );
    let leaver = &keys()[1];
    alpha.run(BOB, leave_op(leaver, &BOB, 0)).unwrap();
    // Nothing changes before the boundary.
    assert_eq!(set_of(&alpha, 0), *validators());
    assert!(validator_set(&alpha.records, 1).unwrap().is_none());

    let event = boundary(&mut alpha);
    let next = set_of(&alpha, 1);
    let members: Vec<_> = next.validators().iter().map(|v| &v.public_key).collect();
    assert_eq!(
        members,
        [
            keys()[0].public(),
            keys()[2].public(),
            keys()[3].public(),
            newcomer.public()
        ]
    );
    assert_eq!(next.get(3).unwrap().stake, 400);
    let record: EpochRecord = alpha.decode(RecordKind::Epoch, [0; 32]).unwrap();
    assert_eq!(
        record,
        EpochRecord::genesis(validators()).successor(&next, 11)
    );
    assert_eq!(
        event,
        CrossChainEvent::EpochBoundaryReached {
            epoch: 1,
            validators: 4,
            set: set_digest(&next)
        }
    );
    assert!(
        !alpha.records.contains_key(&pending_key()),
        "the requests are spent"
    );
    let member: MemberRecord = alpha
        .decode(RecordKind::Member, member_id(newcomer.public()))
        .unwrap();
    assert_eq!(
        member,
        MemberRecord {
            owner: ALICE,
            lock: stake
        }
    );

    // In epoch 1 the newcomer leaves again: its bond and membership go at the boundary.
    alpha.epoch = 1;
    alpha.run(ALICE, leave_op(newcomer, &ALICE, 1)).unwrap();
    boundary(&mut alpha);
    assert_eq!(set_of(&alpha, 2).index_of(newcomer.public()), None);
    assert!(
        alpha
            .decode::<MemberRecord>(RecordKind::Member, member_id(newcomer.public()))
            .is_none()
    );
    assert!(
        !alpha
            .records
            .contains_key(&RecordKey::new(RecordKind::Bond, stake.0))
    );
}

#[test]
fn requests_are_refused_with_their_reason_and_change_nothing() {
    let mut alpha = Chain::new(ChainId::Alpha);
    let stake = lock(&mut alpha, ALICE, 400);
    let small = lock(&mut alpha, BOB, 5);
    alpha.params.min_validator_stake = 10;
    let newcomer = &newcomers()[0];
    let before = alpha.records.clone();
    let refusals = [
        // Signed for another epoch, by another key, or for another sender.
        (join_op(newcomer, &ALICE, stake, 1), F::BadSetChangeProof),
        (
            CrossChainOp::ValidatorJoin {
                key: newcomers()[1].public().clone(),
                lock: stake,
                proof: match join_op(newcomer, &ALICE, stake, 0) {
                    CrossChainOp::ValidatorJoin { proof, .. } => proof,
                    _ => unreachable!(),
                },
            },
            F::BadSetChangeProof,
        ),
        (join_op(newcomer, &BOB, stake, 0), F::BadSetChangeProof),
        (join_op(&keys()[2], &ALICE, stake, 0), F::AlreadyValidator),
        (
            join_op(newcomer, &ALICE, Digest([9; 32]), 0),
            F::UnknownLock,
        ),
        (leave_op(newcomer, &ALICE, 0), F::NotAValidator),
    ];
    for (op, failure) in refusals {
        assert_eq!(alpha.run(ALICE, op), Err(failure));
    }
    assert_eq!(
        alpha.run(BOB, join_op(newcomer, &BOB, stake, 0)),
        Err(F::NotLockOwner)
    );
    assert_eq!(
        alpha.run(BOB, join_op(newcomer, &BOB, small, 0)),
        Err(F::StakeBelowMinimum { stake: 5, min: 10 })
    );
    assert_eq!(alpha.records, before, "refusals write nothing");

    alpha
        .run(ALICE, join_op(newcomer, &ALICE, stake, 0))
        .unwrap();
    assert_eq!(
        alpha.run(ALICE, join_op(newcomer, &ALICE, stake, 0)),
        Err(F::ChangeAlreadyPending)
    );
    assert_eq!(
        alpha.run(ALICE, join_op(&newcomers()[1], &ALICE, stake, 0)),
        Err(F::LockBonded),
        "one lock backs one validator"
    );
    // With the newcomer joining, all four genesis validators may leave: the set keeps
    // one member.
    for key in keys() {
        alpha.run(BOB, leave_op(key, &BOB, 0)).unwrap();
    }
    assert_eq!(
        boundary(&mut alpha),
        CrossChainEvent::EpochBoundaryReached {
            epoch: 1,
            validators: 1,
            set: set_digest(&set_of(&alpha, 1)),
        }
    );
    alpha.epoch = 1;
    assert_eq!(
        alpha.run(ALICE, leave_op(newcomer, &ALICE, 1)),
        Err(F::SetWouldBeEmpty)
    );
    // A leave signed in epoch 0 does not verify in epoch 1.
    assert_eq!(
        alpha.run(ALICE, leave_op(newcomer, &ALICE, 0)),
        Err(F::BadSetChangeProof)
    );
}

/// Admission of a leave from the validator's unfunded set-change account: the
/// executor's verdict against the committed records, nothing written.
#[test]
fn admission_passes_a_leave_only_when_it_would_apply() {
    let mut alpha = Chain::new(ChainId::Alpha);
    let setup = crate::crosschain::CrossChainSetup::new(
        CrossChainParams::default(),
        std::collections::BTreeMap::from([(0, validators().clone())]),
        NET,
    );
    let member = &keys()[1];
    let own = Address::of(set_change_keypair(member).public());
    let admit = |alpha: &Chain, key: &ValidatorKeypair, sender: Address, op: CrossChainOp| {
        let CrossChainOp::ValidatorLeave { proof, .. } = op else {
            unreachable!()
        };
        crate::crosschain::check_leave_admission(
            &setup,
            sender,
            key.public(),
            &proof,
            &alpha.records,
        )
        .expect("no storage error")
    };
    let before = alpha.records.clone();
    assert_eq!(
        admit(&alpha, member, own, leave_op(member, &own, 0)),
        Ok(())
    );
    assert_eq!(alpha.records, before, "admission writes nothing");
    // Signed for another sender or epoch, or by a key outside the set.
    assert_eq!(
        admit(&alpha, member, own, leave_op(member, &ALICE, 0)),
        Err(F::BadSetChangeProof)
    );
    assert_eq!(
        admit(&alpha, member, own, leave_op(member, &own, 1)),
        Err(F::BadSetChangeProof)
    );
    let outsider = &newcomers()[0];
    assert_eq!(
        admit(&alpha, outsider, own, leave_op(outsider, &own, 0)),
        Err(F::NotAValidator)
    );
    // Once its leave is pending, another one could only fail.
    alpha.run(own, leave_op(member, &own, 0)).unwrap();
    assert_eq!(
        admit(&alpha, member, own, leave_op(member, &own, 0)),
        Err(F::ChangeAlreadyPending)
    );
}

#[test]
fn delta_takes_each_next_set_from_its_attestation_in_order() {
    let (mut alpha, mut delta) = (Chain::new(ChainId::Alpha), Chain::new(ChainId::Delta));
    // Validator 3 leaves: the harness's signers 0, 1 and 2 are then a quorum of set 1.
    alpha.run(BOB, leave_op(&keys()[3], &BOB, 0)).unwrap();
    boundary(&mut alpha);
    let first = alpha.attest(validator_set_key(1));

    // Epoch 1 on Alpha (certified by set 1) fixes epoch 2 at its boundary.
    alpha.epoch = 1;
    boundary(&mut alpha);
    let second = alpha.attest(validator_set_key(2));
    assert_eq!(
        delta.run(BOB, attest(second.clone())),
        Err(F::Attestation(AttestationRefusal::UnknownEpoch)),
        "Delta cannot check a certificate of an epoch it does not know"
    );
    // Alpha's record of epoch 2 proven by a header of epoch 0: out of order.
    alpha.epoch = 0;
    let early = alpha.attest(validator_set_key(2));
    assert_eq!(delta.run(BOB, attest(early)), Err(F::EpochOutOfOrder));

    let event = delta.run(BOB, attest(first.clone())).unwrap();
    assert_eq!(
        event,
        CrossChainEvent::EpochBoundaryReached {
            epoch: 1,
            validators: 3,
            set: set_digest(&set_of(&alpha, 1))
        }
    );
    assert_eq!(set_of(&delta, 1), set_of(&alpha, 1));
    assert_eq!(
        delta.run(BOB, attest(first)),
        Err(F::Attestation(AttestationRefusal::Replayed))
    );
    // Now set 1 is known from Delta's own records: the certificate of epoch 1 verifies.
    delta.run(BOB, attest(second)).unwrap();
    let alpha_epoch: EpochRecord = alpha.decode(RecordKind::Epoch, [0; 32]).unwrap();
    let delta_epoch: EpochRecord = delta.decode(RecordKind::Epoch, [0; 32]).unwrap();
    assert_eq!(alpha_epoch, delta_epoch, "both chains hold one epoch chain");
    assert_eq!(delta_epoch.epoch, 2);
}

#[test]
fn governance_takes_a_member_out_and_reweights_another_at_the_boundary() {
    let member = |key: &ValidatorKeypair| key.public().id();
    let remove = GovernanceChange::RemoveValidator {
        member: member(&keys()[3]),
    };
    let (mut alpha, mut delta, first) = governance_of(remove.clone());
    let result = passed(&mut alpha, &mut delta, first);
    assert_eq!(
        alpha.run(MALLORY, attest(result)).unwrap(),
        CrossChainEvent::GovernanceExecuted {
            proposal: first,
            change: remove.clone()
        }
    );
    let propose = |change: GovernanceChange| CrossChainOp::Propose {
        change,
        voting_period_ms: 30_000,
    };
    let reweigh = GovernanceChange::ValidatorStake {
        member: member(&keys()[1]),
        stake: 5,
    };
    let second = proposal_id(&delta.run(ALICE, propose(reweigh)).unwrap());
    let result = passed(&mut alpha, &mut delta, second);
    alpha.run(MALLORY, attest(result)).unwrap();
    // The same member again, while its removal is pending: refused, and nothing
    // recorded, so the result can be relayed again.
    let third = proposal_id(&delta.run(ALICE, propose(remove)).unwrap());
    let again = passed(&mut alpha, &mut delta, third);
    assert_eq!(
        alpha.run(MALLORY, attest(again.clone())),
        Err(F::ChangeAlreadyPending)
    );
    let executed = |alpha: &Chain, p: Digest| {
        alpha
            .decode::<GovernanceExecution>(RecordKind::Governance, p.0)
            .is_some()
    };
    assert!(executed(&alpha, second) && !executed(&alpha, third));
    // Governance cannot make a stake of zero, nor touch a key that is no member.
    let zero = GovernanceChange::ValidatorStake {
        member: member(&keys()[0]),
        stake: 0,
    };
    assert_eq!(delta.run(ALICE, propose(zero)), Err(F::BadGovernanceChange));
    let stranger = GovernanceChange::RemoveValidator {
        member: member(&newcomers()[0]),
    };
    let fourth = proposal_id(&delta.run(ALICE, propose(stranger)).unwrap());
    let result = passed(&mut alpha, &mut delta, fourth);
    assert_eq!(alpha.run(MALLORY, attest(result)), Err(F::NotAValidator));

    // Nothing changes before the boundary; at it, both changes at once.
    assert_eq!(set_of(&alpha, 0), *validators());
    boundary(&mut alpha);
    let next = set_of(&alpha, 1);
    let weights: Vec<_> = next
        .validators()
        .iter()
        .map(|v| (v.public_key.clone(), v.stake))
        .collect();
    let expected: Vec<_> = [(0, 1), (1, 5), (2, 1)]
        .iter()
        .map(|&(i, stake)| (keys()[i].public().clone(), stake))
        .collect();
    assert_eq!(weights, expected);
    // The refused result, relayed again after the boundary, meets a non-member.
    assert_eq!(alpha.run(MALLORY, attest(again)), Err(F::NotAValidator));
    // Delta takes the re-weighted set from its attestation like any other.
    let set = alpha.attest(validator_set_key(1));
    delta.run(BOB, attest(set)).unwrap();
    assert_eq!(set_of(&delta, 1), next);
}

#[test]
fn a_key_governance_admitted_joins_without_a_lock_once() {
    let newcomer = &newcomers()[0];
    let admit = GovernanceChange::AdmitValidator {
        member: newcomer.public().id(),
        stake: 7,
    };
    let (mut alpha, mut delta, proposal) = governance_of(admit.clone());
    // Before governance speaks, a join without a lock is refused.
    assert_eq!(
        alpha.run(BOB, join_op(newcomer, &BOB, ADMITTED_LOCK, 0)),
        Err(F::NotAdmitted)
    );
    let result = passed(&mut alpha, &mut delta, proposal);
    alpha.run(MALLORY, attest(result)).unwrap();
    // A member cannot be admitted (it already is one).
    let member = GovernanceChange::AdmitValidator {
        member: keys()[0].public().id(),
        stake: 7,
    };
    let op = CrossChainOp::Propose {
        change: member,
        voting_period_ms: 30_000,
    };
    let second = proposal_id(&delta.run(ALICE, op).unwrap());
    let result = passed(&mut alpha, &mut delta, second);
    assert_eq!(alpha.run(MALLORY, attest(result)), Err(F::AlreadyValidator));

    // The key's holder joins, from any funded account; no lock is bonded.
    let event = alpha
        .run(BOB, join_op(newcomer, &BOB, ADMITTED_LOCK, 0))
        .unwrap();
    assert_eq!(
        event,
        CrossChainEvent::ValidatorJoinRequested {
            validator: newcomer.public().id(),
            owner: BOB,
            stake: 7
        }
    );
    assert!(!alpha.records.keys().any(|k| k.kind == RecordKind::Bond));
    boundary(&mut alpha);
    let next = set_of(&alpha, 1);
    let joined = next.index_of(newcomer.public()).unwrap();
    assert_eq!(next.validators()[usize::from(joined)].stake, 7);
    assert!(
        !alpha
            .records
            .keys()
            .any(|k| matches!(k.kind, RecordKind::Admission | RecordKind::Member)),
        "the admission is used up; an admitted member has no lock to record"
    );
    // It leaves; coming back needs governance again.
    alpha.epoch = 1;
    alpha.run(BOB, leave_op(newcomer, &BOB, 1)).unwrap();
    boundary(&mut alpha);
    assert!(set_of(&alpha, 2).index_of(newcomer.public()).is_none());
    assert_eq!(
        alpha.run(BOB, join_op(newcomer, &BOB, ADMITTED_LOCK, 2)),
        Err(F::NotAdmitted)
    );
}

#[test]
fn governance_never_empties_the_set() {
    let (mut alpha, mut delta, proposal) = governance_of(GovernanceChange::RemoveValidator {
        member: keys()[0].public().id(),
    });
    // Three members ask to leave themselves; the fourth is the last one.
    for key in &keys()[1..] {
        alpha.run(BOB, leave_op(key, &BOB, 0)).unwrap();
    }
    let result = passed(&mut alpha, &mut delta, proposal);
    assert_eq!(alpha.run(MALLORY, attest(result)), Err(F::SetWouldBeEmpty));
}

fn proposal_id(event: &CrossChainEvent) -> Digest {
    match event {
        CrossChainEvent::ProposalOpened { proposal } => *proposal,
        other => panic!("expected ProposalOpened, got {other:?}"),
    }
}

#[test]
fn a_bonded_lock_is_released_only_after_its_validator_left() {
    let (mut alpha, mut delta) = (Chain::new(ChainId::Alpha), Chain::new(ChainId::Delta));
    let stake = lock(&mut alpha, ALICE, 400);
    delta
        .run(
            BOB,
            attest(alpha.attest(RecordKey::new(RecordKind::Lock, stake.0))),
        )
        .unwrap();
    let newcomer = &newcomers()[0];
    alpha
        .run(ALICE, join_op(newcomer, &ALICE, stake, 0))
        .unwrap();
    boundary(&mut alpha);

    delta.now_ms = T0 + 60_000;
    alpha.now_ms = T0 + 60_000;
    delta
        .run(ALICE, CrossChainOp::SaxUnlock { lock: stake })
        .unwrap();
    let unlocking = delta.attest(RecordKey::new(RecordKind::Stake, stake.0));
    let record: StakeRecord = delta.decode(RecordKind::Stake, stake.0).unwrap();
    assert!(matches!(record.status, StakeStatus::Unlocking { .. }));
    let balance = alpha.balances[&ALICE];
    assert_eq!(
        alpha.run(BOB, attest(unlocking.clone())),
        Err(F::LockBonded)
    );

    alpha.epoch = 1;
    alpha.run(ALICE, leave_op(newcomer, &ALICE, 1)).unwrap();
    boundary(&mut alpha);
    // The refused attestation was not consumed: relayed again, it releases the lock.
    alpha.run(BOB, attest(unlocking)).unwrap();
    assert_eq!(alpha.balances[&ALICE], balance + 400);
}

#[test]
fn joins_are_a_consensus_rule_refused_unless_the_version_accepts_them_and_leaves_run() {
    let mut alpha = Chain::new(ChainId::Alpha);
    alpha.accept_joins = false;
    let stake = lock(&mut alpha, ALICE, 400);
    let before = alpha.records.clone();
    assert_eq!(
        alpha.run(ALICE, join_op(&newcomers()[0], &ALICE, stake, 0)),
        Err(F::JoinsNotAccepted)
    );
    assert_eq!(alpha.records, before);
    alpha.run(BOB, leave_op(&keys()[1], &BOB, 0)).unwrap();
    // The boundary fixes the next set: the members without the leaver.
    boundary(&mut alpha);
    let members = |set: &ValidatorSet| -> Vec<_> {
        set.validators()
            .iter()
            .map(|v| v.public_key.clone())
            .collect()
    };
    let mut expected = members(validators());
    expected.remove(1);
    assert_eq!(members(&set_of(&alpha, 1)), expected);
}

/// Every key the property test may use: the genesis validators, then newcomers.
fn all_keys() -> Vec<&'static ValidatorKeypair> {
    keys().iter().chain(newcomers()).collect()
}

/// An attestation of Alpha's record `key` certified by every member of Alpha's set
/// of `alpha.epoch` (the harness's own signers need not be members any more).
fn attest_by_members(alpha: &Chain, key: RecordKey) -> dualchain_core::types::Attestation {
    let mut attestation = alpha.attest(key);
    let set = set_of(alpha, alpha.epoch);
    let votes = all_keys().into_iter().filter_map(|kp| {
        let index = set.index_of(kp.public())?;
        let vote = dualchain_core::types::BlockCertificate::vote(kp, &attestation.header, NET);
        Some((index, vote))
    });
    let mut votes: Vec<_> = votes.collect();
    votes.sort_by_key(|(index, _)| *index);
    attestation.certificate =
        dualchain_core::types::BlockCertificate::from_votes(&attestation.header, votes);
    attestation
}

#[derive(Clone, Debug)]
enum Op {
    Lock {
        owner: bool,
        amount: u64,
    },
    Join {
        key: usize,
        owner: bool,
        lock: usize,
    },
    Leave {
        key: usize,
        sender: bool,
    },
    Boundary,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<bool>(), 1..300u64).prop_map(|(owner, amount)| Op::Lock { owner, amount }),
        (0..6usize, any::<bool>(), 0..8usize).prop_map(|(key, owner, lock)| Op::Join {
            key,
            owner,
            lock
        }),
        (0..6usize, any::<bool>()).prop_map(|(key, sender)| Op::Leave { key, sender }),
        Just(Op::Boundary),
    ]
}

/// The invariants of the record side after any sequence of requests and boundaries.
fn check_invariants(alpha: &Chain, delta: &Chain) {
    let epoch: EpochRecord = alpha.decode(RecordKind::Epoch, [0; 32]).unwrap();
    let set = set_of(alpha, epoch.epoch);
    assert!(!set.is_empty());
    let pending: PendingSetChanges = alpha
        .decode(RecordKind::PendingSetChanges, [0; 32])
        .unwrap_or_default();
    assert!(pending.0.len() <= MAX_PENDING_SET_CHANGES);
    // Bonds are exactly the locks of members that joined and of pending joins.
    let mut backing: Vec<[u8; 32]> = pending
        .0
        .iter()
        .filter_map(|change| match change {
            SetChange::Join { lock, .. } => Some(lock.0),
            SetChange::Leave { .. } | SetChange::Stake { .. } => None,
        })
        .collect();
    for (key, value) in &alpha.records {
        if key.kind == RecordKind::Member {
            let member = MemberRecord::from_canonical_bytes(value).unwrap();
            assert!(
                set.validators()
                    .iter()
                    .any(|v| member_id(&v.public_key) == key.id),
                "a member record of a validator outside the set"
            );
            backing.push(member.lock.0);
        }
    }
    let mut bonds: Vec<[u8; 32]> = alpha
        .records
        .keys()
        .filter(|k| k.kind == RecordKind::Bond)
        .map(|k| k.id)
        .collect();
    backing.sort();
    bonds.sort();
    assert_eq!(bonds, backing, "bonds and what they back");
    for lock in &bonds {
        let record: LockRecord = alpha.decode(RecordKind::Lock, *lock).unwrap();
        assert_eq!(
            record.status,
            LockStatus::Locked,
            "a bonded lock was released"
        );
    }
    // Delta followed every boundary into the same epoch record.
    let delta_epoch: EpochRecord = delta.decode(RecordKind::Epoch, [0; 32]).unwrap();
    assert_eq!(delta_epoch, epoch);
    assert_eq!(set_of(delta, epoch.epoch), set);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn any_requests_and_boundaries_keep_bonds_members_and_both_chains_consistent(
        ops in proptest::collection::vec(op(), 1..24)
    ) {
        let (mut alpha, mut delta) = (Chain::new(ChainId::Alpha), Chain::new(ChainId::Delta));
        let owners = [ALICE, BOB];
        let mut locks: Vec<Digest> = Vec::new();
        for op in ops {
            match op {
                Op::Lock { owner, amount } => {
                    if let Ok(event) = alpha.run(owners[usize::from(owner)], CrossChainOp::SaxLock {
                        amount,
                        unlock_at_ms: T0 + 60_000,
                    }) {
                        locks.push(lock_id(&event));
                    }
                }
                Op::Join { key, owner, lock } => {
                    let sender = owners[usize::from(owner)];
                    let lock = locks.get(lock).copied().unwrap_or(Digest([7; 32]));
                    let _ = alpha.run(sender, join_op(all_keys()[key], &sender, lock, alpha.epoch));
                }
                Op::Leave { key, sender } => {
                    let sender = owners[usize::from(sender)];
                    let _ = alpha.run(sender, leave_op(all_keys()[key], &sender, alpha.epoch));
                }
                Op::Boundary => {
                    boundary(&mut alpha);
                    let next = alpha.epoch + 1;
                    let attestation = attest_by_members(&alpha, validator_set_key(next));
                    delta.run(BOB, attest(attestation)).unwrap();
                    alpha.epoch = next;
                }
            }
            check_invariants(&alpha, &delta);
        }
    }
}
