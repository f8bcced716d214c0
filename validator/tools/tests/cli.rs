//! The `dualchain-tools` binary as a process: its commands, and a clear refusal of a
//! flag that does not belong to the chosen simulator mode. (Also what makes
//! `cargo test --workspace` build the binary that `dualchain` forwards to.)

use std::process::Command;

fn tools(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dualchain-tools"))
        .args(args)
        .output()
        .expect("dualchain-tools runs")
}

#[test]
fn help_lists_every_command() {
    let out = tools(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["devnet", "loadgen", "status", "bench", "sim"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from\n{help}"
        );
    }
}

#[test]
fn a_flag_of_the_other_simulator_mode_is_refused_with_the_reason() {
    let out = tools(&["sim", "--mode", "node", "--rounds", "5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--rounds only apply to --mode consensus"),
        "{err}"
    );
}
