//! An in-memory [`KvEngine`] for unit tests and the deterministic simulator.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Column, KvEngine, KvIter, Result, StorageError, WriteBatch, WriteOp};

type ColumnMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// Column families as ordered maps behind one lock, so a batch is applied atomically
/// with respect to every reader. Scans copy the matching range at creation, which
/// gives them the consistent view the trait promises.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    columns: RwLock<[ColumnMap; Column::ALL.len()]>,
    fail_writes: AtomicBool,
    /// Writes whose batch demanded a sync ([`WriteBatch::requires_sync`]): what a
    /// durable engine would have fsync'ed under any policy.
    required_syncs: AtomicU64,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following `write` fail with an I/O error (a full disk, say) without
    /// applying anything, until switched off again. For failure tests.
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Applied writes whose batch required a sync whatever the policy.
    pub fn required_syncs(&self) -> u64 {
        self.required_syncs.load(Ordering::SeqCst)
    }

    /// Number of entries in `column`.
    pub fn len(&self, column: Column) -> usize {
        self.read()[column.index()].len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, [ColumnMap; Column::ALL.len()]> {
        // Writers only insert into and remove from ordered maps, which cannot panic
        // midway through a batch, so a poisoned lock still guards consistent data.
        self.columns.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl KvEngine for MemoryEngine {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read()[column.index()].get(key).cloned())
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StorageError::Io(
                "injected write failure (no space left on device)".into(),
            ));
        }
        if batch.requires_sync() {
            self.required_syncs.fetch_add(1, Ordering::SeqCst);
        }
        let mut columns = self.columns.write().unwrap_or_else(|e| e.into_inner());
        for op in batch.into_ops() {
            match op {
                WriteOp::Put { column, key, value } => {
                    columns[column.index()].insert(key, value);
                }
                WriteOp::Delete { column, key } => {
                    columns[column.index()].remove(&key);
                }
            }
        }
        Ok(())
    }

    fn scan_from<'a>(&'a self, column: Column, start: &[u8]) -> Result<KvIter<'a>> {
        let items: Vec<_> = self.read()[column.index()]
            .range(start.to_vec()..)
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Ok(Box::new(items.into_iter()))
    }

    /// Copies only the matching keys (the default would copy the column's whole tail
    /// from the prefix on and then stop: quadratic over a chain's receipts).
    fn scan_prefix<'a>(&'a self, column: Column, prefix: &[u8]) -> Result<KvIter<'a>> {
        let items: Vec<_> = self.read()[column.index()]
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Ok(Box::new(items.into_iter()))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[test]
    fn memory_engine_meets_the_contract() {
        conformance::basic_contract(&MemoryEngine::new());
    }

    #[test]
    fn failed_write_applies_nothing() {
        let engine = MemoryEngine::new();
        engine.set_fail_writes(true);
        let mut batch = WriteBatch::new();
        batch.put(Column::State, b"k".to_vec(), b"v".to_vec());
        assert!(engine.write(batch.clone()).is_err());
        assert_eq!(engine.get(Column::State, b"k").unwrap(), None);
        engine.set_fail_writes(false);
        engine.write(batch).unwrap();
        assert_eq!(engine.len(Column::State), 1);
    }
}
