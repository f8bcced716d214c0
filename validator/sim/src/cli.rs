//! `dualchain sim`: `--mode consensus` (the consensus engines alone, the default) or
//! `--mode node` (whole validators). Flags that only one mode understands are
//! refused in the other, with the reason.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
pub use dualchain_consensus::cli::RunArgs;
use dualchain_consensus::cli::{EngineArg, SecurityArg, SimArgs as ConsensusArgs, render};
use dualchain_consensus::finality::Histogram;
use dualchain_core::types::{ChainId, ConsensusEngine};
use serde::Serialize;

use crate::config::{NodeSimConfig, Signatures};
use crate::run::{RunResult, run};

/// What to simulate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The consensus engines (DAG-BFT or Avalanche), sealer and finality tracker of
    /// one chain.
    #[default]
    Consensus,
    /// Complete validators: both chains, mempool, consensus, executor, votes and
    /// certificates, persistence; with clients submitting transactions.
    Node,
}

/// Simulate a network in virtual time with seeded faults.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// What to simulate.
    #[arg(long, value_enum, default_value_t = Mode::Consensus)]
    pub mode: Mode,
    #[command(flatten)]
    pub run: RunArgs,

    /// [consensus] Every honest validator must commit a leader of at least this round [default: 30].
    #[arg(long)]
    pub rounds: Option<u64>,
    /// [consensus] Chain whose timing defaults to use (alpha or delta) [default: delta].
    #[arg(long)]
    pub chain: Option<ChainId>,
    /// [consensus] Rounds of DAG kept in memory below the last decided slot.
    #[arg(long)]
    pub retention: Option<u64>,
    /// [consensus] Rounds of vertices kept in each node's store for lagging peers.
    #[arg(long)]
    pub store_retention: Option<u64>,
    /// [consensus] Block time of the sealer in milliseconds [default: 1000].
    #[arg(long)]
    pub block_ms: Option<u64>,
    /// Consensus engine: of the simulated chain, or in node mode of both chains
    /// [default: dag-bft].
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// [consensus] Avalanche's β preset (quick 5, standard 20, high 50), with
    /// `--engine avalanche` [default: standard].
    #[arg(long, value_enum)]
    pub security: Option<SecurityArg>,

    /// [node] Offered Delta load in transactions per simulated second [default: 1000].
    #[arg(long)]
    pub tps: Option<u64>,
    /// [node] Simulated second at which the clients stop offering load; they start at
    /// second 1, so `--load-secs 30` offers 29 s of load [default: 30; at least 2].
    #[arg(long)]
    pub load_secs: Option<u64>,
    /// [node] Client accounts, each with one transaction in flight [default: 8000].
    #[arg(long)]
    pub accounts: Option<usize>,
    /// [node] Block times "ALPHA_MS/DELTA_MS" [default: 15000/3000, the genesis defaults].
    #[arg(long, value_name = "ALPHA_MS/DELTA_MS")]
    pub block_times: Option<String>,
    /// [node] Alpha blocks per epoch [default: 2, so a run crosses several boundaries].
    #[arg(long, value_name = "ALPHA_BLOCKS")]
    pub epoch_length: Option<u64>,
    /// [node] Validator-set sizes to go through, one change after another (each
    /// requested once the previous one took effect), e.g. `--validators 4
    /// --reconfigure 7,5`: a larger size adds joiners (extra nodes that follow from
    /// the start and join with a sponsor's sAX lock), a smaller one has honest
    /// validators leave (genesis ones that neither crash nor observe, then joiners).
    #[arg(long, value_delimiter = ',', value_name = "SIZES")]
    pub reconfigure: Option<Vec<usize>>,
    /// [node] Seeds simulated at once (each on one thread) [default: the cores].
    #[arg(long)]
    pub parallel: Option<usize>,
    /// [node] Validator signatures: keyed-hash stand-ins of ML-DSA-87's size, made and
    /// checked everywhere a real one is, or real ML-DSA-87 [default: simulated].
    #[arg(long, value_enum)]
    pub signatures: Option<Signatures>,
}

impl SimArgs {
    fn consensus_only(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.rounds.is_some() {
            set.push("--rounds");
        }
        if self.chain.is_some() {
            set.push("--chain");
        }
        if self.retention.is_some() {
            set.push("--retention");
        }
        if self.store_retention.is_some() {
            set.push("--store-retention");
        }
        if self.block_ms.is_some() {
            set.push("--block-ms");
        }
        if self.security.is_some() {
            set.push("--security");
        }
        set
    }

    fn node_only(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.tps.is_some() {
            set.push("--tps");
        }
        if self.load_secs.is_some() {
            set.push("--load-secs");
        }
        if self.accounts.is_some() {
            set.push("--accounts");
        }
        if self.block_times.is_some() {
            set.push("--block-times");
        }
        if self.parallel.is_some() {
            set.push("--parallel");
        }
        if self.epoch_length.is_some() {
            set.push("--epoch-length");
        }
        if self.reconfigure.is_some() {
            set.push("--reconfigure");
        }
        if self.signatures.is_some() {
            set.push("--signatures");
        }
        set
    }

    fn consensus_args(&self) -> ConsensusArgs {
        let defaults = ConsensusArgs::default();
        ConsensusArgs {
            run: self.run.clone(),
            rounds: self.rounds.unwrap_or(defaults.rounds),
            chain: self.chain.unwrap_or(defaults.chain),
            retention: self.retention,
            store_retention: self.store_retention,
            block_ms: self.block_ms.unwrap_or(defaults.block_ms),
            engine: self.engine.unwrap_or_default(),
            security: self.security,
        }
    }

    /// The configuration of seed `seed` in node mode.
    pub fn node_config(&self, seed: u64) -> anyhow::Result<NodeSimConfig> {
        let mut cfg = NodeSimConfig::new(self.run.validators, seed);
        cfg.byzantine = self.run.byzantine;
        cfg.loss = self.run.loss;
        cfg.partition_ms = (self.run.partition_secs * 1_000.0).round() as u64;
        cfg.crashes = self.run.crash;
        if let Some(engine) = self.engine {
            let engine = match engine {
                EngineArg::DagBft => ConsensusEngine::DagBft,
                EngineArg::Avalanche => ConsensusEngine::Avalanche,
            };
            cfg.engines = (engine, engine);
        }
        if let Some(tps) = self.tps {
            cfg.tps = tps;
        }
        if let Some(secs) = self.load_secs {
            cfg.load_ms = secs.saturating_mul(1_000);
        }
        if let Some(accounts) = self.accounts {
            cfg.accounts = accounts;
        }
        if let Some(signatures) = self.signatures {
            cfg.signatures = signatures;
        }
        if let Some(length) = self.epoch_length {
            cfg.epoch_length_alpha_blocks = length;
        }
        if let Some(sizes) = &self.reconfigure {
            cfg.reconfigure = sizes.clone();
        }
        if let Some(times) = &self.block_times {
            let (alpha, delta) = times
                .split_once('/')
                .and_then(|(a, d)| Some((a.trim().parse().ok()?, d.trim().parse().ok()?)))
                .with_context(|| {
                    format!(
                        "--block-times must be ALPHA_MS/DELTA_MS, e.g. 15000/3000, got {times:?}"
                    )
                })?;
            cfg.alpha_block_ms = alpha;
            cfg.delta_block_ms = delta;
        }
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

/// The report of `dualchain sim --mode node`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeSimSummary {
    pub mode: Mode,
    pub validators: usize,
    pub byzantine: usize,
    pub loss: f64,
    pub partition_secs: f64,
    pub crash: usize,
    pub tps: u64,
    pub load_secs: u64,
    /// Which validator signatures the runs made and checked.
    pub signatures: Signatures,
    pub runs: u64,
    pub safety_violations: u64,
    pub liveness_failures: u64,
    pub determinism_failures: u64,
    pub exactly_once_violations: u64,
    pub certificate_failures: u64,
    /// Delta transfers accepted by a validator, and of those committed.
    pub transactions_submitted: u64,
    pub transactions_committed: u64,
    pub resubmissions: u64,
    /// Alpha sAX locks (offered at 1% of `tps`, at least one a second) accepted, and
    /// of those committed.
    pub alpha_locks_submitted: u64,
    pub alpha_locks_committed: u64,
    /// Delta stakes made from attested Alpha locks (relayed by the validators), at
    /// the honest validator with the fewest, summed over seeds.
    pub alpha_locks_attested: u64,
    /// Runs whose governance flow completed (lock, stake, propose, vote, finalize,
    /// execute on Alpha, unlock, release, release attested back).
    pub governance_flows_completed: u64,
    /// Forged attestations planted past admission, as a proposer that skips it would
    /// carry them (every one must fail with a typed receipt: a stake from one is a
    /// safety violation).
    pub forged_attestations: u64,
    /// The same forgeries offered to honest validators' APIs, and how many of those
    /// were admitted (admission refuses them all: anything but 0 is a defect).
    pub forged_attestations_offered_to_honest: u64,
    pub forged_attestations_admitted_by_honest: u64,
    /// Of those, refused by the attestation checks in a block (typed receipt).
    pub forged_attestations_refused: u64,
    /// Failed receipts whose positions the API reported to clients as the store
    /// holds them (a mismatch is a safety violation).
    pub failed_receipts_checked: u64,
    /// Transactions that could only fail and pay nothing (from unfunded accounts, at
    /// spent nonces) offered to honest APIs, and how many were admitted (admission
    /// against state refuses them all: anything but 0 is a defect).
    pub unpayable_offered_to_honest: u64,
    pub unpayable_admitted_by_honest: u64,
    /// Offences validators reported against honest peers (must be 0: an honest
    /// validator is never scored down for what an honest node does) and against
    /// Byzantine ones.
    pub reports_against_honest: u64,
    pub reports_against_byzantine: u64,
    /// Per chain (Alpha, Delta), the fewest proofs of misbehaviour an honest
    /// validator recorded in any run (each proof once per chain).
    pub evidence_at_honest_min: [u64; 2],
    /// Submission to inclusion in a block of the observer, simulated ms.
    pub commit_latency_ms_p50: Option<u64>,
    pub commit_latency_ms_p99: Option<u64>,
    /// Epoch boundaries both chains of every honest validator crossed, in the run
    /// that crossed the fewest (Alpha fixing the next set at its boundary block,
    /// Delta applying it from its attestation; validators that left are held to
    /// stopping at their boundary instead), and the epoch length they were crossed at.
    pub epochs: u64,
    pub epoch_length_alpha_blocks: u64,
    /// Validator-set changes (`--reconfigure`) that took effect, over all runs, and
    /// the set size they left in the run that got the least far.
    pub set_changes_applied: u64,
    pub validators_final: usize,
    /// The fewest changes any run applied (what `validators_final` is taken from).
    #[serde(skip)]
    pub fewest_changes_applied: usize,
    /// Epoch transitions at each run's observer, from its Alpha entering an epoch
    /// (boundary block executed) to its Delta entering it (the set's attestation
    /// executed), simulated ms; the target is at most one Alpha block time,
    /// `epoch_transition_alpha_blocks_max` (the worst as a ratio of it).
    pub epoch_transition_ms_p50: Option<u64>,
    pub epoch_transition_ms_max: Option<u64>,
    pub epoch_transition_alpha_blocks_max: Option<f64>,
    /// The longest an honest validator's transition step ran once it overran its
    /// timeout (four Alpha block times), over all runs (0: never late), and the
    /// honest validators whose transition was reported unable to complete.
    pub epoch_transition_stuck_max_s: u64,
    pub epoch_transition_deadlocks: usize,
    /// Delta slots under steady load at each run's observer, summed over the runs:
    /// in epoch transitions (Alpha entering an epoch → Delta entering it, plus one
    /// Delta slot) and elsewhere (the same runs' baseline), and those without a
    /// transaction (the target: none missed in a transition under steady load).
    pub delta_slots_in_transitions: u64,
    pub delta_slots_missed_in_transitions: u64,
    pub delta_slots_elsewhere: u64,
    pub delta_slots_missed_elsewhere: u64,
    /// Lowest head height of an honest validator in any run.
    pub alpha_height_min: u64,
    pub delta_height_min: u64,
    /// Crash/restart faults applied, over all runs.
    pub crashes: u64,
    /// Simulated seconds of the first run of every seed (the determinism re-runs not
    /// counted).
    pub virtual_secs_total: f64,
    pub wall_secs: f64,
    /// Simulated seconds of every run, determinism re-runs included, per wall second.
    pub sim_seconds_per_wall_second: f64,
    /// The first failures, for diagnosis.
    pub failures: Vec<String>,
}

impl NodeSimSummary {
    pub fn passed(&self) -> bool {
        self.safety_violations == 0
            && self.liveness_failures == 0
            && self.determinism_failures == 0
            && self.exactly_once_violations == 0
            && self.certificate_failures == 0
    }
}

fn push_failure(failures: &mut Vec<String>, seed: u64, what: &str, f: &str) {
    if failures.len() < 20 {
        failures.push(format!("seed {seed}: {what}: {f}"));
    }
}

fn absorb(
    s: &mut NodeSimSummary,
    (latencies, transitions): (&mut Histogram, &mut Histogram),
    r: RunResult,
) {
    s.runs += 1;
    for (what, list, counter) in [
        ("safety", &r.safety_violations, &mut s.safety_violations),
        ("liveness", &r.liveness_failures, &mut s.liveness_failures),
        (
            "exactly once",
            &r.exactly_once_violations,
            &mut s.exactly_once_violations,
        ),
        (
            "certificates",
            &r.certificate_failures,
            &mut s.certificate_failures,
        ),
    ] {
        *counter += list.len() as u64;
        for f in list {
            push_failure(&mut s.failures, r.seed, what, f);
        }
    }
    s.transactions_submitted += r.clients.submitted;
    s.transactions_committed += r.clients.committed;
    s.resubmissions += r.clients.resubmissions + r.alpha_clients.resubmissions;
    s.alpha_locks_submitted += r.alpha_clients.submitted;
    s.alpha_locks_committed += r.alpha_clients.committed;
    s.alpha_locks_attested += r.records.stakes;
    s.set_changes_applied += r.set_changes_applied as u64;
    if r.set_changes_applied <= s.fewest_changes_applied {
        s.fewest_changes_applied = r.set_changes_applied;
        s.validators_final = s.validators + r.validators_joined - r.validators_left;
    }
    s.forged_attestations += r.forged_attestations;
    s.forged_attestations_offered_to_honest += r.forged_offered;
    s.forged_attestations_admitted_by_honest += r.forged_admitted;
    s.forged_attestations_refused += r.forged_refused;
    s.failed_receipts_checked += r.failed_receipts_checked;
    s.unpayable_offered_to_honest += r.unpayable_offered;
    s.unpayable_admitted_by_honest += r.unpayable_admitted;
    s.reports_against_honest += r.reports_against_honest;
    s.reports_against_byzantine += r.reports_against_byzantine;
    for (min, run) in s
        .evidence_at_honest_min
        .iter_mut()
        .zip(r.evidence_at_honest_min)
    {
        *min = (*min).min(run);
    }
    s.governance_flows_completed += u64::from(
        r.flow
            .last()
            .is_some_and(|(stage, _)| *stage == crate::flow::Stage::Done),
    );
    for l in &r.clients.latencies_ms {
        latencies.record(*l);
    }
    for t in &r.transitions_ms {
        transitions.record(*t);
        s.epoch_transition_ms_max = s.epoch_transition_ms_max.max(Some(*t));
    }
    s.epoch_transition_stuck_max_s = s.epoch_transition_stuck_max_s.max(r.transition_stuck_max_s);
    s.epoch_transition_deadlocks += r.transition_deadlocks;
    s.delta_slots_in_transitions += r.delta_slots.in_transitions;
    s.delta_slots_missed_in_transitions += r.delta_slots.missed_in_transitions;
    s.delta_slots_elsewhere += r.delta_slots.elsewhere;
    s.delta_slots_missed_elsewhere += r.delta_slots.missed_elsewhere;
    s.epochs = s.epochs.min(r.epochs.delta);
    s.alpha_height_min = s.alpha_height_min.min(r.min_heights[0]);
    s.delta_height_min = s.delta_height_min.min(r.min_heights[1]);
    s.crashes += r.crashes;
    s.virtual_secs_total += r.virtual_ms as f64 / 1000.0;
}

/// A seed's run and, for the determinism check, its second run.
type SeedOutcome = anyhow::Result<(RunResult, Option<RunResult>)>;

/// Runs every seed in node mode (twice unless `no_determinism_check`), `parallel`
/// seeds at a time, and summarises.
pub fn run_node_sim(args: &SimArgs) -> anyhow::Result<NodeSimSummary> {
    if args.run.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if !(0.0..=3_600.0).contains(&args.run.partition_secs) {
        bail!("--partition-secs must be between 0 and 3600");
    }
    let first = args.node_config(args.run.first_seed)?;
    let parallel = args
        .parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let seeds: Vec<u64> = (args.run.first_seed..args.run.first_seed + args.run.seeds).collect();
    let results: Mutex<Vec<(u64, SeedOutcome)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(seeds.len()) {
            scope.spawn(|| {
                // One simulation per thread and already a thread per core: the
                // executor's and the tree's data parallelism runs on this thread
                // (rayon's work splitting still happens, its workers do not spin
                // against the other simulations).
                let _inline = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .use_current_thread()
                    .build();
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(&seed) = seeds.get(i) else { return };
                    let outcome = (|| {
                        let cfg = args.node_config(seed)?;
                        let result =
                            run(&cfg).with_context(|| format!("simulation of seed {seed}"))?;
                        let again = if args.run.no_determinism_check {
                            None
                        } else {
                            Some(
                                run(&cfg)
                                    .with_context(|| format!("second simulation of seed {seed}"))?,
                            )
                        };
                        Ok((result, again))
                    })();
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((seed, outcome));
                }
            });
        }
    });
    let wall = started.elapsed().max(Duration::from_millis(1));
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(seed, _)| *seed);
    let mut summary = NodeSimSummary {
        mode: Mode::Node,
        validators: args.run.validators,
        byzantine: args.run.byzantine,
        loss: args.run.loss,
        partition_secs: args.run.partition_secs,
        crash: args.run.crash,
        tps: first.tps,
        load_secs: first.load_ms / 1000,
        signatures: first.signatures,
        runs: 0,
        safety_violations: 0,
        liveness_failures: 0,
        determinism_failures: 0,
        exactly_once_violations: 0,
        certificate_failures: 0,
        transactions_submitted: 0,
        transactions_committed: 0,
        resubmissions: 0,
        alpha_locks_submitted: 0,
        alpha_locks_committed: 0,
        alpha_locks_attested: 0,
        governance_flows_completed: 0,
        forged_attestations: 0,
        forged_attestations_offered_to_honest: 0,
        forged_attestations_admitted_by_honest: 0,
        forged_attestations_refused: 0,
        failed_receipts_checked: 0,
        unpayable_offered_to_honest: 0,
        unpayable_admitted_by_honest: 0,
        reports_against_honest: 0,
        reports_against_byzantine: 0,
        evidence_at_honest_min: [u64::MAX; 2],
        commit_latency_ms_p50: None,
        commit_latency_ms_p99: None,
        epochs: u64::MAX,
        epoch_length_alpha_blocks: first.epoch_length_alpha_blocks,
        set_changes_applied: 0,
        validators_final: 0,
        fewest_changes_applied: usize::MAX,
        epoch_transition_ms_p50: None,
        epoch_transition_ms_max: None,
        epoch_transition_alpha_blocks_max: None,
        epoch_transition_stuck_max_s: 0,
        epoch_transition_deadlocks: 0,
        delta_slots_in_transitions: 0,
        delta_slots_missed_in_transitions: 0,
        delta_slots_elsewhere: 0,
        delta_slots_missed_elsewhere: 0,
        alpha_height_min: u64::MAX,
        delta_height_min: u64::MAX,
        crashes: 0,
        virtual_secs_total: 0.0,
        wall_secs: wall.as_secs_f64(),
        sim_seconds_per_wall_second: 0.0,
        failures: Vec::new(),
    };
    let mut latencies = Histogram::default();
    let mut transitions = Histogram::default();
    let mut simulated = 0.0;
    for (seed, outcome) in results {
        let (result, again) = outcome?;
        simulated += result.virtual_ms as f64 / 1000.0;
        if let Some(again) = again {
            simulated += again.virtual_ms as f64 / 1000.0;
            if let Some(difference) = result.trace.first_difference(&again.trace) {
                summary.determinism_failures += 1;
                push_failure(
                    &mut summary.failures,
                    seed,
                    "determinism",
                    &format!("two runs of the seed produced different traces ({difference})"),
                );
            }
        }
        absorb(&mut summary, (&mut latencies, &mut transitions), result);
    }
    summary.commit_latency_ms_p50 = latencies.percentile(0.5);
    summary.epoch_transition_ms_p50 = transitions.percentile(0.5);
    summary.epoch_transition_alpha_blocks_max = summary
        .epoch_transition_ms_max
        .map(|max| max as f64 / first.alpha_block_ms as f64);
    summary.commit_latency_ms_p99 = latencies.percentile(0.99);
    summary.sim_seconds_per_wall_second = simulated / wall.as_secs_f64();
    Ok(summary)
}

/// `dualchain sim`: runs the mode, prints the report, fails if a check failed.
pub fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    match args.mode {
        Mode::Consensus => {
            let node_only = args.node_only();
            if !node_only.is_empty() {
                bail!("{} only apply to --mode node", node_only.join(", "));
            }
            dualchain_consensus::cli::run(args.consensus_args())
        }
        Mode::Node => {
            let consensus_only = args.consensus_only();
            if !consensus_only.is_empty() {
                bail!(
                    "{} only apply to --mode consensus",
                    consensus_only.join(", ")
                );
            }
            let summary = run_node_sim(&args)?;
            println!("{}", render(&summary, args.run.json));
            if !summary.passed() {
                bail!(
                    "simulation failed: {} safety violations, {} liveness failures, {} determinism failures, {} exactly-once violations, {} certificate failures",
                    summary.safety_violations,
                    summary.liveness_failures,
                    summary.determinism_failures,
                    summary.exactly_once_violations,
                    summary.certificate_failures
                );
            }
            Ok(())
        }
    }
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

    fn parse(args: &[&str]) -> SimArgs {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .unwrap()
            .sim
    }

    #[test]
    fn flags_of_the_other_mode_are_refused_with_the_reason() {
        let err = run_cli(parse(&["--mode", "node", "--rounds", "5"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("--rounds only apply to --mode consensus"),
            "{err}"
        );
        let err = run_cli(parse(&["--tps", "5"])).unwrap_err();
        assert!(
            err.to_string().contains("--tps only apply to --mode node"),
            "{err}"
        );
    }

    #[test]
    fn reconfigure_takes_growing_and_shrinking_sets_and_refuses_what_cannot_run() {
        let node = |extra: &[&str]| {
            let mut args = vec!["--mode", "node", "--validators", "7", "--byzantine", "1"];
            args.extend_from_slice(extra);
            parse(&args).node_config(0)
        };
        let cfg = node(&["--reconfigure", "6,5"]).unwrap();
        assert_eq!(cfg.reconfigure, vec![6, 5]);
        let refused = |extra: &[&str], says: &str| {
            let err = node(extra).unwrap_err().to_string();
            assert!(err.contains(says), "{extra:?}: {err}");
        };
        let grown = node(&["--reconfigure", "9,6"]).unwrap();
        assert_eq!(grown.nodes(), 9, "two joiners start with the seven");
        refused(&["--reconfigure", "6,6"], "already has 6");
        refused(&["--reconfigure", "3"], "at least 4");
        refused(
            &["--reconfigure", "5,4", "--crash", "3"],
            "takes 1 validators out, but only 0 are honest",
        );
        // Joiners may leave again: 7 → 8 → 5 needs the joiner as the third leaver.
        assert!(node(&["--reconfigure", "8,5", "--crash", "3"]).is_ok());
        refused(&["--reconfigure", "600"], "more than");
    }

    #[test]
    fn node_flags_become_the_run_configuration() {
        let args = parse(&[
            "--mode",
            "node",
            "--validators",
            "7",
            "--byzantine",
            "2",
            "--loss",
            "0.05",
            "--crash",
            "1",
            "--partition-secs",
            "5",
            "--tps",
            "200",
            "--load-secs",
            "10",
            "--block-times",
            "2000/500",
        ]);
        assert_eq!(args.mode, Mode::Node);
        let cfg = args.node_config(3).unwrap();
        assert_eq!(
            (cfg.validators, cfg.byzantine, cfg.crashes, cfg.seed),
            (7, 2, 1, 3)
        );
        assert_eq!(
            (cfg.partition_ms, cfg.tps, cfg.load_ms),
            (5_000, 200, 10_000)
        );
        assert_eq!((cfg.alpha_block_ms, cfg.delta_block_ms), (2_000, 500));
        assert_eq!(cfg.signatures, Signatures::Simulated, "the default");
        let real = parse(&["--mode", "node", "--signatures", "ml-dsa"]);
        assert_eq!(real.node_config(0).unwrap().signatures, Signatures::MlDsa);
        let bad = parse(&["--mode", "node", "--block-times", "2000"]);
        assert!(bad.node_config(0).is_err());
        let unaligned = parse(&["--mode", "node", "--block-times", "2100/500"]);
        assert!(unaligned.node_config(0).is_err());
        let too_many = parse(&[
            "--mode",
            "node",
            "--validators",
            "4",
            "--byzantine",
            "2",
            "--crash",
            "2",
        ]);
        assert!(too_many.node_config(0).is_err());
    }
}
