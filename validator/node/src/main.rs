//! `dualchain`: the validator binary.
//!
//! One binary, one subcommand per job: `run` (a validator), `devnet` (the main job),
//! `loadgen`, `status`, keys, genesis, snapshots, the consensus simulator (`sim`) and
//! the macro benchmarks (`bench exec|net|mempool`).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod chain;
mod commands;
mod config;
mod node;
mod peers;

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
    /// Macro benchmarks: each measures against a baseline run in the same process.
    #[command(subcommand)]
    Bench(commands::bench::Command),
    /// Deterministic multi-validator consensus simulation (virtual time, seeded faults).
    Sim(dualchain_consensus::cli::SimArgs),
    /// Run one validator: Alpha, Delta or both chains (QUIC peers, gRPC API, metrics).
    Run(Box<config::RunArgs>),
    /// The main job: N validators on this machine over QUIC, under load, with live progress and a report.
    Devnet(Box<dualchain_loadgen::cli::DevnetArgs>),
    /// Open-loop load over gRPC against a network's Delta APIs; latency to finality.
    Loadgen(Box<dualchain_loadgen::cli::LoadgenArgs>),
    /// Print a running node's status.
    Status(dualchain_loadgen::cli::StatusArgs),
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
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Sim(args) => dualchain_consensus::cli::run(args),
        Command::Run(args) => node::run(*args),
        Command::Devnet(args) => dualchain_loadgen::cli::devnet_main(*args),
        Command::Loadgen(args) => dualchain_loadgen::cli::loadgen_main(*args),
        Command::Status(args) => dualchain_loadgen::cli::status_main(args),
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
}
