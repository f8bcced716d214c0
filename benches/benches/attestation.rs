//! Cross-chain attestation verification on one core: a cold check (a distinct
//! certificate of 4 validators every time: 3 ML-DSA-87 verifications plus the proof)
//! and a warm one (the block's certificate already verified: proof and bookkeeping
//! only), beside one bare ML-DSA-87 verification measured in the same run as the
//! baseline. Targets (issue 15): cold ≥ 2,000/s, warm ≥ 100,000/s.
//!
//! Run: `cargo bench -p dualchain-benches --bench attestation`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair};
use dualchain_core::hash::Digest;
use dualchain_core::types::{
    Attestation, AttestationContext, AttestationId, BlockCertificate, BlockHeader,
    CertificateCache, ChainId, ValidatorSet,
};
use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};

/// The network of the fixture.
const NET: NetworkId = NetworkId(Digest([0x11; 32]));

/// State of the source chain: this many records (proof depth ≈ log2 of it).
const RECORDS: u64 = 200_000;

fn fixture() -> (Attestation, ValidatorSet, Vec<ValidatorKeypair>) {
    let keys: Vec<_> = (0..4u8)
        .map(|i| ValidatorKeypair::from_seed(&[i + 1; 32]))
        .collect();
    let set = ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1))).unwrap();
    let record = |i: u64| {
        let mut key = b"R\x01".to_vec();
        key.extend_from_slice(&i.to_le_bytes());
        (key, format!("lock {i} v1").into_bytes())
    };
    let tree = SparseMerkleTree::from_leaves((0..RECORDS).map(|i| {
        let (k, v) = record(i);
        (hash_key(&k), hash_value(&v))
    }));
    let (key, value) = record(4_242);
    let header = BlockHeader {
        chain: ChainId::Alpha,
        height: 100,
        epoch: 0,
        slot: 100,
        parent: Digest([1; 32]),
        timestamp_ms: 1_767_225_600_000,
        vertices_root: Digest([2; 32]),
        transactions_root: Digest([3; 32]),
        receipts_root: Digest([4; 32]),
        state_root: Digest(tree.root()),
        tx_count: 0,
    };
    let certificate = BlockCertificate::from_votes(
        &header,
        (0..3u16).map(|i| {
            (
                i,
                BlockCertificate::vote(&keys[usize::from(i)], &header, NET),
            )
        }),
    );
    let attestation = Attestation {
        header,
        certificate,
        proof: tree.prove(&hash_key(&key)),
        key,
        value,
    };
    (attestation, set, keys)
}

fn verify(c: &mut Criterion) {
    let (attestation, set, keys) = fixture();
    let sets = |epoch: u64| (epoch == 0).then_some(&set);
    let consumed = |_: &AttestationId| false;
    let ctx = AttestationContext {
        target: ChainId::Delta,
        validator_sets: &sets,
        newest_source_height: 100,
        freshness_blocks: 1_000,
        consumed: &consumed,
        network: NET,
    };
    attestation.verify(&ctx, None).unwrap();
    let sig = keys[0].sign(
        SigningDomain::BlockVote.on(NET),
        b"baseline message of 32 bytes....",
    );

    let mut g = c.benchmark_group("attestation/verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: one ML-DSA-87 verification", |b| {
        b.iter(|| {
            keys[0].public().verify(
                SigningDomain::BlockVote.on(NET),
                b"baseline message of 32 bytes....",
                &sig,
            )
        })
    });
    g.bench_function("cold: certificate of 4 validators + proof", |b| {
        b.iter(|| attestation.verify(&ctx, None).unwrap())
    });
    let cache = CertificateCache::new(1024);
    attestation.verify(&ctx, Some(&cache)).unwrap();
    g.bench_function("warm: certificate cached, proof only", |b| {
        b.iter(|| attestation.verify(&ctx, Some(&cache)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
