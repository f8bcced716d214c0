//! Named records of the `meta` column: the schema version and the chain head.

use crate::{Column, KvEngine, Result, SCHEMA_VERSION, StorageError, WriteBatch};

/// `meta` key of the schema version (u32, little-endian).
pub const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";
/// `meta` key of the [`ChainHead`] record.
pub const HEAD_KEY: &[u8] = b"head";

/// The last committed block of a chain, written in the same batch as the block.
///
/// It is the commit point: on reopen, whatever this record names is complete, because
/// it was written atomically with everything it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// 0 = Alpha, 1 = Delta (the `ChainId` tag of `dualchain-core`).
    pub chain: u8,
    pub height: u64,
    pub block_digest: [u8; 32],
    pub state_root: [u8; 32],
}

impl ChainHead {
    /// Encoded length: version byte, chain, height, digest, root.
    pub const ENCODED_LEN: usize = 1 + 1 + 8 + 32 + 32;
    const VERSION: u8 = 1;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0] = Self::VERSION;
        out[1] = self.chain;
        out[2..10].copy_from_slice(&self.height.to_le_bytes());
        out[10..42].copy_from_slice(&self.block_digest);
        out[42..74].copy_from_slice(&self.state_root);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::ENCODED_LEN || bytes[0] != Self::VERSION {
            return Err(StorageError::Corruption(format!(
                "chain head record has {} bytes (version {:?}); expected {} bytes of version {}",
                bytes.len(),
                bytes.first(),
                Self::ENCODED_LEN,
                Self::VERSION
            )));
        }
        let mut block_digest = [0u8; 32];
        let mut state_root = [0u8; 32];
        block_digest.copy_from_slice(&bytes[10..42]);
        state_root.copy_from_slice(&bytes[42..74]);
        Ok(Self {
            chain: bytes[1],
            height: u64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes")),
            block_digest,
            state_root,
        })
    }

    /// Adds this head to `batch` (the block's own batch).
    pub fn put_into(&self, batch: &mut WriteBatch) {
        batch.put(Column::Meta, HEAD_KEY.to_vec(), self.encode().to_vec());
    }
}

/// Reads the chain head, `None` for a database with no committed block.
pub fn read_head(engine: &dyn KvEngine) -> Result<Option<ChainHead>> {
    engine
        .get(Column::Meta, HEAD_KEY)?
        .map(|bytes| ChainHead::decode(&bytes))
        .transpose()
}

/// Writes [`SCHEMA_VERSION`] into an empty database or checks it in an existing one.
///
/// `is_new` tells whether the engine just created the database. An existing database
/// without a version record is adopted only if it holds no data at all (a crash
/// between creating it and writing this record); one with data is refused rather than
/// silently misread.
pub fn check_or_init_schema(engine: &dyn KvEngine, is_new: bool) -> Result<()> {
    match engine.get(Column::Meta, SCHEMA_VERSION_KEY)? {
        Some(bytes) => {
            let found = u32::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
                StorageError::Corruption(format!(
                    "schema version record has {} bytes, expected 4",
                    bytes.len()
                ))
            })?);
            if found != SCHEMA_VERSION {
                return Err(StorageError::SchemaMismatch {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            Ok(())
        }
        None if is_new || is_empty(engine)? => {
            let mut batch = WriteBatch::new();
            batch.put(
                Column::Meta,
                SCHEMA_VERSION_KEY.to_vec(),
                SCHEMA_VERSION.to_le_bytes().to_vec(),
            );
            engine.write(batch)
        }
        None => Err(StorageError::Corruption(
            "the database holds data but no schema version record; it was not written by dualchain"
                .into(),
        )),
    }
}

fn is_empty(engine: &dyn KvEngine) -> Result<bool> {
    for column in Column::ALL {
        if engine.scan_from(column, &[])?.next().is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryEngine;

    #[test]
    fn head_round_trips_and_rejects_bad_lengths() {
        let head = ChainHead {
            chain: 1,
            height: 42,
            block_digest: [7; 32],
            state_root: [9; 32],
        };
        assert_eq!(ChainHead::decode(&head.encode()).unwrap(), head);
        assert!(ChainHead::decode(&head.encode()[..73]).is_err());
        let mut wrong_version = head.encode();
        wrong_version[0] = 2;
        assert!(ChainHead::decode(&wrong_version).is_err());
    }

    #[test]
    fn schema_is_written_once_then_checked() {
        let engine = MemoryEngine::new();
        check_or_init_schema(&engine, true).unwrap();
        check_or_init_schema(&engine, false).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Meta,
            SCHEMA_VERSION_KEY.to_vec(),
            1u32.to_le_bytes().to_vec(),
        );
        engine.write(batch).unwrap();
        assert_eq!(
            check_or_init_schema(&engine, false),
            Err(StorageError::SchemaMismatch {
                found: 1,
                expected: SCHEMA_VERSION
            })
        );
        // An existing but empty database (crash right after creation) is adopted…
        check_or_init_schema(&MemoryEngine::new(), false).unwrap();
        // …one holding data without a version record is refused.
        let foreign = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(Column::State, b"k".to_vec(), b"v".to_vec());
        foreign.write(batch).unwrap();
        assert!(matches!(
            check_or_init_schema(&foreign, false),
            Err(StorageError::Corruption(_))
        ));
    }
}
