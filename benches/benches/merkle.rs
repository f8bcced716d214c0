//! Sparse Merkle tree: batch updates of 10k and 100k keys in a tree of 1M keys.
//!
//! Throughput is reported in touched keys per second (target: >= 1M/s on 2 cores).
//! Run: `cargo bench -p dualchain-benches --bench merkle`.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dualchain_merkle::{Hash32, SparseMerkleTree};
use rand::{RngCore, SeedableRng};

fn random_leaves(n: usize, seed: u64) -> Vec<(Hash32, Hash32)> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (mut k, mut v) = ([0u8; 32], [0u8; 32]);
            rng.fill_bytes(&mut k);
            rng.fill_bytes(&mut v);
            (k, v)
        })
        .collect()
}

fn updates(c: &mut Criterion) {
    let base_leaves = random_leaves(1_000_000, 1);
    let base = SparseMerkleTree::from_leaves(base_leaves.iter().copied());
    let mut g = c.benchmark_group("smt/update-in-1M");
    g.sample_size(10);
    for n in [10_000usize, 100_000] {
        // Half the batch overwrites existing keys, half inserts new ones.
        let mut batch: Vec<(Hash32, Option<Hash32>)> = base_leaves[..n / 2]
            .iter()
            .map(|(k, _)| (*k, Some([9u8; 32])))
            .collect();
        batch.extend(
            random_leaves(n - n / 2, 2)
                .into_iter()
                .map(|(k, v)| (k, Some(v))),
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &batch, |b, batch| {
            b.iter_batched(
                || (base.clone(), batch.clone()),
                // Return the tree so criterion drops it outside the measurement: freeing
                // a 1M-node tree costs more than a 10k-key update.
                |(mut tree, batch)| {
                    let root = tree.update_batch(batch);
                    (tree, root)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, updates);
criterion_main!(benches);
