//! CPU time vs wall time of repeated block execution (how much of a slowdown is
//! contention inside the process rather than a busy machine):
//! `cargo run --release -p dualchain-execution --example cpu_exec -- [txs] [conflict] [threads] [seq|par]`

use std::sync::Arc;
use std::time::Instant;

use dualchain_core::types::ChainId;
use dualchain_execution::workload::{GenesisState, Workload, WorkloadSpec};
use dualchain_execution::{Executor, ExecutorConfig, SignatureVerifier};

fn cpu_seconds() -> f64 {
    // utime + stime of the whole process, from /proc (clock ticks of 10 ms).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let txs: usize = a.first().map_or(Ok(10_000), |s| s.parse())?;
    let conflict: f64 = a.get(1).map_or(Ok(0.0), |s| s.parse())?;
    let threads: usize = a.get(2).map_or(Ok(2), |s| s.parse())?;
    let parallel = a.get(3).is_none_or(|s| s == "par");
    let workload = Workload::generate(&WorkloadSpec {
        txs,
        accounts: txs * 2 + 1,
        conflict,
        seed: 1,
        signed: false,
    });
    let state = GenesisState::build(&workload.genesis)?;
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?,
    );
    let exec = Executor::new(
        ChainId::Delta,
        ExecutorConfig::default(),
        Arc::new(SignatureVerifier::for_genesis(&workload.genesis)),
    )?
    .with_thread_pool(pool);
    let verdicts = exec.verdicts(&workload.txs);
    let runs = 200;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..runs {
        let outcome = if parallel {
            exec.execute_parallel(&state.cache, &workload.txs, &verdicts)?
        } else {
            exec.execute_sequential(&state.cache, &workload.txs, &verdicts)?
        };
        std::hint::black_box(outcome);
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    println!(
        "{} {txs} txs conflict {conflict} threads {threads}: wall {:.2} ms/block, cpu {:.2} ms/block",
        if parallel { "parallel" } else { "sequential" },
        wall * 1e3 / runs as f64,
        cpu * 1e3 / runs as f64
    );
    Ok(())
}
