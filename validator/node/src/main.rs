//! `dualchain`: the validator binary.
//!
//! One binary, one subcommand per job. This build has keys, genesis, snapshots, the
//! consensus simulator (`sim`) and the macro benchmarks (`bench exec|net|mempool`);
//! `run`, `devnet`, `loadgen` and `status` arrive with the node work.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod commands;

/// dualchain: a post-quantum dual-chain (Alpha / Delta) validator network.
#[derive(Parser, Debug)]
#[command(name = "dualchain", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DUALCHAIN_LOG_FORMAT")]
    log_format: LogFormat,

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
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Genesis(args) => commands::genesis::run(args),
        Command::Snapshot(cmd) => commands::snapshot::run(cmd),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Sim(args) => dualchain_consensus::cli::run(args),
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
