//! Admission-time signature checks, run once per transaction and remembered.
//!
//! ML-DSA verification costs tens of microseconds — far more than executing a
//! transfer — so it happens when a transaction is admitted (in parallel, on rayon),
//! and the verdict is cached; execution looks the verdict up instead of verifying
//! again.
//!
//! The cache key is the transaction digest *and* a BLAKE3 fingerprint of the
//! authorisation. The digest alone is not enough: it deliberately does not cover
//! the authorisation, so a forged copy of an admitted transaction has the same
//! digest, and a digest-only cache would wave it through.
//!
//! Unsigned transactions (the benchmark mode) are accepted only when the genesis
//! flag `allow_unsigned_transactions` is set; otherwise their verdict is
//! [`Verdict::UnsignedNotAllowed`] and execution fails them with that reason.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dualchain_core::crypto::{AccountPublicKey, NetworkId};
use dualchain_core::encoding::Encode;
use dualchain_core::hash::Digest;
use dualchain_core::types::{Address, Authorization, Genesis, SignedTransaction};
use foldhash::fast::RandomState;
use rayon::prelude::*;

pub use dualchain_core::types::Verdict;

/// Cached verdicts kept by default before the oldest half is dropped.
pub const DEFAULT_CACHE_CAPACITY: usize = 1 << 20;

/// Parallel signature verifier with a verdict cache.
pub struct SignatureVerifier {
    /// Signatures verify only for this network (the genesis hash).
    network: NetworkId,
    allow_unsigned: bool,
    capacity: usize,
    /// `(digest, auth fingerprint)` → (verdict, insertion sequence number).
    cache: DashMap<(Digest, [u8; 32]), (Verdict, u64), RandomState>,
    sequence: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Public keys seen, by address, with their expanded ML-DSA form computed once
    /// (cleared when it reaches `capacity`).
    keys: DashMap<Address, AccountPublicKey, RandomState>,
}

impl dualchain_core::types::VerdictSource for SignatureVerifier {
    fn verdict(&self, tx: &SignedTransaction) -> Verdict {
        SignatureVerifier::verdict(self, tx)
    }
}

impl SignatureVerifier {
    /// A verifier for a network: its id is the genesis hash, the unsigned mode
    /// follows the genesis flag.
    pub fn for_genesis(genesis: &Genesis) -> Self {
        Self::new(genesis.network_id(), genesis.allow_unsigned_transactions)
    }

    pub fn new(network: NetworkId, allow_unsigned: bool) -> Self {
        Self::with_capacity(network, allow_unsigned, DEFAULT_CACHE_CAPACITY)
    }

    pub fn with_capacity(network: NetworkId, allow_unsigned: bool, capacity: usize) -> Self {
        Self {
            network,
            allow_unsigned,
            capacity: capacity.max(2),
            cache: DashMap::with_hasher(RandomState::default()),
            sequence: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            keys: DashMap::with_hasher(RandomState::default()),
        }
    }

    /// The network whose signatures this verifier accepts.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// Whether this network runs in the unsigned benchmark mode (reports must say so).
    pub fn allows_unsigned(&self) -> bool {
        self.allow_unsigned
    }

    /// The verdict for one transaction: from the cache, or verified now and cached.
    pub fn verdict(&self, stx: &SignedTransaction) -> Verdict {
        // Unsigned transactions carry nothing to verify or cache.
        if stx.is_unsigned() {
            return if self.allow_unsigned {
                Verdict::Valid
            } else {
                Verdict::UnsignedNotAllowed
            };
        }
        let key = (stx.digest(), auth_fingerprint(stx.auth()));
        if let Some(hit) = self.cache.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return hit.0;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let verdict = Verdict::from(&stx.verify_signatures_with(
            self.network,
            self.allow_unsigned,
            |key| self.interned(key),
        ));
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key, (verdict, sequence));
        if self.cache.len() > self.capacity {
            self.evict_older_half();
        }
        verdict
    }

    /// The long-lived copy of `key` (same bytes), so its expanded form is reused.
    fn interned(&self, key: &AccountPublicKey) -> AccountPublicKey {
        let address = Address::of(key);
        if let Some(known) = self.keys.get(&address)
            && known.as_bytes() == key.as_bytes()
        {
            return known.clone();
        }
        if self.keys.len() >= self.capacity {
            self.keys.clear();
        }
        self.keys.insert(address, key.clone());
        key.clone()
    }

    /// Admission of a batch: verifies every transaction on the current rayon pool
    /// and returns the verdicts in input order.
    pub fn verify_batch(&self, txs: &[SignedTransaction]) -> Vec<Verdict> {
        txs.par_iter().map(|stx| self.verdict(stx)).collect()
    }

    /// Verdicts in input order on the calling thread only (the sequential baseline).
    pub fn verify_sequential(&self, txs: &[SignedTransaction]) -> Vec<Verdict> {
        txs.iter().map(|stx| self.verdict(stx)).collect()
    }

    /// Forgets the verdicts of transactions that were executed (they cannot run again).
    pub fn forget(&self, txs: &[SignedTransaction]) {
        for stx in txs.iter().filter(|stx| !stx.is_unsigned()) {
            self.cache
                .remove(&(stx.digest(), auth_fingerprint(stx.auth())));
        }
    }

    pub fn clear(&self) {
        self.cache.clear();
    }

    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// `(hits, misses)` of the cache so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn evict_older_half(&self) {
        let newest = self.sequence.load(Ordering::Relaxed);
        let keep_from = newest.saturating_sub(self.capacity as u64 / 2);
        self.cache.retain(|_, (_, sequence)| *sequence >= keep_from);
    }
}

/// BLAKE3 of the authorisation's canonical encoding.
fn auth_fingerprint(auth: &Authorization) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(4096);
    auth.encode_to(&mut bytes);
    *blake3::hash(&bytes).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::crypto::AccountKeypair;

    const NET: NetworkId = NetworkId(Digest([0x11; 32]));
    use dualchain_core::types::{AssetId, ChainId, Output, Transaction, TxPayload};

    fn tx(key: &AccountKeypair, nonce: u64) -> Transaction {
        Transaction {
            chain: ChainId::Delta,
            sender: Address::of(key.public()),
            nonce,
            fee: 1,
            payload: TxPayload::Transfer {
                outputs: vec![Output {
                    to: Address([7; 32]),
                    asset: AssetId::NATIVE,
                    amount: 5,
                }],
            },
        }
    }

    #[test]
    fn interned_keys_give_the_same_verdicts_as_fresh_ones() {
        let alice = AccountKeypair::from_seed(&[1; 32]);
        let bob = AccountKeypair::from_seed(&[2; 32]);
        let verifier = SignatureVerifier::new(NET, false);
        // The first transaction interns Alice's key; later ones verify with it.
        let txs: Vec<SignedTransaction> = (0..3).map(|n| tx(&alice, n).sign(&alice, NET)).collect();
        assert_eq!(verifier.verify_batch(&txs), vec![Verdict::Valid; 3]);
        assert_eq!(verifier.keys.len(), 1);
        // Alice's interned key does not make Bob's signature over Alice's
        // transaction valid, nor a signature over another message.
        let forged = tx(&alice, 9).sign(&bob, NET);
        // A signature Alice made over another transaction.
        let wrong_message = SignedTransaction::new(
            tx(&alice, 10),
            tx(&alice, 11).sign(&alice, NET).auth().clone(),
        );
        // Alice's own signature, made for another network.
        let other_network = tx(&alice, 12).sign(&alice, NetworkId(Digest([0x12; 32])));
        for bad in [forged, wrong_message, other_network] {
            assert_eq!(verifier.verdict(&bad), Verdict::Invalid);
            assert_eq!(
                Verdict::from(&bad.verify_signatures(NET, false)),
                Verdict::Invalid,
                "the fresh path agrees"
            );
        }
    }

    #[test]
    fn verdicts_are_cached_per_digest_and_authorisation() {
        let key = AccountKeypair::from_seed(&[1; 32]);
        let good = tx(&key, 0).sign(&key, NET);
        let verifier = SignatureVerifier::new(NET, false);
        assert_eq!(
            verifier.verify_batch(std::slice::from_ref(&good)),
            vec![Verdict::Valid]
        );
        assert_eq!(verifier.verdict(&good), Verdict::Valid);
        assert_eq!(verifier.hit_counts(), (1, 1));

        // Same digest, someone else's signature: must not ride on the cached verdict.
        let other = AccountKeypair::from_seed(&[2; 32]);
        let forged = SignedTransaction::new(
            good.tx().clone(),
            tx(&key, 0).sign(&other, NET).auth().clone(),
        );
        assert_eq!(forged.digest(), good.digest());
        assert_eq!(verifier.verdict(&forged), Verdict::Invalid);
        verifier.forget(std::slice::from_ref(&good));
        assert_eq!(verifier.cached(), 1);
    }

    #[test]
    fn unsigned_follows_the_genesis_flag() {
        let key = AccountKeypair::from_seed(&[1; 32]);
        let unsigned = tx(&key, 0).unsigned();
        assert_eq!(
            SignatureVerifier::new(NET, false).verdict(&unsigned),
            Verdict::UnsignedNotAllowed
        );
        assert_eq!(
            SignatureVerifier::new(NET, true).verdict(&unsigned),
            Verdict::Valid
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let verifier = SignatureVerifier::with_capacity(NET, false, 4);
        let key = AccountKeypair::from_seed(&[3; 32]);
        let txs: Vec<_> = (0..10).map(|n| tx(&key, n).sign(&key, NET)).collect();
        for stx in &txs {
            assert_eq!(verifier.verdict(stx), Verdict::Valid);
            assert!(verifier.cached() <= 4);
        }
    }
}
