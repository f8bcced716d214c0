//! RocksDB: commit of one block with 10k receipts as a single atomic batch.
//!
//! Target: <= 20 ms per block. Both sync policies are measured in the same run.
//! Run: `cargo bench -p dualchain-benches --bench storage`.

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use dualchain_core::encoding::Canonical;
use dualchain_core::hash::Digest;
use dualchain_core::types::{FailureReason, Receipt, ReceiptStatus};
use dualchain_storage::{Column, KvEngine, SyncPolicy, WriteBatch, keys};
use dualchain_store::{RocksEngine, StoreOptions};

const RECEIPTS: u32 = 10_000;

fn block_batch(height: u64) -> WriteBatch {
    let mut batch = WriteBatch::with_capacity(RECEIPTS as usize * 2 + 2);
    for i in 0..RECEIPTS {
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&height.to_le_bytes());
        digest[8..12].copy_from_slice(&i.to_le_bytes());
        let receipt = Receipt {
            tx_digest: Digest(digest),
            status: if i % 10 == 0 {
                ReceiptStatus::Failed(FailureReason::BadNonce {
                    expected: 1,
                    got: 2,
                })
            } else {
                ReceiptStatus::Success
            },
            fee_charged: 10,
        };
        batch.put(
            Column::Receipts,
            keys::receipt_key(height, i).to_vec(),
            receipt.to_canonical_bytes(),
        );
        // Each transfer touches two accounts: sender and recipient.
        batch.put(Column::State, digest[..12].to_vec(), [1u8; 40].to_vec());
    }
    batch.put(
        Column::Blocks,
        keys::height_key(height).to_vec(),
        vec![0u8; 64 * 1024],
    );
    batch.put(
        Column::Meta,
        b"head".to_vec(),
        height.to_le_bytes().to_vec(),
    );
    batch
}

fn commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("rocksdb/commit-block-10k-receipts");
    g.sample_size(20);
    for (name, sync) in [
        ("fsync every batch", SyncPolicy::EveryBatch),
        ("os-buffered", SyncPolicy::OsBuffered),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(
            dir.path(),
            &StoreOptions {
                sync,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let mut height = 0u64;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || {
                    height += 1;
                    block_batch(height)
                },
                |batch| engine.write(batch).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
