//! Engine parameters, with per-chain defaults.

use dualchain_core::Digest;
use dualchain_core::crypto::NetworkId;
use dualchain_core::types::ChainId;

use crate::avalanche::AvalancheConfig;
use crate::consensus::{Round, TimeMs};

/// How leader slots are decided. Both rules run on the same vertex DAG; every honest
/// validator of a chain must use the same one (the genesis names it per chain).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Ordering {
    /// DAG-BFT: Mysticeti's commit rule over votes and certificates in the DAG
    /// ([`crate::commit`]); deterministic finality.
    #[default]
    DagBft,
    /// Avalanche: each slot decided by Snowball sampling of peers
    /// ([`crate::avalanche`]); probabilistic finality.
    Avalanche(AvalancheConfig),
}

/// Parameters of the DAG-BFT engine. Every honest validator of a chain must use the
/// same `chain`, `epoch_seed`, `network`, `retention_rounds` and `genesis_time_ms` (they change
/// the committed sequence); the timing fields are local tuning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DagBftConfig {
    pub chain: ChainId,
    /// Seed of the leader schedule (from genesis / the epoch change).
    pub epoch_seed: Digest,
    /// The network vertices are signed for (the genesis hash): a vertex signed for
    /// another network, even by a member's key, does not verify.
    pub network: NetworkId,
    /// Commit timestamp of round-0 leaders and lower bound of every commit timestamp.
    pub genesis_time_ms: TimeMs,
    /// Minimum time between two of our proposals: the chain's pace (Delta tighter
    /// than Alpha).
    pub min_round_delay_ms: TimeMs,
    /// How long to wait for the previous round's leader before proposing without it.
    pub leader_timeout_ms: TimeMs,
    /// How long after a round's quorum to wait for a vertex of that round whose author
    /// was in the round before (a straggler): a vertex nobody of the next round
    /// references is never ordered, and its author's later transactions then run
    /// ahead of its own (bad nonces). An author absent from the round before is not
    /// waited for, so a crashed validator costs one round's grace, not every round's.
    pub straggler_grace_ms: TimeMs,
    /// Re-announce our latest vertex when we could not advance for this long (covers
    /// lost broadcasts: a node stuck below quorum learns what it missed).
    pub resend_timeout_ms: TimeMs,
    /// Retry a sync request after this long without an answer (to another peer).
    pub sync_retry_ms: TimeMs,
    /// At most one sync request to one peer per this interval (what falls due in
    /// between goes in the next one): peers serve each of us within a rate limit.
    pub min_sync_interval_ms: TimeMs,
    /// Sync attempts for one missing vertex before giving up on it.
    pub max_fetch_attempts: u32,
    /// Rounds kept below the last decided leader slot. Vertices older than a commit
    /// minus this window are never ordered (as in Bullshark's garbage collection) and
    /// are dropped from memory and the store.
    pub retention_rounds: Round,
    /// Rounds kept in the store below the last decided slot (≥ `retention_rounds`):
    /// peers that fell behind by up to this many rounds (a partitioned or restarted
    /// node) fetch the vertices they miss from it.
    pub store_retention_rounds: Round,
    /// Uncommitted depth (our round minus the last decided slot) above which each extra
    /// round of depth adds `backpressure_step_ms` to the round delay.
    pub backpressure_depth: Round,
    pub backpressure_step_ms: TimeMs,
    /// Transactions taken into one vertex.
    pub max_batch_txs: usize,
    /// Transactions queued for proposal; further batches are refused (the mempool
    /// keeps them).
    pub max_queued_txs: usize,
    /// Vertices of one author buffered while their parents are fetched.
    pub max_pending_per_author: usize,
    /// Encoded bytes buffered while parents are fetched, all authors together; each
    /// author may use an equal share (a vertex larger than its author's share is
    /// not buffered: it is fetched again, with its parents, when a vertex we hold
    /// references it).
    pub max_pending_bytes: usize,
    /// A vertex with missing parents is buffered only up to this many rounds above
    /// our highest quorum round; beyond, we are behind, and fetch it with its
    /// ancestors instead of holding it.
    pub max_pending_rounds_ahead: Round,
    /// Vertices accepted up to this many rounds above our highest round.
    pub max_round_lookahead: Round,
    /// Vertices in one sync response.
    pub max_sync_vertices: usize,
    /// The ordering rule (DAG-BFT's or Avalanche's).
    pub ordering: Ordering,
}

impl DagBftConfig {
    /// Defaults for `chain`: Delta (3 s blocks) runs rounds every 50 ms, Alpha (15 s
    /// blocks) every 500 ms; timeouts scale with the pace. Delta's 50 ms (was 100)
    /// halved ordering finality (p95 909 → 300–470 ms at 10k tx/s, 4 validators on 2
    /// cores) at the same CPU; 25 ms orphaned straggling vertices before the
    /// straggler grace existed and is not measured since.
    pub fn for_chain(chain: ChainId) -> Self {
        let (delay, leader, resend) = match chain {
            ChainId::Delta => (50, 300, 750),
            ChainId::Alpha => (500, 2_000, 5_000),
        };
        Self {
            chain,
            epoch_seed: Digest::ZERO,
            network: NetworkId(Digest::ZERO),
            genesis_time_ms: 0,
            min_round_delay_ms: delay,
            leader_timeout_ms: leader,
            straggler_grace_ms: delay,
            resend_timeout_ms: resend,
            sync_retry_ms: leader / 2,
            min_sync_interval_ms: 50,
            max_fetch_attempts: 64,
            retention_rounds: 64,
            store_retention_rounds: 256,
            backpressure_depth: 16,
            backpressure_step_ms: delay / 2,
            max_batch_txs: 4_096,
            max_queued_txs: 65_536,
            max_pending_per_author: 64,
            max_pending_bytes: 256 * 1024 * 1024,
            max_pending_rounds_ahead: 16,
            max_round_lookahead: 1_000,
            max_sync_vertices: 2_000,
            ordering: Ordering::DagBft,
        }
    }

    /// These parameters at a round pace of `delay_ms`, the timeouts scaled with it as
    /// Delta's defaults are: the leader waited for six rounds, a straggler one, a
    /// re-announce after fifteen, a sync retry after three, back-pressure steps of
    /// half a round.
    pub fn paced(self, delay_ms: TimeMs) -> Self {
        Self {
            min_round_delay_ms: delay_ms,
            leader_timeout_ms: delay_ms * 6,
            straggler_grace_ms: delay_ms,
            resend_timeout_ms: delay_ms * 15,
            sync_retry_ms: delay_ms * 3,
            backpressure_step_ms: (delay_ms / 2).max(1),
            ..self
        }
    }

    /// The delay before proposing a round `depth` rounds above the last decided slot:
    /// the chain's minimum delay plus a linear back-pressure term for every round of
    /// depth beyond `backpressure_depth` (no fixed clamp: the slower commits are, the
    /// slower the DAG grows).
    pub fn round_delay_ms(&self, depth: Round) -> TimeMs {
        let excess = depth.saturating_sub(self.backpressure_depth);
        self.min_round_delay_ms
            .saturating_add(excess.saturating_mul(self.backpressure_step_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_grows_with_depth_beyond_the_threshold() {
        let c = DagBftConfig::for_chain(ChainId::Delta);
        assert_eq!(c.round_delay_ms(0), c.min_round_delay_ms);
        assert_eq!(c.round_delay_ms(c.backpressure_depth), c.min_round_delay_ms);
        let d1 = c.round_delay_ms(c.backpressure_depth + 1);
        let d10 = c.round_delay_ms(c.backpressure_depth + 10);
        assert!(d1 > c.min_round_delay_ms && d10 > d1);
        assert_eq!(c.round_delay_ms(u64::MAX), u64::MAX);
    }

    #[test]
    fn alpha_paces_slower_than_delta() {
        let a = DagBftConfig::for_chain(ChainId::Alpha);
        let d = DagBftConfig::for_chain(ChainId::Delta);
        assert!(a.min_round_delay_ms > d.min_round_delay_ms);
        assert!(a.leader_timeout_ms > d.leader_timeout_ms);
    }
}
