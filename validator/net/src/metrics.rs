//! Prometheus metrics of the transport, registered into a caller's `Registry`.
//!
//! Per-kind counters are resolved once at construction (one child per kind and
//! direction) so the hot path is an atomic add, not a label lookup.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::wire::MessageKind;

/// Why a frame was dropped (label values of `dualchain_net_dropped_frames_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    FaultDrop,
    Partitioned,
    Duplicate,
    Malformed,
    Oversize,
    Unexpected,
    NoPeer,
}

impl DropReason {
    const ALL: [DropReason; 8] = [
        DropReason::QueueFull,
        DropReason::FaultDrop,
        DropReason::Partitioned,
        DropReason::Duplicate,
        DropReason::Malformed,
        DropReason::Oversize,
        DropReason::Unexpected,
        DropReason::NoPeer,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::FaultDrop => "fault_drop",
            DropReason::Partitioned => "partitioned",
            DropReason::Duplicate => "duplicate",
            DropReason::Malformed => "malformed",
            DropReason::Oversize => "oversize",
            DropReason::Unexpected => "unexpected",
            DropReason::NoPeer => "no_peer",
        }
    }
}

/// The transport's metrics.
#[derive(Clone)]
pub struct NetMetrics {
    bytes_in: Vec<IntCounter>,
    bytes_out: Vec<IntCounter>,
    messages_in: Vec<IntCounter>,
    messages_out: Vec<IntCounter>,
    dropped: Vec<IntCounter>,
    pub connected_peers: IntGauge,
    pub send_queue_depth: IntGauge,
    pub inbound_queued_bytes: IntGauge,
    handshake_failures: IntCounterVec,
    pub peer_bans: IntCounter,
    pub request_latency: Histogram,
}

impl NetMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let bytes = IntCounterVec::new(
            Opts::new(
                "dualchain_net_bytes_total",
                "Frame bytes sent and received, by direction and message kind",
            ),
            &["direction", "kind"],
        )?;
        let messages = IntCounterVec::new(
            Opts::new(
                "dualchain_net_messages_total",
                "Frames sent and received, by direction and message kind",
            ),
            &["direction", "kind"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "dualchain_net_dropped_frames_total",
                "Frames dropped or refused, by reason",
            ),
            &["reason"],
        )?;
        let connected_peers = IntGauge::new(
            "dualchain_net_connected_peers",
            "Authenticated validator connections",
        )?;
        let send_queue_depth = IntGauge::new(
            "dualchain_net_send_queue_depth",
            "Frames waiting in all per-peer send queues",
        )?;
        let inbound_queued_bytes = IntGauge::new(
            "dualchain_net_inbound_queued_bytes",
            "Bytes of received frames waiting for the consumer, all peers",
        )?;
        let handshake_failures = IntCounterVec::new(
            Opts::new(
                "dualchain_net_handshake_failures_total",
                "Refused or failed connection handshakes (TLS and identity), by reason",
            ),
            &["reason"],
        )?;
        let peer_bans = IntCounter::new(
            "dualchain_net_peer_bans_total",
            "Peers disconnected and banned for a low score",
        )?;
        let request_latency = Histogram::with_opts(
            HistogramOpts::new(
                "dualchain_net_request_latency_seconds",
                "Round trip of outbound requests that got an answer",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        )?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(connected_peers.clone()))?;
        registry.register(Box::new(send_queue_depth.clone()))?;
        registry.register(Box::new(inbound_queued_bytes.clone()))?;
        registry.register(Box::new(handshake_failures.clone()))?;
        registry.register(Box::new(peer_bans.clone()))?;
        registry.register(Box::new(request_latency.clone()))?;
        let per_kind = |vec: &IntCounterVec, direction: &str| {
            MessageKind::ALL
                .iter()
                .map(|k| vec.with_label_values(&[direction, k.name()]))
                .collect::<Vec<_>>()
        };
        Ok(Self {
            bytes_in: per_kind(&bytes, "in"),
            bytes_out: per_kind(&bytes, "out"),
            messages_in: per_kind(&messages, "in"),
            messages_out: per_kind(&messages, "out"),
            dropped: DropReason::ALL
                .iter()
                .map(|r| dropped.with_label_values(&[r.name()]))
                .collect(),
            connected_peers,
            send_queue_depth,
            inbound_queued_bytes,
            handshake_failures,
            peer_bans,
            request_latency,
        })
    }

    pub fn record_in(&self, kind: MessageKind, frame_bytes: usize) {
        self.bytes_in[kind.index()].inc_by(frame_bytes as u64);
        self.messages_in[kind.index()].inc();
    }

    pub fn record_out(&self, kind: MessageKind, frame_bytes: usize) {
        self.bytes_out[kind.index()].inc_by(frame_bytes as u64);
        self.messages_out[kind.index()].inc();
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped[DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("ALL lists every reason")]
        .inc();
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped[DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("ALL lists every reason")]
        .get()
    }

    pub fn handshake_failed(&self, reason: &str) {
        self.handshake_failures.with_label_values(&[reason]).inc();
    }

    pub fn handshake_failures(&self, reason: &str) -> u64 {
        self.handshake_failures.with_label_values(&[reason]).get()
    }

    pub fn messages_in(&self, kind: MessageKind) -> u64 {
        self.messages_in[kind.index()].get()
    }

    pub fn messages_out(&self, kind: MessageKind) -> u64 {
        self.messages_out[kind.index()].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_and_count() {
        let registry = Registry::new();
        let m = NetMetrics::new(&registry).unwrap();
        m.record_out(MessageKind::Vertex, 100);
        m.record_in(MessageKind::Vertex, 50);
        m.dropped(DropReason::Duplicate);
        m.handshake_failed("classical_only_kx");
        assert_eq!(m.messages_out(MessageKind::Vertex), 1);
        assert_eq!(m.dropped_count(DropReason::Duplicate), 1);
        let names: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for expected in [
            "dualchain_net_bytes_total",
            "dualchain_net_messages_total",
            "dualchain_net_connected_peers",
            "dualchain_net_send_queue_depth",
            "dualchain_net_inbound_queued_bytes",
            "dualchain_net_dropped_frames_total",
            "dualchain_net_handshake_failures_total",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        // Registering twice into one registry is an error, not a panic.
        assert!(NetMetrics::new(&registry).is_err());
    }
}
