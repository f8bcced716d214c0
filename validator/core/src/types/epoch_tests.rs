use std::sync::OnceLock;

use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};

use super::*;
use crate::crypto::ValidatorKeypair;
use crate::types::{BlockCertificate, BlockHeader, ValidatorIndex};

const NET: NetworkId = NetworkId(Digest([0x21; 32]));

/// Six validator keys, made once (ML-DSA-87 key expansion is slow).
fn keys() -> &'static [ValidatorKeypair] {
    static KEYS: OnceLock<Vec<ValidatorKeypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..6u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 90; 32]))
            .collect()
    })
}

fn set_of(epoch: u64, members: &[usize]) -> ValidatorSet {
    ValidatorSet::new(
        epoch,
        members.iter().map(|&i| (keys()[i].public().clone(), 10)),
    )
    .unwrap()
}

fn join(i: usize, stake: u64) -> SetChange {
    SetChange::Join {
        key: keys()[i].public().clone(),
        owner: Address([i as u8; 32]),
        lock: Digest([i as u8 + 100; 32]),
        stake,
    }
}

fn leave(i: usize) -> SetChange {
    SetChange::Leave {
        key: keys()[i].public().clone(),
    }
}

fn restake(i: usize, stake: u64) -> SetChange {
    SetChange::Stake {
        key: keys()[i].public().clone(),
        stake,
    }
}

#[test]
fn epochs_cover_fixed_runs_of_alpha_heights() {
    let schedule = EpochSchedule::new(4);
    assert_eq!(schedule.epoch_of(0), 0, "the genesis block");
    assert_eq!(schedule.epoch_of(1), 0);
    assert_eq!(schedule.epoch_of(4), 0);
    assert_eq!(schedule.epoch_of(5), 1);
    assert!(!schedule.is_boundary(0));
    assert!(!schedule.is_boundary(3));
    assert!(schedule.is_boundary(4));
    assert!(schedule.is_boundary(8));
    assert_eq!(schedule.boundary_of(0), Some(4));
    assert_eq!(schedule.boundary_of(2), Some(12));
    assert_eq!(schedule.first_height_of(1), Some(5));
    assert_eq!(schedule.boundary_of(u64::MAX), None);
    for height in 1..40 {
        let epoch = schedule.epoch_of(height);
        assert!(schedule.first_height_of(epoch).unwrap() <= height);
        assert!(height <= schedule.boundary_of(epoch).unwrap());
    }
}

#[test]
fn the_next_set_keeps_members_in_order_and_appends_joins_in_request_order() {
    let current = set_of(3, &[0, 1, 2, 3]);
    let next = next_validator_set(&current, &[join(5, 7), leave(1), join(4, 9)]).unwrap();
    assert_eq!(next.epoch(), 4);
    let order: Vec<_> = next
        .validators()
        .iter()
        .map(|v| (v.public_key.clone(), v.stake))
        .collect();
    let expected: Vec<_> = [(0, 10), (2, 10), (3, 10), (5, 7), (4, 9)]
        .iter()
        .map(|&(i, stake)| (keys()[i].public().clone(), stake))
        .collect();
    assert_eq!(order, expected);
    // No changes: the same members, renumbered epoch.
    let same = next_validator_set(&current, &[]).unwrap();
    assert_eq!(same.validators(), current.validators());
    assert_eq!(same.epoch(), 4);
}

#[test]
fn stale_changes_are_skipped_and_the_set_never_empties() {
    let current = set_of(0, &[0, 1]);
    // A join of a member and a leave of a stranger change nothing.
    let next = next_validator_set(&current, &[join(0, 99), leave(4)]).unwrap();
    assert_eq!(next.validators(), current.validators());
    // Everyone leaving keeps the last member.
    let next = next_validator_set(&current, &[leave(0), leave(1)]).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next.validators()[0].public_key, *keys()[1].public());
    // A stranger's stake change, and a stake of zero, change nothing.
    let next = next_validator_set(&current, &[restake(4, 5), restake(0, 0)]).unwrap();
    assert_eq!(next.validators(), current.validators());
}

#[test]
fn a_stake_change_reweights_the_member_in_place() {
    let current = set_of(2, &[0, 1, 2, 3]);
    let next = next_validator_set(&current, &[restake(2, 31), join(4, 3)]).unwrap();
    let stakes: Vec<_> = next.validators().iter().map(|v| v.stake).collect();
    assert_eq!(stakes, [10, 10, 31, 10, 3]);
    assert_eq!(next.validators()[2].public_key, *keys()[2].public());
    assert_eq!(next.total_stake(), 64);
}

#[test]
fn records_round_trip_and_the_pending_list_is_bounded() {
    let set = set_of(0, &[0, 1, 2]);
    let genesis = EpochRecord::genesis(&set);
    let next = genesis.successor(&set_of(1, &[0, 1, 2, 3]), 241);
    assert_eq!(next.previous, genesis.digest());
    assert_eq!(next.epoch, 1);
    assert_ne!(next.set, genesis.set);
    assert_eq!(
        EpochRecord::from_canonical_bytes(&next.to_canonical_bytes()).unwrap(),
        next
    );
    let pending = PendingSetChanges(vec![join(4, 5), leave(0), restake(1, u64::MAX)]);
    assert_eq!(
        PendingSetChanges::from_canonical_bytes(&pending.to_canonical_bytes()).unwrap(),
        pending
    );
    let member = MemberRecord {
        owner: Address([1; 32]),
        lock: Digest([2; 32]),
    };
    assert_eq!(
        MemberRecord::from_canonical_bytes(&member.to_canonical_bytes()).unwrap(),
        member
    );
    let too_many = PendingSetChanges(vec![leave(0); MAX_PENDING_SET_CHANGES + 1]);
    assert!(matches!(
        PendingSetChanges::from_canonical_bytes(&too_many.to_canonical_bytes()),
        Err(DecodeError::TooLong { .. })
    ));
    let full = PendingSetChanges(vec![join(4, u64::MAX); MAX_PENDING_SET_CHANGES]);
    assert!(full.to_canonical_bytes().len() <= PendingSetChanges::MAX_ENCODED_LEN);
}

#[test]
fn a_set_change_request_is_bound_to_sender_lock_epoch_and_network() {
    let key = &keys()[4];
    let sender = Address([9; 32]);
    let lock = Digest([8; 32]);
    let message = set_change_message(SetChangeKind::Join, &sender, Some(&lock), 2);
    let proof = key.sign(
        SigningDomain::ValidatorSetChange.on(NET),
        message.as_bytes(),
    );
    assert!(verify_set_change(NET, key.public(), &message, &proof));
    let elsewhere = NetworkId(Digest([0x22; 32]));
    assert!(!verify_set_change(
        elsewhere,
        key.public(),
        &message,
        &proof
    ));
    assert!(!verify_set_change(
        NET,
        keys()[5].public(),
        &message,
        &proof
    ));
    for other in [
        set_change_message(SetChangeKind::Join, &sender, Some(&lock), 3),
        set_change_message(SetChangeKind::Leave, &sender, Some(&lock), 2),
        set_change_message(SetChangeKind::Join, &Address([1; 32]), Some(&lock), 2),
        set_change_message(SetChangeKind::Join, &sender, None, 2),
    ] {
        assert!(!verify_set_change(NET, key.public(), &other, &proof));
    }
}

#[test]
fn a_built_set_change_op_is_a_join_with_a_lock_and_a_leave_without_and_verifies() {
    let key = &keys()[4];
    let sender = Address([9; 32]);
    let lock = Digest([8; 32]);
    let CrossChainOp::ValidatorJoin {
        key: joiner,
        lock: bonded,
        proof,
    } = set_change_op(NET, key, &sender, Some(lock), 2)
    else {
        panic!("a lock makes a join");
    };
    assert_eq!((&joiner, bonded), (key.public(), lock));
    let join = set_change_message(SetChangeKind::Join, &sender, Some(&lock), 2);
    assert!(verify_set_change(NET, key.public(), &join, &proof));
    let CrossChainOp::ValidatorLeave { key: leaver, proof } =
        set_change_op(NET, key, &sender, None, 2)
    else {
        panic!("no lock makes a leave");
    };
    assert_eq!(&leaver, key.public());
    let leave = set_change_message(SetChangeKind::Leave, &sender, None, 2);
    assert!(verify_set_change(NET, key.public(), &leave, &proof));
    assert!(!verify_set_change(NET, key.public(), &join, &proof));
}

/// An attestation of Alpha's set record of `next.epoch()` in a block of epoch
/// `next.epoch() - 1`, signed by `signers` (indices into `keys()`, with their index
/// in `signing_set`).
fn link(next: &ValidatorSet, signing_set: &ValidatorSet, signers: &[usize]) -> Attestation {
    let key = validator_set_key(next.epoch()).state_key();
    let value = next.to_canonical_bytes();
    let mut tree = SparseMerkleTree::new();
    tree.insert(hash_key(&key), hash_value(&value));
    tree.insert(hash_key(b"A-account"), hash_value(b"balance"));
    let epoch = next.epoch() - 1;
    let header = BlockHeader {
        chain: ChainId::Alpha,
        height: (epoch + 1) * 10,
        epoch,
        slot: (epoch + 1) * 10,
        parent: Digest([7; 32]),
        timestamp_ms: 1_767_225_600_000,
        vertices_root: Digest([1; 32]),
        transactions_root: Digest([2; 32]),
        receipts_root: Digest([3; 32]),
        state_root: Digest(tree.root()),
        tx_count: 0,
    };
    let votes = signers.iter().map(|&i| {
        let index: ValidatorIndex = signing_set.index_of(keys()[i].public()).unwrap();
        (index, BlockCertificate::vote(&keys()[i], &header, NET))
    });
    Attestation {
        certificate: BlockCertificate::from_votes(&header, votes),
        header,
        key: key.to_vec(),
        value,
        proof: tree.prove(&hash_key(&key)),
    }
}

#[test]
fn an_epoch_chain_leads_from_the_genesis_set_to_the_current_one() {
    let set0 = set_of(0, &[0, 1, 2, 3]);
    let set1 = set_of(1, &[0, 1, 2, 3, 4]);
    let set2 = set_of(2, &[1, 2, 3, 4]);
    let links = vec![
        link(&set1, &set0, &[0, 1, 2]),
        link(&set2, &set1, &[1, 2, 3, 4]),
    ];
    assert_eq!(verify_epoch_chain(NET, &set0, &links).unwrap(), set2);
    assert_eq!(verify_epoch_chain(NET, &set0, &[]).unwrap(), set0);

    // Skipping a link: the set of epoch 2 is not the next after 0.
    assert_eq!(
        verify_epoch_chain(NET, &set0, &links[1..]),
        Err(EpochChainError::NotTheNextSet {
            link: 0,
            expected: 1
        })
    );
    // A link without a quorum of its own epoch's set (2 of 5).
    let forged = link(&set2, &set1, &[0, 1]);
    assert!(matches!(
        verify_epoch_chain(NET, &set0, &[links[0].clone(), forged]),
        Err(EpochChainError::Unproven { link: 1, .. })
    ));
    // Another network's certificates prove nothing here.
    assert!(matches!(
        verify_epoch_chain(NetworkId(Digest([3; 32])), &set0, &links),
        Err(EpochChainError::Unproven { link: 0, .. })
    ));
    // A value that is not the set the key names.
    let mut wrong_value = links[0].clone();
    wrong_value.value = set2.to_canonical_bytes();
    assert!(matches!(
        verify_epoch_chain(NET, &set0, &[wrong_value]),
        Err(EpochChainError::Unproven { link: 0, .. })
    ));
}
