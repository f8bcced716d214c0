//! `dualchain`: the validator binary.
//!
//! It runs a validator (`run`) and makes what one needs (`keygen`, `genesis`,
//! `snapshot`). The client-side commands — `devnet` (the main job), `loadgen`,
//! `status`, the macro benchmarks (`bench exec|net|mempool`), the simulator
//! (`sim`) and the cross-chain flow by hand (`sax`, `gov`) — live in the `dualchain-tools` binary, so the validator links neither kube
//! nor the plotting stack; `dualchain` forwards them with their arguments unchanged
//! (see [`forward`]), so `dualchain devnet …` works as documented.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use dualchain_contract::binaries::{NODE_BINARY_ENV, TOOLS_BIN, VALIDATOR_BIN, find_companion};

mod commands;
mod config;
mod node;
mod open_files;
mod peers;
mod seams;
mod sibling;
mod verify_budget;

/// dualchain: a post-quantum dual-chain (Alpha / Delta) validator network.
#[derive(Parser, Debug)]
#[command(name = "dualchain", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format on stderr [default: the config file's logFormat, else text].
    #[arg(long, global = true, value_enum, env = "DUALCHAIN_LOG_FORMAT")]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a validator or account key into a directory, or show a key's public part.
    Keygen(commands::keygen::Args),
    /// Write a genesis file: validator set, funded accounts (keys written next to it), chain parameters.
    Genesis(commands::genesis::Args),
    /// Export a node's state to a snapshot file, or bootstrap a fresh node from one.
    #[command(subcommand)]
    Snapshot(commands::snapshot::Command),
    /// Macro benchmarks: exec, net, mempool; each against a baseline in the same process (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Bench(ToolArgs),
    /// Deterministic simulation in virtual time with seeded faults, of consensus engines or whole validators (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sim(ToolArgs),
    /// Re-execute a chain's certified history from genesis (a database, a peer, or a synthetic one) and check every root.
    Replay(Box<commands::replay::Args>),
    /// Run one validator: Alpha, Delta or both chains (QUIC peers, gRPC API, metrics).
    Run(Box<config::RunArgs>),
    /// The main job: N validators on this machine over QUIC, under load, with live progress and a report (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Devnet(ToolArgs),
    /// Open-loop load over gRPC against a network's Delta APIs; latency to finality (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Loadgen(ToolArgs),
    /// Print a running node's status (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Status(ToolArgs),
    /// sAX on a running network: lock on Alpha (stake on Delta), unlock, show (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sax(ToolArgs),
    /// Governance on a running network: propose, vote, finalize, show (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Gov(ToolArgs),
    /// A validator's own set changes on a running network: join or leave at the next epoch boundary (runs dualchain-tools).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Validator(ToolArgs),
}

/// The arguments of a command `dualchain-tools` implements, passed on unchanged.
#[derive(clap::Args, Debug)]
struct ToolArgs {
    /// Arguments of the command (`--help` shows them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
    args: Vec<OsString>,
}

impl Command {
    /// The forwarded command's name and arguments, if it is one.
    fn forwarded(&self) -> Option<(&'static str, &[OsString])> {
        let (name, args) = match self {
            Command::Bench(a) => ("bench", a),
            Command::Sim(a) => ("sim", a),
            Command::Devnet(a) => ("devnet", a),
            Command::Loadgen(a) => ("loadgen", a),
            Command::Status(a) => ("status", a),
            Command::Sax(a) => ("sax", a),
            Command::Gov(a) => ("gov", a),
            Command::Validator(a) => ("validator", a),
            _ => return None,
        };
        Some((name, &args.args))
    }
}

/// Runs `dualchain-tools <command> <args…>`, found next to this executable or on
/// `PATH`, and exits with its status. On Unix the tools replace this process (`exec`),
/// so signals, the exit status and the terminal go to them directly; argv[0] stays
/// `dualchain`, so their usage lines read `dualchain <command>`. A devnet started this
/// way runs validators with this very binary ([`NODE_BINARY_ENV`]).
fn forward(command: &str, log_format: Option<LogFormat>, args: &[OsString]) -> ExitCode {
    let me = std::env::current_exe().ok();
    let Some(tools) = find_companion(TOOLS_BIN) else {
        let here = me.as_deref().and_then(std::path::Path::parent).map_or_else(
            || "this executable".to_string(),
            |d| d.display().to_string(),
        );
        eprintln!(
            "error: `{VALIDATOR_BIN} {command}` is provided by the `{TOOLS_BIN}` binary, which is \
             neither in {here} nor on PATH.\n\
             Build it next to `{VALIDATOR_BIN}` with `cargo build -p {TOOLS_BIN}` (with \
             `--release` for a release build), or install the `{TOOLS_BIN}` executable beside \
             `{VALIDATOR_BIN}` or on PATH."
        );
        return ExitCode::FAILURE;
    };
    let mut child = std::process::Command::new(&tools);
    if let Some(format) = log_format {
        let value = format.to_possible_value().expect("no skipped variants");
        child.args(["--log-format", value.get_name()]);
    }
    child.arg(command).args(args);
    if std::env::var_os(NODE_BINARY_ENV).is_none()
        && let Some(me) = &me
    {
        child.env(NODE_BINARY_ENV, me);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = child.arg0(VALIDATOR_BIN).exec();
        eprintln!("error: cannot run {}: {err}", tools.display());
        ExitCode::from(126)
    }
    #[cfg(not(unix))]
    match child.status() {
        Ok(status) => ExitCode::from(status.code().map_or(1, |c| c.clamp(0, 255) as u8)),
        Err(err) => {
            eprintln!("error: cannot run {}: {err}", tools.display());
            ExitCode::from(126)
        }
    }
}

/// `RUST_LOG` wins over the config file's `logLevel`; both fall back to `info`.
fn init_logging(format: LogFormat, file_level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(file_level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some((command, args)) = cli.command.forwarded() {
        return forward(command, cli.log_format, args);
    }
    // `run` may name its log settings in the config file; read them before logging starts.
    let file = match &cli.command {
        Command::Run(args) => args
            .config
            .as_deref()
            .and_then(|path| config::FileConfig::load(path).ok()),
        _ => None,
    };
    let file_format = file
        .as_ref()
        .and_then(|f| f.log_format.as_deref())
        .and_then(|f| LogFormat::from_str(f, true).ok());
    let format = cli.log_format.or(file_format).unwrap_or(LogFormat::Text);
    init_logging(format, file.as_ref().and_then(|f| f.log_level.as_deref()));
    let result = match cli.command {
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Genesis(args) => commands::genesis::run(args),
        Command::Snapshot(cmd) => commands::snapshot::run(cmd),
        Command::Replay(args) => commands::replay::run(*args),
        Command::Run(args) => node::run(*args),
        Command::Bench(_)
        | Command::Sim(_)
        | Command::Devnet(_)
        | Command::Loadgen(_)
        | Command::Status(_)
        | Command::Sax(_)
        | Command::Gov(_)
        | Command::Validator(_) => unreachable!("forwarded above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tool_commands_capture_every_argument_unchanged() {
        for (argv, name, rest) in [
            (
                vec!["dualchain", "devnet", "--help"],
                "devnet",
                vec!["--help"],
            ),
            (
                vec!["dualchain", "devnet", "--validators", "4", "--json"],
                "devnet",
                vec!["--validators", "4", "--json"],
            ),
            (
                vec!["dualchain", "bench", "exec", "--txs", "10", "--version"],
                "bench",
                vec!["exec", "--txs", "10", "--version"],
            ),
            (vec!["dualchain", "sim", "-h"], "sim", vec!["-h"]),
            (vec!["dualchain", "status"], "status", vec![]),
            (
                vec!["dualchain", "loadgen", "--targets", "http://a:1", "--", "x"],
                "loadgen",
                vec!["--targets", "http://a:1", "--", "x"],
            ),
        ] {
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let (command, args) = cli.command.forwarded().expect("a forwarded command");
            assert_eq!(command, name);
            let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
            assert_eq!(args, rest, "{argv:?}");
        }
        let cli = Cli::try_parse_from(["dualchain", "--log-format", "json", "status"]).unwrap();
        assert!(matches!(cli.log_format, Some(LogFormat::Json)));
        assert!(
            Cli::try_parse_from(["dualchain", "keygen", "--out", "k"])
                .unwrap()
                .command
                .forwarded()
                .is_none()
        );
    }

    #[test]
    fn help_lists_the_forwarded_commands() {
        let help = Cli::command().render_help().to_string();
        for name in ["devnet", "loadgen", "status", "bench", "sim"] {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing from\n{help}"));
            assert!(line.contains("(runs dualchain-tools)"), "{line}");
        }
    }
}
