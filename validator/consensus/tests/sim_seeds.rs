//! Acceptance: ≥200 seeds across 4, 7 and 10 validators with f Byzantine nodes, 5%
//! message loss, a partition that heals (and a crash/restart in every third seed):
//! zero safety violations, zero liveness failures, and reproducible traces.

use dualchain_consensus::sim::{RunResult, SimConfig, run_once};
use dualchain_consensus::verify::SharedVerdictCache;

fn config(validators: usize, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(validators, seed);
    cfg.byzantine = SimConfig::max_faulty(validators);
    cfg.loss = 0.05;
    cfg.partition_ms = 800 + 100 * (seed % 5);
    cfg.crashes = usize::from(seed.is_multiple_of(3));
    cfg.rounds = 6;
    cfg.time_limit_after_faults_ms = 20_000;
    cfg
}

fn check(results: &[RunResult]) {
    let mut failures = Vec::new();
    for r in results {
        failures.extend(r.safety_violations.iter().cloned());
        failures.extend(r.liveness_failure.iter().cloned());
        if r.commits_min == 0 {
            failures.push(format!("seed {}: an honest node never committed", r.seed));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
}

fn run_seeds(validators: usize, seeds: std::ops::Range<u64>) -> Vec<RunResult> {
    let verdicts = SharedVerdictCache::new();
    seeds
        .map(|seed| run_once(config(validators, seed), &verdicts).expect("valid config"))
        .collect()
}

#[test]
fn four_validators_one_byzantine_100_seeds() {
    check(&run_seeds(4, 0..100));
}

#[test]
fn seven_validators_two_byzantine_60_seeds() {
    check(&run_seeds(7, 1_000..1_060));
}

#[test]
fn ten_validators_three_byzantine_40_seeds() {
    check(&run_seeds(10, 2_000..2_040));
}

#[test]
fn faulty_runs_are_deterministic() {
    let verdicts = SharedVerdictCache::new();
    for (validators, seed) in [(4, 5), (7, 1_003), (10, 2_006)] {
        let a = run_once(config(validators, seed), &verdicts).unwrap();
        let b = run_once(config(validators, seed), &verdicts).unwrap();
        assert_eq!(a.trace_digest, b.trace_digest, "seed {seed}");
    }
}
