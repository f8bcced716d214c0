//! Signatures and hashing: every ML-DSA implementation available as a crate, side by
//! side in one run, for ML-DSA-87 (validators) and ML-DSA-44 (accounts):
//!
//! - `dualchain`: the crypto seam as the node uses it (AWS-LC verifies, libcrux signs);
//! - `aws-lc-rs`: AWS-LC's safe wrapper (no context string, so it cannot verify our
//!   signatures; it shows what the seam's FFI costs on top of AWS-LC);
//! - `libcrux-ml-dsa`, RustCrypto `ml-dsa` (with its expanded key cached, as the node
//!   did before) and `fips204`.
//!
//! Run: `cargo bench -p dualchain-benches --bench crypto`. The target (issue 20) is a
//! ratio within this run: `dualchain` verify within 1.1x of the fastest line of its group.

use aws_lc_rs::signature::{
    self as lc, KeyPair as _, PqdsaKeyPair, UnparsedPublicKey, VerificationAlgorithm as _,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dualchain_core::crypto::{AccountScheme, ValidatorScheme};
use dualchain_core::crypto::{Keypair, NetworkId, Scheme, SigningContext, SigningDomain};
use dualchain_core::hash::{Digest, HashDomain};
use fips204::traits::{SerDes, Signer as _, Verifier as _};

const MESSAGE: &[u8; 32] = b"a 32-byte digest of some object.";
const DOMAIN: SigningContext = SigningDomain::Vertex.on(NetworkId(Digest([0x11; 32])));
const SEED: [u8; 32] = [7; 32];

/// One parameter set's implementations, each as a (name, verify, sign) pair of closures.
macro_rules! parameter_set {
    ($c:expr, $label:literal, $scheme:ty, $rc:ty, $crux:ident, $fips:ident, $lc_verify:expr, $lc_sign:expr) => {{
        let context = DOMAIN.context_string();
        let context = context.as_bytes();
        let ours = Keypair::<$scheme>::from_seed(&SEED);
        let our_sig = ours.sign(DOMAIN, MESSAGE);
        let public = ours.public().as_bytes().to_vec();

        let raw = ml_dsa::SigningKey::<$rc>::from_seed(&SEED.into());
        let raw_vk = ml_dsa::signature::Keypair::verifying_key(&raw);
        let raw_sig = raw
            .expanded_key()
            .sign_deterministic(MESSAGE, context)
            .unwrap();
        assert_eq!(raw_sig.encode().as_slice(), our_sig.as_bytes());

        let crux = libcrux_ml_dsa::$crux::generate_key_pair(SEED);
        let crux_sig =
            libcrux_ml_dsa::$crux::sign(&crux.signing_key, MESSAGE, context, [0; 32]).unwrap();
        assert_eq!(crux_sig.as_slice(), our_sig.as_bytes());

        let fips_pk =
            fips204::$fips::PublicKey::try_from_bytes(public.clone().try_into().unwrap()).unwrap();
        let fips_sig: [u8; fips204::$fips::SIG_LEN] = our_sig.as_bytes().try_into().unwrap();
        assert!(fips_pk.verify(MESSAGE, &fips_sig, context));
        let fips_sk = fips204::$fips::PrivateKey::try_from_bytes(
            crux.signing_key.as_slice().try_into().unwrap(),
        )
        .unwrap();

        let lc_pair = PqdsaKeyPair::from_seed($lc_sign, &SEED).unwrap();
        assert_eq!(lc_pair.public_key().as_ref(), &public[..]);
        let mut lc_sig = vec![0; <$scheme as Scheme>::SIGNATURE_LEN];
        lc_pair.sign(MESSAGE, &mut lc_sig).unwrap();
        let lc_key = UnparsedPublicKey::new($lc_verify, public.clone());
        lc_key.verify(MESSAGE, &lc_sig).unwrap();

        let mut g = $c.benchmark_group(concat!($label, "/verify"));
        g.bench_function("dualchain (aws-lc, context)", |b| {
            b.iter(|| ours.public().verify(DOMAIN, MESSAGE, &our_sig).unwrap())
        });
        g.bench_function("aws-lc-rs (no context, key parsed each time)", |b| {
            b.iter(|| lc_key.verify(MESSAGE, &lc_sig).unwrap())
        });
        g.bench_function("aws-lc-rs verify_sig (no context)", |b| {
            b.iter(|| $lc_verify.verify_sig(&public, MESSAGE, &lc_sig).unwrap())
        });
        g.bench_function("libcrux-ml-dsa", |b| {
            b.iter(|| {
                libcrux_ml_dsa::$crux::verify(&crux.verification_key, MESSAGE, context, &crux_sig)
                    .unwrap()
            })
        });
        g.bench_function("ml-dsa (expanded key cached)", |b| {
            b.iter(|| assert!(raw_vk.verify_with_context(MESSAGE, context, &raw_sig)))
        });
        g.bench_function("fips204", |b| {
            b.iter(|| assert!(fips_pk.verify(MESSAGE, &fips_sig, context)))
        });
        g.finish();

        let mut g = $c.benchmark_group(concat!($label, "/sign"));
        g.bench_function("dualchain (libcrux, deterministic)", |b| {
            b.iter(|| ours.sign(DOMAIN, MESSAGE))
        });
        g.bench_function("aws-lc-rs (hedged, no context)", |b| {
            b.iter(|| lc_pair.sign(MESSAGE, &mut lc_sig).unwrap())
        });
        g.bench_function("ml-dsa (deterministic)", |b| {
            b.iter(|| {
                raw.expanded_key()
                    .sign_deterministic(MESSAGE, context)
                    .unwrap()
            })
        });
        g.bench_function("fips204 (hedged)", |b| {
            b.iter(|| fips_sk.try_sign(MESSAGE, context).unwrap())
        });
        g.finish();
    }};
}

fn ml_dsa_87(c: &mut Criterion) {
    parameter_set!(
        c,
        "ml-dsa-87",
        ValidatorScheme,
        ml_dsa::MlDsa87,
        ml_dsa_87,
        ml_dsa_87,
        &lc::ML_DSA_87,
        &lc::ML_DSA_87_SIGNING
    );
}

fn ml_dsa_44(c: &mut Criterion) {
    parameter_set!(
        c,
        "ml-dsa-44",
        AccountScheme,
        ml_dsa::MlDsa44,
        ml_dsa_44,
        ml_dsa_44,
        &lc::ML_DSA_44,
        &lc::ML_DSA_44_SIGNING
    );
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
