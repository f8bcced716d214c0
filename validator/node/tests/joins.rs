//! A validator joins a running network, with real `dualchain run` processes over QUIC
//! on 127.0.0.1 and real ML-DSA-87 keys. Five processes are prepared; the genesis set
//! holds four, and the fifth runs with `--join`: its chains follow by block sync as a
//! non-member. Under a steady transfer load, `dualchain validator join` locks sAX of a
//! funded account and sends the join request, signed by the fifth validator's key.
//! Once Alpha holds the request the members admit the joiner; at the next boundary
//! the set of five takes over on both chains, and the joiner signs certificates of
//! both chains from that epoch on, while the chains keep finalizing the load.

mod common;

use std::time::Duration;

use common::{certified_epoch_chain, cluster_with, runtime, wait_signs};
use dualchain_client::crosschain::ChainClient;
use dualchain_core::types::{ChainId, EpochSchedule, Genesis, verify_epoch_chain};
use dualchain_proto::v1;
use dualchain_testkit::LocalCluster;

const ALPHA_MS: u64 = 1_000;
const DELTA_MS: u64 = 200;
/// Genesis members, and the joiner after them.
const MEMBERS: usize = 4;
const JOINER: usize = 4;
const EPOCH_LENGTH: u64 = 3;
const ACCOUNTS: usize = 8;
const WAIT: Duration = Duration::from_secs(90);

/// Submits ring transfers to validator 0's Delta every 100 ms until dropped.
fn steady_load(c: &LocalCluster) -> tokio::task::JoinHandle<()> {
    let url = c.api_url(0, ChainId::Delta);
    let addresses = dualchain_testkit::workload::seeded_addresses(ACCOUNTS, c.spec().accounts_seed);
    tokio::spawn(async move {
        for nonce in 0.. {
            let txs = dualchain_testkit::workload::unsigned_bytes(
                &dualchain_testkit::workload::ring_transfers(&addresses, nonce, 1),
            );
            let _ = dualchain_client::node::submit(&url, v1::Chain::Delta, &txs).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// `dualchain validator join` for the joiner, its stake locked from account 0 of the
/// genesis keyring, sent to validator 0's Alpha.
fn join(c: &LocalCluster) -> String {
    let output = std::process::Command::new(common::bin())
        .args(["validator", "join", "--alpha"])
        .arg(c.api_url(0, ChainId::Alpha))
        .arg("--validator-key")
        .arg(&c.layout().key_dirs[JOINER])
        .arg("--keyring")
        .arg(c.dir().join("genesis.accounts.keys"))
        .args(["--account", "0", "--stake", "100", "--timeout", "60s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dualchain validator join failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn wait_health(c: &LocalCluster, i: usize, chain: ChainId, want: v1::Health, says: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = c.chain_status(i, chain).await;
        if let Some(status) = &status
            && status.health() == want
            && status.health_reason.contains(says)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "validator {i}'s {chain} is not {want:?} ({says:?}): {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the joiner's `chain` no longer reports that it is joining (the health
/// monitor re-assesses once a second).
async fn wait_member(c: &LocalCluster, chain: ChainId) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = c
            .chain_status(JOINER, chain)
            .await
            .expect("the joiner answers");
        if !status.health_reason.contains("joining") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the joiner's {chain} signs certificates but reports joining: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_validator_joins(c: &LocalCluster) {
    for i in 0..MEMBERS {
        c.wait_height(i, ChainId::Alpha, 1, WAIT).await;
    }
    // Before its request, the joiner follows as a non-member and says so; its API
    // takes no transactions.
    for chain in ChainId::ALL {
        wait_health(c, JOINER, chain, v1::Health::Degraded, "joining").await;
    }
    assert_eq!(c.submit(JOINER, &c.transfers(0, 1)).await, 0);

    let load = steady_load(c);
    let printed = tokio::task::block_in_place(|| join(c));
    assert!(printed.contains("member_from_epoch"), "{printed}");
    let alpha = ChainClient::connect(&c.api_url(0, ChainId::Alpha), ChainId::Alpha)
        .await
        .unwrap();
    let (epoch, set) = alpha.current_set().await.unwrap();
    assert_eq!(set.len(), MEMBERS + 1, "epoch {epoch}");
    let key = dualchain_core::keyfile::read_key::<dualchain_core::crypto::ValidatorScheme>(
        &c.layout().key_dirs[JOINER],
    )
    .unwrap();
    let index = set
        .index_of(key.public())
        .expect("the joiner is in the set") as u32;
    assert_eq!(index, MEMBERS as u32, "joins are appended to the set");

    // The joiner's chains run consensus from their boundary on: healthy, and it signs
    // certificates of both chains.
    for chain in ChainId::ALL {
        wait_signs(c, JOINER, index, chain, WAIT).await;
        wait_member(c, chain).await;
    }
    let status = dualchain_client::node::node_status(&c.api_url(JOINER, ChainId::Alpha))
        .await
        .unwrap();
    assert_eq!(status.validator_index, Some(index), "{status:?}");

    // Everyone goes on finalizing the load, the joiner at the same blocks.
    let everyone: Vec<usize> = (0..=JOINER).collect();
    for chain in ChainId::ALL {
        let from = c.min_height(&everyone, chain).await;
        for &i in &everyone {
            c.wait_height(i, chain, from + 3, WAIT).await;
        }
        let a = c
            .block(0, chain, from + 2)
            .await
            .expect("validator 0's block");
        let b = c
            .block(JOINER, chain, from + 2)
            .await
            .expect("the joiner's block");
        assert_eq!(a.header, b.header, "{chain} block {}", from + 2);
    }
    load.abort();

    // The epoch chain verifies from genesis into the set of five.
    let genesis_json = std::fs::read_to_string(c.dir().join("genesis.json")).unwrap();
    let genesis = Genesis::from_json(&genesis_json).unwrap();
    let schedule = EpochSchedule::new(EPOCH_LENGTH);
    c.wait_height(
        0,
        ChainId::Alpha,
        schedule.boundary_of(epoch).unwrap() + 1,
        WAIT,
    )
    .await;
    let links = certified_epoch_chain(&alpha, schedule, epoch + 1, WAIT).await;
    let last = verify_epoch_chain(
        genesis.network_id(),
        &genesis.validator_set().unwrap(),
        &links,
    )
    .unwrap();
    assert_eq!(last.len(), MEMBERS + 1);
}

#[test]
fn a_validator_joins_under_load_and_signs_both_chains_from_its_first_epoch() {
    let mut c = cluster_with(MEMBERS + 1, ALPHA_MS, DELTA_MS, ACCOUNTS, |spec| {
        spec.epoch_length = Some(EPOCH_LENGTH);
        spec.joiners = 1;
    });
    c.start_all().unwrap();
    runtime().block_on(a_validator_joins(&c));
}
