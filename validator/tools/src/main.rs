//! `dualchain-tools`: the client side of dualchain.
//!
//! `devnet` (the main job), `loadgen`, `status`, the macro benchmarks (`bench
//! exec|net|mempool|overload|byzantine`), the deterministic simulator (`sim`) and the cross-chain
//! flow by hand (`sax`, `gov`). The validator binary
//! `dualchain` forwards these commands here unchanged, so `dualchain devnet …` and
//! `dualchain-tools devnet …` are the same command; keeping them in their own binary
//! keeps kube, k8s-openapi and the plotting stack out of the validator.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod bench;
mod byzantine;
mod engines;
mod flood;
mod pipeline;

/// dualchain-tools: devnet, load generation, status, benchmarks and simulation for dualchain networks.
#[derive(Parser, Debug)]
#[command(name = "dualchain-tools", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "DUALCHAIN_LOG_FORMAT",
        default_value = "text"
    )]
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
    /// The main job: N validators on this machine over QUIC, under load, with live progress and a report.
    Devnet(Box<dualchain_loadgen::cli::DevnetArgs>),
    /// Open-loop load over gRPC against a network's Delta APIs; latency to finality.
    Loadgen(Box<dualchain_loadgen::cli::LoadgenArgs>),
    /// Print a running node's status.
    Status(dualchain_loadgen::cli::StatusArgs),
    /// Macro benchmarks: each measures against a baseline run in the same process.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Deterministic simulation in virtual time with seeded faults: the consensus engines (`--mode consensus`) or whole validators (`--mode node`).
    Sim(Box<dualchain_sim::cli::SimArgs>),
    /// sAX on a running network: lock on Alpha (stake on Delta), unlock, show a lock's records.
    #[command(subcommand)]
    Sax(dualchain_loadgen::flow_cli::SaxCommand),
    /// Governance on a running network: propose, vote, finalize on Delta (executed on Alpha), show.
    #[command(subcommand)]
    Gov(dualchain_loadgen::flow_cli::GovCommand),
    /// A validator's own set changes on a running network: join or leave at the next epoch boundary.
    #[command(subcommand)]
    Validator(dualchain_loadgen::flow_cli::ValidatorCommand),
}

/// `RUST_LOG` filters; `info` otherwise.
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
        Command::Devnet(args) => pipeline::devnet_with_ceiling(*args),
        Command::Loadgen(args) => dualchain_loadgen::cli::loadgen_main(*args),
        Command::Status(args) => dualchain_loadgen::cli::status_main(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Sim(args) => dualchain_sim::cli::run_cli(*args),
        Command::Sax(command) => dualchain_loadgen::flow_cli::sax_main(command),
        Command::Gov(command) => dualchain_loadgen::flow_cli::gov_main(command),
        Command::Validator(command) => dualchain_loadgen::flow_cli::validator_main(command),
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
    fn every_command_is_there() {
        let cli = Cli::command();
        let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(
            names,
            [
                "devnet",
                "loadgen",
                "status",
                "bench",
                "sim",
                "sax",
                "gov",
                "validator"
            ]
        );
        let bench = cli.find_subcommand("bench").unwrap();
        let kinds: Vec<&str> = bench.get_subcommands().map(|c| c.get_name()).collect();
        assert_eq!(
            kinds,
            [
                "exec",
                "net",
                "mempool",
                "overload",
                "byzantine",
                "engines",
                "pipeline"
            ]
        );
    }
}
