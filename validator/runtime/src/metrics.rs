//! Per-chain Prometheus metrics of the node, and the adapter that folds a component's
//! own registry (transport, executor) into the node's, labelled with the chain.

use dualchain_core::types::ChainId;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, MetricFamily};
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Seconds buckets from 1 ms to ~65 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 17).expect("valid buckets")
}

/// The node's own metrics of one chain (constant label `chain`).
#[derive(Clone)]
pub struct ChainMetrics {
    pub height: IntGauge,
    pub finalized_height: IntGauge,
    pub certified_height: IntGauge,
    pub round: IntGauge,
    /// Bytes of received vertices waiting for their parents (the pending buffer,
    /// bounded by the engine's `max_pending_bytes`).
    pub pending_bytes: IntGauge,
    /// The epoch the chain's consensus runs.
    pub epoch: IntGauge,
    pub blocks_sealed: IntCounter,
    pub commit_latency: Histogram,
    /// A peer's vertex timestamp to its arrival here by broadcast (how fast vertices
    /// spread; between machines their clocks' skew adds in).
    pub vertex_propagation: Histogram,
    /// Vertices in committed sub-DAGs (their rate: vertices finalized per second).
    pub vertices_committed: IntCounter,
    /// Own vertices garbage-collected uncommitted (their transactions went back to
    /// the mempool).
    pub vertices_orphaned: IntCounter,
    pub transactions_committed: IntCounter,
    pub transactions_failed: IntCounter,
    pub execution_seconds: Histogram,
    pub block_commit_seconds: Histogram,
    pub peers: IntGauge,
    pub exec_queue_depth: IntGauge,
    /// Transactions the admission gate refused, by `reason` (backlog,
    /// executor_behind, verify_budget).
    pub admission_refused: IntCounterVec,
    /// `Transactions` calls refused whole at a shut door, by `reason`.
    pub admission_calls_refused: IntCounterVec,
    pub driver_busy_seconds: IntCounterVec,
    pub certificates: IntCounter,
    pub restarts: IntCounter,
    /// Times the chain's data was moved aside after it diverged from the certified
    /// chain, and the chain re-seeded.
    pub reseeds: IntCounter,
    pub votes_rejected: IntCounter,
    pub proposals_dropped_unpayable: IntCounter,
    pub sync_requests_served: IntCounter,
    pub sync_requests_declined: IntCounter,
    pub block_requests_served: IntCounter,
    pub block_requests_declined: IntCounter,
    pub state_requests_served: IntCounter,
    pub state_requests_declined: IntCounter,
    pub evidence_recorded: IntCounter,
    /// How long the epoch transition's current step has run, once it overran its
    /// timeout (0 while it is on time or none is in progress).
    pub epoch_transition_stuck_seconds: IntGauge,
    /// 1 while the epoch transition can never complete (a detail in the health).
    pub epoch_transition_deadlocked: IntGauge,
    /// 1 while cross-chain relays hold everything but validator sets (one chain
    /// passed a boundary the other has not reached).
    pub cross_chain_paused: IntGauge,
    /// The chain's block time from the genesis: dashboards and alerts compare the
    /// chains' block rates with it (Delta's heights should grow Alpha's block time
    /// over Delta's times as fast as Alpha's).
    pub block_time_seconds: Gauge,
}

impl ChainMetrics {
    pub fn register(registry: &Registry, chain: ChainId) -> prometheus::Result<Self> {
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_label("chain", chain.name());
        let hist = |name: &str, help: &str| {
            Histogram::with_opts(
                HistogramOpts::new(name, help)
                    .const_label("chain", chain.name())
                    .buckets(latency_buckets()),
            )
        };
        let m = Self {
            height: IntGauge::with_opts(opts(
                "dualchain_chain_height",
                "Height of the newest committed block",
            ))?,
            finalized_height: IntGauge::with_opts(opts(
                "dualchain_chain_finalized_height",
                "Height of the newest BFT-final (executed and committed) block",
            ))?,
            certified_height: IntGauge::with_opts(opts(
                "dualchain_chain_certified_height",
                "Height of the newest block with a 2f+1 block certificate",
            ))?,
            round: IntGauge::with_opts(opts(
                "dualchain_consensus_round",
                "Highest DAG round this node proposed",
            ))?,
            pending_bytes: IntGauge::with_opts(opts(
                "dualchain_consensus_pending_bytes",
                "Bytes of received vertices waiting for their parents (bounded by the pending-vertex budget)",
            ))?,
            epoch: IntGauge::with_opts(opts(
                "dualchain_consensus_epoch",
                "Epoch (validator set) the chain's consensus runs",
            ))?,
            blocks_sealed: IntCounter::with_opts(opts(
                "dualchain_blocks_sealed_total",
                "Blocks sealed and committed",
            ))?,
            commit_latency: hist(
                "dualchain_commit_latency_seconds",
                "Vertex creation to consensus commit, per committed vertex",
            )?,
            vertex_propagation: hist(
                "dualchain_vertex_propagation_seconds",
                "A peer's vertex timestamp to its arrival here by broadcast",
            )?,
            vertices_committed: IntCounter::with_opts(opts(
                "dualchain_consensus_vertices_committed_total",
                "Vertices in committed sub-DAGs (ordering-final)",
            ))?,
            vertices_orphaned: IntCounter::with_opts(opts(
                "dualchain_consensus_vertices_orphaned_total",
                "Own vertices garbage-collected without being committed (transactions given back to the mempool)",
            ))?,
            transactions_committed: IntCounter::with_opts(opts(
                "dualchain_transactions_committed_total",
                "Transactions in committed blocks (successful receipts)",
            ))?,
            transactions_failed: IntCounter::with_opts(opts(
                "dualchain_transactions_failed_total",
                "Transactions in committed blocks whose receipt is a failure",
            ))?,
            execution_seconds: hist(
                "dualchain_block_execution_seconds",
                "Executing one block's transactions",
            )?,
            block_commit_seconds: hist(
                "dualchain_block_commit_seconds",
                "Sealing one block (its state root, computed once) and writing it (state, receipts, head) in one atomic batch",
            )?,
            peers: IntGauge::with_opts(opts("dualchain_peers", "Connected validator peers"))?,
            exec_queue_depth: IntGauge::with_opts(opts(
                "dualchain_exec_queue_depth",
                "Committed sub-DAGs waiting for the block executor (task saturation)",
            ))?,
            admission_refused: IntCounterVec::new(
                opts(
                    "dualchain_admission_refused_total",
                    "Transactions refused OVERLOADED before signature verification, by reason",
                ),
                &["reason"],
            )?,
            admission_calls_refused: IntCounterVec::new(
                opts(
                    "dualchain_admission_calls_refused_total",
                    "Transactions calls refused whole (RESOURCE_EXHAUSTED, before decoding) while admission is shut, by reason",
                ),
                &["reason"],
            )?,
            driver_busy_seconds: IntCounterVec::new(
                opts(
                    "dualchain_task_busy_microseconds_total",
                    "Time each chain task spent working (not waiting): task saturation",
                ),
                &["task"],
            )?,
            certificates: IntCounter::with_opts(opts(
                "dualchain_block_certificates_total",
                "Block certificates formed from 2f+1 votes and persisted",
            ))?,
            restarts: IntCounter::with_opts(opts(
                "dualchain_chain_restarts_total",
                "Times the chain's task group failed and was restarted",
            ))?,
            reseeds: IntCounter::with_opts(opts(
                "dualchain_chain_reseeds_total",
                "Times the chain diverged from the certified chain and was re-seeded (its data moved aside)",
            ))?,
            votes_rejected: IntCounter::with_opts(opts(
                "dualchain_block_votes_rejected_total",
                "Block votes refused (bad signature, unknown signer, conflicting header)",
            ))?,
            proposals_dropped_unpayable: IntCounter::with_opts(opts(
                "dualchain_proposal_dropped_unpayable_total",
                "Pending transactions a proposer dropped instead of proposing: against the committed state their nonce was spent or they could not pay",
            ))?,
            sync_requests_served: IntCounter::with_opts(opts(
                "dualchain_sync_requests_served_total",
                "Peers' vertex sync requests answered from the consensus store",
            ))?,
            sync_requests_declined: IntCounter::with_opts(opts(
                "dualchain_sync_requests_declined_total",
                "Peers' vertex sync requests answered empty because the peer was over its rate, byte or concurrency limit",
            ))?,
            block_requests_served: IntCounter::with_opts(opts(
                "dualchain_block_sync_requests_served_total",
                "Peers' block range requests (block sync) answered from the chain store",
            ))?,
            block_requests_declined: IntCounter::with_opts(opts(
                "dualchain_block_sync_requests_declined_total",
                "Peers' block range requests answered without blocks: over the peer's rate, byte or concurrency limit, or for another chain",
            ))?,
            state_requests_served: IntCounter::with_opts(opts(
                "dualchain_state_sync_requests_served_total",
                "Peers' state sync requests (epoch links, snapshot manifest or chunk) answered",
            ))?,
            state_requests_declined: IntCounter::with_opts(opts(
                "dualchain_state_sync_requests_declined_total",
                "Peers' state sync requests declined: over the peer's rate, byte or concurrency limit, or for another chain",
            ))?,
            evidence_recorded: IntCounter::with_opts(opts(
                "dualchain_evidence_recorded_total",
                "Validators proven to have misbehaved (equivocation), each once: found here or received and checked; persisted and passed on",
            ))?,
            epoch_transition_stuck_seconds: IntGauge::with_opts(opts(
                "dualchain_epoch_transition_stuck_seconds",
                "How long the epoch transition's current step (the other chain reaching the boundary, or a chain committing its first block with the new set) has run, once it overran its timeout (four Alpha block times); 0 while on time",
            ))?,
            epoch_transition_deadlocked: IntGauge::with_opts(opts(
                "dualchain_epoch_transition_deadlocked",
                "1 while the epoch transition cannot complete (the chains name different sets, or the next committee's quorum is out of reach past the apply timeout); the health reason says why",
            ))?,
            block_time_seconds: Gauge::with_opts(opts(
                "dualchain_chain_block_time_seconds",
                "The chain's block time (genesis), in seconds",
            ))?,
            cross_chain_paused: IntGauge::with_opts(opts(
                "dualchain_cross_chain_paused",
                "1 while one chain passed an epoch boundary the other has not reached: the attestation relay holds every record but the next validator set",
            ))?,
        };
        registry.register(Box::new(m.height.clone()))?;
        registry.register(Box::new(m.finalized_height.clone()))?;
        registry.register(Box::new(m.certified_height.clone()))?;
        registry.register(Box::new(m.round.clone()))?;
        registry.register(Box::new(m.pending_bytes.clone()))?;
        registry.register(Box::new(m.epoch.clone()))?;
        registry.register(Box::new(m.blocks_sealed.clone()))?;
        registry.register(Box::new(m.commit_latency.clone()))?;
        registry.register(Box::new(m.vertex_propagation.clone()))?;
        registry.register(Box::new(m.vertices_committed.clone()))?;
        registry.register(Box::new(m.vertices_orphaned.clone()))?;
        registry.register(Box::new(m.transactions_committed.clone()))?;
        registry.register(Box::new(m.transactions_failed.clone()))?;
        registry.register(Box::new(m.execution_seconds.clone()))?;
        registry.register(Box::new(m.block_commit_seconds.clone()))?;
        registry.register(Box::new(m.peers.clone()))?;
        registry.register(Box::new(m.exec_queue_depth.clone()))?;
        registry.register(Box::new(m.admission_refused.clone()))?;
        registry.register(Box::new(m.admission_calls_refused.clone()))?;
        registry.register(Box::new(m.driver_busy_seconds.clone()))?;
        registry.register(Box::new(m.certificates.clone()))?;
        registry.register(Box::new(m.restarts.clone()))?;
        registry.register(Box::new(m.reseeds.clone()))?;
        registry.register(Box::new(m.votes_rejected.clone()))?;
        registry.register(Box::new(m.proposals_dropped_unpayable.clone()))?;
        registry.register(Box::new(m.sync_requests_served.clone()))?;
        registry.register(Box::new(m.sync_requests_declined.clone()))?;
        registry.register(Box::new(m.block_requests_served.clone()))?;
        registry.register(Box::new(m.block_requests_declined.clone()))?;
        registry.register(Box::new(m.state_requests_served.clone()))?;
        registry.register(Box::new(m.state_requests_declined.clone()))?;
        registry.register(Box::new(m.evidence_recorded.clone()))?;
        registry.register(Box::new(m.epoch_transition_stuck_seconds.clone()))?;
        registry.register(Box::new(m.epoch_transition_deadlocked.clone()))?;
        registry.register(Box::new(m.cross_chain_paused.clone()))?;
        registry.register(Box::new(m.block_time_seconds.clone()))?;
        Ok(m)
    }
}

/// A replaceable source registry: a restarted chain task registers its transport's
/// metrics into a fresh registry and swaps it in (prometheus refuses to register a
/// metric name twice in one registry).
pub type RegistrySlot = std::sync::Arc<std::sync::Mutex<Registry>>;

/// Exposes another registry's metrics through the node's registry, adding the
/// `chain` label where the component did not set one (the transport and the executor
/// register unlabelled metrics in their own registries).
pub struct ChainLabelled {
    source: RegistrySlot,
    chain: &'static str,
    desc: Desc,
}

impl ChainLabelled {
    /// `name` must be unique per node registry (it only identifies the adapter).
    pub fn new(source: RegistrySlot, chain: ChainId, name: &str) -> prometheus::Result<Self> {
        Ok(Self {
            source,
            chain: chain.name(),
            desc: Desc::new(
                format!("dualchain_{name}_{}_adapter", chain.name()),
                "adapter (no samples of its own)".into(),
                vec![],
                Default::default(),
            )?,
        })
    }
}

impl Collector for ChainLabelled {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let registry = self
            .source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut families = registry.gather();
        for family in &mut families {
            for metric in family.mut_metric().iter_mut() {
                if metric.get_label().iter().any(|l| l.name() == "chain") {
                    continue;
                }
                let mut label = LabelPair::default();
                label.set_name("chain".into());
                label.set_value(self.chain.into());
                let mut labels = metric.take_label();
                labels.push(label);
                labels.sort_by(|a, b| a.name().cmp(b.name()));
                metric.set_label(labels);
            }
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_labels_foreign_metrics_with_the_chain() {
        let source = Registry::new();
        let c = IntCounter::new("dualchain_test_total", "test").unwrap();
        source.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let node = Registry::new();
        node.register(Box::new(
            ChainLabelled::new(
                std::sync::Arc::new(std::sync::Mutex::new(source.clone())),
                ChainId::Delta,
                "t",
            )
            .unwrap(),
        ))
        .unwrap();
        node.register(Box::new(
            ChainLabelled::new(
                std::sync::Arc::new(std::sync::Mutex::new(source)),
                ChainId::Alpha,
                "t",
            )
            .unwrap(),
        ))
        .unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&node.gather())
            .unwrap();
        assert!(
            text.contains("dualchain_test_total{chain=\"delta\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("dualchain_test_total{chain=\"alpha\"} 3"),
            "{text}"
        );
        ChainMetrics::register(&node, ChainId::Delta).unwrap();
        ChainMetrics::register(&node, ChainId::Alpha).unwrap();
    }
}
