//! A validator whose data directory is lost rejoins by state sync: with
//! `--bootstrap-from peers` it verifies the epoch chain from genesis, takes a peer's
//! snapshot of each chain whose head a certificate covers, imports it, follows the
//! chain by blocks from the snapshot's height and takes part in consensus again —
//! without re-executing the blocks before the snapshot. The peer offering the newest
//! Delta snapshot serves a tampered one (a state value changed, the file's checksum
//! recomputed so only the state root can tell): it is banned and another peer's
//! snapshot used. Four `dualchain run` processes on 127.0.0.1, Alpha 1 s and Delta
//! 200 ms blocks, four-block epochs, snapshots taken through the Admin API.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{LocalCluster, TOKEN, cluster_with, plain, runtime};
use dualchain_core::types::ChainId;
use dualchain_proto::v1::{Chain, TriggerSnapshotRequest};
use dualchain_proto::{AdminClient, AdminToken};
use dualchain_testkit::client::connect;

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn a_wiped_validator_rejoins_by_state_sync_and_a_tampered_snapshot_gets_its_peer_banned() {
    let mut c = cluster_with(4, 1_000, 200, 100, |spec| {
        spec.epoch_length = Some(4);
        spec.extra_run_args.extend(
            [
                "--consensus-window-secs",
                "10",
                "--snapshot-interval-blocks",
                "0",
            ]
            .map(String::from),
        );
    });
    c.start_all().unwrap();
    let all = [0, 1, 2, 3];
    runtime().block_on(async {
        // A few epochs in, so there is an epoch chain to verify.
        for i in all {
            c.wait_height(i, ChainId::Alpha, 10, WAIT).await;
        }
        // Honest snapshots on validators 1 and 2 ...
        let mut honest_delta = 0;
        for i in [1, 2] {
            for chain in [ChainId::Alpha, ChainId::Delta] {
                let (height, _) = snapshot(&c, i, chain).await;
                if chain == ChainId::Delta {
                    honest_delta = honest_delta.max(height);
                }
            }
        }
        // ... and a newer Delta one on validator 0, tampered with.
        c.wait_height(0, ChainId::Delta, honest_delta + 10, WAIT)
            .await;
        let (tampered_height, path) = snapshot(&c, 0, ChainId::Delta).await;
        assert!(tampered_height > honest_delta);
        tamper_state_value(&path);

        c.kill(3);
        std::fs::remove_dir_all(&c.layout().data_dirs[3]).unwrap();
        c.start_with(3, &["--bootstrap-from", "peers"]).unwrap();
        for chain in ["alpha", "delta"] {
            wait_log(&c, 3, |l| {
                l.contains("snapshot verified and imported")
                    && l.contains(&format!("chain={chain}"))
            })
            .await;
        }
        let log = plain(&c.log(3));
        for line in log.lines().filter(|l| l.contains("state sync")) {
            eprintln!("validator 3: {line}");
        }
        let bans: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("state sync: banned a peer"))
            .collect();
        assert!(
            bans.iter()
                .any(|l| l.contains("chain=delta") && l.contains("its snapshot is invalid")),
            "the peer serving the tampered Delta snapshot was not banned:\n{log}"
        );
        assert!(
            !log.lines()
                .any(|l| l.contains("snapshot verified and imported")
                    && l.contains("chain=delta")
                    && l.contains(&format!("height={tampered_height}"))),
            "the tampered snapshot was imported:\n{log}"
        );

        // It follows to the tip, agrees with the others and serves its blocks ...
        let others = [0, 1, 2];
        for chain in [ChainId::Delta, ChainId::Alpha] {
            let target = c.min_height(&others, chain).await + 3;
            c.wait_height(3, chain, target, WAIT).await;
            c.assert_same_block(&all, chain, target).await;
        }
        // ... without having re-executed what came before the snapshot.
        assert!(
            c.block(3, ChainId::Delta, 1).await.is_none(),
            "validator 3 holds Delta block 1: it replayed from genesis"
        );
        for chain in ["alpha", "delta"] {
            wait_log(&c, 3, |l| {
                l.contains("caught up by block sync: consensus resumes")
                    && l.contains(&format!("chain={chain}"))
            })
            .await;
        }
        // And it signs again: a Delta block sealed after its return carries its vote.
        let deadline = Instant::now() + WAIT;
        let mut height = c.height(3, ChainId::Delta).await.unwrap();
        loop {
            assert!(
                Instant::now() < deadline,
                "no certificate after height {height} names validator 3"
            );
            let signed = c
                .block(0, ChainId::Delta, height)
                .await
                .and_then(|b| b.certificate)
                .is_some_and(|cert| cert.signer_indices.contains(&3));
            if signed {
                break;
            }
            c.wait_height(0, ChainId::Delta, height + 1, WAIT).await;
            height += 1;
        }
    });
}

/// Asks validator `i` for a snapshot of `chain`; its height and file.
async fn snapshot(c: &LocalCluster, i: usize, chain: ChainId) -> (u64, PathBuf) {
    let url = c.api_url(i, chain);
    let mut admin = AdminClient::with_interceptor(
        connect(&url).await.unwrap(),
        AdminToken::new(TOKEN).unwrap(),
    );
    let proto_chain = match chain {
        ChainId::Alpha => Chain::Alpha,
        ChainId::Delta => Chain::Delta,
    };
    let result = admin
        .trigger_snapshot(TriggerSnapshotRequest {
            chain: proto_chain as i32,
        })
        .await
        .unwrap_or_else(|e| panic!("validator {i}'s {chain} snapshot: {e}"))
        .into_inner();
    (result.height, PathBuf::from(result.path))
}

/// Changes the last byte of the first non-empty `state` value of the snapshot at
/// `path` and rewrites the file's checksum, so the file is well-formed and only its
/// state root can tell (format: `dualchain_store::snapshot`).
fn tamper_state_value(path: &Path) {
    const HEADER: usize = 89;
    const STATE: u8 = 3;
    let mut bytes = std::fs::read(path).unwrap();
    let mut at = HEADER;
    loop {
        let tag = bytes[at];
        assert_ne!(tag, 0xFF, "no state value to tamper with");
        let key_len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let value_len = u32::from_le_bytes(bytes[at + 5..at + 9].try_into().unwrap()) as usize;
        let value_end = at + 9 + key_len + value_len;
        if tag == STATE && value_len > 0 {
            bytes[value_end - 1] ^= 0x01;
            break;
        }
        at = value_end;
    }
    let body = bytes.len() - 32;
    let checksum = *blake3::hash(&bytes[..body]).as_bytes();
    bytes[body..].copy_from_slice(&checksum);
    std::fs::write(path, bytes).unwrap();
}

/// Waits until a line of validator `i`'s log (colours removed) satisfies `found`.
async fn wait_log(c: &LocalCluster, i: usize, found: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !plain(&c.log(i)).lines().any(&found) {
        assert!(
            Instant::now() < deadline,
            "validator {i}'s log never showed the expected line:\n{}",
            c.log(i)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
