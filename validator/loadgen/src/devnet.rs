//! `dualchain devnet`: a whole network on this machine, loaded, checked and reported.
//!
//! # Steps
//! Steps 1–3 and 6's shutdown are the shared local cluster,
//! [`dualchain_testkit::LocalCluster`], which the node's own integration tests run on.
//!
//! 1. A temporary directory (kept with `--keep`) receives N validator keys
//!    (`dualchain keygen`), a genesis with funded benchmark accounts
//!    (`dualchain genesis --accounts-seed`, unsigned mode allowed unless `--signed`),
//!    `peers.json` with free loopback ports and an admin token file. The `dualchain`
//!    binary is `--node-binary`, else the one that forwarded this command
//!    (`DUALCHAIN_NODE_BINARY`), else the one next to this executable, else on `PATH`.
//! 2. N `dualchain run --chain both` children start, each logging to
//!    `<dir>/v-<i>/node.log`. They are killed if this process fails, is interrupted or
//!    dies: a drop guard, and `PR_SET_PDEATHSIG` on Linux.
//! 3. Every validator's two API ports must answer `grpc.health.v1.Health/Check` for
//!    `dualchain.v1.Node` with SERVING (or `Node/GetStatus`) within `--ready-timeout`;
//!    otherwise the error names the validator and shows the tail of its log.
//! 4. The load generator runs in-process against every Delta API while a monitor samples
//!    both chains' heights on validator 0 and a progress display shows them.
//! 5. After the load, the chains settle for a few block times; for each chain the
//!    minimum finalized height of all validators is fetched from each (`Node/GetBlock`),
//!    and state roots and block digests must be equal.
//! 6. Memory (VmHWM, VmRSS) is read from `/proc`, the validators get SIGTERM (SIGKILL
//!    after a timeout), and the report is written. [`crate::cli::devnet_main`] then
//!    prints it and fails (non-zero exit) if the state roots disagree.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dualchain_client::node::{block_id, chain_heights, chain_name};
use dualchain_contract::binaries::{VALIDATOR_BIN, find_companion};
use dualchain_core::types::ChainId;
use dualchain_proto::NodeClient;
use dualchain_proto::v1::{Chain, StreamFinalityRequest};
use dualchain_testkit::{ClusterSpec, LocalCluster};

use crate::accounts::AccountSource;
use crate::capacity::CapacityFigures;
use crate::cli::DevnetArgs;
use crate::engine_figures::EngineWindow;
use crate::loadgen::{LiveStats, LoadgenConfig};
use crate::progress::{ChainHeights, DevnetProgress};
pub use crate::report::DevnetReport;
use crate::report::{
    AlphaFigures, ConsensusNames, DeltaFigures, HeightSample, RootCheck, ShutdownRecord,
    ValidatorMemory,
};
use crate::workload::WorkloadKind;

/// Default Alpha and Delta block times at `--time-scale 1`.
pub const ALPHA_BLOCK_MS: u64 = 15_000;
pub const DELTA_BLOCK_MS: u64 = 3_000;
/// Delta blocks per Alpha block, by design.
pub const BLOCK_RATIO: u64 = ALPHA_BLOCK_MS / DELTA_BLOCK_MS;
/// Time a validator gets to stop after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Sampling interval of the heights (and of the progress display).
const MONITOR_INTERVAL: Duration = Duration::from_millis(250);
/// The genesis time is this far after the keys are made, so every validator is up.
pub const GENESIS_DELAY: Duration = Duration::from_secs(2);

/// Block times for a time scale: Delta = 3000 ms × scale (at least 1 ms), and Alpha
/// exactly `BLOCK_RATIO` times Delta (the genesis requires Delta to divide Alpha).
pub fn block_times(time_scale: f64) -> anyhow::Result<(u64, u64)> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        bail!("--time-scale must be a positive number, got {time_scale}");
    }
    let delta = ((DELTA_BLOCK_MS as f64) * time_scale).round().max(1.0) as u64;
    Ok((delta * BLOCK_RATIO, delta))
}

/// Reads VmHWM and VmRSS (KiB) of `pid` from `/proc/<pid>/status`.
pub fn read_memory(pid: u32) -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    parse_proc_memory(&status)
}

/// Parses VmHWM and VmRSS (KiB) out of a `/proc/<pid>/status` text.
pub fn parse_proc_memory(status: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    (field("VmHWM"), field("VmRSS"))
}

/// Samples validator 0's heights until stopped; feeds the progress display.
struct Monitor {
    samples: Arc<Mutex<Vec<HeightSample>>>,
    alpha_txs: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rate_over(samples: &[HeightSample], pick: fn(&HeightSample) -> Option<u64>, window: f64) -> f64 {
    let Some(last) = samples.iter().rev().find(|s| pick(s).is_some()) else {
        return 0.0;
    };
    let Some(first) = samples
        .iter()
        .find(|s| pick(s).is_some() && s.t_s >= last.t_s - window)
    else {
        return 0.0;
    };
    let dt = last.t_s - first.t_s;
    if dt <= 0.0 {
        return 0.0;
    }
    (pick(last)
        .unwrap_or(0)
        .saturating_sub(pick(first).unwrap_or(0))) as f64
        / dt
}

fn start_monitor(
    alpha_url: String,
    delta_url: String,
    load_start: Arc<Mutex<Option<Instant>>>,
    live: Arc<LiveStats>,
    duration: Duration,
) -> Monitor {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let alpha_txs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let origin = Instant::now();
    let task = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut progress = DevnetProgress::new(duration);
            let mut ticker = tokio::time::interval(MONITOR_INTERVAL);
            loop {
                ticker.tick().await;
                let (alpha, delta) = tokio::join!(
                    chain_heights(&alpha_url, Chain::Alpha),
                    chain_heights(&delta_url, Chain::Delta)
                );
                let now = Instant::now();
                let t_s = match *lock(&load_start) {
                    Some(start) if now >= start => (now - start).as_secs_f64(),
                    Some(start) => -(start - now).as_secs_f64(),
                    None => -(origin.elapsed().as_secs_f64()),
                };
                let sample = HeightSample {
                    t_s,
                    alpha: alpha.ok().map(|h| h.0),
                    delta: delta.ok().map(|h| h.0),
                };
                let heights = {
                    let mut all = lock(&samples);
                    all.push(sample);
                    ChainHeights {
                        alpha: sample.alpha,
                        delta: sample.delta,
                        alpha_blocks_per_s: rate_over(&all, |s| s.alpha, 10.0),
                        delta_blocks_per_s: rate_over(&all, |s| s.delta, 5.0),
                    }
                };
                progress.update(heights, &live.snapshot());
            }
        })
    };
    Monitor {
        samples,
        alpha_txs,
        task,
    }
}

/// Counts Alpha transactions finalized while the load runs.
async fn follow_alpha(url: String, counter: Arc<std::sync::atomic::AtomicU64>) {
    loop {
        let stream = async {
            let channel = dualchain_client::node::connect(&url).await?;
            let request = StreamFinalityRequest {
                chain: Chain::Alpha as i32,
                from_height: None,
                include_tx_digests: false,
            };
            anyhow::Ok(
                NodeClient::new(channel)
                    .stream_finality(request)
                    .await?
                    .into_inner(),
            )
        };
        if let Ok(mut stream) = stream.await {
            while let Ok(Some(event)) = stream.message().await {
                if !event.replayed {
                    counter.fetch_add(
                        u64::from(event.tx_count),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Compares state roots and digests of `chain` at the lowest finalized height.
async fn compare_roots(urls: &[String], chain: Chain) -> RootCheck {
    let name = chain_name(chain);
    let mut last = RootCheck {
        chain: name.clone(),
        ..RootCheck::default()
    };
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut heights = Vec::new();
        for url in urls {
            match chain_heights(url, chain).await {
                Ok((_, finalized)) => heights.push(finalized),
                Err(e) => {
                    last.state_roots = vec![format!("error: {e:#}")];
                    heights.clear();
                    break;
                }
            }
        }
        let Some(&height) = heights.iter().min() else {
            continue;
        };
        let mut roots = Vec::new();
        let mut digests = Vec::new();
        for url in urls {
            match block_id(url, chain, height).await {
                Ok((root, digest)) => {
                    roots.push(root);
                    digests.push(digest);
                }
                Err(e) => {
                    roots.push(format!("error: {e:#}"));
                    digests.push(String::new());
                }
            }
        }
        let fetched = roots.iter().all(|r| !r.starts_with("error"));
        let agree = fetched
            && roots.windows(2).all(|w| w[0] == w[1])
            && digests.windows(2).all(|w| w[0] == w[1]);
        last = RootCheck {
            chain: name.clone(),
            height,
            agree,
            state_roots: roots,
            block_digests: digests,
        };
        if fetched {
            return last;
        }
    }
    last
}

/// Height of a chain in the samples at the load's start and end (validator 0).
fn blocks_during(
    samples: &[HeightSample],
    pick: fn(&HeightSample) -> Option<u64>,
    end: f64,
) -> u64 {
    let at_start = samples
        .iter()
        .filter(|s| s.t_s <= 0.0)
        .filter_map(pick)
        .next_back()
        .or_else(|| samples.iter().find_map(pick));
    let at_end = samples
        .iter()
        .filter(|s| s.t_s <= end)
        .filter_map(pick)
        .next_back();
    match (at_start, at_end) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    }
}

/// Validator 0's last height of a chain at or before `t` (the first seen if none).
fn final_height(samples: &[HeightSample], pick: fn(&HeightSample) -> Option<u64>, t: f64) -> u64 {
    samples
        .iter()
        .filter(|s| s.t_s <= t)
        .filter_map(pick)
        .next_back()
        .or_else(|| samples.iter().find_map(pick))
        .unwrap_or(0)
}

/// Delta blocks per Alpha block from the counts sealed during the load: the block
/// ratio when the timestamps could not be read. Fewer than two Alpha blocks make no
/// ratio (a part of a slot on either side weighs as much as a whole block): 0, not
/// measured.
fn count_ratio(alpha: u64, delta: u64) -> f64 {
    if alpha < 2 {
        0.0
    } else {
        delta as f64 / alpha as f64
    }
}

/// `(t_s, height)` of the samples at which a chain's height changed, inside the load
/// window `[0, end]`: the instants its blocks were seen final, to a sample interval.
fn height_changes(
    samples: &[HeightSample],
    pick: fn(&HeightSample) -> Option<u64>,
    end: f64,
) -> Vec<(f64, u64)> {
    let seen: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|s| Some((s.t_s, pick(s)?)))
        .collect();
    seen.windows(2)
        .filter(|w| w[1].1 > w[0].1 && (0.0..=end).contains(&w[1].0))
        .map(|w| w[1])
        .collect()
}

/// Blocks per second from the first to the last of `changes`; `None` without two
/// changes apart in time.
fn rate_between_changes(changes: &[(f64, u64)]) -> Option<f64> {
    let (first, last) = (changes.first()?, changes.last()?);
    (last.0 > first.0 && last.1 > first.1).then(|| (last.1 - first.1) as f64 / (last.0 - first.0))
}

/// Blocks a chain finalized per block time during the load window `[0, end]`
/// (1.0: its finality keeps pace with its block time; less: it falls behind), from
/// the first to the last instant validator 0's height changed in it. Measured between
/// changes, not at arbitrary instants, so a block seen a moment late is not counted
/// as missing. `None` with fewer than two changes.
pub fn finality_pace(
    samples: &[HeightSample],
    pick: fn(&HeightSample) -> Option<u64>,
    end: f64,
    block_ms: u64,
) -> Option<f64> {
    let per_s = rate_between_changes(&height_changes(samples, pick, end))?;
    Some(per_s * block_ms as f64 / 1000.0)
}

/// Delta blocks per Alpha block **by slot**, from block timestamps (the sealer puts a
/// block in slot `timestamp / block time`, one block per slot by design): over the
/// Alpha slots from the first to the last of `alpha_stamps` (the Alpha blocks
/// finalized during the load), the Delta blocks of `delta_stamps` in the same span of
/// time, per Alpha block in it. Only Alpha slots the Delta blocks read cover count:
/// a young chain's first Alpha slot began before its genesis, when no Delta block
/// could be sealed. Five by design with Alpha at five Delta block times; a slot whose
/// block overflowed the block limits adds a block, a gap the sealer did not fill
/// removes one. `None` unless a covered Alpha slot precedes the last one.
pub fn ratio_by_slots(
    alpha_stamps: &[u64],
    delta_stamps: &[u64],
    (alpha_ms, delta_ms): (u64, u64),
) -> Option<f64> {
    let slot = |ms: u64, block_ms: u64| ms / block_ms.max(1);
    // The time the Delta blocks read cover, from the first one's slot to the last one's.
    let read_from = slot(*delta_stamps.first()?, delta_ms) * delta_ms;
    let read_to = (slot(*delta_stamps.last()?, delta_ms) + 1) * delta_ms;
    let covered = |s: u64| s * alpha_ms >= read_from && (s + 1) * alpha_ms <= read_to;
    let last = slot(*alpha_stamps.last()?, alpha_ms);
    let first = alpha_stamps
        .iter()
        .map(|&t| slot(t, alpha_ms))
        .find(|&s| covered(s))?;
    let alpha = alpha_stamps
        .iter()
        .filter(|&&t| (first..last).contains(&slot(t, alpha_ms)))
        .count();
    if alpha == 0 {
        return None;
    }
    // Alpha slot k spans the Delta slots of [k × alpha, (k + 1) × alpha) in time.
    let span = (first * alpha_ms)..(last * alpha_ms);
    let delta = delta_stamps
        .iter()
        .filter(|&&t| span.contains(&(slot(t, delta_ms) * delta_ms)))
        .count();
    Some(delta as f64 / alpha as f64)
}

/// Timestamps of `chain`'s blocks `heights` on the validator at `url`.
async fn block_stamps(
    url: &str,
    chain: Chain,
    heights: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Vec<u64>> {
    let blocks = crate::overload::block_times(url, chain, heights).await?;
    Ok(blocks.into_iter().map(|(stamp, _)| stamp).collect())
}

/// [`ratio_by_slots`] over the Alpha blocks finalized during the load (`alpha`: the
/// heights at its start and end) and the Delta blocks from `delta.0` to `delta.1`,
/// read from validator 0; `None` if fewer than two Alpha blocks were finalized or a
/// block could not be read (the error is printed).
async fn slot_block_ratio(
    (alpha_url, delta_url): (&str, &str),
    alpha: (u64, u64),
    delta: (u64, u64),
    block_ms: (u64, u64),
) -> Option<f64> {
    if alpha.1 < alpha.0 + 2 {
        return None;
    }
    let stamps = async {
        let alpha = block_stamps(alpha_url, Chain::Alpha, alpha.0 + 1..=alpha.1).await?;
        let delta = block_stamps(delta_url, Chain::Delta, delta.0..=delta.1).await?;
        anyhow::Ok((alpha, delta))
    };
    match stamps.await {
        Ok((alpha, delta)) => ratio_by_slots(&alpha, &delta, block_ms),
        Err(e) => {
            eprintln!("devnet: reading block timestamps for the block ratio: {e:#}");
            None
        }
    }
}

/// The `dualchain` binary validators run (see the module docs).
pub fn node_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    find_companion(VALIDATOR_BIN).with_context(|| {
        let here = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .map_or_else(
                || "this executable's directory".into(),
                |d| d.display().to_string(),
            );
        format!(
            "the validator binary `{VALIDATOR_BIN}` is neither in {here} nor on PATH: build it \
             with `cargo build -p dualchain-node` (it lands next to dualchain-tools), or pass \
             --node-binary PATH"
        )
    })
}

/// Runs the devnet (see the module docs).
pub async fn run(args: &DevnetArgs) -> anyhow::Result<DevnetReport> {
    if args.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if args.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    if let Some(tps) = args.tps
        && !(tps.is_finite() && tps > 0.0)
    {
        bail!("--tps must be a positive number of transactions per second, got {tps}");
    }
    crate::capacity::check_load_fraction(args.load_fraction)?;
    if let Some(ceiling) = args.ceiling_tps
        && !(ceiling.is_finite() && ceiling > 0.0)
    {
        bail!("--ceiling-tps must be a positive number of transactions per second, got {ceiling}");
    }
    let (alpha_ms, delta_ms) = block_times(args.time_scale)?;
    if args.tps.is_none() {
        crate::capacity::probe_duration(args.probe_duration, delta_ms)?;
    }
    let bin = node_binary(args.local.node_binary.as_deref())?;
    let mut spec = ClusterSpec::new(args.validators).block_times(alpha_ms, delta_ms);
    // The cross-chain workload's accounts come after the transfer load's, the capacity
    // probe's after both.
    spec.accounts = args.accounts + crosschain_accounts(args) + probe_accounts(args);
    spec.accounts_seed = args.accounts_seed;
    spec.allow_unsigned = !args.signed;
    spec.genesis_delay = GENESIS_DELAY;
    spec.json_logs = args.json_logs;
    spec.dir_prefix = "dualchain-devnet-".into();
    spec.engines = args.engines();
    let mut cluster = tokio::task::spawn_blocking(move || LocalCluster::prepare(bin, spec))
        .await
        .context("preparing keys and genesis")??;
    let (alpha_engine, delta_engine) = args.engines();
    eprintln!(
        "devnet: {} validators in {} (alpha {alpha_ms} ms on {}, delta {delta_ms} ms blocks on {}, {})",
        args.validators,
        cluster.dir().display(),
        alpha_engine.name(),
        delta_engine.name(),
        if args.signed { "signed" } else { "unsigned" }
    );
    // Started from this task's thread, which outlives them (see the cluster's docs).
    let started = cluster.start_all();
    let result = match started {
        Ok(()) => tokio::select! {
            r = drive(args, &mut cluster, (alpha_ms, delta_ms)) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        },
        Err(e) => Err(e),
    };
    // Whatever happened, stop the validators (cleanly if they still run).
    let shutdown = cluster
        .stop_all(STOP_TIMEOUT)
        .await
        .into_iter()
        .map(|r| ShutdownRecord {
            index: r.index,
            clean: r.clean,
            detail: r.detail,
        })
        .collect();
    let data_dir = if args.keep {
        let kept = cluster.keep_dir();
        eprintln!("devnet: data kept in {}", kept.display());
        Some(kept.display().to_string())
    } else {
        None
    };
    drop(cluster);
    let mut report = result?;
    report.shutdown = shutdown;
    report.data_dir = data_dir;
    crate::report::write_report(
        &args.report,
        &mut report,
        Path::new(crate::report::DEFAULT_FONT),
    )?;
    Ok(report)
}

/// Funded accounts the cross-chain workload needs beyond the transfer load's.
fn crosschain_accounts(args: &DevnetArgs) -> usize {
    if args.workload == WorkloadKind::Crosschain {
        crate::crosschain_load::EXTRA_ACCOUNTS
    } else {
        0
    }
}

/// Funded accounts the capacity probe spends from (none when `--tps` is given).
fn probe_accounts(args: &DevnetArgs) -> usize {
    if args.tps.is_none() { args.accounts } else { 0 }
}

/// The offered steady load: `--tps`, or the capacity probe's choice (see
/// [`crate::capacity`]), which runs first on the network.
async fn steady_load(
    args: &DevnetArgs,
    cluster: &LocalCluster,
    delta_ms: u64,
) -> anyhow::Result<(f64, Option<CapacityFigures>)> {
    if let Some(tps) = args.tps {
        return Ok((tps, None));
    }
    let duration = crate::capacity::probe_duration(args.probe_duration, delta_ms)?;
    let skip = args.accounts + crosschain_accounts(args);
    let (dir, count, seed) = (
        cluster.dir().to_path_buf(),
        probe_accounts(args),
        args.accounts_seed,
    );
    let keyring = tokio::task::spawn_blocking(move || {
        crate::capacity::write_probe_keyring(&dir, skip, count, seed)
    })
    .await
    .context("deriving the probe's accounts")??;
    eprintln!("devnet: finding the capacity: maximum load for {duration:?}");
    let probe = crate::capacity::Probe {
        targets: cluster.api_urls(ChainId::Delta),
        keyring,
        signed: args.signed,
        batch: args.batch,
        duration,
        delta_ms,
    };
    let mut capacity = probe.run(args.load_fraction).await?;
    capacity.ceiling_fraction = args.ceiling_tps.map(|ceiling| capacity.tps / ceiling);
    eprintln!(
        "devnet: capacity {:.0} tx/s (goodput over {} Delta blocks); steady load at {:.0} % of it: {:.0} tx/s",
        capacity.tps,
        capacity.blocks,
        capacity.load_fraction * 100.0,
        capacity.steady_tps
    );
    Ok((capacity.steady_tps, Some(capacity)))
}

/// The share of the load window the transfers run alone before the cross-chain flow
/// starts beside them (the baseline of `crosschain.transfer_tps_ratio`).
const CROSSCHAIN_BASELINE_SHARE: u32 = 3;

/// Starts the cross-chain workload (`--workload crosschain`): its accounts follow the
/// transfer load's; it starts a third of the way into the load window (the transfers
/// alone before it are the throughput baseline) and runs to the window's end plus
/// twelve Alpha blocks (for the governance round and the unlocks to finish).
fn start_crosschain(
    args: &DevnetArgs,
    (alpha_urls, delta_urls): (Vec<String>, Vec<String>),
    (alpha_ms, delta_ms): (u64, u64),
    live: Arc<LiveStats>,
) -> Option<tokio::task::JoinHandle<anyhow::Result<crate::crosschain_load::CrosschainFigures>>> {
    if args.workload != WorkloadKind::Crosschain {
        return None;
    }
    let keys = dualchain_core::keyfile::seeded_account_keys(
        args.accounts + crate::crosschain_load::EXTRA_ACCOUNTS,
        args.accounts_seed,
    )
    .into_iter()
    .skip(args.accounts)
    .collect();
    let baseline = args.duration / CROSSCHAIN_BASELINE_SHARE;
    let config = crate::crosschain_load::CrosschainConfig {
        alpha_urls,
        delta_urls,
        senders: crate::crosschain_load::senders(keys, !args.signed),
        alpha_block_ms: alpha_ms,
        delta_block_ms: delta_ms,
        duration: args.duration - baseline,
    };
    let tail = args.duration - baseline + Duration::from_millis(12 * alpha_ms);
    Some(tokio::spawn(async move {
        let start = live.wait_started().await;
        tokio::time::sleep_until((start + baseline).into()).await;
        let mut figures = crate::crosschain_load::run(config, Instant::now() + tail).await?;
        figures.baseline_s = baseline.as_secs_f64();
        Ok(figures)
    }))
}

/// Fills the transfer-throughput comparison of the cross-chain figures from the
/// load's finality events, leaving out of each phase its first `finality p50`
/// (rounded up to a second).
fn compare_transfer_rates(
    figures: &mut crate::crosschain_load::CrosschainFigures,
    events: &[(f64, u64)],
    load_end_s: f64,
    finality_p50_ms: u64,
) {
    let lag_s = (finality_p50_ms as f64 / 1000.0).ceil().max(1.0);
    match crate::crosschain_load::TransferRates::measure(
        events,
        figures.baseline_s,
        load_end_s,
        lag_s,
    ) {
        Some(rates) => {
            figures.transfer_tps_without_crosschain = rates.without;
            figures.transfer_tps_with_crosschain = rates.with;
            figures.transfer_tps_ratio = rates.ratio();
        }
        None => figures.errors.push(format!(
            "transfer throughput could not be compared: a phase saw fewer than two blocks of transfers (baseline {:.1} s, lag {lag_s} s); run longer",
            figures.baseline_s
        )),
    }
}

/// The error a devnet run ends with when the validators' state roots disagree.
pub fn disagreement_error(report: &DevnetReport, report_dir: &Path) -> anyhow::Error {
    let bad: Vec<String> = report
        .state_root_checks
        .iter()
        .filter(|c| !c.agree)
        .map(|c| format!("{} at height {}: {:?}", c.chain, c.height, c.state_roots))
        .collect();
    anyhow::anyhow!(
        "validators' state roots disagree (report in {}): {}",
        report_dir.display(),
        bad.join("; ")
    )
}

/// Waits until every validator is ready and Delta has finalized a block: load starts
/// on a running chain, not before the genesis time or the first quorum.
pub async fn wait_sealing(
    cluster: &mut LocalCluster,
    timeout: Duration,
    who: &str,
) -> anyhow::Result<()> {
    cluster.wait_ready(timeout).await?;
    cluster
        .try_wait_height(0, ChainId::Delta, 1, true, timeout)
        .await
        .context("no Delta block was finalized after readiness")?;
    eprintln!("{who}: all validators ready, Delta is sealing");
    Ok(())
}

/// Each validator's metrics port and process, for [`EngineWindow`].
fn engine_endpoints(cluster: &LocalCluster) -> Vec<(u16, Option<u32>)> {
    (0..cluster.len())
        .map(|i| {
            (
                cluster.peers()[i].metrics_port,
                cluster.pids(i).first().copied(),
            )
        })
        .collect()
}

/// Readiness, load, settle, compare, measure: the part that runs while validators live.
async fn drive(
    args: &DevnetArgs,
    cluster: &mut LocalCluster,
    (alpha_ms, delta_ms): (u64, u64),
) -> anyhow::Result<DevnetReport> {
    wait_sealing(cluster, args.local.ready_timeout, "devnet").await?;
    let (target_tps, capacity) = steady_load(args, cluster, delta_ms).await?;

    let delta_urls = cluster.api_urls(ChainId::Delta);
    let alpha_urls = cluster.api_urls(ChainId::Alpha);
    let live = LiveStats::new();
    let load_start = Arc::new(Mutex::new(None));
    let monitor = start_monitor(
        alpha_urls[0].clone(),
        delta_urls[0].clone(),
        load_start.clone(),
        live.clone(),
        args.duration,
    );
    let alpha_follower = tokio::spawn(follow_alpha(
        alpha_urls[0].clone(),
        monitor.alpha_txs.clone(),
    ));

    let mut config = LoadgenConfig::new(
        delta_urls.clone(),
        AccountSource::Seed {
            seed: args.accounts_seed,
            count: args.accounts,
        },
    );
    config.tps = Some(target_tps);
    config.duration = args.duration;
    // Beside the cross-chain flow, the transfers are the steady load.
    config.workload = match args.workload {
        WorkloadKind::Crosschain => WorkloadKind::Steady,
        other => other,
    };
    config.signed = args.signed;
    config.batch = args.batch;
    config.drain_timeout = Duration::from_millis((delta_ms * 10).max(5_000));
    // The monitor's clock starts with the send window.
    let start_marker = tokio::spawn({
        let (live, load_start) = (live.clone(), load_start.clone());
        async move {
            let start = live.wait_started().await;
            *lock(&load_start) = Some(start);
        }
    });
    let crosschain = start_crosschain(
        args,
        (alpha_urls.clone(), delta_urls.clone()),
        (alpha_ms, delta_ms),
        live.clone(),
    );
    let engine_ends = engine_endpoints(cluster);
    let engine_window = {
        let ends = engine_ends.clone();
        tokio::task::spawn_blocking(move || EngineWindow::open(&ends))
    };
    let loadgen = crate::loadgen::run(config, live.clone()).await;
    let delta_engine = engine_window
        .await
        .context("sampling the validators' metrics")?;
    let delta_engine = tokio::task::spawn_blocking(move || delta_engine.close(&engine_ends))
        .await
        .context("sampling the validators' metrics")?;
    start_marker.abort();
    let loadgen = loadgen.context("running the load")?;
    let load_end = args.duration.as_secs_f64();
    let crosschain = match crosschain {
        Some(task) => {
            eprintln!("devnet: load done; waiting for the cross-chain flow to finish");
            let mut figures = task.await.context("the cross-chain workload panicked")??;
            compare_transfer_rates(
                &mut figures,
                &live.commit_events(),
                load_end,
                loadgen.result.finality_ms.p50,
            );
            Some(figures)
        }
        None => None,
    };

    // Memory at the end of the load (VmHWM is the peak over the whole run).
    let memory: Vec<ValidatorMemory> = (0..cluster.len())
        .flat_map(|index| cluster.pids(index).into_iter().map(move |pid| (index, pid)))
        .map(|(index, pid)| {
            let (hwm, rss) = read_memory(pid);
            ValidatorMemory {
                index,
                pid,
                vm_hwm_kib: hwm,
                vm_rss_kib: rss,
            }
        })
        .collect();

    // Let the chains settle, then compare.
    let settle = Duration::from_millis((delta_ms * 3).max(alpha_ms).max(1_000));
    tokio::time::sleep(settle).await;
    monitor.task.abort();
    alpha_follower.abort();
    let mut checks = Vec::new();
    for (chain, urls) in [(Chain::Alpha, &alpha_urls), (Chain::Delta, &delta_urls)] {
        checks.push(compare_roots(urls, chain).await);
    }
    let state_roots_agree = checks.iter().all(|c| c.agree);

    let samples = lock(&monitor.samples).clone();
    let alpha_blocks = blocks_during(&samples, |s| s.alpha, load_end);
    let delta_blocks = blocks_during(&samples, |s| s.delta, load_end);
    let final_alpha = samples.iter().rev().find_map(|s| s.alpha).unwrap_or(0);
    let final_delta = samples.iter().rev().find_map(|s| s.delta).unwrap_or(0);
    let alpha_txs = monitor.alpha_txs.load(std::sync::atomic::Ordering::Relaxed);
    let height_at_start =
        |pick: fn(&HeightSample) -> Option<u64>| final_height(&samples, pick, 0.0);
    // The Alpha blocks finalized from the load's start to the end of the settle:
    // with 15 s blocks a 30 s load alone may hold one.
    let alpha_span = (height_at_start(|s| s.alpha), final_alpha);
    // The first Alpha slot of the load began up to two Alpha blocks before it.
    let delta_from = height_at_start(|s| s.delta)
        .saturating_sub(2 * BLOCK_RATIO + 2)
        .max(1);
    let block_ratio = slot_block_ratio(
        (&alpha_urls[0], &delta_urls[0]),
        alpha_span,
        (delta_from, final_delta),
        (alpha_ms, delta_ms),
    )
    .await
    .unwrap_or_else(|| count_ratio(alpha_blocks, delta_blocks));
    Ok(DevnetReport {
        validators: args.validators,
        duration_s: args.duration.as_secs_f64(),
        time_scale: args.time_scale,
        workload: args.workload,
        signed: args.signed,
        target_tps,
        capacity,
        consensus: ConsensusNames {
            alpha: args.engines().0.name().into(),
            delta: args.engines().1.name().into(),
        },
        delta: DeltaFigures {
            tps: loadgen.result.average_tps,
            finality_ms_p50: loadgen.result.finality_ms.p50,
            finality_ms_p95: loadgen.result.finality_ms.p95,
            finality_ms_p99: loadgen.result.finality_ms.p99,
            ordering_finality_ms_p50: loadgen.result.ordering_finality_ms.map(|p| p.p50),
            ordering_finality_ms_p95: loadgen.result.ordering_finality_ms.map(|p| p.p95),
            ordering_finality_ms_p99: loadgen.result.ordering_finality_ms.map(|p| p.p99),
            ceiling_tps: args.ceiling_tps,
            ceiling_fraction: args
                .ceiling_tps
                .map(|ceiling| loadgen.result.average_tps / ceiling),
            height: final_delta,
            blocks_during_load: delta_blocks,
            finality_pace: finality_pace(&samples, |s| s.delta, load_end, delta_ms),
            block_time_ms: delta_ms,
            submitted: loadgen.result.submitted,
            committed: loadgen.result.committed,
            failed: loadgen.result.failed,
            rejected: loadgen.result.rejected,
        },
        alpha: AlphaFigures {
            tps: alpha_txs as f64 / args.duration.as_secs_f64(),
            height: final_alpha,
            blocks_during_load: alpha_blocks,
            finality_pace: finality_pace(&samples, |s| s.alpha, load_end, alpha_ms),
            block_time_ms: alpha_ms,
            txs_committed: alpha_txs,
        },
        block_ratio,
        delta_engine,
        state_roots_agree,
        state_root_checks: checks,
        rejected_by_status: loadgen.rejected_by_status.clone(),
        memory,
        shutdown: Vec::new(),
        heights: samples,
        plots: Vec::new(),
        plots_without_text: false,
        data_dir: None,
        loadgen,
        crosschain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_times_scale_and_keep_the_ratio() {
        assert_eq!(block_times(1.0).unwrap(), (15_000, 3_000));
        assert_eq!(block_times(0.1).unwrap(), (1_500, 300));
        assert_eq!(block_times(0.0001).unwrap(), (5, 1));
        assert!(block_times(0.0).is_err());
        assert!(block_times(f64::NAN).is_err());
    }

    #[test]
    fn proc_memory_is_parsed() {
        let status =
            "Name:\tdualchain\nVmPeak:\t  900 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_proc_memory(status), (Some(204_800), Some(102_400)));
        assert_eq!(parse_proc_memory("Name: x\n"), (None, None));
        let (hwm, rss) = read_memory(std::process::id());
        assert!(hwm.is_some() && rss.is_some());
    }

    #[test]
    fn blocks_and_rates_are_counted_over_the_load_window() {
        let samples: Vec<HeightSample> = (-4..=64)
            .map(|i| {
                let t = f64::from(i) * 0.5;
                HeightSample {
                    t_s: t,
                    alpha: Some((t.max(-2.0) + 2.0) as u64 / 2 + 10),
                    delta: Some(((t.max(-2.0) + 2.0) * 10.0 / 4.0) as u64 + 50),
                }
            })
            .collect();
        let alpha = blocks_during(&samples, |s| s.alpha, 30.0);
        let delta = blocks_during(&samples, |s| s.delta, 30.0);
        assert_eq!(alpha, 15);
        assert_eq!(delta, 75);
        assert_eq!(count_ratio(alpha, delta), 5.0);
        assert_eq!(count_ratio(0, delta), 0.0);
        assert_eq!(count_ratio(1, 9), 0.0, "one Alpha block is no ratio");
        assert_eq!(final_height(&samples, |s| s.alpha, 0.0), 11);
        let rate = rate_over(&samples, |s| s.delta, 5.0);
        assert!((rate - 2.5).abs() < 0.2, "{rate}");
        assert_eq!(rate_over(&[], |s| s.delta, 5.0), 0.0);
    }

    /// Block timestamps (Unix ms) of a chain with one block per slot from `from_ms`
    /// for `count` slots, `offset_ms` into each slot.
    fn stamps(from_ms: u64, block_ms: u64, count: u64, offset_ms: u64) -> Vec<u64> {
        (0..count)
            .map(|k| (from_ms / block_ms + k) * block_ms + offset_ms)
            .collect()
    }

    #[test]
    fn block_ratio_counts_delta_blocks_by_slot_whatever_their_place_in_it() {
        let genesis = 1_700_000_010_000; // a multiple of 15 s
        for offset in [0, 1, 1_499, 2_999] {
            let alpha = stamps(genesis, 15_000, 4, offset * 5);
            let delta = stamps(genesis - 30_000, 3_000, 40, offset);
            let ratio = ratio_by_slots(&alpha, &delta, (15_000, 3_000));
            assert_eq!(ratio, Some(5.0), "offset {offset}");
        }
        // A slot whose block overflowed the block limits has two blocks.
        let alpha = stamps(genesis, 15_000, 4, 100);
        let mut delta = stamps(genesis, 3_000, 20, 100);
        delta.insert(7, delta[6] + 1);
        assert_eq!(
            ratio_by_slots(&alpha, &delta, (15_000, 3_000)),
            Some(16.0 / 3.0)
        );
        // A young chain: its first Alpha slot began 6 s before the first Delta block
        // (the genesis), so only the slots after it count.
        let alpha = stamps(genesis, 15_000, 4, 100);
        let delta = stamps(genesis + 6_000, 3_000, 20, 100);
        assert_eq!(ratio_by_slots(&alpha, &delta, (15_000, 3_000)), Some(5.0));
        // One Alpha block spans no whole slot.
        assert_eq!(ratio_by_slots(&alpha[..1], &delta, (15_000, 3_000)), None);
        assert_eq!(ratio_by_slots(&[], &delta, (15_000, 3_000)), None);
    }

    /// Samples every 250 ms of a minute's load: Alpha final every 15 s, Delta's blocks
    /// seen final at `delta_seen` (seconds into the load).
    fn sampled(delta_seen: &[f64]) -> Vec<HeightSample> {
        (-8..=244)
            .map(|i| {
                let t = f64::from(i) * 0.25;
                HeightSample {
                    t_s: t,
                    alpha: Some(((t + 14.0) / 15.0).floor() as u64),
                    delta: Some(delta_seen.iter().filter(|&&at| at <= t).count() as u64),
                }
            })
            .collect()
    }

    #[test]
    fn finality_pace_does_not_count_a_block_seen_a_moment_late_as_a_missing_one() {
        // Delta every 3 s, each seen with a lag of 2.5 s give or take 0.6 s: the blocks
        // due just before Alpha's changes at 1 s and 46 s land just after them.
        let jitter = [0.6, -0.6, 0.4, -0.2, 0.0, 0.5, -0.5];
        let seen: Vec<f64> = (0..22)
            .map(|k| f64::from(k) * 3.0 - 1.5 + jitter[k as usize % jitter.len()])
            .collect();
        let samples = sampled(&seen);
        let pace = finality_pace(&samples, |s| s.delta, 60.0, 3_000).unwrap();
        assert!((pace - 1.0).abs() <= 0.05, "{pace}");
        let alpha = finality_pace(&samples, |s| s.alpha, 60.0, 15_000).unwrap();
        assert!((alpha - 1.0).abs() <= 0.02, "{alpha}");
        // Heights read at Alpha's changes count 14 Delta blocks in three Alpha blocks.
        let at = |t: f64| samples.iter().rfind(|s| s.t_s <= t).unwrap().delta.unwrap();
        assert_eq!(at(46.0) - at(1.0), 14, "the case the pace is measured for");
    }

    #[test]
    fn finality_pace_shows_a_chain_whose_finality_falls_behind() {
        // Delta's blocks seen every 3.6 s instead of 3: five blocks take 18 s, not 15.
        let seen: Vec<f64> = (0..20).map(|k| f64::from(k) * 3.6).collect();
        let pace = finality_pace(&sampled(&seen), |s| s.delta, 60.0, 3_000).unwrap();
        assert!((pace - 3.0 / 3.6).abs() <= 0.02, "{pace}");
        assert_eq!(finality_pace(&[], |s| s.delta, 60.0, 3_000), None);
    }
}
