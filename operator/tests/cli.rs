//! The `dualchain-operator` binary's offline subcommands, run as a user runs them.
//! (This integration test also makes `cargo test` build the binary that the e2e suite
//! in `e2e/` starts as the operator process.)

use std::path::PathBuf;
use std::process::{Command, Output};

/// This package's directory. Read at run time (cargo sets it for `cargo test`): the
/// compile-time value names whichever clone built the cached binary, and CI builds
/// every clone into one shared target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dualchain-operator"))
        .args(args)
        .output()
        .expect("run dualchain-operator")
}

fn repo_file(relative: &str) -> PathBuf {
    manifest_dir().join("..").join(relative)
}

#[test]
fn crd_prints_both_custom_resource_definitions() {
    let out = operator(&["crd"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        text.contains("name: dualchainnetworks.dualchain.dev"),
        "{text}"
    );
    assert!(
        text.contains("name: benchmarkclusters.dualchain.dev"),
        "{text}"
    );
}

#[test]
fn validate_accepts_the_examples_and_names_what_is_wrong_otherwise() {
    let examples = [
        repo_file("helm/dualchain/examples/devnet.yaml"),
        repo_file("helm/dualchain/examples/benchmark-nightly.yaml"),
    ];
    let mut args = vec!["validate"];
    for example in &examples {
        args.extend(["-f", example.to_str().expect("UTF-8 path")]);
    }
    let out = operator(&args);
    assert!(out.status.success(), "{out:?}");

    let invalid = repo_file("operator/tests/invalid/dcn-empty-image.yaml");
    let out = operator(&["validate", "-f", invalid.to_str().expect("UTF-8 path")]);
    assert!(!out.status.success(), "an empty image was accepted");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("image must not be empty"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 invalid document(s)"));
}
