//! `dualchain devnet`'s capacity probe: what this network commits at most, measured on
//! the network itself, so the default run reports the system's capacity and loads it
//! at a known fraction of it instead of at a fixed rate that may be a tenth of it.
//!
//! # How
//! Without `--tps`, the devnet first offers **maximum load** (`loadgen --max-load`:
//! each target keeps a bounded number of batches in flight and gets the next one as
//! soon as one is answered) for the probe duration: `--probe-duration`, by default
//! [`DEFAULT_PROBE_BLOCKS`] Delta block times and at least [`MIN_PROBE`]. The
//! capacity is the probe's **goodput**, read from the chain as `dualchain bench
//! overload` reads a step's (see [`crate::overload`]): the transactions of the Delta
//! blocks sealed in the second half of the send window, divided by the time those
//! blocks span. The first half is the warm-up: more than a step's two block times,
//! because at maximum load the pipeline fills for longer (each validator's admission
//! learns its service rate from its commits before it admits more than its floor; the
//! first measured probes here submitted a fifth as much in their first five seconds as
//! in the next five). The load generator shares the machine with
//! the validators, so this is the capacity of the whole setup on this machine, the
//! generator included; with `--signed` it signs during the probe (an unbounded run
//! cannot be signed ahead), which lowers what it can offer.
//!
//! Then every validator's Delta mempool must be empty (bounded by
//! [`crate::overload::settle_timeout`]; what is left is reported as `backlog_after`)
//! and the steady load offers `--load-fraction` × capacity (default
//! [`DEFAULT_LOAD_FRACTION`]: half of saturation, where latency means something).
//!
//! # Accounts
//! Each load plans nonces from 0 for its accounts, so the probe cannot share the
//! steady load's: the genesis funds `--accounts` more benchmark accounts after the
//! transfer load's and the cross-chain flow's, and the probe spends from that slice
//! (a keyring, mode 0600, in the network's directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use dualchain_client::node::chain_heights;
use dualchain_proto::v1::Chain;
use serde::Serialize;

use crate::accounts::AccountSource;
use crate::loadgen::{LiveStats, LoadgenConfig};
use crate::overload::{
    WARMUP_BLOCKS, send_window_goodput, send_window_start, settle_timeout, wait_mempools_empty,
};

/// The steady load's share of the capacity when `--load-fraction` is not given.
pub const DEFAULT_LOAD_FRACTION: f64 = 0.5;
/// The largest `--load-fraction`: four times saturation is deep overload already.
pub const MAX_LOAD_FRACTION: f64 = 4.0;
/// Probe length in Delta block times: four of warm-up, then four measured.
pub const DEFAULT_PROBE_BLOCKS: u64 = 8;
/// The shortest default probe (short block times would make a probe of a second).
pub const MIN_PROBE: Duration = Duration::from_secs(10);
/// The shortest probe given: its measured half must span two blocks after
/// [`WARMUP_BLOCKS`] of warm-up.
const MIN_PROBE_BLOCKS: u64 = 2 * (WARMUP_BLOCKS + 2);
/// The probe's keyring in the network's directory.
pub const PROBE_KEYRING: &str = "devnet-probe-accounts.keys";
/// Load-generator seed of the probe (the steady load uses the default).
const PROBE_SEED: u64 = 0x0070_726f_6265;

/// What the probe measured, and the steady load it chose (`capacity` in report.json).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CapacityFigures {
    /// Committed (succeeded) transactions per second at maximum load, read from the
    /// blocks.
    pub tps: f64,
    /// Delta blocks the goodput spans.
    pub blocks: u64,
    /// Length of the probe's send window.
    pub probe_duration_s: f64,
    /// The steady load's share of `tps`.
    pub load_fraction: f64,
    /// What the steady load then offered: `load_fraction × tps`.
    pub steady_tps: f64,
    /// The probe's own transactions: sent, final and succeeded, final and failed
    /// (receipts), refused.
    pub submitted: u64,
    pub committed: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Block and ordering finality p95 at maximum load (queueing included).
    pub finality_ms_p95: u64,
    pub ordering_finality_ms_p95: Option<u64>,
    /// Accepted, meant to commit, not seen final within the probe's drain.
    pub uncommitted: u64,
    /// Transactions still in the mempools when the steady load began (0: drained).
    pub backlog_after: u64,
    /// `tps` as a fraction of the pipeline ceiling, when the ceiling is known.
    pub ceiling_fraction: Option<f64>,
}

/// The probe's length: `given` if its measured half can span two blocks after a
/// warm-up of [`WARMUP_BLOCKS`], else [`DEFAULT_PROBE_BLOCKS`] block times (at least
/// [`MIN_PROBE`]).
pub fn probe_duration(given: Option<Duration>, delta_ms: u64) -> anyhow::Result<Duration> {
    let shortest = Duration::from_millis(MIN_PROBE_BLOCKS * delta_ms);
    match given {
        Some(d) if d < shortest => bail!(
            "--probe-duration {d:?} is too short: the probe measures its second half, which \
             must hold {} Delta blocks ({delta_ms} ms each), at least {shortest:?}",
            MIN_PROBE_BLOCKS / 2
        ),
        Some(d) => Ok(d),
        None => Ok(Duration::from_millis(DEFAULT_PROBE_BLOCKS * delta_ms).max(MIN_PROBE)),
    }
}

/// Refuses a `--load-fraction` outside (0, [`MAX_LOAD_FRACTION`]].
pub fn check_load_fraction(fraction: f64) -> anyhow::Result<()> {
    if !(fraction.is_finite() && fraction > 0.0 && fraction <= MAX_LOAD_FRACTION) {
        bail!(
            "--load-fraction must be above 0 and at most {MAX_LOAD_FRACTION} (a share of the \
             measured capacity), got {fraction}"
        );
    }
    Ok(())
}

/// Writes the probe's keyring: `count` benchmark accounts of `seed` after the first
/// `skip` (seeded keys are a prefix-stable sequence, so these are genesis accounts).
pub fn write_probe_keyring(
    dir: &Path,
    skip: usize,
    count: usize,
    seed: u64,
) -> anyhow::Result<PathBuf> {
    let keys: Vec<_> = dualchain_core::keyfile::seeded_account_keys(skip + count, seed)
        .into_iter()
        .skip(skip)
        .collect();
    let path = dir.join(PROBE_KEYRING);
    dualchain_core::keyfile::write_keyring(&path, &keys)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One capacity probe against a running network.
pub struct Probe {
    /// Every validator's Delta API.
    pub targets: Vec<String>,
    /// The probe's accounts ([`write_probe_keyring`]).
    pub keyring: PathBuf,
    pub signed: bool,
    pub batch: usize,
    pub duration: Duration,
    pub delta_ms: u64,
}

impl Probe {
    /// Runs the probe, waits for the mempools to drain, and returns the figures with
    /// the steady load at `load_fraction` of the capacity.
    pub async fn run(&self, load_fraction: f64) -> anyhow::Result<CapacityFigures> {
        check_load_fraction(load_fraction)?;
        let (from_height, _) = chain_heights(&self.targets[0], Chain::Delta).await?;
        let live = LiveStats::new();
        let window_start = send_window_start(&live);
        let ticker = crate::progress::spawn_plain_loadgen_ticker(live.clone(), self.duration);
        let report = crate::loadgen::run(self.config(), live).await;
        ticker.abort();
        let report = report.context("running the capacity probe")?;
        let start_ms = window_start.await.context("the window-start task")?;
        let window = (start_ms, self.duration / 2, self.duration);
        let Some((tps, blocks)) = send_window_goodput(&self.targets, from_height, window).await?
        else {
            bail!(
                "the second half of the capacity probe's {:?} held fewer than two Delta \
                 blocks: give a longer --probe-duration, or the load with --tps",
                self.duration
            );
        };
        if tps <= 0.0 {
            bail!(
                "the capacity probe committed nothing at maximum load in {:?} (refusals: {:?}): \
                 no capacity to scale the load by; give the load with --tps",
                self.duration,
                report.rejected_by_status
            );
        }
        let settle = settle_timeout(self.delta_ms);
        let backlog_after = wait_mempools_empty(&self.targets, self.delta_ms, settle).await;
        Ok(CapacityFigures {
            tps,
            blocks,
            probe_duration_s: self.duration.as_secs_f64(),
            load_fraction,
            steady_tps: tps * load_fraction,
            submitted: report.result.submitted,
            committed: report.result.committed,
            failed: report.result.failed,
            rejected: report.result.rejected,
            uncommitted: report.uncommitted,
            finality_ms_p95: report.result.finality_ms.p95,
            ordering_finality_ms_p95: report.result.ordering_finality_ms.map(|p| p.p95),
            backlog_after,
            ceiling_fraction: None,
        })
    }

    fn config(&self) -> LoadgenConfig {
        let accounts = AccountSource::Keyring {
            path: self.keyring.clone(),
            limit: None,
        };
        let mut config = LoadgenConfig::new(self.targets.clone(), accounts);
        config.tps = None;
        config.duration = self.duration;
        config.signed = self.signed;
        config.batch = self.batch;
        config.seed = PROBE_SEED;
        // Long enough for the probe's finality figures; the mempools' drain is waited
        // for afterwards in any case.
        config.drain_timeout = Duration::from_millis((self.delta_ms * 5).max(5_000));
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_probe_spans_eight_blocks_and_at_least_ten_seconds() {
        assert_eq!(
            probe_duration(None, 3_000).unwrap(),
            Duration::from_secs(24)
        );
        assert_eq!(probe_duration(None, 300).unwrap(), MIN_PROBE);
        let given = Duration::from_millis(2_400);
        assert_eq!(probe_duration(Some(given), 300).unwrap(), given);
        let err = probe_duration(Some(Duration::from_millis(2_399)), 300).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
    }

    #[test]
    fn load_fractions_outside_the_range_are_refused() {
        for good in [0.01, DEFAULT_LOAD_FRACTION, 1.0, MAX_LOAD_FRACTION] {
            check_load_fraction(good).unwrap();
        }
        for bad in [0.0, -0.5, 4.01, f64::NAN, f64::INFINITY] {
            let err = check_load_fraction(bad).unwrap_err();
            assert!(err.to_string().contains("--load-fraction"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_probe_keyring_holds_the_genesis_accounts_after_the_skipped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_probe_keyring(dir.path(), 3, 4, 42).unwrap();
        let written = dualchain_core::keyfile::read_keyring(&path).unwrap();
        let all = dualchain_core::keyfile::seeded_account_keys(7, 42);
        let address = |k: &dualchain_core::crypto::AccountKeypair| {
            dualchain_core::types::Address::of(k.public())
        };
        let expected: Vec<_> = all[3..].iter().map(address).collect();
        let got: Vec<_> = written.iter().map(address).collect();
        assert_eq!(got, expected);
    }
}
