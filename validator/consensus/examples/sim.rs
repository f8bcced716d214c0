//! Runs `dualchain sim` from this crate (the node binary wires the same arguments):
//! `cargo run --release -p dualchain-consensus --example sim -- --validators 100 --seeds 5 --json`

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sim",
    about = "Deterministic consensus simulation (DAG-BFT or Avalanche)"
)]
struct Cli {
    #[command(flatten)]
    sim: dualchain_consensus::cli::SimArgs,
}

fn main() -> anyhow::Result<()> {
    dualchain_consensus::cli::run(Cli::parse().sim)
}
