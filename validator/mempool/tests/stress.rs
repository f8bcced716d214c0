//! Many producers far outrunning the proposers, for about two seconds: every
//! submission is either admitted or explicitly refused, the bounds hold at every
//! observation, no transaction is drained twice, and a flooding sender does not
//! starve the others.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use dualchain_core::hash::Digest;
use dualchain_mempool::{MempoolConfig, RejectReason};

const PRODUCERS: u32 = 4;
const CONSUMERS: usize = 2;
const RUN: Duration = Duration::from_millis(1_500);
/// Sender number of the flooder; the well-behaved senders are below it.
const FLOODER: u32 = 1_000_000;
const HONEST_SENDERS: u32 = 64;

#[test]
fn producers_outrunning_consumers_get_explicit_rejections_and_bounds_hold() {
    let config = MempoolConfig {
        max_txs: 5_000,
        max_bytes: 5_000 * 120,
        max_attest_tx_bytes: 5_000 * 120,
        max_per_sender: 1_000,
        recent_capacity: 1 << 20,
        shards: 64,
        ..MempoolConfig::default()
    };
    let pool = Arc::new(pool(config.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Arc::new(AtomicU64::new(0));
    let submitted = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(Mutex::new([0usize; RejectReason::ALL.len()]));
    let drained: Arc<Mutex<Vec<Digest>>> = Arc::default();
    let honest_drained = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let mut handles = Vec::new();
    for producer in 0..PRODUCERS {
        let (pool, stop, clock) = (pool.clone(), stop.clone(), clock.clone());
        let (submitted, admitted, rejected) =
            (submitted.clone(), admitted.clone(), rejected.clone());
        handles.push(thread::spawn(move || {
            let mut local_rejected = [0usize; RejectReason::ALL.len()];
            let mut nonce = vec![0u64; HONEST_SENDERS as usize];
            // Honest senders are split between producers 1.. by sender number.
            let own: Vec<u32> = (0..HONEST_SENDERS)
                .filter(|s| producer > 0 && s % (PRODUCERS - 1) == producer - 1)
                .collect();
            let mut flood_nonce = 0u64;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                // Producer 0 is the flooder: every submission from one sender.
                // A refused transaction is retried with the same nonce, as a client
                // would, so lanes stay gap-free.
                let (from, slot) = if producer == 0 {
                    (FLOODER, &mut flood_nonce)
                } else {
                    let s = own[i as usize % own.len()];
                    (s, &mut nonce[s as usize])
                };
                let tx = transfer(from, *slot);
                let at = clock.fetch_add(1, Ordering::Relaxed);
                submitted.fetch_add(1, Ordering::Relaxed);
                match admit(&pool, tx, at) {
                    Ok(_) => {
                        *slot += 1;
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(rejection) => local_rejected[rejection.reason().index()] += 1,
                }
            }
            let mut total = rejected.lock().unwrap();
            for (t, l) in total.iter_mut().zip(local_rejected) {
                *t += l;
            }
        }));
    }
    for _ in 0..CONSUMERS {
        let (pool, stop, drained, honest_drained) = (
            pool.clone(),
            stop.clone(),
            drained.clone(),
            honest_drained.clone(),
        );
        handles.push(thread::spawn(move || {
            let flooder = sender(FLOODER);
            while !stop.load(Ordering::Relaxed) {
                let batch = pool.take_batch(1_000, 200_000);
                let honest = batch
                    .envelopes
                    .iter()
                    .filter(|e| e.tx.tx().sender != flooder)
                    .count();
                honest_drained.fetch_add(honest, Ordering::Relaxed);
                let txs = batch.into_transactions();
                pool.remove_committed(&txs);
                drained
                    .lock()
                    .unwrap()
                    .extend(txs.iter().map(|t| t.digest()));
                thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    // The observer checks the bounds while everything runs.
    let mut observations = 0;
    while started.elapsed() < RUN {
        assert!(pool.len() <= config.max_txs, "count bound exceeded");
        assert!(pool.bytes() <= config.max_bytes, "byte bound exceeded");
        observations += 1;
        thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.join().expect("no thread panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();

    let drained = drained.lock().unwrap();
    let unique: HashSet<_> = drained.iter().collect();
    assert_eq!(
        unique.len(),
        drained.len(),
        "a transaction was drained twice"
    );
    let (submitted, admitted) = (
        submitted.load(Ordering::Relaxed),
        admitted.load(Ordering::Relaxed),
    );
    let rejected = *rejected.lock().unwrap();
    assert_eq!(
        submitted,
        admitted + rejected.iter().sum::<usize>(),
        "a submission vanished"
    );
    assert_eq!(
        admitted,
        drained.len() + pool.len(),
        "admitted = drained + pending"
    );
    assert!(
        rejected[RejectReason::Full.index()] > 0 && rejected[RejectReason::SenderCap.index()] > 0,
        "producers outran consumers: the pool and the flooder's lane must have filled: {rejected:?}"
    );
    assert!(
        honest_drained.load(Ordering::Relaxed) > drained.len() / 4,
        "the flooder starved honest senders: {} of {}",
        honest_drained.load(Ordering::Relaxed),
        drained.len()
    );
    assert!(pool.pending_of(&sender(FLOODER)) <= config.max_per_sender);
    assert!(observations > 100);
    eprintln!(
        "offered {:.0} tx/s, admitted {:.0} tx/s, drained {:.0} tx/s, rejections {rejected:?}",
        submitted as f64 / elapsed,
        admitted as f64 / elapsed,
        drained.len() as f64 / elapsed
    );
}
