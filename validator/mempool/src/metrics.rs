//! Prometheus metrics of one chain's mempool, registered into a registry the node
//! passes in (never the global one), labelled with the chain so both chains' pools
//! share one registry.

use std::sync::Arc;
use std::time::Duration;

use dualchain_core::types::ChainId;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    exponential_buckets,
};

use crate::error::RejectReason;
use crate::occupancy::Occupancy;

/// The depth gauges, read from the pool's occupancy counters when scraped: always
/// exact, and free for admission.
struct DepthCollector {
    occupancy: Arc<Occupancy>,
    depth: IntGauge,
    bytes: IntGauge,
}

impl Collector for DepthCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.depth
            .desc()
            .into_iter()
            .chain(self.bytes.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauge_value = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.depth.set(gauge_value(self.occupancy.txs()));
        self.bytes.set(gauge_value(self.occupancy.bytes()));
        let mut families = self.depth.collect();
        families.extend(self.bytes.collect());
        families
    }
}

/// Handles of the mempool's metrics.
#[derive(Clone)]
pub struct MempoolMetrics {
    admitted: IntCounter,
    rejected: Vec<IntCounter>,
    drained: IntCounter,
    committed_removed: IntCounter,
    dropped_stale: IntCounter,
    enqueue_latency: Histogram,
    queue_wait: Histogram,
}

impl MempoolMetrics {
    pub(crate) fn register(
        registry: &Registry,
        chain: ChainId,
        occupancy: Arc<Occupancy>,
    ) -> Result<Self, prometheus::Error> {
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_label("chain", chain.name());
        registry.register(Box::new(DepthCollector {
            occupancy,
            depth: IntGauge::with_opts(opts("dualchain_mempool_depth", "Pending transactions"))?,
            bytes: IntGauge::with_opts(opts(
                "dualchain_mempool_bytes",
                "Encoded bytes of pending transactions",
            ))?,
        }))?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let counter = IntCounter::with_opts(opts(name, help))?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| -> Result<Histogram, prometheus::Error> {
                let histogram = Histogram::with_opts(
                    HistogramOpts::new(name, help)
                        .const_label("chain", chain.name())
                        .buckets(buckets),
                )?;
                registry.register(Box::new(histogram.clone()))?;
                Ok(histogram)
            };

        let rejected_vec = IntCounterVec::new(
            opts(
                "dualchain_mempool_rejected_total",
                "Transactions refused at admission, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(rejected_vec.clone()))?;
        let rejected = RejectReason::ALL
            .iter()
            .map(|reason| rejected_vec.with_label_values(&[reason.as_str()]))
            .collect();
        let dropped_vec = IntCounterVec::new(
            opts(
                "dualchain_mempool_dropped_total",
                "Pending transactions removed without being proposed, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(dropped_vec.clone()))?;

        Ok(Self {
            admitted: counter("dualchain_mempool_admitted_total", "Transactions admitted")?,
            rejected,
            drained: counter(
                "dualchain_mempool_drained_total",
                "Transactions handed to the proposer in batches",
            )?,
            committed_removed: counter(
                "dualchain_mempool_committed_removed_total",
                "Pending transactions removed because a committed block included them",
            )?,
            dropped_stale: dropped_vec.with_label_values(&["stale_nonce"]),
            enqueue_latency: histogram(
                "dualchain_mempool_enqueue_latency_seconds",
                "Time one admission takes, measured at the edge",
                exponential_buckets(1e-7, 4.0, 10)?,
            )?,
            queue_wait: histogram(
                "dualchain_mempool_queue_wait_seconds",
                "Time from admission to being drained into a batch, on the caller's clock",
                exponential_buckets(1e-3, 2.5, 14)?,
            )?,
        })
    }

    pub(crate) fn admitted(&self, latency: Duration) {
        self.admitted.inc();
        self.enqueue_latency.observe(latency.as_secs_f64());
    }

    pub(crate) fn rejected(&self, reason: RejectReason, latency: Duration) {
        self.rejected[reason.index()].inc();
        self.enqueue_latency.observe(latency.as_secs_f64());
    }

    pub(crate) fn drained(&self, count: usize) {
        self.drained.inc_by(count as u64);
    }

    pub(crate) fn queue_wait(&self, wait_micros: u64) {
        self.queue_wait.observe(wait_micros as f64 / 1e6);
    }

    pub(crate) fn committed_removed(&self, count: usize) {
        self.committed_removed.inc_by(count as u64);
    }

    pub(crate) fn dropped_stale(&self, count: usize) {
        self.dropped_stale.inc_by(count as u64);
    }
}
