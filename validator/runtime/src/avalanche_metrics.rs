//! Prometheus metrics of the Avalanche ordering rule (`dualchain_avalanche_*`): polls,
//! query success, the confidence of open slots, decided slots, partitions and
//! exclusions. Registered for every chain; they stay at zero on a DAG-BFT chain.
//!
//! The engine keeps cumulative counters per epoch (each epoch opens a new engine); the
//! driver hands [`AvalancheMetrics::observe`] the current totals and the counters here
//! advance by the difference, so they never go back across epochs.

use dualchain_consensus::avalanche::{AvalancheStats, PPM, Poller};
use dualchain_core::types::ChainId;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The rule's metrics of one chain, and the totals last seen.
pub struct AvalancheMetrics {
    polls: IntCounter,
    slot_polls: IntCounterVec,
    queries: IntCounterVec,
    slots_decided: IntCounter,
    confidence: Histogram,
    partitioned: IntGauge,
    partitions_detected: IntCounter,
    exclusions: IntCounterVec,
    seen: (u64, AvalancheStats),
}

impl AvalancheMetrics {
    pub fn register(registry: &Registry, chain: ChainId) -> prometheus::Result<Self> {
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_label("chain", chain.name());
        let m = Self {
            polls: IntCounter::with_opts(opts(
                "dualchain_avalanche_polls_total",
                "Snowball polls (rounds of queries to a sample of k peers)",
            ))?,
            slot_polls: IntCounterVec::new(
                opts(
                    "dualchain_avalanche_slot_polls_total",
                    "Slot outcomes of polls: success when one value had alpha votes (the query success rate)",
                ),
                &["outcome"],
            )?,
            queries: IntCounterVec::new(
                opts(
                    "dualchain_avalanche_queries_total",
                    "Consensus queries: sent, answered in time, timed out, retried; and peers' queries we answered or dropped",
                ),
                &["result"],
            )?,
            slots_decided: IntCounter::with_opts(opts(
                "dualchain_avalanche_slots_decided_total",
                "Leader slots decided (beta consecutive successful polls and confidence >= 0.95)",
            ))?,
            confidence: Histogram::with_opts(
                HistogramOpts::new(
                    "dualchain_avalanche_slot_confidence",
                    "Confidence of the open, undecided slots, sampled once a second",
                )
                .const_label("chain", chain.name())
                .buckets(vec![0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]),
            )?,
            partitioned: IntGauge::with_opts(opts(
                "dualchain_avalanche_partitioned",
                "1 while more than half of the latest consensus queries timed out",
            ))?,
            partitions_detected: IntCounter::with_opts(opts(
                "dualchain_avalanche_partitions_detected_total",
                "Times the node entered the partitioned state",
            ))?,
            exclusions: IntCounterVec::new(
                opts(
                    "dualchain_avalanche_exclusions_total",
                    "Peers left out of samples: byzantine (for the epoch) or timeout (for a while)",
                ),
                &["reason"],
            )?,
            seen: (0, AvalancheStats::default()),
        };
        registry.register(Box::new(m.polls.clone()))?;
        registry.register(Box::new(m.slot_polls.clone()))?;
        registry.register(Box::new(m.queries.clone()))?;
        registry.register(Box::new(m.slots_decided.clone()))?;
        registry.register(Box::new(m.confidence.clone()))?;
        registry.register(Box::new(m.partitioned.clone()))?;
        registry.register(Box::new(m.partitions_detected.clone()))?;
        registry.register(Box::new(m.exclusions.clone()))?;
        Ok(m)
    }

    /// A new engine of `epoch` opened (a restarted chain): its totals start from zero.
    pub fn engine_opened(&mut self, epoch: u64) {
        self.seen = (epoch, AvalancheStats::default());
    }

    /// Advances the counters to `poller`'s totals of `epoch`; with `sample`, records
    /// the confidence of its open slots.
    pub fn observe(&mut self, epoch: u64, poller: &Poller, sample: bool) {
        let now = poller.stats();
        if self.seen.0 != epoch {
            self.seen = (epoch, AvalancheStats::default());
        }
        let was = std::mem::replace(&mut self.seen.1, now.clone());
        let add = |c: &IntCounter, new: u64, old: u64| c.inc_by(new.saturating_sub(old));
        add(&self.polls, now.polls, was.polls);
        let slot = |l: &str| self.slot_polls.with_label_values(&[l]);
        add(
            &slot("success"),
            now.successful_slot_polls,
            was.successful_slot_polls,
        );
        add(
            &slot("failure"),
            now.failed_slot_polls,
            was.failed_slot_polls,
        );
        let q = |l: &str| self.queries.with_label_values(&[l]);
        add(&q("sent"), now.queries_sent, was.queries_sent);
        add(&q("answered_in_time"), now.responses, was.responses);
        add(&q("timed_out"), now.peers.timeouts, was.peers.timeouts);
        add(&q("retried"), now.queries_retried, was.queries_retried);
        add(&q("served"), now.queries_answered, was.queries_answered);
        add(&q("dropped"), now.queries_dropped, was.queries_dropped);
        add(&self.slots_decided, now.slots_decided, was.slots_decided);
        add(
            &self.partitions_detected,
            now.peers.partitions_detected,
            was.peers.partitions_detected,
        );
        let ex = |l: &str| self.exclusions.with_label_values(&[l]);
        add(
            &ex("byzantine"),
            now.peers.byzantine_exclusions,
            was.peers.byzantine_exclusions,
        );
        add(
            &ex("timeout"),
            now.peers.timeout_exclusions,
            was.peers.timeout_exclusions,
        );
        self.partitioned.set(i64::from(poller.is_partitioned()));
        if sample {
            for c in poller.open_confidences() {
                self.confidence.observe(f64::from(c) / f64::from(PPM));
            }
        }
    }
}
