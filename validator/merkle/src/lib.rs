//! BLAKE3 sparse Merkle tree: the state commitment of dualchain.
//!
//! The tree maps 256-bit keys to 256-bit value hashes (use [`hash_key`] and [`hash_value`]
//! to turn arbitrary bytes into both) and commits to the whole map with one 32-byte root.
//! It supports batched, parallel updates ([`SparseMerkleTree::update_batch`]), bulk builds
//! ([`SparseMerkleTree::from_leaves`]) and compact inclusion / non-inclusion [`Proof`]s.
//!
//! # Canonical shape (why the root depends only on the set of pairs)
//!
//! Conceptually this is a binary trie of depth 256: bit `i` of a key (most significant bit
//! of byte 0 first, so key order is plain byte-wise order) chooses the left (`0`) or right
//! (`1`) child at depth `i`. Storing 2^256 slots is impossible, so the tree is *compact*,
//! in the style of Diem/Aptos' Jellyfish Merkle tree. The subtree at a key prefix `p` is a
//! pure function of the keys that start with `p`:
//!
//! * no key → the **empty** subtree, whose hash is the constant [`EMPTY_ROOT`] (all zeros);
//! * exactly one key → a **leaf** placed right there, i.e. every leaf sits at the shallowest
//!   depth at which its key prefix is unique;
//! * two or more keys → an **internal** node whose children are the subtrees for `p‖0` and
//!   `p‖1` (one of them may be empty when all keys share a longer prefix).
//!
//! Because the shape is defined by the set of keys alone, the root never depends on insertion
//! order, on how updates were split into batches, or on deletions that happened in between:
//! every update re-establishes the canonical form. In particular a delete that leaves a
//! single leaf under an internal node *collapses* that leaf upwards until its sibling is
//! non-empty, and an internal node whose children are both empty becomes empty.
//!
//! # Hashing and domain separation
//!
//! All hashing is BLAKE3 with four distinct derive-key contexts, so a hash produced for one
//! purpose can never be reinterpreted as another one:
//!
//! | purpose | definition |
//! |---|---|
//! | key hash | `BLAKE3-derive_key("dualchain 2026-11 smt key v1", key_bytes)` |
//! | value hash | `BLAKE3-derive_key("dualchain 2026-11 smt value v1", value_bytes)` |
//! | leaf node | `BLAKE3-keyed(K_leaf, key ‖ value_hash)` |
//! | internal node | `BLAKE3-keyed(K_internal, left_hash ‖ right_hash)` |
//! | empty subtree | `[0; 32]` ([`EMPTY_ROOT`]) |
//!
//! where `K_leaf = BLAKE3-derive_key("dualchain 2026-11 smt leaf v1", "")` and
//! `K_internal = BLAKE3-derive_key("dualchain 2026-11 smt internal v1", "")`. The node keys
//! are derived once; hashing a node is then a single 64-byte BLAKE3 compression via
//! `blake3::keyed_hash` (cheaper than cloning a pre-keyed `blake3::Hasher`, which copies its
//! ~2 KiB chaining-value stack). The leaf hash includes the full key, so it does not need the
//! depth: a leaf that moves up or down when its neighbours change keeps its hash. Leaves and
//! internal nodes use different keys, so a proof can neither stop early (claiming an internal
//! node is a leaf) nor continue below a leaf. Finding a node whose hash is all zeros is a
//! preimage attack, so the empty constant cannot be forged either.
//!
//! # Proofs
//!
//! A [`Proof`] for key `k` records the walk from the root along `k`'s bits: the sibling hash at
//! every level (root first) and how the walk ended:
//!
//! * at a leaf holding `k` → inclusion proof (the verifier supplies the value hash);
//! * at an empty subtree → non-inclusion proof;
//! * at a leaf holding another key `k'` that shares the walked prefix → non-inclusion proof;
//!   the proof carries `k'` and its value hash so the verifier can rebuild the leaf hash.
//!
//! The verifier recomputes the root bottom-up and compares. It also checks the canonical-shape
//! invariants an honest tree always satisfies (the last sibling of a non-root leaf or empty
//! slot is non-empty; the other leaf really shares the prefix and is a different key).
//!
//! Wire format ([`Proof::to_bytes`]), all of it canonical (exactly one encoding per proof):
//!
//! ```text
//! u16 LE        depth d = number of siblings, 0..=256
//! ceil(d/8) B   bitmap, bit i (MSB first within each byte) = 1 iff sibling i is non-empty;
//!               padding bits must be 0
//! 32 B × n      the n non-empty siblings, root first; none may be all zeros
//! u8            terminal: 0 = empty slot, 1 = leaf of the queried key, 2 = other leaf
//! 64 B          only for terminal 2: the other leaf's key and value hash
//! ```
//!
//! Empty siblings (common near the leaves and on shared-prefix chains) cost one bit, so a
//! proof in a tree of `n` random keys is about `32·log2(n) + 4` bytes (~0.7 KB at 1M keys).
//!
//! # Memory layout
//!
//! ```text
//! enum Node { Empty, Leaf(Box<Leaf>), Internal(Box<Internal>) }   // 16 bytes
//! struct Leaf { key: [u8; 32], value: [u8; 32] }                    // 64 bytes -> 80 B malloc chunk
//! struct Internal { hashes: [[u8; 32]; 2], children: [Node; 2] }    // 96 bytes -> 112 B malloc chunk
//! ```
//!
//! An internal node stores the hashes of its *children* (a node's own hash lives in its
//! parent; the root hash lives in the tree). Recomputing a node on an updated path then reads
//! only that node: the untouched sibling is neither dereferenced (a cache/TLB miss on a
//! 200+ MB tree) nor re-hashed (leaves do not cache their hash), and proofs copy siblings
//! straight out of the path nodes. A compact trie over `n` random keys has `n` leaves and
//! about `n / ln 2 ≈ 1.44 n` internal nodes (`n - 1` branching nodes plus ~0.44 n single-child
//! nodes on shared-prefix chains), so the tree costs about **80 + 1.44 × 112 ≈ 241 bytes per
//! key** including glibc allocator overhead (~202 bytes of payload). Storing each node's own
//! hash instead (64-byte internal nodes) would be ~195 bytes per key but costs an extra miss
//! and often an extra leaf hash per touched node; we chose speed over the ~20% memory.
//!
//! # Complexity
//!
//! With `n` keys (random, so depth ≈ log2 n) and a batch of `m` updates:
//!
//! * [`SparseMerkleTree::update_batch`]: `O(m log m)` to sort the batch once, then a single
//!   recursive descent that splits the sorted batch by key bit (a binary search per node) and
//!   only visits the union of the touched paths, about `m · (log2 n − log2 m + 2)` nodes, each
//!   recomputed with one hash. While a sub-batch has at least 1024 keys its two halves are
//!   processed with `rayon::join`; below that it runs sequentially. Nodes are updated in place
//!   and their boxes are reused, so only structurally new nodes allocate.
//! * [`SparseMerkleTree::from_leaves`]: the same algorithm on an empty tree, `O(n log n)`.
//! * [`SparseMerkleTree::get`], [`SparseMerkleTree::prove`]: `O(depth)`; verification hashes
//!   `depth + 1` times.

use std::fmt;
use std::sync::LazyLock;

use rayon::prelude::*;

/// A 32-byte hash: keys, value hashes and node hashes are all of this type.
pub type Hash32 = [u8; 32];

/// Root of the empty tree, and the hash of every empty subtree: all zeros.
pub const EMPTY_ROOT: Hash32 = [0u8; 32];

/// Maximum number of siblings in a proof (one per bit of the key).
pub const MAX_PROOF_DEPTH: usize = 256;

/// Derive-key context for [`hash_key`].
pub const KEY_CONTEXT: &str = "dualchain 2026-11 smt key v1";
/// Derive-key context for [`hash_value`].
pub const VALUE_CONTEXT: &str = "dualchain 2026-11 smt value v1";
/// Context from which the leaf-node hashing key is derived.
pub const LEAF_CONTEXT: &str = "dualchain 2026-11 smt leaf v1";
/// Context from which the internal-node hashing key is derived.
pub const INTERNAL_CONTEXT: &str = "dualchain 2026-11 smt internal v1";

/// Sub-batches at least this large are split across threads with `rayon::join`.
const DEFAULT_PAR_THRESHOLD: usize = 1024;

static LEAF_KEY: LazyLock<Hash32> = LazyLock::new(|| blake3::derive_key(LEAF_CONTEXT, b""));
static INTERNAL_KEY: LazyLock<Hash32> = LazyLock::new(|| blake3::derive_key(INTERNAL_CONTEXT, b""));

/// Hashes arbitrary key bytes into a tree key.
pub fn hash_key(key: &[u8]) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
    hasher.update(key);
    *hasher.finalize().as_bytes()
}

/// Hashes arbitrary value bytes into the value hash stored in the tree.
pub fn hash_value(value: &[u8]) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(VALUE_CONTEXT);
    hasher.update(value);
    *hasher.finalize().as_bytes()
}

#[inline]
fn hash_pair(node_key: &Hash32, a: &Hash32, b: &Hash32) -> Hash32 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    *blake3::keyed_hash(node_key, &buf).as_bytes()
}

/// Hash of a leaf node holding `key -> value`.
pub fn leaf_hash(key: &Hash32, value: &Hash32) -> Hash32 {
    hash_pair(&LEAF_KEY, key, value)
}

/// Hash of an internal node with the given child hashes.
pub fn internal_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    hash_pair(&INTERNAL_KEY, left, right)
}

/// Bit `i` of `key`, most significant bit of byte 0 first.
#[inline]
fn bit(key: &Hash32, i: usize) -> usize {
    ((key[i / 8] >> (7 - (i % 8))) & 1) as usize
}

#[derive(Clone, Default)]
enum Node {
    #[default]
    Empty,
    Leaf(Box<Leaf>),
    Internal(Box<Internal>),
}

#[derive(Clone)]
struct Leaf {
    key: Hash32,
    value: Hash32,
}

/// An internal node stores the hashes of its children (its own hash lives in its parent, or in
/// the tree for the root), so recomputing a node on an updated path never has to visit or
/// re-hash the untouched sibling.
#[derive(Clone, Default)]
struct Internal {
    hashes: [Hash32; 2],
    children: [Node; 2],
}

/// Turns an internal node whose children were just updated into the canonical node for its
/// position, and stores that node's hash in `hash`.
#[inline]
fn settle(mut internal: Box<Internal>, hash: &mut Hash32) -> Node {
    match &internal.children {
        [Node::Empty, Node::Empty] => {
            *hash = EMPTY_ROOT;
            Node::Empty
        }
        [Node::Leaf(_), Node::Empty] => {
            *hash = internal.hashes[0];
            std::mem::take(&mut internal.children[0])
        }
        [Node::Empty, Node::Leaf(_)] => {
            *hash = internal.hashes[1];
            std::mem::take(&mut internal.children[1])
        }
        _ => {
            *hash = internal_hash(&internal.hashes[0], &internal.hashes[1]);
            Node::Internal(internal)
        }
    }
}

type Update = (Hash32, Option<Hash32>);

/// Applies `batch` (sorted by key, no duplicate keys, all keys sharing the `depth`-bit prefix
/// of `node`'s position) to `node`, leaving it canonical. `hash` is the node's hash on entry
/// and is updated to the new one. Returns the change in leaf count.
fn update_node(
    node: &mut Node,
    hash: &mut Hash32,
    depth: usize,
    batch: &[Update],
    par_threshold: usize,
) -> isize {
    if batch.is_empty() {
        return 0;
    }
    match std::mem::take(node) {
        Node::Empty => {
            if let [(key, value)] = *batch {
                return match value {
                    Some(value) => {
                        *hash = leaf_hash(&key, &value);
                        *node = Node::Leaf(Box::new(Leaf { key, value }));
                        1
                    }
                    None => 0,
                };
            }
            let mut internal = Box::<Internal>::default();
            let delta = update_children(&mut internal, depth, batch, par_threshold);
            *node = settle(internal, hash);
            delta
        }
        Node::Leaf(mut leaf) => {
            if let [(key, value)] = *batch
                && key == leaf.key
            {
                return match value {
                    Some(value) => {
                        leaf.value = value;
                        *hash = leaf_hash(&key, &value);
                        *node = Node::Leaf(leaf);
                        0
                    }
                    None => {
                        *hash = EMPTY_ROOT;
                        -1
                    }
                };
            }
            // Push the leaf one level down (keeping its known hash) and treat this position
            // as an internal node; `settle` lifts it back up if it ends up alone.
            let side = bit(&leaf.key, depth);
            let mut internal = Box::<Internal>::default();
            internal.hashes[side] = *hash;
            internal.children[side] = Node::Leaf(leaf);
            let delta = update_children(&mut internal, depth, batch, par_threshold);
            *node = settle(internal, hash);
            delta
        }
        Node::Internal(mut internal) => {
            let delta = update_children(&mut internal, depth, batch, par_threshold);
            *node = settle(internal, hash);
            delta
        }
    }
}

/// Splits `batch` by the key bit at `depth` and updates both children, in parallel if large.
fn update_children(
    internal: &mut Internal,
    depth: usize,
    batch: &[Update],
    par_threshold: usize,
) -> isize {
    // Every key in the batch shares the first `depth` bits and the batch has no duplicates,
    // so with >= 2 keys they must differ at some bit >= depth, i.e. depth < 256.
    debug_assert!(depth < MAX_PROOF_DEPTH);
    let split = batch.partition_point(|(key, _)| bit(key, depth) == 0);
    let (left_batch, right_batch) = batch.split_at(split);
    let Internal { hashes, children } = internal;
    let [left_hash, right_hash] = hashes;
    let [left, right] = children;
    if batch.len() >= par_threshold && !left_batch.is_empty() && !right_batch.is_empty() {
        let (a, b) = rayon::join(
            || update_node(left, left_hash, depth + 1, left_batch, par_threshold),
            || update_node(right, right_hash, depth + 1, right_batch, par_threshold),
        );
        a + b
    } else {
        update_node(left, left_hash, depth + 1, left_batch, par_threshold)
            + update_node(right, right_hash, depth + 1, right_batch, par_threshold)
    }
}

/// An incrementally updated BLAKE3 sparse Merkle tree (see the crate docs for the design).
#[derive(Clone, Default)]
pub struct SparseMerkleTree {
    root: Node,
    root_hash: Hash32,
    len: usize,
}

impl fmt::Debug for SparseMerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseMerkleTree")
            .field("len", &self.len)
            .field("root", &Hex(&self.root()))
            .finish()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl SparseMerkleTree {
    /// Creates an empty tree (root [`EMPTY_ROOT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a tree from `(key, value_hash)` pairs in parallel. For duplicate keys the last
    /// pair wins.
    pub fn from_leaves(leaves: impl IntoIterator<Item = (Hash32, Hash32)>) -> Self {
        let mut tree = Self::new();
        tree.update_batch(leaves.into_iter().map(|(k, v)| (k, Some(v))));
        tree
    }

    /// The root hash committing to the current set of pairs.
    pub fn root(&self) -> Hash32 {
        self.root_hash
    }

    /// Number of keys in the tree.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value hash stored for `key`, if any.
    pub fn get(&self, key: &Hash32) -> Option<Hash32> {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Empty => return None,
                Node::Leaf(leaf) => return (leaf.key == *key).then_some(leaf.value),
                Node::Internal(internal) => {
                    node = &internal.children[bit(key, depth)];
                    depth += 1;
                }
            }
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &Hash32) -> bool {
        self.get(key).is_some()
    }

    /// Applies a batch: `Some(v)` = insert/overwrite, `None` = delete. For duplicate keys in
    /// one batch the LAST one wins. Returns the new root. Uses all cores (`rayon::join` down
    /// the upper levels of the tree) for large batches, sequential for small ones.
    pub fn update_batch(
        &mut self,
        updates: impl IntoIterator<Item = (Hash32, Option<Hash32>)>,
    ) -> Hash32 {
        self.update_batch_with_threshold(updates, DEFAULT_PAR_THRESHOLD)
    }

    /// [`Self::update_batch`] with an explicit parallelism threshold: sub-batches with at
    /// least `par_threshold` keys are split across threads (`usize::MAX` = fully sequential,
    /// `0` or `1` = fork at every level). The resulting tree is identical either way.
    pub fn update_batch_with_threshold(
        &mut self,
        updates: impl IntoIterator<Item = (Hash32, Option<Hash32>)>,
        par_threshold: usize,
    ) -> Hash32 {
        let mut batch: Vec<Update> = updates.into_iter().collect();
        // Stable sort so that equal keys keep their batch order; then keep the last of each run.
        if batch.len() >= par_threshold.max(DEFAULT_PAR_THRESHOLD) {
            batch.par_sort_by_key(|a| a.0);
        } else {
            batch.sort_by_key(|a| a.0);
        }
        let mut write = 0;
        for read in 0..batch.len() {
            if read + 1 < batch.len() && batch[read + 1].0 == batch[read].0 {
                continue;
            }
            batch[write] = batch[read];
            write += 1;
        }
        batch.truncate(write);

        let delta = update_node(
            &mut self.root,
            &mut self.root_hash,
            0,
            &batch,
            par_threshold.max(1),
        );
        self.len = self
            .len
            .checked_add_signed(delta)
            .expect("leaf count cannot go negative");
        self.root()
    }

    /// Inserts or overwrites one key; returns the new root.
    pub fn insert(&mut self, key: Hash32, value: Hash32) -> Hash32 {
        self.update_batch([(key, Some(value))])
    }

    /// Deletes one key (a no-op if absent); returns the new root.
    pub fn remove(&mut self, key: &Hash32) -> Hash32 {
        self.update_batch([(*key, None)])
    }

    /// Proves that `key` is present (with its current value) or absent.
    pub fn prove(&self, key: &Hash32) -> Proof {
        let mut siblings = Vec::new();
        let mut node = &self.root;
        let terminal = loop {
            match node {
                Node::Empty => break Terminal::Empty,
                Node::Leaf(leaf) if leaf.key == *key => break Terminal::Included,
                Node::Leaf(leaf) => {
                    break Terminal::OtherLeaf {
                        key: leaf.key,
                        value: leaf.value,
                    };
                }
                Node::Internal(internal) => {
                    let b = bit(key, siblings.len());
                    siblings.push(internal.hashes[1 - b]);
                    node = &internal.children[b];
                }
            }
        };
        Proof { siblings, terminal }
    }

    /// All `(key, value_hash)` pairs in ascending key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            stack: vec![&self.root],
        }
    }
}

impl<'a> IntoIterator for &'a SparseMerkleTree {
    type Item = (Hash32, Hash32);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(Hash32, Hash32)> for SparseMerkleTree {
    fn from_iter<I: IntoIterator<Item = (Hash32, Hash32)>>(iter: I) -> Self {
        Self::from_leaves(iter)
    }
}

/// Iterator over the leaves of a [`SparseMerkleTree`] in key order.
pub struct Iter<'a> {
    stack: Vec<&'a Node>,
}

impl Iterator for Iter<'_> {
    type Item = (Hash32, Hash32);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(node) = self.stack.pop() {
            match node {
                Node::Empty => {}
                Node::Leaf(leaf) => return Some((leaf.key, leaf.value)),
                Node::Internal(internal) => {
                    self.stack.push(&internal.children[1]);
                    self.stack.push(&internal.children[0]);
                }
            }
        }
        None
    }
}

/// How the walk of a proof ends.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Terminal {
    /// An empty subtree: the key is absent.
    Empty,
    /// The leaf of the queried key itself: the key is present.
    Included,
    /// The leaf of a different key sharing the walked prefix: the queried key is absent.
    OtherLeaf { key: Hash32, value: Hash32 },
}

const TAG_EMPTY: u8 = 0;
const TAG_INCLUDED: u8 = 1;
const TAG_OTHER_LEAF: u8 = 2;

/// An inclusion or non-inclusion proof for one key (see the crate docs for the format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Sibling hashes from the root downwards; `siblings[i]` is the sibling at depth `i + 1`.
    siblings: Vec<Hash32>,
    terminal: Terminal,
}

/// Why a proof failed to decode or verify.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The encoding ended early.
    #[error("proof encoding is truncated")]
    Truncated,
    /// Bytes remain after a complete proof.
    #[error("proof encoding has {0} trailing bytes")]
    TrailingBytes(usize),
    /// More siblings than key bits.
    #[error("proof has {0} siblings, more than the maximum of 256")]
    TooManySiblings(usize),
    /// The terminal tag byte is unknown.
    #[error("unknown proof terminal tag {0}")]
    UnknownTerminal(u8),
    /// The encoding is not the unique canonical one.
    #[error("non-canonical proof encoding: {0}")]
    NonCanonical(&'static str),
    /// The proof describes a tree shape an honest (canonical) tree never has.
    #[error("proof does not describe a canonical tree: {0}")]
    NonCanonicalShape(&'static str),
    /// A value was expected but the proof shows the key is absent.
    #[error("proof shows the key is absent, but inclusion of a value was expected")]
    ExpectedInclusion,
    /// Absence was expected but the proof shows the key is present.
    #[error("proof shows the key is present, but its absence was expected")]
    ExpectedExclusion,
    /// The non-inclusion leaf has the queried key itself.
    #[error("non-inclusion proof ends at a leaf holding the queried key")]
    OtherLeafIsQueriedKey,
    /// The non-inclusion leaf's key is not on the queried key's path.
    #[error("non-inclusion proof's leaf key does not share the path prefix with the queried key")]
    OtherLeafPrefixMismatch,
    /// The recomputed root differs from the expected one.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
}

impl Proof {
    /// Number of siblings, i.e. the depth at which the walk ended.
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }

    /// Sibling hashes from the root downwards.
    pub fn siblings(&self) -> &[Hash32] {
        &self.siblings
    }

    /// Whether this is an inclusion proof (the walk ended at the queried key's leaf).
    pub fn is_inclusion(&self) -> bool {
        self.terminal == Terminal::Included
    }

    /// For a non-inclusion proof ending at another key's leaf: that leaf's `(key, value_hash)`.
    pub fn other_leaf(&self) -> Option<(Hash32, Hash32)> {
        match self.terminal {
            Terminal::OtherLeaf { key, value } => Some((key, value)),
            _ => None,
        }
    }

    /// `value = Some(v)`: proves `key -> v` is in the tree with `root`; `None`: proves `key`
    /// is absent.
    pub fn verify(
        &self,
        root: &Hash32,
        key: &Hash32,
        value: Option<&Hash32>,
    ) -> Result<(), ProofError> {
        let depth = self.siblings.len();
        if depth > MAX_PROOF_DEPTH {
            return Err(ProofError::TooManySiblings(depth));
        }
        let mut hash = match (&self.terminal, value) {
            (Terminal::Included, Some(value)) => leaf_hash(key, value),
            (Terminal::Included, None) => return Err(ProofError::ExpectedExclusion),
            (_, Some(_)) => return Err(ProofError::ExpectedInclusion),
            (Terminal::Empty, None) => EMPTY_ROOT,
            (
                Terminal::OtherLeaf {
                    key: other,
                    value: other_value,
                },
                None,
            ) => {
                if other == key {
                    return Err(ProofError::OtherLeafIsQueriedKey);
                }
                if (0..depth).any(|i| bit(other, i) != bit(key, i)) {
                    return Err(ProofError::OtherLeafPrefixMismatch);
                }
                leaf_hash(other, other_value)
            }
        };
        // In a canonical tree the parent of a non-root leaf or empty slot holds >= 2 keys, all
        // of them (empty slot) or all but one (leaf) in the sibling, so that sibling is non-empty.
        if self.siblings.last() == Some(&EMPTY_ROOT) {
            return Err(ProofError::NonCanonicalShape(
                "the last sibling of a leaf or empty slot must be non-empty",
            ));
        }
        for (i, sibling) in self.siblings.iter().enumerate().rev() {
            hash = if bit(key, i) == 0 {
                internal_hash(&hash, sibling)
            } else {
                internal_hash(sibling, &hash)
            };
        }
        if hash == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }

    /// Canonical byte encoding (see the crate docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let depth = self.siblings.len();
        let present = self.siblings.iter().filter(|s| **s != EMPTY_ROOT).count();
        let mut out = Vec::with_capacity(2 + depth.div_ceil(8) + 32 * present + 1 + 64);
        out.extend_from_slice(&(depth as u16).to_le_bytes());
        let mut bitmap = vec![0u8; depth.div_ceil(8)];
        for (i, sibling) in self.siblings.iter().enumerate() {
            if *sibling != EMPTY_ROOT {
                bitmap[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out.extend_from_slice(&bitmap);
        for sibling in self.siblings.iter().filter(|s| **s != EMPTY_ROOT) {
            out.extend_from_slice(sibling);
        }
        match &self.terminal {
            Terminal::Empty => out.push(TAG_EMPTY),
            Terminal::Included => out.push(TAG_INCLUDED),
            Terminal::OtherLeaf { key, value } => {
                out.push(TAG_OTHER_LEAF);
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
        }
        out
    }

    /// Decodes [`Proof::to_bytes`] output. Rejects more than 256 siblings, trailing bytes and
    /// non-canonical encodings (set padding bits, an all-zero sibling marked as present).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut reader = Reader { bytes };
        let depth = u16::from_le_bytes(*reader.take::<2>()?) as usize;
        if depth > MAX_PROOF_DEPTH {
            return Err(ProofError::TooManySiblings(depth));
        }
        let bitmap = reader.take_slice(depth.div_ceil(8))?;
        if !depth.is_multiple_of(8) && bitmap[depth / 8] & (0xff >> (depth % 8)) != 0 {
            return Err(ProofError::NonCanonical("bitmap padding bits must be zero"));
        }
        let mut siblings = Vec::with_capacity(depth);
        for i in 0..depth {
            if bitmap[i / 8] & (0x80 >> (i % 8)) != 0 {
                let sibling = *reader.take::<32>()?;
                if sibling == EMPTY_ROOT {
                    return Err(ProofError::NonCanonical(
                        "empty sibling must be encoded in the bitmap",
                    ));
                }
                siblings.push(sibling);
            } else {
                siblings.push(EMPTY_ROOT);
            }
        }
        let terminal = match reader.take::<1>()?[0] {
            TAG_EMPTY => Terminal::Empty,
            TAG_INCLUDED => Terminal::Included,
            TAG_OTHER_LEAF => Terminal::OtherLeaf {
                key: *reader.take::<32>()?,
                value: *reader.take::<32>()?,
            },
            tag => return Err(ProofError::UnknownTerminal(tag)),
        };
        if !reader.bytes.is_empty() {
            return Err(ProofError::TrailingBytes(reader.bytes.len()));
        }
        Ok(Proof { siblings, terminal })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take_slice(&mut self, n: usize) -> Result<&'a [u8], ProofError> {
        if self.bytes.len() < n {
            return Err(ProofError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn take<const N: usize>(&mut self) -> Result<&'a [u8; N], ProofError> {
        Ok(self
            .take_slice(N)?
            .try_into()
            .expect("take_slice returned N bytes"))
    }
}

#[cfg(test)]
mod tests;
