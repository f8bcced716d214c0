use std::sync::OnceLock;

use dualchain_merkle::{ProofError, SparseMerkleTree, hash_key, hash_value};
use proptest::prelude::*;

use super::*;
use crate::crypto::{NetworkId, ValidatorKeypair};
use crate::types::ValidatorIndex;

/// The network of every attestation here.
const NET: NetworkId = NetworkId(Digest([0x11; 32]));

const KEY: &[u8] = b"R\x01lock-0001";
const VALUE: &[u8] = b"lock v1: 500 sAX until 1767225900000";

/// Four validators of Alpha's epoch 0, made once (ML-DSA-87 key expansion is slow).
fn keys() -> &'static [ValidatorKeypair] {
    static KEYS: OnceLock<Vec<ValidatorKeypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..4u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 40; 32]))
            .collect()
    })
}

fn set(epoch: u64) -> ValidatorSet {
    ValidatorSet::new(epoch, keys().iter().map(|k| (k.public().clone(), 1))).unwrap()
}

fn tree() -> SparseMerkleTree {
    let mut tree = SparseMerkleTree::new();
    for (k, v) in [
        (KEY, VALUE),
        (b"R\x01lock-0002".as_slice(), b"other lock".as_slice()),
        (b"A-some-account", b"balance"),
    ] {
        tree.insert(hash_key(k), hash_value(v));
    }
    tree
}

fn header(tree: &SparseMerkleTree, height: u64, epoch: u64) -> BlockHeader {
    BlockHeader {
        chain: ChainId::Alpha,
        height,
        epoch,
        slot: height,
        parent: Digest([7; 32]),
        timestamp_ms: 1_767_225_600_000 + height * 15_000,
        vertices_root: Digest([1; 32]),
        transactions_root: Digest([2; 32]),
        receipts_root: Digest([3; 32]),
        state_root: Digest(tree.root()),
        tx_count: 3,
    }
}

fn certify(header: &BlockHeader, signers: &[ValidatorIndex]) -> BlockCertificate {
    BlockCertificate::from_votes(
        header,
        signers.iter().map(|i| {
            (
                *i,
                BlockCertificate::vote(&keys()[usize::from(*i)], header, NET),
            )
        }),
    )
}

/// A valid attestation of `KEY → VALUE` at Alpha height 10, signed by 0, 1 and 2.
fn attestation() -> Attestation {
    static VALID: OnceLock<Attestation> = OnceLock::new();
    VALID
        .get_or_init(|| {
            let tree = tree();
            let header = header(&tree, 10, 0);
            Attestation {
                certificate: certify(&header, &[0, 1, 2]),
                header,
                key: KEY.to_vec(),
                value: VALUE.to_vec(),
                proof: tree.prove(&hash_key(KEY)),
            }
        })
        .clone()
}

/// Delta checking an Alpha attestation: epoch 0 known, newest source height 12,
/// window 100, nothing consumed.
struct Target {
    target: ChainId,
    sets: Vec<ValidatorSet>,
    newest: u64,
    window: u64,
    consumed: Vec<AttestationId>,
    network: NetworkId,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            target: ChainId::Delta,
            sets: vec![set(0)],
            newest: 12,
            window: 100,
            consumed: Vec::new(),
            network: NET,
        }
    }
}

impl Target {
    fn check(&self, a: &Attestation) -> Result<AttestationId, AttestationError> {
        self.check_cached(a, None)
    }

    fn check_cached(
        &self,
        a: &Attestation,
        cache: Option<&CertificateCache>,
    ) -> Result<AttestationId, AttestationError> {
        let sets = |epoch: u64| self.sets.iter().find(|s| s.epoch() == epoch);
        let consumed = |id: &AttestationId| self.consumed.contains(id);
        let ctx = AttestationContext {
            target: self.target,
            validator_sets: &sets,
            newest_source_height: self.newest,
            freshness_blocks: self.window,
            consumed: &consumed,
            network: self.network,
        };
        a.verify(&ctx, cache)
    }
}

#[test]
fn a_valid_attestation_verifies_and_names_what_it_proves() {
    let a = attestation();
    let id = Target::default().check(&a).unwrap();
    assert_eq!(id, a.id());
    // The id is the record version, not the block: the same record at another height,
    // certified by other signers, is the same id (so it is consumed once).
    let tree = tree();
    let later = header(&tree, 11, 0);
    let again = Attestation {
        certificate: certify(&later, &[1, 2, 3]),
        header: later,
        ..a.clone()
    };
    assert_eq!(Target::default().check(&again).unwrap(), id);
    // Another value of the record is another id.
    assert_ne!(
        Attestation {
            value: b"lock v2".to_vec(),
            ..a
        }
        .id(),
        id
    );
}

#[test]
fn encoding_round_trips_and_is_bounded() {
    let a = attestation();
    let bytes = a.to_canonical_bytes();
    assert_eq!(Attestation::from_canonical_bytes(&bytes).unwrap(), a);
    assert!(
        bytes.len() < 20_000,
        "4-validator attestation: {}",
        bytes.len()
    );
    let oversized = vec![1u8; Attestation::MAX_ENCODED_LEN + 1];
    assert!(matches!(
        Attestation::from_canonical_bytes(&oversized),
        Err(DecodeError::TooLong { .. })
    ));
    for cut in [1, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(Attestation::from_canonical_bytes(&bytes[..cut]).is_err());
    }
}

#[test]
fn an_attestation_of_the_target_chain_itself_is_refused() {
    let target = Target {
        target: ChainId::Alpha,
        ..Target::default()
    };
    assert_eq!(
        target.check(&attestation()),
        Err(AttestationError::WrongSourceChain {
            source_chain: ChainId::Alpha,
            target: ChainId::Alpha
        })
    );
}

#[test]
fn epochs_must_match_and_be_known() {
    let mut a = attestation();
    a.certificate.epoch = 1;
    assert_eq!(
        Target::default().check(&a),
        Err(AttestationError::EpochMismatch {
            header: 0,
            certificate: 1
        })
    );

    // A block of epoch 1, whose validator set this chain does not know yet.
    let tree = tree();
    let h = header(&tree, 10, 1);
    let epoch1 = Attestation {
        certificate: certify(&h, &[0, 1, 2]),
        header: h,
        ..attestation()
    };
    assert_eq!(
        Target::default().check(&epoch1),
        Err(AttestationError::UnknownEpoch {
            chain: ChainId::Alpha,
            epoch: 1
        })
    );
    // Once the epoch-1 set is known, it verifies.
    let knows_both = Target {
        sets: vec![set(0), set(1)],
        ..Target::default()
    };
    knows_both.check(&epoch1).unwrap();
}

#[test]
fn stale_and_replayed_attestations_are_refused() {
    let a = attestation();
    let stale = Target {
        newest: 111,
        ..Target::default()
    };
    assert_eq!(
        stale.check(&a),
        Err(AttestationError::Stale {
            height: 10,
            newest: 111,
            window: 100
        })
    );
    let edge = Target {
        newest: 110,
        ..Target::default()
    };
    edge.check(&a).unwrap();

    let used = Target {
        consumed: vec![a.id()],
        ..Target::default()
    };
    assert_eq!(used.check(&a), Err(AttestationError::Replayed(a.id())));
}

#[test]
fn certificates_below_quorum_or_from_outside_the_set_are_refused() {
    let mut a = attestation();
    a.certificate = certify(&a.header, &[0, 1]);
    assert_eq!(
        Target::default().check(&a),
        Err(AttestationError::Certificate(CertificateError::NoQuorum {
            stake: 2,
            quorum: 3
        }))
    );

    let mut outsider = attestation();
    let stranger = ValidatorKeypair::from_seed(&[99; 32]);
    let vote = BlockCertificate::vote(&stranger, &outsider.header, NET);
    outsider.certificate.signatures.push((7, vote));
    assert_eq!(
        Target::default().check(&outsider),
        Err(AttestationError::Certificate(
            CertificateError::UnknownSigner(7)
        ))
    );

    // A member's slot signed by someone else's key.
    let mut forged = attestation();
    forged.certificate.signatures[1].1 = BlockCertificate::vote(&stranger, &forged.header, NET);
    assert!(matches!(
        Target::default().check(&forged),
        Err(AttestationError::Certificate(
            CertificateError::BadSignature { index: 1, .. }
        ))
    ));
}

#[test]
fn every_tampered_field_is_refused_with_its_reason() {
    let target = Target::default();
    let wrong_header = |a: &Attestation| {
        matches!(
            target.check(a),
            Err(AttestationError::Certificate(
                CertificateError::WrongHeader { .. }
            ))
        )
    };
    let proof_fails = |a: &Attestation| {
        matches!(
            target.check(a),
            Err(AttestationError::Proof(ProofError::RootMismatch))
        )
    };
    let tampered = |f: &dyn Fn(&mut Attestation)| {
        let mut a = attestation();
        f(&mut a);
        a
    };
    // Header fields the proof does not read: the certificate no longer covers them.
    assert!(wrong_header(&tampered(&|a| a.header.height += 1)));
    assert!(wrong_header(&tampered(&|a| a.header.timestamp_ms += 1)));
    assert!(wrong_header(&tampered(&|a| a.header.parent = Digest::ZERO)));
    assert!(wrong_header(&tampered(&|a| a.header.tx_count += 1)));
    assert!(wrong_header(&tampered(&|a| a.certificate.height += 1)));
    assert!(wrong_header(&tampered(
        &|a| a.certificate.header_digest = Digest::ZERO
    )));
    // The record and its proof.
    assert!(proof_fails(&tampered(&|a| a.value.push(0))));
    assert!(proof_fails(&tampered(&|a| a.key[2] ^= 1)));
    assert!(proof_fails(&tampered(
        &|a| a.header.state_root = Digest([9; 32])
    )));
    // A signature byte.
    let mut flipped = attestation();
    let mut bytes = flipped.certificate.signatures[2].1.as_bytes().to_vec();
    bytes[50] ^= 0x10;
    flipped.certificate.signatures[2].1 =
        crate::crypto::ValidatorSignature::from_bytes(&bytes).unwrap();
    assert!(matches!(
        target.check(&flipped),
        Err(AttestationError::Certificate(
            CertificateError::BadSignature { index: 2, .. }
        ))
    ));
    // Keys out of bounds.
    assert_eq!(
        target.check(&tampered(&|a| a.key.clear())),
        Err(AttestationError::BadKey { len: 0 })
    );
}

#[test]
fn a_proof_of_another_key_or_another_root_is_refused() {
    let tree = tree();
    let mut other_key = attestation();
    other_key.proof = tree.prove(&hash_key(b"R\x01lock-0002"));
    assert_eq!(
        Target::default().check(&other_key),
        Err(AttestationError::Proof(ProofError::RootMismatch))
    );

    let mut other_tree = tree.clone();
    other_tree.insert(hash_key(b"R\x01lock-0003"), hash_value(b"x"));
    let mut other_root = attestation();
    other_root.proof = other_tree.prove(&hash_key(KEY));
    assert_eq!(
        Target::default().check(&other_root),
        Err(AttestationError::Proof(ProofError::RootMismatch))
    );

    // A non-inclusion proof cannot attest a value.
    let mut absent = attestation();
    absent.key = b"R\x01lock-9999".to_vec();
    absent.proof = tree.prove(&hash_key(&absent.key));
    assert_eq!(
        Target::default().check(&absent),
        Err(AttestationError::Proof(ProofError::ExpectedInclusion))
    );
}

#[test]
fn a_warm_cache_decides_exactly_as_a_cold_check() {
    let cache = CertificateCache::new(2);
    let a = attestation();
    Target::default().check_cached(&a, Some(&cache)).unwrap();
    assert_eq!(cache.len(), 1);
    // Another attestation of the same block hits the cache...
    let tree = tree();
    let sibling = Attestation {
        key: b"R\x01lock-0002".to_vec(),
        value: b"other lock".to_vec(),
        proof: tree.prove(&hash_key(b"R\x01lock-0002")),
        ..a.clone()
    };
    Target::default()
        .check_cached(&sibling, Some(&cache))
        .unwrap();
    assert_eq!(cache.len(), 1);
    // ...but a certificate of the same header with a bad signature is checked, and
    // refused, as a cold node would.
    let mut bad = a.clone();
    let mut bytes = bad.certificate.signatures[0].1.as_bytes().to_vec();
    bytes[9] ^= 1;
    bad.certificate.signatures[0].1 =
        crate::crypto::ValidatorSignature::from_bytes(&bytes).unwrap();
    assert_eq!(
        Target::default().check_cached(&bad, Some(&cache)),
        Target::default().check(&bad)
    );
    assert!(Target::default().check(&bad).is_err());
    // ...and a certificate verified for this network is not accepted for another,
    // cached or not: it was signed for this one.
    let elsewhere = Target {
        network: NetworkId(Digest([0x12; 32])),
        ..Target::default()
    };
    assert!(matches!(
        elsewhere.check_cached(&a, Some(&cache)),
        Err(AttestationError::Certificate(
            CertificateError::BadSignature { index: 0, .. }
        ))
    ));
    assert_eq!(
        elsewhere.check_cached(&a, Some(&cache)),
        elsewhere.check(&a)
    );
    // Bounded: the oldest certificate leaves first.
    for height in [11, 12] {
        let h = header(&tree, height, 0);
        let other = Attestation {
            certificate: certify(&h, &[0, 1, 3]),
            header: h,
            ..a.clone()
        };
        Target::default()
            .check_cached(&other, Some(&cache))
            .unwrap();
    }
    assert_eq!(cache.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any single changed byte of an encoded attestation either fails to decode or fails
    /// to verify: nothing in it is unauthenticated.
    #[test]
    fn no_byte_of_an_attestation_is_unchecked(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let bytes = attestation().to_canonical_bytes();
        let at = position.index(bytes.len());
        let mut changed = bytes.clone();
        changed[at] ^= flip;
        if let Ok(decoded) = Attestation::from_canonical_bytes(&changed) {
            prop_assert!(
                Target::default().check(&decoded).is_err(),
                "byte {at} of {} changed by {flip:#04x} still verifies",
                bytes.len()
            );
        }
    }
}

/// An attestation of a 100-validator network carries 67 ML-DSA-87 signatures, far
/// above the ordinary transaction limit: it still travels as one transaction, and the
/// kind tag read without decoding gives the admission its limit.
#[test]
fn an_attestation_of_a_hundred_validators_fits_its_transaction_kind() {
    use crate::crypto::AccountKeypair;
    use crate::types::tx_limits::{MAX_ATTEST_TX_BYTES, MAX_TX_BYTES};
    use crate::types::{Address, CrossChainOp, SignedTransaction, Transaction, TxPayload};
    let keys: Vec<_> = (0..100u8)
        .map(|i| ValidatorKeypair::from_seed(&[i; 32]))
        .collect();
    let set = ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1))).unwrap();
    let tree = tree();
    let header = header(&tree, 10, 0);
    let quorum = (0..100u16)
        .take_while(|i| set.stake_of(0..*i) < set.quorum_stake())
        .map(|i| {
            (
                i,
                BlockCertificate::vote(&keys[usize::from(i)], &header, NET),
            )
        });
    let certificate = BlockCertificate::from_votes(&header, quorum);
    assert_eq!(certificate.signatures.len(), 67);
    certificate.verify(&header, &set, NET).unwrap();
    let attestation = Attestation {
        certificate,
        header,
        key: KEY.to_vec(),
        value: VALUE.to_vec(),
        proof: tree.prove(&hash_key(KEY)),
    };
    let relayer = AccountKeypair::from_seed(&[9; 32]);
    let tx = Transaction {
        chain: ChainId::Delta,
        sender: Address::of(relayer.public()),
        nonce: 0,
        fee: 0,
        payload: TxPayload::CrossChain(CrossChainOp::Attest(Box::new(attestation))),
    };
    let signed = tx.clone().sign(&relayer, NET);
    let bytes = signed.to_canonical_bytes();
    assert!(bytes.len() > MAX_TX_BYTES && bytes.len() < MAX_ATTEST_TX_BYTES);
    assert_eq!(
        SignedTransaction::max_len_of_encoding(&bytes),
        MAX_ATTEST_TX_BYTES
    );
    assert_eq!(
        SignedTransaction::from_canonical_bytes(&bytes).unwrap(),
        signed
    );
    // Any other kind keeps the ordinary limit, read from the same offset.
    let transfer = Transaction {
        payload: TxPayload::Burn {
            asset: crate::types::AssetId::NATIVE,
            amount: 1,
        },
        ..tx
    };
    assert_eq!(
        SignedTransaction::max_len_of_encoding(&transfer.sign(&relayer, NET).to_canonical_bytes()),
        MAX_TX_BYTES
    );
}
