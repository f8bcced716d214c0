//! Vertex verification behind a trait, so the simulator can share verdicts.
//!
//! Verification (epoch, membership, parent quorum, ML-DSA-87 signature) is a pure
//! function of the vertex bytes and the validator set. A simulator running a hundred
//! nodes in one thread would otherwise verify every vertex a hundred times;
//! [`SharedVerdictCache`] verifies each distinct (digest, signature) pair once and
//! shares the verdict. The key includes a hash of the signature and of the network, so a
//! forged copy of a valid vertex (same digest, other signature) is verified on its own
//! and refused, and a verdict for one network is never an answer for another.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use dualchain_core::Digest;
use dualchain_core::crypto::NetworkId;
use dualchain_core::types::{ValidatorSet, Vertex, VertexError};

/// Checks a vertex against the validator set (see [`Vertex::verify`]).
pub trait VertexVerifier {
    fn verify(
        &self,
        vertex: &Vertex,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), VertexError>;

    /// Verifies a batch (a sync response can carry thousands of vertices), one verdict
    /// per vertex in order. Verifiers may spread the work over cores; the verdicts, and
    /// so the engine's behaviour, do not depend on how.
    fn verify_batch(
        &self,
        vertices: &[Arc<Vertex>],
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Vec<Result<(), VertexError>> {
        vertices
            .iter()
            .map(|v| self.verify(v, validators, network))
            .collect()
    }
}

/// Verifies every vertex in full, every time (the node's verifier).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectVerifier;

impl VertexVerifier for DirectVerifier {
    fn verify(
        &self,
        vertex: &Vertex,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), VertexError> {
        vertex.verify(validators, network)
    }

    /// Verifies the batch on the rayon pool (ML-DSA-87 verification dominates intake).
    fn verify_batch(
        &self,
        vertices: &[Arc<Vertex>],
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Vec<Result<(), VertexError>> {
        use rayon::prelude::*;
        vertices
            .par_iter()
            .map(|v| v.verify(validators, network))
            .collect()
    }
}

/// A verdict cache: each distinct (digest, signature) pair is verified once.
///
/// Two uses: engines of one simulated validator set share one (every node verifies
/// the same vertices), and a node's driver verifies a burst of incoming vertices in
/// parallel off its event loop with [`VertexVerifier::verify_batch`], so that the
/// engine's own check of each of them is a cache hit. The cache holds at most
/// `capacity` verdicts and forgets the oldest first.
#[derive(Clone, Debug)]
pub struct SharedVerdictCache {
    inner: Arc<Mutex<CacheInner>>,
}

impl Default for SharedVerdictCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_VERDICT_CAPACITY)
    }
}

/// Verdicts a cache keeps by default.
pub const DEFAULT_VERDICT_CAPACITY: usize = 1 << 20;

type VerdictKey = (Digest, Digest);

#[derive(Debug, Default)]
struct CacheInner {
    verdicts: HashMap<VerdictKey, Result<(), VertexError>>,
    order: VecDeque<VerdictKey>,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl CacheInner {
    fn insert(&mut self, key: VerdictKey, verdict: Result<(), VertexError>) {
        if self.verdicts.insert(key, verdict).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.verdicts.remove(&old);
                }
            }
        }
    }
}

/// The verdict's key: the vertex digest, and a hash of what else the verdict depends
/// on: the signature, the network and the epoch of the set it was checked against (a
/// vertex of the next epoch is refused until the engine runs that epoch, and then
/// accepted).
fn key_of(vertex: &Vertex, validators: &ValidatorSet, network: NetworkId) -> VerdictKey {
    let mut signature = blake3::Hasher::new();
    signature
        .update(&network.0.0)
        .update(&validators.epoch().to_be_bytes())
        .update(vertex.signature().as_bytes());
    (vertex.digest(), Digest(*signature.finalize().as_bytes()))
}

impl SharedVerdictCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache of at most `capacity` verdicts (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(CacheInner {
                capacity: capacity.max(1),
                ..CacheInner::default()
            })),
        }
    }

    /// (hits, misses): misses are the signatures actually verified.
    pub fn stats(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.hits, inner.misses)
    }

    /// Verdicts held.
    pub fn len(&self) -> usize {
        self.lock().verdicts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl VertexVerifier for SharedVerdictCache {
    fn verify(
        &self,
        vertex: &Vertex,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), VertexError> {
        let key = key_of(vertex, validators, network);
        {
            let mut inner = self.lock();
            if let Some(verdict) = inner.verdicts.get(&key).cloned() {
                inner.hits += 1;
                return verdict;
            }
            inner.misses += 1;
        }
        let verdict = vertex.verify(validators, network);
        self.lock().insert(key, verdict.clone());
        verdict
    }

    /// Verifies the vertices not cached yet in parallel (rayon), then answers from
    /// the cache; the lock is never held while verifying.
    fn verify_batch(
        &self,
        vertices: &[Arc<Vertex>],
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Vec<Result<(), VertexError>> {
        use rayon::prelude::*;
        let keys: Vec<VerdictKey> = vertices
            .iter()
            .map(|v| key_of(v, validators, network))
            .collect();
        let missing: Vec<usize> = {
            let inner = self.lock();
            (0..vertices.len())
                .filter(|&i| !inner.verdicts.contains_key(&keys[i]))
                .collect()
        };
        let fresh: Vec<(usize, Result<(), VertexError>)> = missing
            .par_iter()
            .map(|&i| (i, vertices[i].verify(validators, network)))
            .collect();
        let mut inner = self.lock();
        inner.misses += fresh.len() as u64;
        inner.hits += (vertices.len() - fresh.len()) as u64;
        let mut out: Vec<Option<Result<(), VertexError>>> = vec![None; vertices.len()];
        for (i, verdict) in fresh {
            inner.insert(keys[i], verdict.clone());
            out[i] = Some(verdict);
        }
        out.into_iter()
            .zip(&keys)
            .zip(vertices)
            .map(|((verdict, key), v)| {
                verdict
                    .or_else(|| inner.verdicts.get(key).cloned())
                    // Evicted between the two locks (a tiny cache): verify again.
                    .unwrap_or_else(|| v.verify(validators, network))
            })
            .collect()
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
        let direct: Vec<_> = vertices
            .iter()
            .map(|v| v.verify(b.validators(), b.network()))
            .collect();
        assert!(direct[..8].iter().all(Result::is_ok) && direct[8].is_err());
        assert_eq!(
            DirectVerifier.verify_batch(&vertices, b.validators(), b.network()),
            direct
        );
        let cache = SharedVerdictCache::new();
        for _ in 0..2 {
            let cached: Vec<_> = vertices
                .iter()
                .map(|v| cache.verify(v, b.validators(), b.network()))
                .collect();
            assert_eq!(cached, direct);
        }
        assert_eq!(cache.stats(), (9, 9));
        let batch = SharedVerdictCache::with_capacity(4);
        assert_eq!(
            batch.verify_batch(&vertices, b.validators(), b.network()),
            direct
        );
        assert_eq!(batch.len(), 4, "bounded: the oldest verdicts are forgotten");
        assert_eq!(
            batch.verify_batch(&vertices, b.validators(), b.network()),
            direct
        );
    }
}
