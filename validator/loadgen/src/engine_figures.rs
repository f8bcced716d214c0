//! What a consensus engine cost and delivered on Delta while a load ran, read from
//! the validators themselves: vertices finalized per second, vertex finality (creation
//! to commit, from `dualchain_commit_latency_seconds`), transport messages per
//! finalized vertex and the processes' CPU. The devnet report carries it, and
//! `dualchain bench engines` puts DAG-BFT's and Avalanche's side by side.
//!
//! Figures are differences between a sample taken as the load starts and one taken as
//! it ends (after its drain), so the warm-up before the load counts for nothing. A
//! counter that went down between the two was reset (its process or transport
//! restarted): all of its end value is new, as in Prometheus' `increase`. A validator
//! whose metrics cannot be read at either end is left out of every figure, never read
//! as zero (`validators_read` says how many were read).

use std::time::Instant;

use dualchain_core::types::ChainId;
use dualchain_testkit::metrics::{histogram, quantile, scrape, sum};
use serde::{Deserialize, Serialize};

const COMMIT_LATENCY: &str = "dualchain_commit_latency_seconds";
const PROPAGATION: &str = "dualchain_vertex_propagation_seconds";
const VERTICES_COMMITTED: &str = "dualchain_consensus_vertices_committed_total";
const MESSAGES: &str = "dualchain_net_messages_total";
const TXS_SUCCEEDED: &str = "dualchain_transactions_committed_total";
const TXS_FAILED: &str = "dualchain_transactions_failed_total";

/// One validator's counters at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineSample {
    /// Vertices this validator committed (every honest validator commits the same).
    pub vertices_committed: f64,
    /// Transport frames this validator sent on Delta.
    pub messages_sent: f64,
    /// Cumulative `(le, count)` buckets of vertex creation to commit, in seconds.
    pub latency_buckets: Vec<(f64, f64)>,
    /// Cumulative buckets of a peer's vertex creation to its arrival here.
    pub propagation_buckets: Vec<(f64, f64)>,
    /// CPU time of the validator process (both chains), in seconds.
    pub cpu_seconds: Option<f64>,
    /// Transactions in this validator's executed blocks with a successful receipt,
    /// and with a failed one (bad nonce, insufficient funds, …).
    pub txs_succeeded: f64,
    pub txs_failed: f64,
}

impl EngineSample {
    /// Parses a metrics exposition and the process' CPU time.
    pub fn from_text(text: &str, cpu_seconds: Option<f64>) -> Option<Self> {
        let d = ChainId::Delta;
        Some(Self {
            vertices_committed: sum(text, VERTICES_COMMITTED, d, "")?,
            messages_sent: sum(text, MESSAGES, d, "direction=\"out\"").unwrap_or(0.0),
            latency_buckets: histogram(text, COMMIT_LATENCY, d),
            propagation_buckets: histogram(text, PROPAGATION, d),
            cpu_seconds,
            txs_succeeded: sum(text, TXS_SUCCEEDED, d, "").unwrap_or(0.0),
            txs_failed: sum(text, TXS_FAILED, d, "").unwrap_or(0.0),
        })
    }
}

/// Reads validator `pid`'s counters from its metrics listener on `port`; `None` if
/// the listener does not answer.
pub fn read_sample(port: u16, pid: Option<u32>) -> Option<EngineSample> {
    let text = scrape(port).ok()?;
    EngineSample::from_text(&text, pid.and_then(cpu_seconds))
}

/// User plus system CPU time of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its
/// closing one.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Delta's engine figures over one load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineFigures {
    /// Validators read at both ends (the others are left out of every figure).
    pub validators_read: usize,
    pub window_s: f64,
    /// Vertices finalized per second (the mean over the validators read: each commits
    /// every vertex).
    pub vertices_per_s: f64,
    /// Vertex creation to commit, over every vertex every validator read committed.
    pub vertex_finality_ms_p50: Option<f64>,
    pub vertex_finality_ms_p95: Option<f64>,
    /// A vertex's creation to its arrival at each other validator, over all of them.
    pub vertex_propagation_ms_p95: Option<f64>,
    /// Transport frames all validators sent on Delta per finalized vertex.
    pub messages_per_vertex: Option<f64>,
    /// CPU of a validator process (both chains), in percent of one core: the mean and
    /// the highest over the validators.
    pub cpu_percent_mean: Option<f64>,
    pub cpu_percent_max: Option<f64>,
    /// Share of the transactions in the blocks executed during the window whose
    /// receipt failed (the mean over the validators read; each executes every block).
    /// A failed transaction is final and counted as committed by a client that only
    /// sees it in a block, but it changed nothing but possibly a fee.
    #[serde(default)]
    pub failed_receipts_share: Option<f64>,
}

impl EngineFigures {
    /// `(figure, value)` rows for the reports ("-" where nothing was read).
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "vertices finalized/s",
                format!("{:.1}", self.vertices_per_s),
            ),
            (
                "vertex propagation p95",
                or_dash(self.vertex_propagation_ms_p95, " ms", 0),
            ),
            (
                "vertex finality p50 / p95",
                format!(
                    "{} / {}",
                    or_dash(self.vertex_finality_ms_p50, " ms", 0),
                    or_dash(self.vertex_finality_ms_p95, " ms", 0)
                ),
            ),
            (
                "messages per finalized vertex",
                or_dash(self.messages_per_vertex, "", 1),
            ),
            (
                "validator CPU mean / max (% of a core)",
                format!(
                    "{} / {}",
                    or_dash(self.cpu_percent_mean, "", 0),
                    or_dash(self.cpu_percent_max, "", 0)
                ),
            ),
            (
                "transactions with a failed receipt",
                self.failed_receipts_share
                    .map_or("-".to_owned(), |f| format!("{:.1} %", f * 100.0)),
            ),
            (
                "validators read / window",
                format!("{} / {:.1} s", self.validators_read, self.window_s),
            ),
        ]
    }
}

/// `v` with `digits` decimals and `unit`, or "-" when it was not measured.
pub fn or_dash(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.digits$}{unit}"))
}

/// How much a counter grew from `start` to `end` (see the module docs on resets).
fn increase(start: f64, end: f64) -> f64 {
    if end < start { end } else { end - start }
}

/// Samples of every validator at the start of a window.
pub struct EngineWindow {
    started: Instant,
    start: Vec<Option<EngineSample>>,
}

impl EngineWindow {
    /// Samples each `(metrics port, pid)` now.
    pub fn open(validators: &[(u16, Option<u32>)]) -> Self {
        Self {
            started: Instant::now(),
            start: validators
                .iter()
                .map(|(port, pid)| read_sample(*port, *pid))
                .collect(),
        }
    }

    /// Samples the same validators again and computes the figures between.
    pub fn close(self, validators: &[(u16, Option<u32>)]) -> EngineFigures {
        let window_s = self.started.elapsed().as_secs_f64();
        let end: Vec<Option<EngineSample>> = validators
            .iter()
            .map(|(port, pid)| read_sample(*port, *pid))
            .collect();
        let pairs: Vec<(EngineSample, EngineSample)> = self
            .start
            .into_iter()
            .zip(end)
            .filter_map(|(a, b)| Some((a?, b?)))
            .collect();
        figures(&pairs, window_s)
    }
}

/// The figures of `(start, end)` samples, one pair per validator, `window_s` apart.
pub fn figures(pairs: &[(EngineSample, EngineSample)], window_s: f64) -> EngineFigures {
    let n = pairs.len();
    if n == 0 || window_s <= 0.0 {
        return EngineFigures {
            window_s,
            ..EngineFigures::default()
        };
    }
    let vertices: f64 = pairs
        .iter()
        .map(|(a, b)| increase(a.vertices_committed, b.vertices_committed))
        .sum::<f64>()
        / n as f64;
    let messages: f64 = pairs
        .iter()
        .map(|(a, b)| increase(a.messages_sent, b.messages_sent))
        .sum();
    let latency = merged_difference(pairs, |s| &s.latency_buckets);
    let propagation = merged_difference(pairs, |s| &s.propagation_buckets);
    let succeeded: f64 = pairs
        .iter()
        .map(|(a, b)| increase(a.txs_succeeded, b.txs_succeeded))
        .sum();
    let failed: f64 = pairs
        .iter()
        .map(|(a, b)| increase(a.txs_failed, b.txs_failed))
        .sum();
    let cpu: Vec<f64> = pairs
        .iter()
        .filter_map(|(a, b)| Some((b.cpu_seconds? - a.cpu_seconds?) * 100.0 / window_s))
        .collect();
    EngineFigures {
        validators_read: n,
        window_s,
        vertices_per_s: vertices / window_s,
        vertex_finality_ms_p50: quantile(&latency, 0.5).map(|s| s * 1000.0),
        vertex_finality_ms_p95: quantile(&latency, 0.95).map(|s| s * 1000.0),
        vertex_propagation_ms_p95: quantile(&propagation, 0.95).map(|s| s * 1000.0),
        messages_per_vertex: (vertices > 0.0).then(|| messages / vertices),
        cpu_percent_mean: (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64),
        cpu_percent_max: cpu.iter().copied().reduce(f64::max),
        failed_receipts_share: (succeeded + failed > 0.0).then(|| failed / (succeeded + failed)),
    }
}

/// The buckets of histogram `of` observed inside the window, summed over the
/// validators. A histogram whose observation count (its `+Inf` bucket) went down was
/// reset: its end buckets alone count.
fn merged_difference(
    pairs: &[(EngineSample, EngineSample)],
    of: impl Fn(&EngineSample) -> &Vec<(f64, f64)>,
) -> Vec<(f64, f64)> {
    let total = |buckets: &Vec<(f64, f64)>| buckets.last().map_or(0.0, |b| b.1);
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (a, b) in pairs {
        let reset = total(of(b)) < total(of(a));
        for (i, &(le, end)) in of(b).iter().enumerate() {
            let start = match of(a).get(i) {
                Some(&(start_le, count)) if start_le == le && !reset => count,
                _ => 0.0,
            };
            let observed = (end - start).max(0.0);
            match merged.get_mut(i) {
                Some(slot) if slot.0 == le => slot.1 += observed,
                _ => merged.push((le, observed)),
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(vertices: f64, messages: f64, buckets: &[(f64, f64)], cpu: f64) -> EngineSample {
        EngineSample {
            vertices_committed: vertices,
            messages_sent: messages,
            latency_buckets: buckets.to_vec(),
            propagation_buckets: buckets.iter().map(|&(le, n)| (le / 10.0, n)).collect(),
            cpu_seconds: Some(cpu),
            txs_succeeded: vertices * 10.0,
            txs_failed: vertices,
        }
    }

    #[test]
    fn figures_are_the_window_differences_over_the_validators() {
        let inf = f64::INFINITY;
        let a0 = sample(
            100.0,
            1_000.0,
            &[(0.1, 50.0), (1.0, 100.0), (inf, 100.0)],
            5.0,
        );
        let a1 = sample(
            300.0,
            3_000.0,
            &[(0.1, 50.0), (1.0, 300.0), (inf, 300.0)],
            15.0,
        );
        let b0 = sample(100.0, 500.0, &[(0.1, 0.0), (1.0, 100.0), (inf, 100.0)], 1.0);
        let b1 = sample(
            300.0,
            1_500.0,
            &[(0.1, 0.0), (1.0, 300.0), (inf, 300.0)],
            6.0,
        );
        let f = figures(&[(a0, a1), (b0, b1)], 20.0);
        assert_eq!(f.validators_read, 2);
        assert_eq!(f.vertices_per_s, 10.0);
        // 2,000 + 1,000 frames for 200 vertices.
        assert_eq!(f.messages_per_vertex, Some(15.0));
        // Every vertex of the window fell in (0.1, 1]: the median is halfway.
        assert_eq!(f.vertex_finality_ms_p50.map(f64::round), Some(550.0));
        // The same counts a tenth as late: p95 at 95 % of (0.01, 0.1].
        let propagation = f.vertex_propagation_ms_p95.unwrap();
        assert!((propagation - 95.5).abs() < 1e-6, "{propagation}");
        assert_eq!(f.cpu_percent_mean, Some(37.5));
        assert_eq!(f.cpu_percent_max, Some(50.0));
        // 2,000 + 2,000 succeeded and 200 + 200 failed in the window.
        let failed = f.failed_receipts_share.unwrap();
        assert!((failed - 400.0 / 4_400.0).abs() < 1e-12, "{failed}");
    }

    #[test]
    fn a_restarted_validator_counts_from_zero_and_nothing_read_is_no_figures() {
        let inf = f64::INFINITY;
        let before = sample(1_000.0, 9_000.0, &[(1.0, 1_000.0), (inf, 1_000.0)], 50.0);
        let after = sample(40.0, 9_500.0, &[(1.0, 40.0), (inf, 40.0)], 52.0);
        assert_eq!(
            merged_difference(&[(before, after)], |s| &s.latency_buckets),
            vec![(1.0, 40.0), (inf, 40.0)]
        );
        let none = figures(&[], 10.0);
        assert_eq!(none.validators_read, 0);
        assert_eq!(none.vertex_finality_ms_p95, None);
        assert_eq!(none.messages_per_vertex, None);
        assert_eq!(none.failed_receipts_share, None);
    }

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces() {
        let stat = "4242 (dualchain (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1234 567 0 0 20 0 12 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(1_801));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn a_sample_needs_the_vertex_counter() {
        let text = "dualchain_consensus_vertices_committed_total{chain=\"delta\"} 12\n\
            dualchain_net_messages_total{chain=\"delta\",direction=\"out\",kind=\"vertex\"} 30\n\
            dualchain_net_messages_total{chain=\"delta\",direction=\"out\",kind=\"request\"} 4\n\
            dualchain_commit_latency_seconds_bucket{chain=\"delta\",le=\"+Inf\"} 12\n\
            dualchain_transactions_committed_total{chain=\"delta\"} 90\n\
            dualchain_transactions_failed_total{chain=\"delta\"} 10\n";
        let s = EngineSample::from_text(text, Some(1.5)).unwrap();
        assert_eq!(s.vertices_committed, 12.0);
        assert_eq!(s.messages_sent, 34.0);
        assert_eq!(s.latency_buckets, vec![(f64::INFINITY, 12.0)]);
        assert_eq!((s.txs_succeeded, s.txs_failed), (90.0, 10.0));
        assert_eq!(EngineSample::from_text("x 1\n", None), None);
    }
}
