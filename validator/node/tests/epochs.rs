//! Epoch boundaries with real `dualchain run` processes over QUIC on 127.0.0.1 and
//! real ML-DSA-87 certificates. With epochs of two Alpha blocks, every validator's
//! Alpha fixes the set of each next epoch at its boundary block, and every validator's
//! Delta takes it from the attestation the relays carry, into the same epoch record;
//! the consensus of both chains switches to that set right after the block that fixed
//! it. What a newcomer will do: fetch the epoch chain from one validator and verify
//! it from the genesis set alone, each boundary block certified by its own epoch's set;
//! a chain with a link missing does not verify. And a validator leaves with
//! `dualchain validator leave`: its chains stop at their boundaries, the others go on
//! finalizing with the smaller set, whose certificates verify from genesis.

mod common;

use std::time::Duration;

use common::{certified_epoch_chain, chain_clients, cluster_with, runtime};
use dualchain_client::crosschain::ChainClient;
use dualchain_core::Digest;
use dualchain_core::crypto::ValidatorScheme;
use dualchain_core::encoding::Canonical;
use dualchain_core::keyfile;
use dualchain_core::types::{
    Address, ChainId, EpochChainError, EpochRecord, EpochSchedule, Genesis, RecordKind,
    ValidatorSet, set_change_keypair, set_digest, verify_epoch_chain,
};
use dualchain_proto::v1;
use dualchain_testkit::LocalCluster;

const ALPHA_MS: u64 = 1_000;
const DELTA_MS: u64 = 200;
const VALIDATORS: usize = 4;
const EPOCH_LENGTH: u64 = 2;
/// Epochs both chains must enter.
const EPOCHS: u64 = 3;
const WAIT: Duration = Duration::from_secs(90);

async fn epochs(c: &LocalCluster) {
    let genesis_json = std::fs::read_to_string(c.dir().join("genesis.json")).unwrap();
    let genesis = Genesis::from_json(&genesis_json).unwrap();
    let genesis_set = genesis.validator_set().unwrap();
    let schedule = EpochSchedule::new(EPOCH_LENGTH);
    let boundary = schedule.boundary_of(EPOCHS - 1).unwrap();
    for i in 0..VALIDATORS {
        c.wait_height(i, ChainId::Alpha, boundary + 1, WAIT).await;
    }
    let entered = |r: &EpochRecord| r.epoch >= EPOCHS;
    let mut records = Vec::new();
    for chain in ChainId::ALL {
        for (i, client) in chain_clients(c, VALIDATORS, chain).await.iter().enumerate() {
            let record: EpochRecord = client
                .wait_for(RecordKind::Epoch, Digest::ZERO, WAIT, entered)
                .await
                .unwrap_or_else(|e| {
                    panic!("validator {i}'s {chain} never entered epoch {EPOCHS}: {e:#}")
                });
            records.push((chain, i, record));
        }
    }

    // The epoch chain, from validator 1's Alpha, once its boundaries are certified.
    let alpha = ChainClient::connect(&c.api_url(1, ChainId::Alpha), ChainId::Alpha)
        .await
        .unwrap();
    let links = certified_epoch_chain(&alpha, schedule, EPOCHS, WAIT).await;
    // The whole chain verifies from the genesis set alone: link i is Alpha's
    // boundary block of epoch i (a header of epoch i), certified by epoch i's set.
    for (epoch, link) in links.iter().enumerate() {
        assert_eq!(
            link.header.epoch, epoch as u64,
            "boundary block of epoch {epoch}"
        );
    }
    let set = verify_epoch_chain(genesis.network_id(), &genesis_set, &links).unwrap();
    assert_eq!(set.epoch(), EPOCHS);
    assert_eq!(
        set.validators(),
        genesis_set.validators(),
        "no set changes were made: the genesis members run every epoch"
    );
    // Every chain of every validator that is in epoch EPOCHS holds the very record
    // the verified chain leads to.
    let mut expected = EpochRecord::genesis(&genesis_set);
    for link in &links {
        let next = ValidatorSet::from_canonical_bytes(&link.value).unwrap();
        let start = schedule.first_height_of(next.epoch()).unwrap();
        expected = expected.successor(&next, start);
    }
    for (chain, i, record) in &records {
        if record.epoch == EPOCHS {
            assert_eq!(record, &expected, "validator {i}'s {chain}");
        }
    }
    // Each chain's status names the set of its epoch by the digest the epoch records
    // hold (what the epoch transition compares across the two chains), and its head
    // block is of that epoch or, right after its boundary, of the one before.
    let set_of = |epoch| {
        let members = genesis_set
            .validators()
            .iter()
            .map(|v| (v.public_key.clone(), v.stake));
        set_digest(&ValidatorSet::new(epoch, members).unwrap())
    };
    for i in 0..VALIDATORS {
        for chain in ChainId::ALL {
            let status = c.chain_status(i, chain).await.unwrap();
            assert!(
                status.epoch >= EPOCHS,
                "validator {i}'s {chain}: {status:?}"
            );
            assert_eq!(
                status.validator_set_digest,
                set_of(status.epoch).as_bytes().to_vec(),
                "validator {i}'s {chain}: {status:?}"
            );
            assert!(
                status.head_epoch + 1 >= status.epoch && status.head_epoch <= status.epoch,
                "validator {i}'s {chain}: {status:?}"
            );
        }
    }
    assert!(
        matches!(
            verify_epoch_chain(genesis.network_id(), &genesis_set, &links[1..]),
            Err(EpochChainError::NotTheNextSet {
                link: 0,
                expected: 1
            })
        ),
        "a chain with its first link missing"
    );
}

#[test]
fn both_chains_cross_epoch_boundaries_and_the_epoch_chain_verifies_from_genesis() {
    let mut c = cluster_with(VALIDATORS, ALPHA_MS, DELTA_MS, 4, |spec| {
        spec.epoch_length = Some(EPOCH_LENGTH);
    });
    c.start_all().unwrap();
    runtime().block_on(epochs(&c));
}

/// Validator `leaver` leaves through the CLI with nothing but its key: the request
/// goes from its own set-change account, which holds nothing and pays no fee; the
/// API it is sent to is validator 0's.
fn leave(c: &LocalCluster, leaver: usize) -> String {
    let key_dir = &c.layout().key_dirs[leaver];
    let output = std::process::Command::new(common::bin())
        .args(["validator", "leave", "--alpha"])
        .arg(c.api_url(0, ChainId::Alpha))
        .arg("--validator-key")
        .arg(key_dir)
        .args(["--timeout", "60s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dualchain validator leave failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = keyfile::read_key::<ValidatorScheme>(key_dir).unwrap();
    let own = Address::of(set_change_keypair(&key).public());
    assert!(
        stdout.contains(&format!("\"sender\": \"{own}\"")),
        "sent from the set-change account {own}: {stdout}"
    );
    stdout
}

/// Waits until both of validator `i`'s chains report that it left the set.
async fn wait_left(c: &LocalCluster, i: usize) {
    for chain in ChainId::ALL {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = c.chain_status(i, chain).await;
            if let Some(status) = &status
                && status.health() == v1::Health::Stopped
                && status.health_reason.contains("(it left)")
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "validator {i}'s {chain} did not stop: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn a_validator_leaves(c: &mut LocalCluster) {
    const LEAVER: usize = 3;
    let stayers = [0, 1, 2];
    for i in 0..VALIDATORS {
        c.wait_height(i, ChainId::Alpha, 1, WAIT).await;
    }
    let printed = tokio::task::block_in_place(|| leave(c, LEAVER));
    assert!(printed.contains("left_at_epoch"), "{printed}");
    // Both of the leaver's chains stop at their boundary and say why; its status no
    // longer names an index in the set, a member's does.
    wait_left(c, LEAVER).await;
    let status = |i| {
        let url = c.api_url(i, ChainId::Alpha);
        async move { dualchain_client::node::node_status(&url).await }
    };
    let left = status(LEAVER).await.unwrap();
    assert_eq!(left.validator_index, None, "{left:?}");
    let member = status(0).await.unwrap();
    assert_eq!(member.validator_index, Some(0), "{member:?}");
    assert!(member.epoch >= left.epoch, "{member:?} {left:?}");
    let stopped = c.height(LEAVER, ChainId::Delta).await.unwrap();
    // The others go on finalizing both chains without it.
    for chain in ChainId::ALL {
        let from = c.min_height(&stayers, chain).await;
        for i in stayers {
            c.wait_height(i, chain, from + 3, WAIT).await;
        }
    }
    assert_eq!(c.height(LEAVER, ChainId::Delta).await, Some(stopped));
    // The leaver takes no transactions.
    assert_eq!(c.submit(LEAVER, &c.transfers(0, 1)).await, 0);
    // Restarted, it opens both chains read-only and stays out (no restart loop).
    c.terminate(LEAVER, WAIT).await;
    c.start(LEAVER).unwrap();
    wait_left(c, LEAVER).await;
    assert_eq!(c.height(LEAVER, ChainId::Delta).await, Some(stopped));
    // The epoch chain verifies from genesis through the smaller set: the boundary
    // blocks after the leave are certified by the three who stayed.
    let genesis_json = std::fs::read_to_string(c.dir().join("genesis.json")).unwrap();
    let genesis = Genesis::from_json(&genesis_json).unwrap();
    let schedule = EpochSchedule::new(EPOCH_LENGTH);
    let alpha = ChainClient::connect(&c.api_url(0, ChainId::Alpha), ChainId::Alpha)
        .await
        .unwrap();
    let (now, set) = alpha.current_set().await.unwrap();
    assert_eq!(set.len(), VALIDATORS - 1, "epoch {now}");
    let through = now + 1;
    c.wait_height(
        0,
        ChainId::Alpha,
        schedule.boundary_of(now).unwrap() + 1,
        WAIT,
    )
    .await;
    let links = certified_epoch_chain(&alpha, schedule, through, WAIT).await;
    let genesis_set = genesis.validator_set().unwrap();
    let last = verify_epoch_chain(genesis.network_id(), &genesis_set, &links).unwrap();
    assert_eq!(last.len(), VALIDATORS - 1);
}

#[test]
fn a_validator_leaves_and_the_others_go_on_finalizing() {
    let mut c = cluster_with(VALIDATORS, ALPHA_MS, DELTA_MS, 4, |spec| {
        spec.epoch_length = Some(EPOCH_LENGTH);
    });
    c.start_all().unwrap();
    runtime().block_on(a_validator_leaves(&mut c));
}
