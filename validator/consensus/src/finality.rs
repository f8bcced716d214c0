//! Finality tracking per chain: finalized height, commit latency, confirmation depth.
//!
//! A sealed block is final as soon as it is sealed: it holds only committed sub-DAGs,
//! and BFT commits are irrevocable (see [`crate::commit`]). The product specification
//! also speaks of a 3-block confirmation depth (~45 s on Alpha, ~9 s on Delta), which
//! is reported alongside: the depth of a block is the number of finalized blocks from
//! it to the tip, itself included.
//!
//! Commit latency is measured per committed vertex from its creation (the author's
//! timestamp) to the local commit, in milliseconds, and in rounds from the vertex's
//! round to the DAG round at which the commit was decided.

use dualchain_core::Digest;
use dualchain_core::types::ChainId;
use serde::Serialize;

use crate::consensus::{Commit, Round, TimeMs};
use crate::sealer::SealedBlock;

/// The specification's confirmation depth.
pub const DEFAULT_CONFIRMATION_DEPTH: u64 = 3;

/// Emitted when a block becomes final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalityEvent {
    /// `alpha_block_finalized` or `delta_block_finalized`.
    pub event: &'static str,
    pub chain: ChainId,
    pub height: u64,
    pub slot: u64,
    pub block: Digest,
    pub tx_count: u32,
    pub vertex_count: usize,
    pub finalized_at_ms: TimeMs,
}

/// The event name of a finalized block of `chain`.
pub const fn finalized_event_name(chain: ChainId) -> &'static str {
    match chain {
        ChainId::Alpha => "alpha_block_finalized",
        ChainId::Delta => "delta_block_finalized",
    }
}

/// Latency counts: the workspace's one nearest-rank histogram.
pub use dualchain_contract::stats::Histogram;

/// Finality state of one chain on one node.
#[derive(Clone, Debug)]
pub struct FinalityTracker {
    chain: ChainId,
    finalized_height: Option<u64>,
    confirmation_depth: u64,
    latency_ms: Histogram,
    latency_rounds: Histogram,
    committed_leaders: u64,
    last_commit: Option<(u64, Round, TimeMs)>,
}

impl FinalityTracker {
    pub fn new(chain: ChainId) -> Self {
        Self {
            chain,
            finalized_height: None,
            confirmation_depth: DEFAULT_CONFIRMATION_DEPTH,
            latency_ms: Histogram::default(),
            latency_rounds: Histogram::default(),
            committed_leaders: 0,
            last_commit: None,
        }
    }

    /// Resumes after a restart at the given finalized height.
    pub fn resume(chain: ChainId, finalized_height: Option<u64>) -> Self {
        Self {
            finalized_height,
            ..Self::new(chain)
        }
    }

    /// Records the latency of every vertex of a commit decided at `now_ms`.
    pub fn on_commit(&mut self, commit: &Commit, now_ms: TimeMs) {
        self.committed_leaders += 1;
        let s = &commit.subdag;
        self.last_commit = Some((s.sequence, s.leader_round, now_ms));
        for v in &s.vertices {
            let c = v.content();
            self.latency_ms
                .record(now_ms.saturating_sub(c.timestamp_ms));
            self.latency_rounds
                .record(commit.decided_at_round.saturating_sub(c.round));
        }
    }

    /// Marks a sealed block final and returns its event.
    pub fn on_block(&mut self, block: &SealedBlock, now_ms: TimeMs) -> FinalityEvent {
        let h = &block.block.header;
        self.finalized_height = Some(self.finalized_height.map_or(h.height, |f| f.max(h.height)));
        FinalityEvent {
            event: finalized_event_name(self.chain),
            chain: self.chain,
            height: h.height,
            slot: h.slot,
            block: block.digest(),
            tx_count: h.tx_count,
            vertex_count: block.block.body.vertices.len(),
            finalized_at_ms: now_ms,
        }
    }

    pub fn finalized_height(&self) -> Option<u64> {
        self.finalized_height
    }

    /// Confirmation depth of `height`: finalized blocks from it to the tip, inclusive.
    pub fn confirmation_depth(&self, height: u64) -> Option<u64> {
        let tip = self.finalized_height?;
        (height <= tip).then(|| tip - height + 1)
    }

    /// The highest height with at least the specification's confirmation depth.
    pub fn confirmed_height(&self) -> Option<u64> {
        let tip = self.finalized_height?;
        tip.checked_sub(self.confirmation_depth - 1)
    }

    pub fn latency_ms(&self) -> &Histogram {
        &self.latency_ms
    }

    pub fn latency_rounds(&self) -> &Histogram {
        &self.latency_rounds
    }

    pub fn committed_leaders(&self) -> u64 {
        self.committed_leaders
    }

    /// (sequence, leader round, local time) of the last commit seen.
    pub fn last_commit(&self) -> Option<(u64, Round, TimeMs)> {
        self.last_commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.5), None);
        for v in [1, 2, 2, 3, 3, 3, 10] {
            h.record(v);
        }
        assert_eq!(h.percentile(0.5), Some(3));
        assert_eq!(h.percentile(0.0), Some(1));
        assert_eq!(h.percentile(0.99), Some(10));
        let mut g = Histogram::default();
        g.record(100);
        h.merge(&g);
        assert_eq!(h.count(), 8);
        assert_eq!(h.max(), Some(100));
    }

    #[test]
    fn depth_and_event_names() {
        assert_eq!(
            finalized_event_name(ChainId::Alpha),
            "alpha_block_finalized"
        );
        assert_eq!(
            finalized_event_name(ChainId::Delta),
            "delta_block_finalized"
        );
        let t = FinalityTracker::resume(ChainId::Delta, Some(10));
        assert_eq!(t.confirmation_depth(10), Some(1));
        assert_eq!(t.confirmation_depth(8), Some(3));
        assert_eq!(t.confirmation_depth(11), None);
        assert_eq!(t.confirmed_height(), Some(8));
        assert_eq!(
            FinalityTracker::new(ChainId::Alpha).confirmed_height(),
            None
        );
    }
}
