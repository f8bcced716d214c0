//! Duplicate suppression for gossip: a bounded cache of recently seen messages.
//!
//! Every broadcast reaches a validator once per peer that relays it, so the same
//! bytes arrive several times. The cache remembers the last `capacity` message
//! digests (first in, first out) and the transport delivers a broadcast only the
//! first time its digest is seen. `try_broadcast` inserts our own messages, so echoes
//! are dropped too.
//!
//! The digest is keyed with a secret drawn per cache, never seen by any peer (digests
//! never leave the node), and picked by payload size for speed, because dedup hashes
//! every inbound byte:
//!
//! - below [`BLAKE3_FROM`] bytes: POLYVAL (the GHASH variant of AES-GCM-SIV) over one
//!   block `chain ‖ kind ‖ payload length` and the zero-padded payload. For small
//!   frames, the bulk of gossip, this carry-less-multiply universal hash is several
//!   times cheaper than BLAKE3, whose single-chunk path is serial. Two different
//!   messages of at most `n` blocks collide with probability at most `(n + 1)/2^128`
//!   over the key; the first block is never zero (kind tags start at 1), so neither
//!   zero prefixes nor zero padding produce collisions.
//! - from [`BLAKE3_FROM`] bytes: keyed BLAKE3 (a PRF) over `chain ‖ kind ‖ payload`,
//!   whose multi-chunk SIMD path outruns POLYVAL on large frames.
//!
//! Either way a peer can neither suppress someone else's message by forging a
//! colliding one nor flood the set's buckets (which is why the set may use the
//! digest's own bits as its hash).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use dualchain_core::types::ChainId;
use polyval::Polyval;
use polyval::universal_hash::{KeyInit, UniversalHash};
use rand::Rng;

use crate::wire::MessageKind;

/// Payload size from which BLAKE3 is the faster keyed hash.
pub const BLAKE3_FROM: usize = 4096;

/// Uses the low 64 bits of an already unpredictable digest as the table hash.
#[derive(Default)]
struct DigestBits(u64);

impl Hasher for DigestBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

/// A bounded FIFO set of message digests under a secret per-cache key.
pub struct SeenCache {
    capacity: usize,
    hasher: Polyval,
    blake3_key: [u8; 32],
    inner: Mutex<SeenInner>,
}

#[derive(Default)]
struct SeenInner {
    set: HashSet<u128, BuildHasherDefault<DigestBits>>,
    order: VecDeque<u128>,
}

impl std::fmt::Debug for SeenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeenCache({} of {})", self.len(), self.capacity)
    }
}

impl SeenCache {
    /// A cache with a fresh secret key from the thread's CSPRNG (seeded by the OS).
    /// Not a determinism concern: the key only decides collisions, which happen
    /// with negligible probability whatever it is.
    pub fn new(capacity: usize) -> Self {
        Self::with_key(capacity, rand::rng().random())
    }

    /// A cache with an explicit key (tests). The two hash keys are derived from it.
    pub fn with_key(capacity: usize, key: [u8; 32]) -> Self {
        let polyval_key: [u8; 16] = blake3::keyed_hash(&key, b"polyval").as_bytes()[..16]
            .try_into()
            .expect("16 of 32 bytes");
        Self {
            capacity: capacity.max(1),
            hasher: Polyval::new(&polyval_key.into()),
            blake3_key: *blake3::keyed_hash(&key, b"blake3").as_bytes(),
            inner: Mutex::new(SeenInner::default()),
        }
    }

    /// The digest of a message under this cache's key.
    pub fn digest(&self, chain: ChainId, kind: MessageKind, payload: &[u8]) -> u128 {
        if payload.len() >= BLAKE3_FROM {
            let mut h = blake3::Hasher::new_keyed(&self.blake3_key);
            h.update(&[chain.tag(), kind.tag()]);
            h.update(payload);
            let out = h.finalize();
            let bytes: [u8; 16] = out.as_bytes()[..16].try_into().expect("16 of 32 bytes");
            return u128::from_le_bytes(bytes);
        }
        let mut first = [0u8; 16];
        first[0] = chain.tag();
        first[1] = kind.tag();
        first[8..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let mut h = self.hasher.clone();
        h.update(&[first.into()]);
        h.update_padded(payload);
        u128::from_le_bytes(h.finalize().into())
    }

    /// Records a message; true if it was not seen before (deliver it).
    pub fn insert_message(&self, chain: ChainId, kind: MessageKind, payload: &[u8]) -> bool {
        self.insert(self.digest(chain, kind, payload))
    }

    /// Records `digest`; true if it was not seen before, false for a duplicate.
    pub fn insert(&self, digest: u128) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.set.insert(digest) {
            return false;
        }
        inner.order.push_back(digest);
        if inner.order.len() > self.capacity
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.set.remove(&oldest);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_are_reported_and_capacity_evicts_oldest() {
        let cache = SeenCache::new(2);
        assert!(cache.insert(1));
        assert!(!cache.insert(1));
        assert!(cache.insert(2));
        assert!(cache.insert(3));
        assert_eq!(cache.len(), 2);
        // 1 was evicted, so it counts as new again; 3 is still remembered.
        assert!(cache.insert(1));
        assert!(!cache.insert(3));
    }

    #[test]
    fn digest_separates_chain_kind_payload_and_padding() {
        let cache = SeenCache::with_key(8, [7; 32]);
        let d = |c, k, p: &[u8]| cache.digest(c, k, p);
        let base = d(ChainId::Alpha, MessageKind::Vertex, b"x");
        assert_eq!(base, d(ChainId::Alpha, MessageKind::Vertex, b"x"));
        assert_ne!(base, d(ChainId::Delta, MessageKind::Vertex, b"x"));
        assert_ne!(base, d(ChainId::Alpha, MessageKind::Certificate, b"x"));
        assert_ne!(base, d(ChainId::Alpha, MessageKind::Vertex, b"y"));
        // Zero padding is disambiguated by the length block.
        assert_ne!(base, d(ChainId::Alpha, MessageKind::Vertex, b"x\0"));
        assert_ne!(
            d(ChainId::Alpha, MessageKind::Vertex, b""),
            d(ChainId::Alpha, MessageKind::Vertex, &[0; 16])
        );
        // Another key, other digests.
        let other = SeenCache::with_key(8, [8; 32]);
        assert_ne!(
            base,
            other.digest(ChainId::Alpha, MessageKind::Vertex, b"x")
        );
        assert!(cache.insert_message(ChainId::Alpha, MessageKind::Vertex, b"x"));
        assert!(!cache.insert_message(ChainId::Alpha, MessageKind::Vertex, b"x"));
    }

    proptest! {
        /// Different payloads never share a digest (in any case a test can reach).
        #[test]
        fn distinct_payloads_distinct_digests(
            a in proptest::collection::vec(any::<u8>(), 0..100),
            b in proptest::collection::vec(any::<u8>(), 0..100),
            big in any::<bool>(),
        ) {
            let cache = SeenCache::with_key(8, [3; 32]);
            // Exercise both hash paths (payloads padded past the BLAKE3 threshold).
            let pad = |mut v: Vec<u8>| {
                if big {
                    v.resize(v.len() + BLAKE3_FROM, 0);
                }
                v
            };
            let (a, b) = (pad(a), pad(b));
            let da = cache.digest(ChainId::Delta, MessageKind::Transactions, &a);
            let db = cache.digest(ChainId::Delta, MessageKind::Transactions, &b);
            prop_assert_eq!(a == b, da == db);
        }
    }
}
