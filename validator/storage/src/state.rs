//! The state commitment of a database, defined once for every engine and caller.

use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};

use crate::{Column, KvEngine, Result};

/// The sparse Merkle tree over `(hash_key(key), hash_value(value))` of every entry of
/// the `state` column. Its root is the database's state root.
pub fn state_tree(engine: &dyn KvEngine) -> Result<SparseMerkleTree> {
    let mut leaves = Vec::new();
    for item in engine.scan_from(Column::State, &[])? {
        let (key, value) = item?;
        leaves.push((hash_key(&key), hash_value(&value)));
    }
    Ok(SparseMerkleTree::from_leaves(leaves))
}
