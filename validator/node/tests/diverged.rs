//! A validator whose data diverged from the network's certified chain re-seeds
//! itself: the data of another run of the same genesis (a restored backup of the
//! wrong network, say) meets a certified block whose parent is not its own, is
//! moved aside whole, and the chain starts again from an empty database and follows
//! the network — instead of restarting on the same data for ever. Four `dualchain
//! run` processes on 127.0.0.1, Alpha 1 s and Delta 200 ms blocks, four-block epochs,
//! a 10 s consensus window.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{plain, runtime, short_window_cluster};
use dualchain_core::types::ChainId;

const WAIT: Duration = Duration::from_secs(90);
const WINDOW_SECS: u64 = 10;

#[test]
fn a_validator_on_a_diverged_history_moves_it_aside_and_follows_the_network() {
    let mut c = short_window_cluster(WINDOW_SECS);
    c.start_all().unwrap();
    let all = [0, 1, 2, 3];
    let three = [0, 1, 2];
    let data = c.layout().data_dirs[3].clone();
    let kept = data.with_extension("first-run");
    runtime().block_on(async {
        for i in all {
            c.wait_height(i, ChainId::Delta, 8, WAIT).await;
            c.wait_height(i, ChainId::Alpha, 2, WAIT).await;
        }
        // The first run ends; validator 3's data is kept, everyone else's is lost,
        // and the same genesis starts a second history without validator 3.
        for i in all {
            c.kill(i);
        }
        std::fs::rename(&data, &kept).unwrap();
        for i in three {
            std::fs::remove_dir_all(&c.layout().data_dirs[i]).unwrap();
            c.start_with(i, &["--bootstrap-from", "genesis"]).unwrap();
        }
        let restored_head = 8;
        // Far enough that validator 3 cannot rejoin through consensus.
        for i in three {
            let target = restored_head + 3 * WINDOW_SECS * 1_000 / 200;
            c.wait_height(i, ChainId::Delta, target, WAIT).await;
        }

        // Validator 3 comes back with the first run's data.
        std::fs::rename(&kept, &data).unwrap();
        c.start(3).unwrap();
        let deadline = Instant::now() + WAIT;
        while !plain(&c.log(3)).contains("data moved aside, re-seeding") {
            assert!(
                Instant::now() < deadline,
                "validator 3 never re-seeded:\n{}",
                plain(&c.log(3))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for chain in [ChainId::Delta, ChainId::Alpha] {
            let target = c.min_height(&three, chain).await + 3;
            c.wait_height(3, chain, target, WAIT).await;
            c.assert_same_block(&all, chain, 1).await;
            c.assert_same_block(&all, chain, target).await;
        }
        // The diverged data is kept, not deleted: a database in a `diverged-*`
        // directory beside the chain's new one.
        let delta_dir = data.join("delta");
        let copies = diverged_copies(&delta_dir);
        assert_eq!(copies.len(), 1, "{copies:?} in {}", delta_dir.display());
        assert!(copies[0].join("db").is_dir());
        assert!(delta_dir.join("db").is_dir());
    });
}

/// The `diverged-*` directories in `dir`.
fn diverged_copies(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("diverged-"))
        })
        .collect()
}
