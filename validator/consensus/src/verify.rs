//! Vertex verification behind a trait, so the simulator can share verdicts.
//!
//! Verification (epoch, membership, parent quorum, ML-DSA-87 signature) is a pure
//! function of the vertex bytes and the validator set. A simulator running a hundred
//! nodes in one thread would otherwise verify every vertex a hundred times;
//! [`SharedVerdictCache`] verifies each distinct (digest, signature) pair once and
//! shares the verdict. The key includes a hash of the signature, so a forged copy of a
//! valid vertex (same digest, other signature) is verified on its own and refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dualchain_core::Digest;
use dualchain_core::types::{ValidatorSet, Vertex, VertexError};

/// Checks a vertex against the validator set (see [`Vertex::verify`]).
pub trait VertexVerifier {
    fn verify(&self, vertex: &Vertex, validators: &ValidatorSet) -> Result<(), VertexError>;

    /// Verifies a batch (a sync response can carry thousands of vertices), one verdict
    /// per vertex in order. Verifiers may spread the work over cores; the verdicts, and
    /// so the engine's behaviour, do not depend on how.
    fn verify_batch(
        &self,
        vertices: &[Arc<Vertex>],
        validators: &ValidatorSet,
    ) -> Vec<Result<(), VertexError>> {
        vertices
            .iter()
            .map(|v| self.verify(v, validators))
            .collect()
    }
}

/// Verifies every vertex in full, every time (the node's verifier).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectVerifier;

impl VertexVerifier for DirectVerifier {
    fn verify(&self, vertex: &Vertex, validators: &ValidatorSet) -> Result<(), VertexError> {
        vertex.verify(validators)
    }

    /// Verifies the batch on the rayon pool (ML-DSA-87 verification dominates intake).
    fn verify_batch(
        &self,
        vertices: &[Arc<Vertex>],
        validators: &ValidatorSet,
    ) -> Vec<Result<(), VertexError>> {
        use rayon::prelude::*;
        vertices.par_iter().map(|v| v.verify(validators)).collect()
    }
}

/// Verdicts shared between engines of one process (simulation of one validator set).
#[derive(Clone, Debug, Default)]
pub struct SharedVerdictCache {
    inner: Arc<Mutex<CacheInner>>,
}

#[derive(Debug, Default)]
struct CacheInner {
    verdicts: HashMap<(Digest, Digest), Result<(), VertexError>>,
    hits: u64,
    misses: u64,
}

impl SharedVerdictCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// (hits, misses): misses are the signatures actually verified.
    pub fn stats(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.hits, inner.misses)
    }
}

impl VertexVerifier for SharedVerdictCache {
    fn verify(&self, vertex: &Vertex, validators: &ValidatorSet) -> Result<(), VertexError> {
        let key = (
            vertex.digest(),
            Digest(*blake3::hash(vertex.signature().as_bytes()).as_bytes()),
        );
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(verdict) = inner.verdicts.get(&key).cloned() {
            inner.hits += 1;
            return verdict;
        }
        inner.misses += 1;
        let verdict = vertex.verify(validators);
        inner.verdicts.insert(key, verdict.clone());
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;

    #[test]
    fn batch_and_cached_verdicts_match_direct_verification() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let mut vertices = b.all().to_vec();
        // A copy of a valid vertex with a corrupted signature: same digest.
        let good = b.vertex(1, 1).clone();
        let mut bytes = dualchain_core::encoding::Canonical::to_canonical_bytes(good.as_ref());
        let last = bytes.len() - 1;
        bytes[last] ^= 0x5a;
        let forged: Vertex =
            dualchain_core::encoding::Canonical::from_canonical_bytes(&bytes).unwrap();
        assert_eq!(forged.digest(), good.digest());
        vertices.push(Arc::new(forged));
        let direct: Vec<_> = vertices.iter().map(|v| v.verify(b.validators())).collect();
        assert!(direct[..8].iter().all(Result::is_ok) && direct[8].is_err());
        assert_eq!(
            DirectVerifier.verify_batch(&vertices, b.validators()),
            direct
        );
        let cache = SharedVerdictCache::new();
        for _ in 0..2 {
            let cached: Vec<_> = vertices
                .iter()
                .map(|v| cache.verify(v, b.validators()))
                .collect();
            assert_eq!(cached, direct);
        }
        assert_eq!(cache.stats(), (9, 9));
    }
}
