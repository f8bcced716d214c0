//! `dualchain devnet` end to end, with this test executable standing in for the node.
//!
//! The test binary has no libtest harness: started with `keygen`, `genesis` or `run`
//! it behaves as a tiny fake `dualchain` (keys and genesis are placeholder files; `run`
//! serves the shared fake node of `dualchain_testkit::fake` on the two API ports —
//! blocks sealed on the wall clock from the genesis time, so every fake validator
//! reports the same heights and state roots — and stops cleanly on SIGTERM). Started
//! without arguments it runs the scenarios below against itself via `--node-binary`.
//!
//! A genesis made with `--accounts-seed 666` makes validator 1 report different state
//! roots, to check that the devnet notices and fails.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use dualchain_loadgen::cli::{DevnetArgs, devnet_main, run_devnet};
use dualchain_testkit::{FakeNode, FakeNodeConfig};

const DIVERGENT_SEED: &str = "666";

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The fake `dualchain` (see the module docs).
fn fake_node(args: &[String]) {
    match args[0].as_str() {
        "keygen" => std::fs::create_dir_all(flag(args, "--out").unwrap()).unwrap(),
        "genesis" => {
            let genesis = serde_json::json!({
                "genesis_time_ms": flag(args, "--genesis-time-ms").unwrap().parse::<u64>().unwrap(),
                "alpha_ms": flag(args, "--alpha-block-time-ms").unwrap().parse::<u64>().unwrap(),
                "delta_ms": flag(args, "--delta-block-time-ms").unwrap().parse::<u64>().unwrap(),
                "seed": flag(args, "--accounts-seed").unwrap(),
                "unsigned": args.iter().any(|a| a == "--allow-unsigned"),
            });
            std::fs::write(flag(args, "--out").unwrap(), genesis.to_string()).unwrap();
        }
        "run" => {
            let genesis: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(flag(args, "--genesis").unwrap()).unwrap(),
            )
            .unwrap();
            let key_dir = flag(args, "--key-dir").unwrap();
            // Both API ports serve the same fake validator (a shared mempool).
            let node = FakeNode::new(FakeNodeConfig {
                allow_unsigned: genesis["unsigned"].as_bool().unwrap(),
                diverge: genesis["seed"] == DIVERGENT_SEED && key_dir.contains("v-1"),
                ..FakeNodeConfig::both(
                    genesis["genesis_time_ms"].as_u64().unwrap(),
                    genesis["alpha_ms"].as_u64().unwrap(),
                    genesis["delta_ms"].as_u64().unwrap(),
                )
            });
            let addrs: Vec<SocketAddr> = ["--alpha-api-listen", "--delta-api-listen"]
                .iter()
                .map(|f| flag(args, f).unwrap().parse().unwrap())
                .collect();
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime
                .block_on(node.serve_on(&addrs, async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .unwrap();
                    term.recv().await;
                    eprintln!("fake node: SIGTERM, stopping");
                }))
                .unwrap();
        }
        other => panic!("fake node: unknown command {other}"),
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    devnet: DevnetArgs,
}

/// A devnet of four fakes at time scale 0.1 offering 500 tx/s for 4 s.
fn devnet_args(report: &std::path::Path, extra: &[&str]) -> DevnetArgs {
    let mut with_load = vec!["--tps", "500"];
    with_load.extend_from_slice(extra);
    probed_devnet_args(report, &with_load)
}

/// The same devnet without `--tps`: it probes the capacity first.
fn probed_devnet_args(report: &std::path::Path, extra: &[&str]) -> DevnetArgs {
    let exe = std::env::current_exe().unwrap();
    let mut argv: Vec<String> = vec![
        "devnet".into(),
        "--validators".into(),
        "4".into(),
        "--duration".into(),
        "4s".into(),
        "--time-scale".into(),
        "0.1".into(),
        "--accounts".into(),
        "20".into(),
        "--report".into(),
        report.display().to_string(),
        "--node-binary".into(),
        exe.display().to_string(),
        "--ready-timeout".into(),
        "20s".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).devnet
}

fn scenario_agreeing_devnet_writes_a_full_report() {
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("report");
    let args = devnet_args(&report_dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(run_devnet(&args)).unwrap();
    assert!(report.state_roots_agree, "{:?}", report.state_root_checks);
    assert_eq!(report.state_root_checks.len(), 2);
    assert!(
        report
            .state_root_checks
            .iter()
            .all(|c| c.state_roots.len() == 4)
    );
    // The fake seals on the wall clock at 1.5 s / 300 ms: five Delta blocks per Alpha
    // block, measured over 4 s of load (so a couple of Alpha blocks: loose bounds).
    assert!(
        (3.0..=8.0).contains(&report.block_ratio),
        "block ratio {}",
        report.block_ratio
    );
    assert!(report.delta.height > 0 && report.alpha.height > 0);
    assert_eq!(report.loadgen.result.submitted, 2000);
    // Only validator 0's own transactions are finalized on its stream by the fake.
    assert!(
        report.loadgen.result.committed >= 400,
        "{}",
        report.loadgen.result.committed
    );
    assert!(report.delta.finality_ms_p50 > 0);
    assert_eq!(report.memory.len(), 4);
    assert!(report.memory.iter().all(|m| m.vm_hwm_kib.is_some()));
    assert!(
        report.shutdown.iter().all(|s| s.clean),
        "{:?}",
        report.shutdown
    );
    assert!(!report.signed);
    for file in [
        "report.json",
        "report.md",
        "tps.png",
        "finality_cdf.png",
        "heights.png",
    ] {
        assert!(report_dir.join(file).exists(), "{file} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["state_roots_agree"], true);
    assert_eq!(json["validators"], 4);
    assert!(json["delta"]["finality_ms_p95"].is_u64());
    assert!(json["delta"]["ordering_finality_ms_p95"].is_u64());
    eprintln!(
        "ok: agreeing devnet (block ratio {:.2})",
        report.block_ratio
    );
}

fn scenario_without_a_load_the_devnet_finds_the_capacity_first() {
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("report");
    let args = probed_devnet_args(
        &report_dir,
        &["--probe-duration", "3s", "--load-fraction", "0.5"],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(run_devnet(&args)).unwrap();
    let capacity = report
        .capacity
        .clone()
        .expect("a probed run reports its capacity");
    // Validator 0's fake seals only what it admitted itself: the goodput read from its
    // blocks is its share, but it must be positive and span the measured blocks.
    assert!(capacity.tps > 0.0 && capacity.blocks >= 2, "{capacity:?}");
    assert_eq!(capacity.probe_duration_s, 3.0);
    assert!(
        capacity.submitted > 0 && capacity.committed > 0,
        "{capacity:?}"
    );
    assert_eq!(capacity.steady_tps, capacity.tps * 0.5);
    assert_eq!(report.target_tps, capacity.steady_tps);
    let expected = capacity.steady_tps * 4.0;
    let submitted = report.loadgen.result.submitted as f64;
    assert!(
        (submitted - expected).abs() <= 1.0,
        "the steady load offered {submitted}, expected {expected}"
    );
    // The fakes refuse used nonces: the probe spent its own accounts.
    assert_eq!(report.delta.rejected, 0, "{:?}", report.rejected_by_status);
    assert!(report.state_roots_agree);
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(md.contains("**Capacity: "), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["capacity"]["steady_tps"], json["target_tps"]);
    eprintln!(
        "ok: probed devnet ({:.0} tx/s on validator 0)",
        capacity.tps
    );
}

fn scenario_a_probe_too_short_to_measure_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let args = probed_devnet_args(&dir.path().join("report"), &["--probe-duration", "2s"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime.block_on(run_devnet(&args)).unwrap_err().to_string();
    assert!(err.contains("--probe-duration 2s is too short"), "{err}");
    assert!(!dir.path().join("report").exists());
    eprintln!("ok: too short a probe is refused");
}

fn scenario_disagreeing_state_roots_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("report");
    let args = devnet_args(&report_dir, &["--accounts-seed", DIVERGENT_SEED, "--json"]);
    let err = devnet_main(args).unwrap_err().to_string();
    assert!(err.contains("state roots disagree"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["state_roots_agree"], false);
    eprintln!("ok: disagreeing devnet fails");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("keygen" | "genesis" | "run")
    ) {
        fake_node(&args);
        return;
    }
    // libtest-style invocations (`--list`, filters) run everything; keep it bounded.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let watchdog = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(240));
        eprintln!("devnet_fake: timed out");
        std::process::exit(2);
    });
    scenario_agreeing_devnet_writes_a_full_report();
    scenario_without_a_load_the_devnet_finds_the_capacity_first();
    scenario_a_probe_too_short_to_measure_is_refused_before_anything_starts();
    scenario_disagreeing_state_roots_fail_the_run();
    drop(watchdog);
}
