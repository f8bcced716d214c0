//! Release-mode driver of `dualchain bench net` (the node binary wires the same
//! function): `cargo run -p dualchain-net --release --example bench_net -- --json`.

use clap::Parser;
use dualchain_net::cli::{BenchNetArgs, run_bench_net};

#[derive(Parser)]
#[command(about = "Loopback transport benchmark next to a raw quinn baseline")]
struct Cli {
    #[command(flatten)]
    args: BenchNetArgs,
}

fn main() -> anyhow::Result<()> {
    run_bench_net(Cli::parse().args)
}
