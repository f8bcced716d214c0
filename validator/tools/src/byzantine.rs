//! `dualchain bench byzantine`: a local network's Delta throughput and its honest
//! validators' memory while one validator floods the others at line rate, against the
//! same network without the attack, in one run.
//!
//! # What it measures
//! The target of issue 21: under a Byzantine validator flooding at line rate, honest
//! validators' memory stays within budget and Delta throughput stays at least
//! `--min-throughput-ratio` (80 %) of the same run without the attack (the better of
//! the clean and silent steps below), and no honest chain restarts. One network
//! ([`LocalCluster`], signed transactions, as `dualchain bench overload` starts it)
//! goes through three steps of the same offered signed load, each with its own
//! accounts, sent to the honest validators only (validators `0..N-1`):
//! 1. **clean**: every validator runs honestly;
//! 2. **silent**: the last validator is stopped (what the attacker's absence from
//!    consensus costs by itself: its leader slots are skipped);
//! 3. **flood**: its key and port are taken by the flooder of [`crate::flood`] (the
//!    kinds of `--flood`), which takes no part in consensus.
//!
//! Throughput is the goodput of `dualchain bench overload` (what the chain commits
//! while the load is on, read from the blocks) at a load the clean network sustains:
//! the question is whether the flood takes that away. The default, 2,000 signed tx/s,
//! is below a 4-validator network's saturation on a 2-core machine (about 3,000 in a
//! debug build); far above it the shared cores starve every validator, peers ban each
//! other for missed heartbeats, and the steps measure that instead. Memory is
//! judged twice, sampled every [`SAMPLE_EVERY`] on each honest validator:
//! - its own account of what peers' vertices hold, `dualchain_consensus_pending_bytes`
//!   (the buffer of vertices waiting for parents, where orphans land), must stay within
//!   the configured pending-vertex budget (`max_pending_bytes`, 256 MiB);
//! - its resident set: a validator's grows for minutes after its start under load
//!   (the DAG window, RocksDB memtables and caches, the allocator keeping what it
//!   freed), so the flood step's growth (its peak over the silent step's) may exceed
//!   the silent step's own growth (over the clean step's peak) by at most
//!   `--memory-budget-mib` (default 256 MiB, the same budget): the same processes
//!   and load, one step apart, with and without the attacker's flood.
//!
//! The flood's own CPU time and rate are reported: on one machine the attacker's
//! sending takes cores from the victims, which an attacker on its own machine would
//! not, so a ratio measured here is a lower bound.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use dualchain_consensus::config::DagBftConfig;
use dualchain_core::crypto::ValidatorScheme;
use dualchain_core::types::{ChainId, Genesis, ValidatorIndex};
use dualchain_loadgen::cli::parse_duration;
use dualchain_loadgen::devnet::STOP_TIMEOUT;
use dualchain_loadgen::overload::{Bench, Multipliers, OverloadArgs, StepFigures};
use dualchain_net::PeerAddress;
use dualchain_testkit::LocalCluster;
use serde::Serialize;

use crate::flood::{FloodKind, FloodPlan, FloodStats, FloodTarget};

/// How often honest validators' resident sets and pending bytes are read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);
const MIB: f64 = 1024.0 * 1024.0;
/// The steps, in the order they run.
const STEPS: [&str; 3] = ["clean", "silent", "flood"];

/// Delta throughput and honest memory with one validator flooding at line rate,
/// against the same network without the attack.
#[derive(clap::Args, Debug, Clone)]
pub struct ByzantineArgs {
    /// Validators (processes) on this machine; the last one turns Byzantine.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(4..=100))]
    pub validators: u16,
    /// Multiplies the block times (1 = 15 s Alpha / 3 s Delta).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Offered signed load of every step, tx/s (one the clean network sustains).
    #[arg(long, default_value_t = 2000.0)]
    pub tps: f64,
    /// Funded accounts each step spends from.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Length of every step's send window.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub step_duration: Duration,
    /// What the Byzantine validator sends, comma-separated, in turn. The default is
    /// the flood a member can keep up: garbage costs it its connections within a few
    /// frames (a ban of a minute), so adding it measures a shorter flood.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "orphans,sync"
    )]
    pub flood: Vec<FloodKind>,
    /// Transaction bytes in each orphan vertex, KiB (at most a vertex's 16 MiB).
    #[arg(long, default_value_t = 8192)]
    pub orphan_payload_kib: usize,
    /// The flood step's goodput must be at least this share of the better of the
    /// clean and silent steps'.
    #[arg(long, default_value_t = 0.8)]
    pub min_throughput_ratio: f64,
    /// How much more an honest validator's resident set may grow during the flood
    /// step than during the silent step before it, MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_budget_mib: u64,
    /// Print the report as JSON instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub local: dualchain_loadgen::cli::LocalValidators,
    /// Keep the validators' data directory afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// One step's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepRow {
    pub label: String,
    pub load: StepFigures,
    /// Peak resident set of each honest validator, MiB.
    pub peak_rss_mib: Vec<u64>,
    /// Peak `dualchain_consensus_pending_bytes` (Delta) of each honest validator.
    pub peak_pending_bytes: Vec<u64>,
    /// `dualchain_chain_restarts_total` (Delta) of each honest validator at the end.
    pub restarts: Vec<u64>,
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ByzantineReport {
    pub validators: u16,
    pub attacker: ValidatorIndex,
    pub delta_block_ms: u64,
    pub offered_tps: f64,
    pub step_duration_s: f64,
    pub flood_kinds: Vec<FloodKind>,
    pub orphan_payload_kib: usize,
    pub steps: Vec<StepRow>,
    pub flood: FloodStats,
    /// Flood goodput over clean goodput.
    pub throughput_ratio: f64,
    /// Flood goodput over silent goodput (what the flood costs beyond the absence).
    pub throughput_ratio_vs_silent: f64,
    /// Largest excess growth of an honest validator's resident set: its growth in
    /// the flood step minus its growth in the silent step (MiB).
    pub max_rss_excess_mib: i64,
    /// Restarts of honest validators' Delta chains during the flood step.
    pub honest_restarts_in_flood: u64,
    /// Largest pending-vertex bytes an honest validator held, any step.
    pub max_pending_bytes: u64,
    /// The configured pending-vertex budget.
    pub pending_budget_bytes: u64,
    pub min_throughput_ratio: f64,
    pub memory_budget_mib: u64,
    pub pass: bool,
    pub failures: Vec<String>,
}

impl ByzantineReport {
    /// The step named `label`, if it ran.
    fn step(&self, label: &str) -> Option<&StepRow> {
        self.steps.iter().find(|s| s.label == label)
    }

    /// Fills the ratios and the verdict from the steps.
    pub fn judge(&mut self) {
        let goodput = |label: &str| self.step(label).map(|s| s.load.goodput_tps);
        let (Some(clean), Some(silent), Some(flood)) =
            (goodput("clean"), goodput("silent"), goodput("flood"))
        else {
            self.pass = false;
            self.failures
                .push("the run did not complete its three steps".into());
            return;
        };
        self.throughput_ratio = ratio(flood, clean);
        self.throughput_ratio_vs_silent = ratio(flood, silent);
        let rss = |label: &str| self.step(label).map_or(&[][..], |s| &s.peak_rss_mib[..]);
        self.max_rss_excess_mib = excess_growth(rss("clean"), rss("silent"), rss("flood"));
        self.max_pending_bytes = self
            .steps
            .iter()
            .flat_map(|s| s.peak_pending_bytes.iter().copied())
            .max()
            .unwrap_or(0);
        // Judged against the better baseline: on a shared machine the silent step
        // often commits more than the clean one (one process fewer on the cores).
        let (baseline, name) = if silent > clean {
            (silent, "silent")
        } else {
            (clean, "clean")
        };
        if baseline <= 0.0 {
            self.failures
                .push("neither step without the flood committed anything: no baseline".into());
        } else if flood < self.min_throughput_ratio * baseline {
            self.failures.push(format!(
                "flood goodput {flood:.1} tx/s is {:.2} of the {name} step's {baseline:.1} tx/s, below {:.2}",
                flood / baseline,
                self.min_throughput_ratio
            ));
        }
        let restarts = |label: &str| {
            self.step(label)
                .map_or(0, |s| s.restarts.iter().sum::<u64>())
        };
        self.honest_restarts_in_flood = restarts("flood").saturating_sub(restarts("silent"));
        if self.honest_restarts_in_flood > 0 {
            self.failures.push(format!(
                "honest validators' Delta chains restarted {} times during the flood",
                self.honest_restarts_in_flood
            ));
        }
        if self.max_rss_excess_mib > self.memory_budget_mib as i64 {
            self.failures.push(format!(
                "an honest validator's resident set grew {} MiB more under the flood than \
                 without it, above the {} MiB budget",
                self.max_rss_excess_mib, self.memory_budget_mib
            ));
        }
        if self.max_pending_bytes > self.pending_budget_bytes {
            self.failures.push(format!(
                "an honest validator held {} bytes of pending vertices, above the configured {}",
                self.max_pending_bytes, self.pending_budget_bytes
            ));
        }
        self.pass = self.failures.is_empty();
    }
}

/// Per validator, (flood peak − silent peak) − (silent peak − clean peak); the largest.
fn excess_growth(clean: &[u64], silent: &[u64], flood: &[u64]) -> i64 {
    clean
        .iter()
        .zip(silent)
        .zip(flood)
        .map(|((&c, &s), &f)| (f as i64 - s as i64) - (s as i64 - c as i64))
        .max()
        .unwrap_or(0)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// `dualchain bench byzantine`.
pub fn main(args: ByzantineArgs) -> anyhow::Result<()> {
    let report = dualchain_loadgen::cli::runtime()?.block_on(run(&args))?;
    let verdict = (report.pass, report.failures.as_slice());
    dualchain_loadgen::overload::print_and_judge(
        "Byzantine",
        &report,
        args.json,
        render_markdown(&report),
        verdict,
    )
}

fn validate(args: &ByzantineArgs) -> anyhow::Result<()> {
    if !(args.tps.is_finite() && args.tps > 0.0) {
        bail!("--tps must be a positive number, got {}", args.tps);
    }
    if args.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    if args.step_duration.is_zero() {
        bail!("--step-duration must be positive");
    }
    if args.flood.is_empty() {
        bail!("--flood needs at least one kind");
    }
    if args.orphan_payload_kib * 1024 > crate::flood::MAX_ORPHAN_PAYLOAD {
        bail!(
            "--orphan-payload-kib {} is above a vertex's {} KiB",
            args.orphan_payload_kib,
            crate::flood::MAX_ORPHAN_PAYLOAD / 1024
        );
    }
    if !(args.min_throughput_ratio.is_finite() && args.min_throughput_ratio >= 0.0) {
        bail!("--min-throughput-ratio must be a number >= 0");
    }
    Ok(())
}

/// The stepping arguments `dualchain bench overload` would get for the same load.
fn overload_args(args: &ByzantineArgs) -> OverloadArgs {
    OverloadArgs {
        validators: usize::from(args.validators),
        time_scale: args.time_scale,
        accounts: args.accounts,
        saturation_tps: Some(args.tps),
        steps: Multipliers(vec![1.0]),
        step_duration: args.step_duration,
        batch: 1000,
        min_goodput_ratio: 0.0,
        json: false,
        local: args.local.clone(),
        keep: args.keep,
        validator_args: Vec::new(),
    }
}

/// Prepares and starts the network, runs the steps, and always stops it.
pub async fn run(args: &ByzantineArgs) -> anyhow::Result<ByzantineReport> {
    validate(args)?;
    let stepping = overload_args(args);
    dualchain_loadgen::overload::on_signed_network(
        &stepping,
        STEPS.len(),
        "byzantine",
        async |cluster, delta_ms| drive(args, &stepping, cluster, delta_ms).await,
    )
    .await
}

/// The three steps on a running network.
async fn drive(
    args: &ByzantineArgs,
    stepping: &OverloadArgs,
    cluster: &mut LocalCluster,
    delta_ms: u64,
) -> anyhow::Result<ByzantineReport> {
    dualchain_loadgen::devnet::wait_sealing(cluster, args.local.ready_timeout, "byzantine").await?;
    let attacker = usize::from(args.validators) - 1;
    // Every validator stores the clean step, the honest ones the other two.
    let step_txs = args.tps * args.step_duration.as_secs_f64();
    let copies = step_txs * (f64::from(args.validators) + 2.0 * attacker as f64);
    dualchain_loadgen::overload::check_disk(cluster.dir(), copies, "byzantine")?;
    eprintln!("byzantine: validator {attacker} turns Byzantine after the clean step");
    let dir = cluster.dir().to_path_buf();
    let accounts = args.accounts;
    let keyrings = tokio::task::spawn_blocking(move || {
        dualchain_loadgen::overload::write_keyrings(&dir, accounts, STEPS.len())
    })
    .await
    .context("deriving the accounts")??;
    let honest_urls: Vec<String> = (0..attacker)
        .map(|i| cluster.api_url(i, ChainId::Delta))
        .collect();
    let honest: Vec<Honest> = (0..attacker)
        .flat_map(|i| {
            let metrics_port = cluster.peers()[i].metrics_port;
            cluster
                .pids(i)
                .into_iter()
                .map(move |pid| Honest { pid, metrics_port })
        })
        .collect();
    let bench = Bench::new(stepping, honest_urls, keyrings, delta_ms);
    let mut report = ByzantineReport {
        validators: args.validators,
        attacker: attacker as ValidatorIndex,
        delta_block_ms: delta_ms,
        offered_tps: args.tps,
        step_duration_s: args.step_duration.as_secs_f64(),
        flood_kinds: args.flood.clone(),
        orphan_payload_kib: args.orphan_payload_kib,
        min_throughput_ratio: args.min_throughput_ratio,
        memory_budget_mib: args.memory_budget_mib,
        pending_budget_bytes: DagBftConfig::for_chain(ChainId::Delta).max_pending_bytes as u64,
        ..ByzantineReport::default()
    };
    report
        .steps
        .push(measured_step(&bench, 0, "clean", args.tps, &honest).await?);
    eprintln!("byzantine: stopping validator {attacker}");
    cluster.terminate(attacker, STOP_TIMEOUT).await;
    report
        .steps
        .push(measured_step(&bench, 1, "silent", args.tps, &honest).await?);
    let target = flood_target(cluster, attacker)?;
    let plan = FloodPlan {
        kinds: args.flood.clone(),
        orphan_payload: args.orphan_payload_kib * 1024,
        seed: 0xb12a,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let flooder = std::thread::Builder::new()
        .name("flooder".into())
        .spawn(move || -> anyhow::Result<FloodStats> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("the flooder's runtime")?;
            runtime.block_on(crate::flood::flood(target, plan, async {
                let _ = stop_rx.await;
            }))
        })
        .context("starting the flooder thread")?;
    eprintln!("byzantine: validator {attacker} floods ({:?})", args.flood);
    let step = measured_step(&bench, 2, "flood", args.tps, &honest).await;
    let _ = stop_tx.send(());
    let stats = tokio::task::spawn_blocking(move || flooder.join())
        .await
        .context("joining the flooder")?
        .map_err(|_| anyhow::anyhow!("the flooder thread panicked"))??;
    report.steps.push(step?);
    eprintln!(
        "byzantine: flood sent {} messages, {:.1} MB/s, {:.1} s of CPU",
        stats.messages,
        stats.megabytes_per_second(),
        stats.cpu_seconds
    );
    report.flood = stats;
    report.judge();
    Ok(report)
}

/// The attacker's key, network, port and peers (every other validator's Delta port).
fn flood_target(cluster: &LocalCluster, attacker: usize) -> anyhow::Result<FloodTarget> {
    let layout = cluster.layout();
    let key = dualchain_core::keyfile::read_key::<ValidatorScheme>(&layout.key_dirs[attacker])
        .context("reading the attacker's validator key")?;
    let json = std::fs::read_to_string(&layout.genesis)
        .with_context(|| format!("reading {}", layout.genesis.display()))?;
    let genesis = Genesis::from_json(&json).context("parsing the genesis")?;
    let validators = genesis
        .validator_set()
        .context("the genesis validator set")?;
    let peer_addr = |i: usize| -> anyhow::Result<std::net::SocketAddr> {
        let entry = &cluster.peers()[i].entry;
        format!("{}:{}", entry.host, entry.delta_p2p_port)
            .parse()
            .with_context(|| format!("validator {i}'s Delta address"))
    };
    let peers = (0..cluster.len())
        .filter(|&i| i != attacker)
        .map(|i| peer_addr(i).map(PeerAddress::Socket))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(FloodTarget {
        key: Arc::new(key),
        index: attacker as ValidatorIndex,
        validators,
        network: genesis.network_id(),
        chain: ChainId::Delta,
        listen: peer_addr(attacker)?,
        peers,
    })
}

/// One load step while sampling the honest validators' resident sets and pending
/// bytes.
async fn measured_step(
    bench: &Bench<'_>,
    index: usize,
    label: &str,
    tps: f64,
    honest: &[Honest],
) -> anyhow::Result<StepRow> {
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_peaks(honest.to_vec(), done_rx));
    let load = bench.step(index, label.into(), None, Some(tps)).await;
    let _ = done_tx.send(true);
    let Peaks {
        rss_mib: peak_rss_mib,
        pending_bytes: peak_pending_bytes,
        restarts,
    } = sampler.await.context("the memory sampler")?;
    let load = load?;
    eprintln!(
        "byzantine: {label}: goodput {:.1} tx/s, peak honest RSS {peak_rss_mib:?} MiB, \
         pending bytes {peak_pending_bytes:?}",
        load.goodput_tps
    );
    Ok(StepRow {
        label: label.into(),
        load,
        peak_rss_mib,
        peak_pending_bytes,
        restarts,
    })
}

/// An honest validator's process and metrics port.
#[derive(Clone, Copy, Debug)]
struct Honest {
    pid: u32,
    metrics_port: u16,
}

/// What the sampler saw of each honest validator during a step.
#[derive(Debug, Default)]
struct Peaks {
    rss_mib: Vec<u64>,
    pending_bytes: Vec<u64>,
    /// The last restart count read.
    restarts: Vec<u64>,
}

/// Peaks of every `honest` validator's resident set and pending bytes, and its last
/// restart count, until `done`.
async fn sample_peaks(honest: Vec<Honest>, mut done: tokio::sync::watch::Receiver<bool>) -> Peaks {
    let mut peaks = Peaks {
        rss_mib: vec![0; honest.len()],
        pending_bytes: vec![0; honest.len()],
        restarts: vec![0; honest.len()],
    };
    loop {
        let sampled = tokio::task::spawn_blocking({
            let honest = honest.clone();
            move || {
                honest
                    .iter()
                    .map(|h| (rss_mib(h.pid), chain_gauges(h.metrics_port)))
                    .collect::<Vec<_>>()
            }
        })
        .await
        .unwrap_or_default();
        for (i, (rss, gauges)) in sampled.into_iter().enumerate() {
            peaks.rss_mib[i] = peaks.rss_mib[i].max(rss.unwrap_or(0));
            // A validator that does not answer its metrics (busy, restarting) keeps
            // what was last read.
            if let Some((pending, restarts)) = gauges {
                peaks.pending_bytes[i] = peaks.pending_bytes[i].max(pending);
                peaks.restarts[i] = restarts;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = done.changed() => return peaks,
        }
    }
}

/// Delta's `dualchain_consensus_pending_bytes` and `dualchain_chain_restarts_total`
/// on the metrics listener at `port`.
fn chain_gauges(port: u16) -> Option<(u64, u64)> {
    use dualchain_testkit::metrics::{sample, scrape};
    let text = scrape(port).ok()?;
    let read = |name| sample(&text, name, ChainId::Delta, "").map(|v| v as u64);
    Some((
        read("dualchain_consensus_pending_bytes")?,
        read("dualchain_chain_restarts_total")?,
    ))
}

/// Resident set of process `pid` in MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_mib(pid: u32) -> Option<u64> {
    let (_, rss_kib) = dualchain_loadgen::devnet::read_memory(pid);
    rss_kib.map(|kib| kib / 1024)
}

/// The report as Markdown.
pub fn render_markdown(r: &ByzantineReport) -> String {
    let mut out = format!(
        "# Byzantine flood: {} validators, validator {} floods ({}), {:.0} signed tx/s offered for {:.0} s per step\n\n",
        r.validators,
        r.attacker,
        r.flood_kinds
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", "),
        r.offered_tps,
        r.step_duration_s
    );
    out.push_str(
        "| step | goodput tx/s | committed | finality p50 / p95 ms | peak honest RSS MiB | peak pending MiB | chain restarts |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for s in &r.steps {
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} / {} | {} | {} | {} |\n",
            s.label,
            s.load.goodput_tps,
            s.load.committed,
            s.load.finality_ms_p50,
            s.load.finality_ms_p95,
            s.peak_rss_mib
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            s.peak_pending_bytes
                .iter()
                .map(|b| format!("{:.1}", *b as f64 / MIB))
                .collect::<Vec<_>>()
                .join(", "),
            s.restarts.iter().sum::<u64>()
        ));
    }
    let f = &r.flood;
    out.push_str(&format!(
        "\nFlood: {} messages ({} orphans, {} garbage, {} sync requests), {:.1} MB/s for {:.1} s, \
         {:.1} s of the attacker's CPU, {} failed sends, {} connections closed.\n",
        f.messages,
        f.orphans,
        f.garbage,
        f.sync_requests,
        f.megabytes_per_second(),
        f.seconds,
        f.cpu_seconds,
        f.failures,
        f.disconnects
    ));
    out.push_str(&format!(
        "Throughput under the flood: {:.2} of clean (target >= {:.2}), {:.2} of silent; \
         resident-set growth beyond the silent step's at most {} MiB (budget {} MiB); \
         pending vertices at most {:.1} MiB (budget {:.0} MiB): {}\n",
        r.throughput_ratio,
        r.min_throughput_ratio,
        r.throughput_ratio_vs_silent,
        r.max_rss_excess_mib,
        r.memory_budget_mib,
        r.max_pending_bytes as f64 / MIB,
        r.pending_budget_bytes as f64 / MIB,
        if r.pass { "PASS" } else { "FAIL" }
    ));
    for failure in &r.failures {
        out.push_str(&format!("- {failure}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, goodput: f64, rss: &[u64], pending: &[u64]) -> StepRow {
        StepRow {
            label: label.into(),
            load: StepFigures {
                goodput_tps: goodput,
                ..StepFigures::default()
            },
            peak_rss_mib: rss.to_vec(),
            peak_pending_bytes: pending.to_vec(),
            restarts: vec![0; rss.len()],
        }
    }

    fn report(steps: Vec<StepRow>) -> ByzantineReport {
        let mut r = ByzantineReport {
            min_throughput_ratio: 0.8,
            memory_budget_mib: 256,
            pending_budget_bytes: 256 << 20,
            steps,
            ..ByzantineReport::default()
        };
        r.judge();
        r
    }

    #[test]
    fn a_flood_that_keeps_throughput_and_memory_passes() {
        let r = report(vec![
            row("clean", 1000.0, &[500, 500], &[0, 0]),
            row("silent", 900.0, &[700, 600], &[0, 0]),
            row("flood", 850.0, &[1000, 700], &[64 << 20, 60 << 20]),
        ]);
        assert!(r.pass, "{:?}", r.failures);
        assert!((r.throughput_ratio - 0.85).abs() < 1e-9);
        // Validator 0 grew 200 without the flood and 300 with it.
        assert_eq!(r.max_rss_excess_mib, 100);
        assert_eq!(r.max_pending_bytes, 64 << 20);
    }

    #[test]
    fn each_missed_target_is_a_failure_of_its_own() {
        let r = report(vec![
            row("clean", 1000.0, &[500], &[0]),
            row("silent", 900.0, &[600], &[0]),
            row("flood", 700.0, &[1000], &[300 << 20]),
        ]);
        assert!(!r.pass);
        assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
        assert!(
            r.failures[0].contains("0.70 of the clean"),
            "{:?}",
            r.failures
        );
        assert!(r.failures[1].contains("300 MiB more"));
        assert!(r.failures[2].contains("pending vertices"));
    }

    #[test]
    fn the_better_baseline_judges_and_an_honest_restart_fails() {
        // Silent above clean (a process fewer on the machine): judged against silent.
        let r = report(vec![
            row("clean", 600.0, &[1], &[0]),
            row("silent", 1000.0, &[1], &[0]),
            row("flood", 700.0, &[1], &[0]),
        ]);
        assert!(!r.pass);
        assert!(
            r.failures[0].contains("0.70 of the silent"),
            "{:?}",
            r.failures
        );
        let mut flood = row("flood", 1000.0, &[1, 1], &[0, 0]);
        flood.restarts = vec![1, 2];
        let mut silent = row("silent", 1000.0, &[1, 1], &[0, 0]);
        silent.restarts = vec![1, 0];
        let r = report(vec![row("clean", 1000.0, &[1, 1], &[0, 0]), silent, flood]);
        assert_eq!(r.honest_restarts_in_flood, 2);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(r.failures[0].contains("restarted 2 times"));
    }

    #[test]
    fn a_run_without_its_steps_or_baseline_fails() {
        let r = report(vec![row("clean", 1000.0, &[1], &[0])]);
        assert!(!r.pass);
        let r = report(vec![
            row("clean", 0.0, &[1], &[0]),
            row("silent", 0.0, &[1], &[0]),
            row("flood", 0.0, &[1], &[0]),
        ]);
        assert!(!r.pass);
        assert!(r.failures[0].contains("no baseline"), "{:?}", r.failures);
    }

    #[test]
    fn the_resident_set_is_read_from_proc_status() {
        let status = "Name:\tdualchain\nVmPeak:\t  900 kB\nVmRSS:\t  204800 kB\nThreads:\t9\n";
        let vm_rss = |text| dualchain_loadgen::devnet::parse_proc_memory(text).1;
        assert_eq!(vm_rss(status), Some(204_800));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        assert!(rss_mib(std::process::id()).is_some_and(|mib| mib > 0));
    }

    #[test]
    fn bad_arguments_are_refused() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ByzantineArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["bench"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|c| c.args)
        };
        assert!(parse(&["--validators", "3"]).is_err());
        assert!(parse(&["--flood", "snowstorm"]).is_err());
        let args = parse(&["--flood", "orphans,sync"]).unwrap();
        assert_eq!(args.flood, vec![FloodKind::Orphans, FloodKind::Sync]);
        assert!(validate(&args).is_ok());
        let too_big = parse(&["--orphan-payload-kib", "16385"]).unwrap();
        assert!(
            validate(&too_big)
                .unwrap_err()
                .to_string()
                .contains("16384 KiB")
        );
        let zero = parse(&["--tps", "0"]).unwrap();
        assert!(validate(&zero).is_err());
    }
}
