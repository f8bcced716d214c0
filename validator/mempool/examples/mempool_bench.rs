//! Runs the `bench mempool` measurement standalone (before it is wired into the
//! `dualchain` binary): `cargo run --release -p dualchain-mempool --example mempool_bench -- --json`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: dualchain_mempool::cli::Args,
}

fn main() -> anyhow::Result<()> {
    dualchain_mempool::cli::run(Cli::parse().args)
}
