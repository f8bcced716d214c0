//! `dualchain bench exec` without the node binary:
//! `cargo run --release -p dualchain-execution --example bench_exec -- --txs 10000 --conflict 0.0 --threads 2 --json`

use clap::Parser;
use dualchain_execution::cli::{BenchExecArgs, run};

#[derive(Parser)]
#[command(about = "Sequential vs parallel transaction execution on one seeded workload")]
struct Cli {
    #[command(flatten)]
    args: BenchExecArgs,
}

fn main() -> anyhow::Result<()> {
    run(Cli::parse().args)
}
