//! Deterministic validator keys for tests and simulations.
//!
//! Key generation is derived from a public seed per index, so these keys are for
//! simulation only; they are cached per process because ML-DSA-87 key expansion is
//! the costliest step of setting up a 100-validator run.

use std::sync::{Arc, Mutex, OnceLock};

use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::types::{ValidatorSet, ValidatorSetError};

const SIM_KEY_CONTEXT: &str = "dualchain 2026-11 simulation validator key v1";

/// The simulation key of validator `index` (public seed: never use outside tests).
pub fn sim_validator_key(index: usize) -> Arc<ValidatorKeypair> {
    static CACHE: OnceLock<Mutex<Vec<Option<Arc<ValidatorKeypair>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut keys = cache.lock().unwrap_or_else(|e| e.into_inner());
    if keys.len() <= index {
        keys.resize(index + 1, None);
    }
    keys[index]
        .get_or_insert_with(|| {
            let seed = blake3::derive_key(SIM_KEY_CONTEXT, &(index as u64).to_le_bytes());
            Arc::new(ValidatorKeypair::from_seed(&seed))
        })
        .clone()
}

/// Keys and an equal-stake validator set of `n` simulated validators.
pub fn sim_validators(
    n: usize,
    epoch: u64,
) -> Result<(Vec<Arc<ValidatorKeypair>>, ValidatorSet), ValidatorSetError> {
    let keys: Vec<_> = (0..n).map(sim_validator_key).collect();
    let set = ValidatorSet::new(epoch, keys.iter().map(|k| (k.public().clone(), 1)))?;
    Ok((keys, set))
}
