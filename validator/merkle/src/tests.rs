use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

// ---------------------------------------------------------------------------------------------
// Naive reference implementation, hashing spelled out independently of the crate's helpers.
// ---------------------------------------------------------------------------------------------

fn ref_node_hash(context: &str, a: &Hash32, b: &Hash32) -> Hash32 {
    let key = blake3::derive_key(context, b"");
    let mut hasher = blake3::Hasher::new_keyed(&key);
    hasher.update(a);
    hasher.update(b);
    *hasher.finalize().as_bytes()
}

fn ref_bit(key: &Hash32, i: usize) -> bool {
    key[i / 8] & (1 << (7 - i % 8)) != 0
}

/// Canonical compact-SMT root of a sorted, duplicate-free slice whose keys share `depth` bits.
fn ref_subtree(entries: &[(Hash32, Hash32)], depth: usize) -> Hash32 {
    match entries {
        [] => [0; 32],
        [(k, v)] => ref_node_hash("dualchain 2026-11 smt leaf v1", k, v),
        _ => {
            let split = entries
                .iter()
                .position(|(k, _)| ref_bit(k, depth))
                .unwrap_or(entries.len());
            let left = ref_subtree(&entries[..split], depth + 1);
            let right = ref_subtree(&entries[split..], depth + 1);
            ref_node_hash("dualchain 2026-11 smt internal v1", &left, &right)
        }
    }
}

fn ref_root(map: &BTreeMap<Hash32, Hash32>) -> Hash32 {
    let entries: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
    ref_subtree(&entries, 0)
}

/// Applies ops to a plain map with "last one wins" semantics.
fn apply_to_map(map: &mut BTreeMap<Hash32, Hash32>, ops: &[(Hash32, Option<Hash32>)]) {
    for (k, v) in ops {
        match v {
            Some(v) => map.insert(*k, *v),
            None => map.remove(k),
        };
    }
}

fn key_with_last_bit(base: u8, last: bool) -> Hash32 {
    let mut key = [base; 32];
    key[31] = (key[31] & !1) | last as u8;
    key
}

fn random_keys(rng: &mut ChaCha8Rng, n: usize) -> Vec<(Hash32, Hash32)> {
    (0..n).map(|_| (rng.random(), rng.random())).collect()
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Keys that are either uniformly random or share long prefixes with a fixed base key (so the
/// trees get deep, down to depth 256).
fn key_strategy() -> impl Strategy<Value = Hash32> {
    let clustered = (0usize..256, any::<[u8; 32]>()).prop_map(|(p, noise)| {
        let mut key = [0xA5u8; 32];
        for i in p..256 {
            let byte = i / 8;
            let mask = 0x80u8 >> (i % 8);
            key[byte] = (key[byte] & !mask) | (noise[byte] & mask);
        }
        key
    });
    prop_oneof![any::<[u8; 32]>(), clustered]
}

/// A pool of keys plus a sequence of ops on them (inserts, overwrites, deletes, re-inserts,
/// deletes of absent keys), plus chunk sizes used to split the ops into batches.
fn ops_strategy() -> impl Strategy<Value = (Vec<(Hash32, Option<Hash32>)>, Vec<usize>)> {
    prop::collection::vec(key_strategy(), 1..24).prop_flat_map(|pool| {
        let n = pool.len();
        let ops = prop::collection::vec((0..n, prop::option::weighted(0.7, any::<u8>())), 0..80)
            .prop_map(move |raw| {
                raw.into_iter()
                    .map(|(i, v)| (pool[i], v.map(|b| [b; 32])))
                    .collect::<Vec<_>>()
            });
        (ops, prop::collection::vec(1usize..20, 1..10))
    })
}

fn chunked<T: Clone>(items: &[T], sizes: &[usize]) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut rest = items;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        i += 1;
    }
    out
}

/// Checks every interesting proof property for `key` in `tree`.
fn check_proof(tree: &SparseMerkleTree, key: &Hash32) {
    let root = tree.root();
    let proof = tree.prove(key);
    let value = tree.get(key);
    assert_eq!(proof.verify(&root, key, value.as_ref()), Ok(()));
    assert_eq!(proof.is_inclusion(), value.is_some());

    // Round trip.
    let bytes = proof.to_bytes();
    assert_eq!(Proof::from_bytes(&bytes), Ok(proof.clone()));

    // Wrong root.
    let mut bad_root = root;
    bad_root[7] ^= 0x10;
    assert!(proof.verify(&bad_root, key, value.as_ref()).is_err());

    match value {
        Some(v) => {
            // Wrong value, wrong claim of absence, wrong key.
            let mut wrong = v;
            wrong[0] ^= 1;
            assert_eq!(
                proof.verify(&root, key, Some(&wrong)),
                Err(ProofError::RootMismatch)
            );
            assert_eq!(
                proof.verify(&root, key, None),
                Err(ProofError::ExpectedExclusion)
            );
            let mut other_key = *key;
            other_key[31] ^= 0x80;
            assert!(proof.verify(&root, &other_key, Some(&v)).is_err());
        }
        None => {
            assert_eq!(
                proof.verify(&root, key, Some(&[1; 32])),
                Err(ProofError::ExpectedInclusion)
            );
            if let Some((other_key, other_value)) = proof.other_leaf() {
                assert_eq!(tree.get(&other_key), Some(other_value));
                // The same proof must not prove the absence of the key it actually shows.
                assert!(proof.verify(&root, &other_key, None).is_err());
            }
        }
    }

    // Any flipped sibling byte breaks the proof.
    for i in 0..proof.siblings.len() {
        let mut bad = proof.clone();
        bad.siblings[i][i % 32] ^= 0x01;
        assert!(
            bad.verify(&root, key, value.as_ref()).is_err(),
            "sibling {i}"
        );
    }

    // Any modified byte of the encoding either fails to decode or fails to verify.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x41;
        if let Ok(decoded) = Proof::from_bytes(&bad) {
            assert!(
                decoded.verify(&root, key, value.as_ref()).is_err(),
                "byte {i} of {bytes:?}"
            );
        }
    }

    // Truncated and extended encodings are rejected.
    for len in 0..bytes.len() {
        assert_eq!(Proof::from_bytes(&bytes[..len]), Err(ProofError::Truncated));
    }
    let mut extended = bytes.clone();
    extended.push(0);
    assert_eq!(
        Proof::from_bytes(&extended),
        Err(ProofError::TrailingBytes(1))
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Root, len, get and iter agree with a BTreeMap model and the naive reference, however the
    /// ops are split into batches, and with a from_leaves build of the final map.
    #[test]
    fn root_independent_of_batching((ops, sizes) in ops_strategy()) {
        let mut model = BTreeMap::new();
        apply_to_map(&mut model, &ops);
        let expected = ref_root(&model);

        // All at once (duplicate keys inside one batch: last wins).
        let mut whole = SparseMerkleTree::new();
        prop_assert_eq!(whole.update_batch(ops.clone()), expected);

        // Random chunking, fully sequential and forking at every level.
        let mut seq = SparseMerkleTree::new();
        let mut par = SparseMerkleTree::new();
        let mut running = BTreeMap::new();
        for chunk in chunked(&ops, &sizes) {
            apply_to_map(&mut running, &chunk);
            let r1 = seq.update_batch_with_threshold(chunk.clone(), usize::MAX);
            let r2 = par.update_batch_with_threshold(chunk, 1);
            prop_assert_eq!(r1, ref_root(&running));
            prop_assert_eq!(r2, r1);
            prop_assert_eq!(seq.len(), running.len());
        }

        // One op at a time.
        let mut single = SparseMerkleTree::new();
        for (k, v) in &ops {
            match v {
                Some(v) => single.insert(*k, *v),
                None => single.remove(k),
            };
        }

        let built = SparseMerkleTree::from_leaves(model.iter().map(|(k, v)| (*k, *v)));
        for tree in [&whole, &seq, &par, &single, &built] {
            prop_assert_eq!(tree.root(), expected);
            prop_assert_eq!(tree.len(), model.len());
            prop_assert_eq!(tree.is_empty(), model.is_empty());
            let leaves: Vec<_> = tree.iter().collect();
            let model_leaves: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(leaves, model_leaves);
            for (k, _) in &ops {
                prop_assert_eq!(tree.get(k), model.get(k).copied());
            }
        }
    }

    /// Inserting a set in any order, or bulk-building it in any order, gives the same root.
    #[test]
    fn root_independent_of_order(
        (set, shuffled) in prop::collection::btree_map(key_strategy(), any::<[u8; 32]>(), 0..40)
            .prop_flat_map(|m| {
                let v: Vec<(Hash32, Hash32)> = m.into_iter().collect();
                (Just(v.clone()), Just(v).prop_shuffle())
            })
    ) {
        let model: BTreeMap<_, _> = set.iter().copied().collect();
        let expected = ref_root(&model);
        let mut tree = SparseMerkleTree::new();
        for (k, v) in &shuffled {
            tree.insert(*k, *v);
        }
        prop_assert_eq!(tree.root(), expected);
        prop_assert_eq!(SparseMerkleTree::from_leaves(shuffled.clone()).root(), expected);
        prop_assert_eq!(SparseMerkleTree::from_leaves(set.clone()).root(), expected);

        // Deleting everything in shuffled order collapses back to the empty root.
        for (i, (k, _)) in shuffled.iter().enumerate() {
            let root = tree.remove(k);
            let rest: BTreeMap<_, _> = shuffled[i + 1..].iter().copied().collect();
            prop_assert_eq!(root, ref_root(&rest));
        }
        prop_assert_eq!(tree.root(), EMPTY_ROOT);
        prop_assert!(tree.is_empty());
    }

    /// Proofs for present and absent keys verify, and every tampering is detected.
    #[test]
    fn proofs_verify_and_detect_tampering(
        (ops, _sizes) in ops_strategy(),
        absent in prop::collection::vec(key_strategy(), 0..8),
    ) {
        let mut tree = SparseMerkleTree::new();
        tree.update_batch(ops.clone());
        for (k, _) in &ops {
            check_proof(&tree, k);
        }
        for k in &absent {
            check_proof(&tree, k);
        }
    }

    /// Decoding garbage never panics, and anything that decodes re-encodes to the same bytes.
    #[test]
    fn from_bytes_garbage(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        if let Ok(proof) = Proof::from_bytes(&bytes) {
            prop_assert_eq!(proof.to_bytes(), bytes);
        }
    }

    /// Garbage with a plausible header (so decoding gets past the depth check) never panics.
    #[test]
    fn from_bytes_structured_garbage(
        depth in 0u16..300,
        fill in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..9000),
    ) {
        let mut bytes = depth.to_le_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(fill, usize::from(depth).div_ceil(8)));
        bytes.extend(body);
        if let Ok(proof) = Proof::from_bytes(&bytes) {
            prop_assert!(proof.depth() <= MAX_PROOF_DEPTH);
            prop_assert_eq!(proof.to_bytes(), bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_tree() {
    let tree = SparseMerkleTree::new();
    assert_eq!(tree.root(), EMPTY_ROOT);
    assert_eq!(EMPTY_ROOT, [0u8; 32]);
    assert!(tree.is_empty());
    assert_eq!(tree.len(), 0);
    assert_eq!(tree.iter().count(), 0);
    assert_eq!(tree.get(&[1; 32]), None);
    let proof = tree.prove(&[1; 32]);
    assert_eq!(proof.depth(), 0);
    assert_eq!(proof.verify(&EMPTY_ROOT, &[1; 32], None), Ok(()));
    assert_eq!(proof.to_bytes(), vec![0, 0, TAG_EMPTY]);
    check_proof(&tree, &[1; 32]);
    assert_eq!(SparseMerkleTree::default().root(), EMPTY_ROOT);
    assert_eq!(SparseMerkleTree::from_leaves([]).root(), EMPTY_ROOT);
    let mut t = SparseMerkleTree::new();
    assert_eq!(t.update_batch([]), EMPTY_ROOT);
    assert_eq!(t.update_batch([([3; 32], None)]), EMPTY_ROOT);
}

#[test]
fn single_key_and_delete_back_to_empty() {
    let key = hash_key(b"alice");
    let value = hash_value(b"100 coins");
    let mut tree = SparseMerkleTree::new();
    let root = tree.insert(key, value);
    assert_eq!(root, leaf_hash(&key, &value));
    assert_eq!(
        root,
        ref_node_hash("dualchain 2026-11 smt leaf v1", &key, &value)
    );
    assert_eq!(tree.len(), 1);
    assert_eq!(tree.get(&key), Some(value));
    let proof = tree.prove(&key);
    assert_eq!(proof.depth(), 0);
    assert_eq!(proof.verify(&root, &key, Some(&value)), Ok(()));
    check_proof(&tree, &key);
    check_proof(&tree, &hash_key(b"bob"));

    // Deleting an absent key changes nothing.
    assert_eq!(tree.remove(&hash_key(b"bob")), root);
    assert_eq!(tree.len(), 1);

    assert_eq!(tree.remove(&key), EMPTY_ROOT);
    assert!(tree.is_empty());
    assert_eq!(tree.get(&key), None);

    // Insert and delete in the same batch: last wins.
    assert_eq!(
        tree.update_batch([(key, Some(value)), (key, None)]),
        EMPTY_ROOT
    );
    assert_eq!(
        tree.update_batch([(key, None), (key, Some([9; 32])), (key, Some(value))]),
        root
    );
    assert_eq!(tree.len(), 1);
}

#[test]
fn keys_differing_only_in_last_bit() {
    let a = key_with_last_bit(0x3c, false);
    let b = key_with_last_bit(0x3c, true);
    let mut tree = SparseMerkleTree::new();
    let root = tree.update_batch([(a, Some([1; 32])), (b, Some([2; 32]))]);
    let model: BTreeMap<_, _> = [(a, [1; 32]), (b, [2; 32])].into_iter().collect();
    assert_eq!(root, ref_root(&model));

    for (key, value) in [(a, [1; 32]), (b, [2; 32])] {
        let proof = tree.prove(&key);
        assert_eq!(proof.depth(), 256);
        assert_eq!(proof.verify(&root, &key, Some(&value)), Ok(()));
        // Only the deepest sibling is non-empty: 2 + 32 + 32 + 1 bytes.
        assert_eq!(proof.to_bytes().len(), 2 + 32 + 32 + 1);
        check_proof(&tree, &key);
    }
    // An absent key deep on the same path ends in an empty slot below the shared chain.
    let mut c = a;
    c[31] ^= 0x02;
    let proof = tree.prove(&c);
    assert_eq!(proof.depth(), 255);
    assert_eq!(proof.verify(&root, &c, None), Ok(()));
    check_proof(&tree, &c);

    // Deleting one collapses the other all the way back up to the root.
    assert_eq!(tree.remove(&a), leaf_hash(&b, &[2; 32]));
    assert_eq!(tree.prove(&b).depth(), 0);
    assert_eq!(tree.len(), 1);
}

#[test]
fn non_inclusion_both_cases() {
    let k = |first: u8| {
        let mut key = [0u8; 32];
        key[0] = first;
        key
    };
    // 0x00.. and 0x20.. share bits 0 and 1; nothing starts with bit 1.
    let mut tree = SparseMerkleTree::new();
    let root = tree.update_batch([(k(0x00), Some([1; 32])), (k(0x20), Some([2; 32]))]);

    // Empty-slot case: the right child of the root is empty.
    let proof = tree.prove(&k(0x80));
    assert_eq!(proof.depth(), 1);
    assert_eq!(proof.other_leaf(), None);
    assert!(!proof.is_inclusion());
    assert_eq!(proof.verify(&root, &k(0x80), None), Ok(()));
    check_proof(&tree, &k(0x80));

    // Other-leaf case: add 0x80.., which then sits alone right under the root.
    let root = tree.insert(k(0x80), [3; 32]);
    let proof = tree.prove(&k(0xc0));
    assert_eq!(proof.depth(), 1);
    assert_eq!(proof.other_leaf(), Some((k(0x80), [3; 32])));
    assert_eq!(proof.verify(&root, &k(0xc0), None), Ok(()));
    assert_eq!(
        proof.verify(&root, &k(0x80), None),
        Err(ProofError::OtherLeafIsQueriedKey)
    );
    // A key that does not share the prefix cannot use this proof.
    assert_eq!(
        proof.verify(&root, &k(0x40), None),
        Err(ProofError::OtherLeafPrefixMismatch)
    );
    check_proof(&tree, &k(0xc0));

    // Other-leaf at depth 3: 0x00 and 0x20 split at bit 2; 0x10.. walks to the 0x00.. leaf.
    let proof = tree.prove(&k(0x10));
    assert_eq!(proof.depth(), 3);
    assert_eq!(proof.other_leaf(), Some((k(0x00), [1; 32])));
    assert_eq!(proof.verify(&root, &k(0x10), None), Ok(()));
    // The sibling at depth 2 (bit 1 = 1 side) is empty and is compressed away.
    assert_eq!(proof.siblings()[1], EMPTY_ROOT);
    assert_eq!(proof.to_bytes().len(), 2 + 1 + 2 * 32 + 1 + 64);
    check_proof(&tree, &k(0x10));
}

#[test]
fn tampered_terminals_are_rejected() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let leaves = random_keys(&mut rng, 200);
    let tree = SparseMerkleTree::from_leaves(leaves.clone());
    let root = tree.root();
    let (key, value) = leaves[17];

    // Turning an inclusion proof into an "empty slot" or "other leaf" proof fails.
    let mut proof = tree.prove(&key);
    proof.terminal = Terminal::Empty;
    assert!(proof.verify(&root, &key, None).is_err());
    proof.terminal = Terminal::OtherLeaf {
        key: leaves[18].0,
        value: leaves[18].1,
    };
    assert!(proof.verify(&root, &key, None).is_err());

    // Dropping or adding a sibling fails.
    let mut proof = tree.prove(&key);
    proof.siblings.pop();
    assert!(proof.verify(&root, &key, Some(&value)).is_err());
    let mut proof = tree.prove(&key);
    proof.siblings.push([5; 32]);
    assert!(proof.verify(&root, &key, Some(&value)).is_err());

    // A leaf whose last sibling is empty is not canonical.
    let mut proof = tree.prove(&key);
    *proof.siblings.last_mut().unwrap() = EMPTY_ROOT;
    assert!(matches!(
        proof.verify(&root, &key, Some(&value)),
        Err(ProofError::NonCanonicalShape(_))
    ));

    // Too many siblings.
    let proof = Proof {
        siblings: vec![[1; 32]; 257],
        terminal: Terminal::Empty,
    };
    assert_eq!(
        proof.verify(&root, &key, None),
        Err(ProofError::TooManySiblings(257))
    );
}

#[test]
fn from_bytes_rejects_non_canonical() {
    // Depth above 256.
    assert_eq!(
        Proof::from_bytes(&[1, 1]),
        Err(ProofError::TooManySiblings(257))
    );
    // Padding bits set: depth 1, bitmap 0b0100_0000.
    assert!(matches!(
        Proof::from_bytes(&[1, 0, 0x40, 0]),
        Err(ProofError::NonCanonical(_))
    ));
    // A present sibling that is all zeros.
    let mut bytes = vec![1, 0, 0x80];
    bytes.extend([0u8; 32]);
    bytes.push(TAG_EMPTY);
    assert!(matches!(
        Proof::from_bytes(&bytes),
        Err(ProofError::NonCanonical(_))
    ));
    // Unknown terminal.
    assert_eq!(
        Proof::from_bytes(&[0, 0, 3]),
        Err(ProofError::UnknownTerminal(3))
    );
    assert_eq!(Proof::from_bytes(&[]), Err(ProofError::Truncated));
    assert_eq!(Proof::from_bytes(&[0, 0]), Err(ProofError::Truncated));
    assert_eq!(
        Proof::from_bytes(&[0, 0, 0, 0]),
        Err(ProofError::TrailingBytes(1))
    );
    // Maximal proof round-trips.
    let proof = Proof {
        siblings: vec![[7; 32]; 256],
        terminal: Terminal::OtherLeaf {
            key: [1; 32],
            value: [2; 32],
        },
    };
    let bytes = proof.to_bytes();
    assert_eq!(bytes.len(), 2 + 32 + 256 * 32 + 1 + 64);
    assert_eq!(Proof::from_bytes(&bytes), Ok(proof));
    // Error messages are readable.
    assert_eq!(
        ProofError::TrailingBytes(3).to_string(),
        "proof encoding has 3 trailing bytes"
    );
}

#[test]
fn hashing_is_domain_separated() {
    let data = [42u8; 32];
    let k = hash_key(&data);
    let v = hash_value(&data);
    assert_ne!(k, v);
    assert_eq!(k, blake3::derive_key("dualchain 2026-11 smt key v1", &data));
    assert_eq!(
        v,
        blake3::derive_key("dualchain 2026-11 smt value v1", &data)
    );
    assert_ne!(leaf_hash(&data, &data), internal_hash(&data, &data));
    assert_ne!(leaf_hash(&k, &v), leaf_hash(&v, &k));
    assert_ne!(internal_hash(&k, &v), internal_hash(&v, &k));
}

/// The parallel path (forced at several thresholds) yields exactly the same tree as the
/// sequential one, on a tree large enough for rayon to actually split work.
#[test]
fn parallel_matches_sequential() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let initial = random_keys(&mut rng, 20_000);
    let mut seq = SparseMerkleTree::new();
    seq.update_batch_with_threshold(initial.iter().map(|(k, v)| (*k, Some(*v))), usize::MAX);
    let mut model: BTreeMap<_, _> = initial.iter().copied().collect();
    assert_eq!(seq.root(), ref_root(&model));

    let built = SparseMerkleTree::from_leaves(initial.clone());
    assert_eq!(built.root(), seq.root());

    // A mixed batch: overwrites, deletes, new keys, deletes of absent keys.
    let mut batch = Vec::new();
    for (i, (k, _)) in initial.iter().enumerate().take(6_000) {
        batch.push((*k, if i % 2 == 0 { None } else { Some(rng.random()) }));
    }
    for _ in 0..6_000 {
        batch.push((rng.random(), Some(rng.random())));
    }
    for _ in 0..500 {
        batch.push((rng.random(), None));
    }
    apply_to_map(&mut model, &batch);
    let expected = ref_root(&model);

    for threshold in [1, 2, 64, 1024, usize::MAX] {
        let mut tree = built.clone();
        assert_eq!(
            tree.update_batch_with_threshold(batch.clone(), threshold),
            expected,
            "threshold {threshold}"
        );
        assert_eq!(tree.len(), model.len());
    }
    let mut tree = built.clone();
    assert_eq!(tree.update_batch(batch), expected);
    assert!(tree.iter().eq(model.iter().map(|(k, v)| (*k, *v))));

    for (k, v) in model.iter().take(50) {
        assert_eq!(tree.prove(k).verify(&expected, k, Some(v)), Ok(()));
    }
}

#[test]
fn debug_is_short() {
    let tree = SparseMerkleTree::from_leaves([([1; 32], [2; 32])]);
    let s = format!("{tree:?}");
    assert!(s.starts_with("SparseMerkleTree { len: 1, root: "), "{s}");
    assert!(s.len() < 120);
}
