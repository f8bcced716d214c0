//! Signatures and hashing: ML-DSA-87 (validators) and ML-DSA-44 (accounts) through
//! dualchain's wrapper, raw RustCrypto `ml-dsa`, and the independent pure-Rust
//! `fips204` crate side by side in the same run; BLAKE3 on small messages.
//!
//! Run: `cargo bench -p dualchain-benches --bench crypto`. Compare the `ml-dsa` and
//! `fips204` lines of one group: they run on the same machine, back to back.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dualchain_core::crypto::{AccountKeypair, SigningDomain, ValidatorKeypair};
use dualchain_core::hash::HashDomain;
use fips204::traits::{KeyGen, Signer, Verifier};

const MESSAGE: &[u8; 32] = b"a 32-byte digest of some object.";
const CONTEXT: &[u8] = b"dualchain/v1/vertex";

fn ml_dsa_87(c: &mut Criterion) {
    let ours = ValidatorKeypair::from_seed(&[7; 32]);
    let our_sig = ours.sign(SigningDomain::Vertex, MESSAGE);
    ours.public()
        .verify(SigningDomain::Vertex, MESSAGE, &our_sig)
        .unwrap();

    let raw = ml_dsa::SigningKey::<ml_dsa::MlDsa87>::from_seed(&[7u8; 32].into());
    let raw_vk = ml_dsa::signature::Keypair::verifying_key(&raw);
    let raw_sig = raw
        .expanded_key()
        .sign_deterministic(MESSAGE, CONTEXT)
        .unwrap();

    let (f_pk, f_sk) = fips204::ml_dsa_87::KG::try_keygen().unwrap();
    let f_sig = f_sk.try_sign(MESSAGE, CONTEXT).unwrap();
    assert!(f_pk.verify(MESSAGE, &f_sig, CONTEXT));

    let mut g = c.benchmark_group("ml-dsa-87/verify");
    g.bench_function("dualchain (ml-dsa)", |b| {
        b.iter(|| {
            ours.public()
                .verify(SigningDomain::Vertex, MESSAGE, &our_sig)
        })
    });
    g.bench_function("ml-dsa raw", |b| {
        b.iter(|| raw_vk.verify_with_context(MESSAGE, CONTEXT, &raw_sig))
    });
    g.bench_function("fips204", |b| {
        b.iter(|| f_pk.verify(MESSAGE, &f_sig, CONTEXT))
    });
    g.finish();

    let mut g = c.benchmark_group("ml-dsa-87/sign");
    g.bench_function("dualchain (ml-dsa, deterministic)", |b| {
        b.iter(|| ours.sign(SigningDomain::Vertex, MESSAGE))
    });
    g.bench_function("fips204 (hedged)", |b| {
        b.iter(|| f_sk.try_sign(MESSAGE, CONTEXT).unwrap())
    });
    g.finish();
}

fn ml_dsa_44(c: &mut Criterion) {
    let ours = AccountKeypair::from_seed(&[4; 32]);
    let our_sig = ours.sign(SigningDomain::Transaction, MESSAGE);
    let (f_pk, f_sk) = fips204::ml_dsa_44::KG::try_keygen().unwrap();
    let f_sig = f_sk.try_sign(MESSAGE, CONTEXT).unwrap();

    let mut g = c.benchmark_group("ml-dsa-44/verify");
    g.bench_function("dualchain (ml-dsa)", |b| {
        b.iter(|| {
            ours.public()
                .verify(SigningDomain::Transaction, MESSAGE, &our_sig)
        })
    });
    g.bench_function("fips204", |b| {
        b.iter(|| f_pk.verify(MESSAGE, &f_sig, CONTEXT))
    });
    g.finish();

    let mut g = c.benchmark_group("ml-dsa-44/sign");
    g.bench_function("dualchain (ml-dsa, deterministic)", |b| {
        b.iter(|| ours.sign(SigningDomain::Transaction, MESSAGE))
    });
    g.bench_function("fips204 (hedged)", |b| {
        b.iter(|| f_sk.try_sign(MESSAGE, CONTEXT).unwrap())
    });
    g.finish();
}

fn blake3_small(c: &mut Criterion) {
    let mut g = c.benchmark_group("blake3/small");
    for size in [32usize, 64, 256, 1024] {
        let data = vec![0x5a; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("domain-separated", size), &data, |b, d| {
            b.iter(|| HashDomain::Transaction.hash(d))
        });
        g.bench_with_input(
            BenchmarkId::new("plain blake3::hash", size),
            &data,
            |b, d| b.iter(|| blake3::hash(d)),
        );
    }
    g.finish();
}

criterion_group!(benches, ml_dsa_87, ml_dsa_44, blake3_small);
criterion_main!(benches);
