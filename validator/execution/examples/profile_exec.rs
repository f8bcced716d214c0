//! Where the time of one block goes, phase by phase, on one thread:
//! `cargo run --release -p dualchain-execution --example profile_exec -- [txs] [conflict]`

use std::sync::Arc;
use std::time::Instant;

use dualchain_core::types::ChainId;
use dualchain_execution::workload::{GenesisState, Workload, WorkloadSpec};
use dualchain_execution::workset::BlockAccess;
use dualchain_execution::{ExecutionMode, Executor, ExecutorConfig, SignatureVerifier};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let txs: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let conflict: f64 = args.next().map_or(Ok(0.0), |a| a.parse())?;
    let workload = Workload::generate(&WorkloadSpec {
        txs,
        accounts: txs * 2 + 1,
        conflict,
        seed: 1,
        signed: false,
    });
    let state = GenesisState::build(&workload.genesis)?;
    let executor = Executor::new(
        ChainId::Delta,
        ExecutorConfig {
            mode: ExecutionMode::Sequential,
            ..ExecutorConfig::default()
        },
        Arc::new(SignatureVerifier::for_genesis(&workload.genesis)),
    )?;
    let verdicts = executor.verdicts(&workload.txs);
    let best = |f: &mut dyn FnMut()| {
        (0..20)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::MAX, f64::min)
    };
    let access = best(&mut || {
        std::hint::black_box(BlockAccess::build(&workload.txs));
    });
    let mut outcome = None;
    let execute = best(&mut || {
        outcome = Some(
            executor
                .execute_sequential(&state.cache, &workload.txs, &verdicts)
                .unwrap(),
        )
    });
    let outcome = outcome.unwrap();
    let mut leaves = Vec::new();
    let hashing = best(&mut || leaves = outcome.leaf_updates());
    let tree = state.commitment.tree().clone();
    let clone = best(&mut || {
        std::hint::black_box(tree.clone());
    });
    let update = best(&mut || {
        let mut t = tree.clone();
        t.update_batch(leaves.clone());
    }) - clone;
    let access_sets = BlockAccess::build(&workload.txs);
    let plan = best(&mut || {
        std::hint::black_box(dualchain_execution::schedule::plan(&access_sets, 8, 0.9));
    });
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(2).build()?);
    let parallel = Executor::new(
        ChainId::Delta,
        ExecutorConfig::default(),
        Arc::new(SignatureVerifier::for_genesis(&workload.genesis)),
    )?
    .with_thread_pool(pool);
    let par = best(&mut || {
        std::hint::black_box(
            parallel
                .execute_parallel(&state.cache, &workload.txs, &verdicts)
                .unwrap(),
        );
    });
    println!("plan {plan:.2} ms, parallel execute (2 threads) {par:.2} ms");
    let changes = best(&mut || {
        std::hint::black_box(outcome.state_changes());
    });
    println!(
        "{txs} txs, conflict {conflict}: access sets {access:.2} ms, execute (incl. access) {execute:.2} ms, \
         leaf hashing {hashing:.2} ms ({} leaves), tree update {update:.2} ms (tree clone {clone:.2} ms), \
         state_changes bytes {changes:.2} ms",
        leaves.len()
    );
    Ok(())
}
