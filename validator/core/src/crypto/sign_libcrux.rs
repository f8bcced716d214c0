//! ML-DSA key generation and deterministic signing through `libcrux-ml-dsa`
//! (Cryspen's formally verified implementation, AVX2 code selected at run time): the
//! fastest deterministic signer measured here (`cargo bench -p dualchain-benches
//! --bench crypto`, figures in the README: ML-DSA-87 189 µs against 1,061 µs for
//! RustCrypto `ml-dsa`, ML-DSA-44 119 µs against 911 µs). AWS-LC signs only hedged (randomised), which would give up
//! reproducible signatures; it verifies, in `verify_aws_lc`.

use libcrux_ml_dsa::{ml_dsa_44, ml_dsa_87};
use zeroize::Zeroize;

use super::ParameterSet;

/// FIPS 204 deterministic signing: the per-signature randomness `rnd` is all zeros.
const DETERMINISTIC: [u8; 32] = [0; 32];

/// An expanded ML-DSA signing key, zeroised on drop.
pub(super) enum SigningKey {
    MlDsa44(Box<ml_dsa_44::MLDSA44SigningKey>),
    MlDsa87(Box<ml_dsa_87::MLDSA87SigningKey>),
}

impl SigningKey {
    /// FIPS 204 `KeyGen_internal(ξ)`: the signing key and the encoded public key.
    pub(super) fn from_seed(set: ParameterSet, seed: &[u8; 32]) -> (Self, Vec<u8>) {
        match set {
            ParameterSet::MlDsa44 => {
                let pair = ml_dsa_44::generate_key_pair(*seed);
                let public = pair.verification_key.as_slice().to_vec();
                (Self::MlDsa44(Box::new(pair.signing_key)), public)
            }
            ParameterSet::MlDsa87 => {
                let pair = ml_dsa_87::generate_key_pair(*seed);
                let public = pair.verification_key.as_slice().to_vec();
                (Self::MlDsa87(Box::new(pair.signing_key)), public)
            }
        }
    }

    /// The encoded signature of `message` with FIPS 204 context string `context`.
    pub(super) fn sign(&self, message: &[u8], context: &[u8]) -> Vec<u8> {
        // Signing fails only for a context over 255 bytes (every `SigningDomain`'s is
        // shorter) or after 814 rejected attempts, which FIPS 204 (appendix C) bounds
        // below 2^-128 for every parameter set: both are broken invariants.
        const INVARIANT: &str = "ML-DSA signing: short context, < 2^-128 rejection bound";
        match self {
            Self::MlDsa44(key) => ml_dsa_44::sign(key, message, context, DETERMINISTIC)
                .expect(INVARIANT)
                .as_slice()
                .to_vec(),
            Self::MlDsa87(key) => ml_dsa_87::sign(key, message, context, DETERMINISTIC)
                .expect(INVARIANT)
                .as_slice()
                .to_vec(),
        }
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        match self {
            Self::MlDsa44(key) => key.as_ref_mut().zeroize(),
            Self::MlDsa87(key) => key.as_ref_mut().zeroize(),
        }
    }
}
