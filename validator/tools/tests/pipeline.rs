//! `dualchain-tools bench pipeline` in a process of its own: its CPU readings are the
//! whole process's, so nothing else may run beside it (a test harness runs tests on
//! threads of one process).

use std::process::Command;

fn pipeline(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dualchain-tools"))
        .args(["bench", "pipeline", "--json"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running dualchain-tools");
    assert!(
        out.status.success(),
        "bench pipeline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bench pipeline --json prints JSON")
}

const STAGES: [&str; 9] = [
    "decode",
    "signature",
    "mempool",
    "vertex_build",
    "transport",
    "vertex_receive",
    "execution",
    "commit",
    "certificate",
];

#[test]
fn every_stage_is_measured_and_the_report_is_consistent() {
    // Structure only: whether the stages add up to the whole is a CPU-timing
    // judgement, which the bench makes (`stages_agree`) on release builds of
    // thousands of transactions, not a test of a debug build.
    let r = pipeline(&["--txs", "1000", "--vertex-txs", "250", "--rounds", "3"]);
    let stages = r["stages"].as_object().expect("stages");
    let mut names: Vec<&str> = stages.keys().map(String::as_str).collect();
    let mut expected = STAGES.to_vec();
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected, "{r:#}");
    for name in STAGES {
        let us = stages[name].as_f64().unwrap_or(-1.0);
        // Unsigned verdicts are a flag check; everything else costs something.
        assert!(
            us > 0.0 || (name == "signature" && us >= 0.0),
            "{name}: {us}"
        );
    }
    let total = r["total_us_per_tx"].as_f64().unwrap();
    let sum: f64 = stages.values().map(|v| v.as_f64().unwrap()).sum();
    assert!(total > 0.0, "{r:#}");
    assert!((r["stages_sum_us_per_tx"].as_f64().unwrap() - sum).abs() < 1e-6 * sum);
    let ratio = r["stages_over_total"].as_f64().unwrap();
    assert!((ratio - sum / total).abs() < 1e-9, "{r:#}");
    assert_eq!(r["stages_agree"], (ratio - 1.0).abs() <= 0.10, "{r:#}");
    // Ceiling = cores / (4 × whole).
    let cores = r["cores"].as_f64().unwrap();
    let ceiling = r["ceiling_tps_4_validators"].as_f64().unwrap();
    assert!(
        (ceiling - cores * 1e6 / (4.0 * total)).abs() < 1e-6 * ceiling,
        "{r:#}"
    );
    assert_eq!(r["signatures"], "unsigned");
    // A thousand transactions between fresh accounts change two thousand (of
    // 2,001: account 0 is the workload's hot recipient, used only at conflict > 0).
    assert_eq!(r["accounts_changed"], 2000, "{r:#}");
}

#[test]
fn fewer_accounts_change_less_state() {
    // Every transaction between two fresh accounts, against a load among 50
    // accounts: the block changes each of the 50 once for many transactions,
    // which is why its commit costs less per transaction (the bench says how much).
    let few = pipeline(&["--txs", "2000", "--accounts", "50", "--rounds", "1"]);
    assert_eq!(few["accounts"], 50);
    // Account 0 is the workload's hot recipient, used only at conflict > 0.
    assert_eq!(few["accounts_changed"], 49, "{few:#}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_dualchain-tools"))
        .args(["bench", "pipeline", "--txs", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--txs must be between 1 and"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
