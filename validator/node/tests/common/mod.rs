//! The node's integration tests run real `dualchain run` processes through the shared
//! local cluster of `dualchain-testkit` (the same one `dualchain devnet` uses).

#![allow(dead_code)]

use std::path::PathBuf;

pub use dualchain_testkit::{ClusterSpec, LocalCluster};

/// The admin bearer token of test clusters.
pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// The `dualchain` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dualchain"))
}

/// `n` validators with the given block times and funded accounts (unsigned
/// transactions allowed, admin token [`TOKEN`], `RUST_LOG=info`, `--sync-policy
/// os-buffered`), prepared but not started.
pub fn cluster(n: usize, alpha_ms: u64, delta_ms: u64, accounts: usize) -> LocalCluster {
    cluster_with(n, alpha_ms, delta_ms, accounts, |_| {})
}

/// [`cluster`] with `adjust` applied to the spec before it is prepared.
pub fn cluster_with(
    n: usize,
    alpha_ms: u64,
    delta_ms: u64,
    accounts: usize,
    adjust: impl FnOnce(&mut ClusterSpec),
) -> LocalCluster {
    let mut spec = ClusterSpec::new(n)
        .block_times(alpha_ms, delta_ms)
        .accounts(accounts);
    spec.admin_token = Some(TOKEN.into());
    spec.extra_run_args = vec!["--sync-policy".into(), "os-buffered".into()];
    spec.env = vec![("RUST_LOG".into(), "info".into())];
    spec.dir_prefix = "dualchain-node-test-".into();
    adjust(&mut spec);
    LocalCluster::prepare(bin(), spec).expect("preparing the cluster")
}

/// Four validators with Alpha 1 s and Delta 200 ms blocks, four-block epochs and a
/// `window_secs` consensus window, prepared but not started: the catch-up tests,
/// where a validator away for a few windows can no longer rejoin by vertex sync.
pub fn short_window_cluster(window_secs: u64) -> LocalCluster {
    cluster_with(4, 1_000, 200, 100, |spec| {
        spec.epoch_length = Some(4);
        spec.extra_run_args.extend([
            "--consensus-window-secs".to_string(),
            window_secs.to_string(),
        ]);
    })
}

/// A cross-chain client of the `chain` API of each of the first `n` validators.
pub async fn chain_clients(
    c: &LocalCluster,
    n: usize,
    chain: dualchain_core::types::ChainId,
) -> Vec<dualchain_client::crosschain::ChainClient> {
    let mut out = Vec::new();
    for i in 0..n {
        let url = c.api_url(i, chain);
        out.push(
            dualchain_client::crosschain::ChainClient::connect(&url, chain)
                .await
                .unwrap_or_else(|e| panic!("validator {i}'s {chain} API: {e:#}")),
        );
    }
    out
}

/// The runtime the cluster tests drive their clients on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `text` without terminal colour sequences.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until a Delta certificate of a block sealed from validator `i`'s current
/// height on names `i` (as validator 0 holds it): `i` takes part in consensus.
pub async fn wait_signs_again(c: &LocalCluster, i: usize, wait: std::time::Duration) {
    wait_signs(c, i, i as u32, dualchain_core::types::ChainId::Delta, wait).await;
}

/// Waits until a `chain` certificate of a block sealed from validator `i`'s current
/// height on (as validator 0 holds it) names committee index `index`.
pub async fn wait_signs(
    c: &LocalCluster,
    i: usize,
    index: u32,
    chain: dualchain_core::types::ChainId,
    wait: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + wait;
    let mut height = c.height(i, chain).await.unwrap_or(0).max(1);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no {chain} certificate after height {height} names index {index}"
        );
        let signed = c
            .block(0, chain, height)
            .await
            .and_then(|b| b.certificate)
            .is_some_and(|cert| cert.signer_indices.contains(&index));
        if signed {
            break;
        }
        c.wait_height(0, chain, height + 1, wait).await;
        height += 1;
    }
}

/// The epoch chain through `through` from `alpha`, once its boundaries are certified
/// there (asked again every 200 ms for at most `wait`).
pub async fn certified_epoch_chain(
    alpha: &dualchain_client::crosschain::ChainClient,
    schedule: dualchain_core::types::EpochSchedule,
    through: u64,
    wait: std::time::Duration,
) -> Vec<dualchain_core::types::Attestation> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match alpha.epoch_chain(schedule, through).await {
            Ok(links) => return links,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{e:#}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}
