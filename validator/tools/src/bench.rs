//! `dualchain bench ...`: macro benchmarks that measure a component against a
//! baseline run in the same process on the same input, so the figures are ratios
//! that mean something on a shared machine; `overload` instead judges a local
//! network's goodput under overload against its own peak in the same run, and
//! `byzantine` a network's goodput under a flooding validator against the same
//! network without it, and `engines` the same network on each consensus engine.

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sequential vs parallel transaction execution on one seeded workload.
    Exec(dualchain_execution::cli::BenchExecArgs),
    /// QUIC transport throughput and request latency against raw quinn on loopback.
    Net(dualchain_net::cli::BenchNetArgs),
    /// Mempool ingestion rate against a plain Mutex<VecDeque> baseline.
    Mempool(dualchain_mempool::cli::Args),
    /// Signed load at 1×, 2×, 4× the saturation load on a local network: goodput and
    /// finality p95 per step; fails if goodput at 2× and above is below 90 % of the peak
    /// (`--min-goodput-ratio`).
    Overload(Box<dualchain_loadgen::overload::OverloadArgs>),
    /// One validator of a local network floods the others at line rate (signed orphan
    /// vertices and sync requests; garbage on request): Delta goodput and honest memory against the
    /// same network without the attack; fails below 80 % of the clean goodput
    /// (`--min-throughput-ratio`) or above the memory budget.
    Byzantine(Box<crate::byzantine::ByzantineArgs>),
    /// The same local devnet on DAG-BFT, then on Avalanche: committed TPS, finality,
    /// vertices finalized/s, messages per vertex and CPU side by side, Avalanche
    /// against its performance targets, and a default engine per chain.
    Engines(Box<crate::engines::EnginesArgs>),
    /// One validator's whole per-transaction path in this process (decode, signature,
    /// mempool, vertex, QUIC transport, execution, commit to RocksDB, certificate):
    /// CPU-µs per transaction per stage, the whole measured at once beside them, and
    /// the throughput ceiling that implies for N validators on this machine.
    Pipeline(crate::pipeline::PipelineArgs),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Exec(args) => dualchain_execution::cli::run(args),
        Command::Net(args) => dualchain_net::cli::run_bench_net(args),
        Command::Mempool(args) => dualchain_mempool::cli::run(args),
        Command::Overload(args) => dualchain_loadgen::overload::overload_main(*args),
        Command::Byzantine(args) => crate::byzantine::main(*args),
        Command::Engines(args) => crate::engines::main(*args),
        Command::Pipeline(args) => crate::pipeline::main(args),
    }
}
