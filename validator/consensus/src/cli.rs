//! `dualchain sim`: runs the deterministic simulator over many seeds and reports.

use std::time::Instant;

use anyhow::{Context, bail};
use dualchain_core::types::ChainId;
use serde::Serialize;

use crate::avalanche::{AvalancheConfig, Security};
use crate::config::DagBftConfig;
use crate::config::Ordering;
use crate::finality::Histogram;
use crate::sim::{AvalancheRun, RunResult, SimConfig, run_once};
use crate::verify::SharedVerdictCache;

/// The network, faults and seeds of a simulation run: what the consensus simulator and
/// the whole-node simulator (`dualchain-sim`) both take.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Number of validators (equal stake).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Byzantine validators (equivocate, withhold, invalid signatures, garbage, orphan
    /// flood; one behaviour each, rotating with the seed). At most ⌊(N-1)/3⌋ keeps safety.
    #[arg(long, default_value_t = 0)]
    pub byzantine: usize,
    /// Probability that a message is lost (0 ≤ P < 1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Partition the network into two random sides for this many seconds, then heal.
    #[arg(long, default_value_t = 0.0)]
    pub partition_secs: f64,
    /// Honest validators that crash and restart from their persisted state.
    #[arg(long, default_value_t = 0)]
    pub crash: usize,
    /// Seeds to run (seed numbers first-seed, first-seed+1, …).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Skip re-running every seed to check determinism.
    #[arg(long)]
    pub no_determinism_check: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            validators: 4,
            byzantine: 0,
            loss: 0.0,
            partition_secs: 0.0,
            crash: 0,
            seeds: 1,
            first_seed: 0,
            no_determinism_check: false,
            json: false,
        }
    }
}

/// The consensus engine a simulation runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineArg {
    /// Mysticeti's commit rule over the DAG (deterministic finality).
    #[default]
    DagBft,
    /// Leader slots decided by Snowball sampling (probabilistic finality).
    Avalanche,
}

/// Avalanche's β preset.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityArg {
    /// β = 5.
    Quick,
    /// β = 20.
    Standard,
    /// β = 50.
    High,
}

impl From<SecurityArg> for Security {
    fn from(s: SecurityArg) -> Self {
        match s {
            SecurityArg::Quick => Security::Quick,
            SecurityArg::Standard => Security::Standard,
            SecurityArg::High => Security::High,
        }
    }
}

/// Simulate a DAG-BFT or Avalanche network of N validators in virtual time, with faults.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct SimArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Every honest validator must commit a leader of at least this round.
    #[arg(long, default_value_t = 30)]
    pub rounds: u64,
    /// Chain whose timing defaults to use (alpha or delta).
    #[arg(long, default_value = "delta")]
    pub chain: ChainId,
    /// Rounds of DAG kept in memory below the last decided slot (default: the engine's).
    #[arg(long)]
    pub retention: Option<u64>,
    /// Rounds of vertices kept in each node's store for lagging peers (default: the
    /// engine's; every simulated node holds its store in memory).
    #[arg(long)]
    pub store_retention: Option<u64>,
    /// Block time of the sealer in milliseconds (default: 1000, so short runs seal blocks).
    #[arg(long, default_value_t = 1_000)]
    pub block_ms: u64,
    /// Consensus engine of the simulated chain.
    #[arg(long, value_enum, default_value_t = EngineArg::DagBft)]
    pub engine: EngineArg,
    /// Avalanche's security preset (β = 5, 20 or 50 consecutive successful polls);
    /// only with `--engine avalanche` [default: standard].
    #[arg(long, value_enum)]
    pub security: Option<SecurityArg>,
}

impl Default for SimArgs {
    fn default() -> Self {
        Self {
            run: RunArgs::default(),
            rounds: 30,
            chain: ChainId::Delta,
            retention: None,
            store_retention: None,
            block_ms: 1_000,
            engine: EngineArg::DagBft,
            security: None,
        }
    }
}

/// The report of a `sim` invocation.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SimSummary {
    pub engine: EngineArg,
    pub validators: usize,
    pub byzantine: usize,
    pub loss: f64,
    pub partition_secs: f64,
    pub crash: usize,
    pub rounds: u64,
    pub runs: u64,
    pub safety_violations: u64,
    pub liveness_failures: u64,
    pub determinism_failures: u64,
    /// Fewest committed leaders of an honest node in any run.
    pub commits_per_run_min: u64,
    pub blocks_per_run_min: u64,
    pub commit_latency_rounds_p50: Option<u64>,
    pub commit_latency_rounds_p99: Option<u64>,
    /// Vertex creation → commit, virtual milliseconds.
    pub commit_latency_ms_p50: Option<u64>,
    pub commit_latency_ms_p99: Option<u64>,
    /// Most vertices (DAG plus buffered) held by one node at any time.
    pub max_dag_vertices_in_memory: usize,
    /// Most encoded vertex bytes held in one node's DAG at any time.
    pub max_dag_bytes_per_node: usize,
    pub vertices_simulated: u64,
    /// Vertices created per wall-clock second of simulation (all runs, reruns included).
    pub vertices_per_sec: f64,
    pub virtual_ms_total: u64,
    pub wall_ms: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub rejected_invalid_signatures: u64,
    pub undecodable_messages: u64,
    pub equivocation_evidence: u64,
    pub wrong_vote_evidence: u64,
    pub restarts: u64,
    /// Signature verifications actually performed / answered from the shared cache.
    pub signatures_verified: u64,
    pub verdict_cache_hits: u64,
    /// The Avalanche rule's figures, with `--engine avalanche`.
    pub avalanche: Option<AvalancheSummary>,
    /// The first failures, for diagnosis.
    pub failures: Vec<String>,
}

/// What the honest nodes' Snowball polls did, over every run.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct AvalancheSummary {
    pub beta: u32,
    pub polls: u64,
    /// Slot polls with a value reaching α, over all slot polls.
    pub query_success_rate: f64,
    /// Queries that timed out, over queries sent (a poll settled by α votes on every
    /// slot does not wait for the rest, and they do not count as timeouts).
    pub timeout_rate: f64,
    pub slots_decided: u64,
    /// Messages (of every kind) sent per decided slot.
    pub messages_per_decided_slot: f64,
    pub byzantine_exclusions: u64,
    pub timeout_exclusions: u64,
    /// Share of (Byzantine node, honest observer) pairs in which the observer excluded
    /// the Byzantine node from its samples (null without Byzantine nodes).
    pub byzantine_detected: Option<f64>,
    pub partitions_detected: u64,
    #[serde(skip)]
    totals: AvalancheRun,
}

impl SimSummary {
    /// `true` if no check failed.
    pub fn passed(&self) -> bool {
        self.safety_violations == 0 && self.liveness_failures == 0 && self.determinism_failures == 0
    }
}

/// The simulation parameters of one seed.
pub fn sim_config(args: &SimArgs, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(args.run.validators, seed);
    cfg.engine = DagBftConfig {
        epoch_seed: cfg.engine.epoch_seed,
        ..DagBftConfig::for_chain(args.chain)
    };
    if let Some(r) = args.retention {
        cfg.engine.retention_rounds = r;
    }
    if let Some(r) = args.store_retention {
        cfg.engine.store_retention_rounds = r;
    }
    if args.engine == EngineArg::Avalanche {
        let security = args.security.unwrap_or(SecurityArg::Standard).into();
        cfg.engine.ordering = Ordering::Avalanche(AvalancheConfig::with_security(security));
    }
    cfg.byzantine = args.run.byzantine;
    cfg.loss = args.run.loss;
    cfg.partition_ms = (args.run.partition_secs * 1_000.0).round() as u64;
    cfg.crashes = args.run.crash;
    cfg.rounds = args.rounds;
    cfg.block_time_ms = args.block_ms;
    cfg
}

/// Runs every seed (twice unless `no_determinism_check`) and summarises.
pub fn run_sim(args: &SimArgs) -> anyhow::Result<SimSummary> {
    if !(3..=100).contains(&args.run.validators) {
        bail!(
            "--validators must be between 3 and 100, got {}",
            args.run.validators
        );
    }
    if !(0.0..=3_600.0).contains(&args.run.partition_secs) {
        bail!("--partition-secs must be between 0 and 3600");
    }
    if args.run.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if args.security.is_some() && args.engine != EngineArg::Avalanche {
        bail!("--security sets Avalanche's β; it needs --engine avalanche");
    }
    let verdicts = SharedVerdictCache::new();
    let started = Instant::now();
    let mut summary = SimSummary {
        engine: args.engine,
        validators: args.run.validators,
        byzantine: args.run.byzantine,
        loss: args.run.loss,
        partition_secs: args.run.partition_secs,
        crash: args.run.crash,
        rounds: args.rounds,
        runs: 0,
        safety_violations: 0,
        liveness_failures: 0,
        determinism_failures: 0,
        commits_per_run_min: u64::MAX,
        blocks_per_run_min: u64::MAX,
        commit_latency_rounds_p50: None,
        commit_latency_rounds_p99: None,
        commit_latency_ms_p50: None,
        commit_latency_ms_p99: None,
        max_dag_vertices_in_memory: 0,
        max_dag_bytes_per_node: 0,
        vertices_simulated: 0,
        vertices_per_sec: 0.0,
        virtual_ms_total: 0,
        wall_ms: 0,
        messages_sent: 0,
        messages_dropped: 0,
        rejected_invalid_signatures: 0,
        undecodable_messages: 0,
        equivocation_evidence: 0,
        wrong_vote_evidence: 0,
        restarts: 0,
        signatures_verified: 0,
        verdict_cache_hits: 0,
        avalanche: match &sim_config(args, 0).engine.ordering {
            Ordering::DagBft => None,
            Ordering::Avalanche(a) => Some(AvalancheSummary {
                beta: a.beta,
                ..AvalancheSummary::default()
            }),
        },
        failures: Vec::new(),
    };
    let mut rounds = Histogram::default();
    let mut ms = Histogram::default();
    let mut vertices_all_runs = 0u64;
    for seed in args.run.first_seed..args.run.first_seed + args.run.seeds {
        let cfg = sim_config(args, seed);
        let result = run_once(cfg.clone(), &verdicts)
            .with_context(|| format!("simulation of seed {seed}"))?;
        vertices_all_runs += result.vertices_created;
        if !args.run.no_determinism_check {
            let again = run_once(cfg, &verdicts)
                .with_context(|| format!("second simulation of seed {seed}"))?;
            vertices_all_runs += again.vertices_created;
            if again.trace_digest != result.trace_digest {
                summary.determinism_failures += 1;
                push_failure(
                    &mut summary.failures,
                    format!("seed {seed}: two runs produced different traces"),
                );
            }
        }
        absorb(&mut summary, &mut rounds, &mut ms, result);
    }
    let wall = started.elapsed();
    summary.wall_ms = wall.as_millis() as u64;
    summary.vertices_per_sec = vertices_all_runs as f64 / wall.as_secs_f64().max(1e-9);
    summary.commit_latency_rounds_p50 = rounds.percentile(0.5);
    summary.commit_latency_rounds_p99 = rounds.percentile(0.99);
    summary.commit_latency_ms_p50 = ms.percentile(0.5);
    summary.commit_latency_ms_p99 = ms.percentile(0.99);
    let messages = summary.messages_sent;
    if let Some(a) = summary.avalanche.as_mut() {
        a.finish(messages);
    }
    let (hits, misses) = verdicts.stats();
    summary.signatures_verified = misses;
    summary.verdict_cache_hits = hits;
    Ok(summary)
}

fn push_failure(failures: &mut Vec<String>, f: String) {
    if failures.len() < 20 {
        failures.push(f);
    }
}

fn absorb(s: &mut SimSummary, rounds: &mut Histogram, ms: &mut Histogram, r: RunResult) {
    s.runs += 1;
    s.safety_violations += r.safety_violations.len() as u64;
    for v in r.safety_violations {
        push_failure(&mut s.failures, v);
    }
    if let Some(l) = r.liveness_failure {
        s.liveness_failures += 1;
        push_failure(&mut s.failures, l);
    }
    s.commits_per_run_min = s.commits_per_run_min.min(r.commits_min);
    s.blocks_per_run_min = s.blocks_per_run_min.min(r.blocks_min);
    rounds.merge(&r.latency_rounds);
    ms.merge(&r.latency_ms);
    s.max_dag_vertices_in_memory = s.max_dag_vertices_in_memory.max(r.max_dag_vertices);
    s.max_dag_bytes_per_node = s.max_dag_bytes_per_node.max(r.max_dag_bytes);
    s.vertices_simulated += r.vertices_created;
    s.virtual_ms_total += r.virtual_ms;
    s.messages_sent += r.messages_sent;
    s.messages_dropped += r.messages_dropped;
    s.rejected_invalid_signatures += r.rejected_signatures;
    s.undecodable_messages += r.undecodable_messages;
    s.equivocation_evidence += r.equivocation_evidence;
    s.wrong_vote_evidence += r.wrong_vote_evidence;
    s.restarts += r.restarts;
    if let (Some(a), Some(run)) = (s.avalanche.as_mut(), r.avalanche) {
        a.absorb(&run);
    }
}

impl AvalancheSummary {
    fn absorb(&mut self, run: &AvalancheRun) {
        let t = &mut self.totals;
        t.stats.add(&run.stats);
        t.byzantine_pairs += run.byzantine_pairs;
        t.byzantine_pairs_detected += run.byzantine_pairs_detected;
    }

    fn finish(&mut self, messages: u64) {
        let t = &self.totals.stats;
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        self.polls = t.polls;
        self.query_success_rate = ratio(
            t.successful_slot_polls,
            t.successful_slot_polls + t.failed_slot_polls,
        );
        self.timeout_rate = ratio(t.peers.timeouts, t.queries_sent);
        self.slots_decided = t.slots_decided;
        self.messages_per_decided_slot = ratio(messages, t.slots_decided);
        self.byzantine_exclusions = t.peers.byzantine_exclusions;
        self.timeout_exclusions = t.peers.timeout_exclusions;
        self.partitions_detected = t.peers.partitions_detected;
        self.byzantine_detected = (self.totals.byzantine_pairs > 0).then(|| {
            ratio(
                self.totals.byzantine_pairs_detected,
                self.totals.byzantine_pairs,
            )
        });
    }
}

/// Renders a simulation summary as pretty JSON or as `key: value` lines.
pub fn render<T: Serialize>(summary: &T, json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(summary).expect("summary serialises");
    }
    let value = serde_json::to_value(summary).expect("summary serialises");
    let mut out = String::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

/// Runs the simulation, prints the report, and fails if any check failed.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let summary = run_sim(&args)?;
    println!("{}", render(&summary, args.run.json));
    if !summary.passed() {
        bail!(
            "simulation failed: {} safety violations, {} liveness failures, {} determinism failures",
            summary.safety_violations,
            summary.liveness_failures,
            summary.determinism_failures
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn parses_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "sim",
            "--validators",
            "7",
            "--byzantine",
            "2",
            "--loss",
            "0.05",
            "--partition-secs",
            "1.5",
            "--crash",
            "1",
            "--seeds",
            "3",
            "--rounds",
            "12",
            "--json",
        ])
        .unwrap();
        let a = cli.sim;
        assert_eq!(
            (
                a.run.validators,
                a.run.byzantine,
                a.run.crash,
                a.run.seeds,
                a.rounds
            ),
            (7, 2, 1, 3, 12)
        );
        assert!(a.run.json && (a.run.loss - 0.05).abs() < 1e-12);
        assert_eq!(sim_config(&a, 9).partition_ms, 1_500);
        assert!(Cli::try_parse_from(["sim", "--validators", "many"]).is_err());
    }

    #[test]
    fn refuses_out_of_range_arguments() {
        for bad in [
            SimArgs {
                run: RunArgs {
                    validators: 2,
                    ..Default::default()
                },
                ..Default::default()
            },
            SimArgs {
                run: RunArgs {
                    seeds: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
            SimArgs {
                run: RunArgs {
                    loss: 1.5,
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            assert!(run_sim(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_small_run_reports_every_field() {
        let args = SimArgs {
            run: RunArgs {
                validators: 4,
                byzantine: 1,
                loss: 0.05,
                seeds: 2,
                json: true,
                ..Default::default()
            },
            rounds: 8,
            ..Default::default()
        };
        let s = run_sim(&args).unwrap();
        assert!(s.passed(), "{:?}", s.failures);
        assert_eq!(s.runs, 2);
        assert!(s.commits_per_run_min >= 8);
        assert!(s.max_dag_vertices_in_memory > 0 && s.vertices_simulated > 0);
        let json: serde_json::Value = serde_json::from_str(&render(&s, true)).unwrap();
        for key in [
            "runs",
            "safety_violations",
            "liveness_failures",
            "determinism_failures",
            "commits_per_run_min",
            "commit_latency_rounds_p50",
            "commit_latency_rounds_p99",
            "max_dag_vertices_in_memory",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
