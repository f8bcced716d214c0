//! Epoch boundaries with real `dualchain run` processes over QUIC on 127.0.0.1 and
//! real ML-DSA-87 certificates. With epochs of two Alpha blocks, every validator's
//! Alpha fixes the set of each next epoch at its boundary block, and every validator's
//! Delta takes it from the attestation the relays carry, into the same epoch record;
//! the consensus of both chains switches to that set right after the block that fixed
//! it. What a newcomer will do: fetch the epoch chain from one validator and verify
//! it from the genesis set alone, each boundary block certified by its own epoch's set;
//! a chain with a link missing does not verify.

mod common;

use std::time::Duration;

use common::{chain_clients, cluster_with, runtime};
use dualchain_core::Digest;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    ChainId, EpochChainError, EpochRecord, EpochSchedule, Genesis, RecordKind, ValidatorSet,
    verify_epoch_chain,
};
use dualchain_testkit::LocalCluster;
use dualchain_testkit::crosschain::ChainClient;

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
    let deadline = tokio::time::Instant::now() + WAIT;
    let links = loop {
        match alpha.epoch_chain(schedule, EPOCHS).await {
            Ok(links) => break links,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
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
