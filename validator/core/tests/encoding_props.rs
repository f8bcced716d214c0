//! Property tests of the canonical encoding: every object type round-trips, and no
//! malformed, truncated, oversized or trailing input is accepted. The strongest check
//! is canonicality: whatever bytes a decoder accepts re-encode to exactly those bytes.

use std::sync::OnceLock;

use dualchain_core::crypto::{AccountKeypair, NetworkId, ValidatorKeypair};
use dualchain_core::encoding::{Canonical, DecodeError};
use dualchain_core::hash::Digest;
use dualchain_core::types::{
    Address, AssetId, BlockCertificate, BlockHeader, CertificateError, ChainId, FailureReason,
    Output, Receipt, ReceiptStatus, SignedTransaction, Transaction, TxPayload, UnsignedVertex,
    ValidatorSet, Vertex, VertexError, VertexRef,
};
use proptest::prelude::*;

/// The network everything here is signed for.
const NET: NetworkId = NetworkId(Digest([0x11; 32]));
/// Another network sharing the keys.
const OTHER_NET: NetworkId = NetworkId(Digest([0x12; 32]));

fn account_keys() -> &'static [AccountKeypair] {
    static KEYS: OnceLock<Vec<AccountKeypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..4u8)
            .map(|i| AccountKeypair::from_seed(&[i; 32]))
            .collect()
    })
}

fn validator_keys() -> &'static [ValidatorKeypair] {
    static KEYS: OnceLock<Vec<ValidatorKeypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..4u8)
            .map(|i| ValidatorKeypair::from_seed(&[i; 32]))
            .collect()
    })
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn chain() -> impl Strategy<Value = ChainId> {
    prop_oneof![Just(ChainId::Alpha), Just(ChainId::Delta)]
}

fn output() -> impl Strategy<Value = Output> {
    (any::<[u8; 32]>(), any::<u32>(), any::<u64>()).prop_map(|(to, asset, amount)| Output {
        to: Address(to),
        asset: AssetId(asset),
        amount,
    })
}

fn payload() -> impl Strategy<Value = TxPayload> {
    prop_oneof![
        prop::collection::vec(output(), 1..6).prop_map(|outputs| TxPayload::Transfer { outputs }),
        (any::<u32>(), any::<u64>()).prop_map(|(a, amount)| TxPayload::Burn {
            asset: AssetId(a),
            amount
        }),
        prop::collection::btree_set(any::<[u8; 32]>(), 1..5).prop_flat_map(|set| {
            let signers: Vec<Address> = set.into_iter().map(Address).collect();
            let n = signers.len() as u8;
            (1..=n).prop_map(move |threshold| TxPayload::MultisigConfigure {
                threshold,
                signers: signers.clone(),
            })
        }),
        prop::collection::vec(output(), 1..4)
            .prop_map(|outputs| TxPayload::MultisigSpend { outputs }),
    ]
}

fn transaction() -> impl Strategy<Value = SignedTransaction> {
    chain().prop_flat_map(transaction_of)
}

/// A transaction of `chain` (a vertex carries only its own chain's transactions).
fn transaction_of(chain: ChainId) -> impl Strategy<Value = SignedTransaction> {
    (
        Just(chain),
        0..4usize,
        any::<u64>(),
        any::<u64>(),
        payload(),
        0..3u8,
    )
        .prop_map(|(chain, signer, nonce, fee, payload, auth)| {
            let key = &account_keys()[signer];
            let tx = Transaction {
                chain,
                sender: Address::of(key.public()),
                nonce,
                fee,
                payload,
            };
            match auth {
                0 => tx.unsigned(),
                1 => tx.sign(key, NET),
                _ => tx.sign_multisig(
                    &[&account_keys()[0], &account_keys()[(signer % 3) + 1]],
                    NET,
                ),
            }
        })
}

fn receipt() -> impl Strategy<Value = Receipt> {
    let reason = prop_oneof![
        (any::<u64>(), any::<u64>())
            .prop_map(|(expected, got)| FailureReason::BadNonce { expected, got }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(available, fee)| FailureReason::InsufficientFee { available, fee }),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(a, available, needed)| {
            FailureReason::InsufficientBalance {
                asset: AssetId(a),
                available,
                needed,
            }
        }),
        Just(FailureReason::BadMultisigAuthorization),
        Just(FailureReason::NotMultisigAccount),
        Just(FailureReason::MultisigRequired),
        Just(FailureReason::InvalidSignature),
        Just(FailureReason::UnsignedNotAllowed),
        Just(FailureReason::WrongChain),
        Just(FailureReason::Overflow),
    ];
    let status = prop_oneof![
        Just(ReceiptStatus::Success),
        reason.prop_map(ReceiptStatus::Failed)
    ];
    (digest(), status, any::<u64>()).prop_map(|(tx_digest, status, fee_charged)| Receipt {
        tx_digest,
        status,
        fee_charged,
    })
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (
        chain(),
        any::<[u64; 4]>(),
        [digest(), digest(), digest(), digest(), digest()],
        any::<u32>(),
    )
        .prop_map(|(chain, n, d, tx_count)| BlockHeader {
            chain,
            height: n[0],
            epoch: n[1],
            slot: n[2],
            parent: d[0],
            timestamp_ms: n[3],
            vertices_root: d[1],
            transactions_root: d[2],
            receipts_root: d[3],
            state_root: d[4],
            tx_count,
        })
}

fn vertex() -> impl Strategy<Value = Vertex> {
    chain().prop_flat_map(vertex_of)
}

fn vertex_of(chain: ChainId) -> impl Strategy<Value = Vertex> {
    (
        Just(chain),
        any::<u64>(),
        1..1000u64,
        0..4u16,
        prop::collection::btree_map(0..4u16, any::<[u8; 32]>(), 0..4),
        prop::collection::vec(transaction_of(chain), 0..3),
        any::<u64>(),
    )
        .prop_map(|(chain, epoch, round, author, parents, transactions, ts)| {
            UnsignedVertex {
                chain,
                epoch,
                round,
                author,
                parents: parents
                    .into_iter()
                    .map(|(author, d)| VertexRef {
                        author,
                        digest: Digest(d),
                    })
                    .collect(),
                transactions,
                timestamp_ms: ts,
            }
            .sign(&validator_keys()[usize::from(author)], NET)
        })
}

/// The properties every canonical type must have, checked on one value.
fn check_canonical<T: Canonical + PartialEq + std::fmt::Debug>(value: &T, cut: usize, junk: u8) {
    let bytes = value.to_canonical_bytes();
    let back = T::from_canonical_bytes(&bytes).expect("valid encoding decodes");
    assert_eq!(&back, value);
    assert_eq!(back.to_canonical_bytes(), bytes, "re-encoding differs");

    // Any strict prefix is refused.
    let cut = cut % bytes.len();
    assert!(
        T::from_canonical_bytes(&bytes[..cut]).is_err(),
        "prefix of {cut} bytes accepted"
    );

    // Trailing bytes are refused.
    let mut longer = bytes.clone();
    longer.push(junk);
    assert!(matches!(
        T::from_canonical_bytes(&longer),
        Err(DecodeError::TrailingBytes { .. }) | Err(DecodeError::TooLong { .. })
    ));

    // An unknown version is refused.
    let mut versioned = bytes.clone();
    versioned[0] = versioned[0].wrapping_add(1);
    assert!(matches!(
        T::from_canonical_bytes(&versioned),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
}

/// Whatever a decoder accepts must re-encode to the same bytes; nothing may panic.
fn check_mutation<T: Canonical>(value: &T, position: usize, xor: u8) {
    let mut bytes = value.to_canonical_bytes();
    let position = position % bytes.len();
    bytes[position] ^= xor.max(1);
    if let Ok(decoded) = T::from_canonical_bytes(&bytes) {
        assert_eq!(
            decoded.to_canonical_bytes(),
            bytes,
            "non-canonical bytes accepted"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn transactions_are_canonical(tx in transaction(), cut in any::<usize>(), junk in any::<u8>(),
                                  pos in any::<usize>(), xor in any::<u8>()) {
        check_canonical(&tx, cut, junk);
        check_mutation(&tx, pos, xor);
        prop_assert_eq!(SignedTransaction::from_canonical_bytes(&tx.to_canonical_bytes()).unwrap().digest(), tx.tx().digest());
    }

    #[test]
    fn receipts_are_canonical(r in receipt(), cut in any::<usize>(), junk in any::<u8>(),
                              pos in any::<usize>(), xor in any::<u8>()) {
        check_canonical(&r, cut, junk);
        check_mutation(&r, pos, xor);
    }

    #[test]
    fn headers_are_canonical(h in header(), cut in any::<usize>(), junk in any::<u8>(),
                             pos in any::<usize>(), xor in any::<u8>()) {
        check_canonical(&h, cut, junk);
        check_mutation(&h, pos, xor);
    }

    #[test]
    fn garbage_never_panics_and_is_canonical_if_accepted(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        fn probe<T: Canonical>(bytes: &[u8]) {
            if let Ok(v) = T::from_canonical_bytes(bytes) {
                assert_eq!(v.to_canonical_bytes(), bytes);
            }
        }
        probe::<SignedTransaction>(&bytes);
        probe::<Receipt>(&bytes);
        probe::<BlockHeader>(&bytes);
        probe::<Vertex>(&bytes);
        probe::<BlockCertificate>(&bytes);
        probe::<ValidatorSet>(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn vertices_are_canonical_and_verify(v in vertex(), cut in any::<usize>(), junk in any::<u8>(),
                                         pos in any::<usize>(), xor in any::<u8>()) {
        check_canonical(&v, cut, junk);
        check_mutation(&v, pos, xor);
        let decoded = Vertex::from_canonical_bytes(&v.to_canonical_bytes()).unwrap();
        prop_assert_eq!(decoded.digest(), v.content().digest());
    }
}

#[test]
fn oversized_inputs_are_refused_before_parsing() {
    let huge = vec![1u8; Receipt::MAX_ENCODED_LEN + 1];
    assert!(matches!(
        Receipt::from_canonical_bytes(&huge),
        Err(DecodeError::TooLong { .. })
    ));
    let huge = vec![1u8; SignedTransaction::MAX_ENCODED_LEN + 1];
    assert!(matches!(
        SignedTransaction::from_canonical_bytes(&huge),
        Err(DecodeError::TooLong { .. })
    ));
    // A transfer claiming 2^32-1 outputs in a tiny input is refused without allocating.
    let tx = Transaction {
        chain: ChainId::Delta,
        sender: Address([1; 32]),
        nonce: 0,
        fee: 0,
        payload: TxPayload::Transfer {
            outputs: vec![Output {
                to: Address([2; 32]),
                asset: AssetId::NATIVE,
                amount: 1,
            }],
        },
    }
    .unsigned();
    let mut bytes = tx.to_canonical_bytes();
    let len_at = 1 + 1 + 32 + 8 + 8 + 1;
    bytes[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        SignedTransaction::from_canonical_bytes(&bytes),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn certificates_verify_only_with_a_quorum_of_valid_votes() {
    let keys = validator_keys();
    let set = ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1))).unwrap();
    let header = BlockHeader {
        chain: ChainId::Alpha,
        height: 3,
        epoch: 0,
        slot: 9,
        parent: Digest([1; 32]),
        timestamp_ms: 5,
        vertices_root: Digest([2; 32]),
        transactions_root: Digest([3; 32]),
        receipts_root: Digest([4; 32]),
        state_root: Digest([5; 32]),
        tx_count: 0,
    };
    let votes: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i as u16, BlockCertificate::vote(k, &header, NET)))
        .collect();
    let cert = BlockCertificate::from_votes(&header, votes[..3].iter().cloned().rev());
    cert.verify(&header, &set, NET).unwrap();
    let back = BlockCertificate::from_canonical_bytes(&cert.to_canonical_bytes()).unwrap();
    assert_eq!(back, cert);

    let two = BlockCertificate::from_votes(&header, votes[..2].iter().cloned());
    assert!(
        two.verify(&header, &set, NET).is_err(),
        "2 of 4 is not a quorum"
    );

    let mut forged = cert.clone();
    forged.signatures[1].1 = votes[0].1.clone();
    assert!(
        forged.verify(&header, &set, NET).is_err(),
        "a copied vote must not count"
    );

    let mut other = header.clone();
    other.state_root = Digest([6; 32]);
    assert!(
        cert.verify(&other, &set, NET).is_err(),
        "certificate of another header"
    );
    assert!(
        matches!(
            cert.verify(&header, &set, OTHER_NET),
            Err(CertificateError::BadSignature { .. })
        ),
        "certificate of another network"
    );

    // Duplicate signers cannot be encoded: the decoder requires strictly increasing indices.
    let mut dup = cert.clone();
    dup.signatures[1] = dup.signatures[0].clone();
    assert!(matches!(
        BlockCertificate::from_canonical_bytes(&dup.to_canonical_bytes()),
        Err(DecodeError::NonCanonical { .. })
    ));
}

/// A vertex's batch is held to the payload limit and to the vertex's chain when it is
/// decoded, before any signature is checked.
#[test]
fn vertex_batches_over_the_payload_limit_or_of_the_other_chain_do_not_decode() {
    use dualchain_core::types::vertex_limits::{MAX_VERTEX_BYTES, MAX_VERTEX_PAYLOAD_BYTES};
    // Unsigned transfers with 256 outputs: about 12 KB each, so the byte limit is
    // reached long before the count limit.
    let memo = |chain: ChainId, nonce: u64| {
        Transaction {
            chain,
            sender: Address([1; 32]),
            nonce,
            fee: 1,
            payload: TxPayload::Transfer {
                outputs: vec![
                    Output {
                        to: Address([2; 32]),
                        asset: AssetId::NATIVE,
                        amount: 1,
                    };
                    256
                ],
            },
        }
        .unsigned()
    };
    let vertex = |transactions: Vec<SignedTransaction>| {
        UnsignedVertex {
            chain: ChainId::Delta,
            epoch: 0,
            round: 0,
            author: 0,
            parents: vec![],
            transactions,
            timestamp_ms: 1,
        }
        .sign(&validator_keys()[0], NET)
    };
    let one = memo(ChainId::Delta, 0);
    let fit = MAX_VERTEX_PAYLOAD_BYTES / one.encoded_len();
    let full: Vec<_> = (0..fit as u64).map(|n| memo(ChainId::Delta, n)).collect();
    let at_limit = vertex(full.clone());
    assert!(at_limit.content().payload_bytes() <= MAX_VERTEX_PAYLOAD_BYTES);
    let bytes = at_limit.to_canonical_bytes();
    assert!(bytes.len() <= MAX_VERTEX_BYTES);
    assert_eq!(Vertex::from_canonical_bytes(&bytes).unwrap(), at_limit);

    let mut over = full;
    over.push(memo(ChainId::Delta, fit as u64));
    let over = vertex(over);
    assert!(over.content().payload_bytes() > MAX_VERTEX_PAYLOAD_BYTES);
    assert!(matches!(
        Vertex::from_canonical_bytes(&over.to_canonical_bytes()),
        Err(DecodeError::TooLong {
            what: "vertex batch",
            ..
        })
    ));

    let mixed = vertex(vec![memo(ChainId::Delta, 0), memo(ChainId::Alpha, 1)]);
    let err = Vertex::from_canonical_bytes(&mixed.to_canonical_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .contains("chain alpha in a vertex of chain delta"),
        "{err}"
    );
}

#[test]
fn vertices_are_checked_against_the_validator_set() {
    let keys = validator_keys();
    let set = ValidatorSet::new(2, keys.iter().map(|k| (k.public().clone(), 1))).unwrap();
    let parents: Vec<VertexRef> = (0..3)
        .map(|a| VertexRef {
            author: a,
            digest: Digest([a as u8; 32]),
        })
        .collect();
    let make = |author: u16, parents: Vec<VertexRef>, epoch: u64| {
        UnsignedVertex {
            chain: ChainId::Delta,
            epoch,
            round: 5,
            author,
            parents,
            transactions: vec![],
            timestamp_ms: 1,
        }
        .sign(&keys[usize::from(author)], NET)
    };
    make(1, parents.clone(), 2).verify(&set, NET).unwrap();
    assert!(
        make(1, parents[..2].to_vec(), 2).verify(&set, NET).is_err(),
        "2 parents < quorum 3"
    );
    assert!(
        make(1, parents.clone(), 3).verify(&set, NET).is_err(),
        "wrong epoch"
    );
    // Signed by validator 2's key but claiming author 1.
    let mut content = make(1, parents.clone(), 2).content().clone();
    content.author = 1;
    let impostor = content.sign(&keys[2], NET);
    assert!(impostor.verify(&set, NET).is_err());
    // A vertex of another network (same keys, same content) is refused here.
    let foreign = make(1, parents.clone(), 2)
        .content()
        .clone()
        .sign(&keys[1], OTHER_NET);
    foreign.verify(&set, OTHER_NET).unwrap();
    assert!(matches!(
        foreign.verify(&set, NET),
        Err(VertexError::Signature(_))
    ));
}
