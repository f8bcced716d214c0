//! The loadgen result contract (`operator/README.md`, "Loadgen contract").
//!
//! `dualchain loadgen --json` prints a document whose top-level fields include
//! [`LoadgenResult`]'s (the full report adds more; readers ignore unknown fields), and
//! `--result-configmap NS/NAME` writes it as key [`RESULT_KEY`] of that ConfigMap, or —
//! when that fails — to the termination log ([`TERMINATION_LOG_MAX_BYTES`]; the
//! contract fields alone when the full document does not fit). The operator parses it
//! with [`parse_result`] and judges a `BenchmarkCluster` on it.
//!
//! ```json
//! {"average_tps": 480.5, "submitted": 30000, "committed": 28830, "rejected": 12,
//!  "finality_ms": {"p50": 3100, "p95": 6000, "p99": 8000}, "signed": true}
//! ```
//!
//! `ordering_finality_ms` (submit → the consensus commit holding the transaction,
//! after which its place and result are fixed) is present when the targets stream
//! their commits; `finality_ms` is block finality.

use serde::{Deserialize, Serialize};

pub use crate::stats::Percentiles;

/// Key of the result document in the result ConfigMap.
pub const RESULT_KEY: &str = "result.json";
/// Largest result document a reader accepts.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
/// Kubernetes keeps at most this much of a container's termination log.
pub const TERMINATION_LOG_MAX_BYTES: usize = 4096;
/// Plots the loadgen adds to the result ConfigMap as `binaryData` (PNG), which the
/// operator copies into the benchmark's report ConfigMap: committed TPS over time, the
/// submit-to-finality latency CDF, and the first target's chain height over time.
pub const PLOT_KEYS: [&str; 3] = ["tps.png", "finality_cdf.png", "heights.png"];
/// Largest plot a reader accepts (a 1000×600 chart with text is 140–180 KiB; three
/// plots and the result document stay well inside a ConfigMap's 1 MiB).
pub const MAX_PLOT_BYTES: usize = 300 * 1024;
/// The first bytes of every PNG file.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Whether `bytes` may be a plot of key `key`: a known key, a PNG, within the size limit.
pub fn is_plot(key: &str, bytes: &[u8]) -> bool {
    PLOT_KEYS.contains(&key) && bytes.len() <= MAX_PLOT_BYTES && bytes.starts_with(&PNG_SIGNATURE)
}

/// The contract fields of a load run's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadgenResult {
    /// Committed (succeeded) transactions per second over the run.
    pub average_tps: f64,
    /// Transactions sent (each counted once, however often retried).
    pub submitted: u64,
    /// Own transactions seen final with a successful receipt (the goodput).
    pub committed: u64,
    /// Own transactions seen final whose receipts failed (for example a bad nonce):
    /// in a block, but they changed nothing but the fee charged.
    #[serde(default)]
    pub failed: u64,
    /// Transactions whose final admission outcome was a refusal.
    #[serde(default)]
    pub rejected: u64,
    /// Submit-to-finality latency percentiles, whole milliseconds (rounded up).
    pub finality_ms: Percentiles,
    /// Submit-to-ordering-finality latency percentiles (whole ms, rounded up); absent
    /// when no target streamed its commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_finality_ms: Option<Percentiles>,
    /// Whether the transactions were signed (ML-DSA-44) or sent unsigned.
    pub signed: bool,
}

impl LoadgenResult {
    /// The compact document: the contract fields only.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain numbers and booleans serialize")
    }
}

/// Parses a result document (the compact one or the loadgen's full report), bounded in
/// size; unknown fields are ignored. Errors are messages for a status condition.
pub fn parse_result(text: &str) -> Result<LoadgenResult, String> {
    if text.len() > MAX_RESULT_BYTES {
        return Err(format!(
            "result is {} bytes, more than {MAX_RESULT_BYTES}",
            text.len()
        ));
    }
    serde_json::from_str(text.trim()).map_err(|e| format!("result is not loadgen JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_small_pngs_are_plots() {
        let png = [&PNG_SIGNATURE[..], b"rest"].concat();
        assert!(is_plot("tps.png", &png));
        assert!(!is_plot("other.png", &png));
        assert!(!is_plot("tps.png", b"GIF89a"));
        let huge = [&PNG_SIGNATURE[..], &vec![0; MAX_PLOT_BYTES]].concat();
        assert!(!is_plot("tps.png", &huge));
    }

    const DOC: &str = r#"{"average_tps": 480.5, "submitted": 30000, "committed": 28830, "rejected": 12,
 "finality_ms": {"p50": 3100, "p95": 6000, "p99": 8000}, "signed": true}"#;

    #[test]
    fn the_documented_example_parses_and_round_trips() {
        let r = parse_result(DOC).unwrap();
        assert_eq!(r.average_tps, 480.5);
        assert_eq!(r.committed, 28_830);
        assert_eq!(r.finality_ms.p95, 6000);
        assert!(r.signed);
        assert_eq!(parse_result(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn every_rate_survives_the_round_trip_bit_for_bit() {
        // 388.86879863052235 came back one ulp off before serde_json's exact float
        // parsing (`float_roundtrip`) was enabled: the operator must read what was sent.
        let mut r = parse_result(DOC).unwrap();
        for tps in [
            388.868_798_630_522_35,
            0.1 + 0.2,
            1e-300,
            123_456.789_012_345_67,
        ] {
            r.average_tps = tps;
            let back = parse_result(&r.to_json()).unwrap();
            assert_eq!(back.average_tps.to_bits(), tps.to_bits(), "{tps}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_rejected_defaults_to_zero() {
        let r = parse_result(
            r#"{"average_tps": 1, "submitted": 2, "committed": 1, "extra": [1],
                "finality_ms": {"p50": 1, "p95": 2, "p99": 3}, "signed": false}"#,
        )
        .unwrap();
        assert_eq!(r.rejected, 0);
        assert_eq!(r.ordering_finality_ms, None);
        assert!(!r.to_json().contains("ordering"), "absent stays absent");
    }

    #[test]
    fn ordering_finality_round_trips_when_present() {
        let mut r = parse_result(DOC).unwrap();
        r.ordering_finality_ms = Some(Percentiles {
            p50: 180,
            p95: 290,
            p99: 400,
        });
        assert_eq!(parse_result(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        assert!(parse_result("{}").unwrap_err().contains("not loadgen JSON"));
        assert!(
            parse_result(&" ".repeat(MAX_RESULT_BYTES + 1))
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn the_compact_document_fits_the_termination_log() {
        let r = LoadgenResult {
            average_tps: f64::MAX,
            submitted: u64::MAX,
            committed: u64::MAX,
            failed: u64::MAX,
            rejected: u64::MAX,
            finality_ms: Percentiles {
                p50: u64::MAX,
                p95: u64::MAX,
                p99: u64::MAX,
            },
            ordering_finality_ms: Some(Percentiles {
                p50: u64::MAX,
                p95: u64::MAX,
                p99: u64::MAX,
            }),
            signed: true,
        };
        assert!(r.to_json().len() < TERMINATION_LOG_MAX_BYTES);
    }
}
