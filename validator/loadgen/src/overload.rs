//! `dualchain bench overload`: admission under overload, judged against a target.
//!
//! # What it measures
//! A network that is offered more than it can commit should keep committing at its
//! capacity: refusing the excess early (mempool full, rate limited, overloaded) rather
//! than spending its time on transactions it will drop. The target: **goodput** at 2×
//! and 4× the saturation load stays at least `--min-goodput-ratio` (90 %) of the peak
//! goodput. For every step the report also gives block finality p50/p95/p99 (submit
//! to the finality of the committed, retries included), ordering finality p50/p95
//! (submit to the consensus commit, `Node/StreamOrdering`) and the refusals by
//! status.
//!
//! **Goodput** is what the chain commits while the load is on, read from the chain
//! itself: the transactions of the Delta blocks sealed between the first block after
//! [`WARMUP_BLOCKS`] block times into the send window and the last block inside it,
//! divided by the time between those two blocks' timestamps. The pipeline's fill at
//! the start and the drain after the window (when a client still retries what was
//! refused) are left out: they measure the client, not the network's capacity under
//! load. The load generator's own `average_tps` (committed over the run, drain
//! included) is reported beside it.
//!
//! # How it runs
//! A local network starts as `dualchain devnet --signed` starts it
//! ([`dualchain_testkit::LocalCluster`]: keys, genesis without unsigned transactions,
//! N validators, readiness, a first finalized Delta block), and is always stopped at
//! the end, on error and on Ctrl-C too. Then, one after the other, open-loop SIGNED
//! steady loads of `--step-duration` each run against every Delta API:
//!
//! 1. **Saturation.** `--saturation-tps` if given; otherwise a probe step at maximum
//!    load (`loadgen --max-load`), whose goodput is the saturation load. A probe that
//!    commits nothing ends the run with its row and a FAIL. At maximum load the load
//!    generator signs during its window (it cannot sign an unbounded run ahead), so on
//!    a machine it shares with the validators the probe finds less than the network's
//!    capacity; give `--saturation-tps` there. Rated steps sign their whole window
//!    before it opens.
//! 2. **Steps.** One run per multiplier `m` of `--steps` at `m × saturation` tx/s.
//!
//! The peak is the highest goodput of all steps, the probe included.
//!
//! # How the steps stay independent
//! Each load run plans nonces from 0 for its accounts (the planner starts from a fresh
//! genesis: `TxPlanner::new(.., None)`), so a second run over the same accounts would
//! send nonces the chain has already used. Instead the genesis funds
//! `--accounts × runs` accounts from the public benchmark seed, and run `i` (the probe
//! first, if any) gets its own slice `[i × accounts, (i + 1) × accounts)`: the slice
//! is written as a keyring (`overload-accounts-<i>.keys`, mode 0600) in the network's
//! directory and handed to the load generator as [`AccountSource::Keyring`]. Seeded
//! keys are a prefix-stable sequence, so the slices are exactly genesis accounts.
//! Before each run the mempools of every validator's Delta API must be empty
//! (`Node/GetStatus` `mempool_depth`, bounded by [`settle_timeout`]), so one step's
//! backlog is not committed, nor refused, in the next one's window; a depth left at
//! the bound is reported as the step's `backlog_at_start`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dualchain_client::node::{block, chain_heights};
use dualchain_core::types::ChainId;
use dualchain_proto::v1::Chain;
use dualchain_testkit::{ClusterSpec, LocalCluster};
use serde::Serialize;

use crate::accounts::AccountSource;
use crate::cli::parse_duration;
use crate::devnet::{GENESIS_DELAY, STOP_TIMEOUT};
use crate::loadgen::{LiveStats, LoadgenConfig, LoadgenReport};

/// Public seed of the benchmark accounts (as `dualchain devnet`'s default).
const ACCOUNTS_SEED: u64 = 42;
/// Interval of the mempool polls between steps.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Steps at or above this multiple of the saturation load are judged.
const JUDGED_MULTIPLIER: f64 = 2.0;
/// Memory for the transactions a rated step signs before its window (4 GiB: about
/// a million signed transfers).
const PRESIGN_MEMORY_BYTES: usize = 4 << 30;
/// Disk one validator fills per committed signed transfer, measured by `bench
/// byzantine` at 3,000 tx/s (16.5–19 GB for 1.8 M transaction-validators: the vertex and
/// the block copy, write-ahead logs not yet flushed, compaction's transient copies).
pub const DISK_BYTES_PER_SIGNED_TX: u64 = 11_000;
/// Free disk left over after a run's estimate, for everything else on the machine.
const DISK_HEADROOM_BYTES: u64 = 1 << 30;
/// Delta block times at the start of a send window left out of the goodput (the
/// pipeline filling).
pub const WARMUP_BLOCKS: u64 = 2;

/// Signed load at multiples of the saturation load on a local network: goodput and
/// finality per step, judged against the peak goodput.
#[derive(clap::Args, Debug, Clone)]
pub struct OverloadArgs {
    /// Number of validators (processes) to start on this machine.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Multiplies the block times (1 = 15 s Alpha / 3 s Delta; 0.1 = 1.5 s / 300 ms).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Funded accounts each step spends from (every step has its own).
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Saturation load, tx/s [default: measured by a probe step at maximum load].
    #[arg(long, value_name = "TPS")]
    pub saturation_tps: Option<f64>,
    /// Multiples of the saturation load, one step each, comma-separated.
    #[arg(long, value_parser = parse_steps, default_value = "1,2,4")]
    pub steps: Multipliers,
    /// Length of every step's send window (`30s`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub step_duration: Duration,
    /// Transactions per SubmitBatch call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Goodput at 2× saturation and above must be at least this share of the peak.
    #[arg(long, default_value_t = 0.9)]
    pub min_goodput_ratio: f64,
    /// Print the report as JSON instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub local: crate::cli::LocalValidators,
    /// Keep the validators' data directory (keys, genesis, databases, logs) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// One more argument for every `dualchain run` (repeat it; e.g.
    /// `--validator-arg=--admission-max-wait-ms=60000` to measure a network that
    /// admits a minute of backlog, against the default).
    #[arg(long = "validator-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub validator_args: Vec<String>,
}

/// The multiples of the saturation load, in the order they run.
#[derive(Clone, Debug, PartialEq)]
pub struct Multipliers(pub Vec<f64>);

/// Parses `1,2,4` (an `x` or `×` suffix is allowed: `1x,2x`); each must be a positive
/// number, and there must be at least one.
pub fn parse_steps(text: &str) -> Result<Multipliers, String> {
    let steps = text
        .split(',')
        .map(|part| {
            let part = part.trim();
            let number = part.trim_end_matches(['x', 'X', '×']).trim();
            match number.parse::<f64>() {
                Ok(m) if m.is_finite() && m > 0.0 => Ok(m),
                _ => Err(format!("{part:?} is not a positive multiplier")),
            }
        })
        .collect::<Result<Vec<f64>, String>>()?;
    if steps.is_empty() {
        return Err("--steps needs at least one multiplier".into());
    }
    Ok(Multipliers(steps))
}

/// The figures of one load run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepFigures {
    /// `probe` or the multiplier, e.g. `2×`.
    pub label: String,
    /// `None` for the probe at maximum load.
    pub multiplier: Option<f64>,
    /// Offered load, tx/s; `None` at maximum load.
    pub offered_tps: Option<f64>,
    pub achieved_submit_tps: f64,
    pub submitted: u64,
    pub committed: u64,
    /// Transactions the chain committed per second while the load was on (see the
    /// module docs).
    pub goodput_tps: f64,
    /// Own committed transactions per second over the run, drain included (the load
    /// generator's `average_tps`).
    pub average_tps: f64,
    /// The Delta blocks the goodput was measured over.
    pub goodput_blocks: u64,
    /// Goodput over the peak goodput of the run.
    pub goodput_ratio: f64,
    /// Transactions finally refused (after retries).
    pub rejected: u64,
    pub retries: u64,
    /// Accepted but not final when the step's drain ended.
    pub uncommitted: u64,
    /// Refusals per status, every attempt counted.
    pub rejected_by_status: BTreeMap<String, u64>,
    pub finality_ms_p50: u64,
    pub finality_ms_p95: u64,
    pub finality_ms_p99: u64,
    /// Submit → the transaction's consensus commit; `None` if not measured.
    pub ordering_ms_p50: Option<u64>,
    pub ordering_ms_p95: Option<u64>,
    /// True if signing could not keep up with the offered load.
    pub limited_by_preparation: bool,
    /// Transactions still in the mempools when the step had to start.
    pub backlog_at_start: u64,
}

impl StepFigures {
    /// The figures of a finished load run.
    pub fn from_report(label: String, multiplier: Option<f64>, r: &LoadgenReport) -> Self {
        Self {
            label,
            multiplier,
            offered_tps: r.target_tps,
            achieved_submit_tps: r.achieved_submit_tps,
            submitted: r.result.submitted,
            committed: r.result.committed,
            goodput_tps: 0.0,
            average_tps: r.result.average_tps,
            goodput_blocks: 0,
            goodput_ratio: 0.0,
            rejected: r.result.rejected,
            retries: r.retries,
            uncommitted: r.uncommitted,
            rejected_by_status: r.rejected_by_status.clone(),
            finality_ms_p50: r.result.finality_ms.p50,
            finality_ms_p95: r.result.finality_ms.p95,
            finality_ms_p99: r.result.finality_ms.p99,
            ordering_ms_p50: r.result.ordering_finality_ms.map(|p| p.p50),
            ordering_ms_p95: r.result.ordering_finality_ms.map(|p| p.p95),
            limited_by_preparation: r.generator.limited_by_preparation,
            backlog_at_start: 0,
        }
    }
}

/// The whole benchmark's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OverloadReport {
    pub validators: usize,
    pub time_scale: f64,
    pub delta_block_ms: u64,
    pub accounts_per_step: usize,
    pub step_duration_s: f64,
    pub saturation_tps: f64,
    /// `probe` (measured at maximum load) or `given` (`--saturation-tps`).
    pub saturation_source: String,
    pub probe: Option<StepFigures>,
    pub steps: Vec<StepFigures>,
    pub peak_goodput_tps: f64,
    pub min_goodput_ratio: f64,
    pub pass: bool,
    /// Why the verdict is FAIL (empty on PASS).
    pub failures: Vec<String>,
}

impl OverloadReport {
    /// Sets the peak, every step's share of it, and the verdict.
    pub fn judge(&mut self) {
        self.peak_goodput_tps = self
            .probe
            .iter()
            .chain(&self.steps)
            .map(|s| s.goodput_tps)
            .fold(0.0, f64::max);
        let peak = self.peak_goodput_tps;
        for step in self.probe.iter_mut().chain(&mut self.steps) {
            step.goodput_ratio = if peak > 0.0 {
                step.goodput_tps / peak
            } else {
                0.0
            };
        }
        self.failures = verdict(&self.steps, self.min_goodput_ratio, peak);
        self.pass = self.failures.is_empty();
    }

    /// Records a failure that is not a step's goodput (the verdict becomes FAIL).
    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
        self.pass = false;
    }
}

/// The failures of the target: every step at [`JUDGED_MULTIPLIER`] × saturation or
/// more whose goodput is below `min_ratio` of the peak (ratios already filled in).
pub fn verdict(steps: &[StepFigures], min_ratio: f64, peak: f64) -> Vec<String> {
    steps
        .iter()
        .filter(|s| s.multiplier.is_some_and(|m| m >= JUDGED_MULTIPLIER))
        .filter(|s| s.goodput_ratio < min_ratio)
        .map(|s| {
            format!(
                "{} step: goodput {:.0} tx/s is {:.1} % of the peak {peak:.0} tx/s (needs at least {:.1} %)",
                s.label,
                s.goodput_tps,
                s.goodput_ratio * 100.0,
                min_ratio * 100.0
            )
        })
        .collect()
}

/// `2×`, `1.5×`.
fn multiplier_label(m: f64) -> String {
    format!("{m}×")
}

/// `MEMPOOL_FULL 12, RATE_LIMITED 3`, or `-`.
fn refusals(by_status: &BTreeMap<String, u64>) -> String {
    if by_status.is_empty() {
        return "-".into();
    }
    let list: Vec<String> = by_status.iter().map(|(k, v)| format!("{k} {v}")).collect();
    list.join(", ")
}

/// A figure, or `-` when it was not measured.
fn or_dash(figure: Option<u64>) -> String {
    figure.map_or("-".into(), |f| f.to_string())
}

fn table_row(s: &StepFigures) -> String {
    let offered = s.offered_tps.map_or("max".into(), |t| format!("{t:.0}"));
    format!(
        "| {} | {offered} | {} | {} | {:.1} | {:.1} % | {:.1} | {} | {} | {} | {} / {} | {} | {} | {} |\n",
        s.label,
        s.submitted,
        s.committed,
        s.goodput_tps,
        s.goodput_ratio * 100.0,
        s.average_tps,
        s.rejected,
        s.retries,
        refusals(&s.rejected_by_status),
        or_dash(s.ordering_ms_p50),
        or_dash(s.ordering_ms_p95),
        s.finality_ms_p50,
        s.finality_ms_p95,
        s.finality_ms_p99,
    )
}

/// The report as Markdown: the setting, one table row per step, the verdict.
pub fn render_markdown(r: &OverloadReport) -> String {
    let mut out = format!(
        "## Overload: signed load at multiples of saturation\n\n\
         {} validators, Delta block {} ms, {} accounts per step, {:.0} s per step; \
         saturation {:.1} tx/s ({})\n\n\
         | step | offered tx/s | submitted | committed | goodput tx/s | of peak | run avg tx/s | rejected | retries | refusals | ordering p50 / p95 ms | block p50 ms | block p95 ms | block p99 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
        r.validators,
        r.delta_block_ms,
        r.accounts_per_step,
        r.step_duration_s,
        r.saturation_tps,
        r.saturation_source,
    );
    for step in r.probe.iter().chain(&r.steps) {
        out.push_str(&table_row(step));
    }
    out.push_str(&format!(
        "\nPeak goodput {:.1} tx/s. Target: goodput at {JUDGED_MULTIPLIER}× saturation and above \
         stays at least {:.0} % of the peak.\n",
        r.peak_goodput_tps,
        r.min_goodput_ratio * 100.0
    ));
    if r.pass {
        out.push_str("\n**PASS**\n");
    } else {
        out.push_str("\n**FAIL**\n");
        for failure in &r.failures {
            out.push_str(&format!("- {failure}\n"));
        }
    }
    out
}

/// `dualchain bench overload`: run, print (Markdown, or JSON with `--json`), and fail
/// (non-zero exit) if the target is missed.
pub fn overload_main(args: OverloadArgs) -> anyhow::Result<()> {
    let report = crate::cli::runtime()?.block_on(run(&args))?;
    let verdict = (report.pass, report.failures.as_slice());
    print_and_judge(
        "overload",
        &report,
        args.json,
        render_markdown(&report),
        verdict,
    )
}

/// Prints a benchmark's report — `markdown`, or `report` as JSON with `json` — and
/// fails (non-zero exit) naming `failures` unless it passed.
pub fn print_and_judge(
    what: &str,
    report: &impl Serialize,
    json: bool,
    markdown: String,
    (pass, failures): (bool, &[String]),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{markdown}");
    }
    if !pass {
        bail!("{what} target missed: {}", failures.join("; "));
    }
    Ok(())
}

fn validate(args: &OverloadArgs) -> anyhow::Result<()> {
    if args.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if args.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    if let Some(tps) = args.saturation_tps
        && !(tps.is_finite() && tps > 0.0)
    {
        bail!("--saturation-tps must be a positive number, got {tps}");
    }
    if !(args.min_goodput_ratio.is_finite() && args.min_goodput_ratio >= 0.0) {
        bail!("--min-goodput-ratio must be a number >= 0");
    }
    if args.step_duration.is_zero() {
        bail!("--step-duration must be positive");
    }
    Ok(())
}

/// Refuses a run whose validators would fill the disk under `dir`: `tx_copies`
/// committed transactions times the validators that store each (a full disk fails
/// their stores, restarts their chains, and the figures would measure that).
pub fn check_disk(dir: &Path, tx_copies: f64, who: &str) -> anyhow::Result<()> {
    let stat = rustix::fs::statvfs(dir)
        .with_context(|| format!("reading the free space under {}", dir.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let need = disk_needed(tx_copies);
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let (expected, free_gib) = (gib(need - DISK_HEADROOM_BYTES), gib(free));
    if free < need {
        bail!(
            "{who}: the validators would write about {expected:.1} GiB to {} and \
             {free_gib:.1} GiB is free (keeping 1 GiB spare): lower the load or the step \
             duration, or set TMPDIR to a larger disk",
            dir.display()
        );
    }
    eprintln!("{who}: about {expected:.1} GiB of validator data expected, {free_gib:.1} GiB free");
    Ok(())
}

/// Bytes a run of `tx_copies` stored transactions needs, with the headroom.
fn disk_needed(tx_copies: f64) -> u64 {
    let data = (tx_copies.max(0.0) * DISK_BYTES_PER_SIGNED_TX as f64).min(u64::MAX as f64);
    (data as u64).saturating_add(DISK_HEADROOM_BYTES)
}

/// Load runs: the probe (unless the saturation is given), then one per step.
fn runs(args: &OverloadArgs) -> usize {
    args.steps.0.len() + usize::from(args.saturation_tps.is_none())
}

/// Runs the benchmark (see the module docs); prints progress on stderr only.
pub async fn run(args: &OverloadArgs) -> anyhow::Result<OverloadReport> {
    validate(args)?;
    on_signed_network(args, runs(args), "overload", async |cluster, delta_ms| {
        drive(args, cluster, delta_ms).await
    })
    .await
}

/// Prepares a local network as this benchmark starts it — `args.validators`
/// processes at `args.time_scale`, signed transactions only, `args.accounts × runs`
/// funded accounts from the public benchmark seed, `args.validator_args` — starts it,
/// runs `drive` on it with the Delta block time (Ctrl-C ends it), and always stops
/// it; `who` prefixes the progress lines. `dualchain bench byzantine` runs on the
/// same network.
pub async fn on_signed_network<T>(
    args: &OverloadArgs,
    runs: usize,
    who: &str,
    drive: impl AsyncFnOnce(&mut LocalCluster, u64) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (alpha_ms, delta_ms) = crate::devnet::block_times(args.time_scale)?;
    let bin = crate::devnet::node_binary(args.local.node_binary.as_deref())?;
    let mut spec = ClusterSpec::new(args.validators).block_times(alpha_ms, delta_ms);
    spec.accounts = args.accounts * runs;
    spec.accounts_seed = ACCOUNTS_SEED;
    spec.allow_unsigned = false;
    spec.genesis_delay = GENESIS_DELAY;
    spec.dir_prefix = format!("dualchain-{who}-");
    spec.extra_run_args
        .extend(args.validator_args.iter().cloned());
    let mut cluster = tokio::task::spawn_blocking(move || LocalCluster::prepare(bin, spec))
        .await
        .context("preparing keys and genesis")??;
    eprintln!(
        "{who}: {} validators in {} (alpha {alpha_ms} ms, delta {delta_ms} ms blocks, signed)",
        args.validators,
        cluster.dir().display()
    );
    // Started from this task's thread, which outlives them (see the cluster's docs).
    let result = match cluster.start_all() {
        Ok(()) => tokio::select! {
            r = drive(&mut cluster, delta_ms) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        },
        Err(e) => Err(e),
    };
    // Whatever happened, stop the validators (cleanly if they still run).
    for record in cluster.stop_all(STOP_TIMEOUT).await {
        if !record.clean {
            eprintln!(
                "{who}: validator {} did not stop cleanly: {}",
                record.index, record.detail
            );
        }
    }
    if args.keep {
        eprintln!("{who}: data kept in {}", cluster.keep_dir().display());
    }
    result
}

/// Writes one keyring per run, each with its own slice of the genesis accounts.
pub fn write_keyrings(dir: &Path, accounts: usize, runs: usize) -> anyhow::Result<Vec<PathBuf>> {
    let keys = dualchain_core::keyfile::seeded_account_keys(accounts * runs, ACCOUNTS_SEED);
    keys.chunks(accounts)
        .enumerate()
        .map(|(i, slice)| {
            let path = dir.join(format!("overload-accounts-{i}.keys"));
            dualchain_core::keyfile::write_keyring(&path, slice)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// How long the mempools may take to empty between steps: ten Delta blocks, at least
/// 30 s.
pub fn settle_timeout(delta_ms: u64) -> Duration {
    Duration::from_millis(delta_ms.saturating_mul(10)).max(Duration::from_secs(30))
}

/// Sum of the Delta mempool depths over `urls` (an unanswering node counts as not
/// empty).
async fn mempool_depth(urls: &[String]) -> u64 {
    let mut depth = 0;
    for url in urls {
        depth += dualchain_client::node::chain_status(url, Chain::Delta)
            .await
            .map_or(1, |s| s.mempool_depth);
    }
    depth
}

/// Waits until every Delta mempool is empty, then one more block for the last ones to
/// finalize; returns the depth left if `timeout` passed first.
pub async fn wait_mempools_empty(urls: &[String], delta_ms: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let depth = mempool_depth(urls).await;
        if depth == 0 {
            tokio::time::sleep(Duration::from_millis(delta_ms)).await;
            return 0;
        }
        if Instant::now() >= deadline {
            return depth;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// (timestamp, transactions that succeeded) of the Delta blocks after `from_height`
/// up to the head.
async fn block_times_and_counts(url: &str, from_height: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    let (head, _) = chain_heights(url, Chain::Delta).await?;
    block_times(url, Chain::Delta, from_height + 1..=head).await
}

/// (timestamp, transactions that succeeded) of `chain`'s blocks `heights` on the
/// validator at `url`: a transaction whose receipt failed is in the block but is not
/// goodput (`dualchain devnet` reads its block ratio from them too).
pub async fn block_times(
    url: &str,
    chain: Chain,
    heights: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut blocks = Vec::new();
    for height in heights {
        let block = block(url, chain, height, false).await?;
        if let Some(header) = block.header {
            let succeeded = header.tx_count.saturating_sub(block.failed_tx_count);
            blocks.push((header.timestamp_unix_ms, u64::from(succeeded)));
        }
    }
    Ok(blocks)
}

/// [`block_times_and_counts`] from the first of `urls` that answers: every validator
/// holds the same blocks, and one may be restarting or too busy to answer.
async fn blocks_from_any(urls: &[String], from_height: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut last_error = None;
    for url in urls {
        match block_times_and_counts(url, from_height).await {
            Ok(blocks) => return Ok(blocks),
            Err(e) => {
                eprintln!("overload: reading blocks from {url}: {e:#}; asking the next validator");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no validator to read blocks from")))
}

/// Transactions per second between the first block at or after `window.0` and the
/// last block at or before `window.1` (the first block's own transactions were
/// committed before the span starts, so they are left out), and how many blocks the
/// span covers. `None` if fewer than two blocks fall in the window.
pub fn window_goodput(blocks: &[(u64, u64)], window: (u64, u64)) -> Option<(f64, u64)> {
    let inside: Vec<&(u64, u64)> = blocks
        .iter()
        .filter(|(at, _)| (window.0..=window.1).contains(at))
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let span_ms = last.0.checked_sub(first.0).filter(|&ms| ms > 0)?;
    let txs: u64 = inside[1..].iter().map(|(_, n)| n).sum();
    Some((
        txs as f64 * 1000.0 / span_ms as f64,
        inside.len() as u64 - 1,
    ))
}

/// The Unix time (ms) the send window of the load reporting to `live` opens, for
/// [`send_window_goodput`].
pub fn send_window_start(live: &Arc<LiveStats>) -> tokio::task::JoinHandle<u64> {
    let live = live.clone();
    tokio::spawn(async move {
        live.wait_started().await;
        dualchain_testkit::unix_ms()
    })
}

/// The goodput of a send window that opened at `start_ms` (Unix ms) and lasted
/// `length`, read from the Delta blocks after `from_height` and left of its first
/// `warmup` (see the module docs; the steps leave out [`WARMUP_BLOCKS`] block times),
/// and how many blocks it spans; `None` if fewer than two blocks fall in it.
/// `dualchain devnet`'s capacity probe measures the same way.
pub async fn send_window_goodput(
    targets: &[String],
    from_height: u64,
    (start_ms, warmup, length): (u64, Duration, Duration),
) -> anyhow::Result<Option<(f64, u64)>> {
    let blocks = blocks_from_any(targets, from_height).await?;
    let window = (
        start_ms + warmup.as_millis() as u64,
        start_ms + length.as_millis() as u64,
    );
    Ok(window_goodput(&blocks, window))
}

/// The network a load runs against and what every run shares (also the stepping of
/// `dualchain bench byzantine`).
pub struct Bench<'a> {
    args: &'a OverloadArgs,
    targets: Vec<String>,
    keyrings: Vec<PathBuf>,
    delta_ms: u64,
}

impl<'a> Bench<'a> {
    /// Steps of `args.step_duration` against `targets` (Delta API URLs), run `i` with
    /// the accounts of `keyrings[i]`.
    pub fn new(
        args: &'a OverloadArgs,
        targets: Vec<String>,
        keyrings: Vec<PathBuf>,
        delta_ms: u64,
    ) -> Self {
        Self {
            args,
            targets,
            keyrings,
            delta_ms,
        }
    }

    /// One signed steady load with the accounts of run `index`; `tps: None` is maximum
    /// load.
    async fn run_load(
        &self,
        index: usize,
        tps: Option<f64>,
        live: Arc<LiveStats>,
    ) -> anyhow::Result<LoadgenReport> {
        let accounts = AccountSource::Keyring {
            path: self.keyrings[index].clone(),
            limit: None,
        };
        let mut config = LoadgenConfig::new(self.targets.clone(), accounts);
        config.tps = tps;
        config.duration = self.args.step_duration;
        config.signed = true;
        config.batch = self.args.batch;
        config.seed = index as u64 + 1;
        config.drain_timeout = Duration::from_millis((self.delta_ms * 10).max(5_000));
        // The whole step signed before its window opens: on a machine the validators
        // share, signing in the window would take their CPU and lower the goodput
        // the step measures.
        config.presign_memory_bytes = PRESIGN_MEMORY_BYTES;
        let ticker = crate::progress::spawn_plain_loadgen_ticker(live.clone(), config.duration);
        let report = crate::loadgen::run(config, live).await;
        ticker.abort();
        report
    }

    /// Waits for empty mempools, runs the load, and collects its figures.
    pub async fn step(
        &self,
        index: usize,
        label: String,
        multiplier: Option<f64>,
        tps: Option<f64>,
    ) -> anyhow::Result<StepFigures> {
        let settle = settle_timeout(self.delta_ms);
        let backlog = wait_mempools_empty(&self.targets, self.delta_ms, settle).await;
        if backlog > 0 {
            eprintln!("overload: {backlog} transactions still in the mempools after {settle:?}");
        }
        let offered = tps.map_or("maximum load".into(), |t| format!("{t:.1} tx/s"));
        eprintln!(
            "overload: step {label}: {offered} for {:?}",
            self.args.step_duration
        );
        let (from_height, _) = chain_heights(&self.targets[0], Chain::Delta).await?;
        let live = LiveStats::new();
        let window_start = send_window_start(&live);
        let report = self
            .run_load(index, tps, live)
            .await
            .with_context(|| format!("running the {label} step"))?;
        let mut figures = StepFigures::from_report(label, multiplier, &report);
        figures.backlog_at_start = backlog;
        let start_ms = window_start.await.context("the window-start task")?;
        let warmup = Duration::from_millis(WARMUP_BLOCKS * self.delta_ms);
        let send_window = (start_ms, warmup, self.args.step_duration);
        if let Some((rate, spanned)) =
            send_window_goodput(&self.targets, from_height, send_window).await?
        {
            figures.goodput_tps = rate;
            figures.goodput_blocks = spanned;
        }
        eprintln!(
            "overload: step {}: goodput {:.1} tx/s, finality p95 {} ms",
            figures.label, figures.goodput_tps, figures.finality_ms_p95
        );
        Ok(figures)
    }
}

/// Readiness, keyrings, the probe and the steps: the part that runs while validators
/// live.
async fn drive(
    args: &OverloadArgs,
    cluster: &mut LocalCluster,
    delta_ms: u64,
) -> anyhow::Result<OverloadReport> {
    crate::devnet::wait_sealing(cluster, args.local.ready_timeout, "overload").await?;
    let dir = cluster.dir().to_path_buf();
    let (accounts, count) = (args.accounts, runs(args));
    let keyrings = tokio::task::spawn_blocking(move || write_keyrings(&dir, accounts, count))
        .await
        .context("deriving the accounts")??;
    let bench = Bench::new(args, cluster.api_urls(ChainId::Delta), keyrings, delta_ms);
    let mut report = OverloadReport {
        validators: args.validators,
        time_scale: args.time_scale,
        delta_block_ms: delta_ms,
        accounts_per_step: args.accounts,
        step_duration_s: args.step_duration.as_secs_f64(),
        min_goodput_ratio: args.min_goodput_ratio,
        ..OverloadReport::default()
    };
    let first_step = match args.saturation_tps {
        Some(tps) => {
            report.saturation_source = "given".into();
            report.saturation_tps = tps;
            0
        }
        None => {
            let probe = bench.step(0, "probe".into(), None, None).await?;
            report.saturation_source = "probe".into();
            report.saturation_tps = probe.goodput_tps;
            report.probe = Some(probe);
            1
        }
    };
    eprintln!(
        "overload: saturation {:.1} tx/s ({})",
        report.saturation_tps, report.saturation_source
    );
    // No step commits more than the saturation load (the probe's data is on disk).
    let step_txs = report.saturation_tps * args.step_duration.as_secs_f64();
    let copies = step_txs * args.steps.0.len() as f64 * args.validators as f64;
    check_disk(cluster.dir(), copies, "overload")?;
    if report.saturation_tps <= 0.0 {
        report.judge();
        report.fail(format!(
            "the probe at maximum load committed nothing in {:?} plus its drain: no saturation \
             load to scale the steps by (give one with --saturation-tps)",
            args.step_duration
        ));
        return Ok(report);
    }
    for (i, &m) in args.steps.0.iter().enumerate() {
        let tps = m * report.saturation_tps;
        let figures = bench
            .step(first_step + i, multiplier_label(m), Some(m), Some(tps))
            .await?;
        report.steps.push(figures);
    }
    report.judge();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(label: &str, multiplier: Option<f64>, goodput: f64) -> StepFigures {
        StepFigures {
            label: label.into(),
            multiplier,
            offered_tps: multiplier.map(|m| m * 100.0),
            goodput_tps: goodput,
            ..StepFigures::default()
        }
    }

    fn report(probe: Option<StepFigures>, steps: Vec<StepFigures>) -> OverloadReport {
        let mut r = OverloadReport {
            validators: 4,
            delta_block_ms: 600,
            accounts_per_step: 1000,
            step_duration_s: 10.0,
            saturation_tps: 100.0,
            saturation_source: "given".into(),
            min_goodput_ratio: 0.9,
            probe,
            steps,
            ..OverloadReport::default()
        };
        r.judge();
        r
    }

    #[test]
    fn steps_parse_with_or_without_a_suffix() {
        assert_eq!(parse_steps("1,2,4"), Ok(Multipliers(vec![1.0, 2.0, 4.0])));
        assert_eq!(
            parse_steps(" 1x, 1.5× ,8X"),
            Ok(Multipliers(vec![1.0, 1.5, 8.0]))
        );
        assert_eq!(parse_steps("3"), Ok(Multipliers(vec![3.0])));
    }

    #[test]
    fn bad_steps_are_refused() {
        for bad in ["", "1,,2", "0", "-1", "two", "1,inf", "NaN"] {
            assert!(parse_steps(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_command_line_gives_the_documented_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: OverloadArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["overload"]).unwrap();
        let a = cli.args;
        assert_eq!(a.validators, 4);
        assert_eq!(a.accounts, 1000);
        assert_eq!(a.steps, Multipliers(vec![1.0, 2.0, 4.0]));
        assert_eq!(a.step_duration, Duration::from_secs(30));
        assert_eq!(a.min_goodput_ratio, 0.9);
        assert_eq!(a.saturation_tps, None);
        assert_eq!(runs(&a), 4);
        let cli = <Cli as clap::Parser>::try_parse_from([
            "overload",
            "--saturation-tps",
            "100",
            "--steps",
            "1,2",
            "--step-duration",
            "10s",
            "--validator-arg",
            "--admission-max-wait-ms",
            "--validator-arg=60000",
        ])
        .unwrap();
        assert_eq!(cli.args.saturation_tps, Some(100.0));
        assert_eq!(runs(&cli.args), 2);
        assert_eq!(
            cli.args.validator_args,
            ["--admission-max-wait-ms", "60000"]
        );
        assert!(a.validator_args.is_empty());
    }

    #[test]
    fn the_disk_estimate_scales_with_stored_copies_and_keeps_headroom() {
        assert_eq!(disk_needed(0.0), DISK_HEADROOM_BYTES);
        assert_eq!(disk_needed(-5.0), DISK_HEADROOM_BYTES);
        assert_eq!(
            disk_needed(1_000_000.0),
            1_000_000 * DISK_BYTES_PER_SIGNED_TX + DISK_HEADROOM_BYTES
        );
        assert_eq!(disk_needed(f64::INFINITY), u64::MAX);
        let dir = tempfile::tempdir().unwrap();
        check_disk(dir.path(), 10.0, "test").unwrap();
        let error = check_disk(dir.path(), 1e18, "test")
            .unwrap_err()
            .to_string();
        assert!(error.contains("lower the load"), "{error}");
        assert!(check_disk(&dir.path().join("missing"), 1.0, "test").is_err());
    }

    #[test]
    fn goodput_ratios_are_shares_of_the_peak_including_the_probe() {
        let r = report(
            Some(step("probe", None, 200.0)),
            vec![step("1×", Some(1.0), 150.0), step("2×", Some(2.0), 190.0)],
        );
        assert_eq!(r.peak_goodput_tps, 200.0);
        assert_eq!(r.probe.as_ref().unwrap().goodput_ratio, 1.0);
        assert_eq!(r.steps[0].goodput_ratio, 0.75);
        assert_eq!(r.steps[1].goodput_ratio, 0.95);
        assert!(r.pass, "{:?}", r.failures);
    }

    #[test]
    fn only_steps_at_twice_saturation_or_more_are_judged() {
        let r = report(
            None,
            vec![
                step("1×", Some(1.0), 50.0),
                step("1.5×", Some(1.5), 100.0),
                step("2×", Some(2.0), 95.0),
                step("4×", Some(4.0), 60.0),
            ],
        );
        assert!(!r.pass);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(r.failures[0].starts_with("4× step: goodput 60 tx/s is 60.0 %"));
        let exact = report(
            None,
            vec![step("1×", Some(1.0), 100.0), step("2×", Some(2.0), 90.0)],
        );
        assert!(exact.pass, "{:?}", exact.failures);
    }

    #[test]
    fn nothing_committed_fails_the_judged_steps() {
        let r = report(None, vec![step("2×", Some(2.0), 0.0)]);
        assert_eq!(r.peak_goodput_tps, 0.0);
        assert_eq!(r.steps[0].goodput_ratio, 0.0);
        assert!(!r.pass);
    }

    #[test]
    fn the_table_has_a_row_per_step_and_the_verdict() {
        let mut busy = step("4×", Some(4.0), 50.0);
        busy.submitted = 4000;
        busy.committed = 500;
        busy.rejected = 7;
        busy.retries = 30;
        busy.rejected_by_status = BTreeMap::from([
            ("MEMPOOL_FULL".to_owned(), 25),
            ("RATE_LIMITED".to_owned(), 12),
        ]);
        busy.average_tps = 41.5;
        busy.finality_ms_p50 = 800;
        busy.finality_ms_p95 = 1900;
        busy.finality_ms_p99 = 2500;
        busy.ordering_ms_p50 = Some(240);
        busy.ordering_ms_p95 = Some(610);
        let r = report(
            Some(step("probe", None, 100.0)),
            vec![step("1×", Some(1.0), 98.0), busy],
        );
        let text = render_markdown(&r);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert!(rows[1].starts_with("| probe | max |"), "{}", rows[1]);
        assert!(rows[2].starts_with("| 1× | 100 |"), "{}", rows[2]);
        assert_eq!(
            rows[3],
            "| 4× | 400 | 4000 | 500 | 50.0 | 50.0 % | 41.5 | 7 | 30 | MEMPOOL_FULL 25, RATE_LIMITED 12 | 240 / 610 | 800 | 1900 | 2500 |"
        );
        assert!(text.contains("saturation 100.0 tx/s (given)"));
        assert!(text.contains("**FAIL**\n- 4× step"));
        let passing = report(None, vec![step("2×", Some(2.0), 98.0)]);
        assert!(render_markdown(&passing).ends_with("**PASS**\n"));
    }

    #[test]
    fn a_probe_that_committed_nothing_is_shown_and_fails() {
        let mut r = report(Some(step("probe", None, 0.0)), Vec::new());
        assert!(r.pass, "no step was judged yet");
        r.fail("the probe at maximum load committed nothing".into());
        let text = render_markdown(&r);
        assert!(!r.pass);
        assert!(
            text.contains("| probe | max | 0 | 0 | 0.0 | 0.0 % |"),
            "{text}"
        );
        assert!(text.ends_with("**FAIL**\n- the probe at maximum load committed nothing\n"));
    }

    #[test]
    fn goodput_counts_the_blocks_inside_the_window_after_the_first() {
        // Blocks every 3 s from t = 1,000 ms, 300 transactions each but the first.
        let blocks: Vec<(u64, u64)> = (0..10)
            .map(|i| (1_000 + i * 3_000, if i == 0 { 5 } else { 300 }))
            .collect();
        // Window 6,000..=20,000 ms holds the blocks at 7, 10, 13, 16 and 19 s: the
        // transactions of the four after the first, over 12 s.
        assert_eq!(window_goodput(&blocks, (6_000, 20_000)), Some((100.0, 4)));
        // One block in the window, or none, measures nothing.
        assert_eq!(window_goodput(&blocks, (6_500, 8_000)), None);
        assert_eq!(window_goodput(&blocks, (40_000, 50_000)), None);
        assert_eq!(window_goodput(&[], (0, 10)), None);
    }

    #[test]
    fn steps_settle_for_ten_blocks_and_at_least_thirty_seconds() {
        assert_eq!(settle_timeout(600), Duration::from_secs(30));
        assert_eq!(settle_timeout(3_000), Duration::from_secs(30));
        assert_eq!(settle_timeout(6_000), Duration::from_secs(60));
    }

    #[test]
    fn every_run_gets_its_own_slice_of_the_genesis_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_keyrings(dir.path(), 3, 2).unwrap();
        assert_eq!(paths.len(), 2);
        let genesis = dualchain_core::keyfile::seeded_account_keys(6, ACCOUNTS_SEED);
        for (i, path) in paths.iter().enumerate() {
            let slice = crate::accounts::load_accounts(&AccountSource::Keyring {
                path: path.clone(),
                limit: None,
            })
            .unwrap();
            assert_eq!(slice.len(), 3);
            for (j, account) in slice.iter().enumerate() {
                let expected = dualchain_core::types::Address::of(genesis[i * 3 + j].public());
                assert_eq!(account.address, expected);
            }
        }
    }
}
