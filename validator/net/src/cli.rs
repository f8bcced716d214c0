//! CLI entry points of this crate, wired into the `dualchain` binary by the node:
//! `dualchain bench net [--json]` → [`run_bench_net`].

pub use crate::bench::{BenchNetReport, LatencyRow, Percentiles, Rate, Targets, ThroughputRow};
use crate::bench::{BenchParams, bench_net};

/// Loopback transport benchmark: throughput (1 KiB and 64 KiB messages) and
/// request/response latency of the dualchain transport, next to a raw quinn baseline
/// (same hybrid TLS, same frames, no identity layer) measured in the same run.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchNetArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Number of 1 KiB messages per throughput round.
    #[arg(long, default_value_t = 50_000)]
    pub small_messages: usize,
    /// Number of 64 KiB messages per throughput round.
    #[arg(long, default_value_t = 3_000)]
    pub large_messages: usize,
    /// Request/response samples per latency round (after 200 warm-up requests).
    #[arg(long, default_value_t = 2_000)]
    pub latency_samples: usize,
    /// Rounds (baseline and dualchain alternate; medians are reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

impl BenchNetArgs {
    fn params(&self) -> BenchParams {
        BenchParams {
            sizes: vec![
                (1024, self.small_messages),
                (64 * 1024, self.large_messages),
            ],
            latency_samples: self.latency_samples,
            rounds: self.rounds,
        }
    }
}

/// Runs the benchmark on its own multi-threaded runtime and returns the report.
/// Call it from synchronous code (not from inside a tokio runtime); async callers
/// use [`bench_net_async`].
pub fn bench_net_report(args: &BenchNetArgs) -> anyhow::Result<BenchNetReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench_net(&args.params()))
}

/// The benchmark for callers already inside a runtime.
pub async fn bench_net_async(args: &BenchNetArgs) -> anyhow::Result<BenchNetReport> {
    bench_net(&args.params()).await
}

/// `dualchain bench net`: runs and prints the report (JSON with `--json`).
pub fn run_bench_net(args: BenchNetArgs) -> anyhow::Result<()> {
    let report = bench_net_report(&args)?;
    print!("{}", render(&report, args.json)?);
    Ok(())
}

/// The printed form of a report.
pub fn render(report: &BenchNetReport, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(serde_json::to_string_pretty(report)? + "\n");
    }
    let mut out = String::new();
    out += &format!(
        "dualchain bench net — loopback, TLS 1.3 {} only, median of {} rounds\n",
        report.key_exchange, report.rounds
    );
    out += "size       dualchain MB/s  msgs/s     raw quinn MB/s  msgs/s     ratio\n";
    for row in &report.throughput {
        out += &format!(
            "{:<10} {:>14.1}  {:>9.0}  {:>14.1}  {:>9.0}  {:>5.2}\n",
            human_size(row.message_bytes),
            row.dualchain.mb_per_s,
            row.dualchain.msgs_per_s,
            row.raw_quinn.mb_per_s,
            row.raw_quinn.msgs_per_s,
            row.ratio
        );
    }
    let l = &report.latency;
    out += &format!(
        "request/response ({} B → {} B, {} samples): dualchain p50 {:.0} µs p99 {:.0} µs; raw quinn p50 {:.0} µs p99 {:.0} µs\n",
        l.request_bytes,
        l.response_bytes,
        l.samples,
        l.dualchain.p50_us,
        l.dualchain.p99_us,
        l.raw_quinn.p50_us,
        l.raw_quinn.p99_us
    );
    out += &format!(
        "targets: throughput ≥{:.0}% of raw quinn: {}; p99 <{:.0} µs: {}\n",
        report.targets.throughput_ratio_min * 100.0,
        verdict(report.targets.throughput_met),
        report.targets.p99_max_us,
        verdict(report.targets.latency_met)
    );
    Ok(out)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn human_size(bytes: usize) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchNetArgs,
    }

    #[test]
    fn args_parse_with_defaults() {
        let cli = Cli::try_parse_from(["bench", "--json", "--rounds", "1"]).unwrap();
        assert!(cli.args.json);
        assert_eq!(cli.args.rounds, 1);
        assert_eq!(cli.args.small_messages, 50_000);
    }

    #[test]
    fn tiny_bench_runs_end_to_end_and_renders() {
        let args = BenchNetArgs {
            json: true,
            small_messages: 200,
            large_messages: 20,
            latency_samples: 50,
            rounds: 1,
        };
        let report = bench_net_report(&args).unwrap();
        assert_eq!(report.throughput.len(), 2);
        for row in &report.throughput {
            assert!(row.dualchain.msgs_per_s > 0.0 && row.raw_quinn.msgs_per_s > 0.0);
        }
        assert!(report.latency.dualchain.p50_us > 0.0);
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, true).unwrap()).unwrap();
        assert_eq!(json["throughput"][1]["message_bytes"], 65536);
        assert!(render(&report, false).unwrap().contains("raw quinn"));
    }
}
