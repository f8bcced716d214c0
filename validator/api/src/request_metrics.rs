//! Per-method request metrics of the gRPC API.
//!
//! Series (all with the const label `chain`, so the Alpha and Delta servers of one
//! process can share a registry):
//! - `dualchain_api_requests_total{method, code}`: calls by outcome, `code` being
//!   the canonical gRPC code name (`OK`, `INVALID_ARGUMENT`, ...); admin calls
//!   refused by the token check count as `method="Admin"`, `code="UNAUTHENTICATED"`;
//! - `dualchain_api_request_duration_seconds{method}`: handler time (for
//!   `SubmitTransactions` the whole stream; for `StreamFinality` until the stream
//!   is opened);
//! - `dualchain_api_finality_streams`: finality streams open right now;
//! - `dualchain_api_ordering_streams`: ordering streams open right now;
//! - `dualchain_api_ordering_commits_missed_total`: commits an ordering stream
//!   dropped because its reader was too slow to take them.
//!
//! Without a registry in [`crate::ApiOptions`] the series are still kept (cheap)
//! but exported nowhere.

use std::time::Instant;

use dualchain_core::types::ChainId;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use tonic::{Code, Status};

#[derive(Clone)]
pub(crate) struct RequestMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    finality_streams: IntGauge,
    ordering_streams: IntGauge,
    ordering_missed: IntCounter,
}

impl RequestMetrics {
    /// Creates the series for `chain` and registers them into `registry` if given.
    pub(crate) fn new(chain: ChainId, registry: Option<&Registry>) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "dualchain_api_requests_total",
                "gRPC API calls by method and status code",
            )
            .const_label("chain", chain.name()),
            &["method", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "dualchain_api_request_duration_seconds",
                "Time spent in gRPC API handlers",
            )
            .const_label("chain", chain.name())
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                60.0,
            ]),
            &["method"],
        )?;
        let finality_streams = IntGauge::with_opts(
            Opts::new(
                "dualchain_api_finality_streams",
                "Node.StreamFinality streams open now",
            )
            .const_label("chain", chain.name()),
        )?;
        let ordering_streams = IntGauge::with_opts(
            Opts::new(
                "dualchain_api_ordering_streams",
                "Node.StreamOrdering streams open now",
            )
            .const_label("chain", chain.name()),
        )?;
        let ordering_missed = IntCounter::with_opts(
            Opts::new(
                "dualchain_api_ordering_commits_missed_total",
                "Commits a StreamOrdering stream dropped because its reader was too slow",
            )
            .const_label("chain", chain.name()),
        )?;
        if let Some(registry) = registry {
            registry.register(Box::new(requests.clone()))?;
            registry.register(Box::new(duration.clone()))?;
            registry.register(Box::new(finality_streams.clone()))?;
            registry.register(Box::new(ordering_streams.clone()))?;
            registry.register(Box::new(ordering_missed.clone()))?;
        }
        Ok(Self {
            requests,
            duration,
            finality_streams,
            ordering_streams,
            ordering_missed,
        })
    }

    /// Counts one call of `method` that ended with `code`.
    pub(crate) fn count(&self, method: &str, code: Code) {
        self.requests
            .with_label_values(&[method, code_name(code)])
            .inc();
    }

    /// Counts a call and records its duration from `started`.
    pub(crate) fn observe<T>(&self, method: &str, started: Instant, result: &Result<T, Status>) {
        let code = match result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        self.count(method, code);
        self.duration
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Marks a finality stream open until the guard is dropped.
    pub(crate) fn finality_stream_open(&self) -> StreamGauge {
        self.finality_streams.inc();
        StreamGauge(self.finality_streams.clone())
    }

    /// Marks an ordering stream open until the guard is dropped.
    pub(crate) fn ordering_stream_open(&self) -> StreamGauge {
        self.ordering_streams.inc();
        StreamGauge(self.ordering_streams.clone())
    }

    /// Counts commits a slow ordering reader lost.
    pub(crate) fn ordering_missed(&self, events: u64) {
        self.ordering_missed.inc_by(events);
    }
}

/// Decrements the open-streams gauge when the stream's task ends.
pub(crate) struct StreamGauge(IntGauge);

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The canonical gRPC name of a status code, as used in metric labels.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_chains_share_one_registry() {
        let registry = Registry::new();
        let alpha = RequestMetrics::new(ChainId::Alpha, Some(&registry)).unwrap();
        let delta = RequestMetrics::new(ChainId::Delta, Some(&registry)).unwrap();
        alpha.observe::<()>("GetStatus", Instant::now(), &Ok(()));
        delta.observe::<()>(
            "GetBlock",
            Instant::now(),
            &Err(Status::not_found("no block")),
        );
        let gauge = delta.finality_stream_open();
        let families = registry.gather();
        let requests = families
            .iter()
            .find(|f| f.name() == "dualchain_api_requests_total")
            .unwrap();
        assert_eq!(requests.get_metric().len(), 2);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap();
        assert!(text.contains(
            r#"dualchain_api_requests_total{chain="delta",code="NOT_FOUND",method="GetBlock"} 1"#
        ));
        assert!(text.contains(r#"dualchain_api_finality_streams{chain="delta"} 1"#));
        drop(gauge);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(text.contains(r#"dualchain_api_finality_streams{chain="delta"} 0"#));
    }

    #[test]
    fn registering_a_chain_twice_is_an_error_not_a_panic() {
        let registry = Registry::new();
        RequestMetrics::new(ChainId::Alpha, Some(&registry)).unwrap();
        assert!(RequestMetrics::new(ChainId::Alpha, Some(&registry)).is_err());
    }
}
