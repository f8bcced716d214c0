//! `dualchain bench exec`: sequential vs parallel execution on one seeded workload.
//!
//! Both executors run in this process on the same block and the same genesis
//! state; the report gives their rates (with and without the Merkle update), the
//! ratio, and whether their outcomes and state roots are identical. Signed
//! workloads include admission-time signature verification in both timings (the
//! sequential baseline verifies on one thread, the parallel run on the pool).
//! Unsigned workloads run only because the generated genesis sets
//! `allow_unsigned_transactions`, and the report labels them as such.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dualchain_core::types::ChainId;
use serde::Serialize;

use crate::executor::{ExecutionMode, Executor, ExecutorConfig};
use crate::outcome::{BlockOutcome, ExecutionStats};
use crate::verify::SignatureVerifier;
use crate::workload::{GenesisState, Workload, WorkloadSpec};

/// Largest block the benchmark generates (the block body limit is 4 million).
pub const MAX_BENCH_TXS: usize = 4_000_000;

/// Macro benchmark of the transaction executors.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchExecArgs {
    /// Transactions in the block.
    #[arg(long, default_value_t = 10_000)]
    pub txs: usize,
    /// Funded accounts (0 = 2 × txs + 1, enough for a conflict-free block).
    #[arg(long, default_value_t = 0)]
    pub accounts: usize,
    /// Share of transactions touching one hot account: 0.0 = all distinct, 1.0 = all hot.
    #[arg(long, default_value_t = 0.0)]
    pub conflict: f64,
    /// Worker threads of the parallel executor.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Sign transactions with ML-DSA-44 (verification is then part of both timings).
    /// Without it the run uses the unsigned benchmark mode, enabled by the workload's genesis.
    #[arg(long)]
    pub signed: bool,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Timed runs of each executor (alternating); the fastest of each counts.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Minimum block size for parallel execution.
    #[arg(long, default_value_t = crate::executor::DEFAULT_MIN_PARALLEL_BATCH)]
    pub min_batch: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Default for BenchExecArgs {
    fn default() -> Self {
        Self {
            txs: 10_000,
            accounts: 0,
            conflict: 0.0,
            threads: 2,
            signed: false,
            seed: 1,
            rounds: 7,
            min_batch: crate::executor::DEFAULT_MIN_PARALLEL_BATCH,
            json: false,
        }
    }
}

/// The result of `bench exec`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchExecReport {
    /// `signed` or `unsigned` — unsigned figures are never to be quoted as signed ones.
    pub signatures: &'static str,
    pub signed: bool,
    pub txs: usize,
    pub accounts: usize,
    pub conflict: f64,
    pub threads: usize,
    pub seed: u64,
    pub rounds: usize,
    /// Transactions per second of the sequential executor (execution only).
    pub sequential_tps: f64,
    /// Transactions per second of the parallel executor (execution only).
    pub parallel_tps: f64,
    /// `parallel_tps / sequential_tps`.
    pub speedup: f64,
    /// Rates including the Merkle update of the block's changes.
    pub sequential_tps_with_merkle: f64,
    pub parallel_tps_with_merkle: f64,
    pub speedup_with_merkle: f64,
    pub sequential_ms: f64,
    pub parallel_ms: f64,
    pub merkle_sequential_ms: f64,
    pub merkle_parallel_ms: f64,
    /// Both executors produced the same state root.
    pub roots_equal: bool,
    /// Receipts, state changes, fees and burns identical.
    pub outcomes_identical: bool,
    pub state_root: String,
    pub successful_txs: usize,
    pub failed_txs: usize,
    pub schedule: ExecutionStats,
}

/// Runs the benchmark and returns its report.
pub fn run_bench_exec(args: &BenchExecArgs) -> anyhow::Result<BenchExecReport> {
    if args.txs == 0 || args.txs > MAX_BENCH_TXS {
        bail!("--txs must be between 1 and {MAX_BENCH_TXS}");
    }
    if !(0.0..=1.0).contains(&args.conflict) {
        bail!(
            "--conflict must be between 0.0 and 1.0, got {}",
            args.conflict
        );
    }
    if args.threads == 0 || args.threads > 1024 {
        bail!("--threads must be between 1 and 1024");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let accounts = if args.accounts == 0 {
        args.txs.saturating_mul(2).saturating_add(1)
    } else {
        args.accounts
    };
    if !(2..=10_000_000).contains(&accounts) {
        bail!("--accounts must be between 2 and 10000000");
    }

    let workload = Workload::generate(&WorkloadSpec {
        txs: args.txs,
        accounts,
        conflict: args.conflict,
        seed: args.seed,
        signed: args.signed,
    });
    let state = GenesisState::build(&workload.genesis).context("building the genesis state")?;
    let single = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .context("building the sequential thread pool")?,
    );
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build()
            .context("building the worker thread pool")?,
    );
    let executor =
        |mode: ExecutionMode, pool: &Arc<rayon::ThreadPool>| -> anyhow::Result<Executor> {
            let config = ExecutorConfig {
                mode,
                min_parallel_batch: args.min_batch,
                ..ExecutorConfig::default()
            };
            // A fresh verdict cache per executor, so signed runs really verify.
            let verifier = Arc::new(SignatureVerifier::for_genesis(&workload.genesis));
            Ok(Executor::new(ChainId::Delta, config, verifier)?.with_thread_pool(pool.clone()))
        };

    // One timed run: execution (with verification), then the Merkle update.
    let timed = |mode: ExecutionMode,
                 pool: &Arc<rayon::ThreadPool>|
     -> anyhow::Result<(BlockOutcome, Duration, Duration)> {
        let exec = executor(mode, pool)?;
        let mut commitment = state.commitment.clone();
        let start = Instant::now();
        let outcome = exec.execute_block(&state.cache, &workload.txs)?;
        let executed = start.elapsed();
        let start = Instant::now();
        pool.install(|| commitment.apply(&outcome));
        Ok((outcome, executed, start.elapsed()))
    };
    // Rounds alternate sequential and parallel so that both see the same machine
    // (other processes' load drifts); the fastest round of each counts.
    type Best = Option<(BlockOutcome, Duration, Duration)>;
    let keep_best = |best: &mut Best, run: (BlockOutcome, Duration, Duration)| {
        if best.as_ref().is_none_or(|b| run.1 + run.2 < b.1 + b.2) {
            *best = Some(run);
        }
    };
    let (mut best_sequential, mut best_parallel): (Best, Best) = (None, None);
    for _ in 0..args.rounds {
        keep_best(
            &mut best_sequential,
            timed(ExecutionMode::Sequential, &single)?,
        );
        keep_best(&mut best_parallel, timed(ExecutionMode::Parallel, &pool)?);
    }
    let (sequential, seq_time, seq_merkle) = best_sequential.context("no round ran")?;
    let (parallel, par_time, par_merkle) = best_parallel.context("no round ran")?;

    let mut seq_commitment = state.commitment.clone();
    let mut par_commitment = state.commitment.clone();
    let seq_root = seq_commitment.apply(&sequential);
    let par_root = par_commitment.apply(&parallel);
    let rate = |d: Duration| args.txs as f64 / d.as_secs_f64().max(1e-9);
    let failed = sequential.failed_count();
    Ok(BenchExecReport {
        signatures: if args.signed { "signed" } else { "unsigned" },
        signed: args.signed,
        txs: args.txs,
        accounts,
        conflict: args.conflict,
        threads: args.threads,
        seed: args.seed,
        rounds: args.rounds,
        sequential_tps: rate(seq_time),
        parallel_tps: rate(par_time),
        speedup: seq_time.as_secs_f64() / par_time.as_secs_f64().max(1e-9),
        sequential_tps_with_merkle: rate(seq_time + seq_merkle),
        parallel_tps_with_merkle: rate(par_time + par_merkle),
        speedup_with_merkle: (seq_time + seq_merkle).as_secs_f64()
            / (par_time + par_merkle).as_secs_f64().max(1e-9),
        sequential_ms: seq_time.as_secs_f64() * 1e3,
        parallel_ms: par_time.as_secs_f64() * 1e3,
        merkle_sequential_ms: seq_merkle.as_secs_f64() * 1e3,
        merkle_parallel_ms: par_merkle.as_secs_f64() * 1e3,
        roots_equal: seq_root == par_root,
        outcomes_identical: sequential == parallel,
        state_root: seq_root.to_hex(),
        successful_txs: args.txs - failed,
        failed_txs: failed,
        schedule: parallel.stats.clone(),
    })
}

/// Prints the report: JSON, or a few readable lines.
pub fn print_report(report: &BenchExecReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!(
            "bench exec ({}): {} txs, {} accounts, conflict {:.2}, {} threads",
            report.signatures, report.txs, report.accounts, report.conflict, report.threads
        );
        println!(
            "  sequential {:>12.0} tx/s   parallel {:>12.0} tx/s   speed-up {:.2}x",
            report.sequential_tps, report.parallel_tps, report.speedup
        );
        println!(
            "  with Merkle update: sequential {:>12.0} tx/s   parallel {:>12.0} tx/s   speed-up {:.2}x",
            report.sequential_tps_with_merkle,
            report.parallel_tps_with_merkle,
            report.speedup_with_merkle
        );
        println!(
            "  roots equal: {}   outcomes identical: {}   failed txs: {}",
            report.roots_equal, report.outcomes_identical, report.failed_txs
        );
    }
    Ok(())
}

/// `dualchain bench exec`: runs, prints, and fails if the executors disagreed.
pub fn run(args: BenchExecArgs) -> anyhow::Result<()> {
    let report = run_bench_exec(&args)?;
    print_report(&report, args.json)?;
    if !report.roots_equal || !report.outcomes_identical {
        bail!("the parallel executor's outcome differs from the sequential executor's");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_runs_report_equal_roots_and_label_the_mode() {
        for (signed, conflict, threads) in [(false, 0.0, 2), (false, 1.0, 1), (true, 0.5, 2)] {
            let report = run_bench_exec(&BenchExecArgs {
                txs: if signed { 24 } else { 300 },
                conflict,
                threads,
                signed,
                rounds: 1,
                ..BenchExecArgs::default()
            })
            .unwrap();
            assert!(report.roots_equal && report.outcomes_identical);
            assert_eq!(report.failed_txs, 0);
            assert_eq!(
                report.signatures,
                if signed { "signed" } else { "unsigned" }
            );
            let json = serde_json::to_value(&report).unwrap();
            for field in [
                "sequential_tps",
                "parallel_tps",
                "speedup",
                "roots_equal",
                "txs",
                "threads",
                "conflict",
            ] {
                assert!(json.get(field).is_some(), "missing {field}");
            }
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_a_message() {
        for args in [
            BenchExecArgs {
                txs: 0,
                ..BenchExecArgs::default()
            },
            BenchExecArgs {
                conflict: 1.5,
                ..BenchExecArgs::default()
            },
            BenchExecArgs {
                threads: 0,
                ..BenchExecArgs::default()
            },
            BenchExecArgs {
                accounts: 1,
                ..BenchExecArgs::default()
            },
        ] {
            let error = run_bench_exec(&args).unwrap_err().to_string();
            assert!(error.starts_with("--"), "{error}");
        }
    }

    #[test]
    fn the_args_parse_like_the_cli() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchExecArgs,
        }
        let cli = Cli::try_parse_from([
            "bench",
            "--txs",
            "500",
            "--accounts",
            "64",
            "--conflict",
            "0.5",
            "--threads",
            "2",
            "--signed",
            "--json",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!(
            (
                cli.args.txs,
                cli.args.accounts,
                cli.args.threads,
                cli.args.seed
            ),
            (500, 64, 2, 9)
        );
        assert!(cli.args.signed && cli.args.json);
        assert!(Cli::try_parse_from(["bench", "--conflict", "x"]).is_err());
    }
}
