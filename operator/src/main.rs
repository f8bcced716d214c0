//! `dualchain-operator`: see `operator/README.md`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "dualchain-operator", version, about)]
struct Cli {
    #[command(flatten)]
    args: dualchain_operator::cli::Args,
}

fn main() -> anyhow::Result<()> {
    dualchain_operator::cli::run(Cli::parse().args)
}
