//! Command-line entry points: `dualchain loadgen`, `dualchain status`, `dualchain devnet`.
//!
//! Each command has a clap [`clap::Args`] struct (doc comments are the help text), a
//! `run_*` function returning its serialisable result (for tests and embedding), and a
//! `*_main` function that runs it on its own tokio runtime, prints it and returns the
//! process outcome. The `dualchain-tools` binary (which `dualchain devnet|loadgen|status`
//! forward to) wires them as:
//!
//! ```text
//! Command::Loadgen(a) => dualchain_loadgen::cli::loadgen_main(a),
//! Command::Status(a)  => dualchain_loadgen::cli::status_main(a),
//! Command::Devnet(a)  => dualchain_loadgen::cli::devnet_main(a),
//! ```
//! (called from synchronous code, outside any tokio runtime).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::accounts::AccountSource;
use crate::devnet::DevnetReport;
use crate::loadgen::{LiveStats, LoadgenConfig, LoadgenReport};
use crate::report::HeightSample;
use crate::result_sink::{ConfigMapRef, TERMINATION_LOG};
use crate::status::StatusView;
use crate::workload::WorkloadKind;

/// Parses `30s`, `2m`, `1h 5m`, `500ms` (humantime) or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 30s, 2m or 500ms: {e}"))
}

/// Open-loop load over gRPC against a chain's Delta API endpoints.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("rate").required(true).args(["tps", "max_load"])))]
pub struct LoadgenArgs {
    /// Delta API endpoints, comma-separated (`http://host:4030,http://host2:4030`).
    #[arg(long, value_delimiter = ',', num_args = 1.., required = true, value_name = "URLS")]
    pub targets: Vec<String>,
    /// Mean offered load in transactions per second (open loop).
    #[arg(long, value_name = "T")]
    pub tps: Option<f64>,
    /// Send as fast as the targets accept instead of at a fixed rate.
    #[arg(long)]
    pub max_load: bool,
    /// Length of the send window (`30s`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Shape and content of the load.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Steady)]
    pub workload: WorkloadKind,
    /// Number of funded accounts to use (at most the keyring's; required with --accounts-seed).
    #[arg(long, value_name = "A")]
    pub accounts: Option<usize>,
    /// Keyring written by `dualchain genesis` (the `<net>-accounts` Secret).
    #[arg(long, value_name = "FILE", conflicts_with = "accounts_seed")]
    pub accounts_keyring: Option<PathBuf>,
    /// Derive the accounts from the public seed given to `dualchain genesis --accounts-seed`.
    #[arg(long, value_name = "SEED")]
    pub accounts_seed: Option<u64>,
    /// Sign every transaction with ML-DSA-44 (pre-signed on all cores before sending).
    #[arg(long, conflicts_with = "unsigned")]
    pub signed: bool,
    /// Send unsigned transactions (the genesis must allow them); the default.
    #[arg(long)]
    pub unsigned: bool,
    /// Print the result JSON on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Also write the result as key `result.json` of this ConfigMap, with the run's
    /// plots (TPS over time, finality CDF, the first target's height) as PNG
    /// `binaryData` (merge-PATCH with the pod's service account; falls back to
    /// /dev/termination-log, without plots).
    #[arg(long, value_name = "NS/NAME")]
    pub result_configmap: Option<ConfigMapRef>,
    /// TrueType font for the plots' text (without it they are drawn without text).
    #[arg(long, value_name = "FILE", default_value = crate::report::DEFAULT_FONT)]
    pub plot_font: PathBuf,
    /// Transactions per SubmitBatch call (1 to 10,000).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Seed of the workload (which accounts, amounts, adversarial classes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// SubmitBatch calls in flight per target.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// How long to wait after the send window for accepted transactions to finalize.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// Memory for transactions prepared (signed) ahead of the schedule, MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub presign_memory_mb: usize,
    /// Where the termination-log fallback goes.
    #[arg(long, default_value = TERMINATION_LOG, hide = true)]
    pub termination_log: PathBuf,
}

impl LoadgenArgs {
    /// The engine configuration these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<LoadgenConfig> {
        let accounts = match (&self.accounts_keyring, self.accounts_seed) {
            (Some(path), _) => AccountSource::Keyring {
                path: path.clone(),
                limit: self.accounts,
            },
            (None, Some(seed)) => AccountSource::Seed {
                seed,
                count: self
                    .accounts
                    .context("--accounts-seed needs --accounts (how many were funded)")?,
            },
            (None, None) => {
                return Err(crate::accounts::AccountsError::NoSource.into());
            }
        };
        if self.workload == WorkloadKind::Crosschain {
            anyhow::bail!(
                "--workload crosschain drives both chains of every validator beside the transfers; run it with `dualchain devnet --workload crosschain`"
            );
        }
        let mut config = LoadgenConfig::new(self.targets.clone(), accounts);
        config.tps = if self.max_load { None } else { self.tps };
        config.duration = self.duration;
        config.workload = self.workload;
        config.signed = self.signed;
        config.batch = self.batch;
        config.seed = self.seed;
        config.in_flight = self.in_flight;
        config.drain_timeout = self.drain_timeout;
        config.presign_memory_bytes = self.presign_memory_mb.saturating_mul(1 << 20);
        Ok(config)
    }
}

/// The multi-threaded runtime the client commands and benchmarks run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runs the load and returns its result (prints nothing).
pub async fn run_loadgen(args: &LoadgenArgs) -> anyhow::Result<LoadgenReport> {
    run_loadgen_with(args, LiveStats::new()).await
}

async fn run_loadgen_with(
    args: &LoadgenArgs,
    live: Arc<LiveStats>,
) -> anyhow::Result<LoadgenReport> {
    let config = args.to_config()?;
    let ticker = crate::progress::spawn_plain_loadgen_ticker(live.clone(), config.duration);
    let result = crate::loadgen::run(config, live).await;
    ticker.abort();
    result
}

/// How often the first target's height is sampled for the heights plot.
const HEIGHT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Most height samples kept (an hour at one a second).
const MAX_HEIGHT_SAMPLES: usize = 3600;

/// Samples Delta's head height on `url` until aborted, in seconds since the load's send
/// window opened (negative before). A sample that fails is skipped.
fn spawn_height_sampler(
    url: String,
    live: Arc<LiveStats>,
    samples: Arc<std::sync::Mutex<Vec<HeightSample>>>,
) -> tokio::task::JoinHandle<()> {
    let origin = std::time::Instant::now();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HEIGHT_SAMPLE_INTERVAL);
        loop {
            ticker.tick().await;
            let Ok((height, _)) =
                dualchain_client::node::chain_heights(&url, dualchain_proto::v1::Chain::Delta)
                    .await
            else {
                continue;
            };
            let now = std::time::Instant::now();
            let t_s = match live.started_at() {
                Some(start) if now >= start => (now - start).as_secs_f64(),
                Some(start) => -(start - now).as_secs_f64(),
                None => -(origin.elapsed().as_secs_f64()),
            };
            let mut all = samples.lock().unwrap_or_else(|e| e.into_inner());
            if all.len() < MAX_HEIGHT_SAMPLES {
                all.push(HeightSample {
                    t_s,
                    alpha: None,
                    delta: Some(height),
                });
            }
        }
    })
}

/// Human-readable summary of a load result.
pub fn render_loadgen(report: &LoadgenReport) -> String {
    let target = report
        .target_tps
        .map_or("max load".to_owned(), |t| format!("{t:.0} tx/s"));
    let mut out = format!(
        "load: {} {} for {:.1}s, target {target}, {} accounts, {} target(s)\n\
         submitted {} ({:.0} tx/s achieved), accepted {}, rejected {}, committed {} ({:.0} tx/s)\n\
         block finality p50 {} ms, p95 {} ms, p99 {} ms ({} samples)\n",
        if report.result.signed {
            "signed"
        } else {
            "unsigned"
        },
        report.workload.name(),
        report.duration_s,
        report.accounts,
        report.targets.len(),
        report.result.submitted,
        report.achieved_submit_tps,
        report.accepted,
        report.result.rejected,
        report.result.committed,
        report.result.average_tps,
        report.result.finality_ms.p50,
        report.result.finality_ms.p95,
        report.result.finality_ms.p99,
        report.latency.samples,
    );
    match report.result.ordering_finality_ms {
        Some(p) => out.push_str(&format!(
            "ordering finality p50 {} ms, p95 {} ms, p99 {} ms ({} samples{})\n",
            p.p50,
            p.p95,
            p.p99,
            report.ordering_latency.samples,
            match report.ordering_commits_missed {
                0 => String::new(),
                n => format!(", {n} commits missed by the stream"),
            }
        )),
        None => out.push_str("ordering finality not measured (no target streamed its commits)\n"),
    }
    if !report.rejected_by_status.is_empty() {
        let list: Vec<String> = report
            .rejected_by_status
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!("refusals: {}\n", list.join(", ")));
    }
    if report.uncommitted > 0 {
        out.push_str(&format!(
            "{} accepted transactions were not final at the end of the drain\n",
            report.uncommitted
        ));
    }
    if report.generator.limited_by_preparation {
        out.push_str(&format!(
            "WARNING: signing could not keep up (prepared {:.0} tx/s, up to {} transactions late)\n",
            report.generator.prepare_tps, report.generator.behind_max
        ));
    }
    out
}

/// `dualchain loadgen`: run, print, publish. A publishing failure is logged, not fatal
/// (exit status 0 means the run completed; the operator judges the figures).
pub fn loadgen_main(args: LoadgenArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let live = LiveStats::new();
        let heights = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = match (&args.result_configmap, args.targets.first()) {
            (Some(_), Some(url)) => Some(spawn_height_sampler(
                url.clone(),
                live.clone(),
                heights.clone(),
            )),
            _ => None,
        };
        let report = run_loadgen_with(&args, live).await;
        if let Some(sampler) = sampler {
            sampler.abort();
        }
        let report = report?;
        let full = serde_json::to_string(&report)?;
        if args.json {
            println!("{full}");
        } else {
            print!("{}", render_loadgen(&report));
        }
        if let Some(target) = &args.result_configmap {
            let compact = report.result.to_json();
            let heights = heights.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let plots = match crate::report::loadgen_plots(&report, &heights, &args.plot_font) {
                Ok((plots, text)) => {
                    if !text {
                        tracing::warn!(font = %args.plot_font.display(), "plot font missing; plots drawn without text");
                    }
                    plots
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "could not draw the plots");
                    Vec::new()
                }
            };
            match crate::result_sink::publish(
                target,
                &full,
                &compact,
                &plots,
                &args.termination_log,
            )
            .await
            {
                Ok(via) => tracing::info!(via, "published the load result"),
                Err(e) => eprintln!("warning: could not publish the result: {e:#}"),
            }
        }
        Ok(())
    })
}

/// Print a validator node's status.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// gRPC API endpoint of the node (`http://host:4030`).
    #[arg(long, default_value = "http://127.0.0.1:4030")]
    pub endpoint: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Fetches the status (prints nothing).
pub async fn run_status(args: &StatusArgs) -> anyhow::Result<StatusView> {
    crate::status::fetch_status(&args.endpoint).await
}

/// `dualchain status`.
pub fn status_main(args: StatusArgs) -> anyhow::Result<()> {
    let view = runtime()?.block_on(run_status(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", view.render());
    }
    Ok(())
}

/// Where the validators of a local network come from and how long they may take to
/// start (`devnet` and the network benchmarks).
#[derive(clap::Args, Debug, Clone)]
pub struct LocalValidators {
    /// The `dualchain` binary to start validators with [default: the `dualchain` that
    /// forwarded this command, else the one next to this executable, else on PATH].
    #[arg(long, value_name = "PATH", env = dualchain_contract::binaries::NODE_BINARY_ENV)]
    pub node_binary: Option<PathBuf>,
    /// How long validators may take to become ready.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
}

/// Start a local network of validators, drive load, check state roots, write a report.
#[derive(clap::Args, Debug, Clone)]
pub struct DevnetArgs {
    /// Number of validators (processes) to start on this machine.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Length of the load (`60s`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Offered load on Delta, transactions per second. Without it the run first finds
    /// the network's capacity (maximum load for --probe-duration, goodput read from the
    /// blocks) and then offers --load-fraction of it.
    #[arg(long, value_name = "TPS")]
    pub tps: Option<f64>,
    /// Without --tps: the steady load's share of the measured capacity (above 0, at
    /// most 4).
    #[arg(long, value_name = "SHARE", conflicts_with = "tps",
          default_value_t = crate::capacity::DEFAULT_LOAD_FRACTION)]
    pub load_fraction: f64,
    /// Without --tps: length of the capacity probe [default: six Delta block times, at
    /// least 5 s].
    #[arg(long, value_parser = parse_duration, conflicts_with = "tps")]
    pub probe_duration: Option<Duration>,
    /// Shape and content of the load.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Steady)]
    pub workload: WorkloadKind,
    /// Multiplies the block times (1 = 15 s Alpha / 3 s Delta; 0.1 = 1.5 s / 300 ms).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Sign transactions with ML-DSA-44 (default: unsigned, with a genesis that allows it).
    #[arg(long, conflicts_with = "unsigned")]
    pub signed: bool,
    /// Unsigned transactions (the default; the report labels the run "unsigned").
    #[arg(long)]
    pub unsigned: bool,
    /// Print report.json on stdout.
    #[arg(long)]
    pub json: bool,
    /// Directory for report.json, report.md and the PNG plots.
    #[arg(long, default_value = "devnet-report", value_name = "DIR")]
    pub report: PathBuf,
    /// Keep the validators' data directory (keys, genesis, databases, logs) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Funded accounts (derived from --accounts-seed) the load spends from.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Public seed of the benchmark accounts.
    #[arg(long, default_value_t = 42)]
    pub accounts_seed: u64,
    /// Transactions per SubmitBatch call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    #[command(flatten)]
    pub local: LocalValidators,
    /// Run validators with JSON logs (in their log files).
    #[arg(long)]
    pub json_logs: bool,
    /// Consensus engine of both chains (`--alpha-consensus` / `--delta-consensus`
    /// override one chain's, for a mixed network).
    #[arg(long, value_enum, default_value_t = EngineName::DagBft)]
    pub consensus: EngineName,
    /// Consensus engine of Alpha [default: --consensus].
    #[arg(long, value_enum)]
    pub alpha_consensus: Option<EngineName>,
    /// Consensus engine of Delta [default: --consensus].
    #[arg(long, value_enum)]
    pub delta_consensus: Option<EngineName>,
    /// The throughput ceiling of this network on this machine, tx/s, as `dualchain
    /// bench pipeline` computes it: the report gives Delta's committed TPS as a
    /// fraction of it (`delta.ceiling_fraction`). `dualchain devnet` measures it
    /// before the network starts (a few seconds) unless it is given here or
    /// `--no-ceiling` is set.
    #[arg(long, value_name = "TPS")]
    pub ceiling_tps: Option<f64>,
    /// Do not measure the ceiling (the report then has no ceiling fraction).
    #[arg(long, conflicts_with = "ceiling_tps")]
    pub no_ceiling: bool,
}

/// A consensus engine on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineName {
    /// Mysticeti's commit rule over the DAG: deterministic finality.
    DagBft,
    /// Leader slots decided by Snowball sampling of peers: probabilistic finality.
    Avalanche,
}

impl From<EngineName> for dualchain_core::types::ConsensusEngine {
    fn from(e: EngineName) -> Self {
        match e {
            EngineName::DagBft => Self::DagBft,
            EngineName::Avalanche => Self::Avalanche,
        }
    }
}

impl DevnetArgs {
    /// The engines of Alpha and Delta this devnet runs.
    pub fn engines(
        &self,
    ) -> (
        dualchain_core::types::ConsensusEngine,
        dualchain_core::types::ConsensusEngine,
    ) {
        (
            self.alpha_consensus.unwrap_or(self.consensus).into(),
            self.delta_consensus.unwrap_or(self.consensus).into(),
        )
    }
}

/// Runs a devnet, writes its report and returns it (printing only progress, on stderr).
/// A state-root disagreement is *not* an error here: check
/// [`DevnetReport::state_roots_agree`] (as [`devnet_main`] does).
pub async fn run_devnet(args: &DevnetArgs) -> anyhow::Result<DevnetReport> {
    crate::devnet::run(args).await
}

/// `dualchain devnet`: run, print (report.json with `--json`, the Markdown summary
/// otherwise), and fail if the validators' state roots disagree.
pub fn devnet_main(args: DevnetArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(run_devnet(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::report::render_markdown(&report));
        eprintln!("report written to {}", args.report.display());
    }
    if !report.state_roots_agree {
        return Err(crate::devnet::disagreement_error(&report, &args.report));
    }
    if let Some(crosschain) = &report.crosschain
        && !crosschain.records_agree
    {
        anyhow::bail!(
            "cross-chain records disagree (report in {}): {}",
            args.report.display(),
            crosschain.disagreements.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    enum Cmd {
        Loadgen(LoadgenArgs),
        Status(StatusArgs),
        Devnet(DevnetArgs),
    }

    #[test]
    fn durations_accept_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn loadgen_parses_the_operator_contract_command_line() {
        let Cmd::Loadgen(a) = Cmd::try_parse_from([
            "x",
            "loadgen",
            "--targets",
            "http://n-0.n-peers.ns.svc:4030,http://n-1.n-peers.ns.svc:4030",
            "--tps",
            "500",
            "--duration",
            "60s",
            "--workload",
            "bursty",
            "--accounts",
            "100",
            "--accounts-keyring",
            "/var/run/dualchain/accounts/accounts.keys",
            "--signed",
            "--json",
            "--result-configmap",
            "ns/b-result",
        ])
        .unwrap() else {
            panic!("wrong subcommand")
        };
        assert_eq!(a.targets.len(), 2);
        assert_eq!(a.duration, Duration::from_secs(60));
        assert_eq!(a.workload, WorkloadKind::Bursty);
        assert!(a.signed && a.json);
        assert_eq!(a.result_configmap.as_ref().unwrap().name, "b-result");
        let config = a.to_config().unwrap();
        assert_eq!(config.tps, Some(500.0));
        assert!(matches!(
            config.accounts,
            AccountSource::Keyring {
                limit: Some(100),
                ..
            }
        ));
    }

    #[test]
    fn loadgen_needs_a_rate_and_refuses_signed_with_unsigned() {
        let base = [
            "x",
            "loadgen",
            "--targets",
            "http://a:1",
            "--accounts-seed",
            "1",
        ];
        assert!(Cmd::try_parse_from(base).is_err());
        let mut both = base.to_vec();
        both.extend(["--tps", "1", "--max-load"]);
        assert!(Cmd::try_parse_from(both).is_err());
        let mut signs = base.to_vec();
        signs.extend(["--tps", "1", "--signed", "--unsigned"]);
        assert!(Cmd::try_parse_from(signs).is_err());
        let mut max = base.to_vec();
        max.extend(["--max-load", "--accounts", "10"]);
        let Cmd::Loadgen(a) = Cmd::try_parse_from(max).unwrap() else {
            panic!()
        };
        assert_eq!(a.to_config().unwrap().tps, None);
        // A seed without a count is a clear error, not a guess.
        let mut no_count = base.to_vec();
        no_count.extend(["--tps", "5"]);
        let Cmd::Loadgen(a) = Cmd::try_parse_from(no_count).unwrap() else {
            panic!()
        };
        assert!(a.to_config().is_err());
    }

    #[test]
    fn status_and_devnet_defaults() {
        let Cmd::Status(s) =
            Cmd::try_parse_from(["x", "status", "--endpoint", "http://h:3030", "--json"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.endpoint, "http://h:3030");
        assert!(s.json);
        let Cmd::Devnet(d) = Cmd::try_parse_from([
            "x",
            "devnet",
            "--validators",
            "4",
            "--duration",
            "30s",
            "--time-scale",
            "0.1",
            "--json",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(d.validators, 4);
        assert_eq!(d.duration, Duration::from_secs(30));
        assert_eq!(d.time_scale, 0.1);
        assert!(!d.signed && d.json);
        assert_eq!(d.report, PathBuf::from("devnet-report"));
        assert_eq!(d.tps, None, "no --tps: the run finds the capacity first");
        assert_eq!(d.load_fraction, crate::capacity::DEFAULT_LOAD_FRACTION);
        assert_eq!(d.probe_duration, None);
    }

    #[test]
    fn devnet_probe_options_conflict_with_a_given_load() {
        for extra in [["--load-fraction", "0.8"], ["--probe-duration", "10s"]] {
            let argv = ["x", "devnet", "--tps", "5000", extra[0], extra[1]];
            let err = Cmd::try_parse_from(argv).err().expect("a conflict");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{err}"
            );
        }
        let Cmd::Devnet(d) = Cmd::try_parse_from([
            "x",
            "devnet",
            "--load-fraction",
            "0.8",
            "--probe-duration",
            "10s",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(d.tps, None);
        assert_eq!(d.load_fraction, 0.8);
        assert_eq!(d.probe_duration, Some(Duration::from_secs(10)));
    }
}
