//! `dualchain bench mempool`: ingestion throughput against a `Mutex<VecDeque>`
//! baseline, run-to-run variance, and a drain-order determinism check.
//!
//! Criterion (`benches/benches/mempool.rs`) gives the detailed figures; this command
//! is the quick, self-contained check a benchmark pod can run. Each configuration is
//! measured `repeats` times, interleaved with the baseline so both see the same
//! machine load; the report gives medians, their ratio, and the coefficient of
//! variation across repeats. Transactions are built before timing starts; the pool is
//! long-lived and drained between repeats (a running node's steady state).
//!
//! Determinism: the same admission sequence is admitted once by one producer and once
//! by several concurrent producers (a different interleaving every time), each pool is
//! drained in batches, and the BLAKE3 of the drained digest sequence must agree.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, ensure};
use dualchain_contract::stats;
use dualchain_core::hash::HashDomain;
use dualchain_core::types::Verdict;
use dualchain_core::types::{
    Address, AssetId, ChainId, Output, SignedTransaction, Transaction, TxPayload,
};
use serde::Serialize;

use crate::{AdmissionTime, Mempool, MempoolConfig};

/// Measure mempool ingestion and check the drain order is deterministic.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Transactions admitted per measured run.
    #[arg(long, default_value_t = 100_000)]
    pub txs: usize,
    /// Distinct senders the transactions are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub senders: u32,
    /// Producer thread counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    pub producers: Vec<usize>,
    /// Measured runs per configuration (each interleaved with a baseline run).
    #[arg(long, default_value_t = 9)]
    pub repeats: usize,
    /// Unmeasured runs first, so the pool's tables and the allocator are warm, as on a
    /// running node.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Transactions per batch when draining for the determinism check.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Figures for one producer count.
#[derive(Clone, Debug, Serialize)]
pub struct ProducerResult {
    pub producers: usize,
    pub mempool_tx_per_s_median: f64,
    pub baseline_tx_per_s_median: f64,
    /// Mempool median over baseline median (the baseline does no dedup, bounds or
    /// fairness: this is the price of those).
    pub ratio_to_baseline: f64,
    /// Standard deviation over mean of the mempool runs, in percent.
    pub mempool_cv_percent: f64,
    pub baseline_cv_percent: f64,
    /// Median absolute deviation over the median, in percent: the spread of typical
    /// runs, not moved by a single run another process preempted.
    pub mempool_mad_percent: f64,
    pub mempool_runs_tx_per_s: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub txs: usize,
    pub senders: u32,
    pub repeats: usize,
    pub warmup: usize,
    pub results: Vec<ProducerResult>,
    /// BLAKE3 of the drained digest sequence, per producer count (all equal when
    /// the order is deterministic).
    pub drain_order_hashes: Vec<String>,
    pub deterministic_order: bool,
}

/// Runs the measurement.
pub fn measure(args: &Args) -> anyhow::Result<Report> {
    ensure!(args.txs > 0, "--txs must be at least 1");
    ensure!(args.senders > 0, "--senders must be at least 1");
    ensure!(args.repeats > 0, "--repeats must be at least 1");
    ensure!(args.batch > 0, "--batch must be at least 1");
    ensure!(
        !args.producers.is_empty() && args.producers.iter().all(|&p| (1..=64).contains(&p)),
        "--producers must list thread counts between 1 and 64"
    );
    let per_sender = args.txs.div_ceil(args.senders as usize);
    let config = MempoolConfig {
        max_txs: args.txs,
        max_bytes: args
            .txs
            .saturating_mul(1_024)
            .max(MempoolConfig::default().max_attest_tx_bytes),
        max_per_sender: per_sender.max(1),
        recent_capacity: args.txs.saturating_mul(2),
        ..MempoolConfig::default()
    };

    let mut results = Vec::new();
    for &producers in &args.producers {
        let pool = Mempool::new(ChainId::Delta, config.clone()).context("mempool config")?;
        let (mut pool_runs, mut baseline_runs) = (Vec::new(), Vec::new());
        for repeat in 0..args.warmup + args.repeats {
            let txs = workload(args.txs, args.senders, repeat as u64);
            let pool_seconds = admit_parallel(&pool, split(&txs, args.senders, producers))?;
            ensure!(pool.len() == args.txs, "not every transaction was admitted");
            pool.take_batch(usize::MAX, usize::MAX);
            let baseline_seconds = baseline_parallel(split(&txs, args.senders, producers));
            if repeat >= args.warmup {
                pool_runs.push(args.txs as f64 / pool_seconds);
                baseline_runs.push(args.txs as f64 / baseline_seconds);
            }
        }
        let (pool_median, baseline_median) = (median(&pool_runs), median(&baseline_runs));
        results.push(ProducerResult {
            producers,
            mempool_tx_per_s_median: pool_median,
            baseline_tx_per_s_median: baseline_median,
            ratio_to_baseline: pool_median / baseline_median,
            mempool_cv_percent: coefficient_of_variation(&pool_runs),
            baseline_cv_percent: coefficient_of_variation(&baseline_runs),
            mempool_mad_percent: median_absolute_deviation_percent(&pool_runs),
            mempool_runs_tx_per_s: pool_runs,
        });
    }

    let txs = workload(args.txs, args.senders, 0);
    let mut drain_order_hashes = Vec::new();
    for &producers in &args.producers {
        let pool = Mempool::new(ChainId::Delta, config.clone()).context("mempool config")?;
        admit_parallel(&pool, split(&txs, args.senders, producers))?;
        drain_order_hashes.push(drain_order_hash(&pool, args.batch));
    }
    let deterministic_order = drain_order_hashes.windows(2).all(|w| w[0] == w[1]);
    Ok(Report {
        txs: args.txs,
        senders: args.senders,
        repeats: args.repeats,
        warmup: args.warmup,
        results,
        drain_order_hashes,
        deterministic_order,
    })
}

/// Measures and prints (text or JSON). Fails if the drain order was not deterministic.
pub fn run(args: Args) -> anyhow::Result<()> {
    let report = measure(&args)?;
    print(&report, args.json)?;
    ensure!(
        report.deterministic_order,
        "the drain order differed between producer counts"
    );
    Ok(())
}

pub fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "mempool ingestion: {} txs from {} senders, {} repeats after {} warm-up (medians)",
        report.txs, report.senders, report.repeats, report.warmup
    );
    for r in &report.results {
        println!(
            "  {} producer(s): mempool {:>12.0} tx/s (cv {:.1}%, mad {:.1}%)  baseline Mutex<VecDeque> {:>12.0} tx/s (cv {:.1}%)  ratio {:.3}",
            r.producers,
            r.mempool_tx_per_s_median,
            r.mempool_cv_percent,
            r.mempool_mad_percent,
            r.baseline_tx_per_s_median,
            r.baseline_cv_percent,
            r.ratio_to_baseline
        );
    }
    println!(
        "  drain order deterministic across producer counts: {} ({})",
        report.deterministic_order,
        report.drain_order_hashes.first().map_or("", String::as_str)
    );
    Ok(())
}

/// `(admission time, transaction)`: unsigned single-output transfers, senders
/// round-robin; `round` shifts nonces and times so rounds are new transactions.
fn workload(txs: usize, senders: u32, round: u64) -> Vec<(u64, SignedTransaction)> {
    let per_round = txs.div_ceil(senders as usize) as u64;
    let addresses: Vec<Address> = (0..senders)
        .map(|n| Address(HashDomain::Transaction.hash(&n.to_le_bytes()).0))
        .collect();
    (0..txs)
        .map(|i| {
            let tx = Transaction {
                chain: ChainId::Delta,
                sender: addresses[i % senders as usize],
                nonce: round * per_round + (i / senders as usize) as u64,
                fee: 1,
                payload: TxPayload::Transfer {
                    outputs: vec![Output {
                        to: Address([7; 32]),
                        asset: AssetId::NATIVE,
                        amount: 1,
                    }],
                },
            };
            (round * txs as u64 + i as u64, tx.unsigned())
        })
        .collect()
}

/// The workload split between producers by sender (each owns its senders' order).
fn split(
    txs: &[(u64, SignedTransaction)],
    senders: u32,
    producers: usize,
) -> Vec<Vec<(u64, SignedTransaction)>> {
    let mut parts = vec![Vec::with_capacity(txs.len() / producers + 1); producers];
    for (i, item) in txs.iter().enumerate() {
        parts[(i % senders as usize) % producers].push(item.clone());
    }
    parts
}

/// Admits every part on its own thread; returns the wall time in seconds.
fn admit_parallel(
    pool: &Mempool,
    parts: Vec<Vec<(u64, SignedTransaction)>>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let refused: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    part.into_iter()
                        .filter_map(|(at, tx)| {
                            pool.admit(tx, Verdict::Valid, AdmissionTime(at)).err()
                        })
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add)
    });
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        refused == 0,
        "{refused} transactions were refused during the measurement"
    );
    Ok(seconds.max(f64::MIN_POSITIVE))
}

fn baseline_parallel(parts: Vec<Vec<(u64, SignedTransaction)>>) -> f64 {
    let queue = Mutex::new(VecDeque::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in parts {
            let queue = &queue;
            scope.spawn(move || {
                for (_, tx) in part {
                    queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push_back(tx);
                }
            });
        }
    });
    started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE)
}

fn drain_order_hash(pool: &Mempool, batch: usize) -> String {
    let mut hasher = blake3::Hasher::new();
    loop {
        let drained = pool.take_batch(batch, usize::MAX);
        if drained.is_empty() {
            return hasher.finalize().to_hex().to_string();
        }
        for digest in drained.digests() {
            hasher.update(digest.as_bytes());
        }
    }
}

/// Median of the runs (at least one always runs).
fn median(values: &[f64]) -> f64 {
    stats::median(values).expect("at least one run")
}

fn median_absolute_deviation_percent(values: &[f64]) -> f64 {
    let center = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    100.0 * median(&deviations) / center
}

fn coefficient_of_variation(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    100.0 * variance.sqrt() / mean
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn small_run_reports_sane_figures_and_a_deterministic_order() {
        let cli = Cli::parse_from([
            "x",
            "--txs",
            "3000",
            "--senders",
            "50",
            "--producers",
            "1,2",
            "--repeats",
            "2",
            "--batch",
            "700",
        ]);
        let report = measure(&cli.args).unwrap();
        assert_eq!(report.results.len(), 2);
        for r in &report.results {
            assert!(r.mempool_tx_per_s_median > 0.0 && r.baseline_tx_per_s_median > 0.0);
            assert_eq!(r.mempool_runs_tx_per_s.len(), 2);
        }
        assert!(
            report.deterministic_order,
            "{:?}",
            report.drain_order_hashes
        );
        print(&report, true).unwrap();
    }

    #[test]
    fn bad_arguments_are_errors() {
        for bad in [["--txs", "0"], ["--producers", "0"], ["--repeats", "0"]] {
            let cli = Cli::parse_from(["x", bad[0], bad[1]]);
            assert!(measure(&cli.args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(coefficient_of_variation(&[5.0, 5.0]).abs() < 1e-12);
        assert!((coefficient_of_variation(&[9.0, 11.0]) - 10.0).abs() < 1e-9);
        // One outlier barely moves the robust spread.
        assert!(
            (median_absolute_deviation_percent(&[10.0, 10.0, 11.0, 9.0, 1.0]) - 10.0).abs() < 1e-9
        );
    }
}
