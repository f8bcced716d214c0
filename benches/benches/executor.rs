//! Transaction execution: sequential reference vs parallel executor per block size.
//!
//! Blocks of 10, 50, 100, 500 and 10 000 unsigned single-output transfers
//! (benchmark mode, enabled by the generated genesis) at conflict 0.0 and 0.5, both
//! executors on the same input in the same run, on a local rayon pool of 2 threads.
//! The state cache is warm (genesis loaded), and each measured iteration executes
//! the whole block; the Merkle update is measured separately (`merkle/...`).
//! Run: `cargo bench -p dualchain-benches --bench executor`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dualchain_core::types::{ChainId, Genesis};
use dualchain_execution::workload::{GenesisState, Workload, WorkloadSpec};
use dualchain_execution::{ExecutionMode, Executor, ExecutorConfig, SignatureVerifier};

const SIZES: [usize; 5] = [10, 50, 100, 500, 10_000];
const THREADS: usize = 2;

fn executor(mode: ExecutionMode, pool: &Arc<rayon::ThreadPool>, genesis: &Genesis) -> Executor {
    let config = ExecutorConfig {
        mode,
        ..ExecutorConfig::default()
    };
    Executor::new(
        ChainId::Delta,
        config,
        Arc::new(SignatureVerifier::for_genesis(genesis)),
    )
    .expect("executor")
    .with_thread_pool(pool.clone())
}

fn bench_executor(c: &mut Criterion) {
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(THREADS)
            .build()
            .expect("thread pool"),
    );
    for conflict in [0.0, 0.5] {
        let mut group = c.benchmark_group(format!("execute_block/conflict_{conflict}"));
        for &txs in &SIZES {
            let workload = Workload::generate(&WorkloadSpec {
                txs,
                accounts: txs * 2 + 1,
                conflict,
                seed: 1,
                signed: false,
            });
            let state = GenesisState::build(&workload.genesis).expect("genesis");
            let sequential = executor(ExecutionMode::Sequential, &pool, &workload.genesis);
            let parallel = executor(ExecutionMode::Parallel, &pool, &workload.genesis);
            let verdicts = sequential.verdicts(&workload.txs);
            group.throughput(Throughput::Elements(txs as u64));
            group.bench_with_input(BenchmarkId::new("sequential", txs), &txs, |b, _| {
                b.iter(|| {
                    sequential
                        .execute_sequential(&state.cache, &workload.txs, &verdicts)
                        .expect("execute")
                })
            });
            group.bench_with_input(BenchmarkId::new("parallel", txs), &txs, |b, _| {
                // The executor hands its chunks to its own pool; the calling thread
                // plans and merges.
                b.iter(|| {
                    parallel
                        .execute_parallel(&state.cache, &workload.txs, &verdicts)
                        .expect("execute")
                })
            });
            if txs == 10_000 {
                let outcome = parallel
                    .execute_parallel(&state.cache, &workload.txs, &verdicts)
                    .expect("execute");
                group.bench_with_input(BenchmarkId::new("merkle_update", txs), &txs, |b, _| {
                    b.iter_batched(
                        || state.commitment.clone(),
                        |mut commitment| pool.install(|| commitment.apply(&outcome)),
                        criterion::BatchSize::LargeInput,
                    )
                });
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_executor
}
criterion_main!(benches);
