//! `dualchain devnet|loadgen|status|bench|sim` run `dualchain-tools`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dualchain() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dualchain"))
}

/// A copy of `dualchain` in a fresh directory (a hard link when possible), so that
/// what sits next to it is up to the test.
fn isolated_dualchain() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("forward-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let copy = dir.path().join("dualchain");
    if std::fs::hard_link(dualchain(), &copy).is_err() {
        std::fs::copy(dualchain(), &copy).unwrap();
    }
    (dir, copy)
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run(bin: &Path, args: &[&str], path_var: &str) -> Output {
    // ETXTBSY: another test thread may have forked while a script was being written.
    for _ in 0..100 {
        match Command::new(bin)
            .args(args)
            .env("PATH", path_var)
            .env_remove("DUALCHAIN_NODE_BINARY")
            .output()
        {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed busy", bin.display())
}

#[test]
fn arguments_and_exit_status_pass_through_unchanged() {
    let (dir, copy) = isolated_dualchain();
    let record = dir.path().join("record");
    write_script(
        &dir.path().join("dualchain-tools"),
        &format!(
            "#!/bin/sh\n{{ echo \"argv0=$0\"; for a in \"$@\"; do echo \"arg=$a\"; done; \
             echo \"node=$DUALCHAIN_NODE_BINARY\"; }} > {}\nexit 7\n",
            record.display()
        ),
    );
    for command in ["devnet", "loadgen", "status", "bench", "sim"] {
        let out = run(
            &copy,
            &[command, "--help", "--x", "a b", "-v", "--", "--json"],
            "/nonexistent",
        );
        assert_eq!(out.status.code(), Some(7), "{command}: {out:?}");
        let lines = std::fs::read_to_string(&record).unwrap();
        let args: Vec<&str> = lines
            .lines()
            .filter_map(|l| l.strip_prefix("arg="))
            .collect();
        assert_eq!(
            args,
            [command, "--help", "--x", "a b", "-v", "--", "--json"]
        );
        assert!(
            lines.contains(&format!("node={}", copy.display())),
            "the tools learn which dualchain forwarded: {lines}"
        );
    }
    // A global flag given before the command goes along.
    let out = run(&copy, &["--log-format", "json", "status"], "/nonexistent");
    assert_eq!(out.status.code(), Some(7));
    let lines = std::fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect();
    assert_eq!(args, ["--log-format", "json", "status"]);
}

#[test]
fn the_tools_are_found_on_path_too() {
    let (dir, copy) = isolated_dualchain();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    write_script(
        &bin_dir.join("dualchain-tools"),
        "#!/bin/sh\necho \"from path: $*\"\n",
    );
    let out = run(&copy, &["status", "--json"], bin_dir.to_str().unwrap());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from path: status --json\n"
    );
}

#[test]
fn missing_tools_are_a_clear_error() {
    let (_dir, copy) = isolated_dualchain();
    let out = run(&copy, &["devnet", "--validators", "4"], "/nonexistent");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`dualchain devnet` is provided by the `dualchain-tools` binary"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cargo build -p dualchain-tools"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_tool_commands_and_the_validator_keeps_its_own() {
    let out = run(&dualchain(), &["--help"], "/nonexistent");
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["devnet", "loadgen", "status", "bench", "sim"] {
        assert!(
            help.lines().any(
                |l| l.trim_start().starts_with(command) && l.contains("(runs dualchain-tools)")
            ),
            "{command} missing from\n{help}"
        );
    }
    for command in ["run", "keygen", "genesis", "snapshot"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from\n{help}"
        );
    }
}

/// With the real tools built next to `dualchain` (as `cargo test --workspace` and
/// `cargo build --workspace` do), the tools' own help comes back. Run alone
/// (`cargo test -p dualchain-node`) it needs `cargo build -p dualchain-tools` first.
#[test]
fn the_real_tools_answer_when_built_alongside() {
    let tools = dualchain().with_file_name("dualchain-tools");
    assert!(
        tools.is_file(),
        "{} is not built: `cargo test --workspace` builds it (dualchain-tools has \
         integration tests), or run `cargo build -p dualchain-tools`",
        tools.display()
    );
    for (command, needle) in [
        ("devnet", "--validators"),
        ("loadgen", "--targets"),
        ("status", "--endpoint"),
        ("bench", "mempool"),
        ("sim", "--validators"),
    ] {
        let out = run(&dualchain(), &[command, "--help"], "/nonexistent");
        assert!(out.status.success(), "{command}: {out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(needle),
            "{command} --help lacks {needle}:\n{help}"
        );
        assert!(
            help.contains(&format!("Usage: dualchain {command}")),
            "{command}: {help}"
        );
    }
    let out = run(&dualchain(), &["devnet", "--no-such-flag"], "/nonexistent");
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap's usage error status passes through"
    );
}
