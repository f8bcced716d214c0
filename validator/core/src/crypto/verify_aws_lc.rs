//! ML-DSA verification through AWS-LC (`aws-lc-sys`), the fastest implementation
//! measured here (`cargo bench -p dualchain-benches --bench crypto`, figures in the
//! README: ML-DSA-87 79 µs against 148 µs for libcrux-ml-dsa and 230 µs for RustCrypto
//! `ml-dsa` with a cached expanded key; ML-DSA-44 29 µs against 46 and 115).
//!
//! `aws-lc-rs` wraps the same code but has no way to pass FIPS 204's context string,
//! which every dualchain signature uses for domain separation; so this file calls the
//! three EVP functions it needs directly. It is the only `unsafe` code of the crate:
//! each call's contract is stated where it is made.
//!
//! AWS-LC is already linked into every validator (QUIC's TLS uses it), so this adds
//! no C code to the binary.

use std::ptr::{self, NonNull};
use std::sync::Once;

use aws_lc_sys as lc;

use super::ParameterSet;

/// A parsed ML-DSA public key held by AWS-LC. Immutable after parsing, so it is
/// shared freely between threads (AWS-LC reference-counts `EVP_PKEY` atomically and
/// verification never mutates it; `aws-lc-rs` shares its keys the same way).
pub(super) struct VerifyingKey {
    key: NonNull<lc::EVP_PKEY>,
}

// SAFETY: see the type's documentation: the EVP_PKEY is never mutated after
// `parse`, and AWS-LC's reference count on it is atomic.
unsafe impl Send for VerifyingKey {}
// SAFETY: as above; `verify` only reads the key.
unsafe impl Sync for VerifyingKey {}

impl VerifyingKey {
    /// Parses encoded public key bytes of `set`; `None` if AWS-LC refuses them (only a
    /// wrong length does: every byte string of the right length encodes some key).
    pub(super) fn parse(set: ParameterSet, bytes: &[u8]) -> Option<Self> {
        init();
        // SAFETY: `bytes` is a valid slice for the duration of the call; AWS-LC copies
        // it and returns an owned key or null.
        let key =
            unsafe { lc::EVP_PKEY_pqdsa_new_raw_public_key(nid(set), bytes.as_ptr(), bytes.len()) };
        match NonNull::new(key) {
            Some(key) => Some(Self { key }),
            None => {
                clear_errors();
                None
            }
        }
    }

    /// True if `signature` is a valid FIPS 204 signature (pure ML-DSA, not pre-hashed)
    /// of `message` under this key with context string `context` (at most 255 bytes).
    pub(super) fn verify(&self, message: &[u8], context: &[u8], signature: &[u8]) -> bool {
        let Some(digest) = DigestContext::new() else {
            // Out of memory in AWS-LC: the signature is not shown valid. The caller
            // treats it as invalid, which loses nothing a retry cannot recover.
            return false;
        };
        let mut key_context: *mut lc::EVP_PKEY_CTX = ptr::null_mut();
        // SAFETY: `digest` is a fresh EVP_MD_CTX; a null digest type is what AWS-LC
        // requires for ML-DSA (it hashes internally); the key outlives the call. On
        // success `key_context` points into `digest` and lives as long as it.
        let ok = unsafe {
            lc::EVP_DigestVerifyInit(
                digest.0.as_ptr(),
                &mut key_context,
                ptr::null(),
                ptr::null_mut(),
                self.key.as_ptr(),
            ) == 1
                && lc::EVP_PKEY_CTX_set1_signature_context_string(
                    key_context,
                    context.as_ptr(),
                    context.len(),
                ) == 1
                && lc::EVP_DigestVerify(
                    digest.0.as_ptr(),
                    signature.as_ptr(),
                    signature.len(),
                    message.as_ptr(),
                    message.len(),
                ) == 1
        };
        if !ok {
            // A failed verification leaves entries on this thread's error queue.
            clear_errors();
        }
        ok
    }
}

impl Drop for VerifyingKey {
    fn drop(&mut self) {
        // SAFETY: the key was returned by AWS-LC and is released once, here.
        unsafe { lc::EVP_PKEY_free(self.key.as_ptr()) }
    }
}

/// An `EVP_MD_CTX`, freed on drop (with the key context it owns).
struct DigestContext(NonNull<lc::EVP_MD_CTX>);

impl DigestContext {
    fn new() -> Option<Self> {
        // SAFETY: allocation only; null on failure.
        NonNull::new(unsafe { lc::EVP_MD_CTX_new() }).map(Self)
    }
}

impl Drop for DigestContext {
    fn drop(&mut self) {
        // SAFETY: allocated by `EVP_MD_CTX_new`, freed once.
        unsafe { lc::EVP_MD_CTX_free(self.0.as_ptr()) }
    }
}

fn nid(set: ParameterSet) -> i32 {
    match set {
        ParameterSet::MlDsa44 => lc::NID_MLDSA44,
        ParameterSet::MlDsa87 => lc::NID_MLDSA87,
    }
}

fn init() {
    static INIT: Once = Once::new();
    // SAFETY: idempotent library initialisation, run once.
    INIT.call_once(|| unsafe { lc::CRYPTO_library_init() });
}

fn clear_errors() {
    // SAFETY: clears the calling thread's AWS-LC error queue; no preconditions.
    unsafe { lc::ERR_clear_error() }
}
