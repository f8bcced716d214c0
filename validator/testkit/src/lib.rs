//! Test support written once for the whole workspace.
//!
//! - [`cluster`] — a local network of real `dualchain run` processes on 127.0.0.1:
//!   keys and genesis made with the binary itself, free ports, `peers.json`, start /
//!   kill / SIGTERM / readiness, every process killed when the cluster is dropped. The
//!   node's integration tests and `dualchain devnet` both run on it.
//! - [`fake`] — an in-process fake `dualchain.v1` node (`Node`, `Transactions`,
//!   `grpc.health.v1`): mempool-like admission, blocks sealed on the wall clock,
//!   `StreamFinality` events carrying the admitted digests.
//!
//! The gRPC client helpers it uses (status, blocks, readiness, the cross-chain flow)
//! live in `dualchain-client`, which the operator links too.
//! - [`workload`] — Delta transfers between funded accounts.
//! - [`ports`] — loopback ports free for TCP and UDP, and `peers.json` planning.

#![deny(unsafe_code)]

pub mod cluster;
pub mod fake;
pub mod metrics;
pub mod ports;
pub mod workload;

pub use cluster::{ClusterSpec, LocalCluster, StopRecord};
pub use fake::{FakeNode, FakeNodeConfig, FakeServer};
pub use ports::{LocalPeer, free_ports, plan_local_peers};

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until the wall clock reads `at` (ms since the Unix epoch); at once if past.
pub async fn sleep_until_unix_ms(at: u64) {
    let now = unix_ms();
    if at > now {
        tokio::time::sleep(std::time::Duration::from_millis(at - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node.log");
        std::fs::write(
            &log,
            (1..=50).map(|i| format!("line {i}\n")).collect::<String>(),
        )
        .unwrap();
        assert_eq!(log_tail(&log, 3), "line 48\nline 49\nline 50");
        assert!(log_tail(&dir.path().join("missing"), 3).contains("cannot read"));
    }
}
