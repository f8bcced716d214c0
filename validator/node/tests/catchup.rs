//! A validator away for longer than the consensus window: its peers no longer hold
//! the rounds it missed, so it catches up by block sync (certified blocks over
//! QUIC, re-executed) to an epoch boundary, then takes part in consensus again.
//! Four `dualchain run` processes on 127.0.0.1, Alpha 1 s and Delta 200 ms blocks,
//! four-block epochs, a 10 s consensus window; then one whose data directory was
//! deleted, from genesis; then one whose process was stopped (SIGSTOP) and continued
//! after the window: it falls behind while running, notices, and catches up the
//! same way.

mod common;

use std::time::{Duration, Instant};

use common::{plain, runtime, short_window_cluster, wait_signs_again};
use dualchain_core::types::ChainId;

const WAIT: Duration = Duration::from_secs(90);
const WINDOW_SECS: u64 = 10;

#[test]
fn validators_away_longer_than_the_window_or_wiped_catch_up_by_blocks() {
    let mut c = short_window_cluster(WINDOW_SECS);
    c.start_all().unwrap();
    let all = [0, 1, 2, 3];
    let three = [0, 1, 2];
    runtime().block_on(async {
        for i in all {
            c.wait_height(i, ChainId::Delta, 5, WAIT).await;
        }
        c.kill(3);
        let away_from = c.min_height(&three, ChainId::Delta).await;
        // Away for two and a half windows while the others go on.
        tokio::time::sleep(Duration::from_secs(WINDOW_SECS * 5 / 2)).await;
        let behind = c.min_height(&three, ChainId::Delta).await - away_from;
        assert!(
            behind > WINDOW_SECS * 1_000 / 200,
            "the others sealed only {behind} Delta blocks meanwhile"
        );

        c.start(3).unwrap();
        let deadline = Instant::now() + WAIT;
        while !c.log(3).contains("catching up by block sync") {
            assert!(
                Instant::now() < deadline,
                "validator 3 never caught up by blocks:\n{}",
                c.log(3)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for chain in [ChainId::Delta, ChainId::Alpha] {
            let target = c.min_height(&three, chain).await + 3;
            c.wait_height(3, chain, target, WAIT).await;
            wait_serving(&c, 3, chain, target).await;
            c.assert_same_block(&all, chain, target).await;
        }
        for chain in [ChainId::Alpha, ChainId::Delta] {
            wait_resumed(&c, 3, chain).await;
        }

        // It signs again: a Delta block sealed after its return carries its vote.
        wait_signs_again(&c, 3, WAIT).await;
        // And the network it came back to still finalizes with it.
        let target = c.min_height(&all, ChainId::Delta).await + 5;
        for i in all {
            c.wait_height(i, ChainId::Delta, target, WAIT).await;
        }
        c.assert_same_block(&all, ChainId::Delta, target).await;

        // A validator whose data directory is lost comes back from genesis the same
        // way, and resumes in a later epoch than any it proposed in.
        c.kill(2);
        std::fs::remove_dir_all(&c.layout().data_dirs[2]).unwrap();
        c.start(2).unwrap();
        let others = [0, 1, 3];
        for chain in [ChainId::Delta, ChainId::Alpha] {
            let target = c.min_height(&others, chain).await + 3;
            c.wait_height(2, chain, target, WAIT).await;
            wait_serving(&c, 2, chain, target).await;
            // Block 1 too: a validator that just caught up may be slow to answer its
            // first reads of old blocks on a loaded machine (CI once saw one fail).
            wait_serving(&c, 2, chain, 1).await;
            c.assert_same_block(&all, chain, 1).await;
            c.assert_same_block(&all, chain, target).await;
        }
        for chain in [ChainId::Alpha, ChainId::Delta] {
            wait_resumed(&c, 2, chain).await;
        }

        // A validator frozen for longer than the window, its memory intact, finds
        // itself behind while running and catches up by blocks too.
        c.freeze(1);
        tokio::time::sleep(Duration::from_secs(WINDOW_SECS * 5 / 2)).await;
        c.thaw(1);
        let deadline = Instant::now() + WAIT;
        while !c
            .log(1)
            .contains("fell out of the engine's reach while running")
        {
            assert!(
                Instant::now() < deadline,
                "validator 1 never noticed it fell behind:\n{}",
                c.log(1)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let others = [0, 2, 3];
        for chain in [ChainId::Delta, ChainId::Alpha] {
            let target = c.min_height(&others, chain).await + 3;
            c.wait_height(1, chain, target, WAIT).await;
            wait_serving(&c, 1, chain, target).await;
            c.assert_same_block(&all, chain, target).await;
        }
        // Which of its chains left the engine's reach depends on what its peers last
        // claimed before the freeze (a chain whose stale claims look near catches up
        // through consensus instead); at least one must have resumed by block sync.
        wait_resumed_any(&c, 1).await;
        wait_signs_again(&c, 1, WAIT).await;
    });
}

/// Waits until validator `i` logs that one of its chains caught up by block sync and
/// resumed consensus.
async fn wait_resumed_any(c: &common::LocalCluster, i: usize) {
    let deadline = Instant::now() + WAIT;
    while !plain(&c.log(i)).contains("caught up by block sync: consensus resumes") {
        assert!(
            Instant::now() < deadline,
            "no chain of validator {i} caught up by blocks and resumed:\n{}",
            plain(&c.log(i))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until validator `i` logs that its `chain` caught up by block sync and
/// resumed consensus. A follower that reached the tip resumes only at the next epoch
/// boundary, which can come a few seconds after its height matched its peers'.
async fn wait_resumed(c: &common::LocalCluster, i: usize, chain: ChainId) {
    let needle = format!("chain={chain}");
    let resumed = |log: &str| {
        log.lines().any(|l| {
            l.contains("caught up by block sync: consensus resumes") && l.contains(&needle)
        })
    };
    let deadline = Instant::now() + WAIT;
    while !resumed(&plain(&c.log(i))) {
        assert!(
            Instant::now() < deadline,
            "the {chain} chain of validator {i} did not catch up by blocks and resume:\n{}",
            plain(&c.log(i))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until validator `i` serves its `chain` block `height` (its status can say
/// the height a moment before the reopened chain serves blocks again).
async fn wait_serving(c: &common::LocalCluster, i: usize, chain: ChainId, height: u64) {
    let deadline = Instant::now() + WAIT;
    while c.block(i, chain, height).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "validator {i} serves no {chain} block {height}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
