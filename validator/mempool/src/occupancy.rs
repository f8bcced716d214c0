//! How full the pool is: the counters capacity is reserved against, shared with the
//! depth metrics (read at scrape time, so admission does not pay for the gauges).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A value on its own cache lines, so that threads updating neighbouring values do
/// not invalidate each other's line.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub T);

#[derive(Default)]
pub(crate) struct Occupancy {
    txs: Padded<AtomicUsize>,
    bytes: Padded<AtomicUsize>,
}

impl Occupancy {
    /// Reserves one transaction of `size` bytes if both bounds allow it.
    pub(crate) fn reserve(&self, size: usize, max_txs: usize, max_bytes: usize) -> bool {
        if self
            .txs
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_txs).then_some(n + 1)
            })
            .is_err()
        {
            return false;
        }
        let bytes = self
            .bytes
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                b.checked_add(size).filter(|&total| total <= max_bytes)
            });
        if bytes.is_err() {
            self.txs.0.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    pub(crate) fn release(&self, txs: usize, bytes: usize) {
        if txs > 0 {
            self.txs.0.fetch_sub(txs, Ordering::AcqRel);
            self.bytes.0.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    pub(crate) fn txs(&self) -> usize {
        self.txs.0.load(Ordering::Acquire)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.0.load(Ordering::Acquire)
    }
}
