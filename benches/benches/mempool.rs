//! Mempool ingestion and draining, against a plain `Mutex<VecDeque>` baseline
//! measured in the same run.
//!
//! Ingestion: 100 000 pre-built unsigned transfers from 1 000 senders (100 nonces
//! each) admitted by 1 and by 2 producer threads (each producer owns half of the
//! senders, as gRPC connections would): into a long-lived pool drained between
//! iterations (`mempool_warm`, with and without metrics registered — the steady state
//! of a node), and into a fresh pool per iteration (`mempool_cold`). The baseline pushes the same transactions into one
//! `Mutex<VecDeque>` (no dedup, bounds or fairness: the floor a real pool is compared
//! with). Building the transactions and the pool is outside the timed part.
//! Draining: `take_batch(10 000, 16 MiB)` from a pool of 100 000 pending.
//! Run: `cargo bench -p dualchain-benches --bench mempool`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dualchain_core::hash::HashDomain;
use dualchain_core::types::{
    Address, AssetId, ChainId, Output, SignedTransaction, Transaction, TxPayload,
};
use dualchain_execution::Verdict;
use dualchain_mempool::{AdmissionTime, Mempool, MempoolConfig};
use prometheus::Registry;

const TXS: usize = 100_000;
const SENDERS: u32 = 1_000;

/// `(admission time, transaction)` in admission order; `round` shifts nonces and
/// times so that successive rounds are new transactions (not duplicates).
fn workload(round: u64) -> Vec<(u64, SignedTransaction)> {
    let senders: Vec<Address> = (0..SENDERS)
        .map(|n| Address(HashDomain::Transaction.hash(&n.to_le_bytes()).0))
        .collect();
    (0..TXS)
        .map(|i| {
            let sender = senders[i % SENDERS as usize];
            let tx = Transaction {
                chain: ChainId::Delta,
                sender,
                nonce: round * (TXS / SENDERS as usize) as u64 + (i / SENDERS as usize) as u64,
                fee: 1,
                payload: TxPayload::Transfer {
                    outputs: vec![Output {
                        to: Address([7; 32]),
                        asset: AssetId::NATIVE,
                        amount: 1,
                    }],
                },
            };
            (round * TXS as u64 + i as u64, tx.unsigned())
        })
        .collect()
}

/// The workload split between `producers` threads by sender.
fn split(txs: &[(u64, SignedTransaction)], producers: usize) -> Vec<Vec<(u64, SignedTransaction)>> {
    let mut parts = vec![Vec::with_capacity(txs.len() / producers + 1); producers];
    for (i, item) in txs.iter().enumerate() {
        parts[(i % SENDERS as usize) % producers].push(item.clone());
    }
    parts
}

fn config() -> MempoolConfig {
    MempoolConfig {
        max_txs: TXS,
        ..MempoolConfig::default()
    }
}

/// Runs one closure per part on its own thread and times them together.
fn timed_parallel<T: Send>(parts: Vec<Vec<T>>, each: impl Fn(Vec<T>) + Sync) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in parts {
            let each = &each;
            scope.spawn(move || each(part));
        }
    });
    started.elapsed()
}

fn ingest(c: &mut Criterion) {
    let txs = workload(0);
    let mut group = c.benchmark_group("mempool/ingest");
    group.throughput(Throughput::Elements(TXS as u64));
    for producers in [1usize, 2] {
        group.bench_with_input(
            BenchmarkId::new("mutex_vecdeque", producers),
            &producers,
            |b, &producers| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let parts = split(&txs, producers);
                        let queue = Mutex::new(VecDeque::with_capacity(TXS));
                        total += timed_parallel(parts, |part| {
                            for (_, tx) in part {
                                queue.lock().unwrap().push_back(tx);
                            }
                        });
                        assert_eq!(black_box(queue).into_inner().unwrap().len(), TXS);
                    }
                    total
                })
            },
        );
        // Warm: one long-lived pool, as on a running node. Each iteration admits a
        // new round of transactions and then drains the pool untimed, so the pool's
        // tables keep their capacity between rounds.
        for with_metrics in [false, true] {
            let name = if with_metrics {
                "mempool_warm_metrics"
            } else {
                "mempool_warm"
            };
            group.bench_with_input(
                BenchmarkId::new(name, producers),
                &producers,
                |b, &producers| {
                    let pool = if with_metrics {
                        Mempool::with_metrics(ChainId::Delta, config(), &Registry::new())
                    } else {
                        Mempool::new(ChainId::Delta, config())
                    }
                    .expect("pool");
                    let mut round = 0;
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            round += 1;
                            let parts = split(&workload(round), producers);
                            total += timed_parallel(parts, |part| {
                                for (at, tx) in part {
                                    pool.admit(tx, Verdict::Valid, AdmissionTime(at))
                                        .expect("admitted");
                                }
                            });
                            assert_eq!(pool.len(), TXS);
                            black_box(pool.take_batch(usize::MAX, usize::MAX));
                        }
                        total
                    })
                },
            );
        }
        // Cold: a fresh pool per iteration, its memory first touched while timed.
        group.bench_with_input(
            BenchmarkId::new("mempool_cold", producers),
            &producers,
            |b, &producers| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let parts = split(&txs, producers);
                        let pool = Mempool::new(ChainId::Delta, config()).expect("pool");
                        total += timed_parallel(parts, |part| {
                            for (at, tx) in part {
                                pool.admit(tx, Verdict::Valid, AdmissionTime(at))
                                    .expect("admitted");
                            }
                        });
                        assert_eq!(pool.len(), TXS);
                        drop(black_box(pool));
                    }
                    total
                })
            },
        );
    }
    group.finish();
}

fn drain(c: &mut Criterion) {
    let txs = workload(0);
    let mut group = c.benchmark_group("mempool/take_batch");
    const BATCH: usize = 10_000;
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("10k_of_100k_pending", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let pool = Mempool::new(ChainId::Delta, config()).expect("pool");
                for (at, tx) in txs.iter().cloned() {
                    pool.admit(tx, Verdict::Valid, AdmissionTime(at))
                        .expect("admitted");
                }
                let started = Instant::now();
                let batch = pool.take_batch(BATCH, 16 << 20);
                total += started.elapsed();
                assert_eq!(batch.len(), BATCH);
                drop(black_box(batch));
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, drain);
criterion_main!(benches);
