//! The devnet report: `report.json`, `report.md` and PNG plots.
//!
//! Plots are drawn with plotters' bitmap backend. Text needs a TrueType font, loaded
//! from [`DEFAULT_FONT`] (Debian's `fonts-dejavu-core`, installed by
//! `scripts/setup.sh`); without it the plots are still written, without titles, axis
//! labels or legends, and the report says so (`plots_without_text`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use crate::loadgen::{LoadgenReport, TimelinePoint};
use crate::workload::WorkloadKind;

/// Font used for plot text.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Plot file names.
pub const TPS_PLOT: &str = "tps.png";
pub const LATENCY_PLOT: &str = "finality_cdf.png";
pub const HEIGHTS_PLOT: &str = "heights.png";
pub const ATTESTATION_PLOT: &str = "attestation_latency.png";

/// Figures of the Delta chain over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeltaFigures {
    /// Own committed transactions per second.
    pub tps: f64,
    pub finality_ms_p50: u64,
    pub finality_ms_p95: u64,
    pub finality_ms_p99: u64,
    /// Head height on validator 0 at the end.
    pub height: u64,
    /// Blocks sealed while the load ran.
    pub blocks_during_load: u64,
    pub block_time_ms: u64,
    pub submitted: u64,
    pub committed: u64,
    pub rejected: u64,
}

/// Figures of the Alpha chain over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlphaFigures {
    /// Transactions committed on Alpha per second (Alpha accepts no transaction kinds
    /// yet, so this is 0 unless other clients submit to it).
    pub tps: f64,
    pub height: u64,
    pub blocks_during_load: u64,
    pub block_time_ms: u64,
    pub txs_committed: u64,
}

/// The state-root comparison of one chain.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RootCheck {
    pub chain: String,
    /// The minimum height all validators reached (the compared height).
    pub height: u64,
    pub agree: bool,
    /// Per validator: state root (hex) at `height`, or the error fetching it.
    pub state_roots: Vec<String>,
    /// Per validator: block digest (hex) at `height`.
    pub block_digests: Vec<String>,
}

/// Memory of one validator process, from `/proc/<pid>/status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ValidatorMemory {
    pub index: usize,
    pub pid: u32,
    /// Peak resident set size, KiB.
    pub vm_hwm_kib: Option<u64>,
    /// Resident set size at the end of the load, KiB.
    pub vm_rss_kib: Option<u64>,
}

/// How one validator stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShutdownRecord {
    pub index: usize,
    /// Exited on its own after SIGTERM, with status 0.
    pub clean: bool,
    pub detail: String,
}

/// One sample of both chains' heights (validator 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HeightSample {
    /// Seconds since the load started (negative before it).
    pub t_s: f64,
    pub alpha: Option<u64>,
    pub delta: Option<u64>,
}

/// Everything `report.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct DevnetReport {
    pub validators: usize,
    pub duration_s: f64,
    pub time_scale: f64,
    pub workload: WorkloadKind,
    pub signed: bool,
    pub target_tps: f64,
    pub delta: DeltaFigures,
    pub alpha: AlphaFigures,
    /// Delta blocks per Alpha block while the load ran (5 by design).
    pub block_ratio: f64,
    pub state_roots_agree: bool,
    pub state_root_checks: Vec<RootCheck>,
    /// Refusals per status during the load.
    pub rejected_by_status: std::collections::BTreeMap<String, u64>,
    pub memory: Vec<ValidatorMemory>,
    pub shutdown: Vec<ShutdownRecord>,
    pub heights: Vec<HeightSample>,
    pub plots: Vec<String>,
    pub plots_without_text: bool,
    /// Where keys, genesis, databases and logs were (kept with --keep).
    pub data_dir: Option<String>,
    pub loadgen: LoadgenReport,
    /// The cross-chain workload's figures (`--workload crosschain` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crosschain: Option<crate::crosschain_load::CrosschainFigures>,
}

/// Registers the plot font once per process; false if it cannot be loaded.
fn font_available(path: &Path) -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if path != Path::new(DEFAULT_FONT) {
        // Tests with another path only ask whether it exists; registration is global.
        return path.exists() && *REGISTERED.get_or_init(|| register(path));
    }
    *REGISTERED.get_or_init(|| register(path))
}

fn register(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        }
        Err(_) => false,
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;
/// Points of one plotted line.
type Points = Vec<(f64, f64)>;
/// A named, coloured line.
type Series<'a> = (&'a str, RGBColor, Points);

/// How a chart's series are drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Joined points: a rate, a CDF, a height over time.
    Lines,
    /// One dot per sample: independent samples whose order means nothing (lines
    /// through clustered samples would draw shapes that are not there).
    Dots,
}

fn line_chart(
    path: &Path,
    text: bool,
    (title, x_desc, y_desc): (&str, &str, &str),
    style: Style,
    series: &[Series<'_>],
) -> DrawResult {
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if x_min > x_max {
        (x_min, x_max) = (0.0, 1.0);
    }
    if x_max - x_min < 1e-9 {
        x_max = x_min + 1.0;
    }
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.08 };
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(title, ("sans-serif", 26))
            .x_label_area_size(45)
            .y_label_area_size(80);
    }
    let mut chart = builder.build_cartesian_2d(x_min..x_max, 0.0..y_max)?;
    if text {
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 16))
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    for (name, color, points) in series {
        let color = *color;
        let drawn = match style {
            Style::Lines => chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?,
            Style::Dots => chart.draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?,
        };
        if text {
            drawn.label(*name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        }
    }
    if text && series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn timeline_series(timeline: &[TimelinePoint]) -> (Points, Points) {
    let submitted = timeline
        .iter()
        .map(|p| (p.t_s as f64, p.submitted as f64))
        .collect();
    let committed = timeline
        .iter()
        .map(|p| (p.t_s as f64, p.committed as f64))
        .collect();
    (submitted, committed)
}

/// Draws the three plots into `dir`; returns their paths and whether text was drawn.
pub fn write_plots(
    dir: &Path,
    report: &DevnetReport,
    font: &Path,
) -> anyhow::Result<(Vec<PathBuf>, bool)> {
    let text = font_available(font);
    let (submitted, committed) = timeline_series(&report.loadgen.timeline);
    let tps = dir.join(TPS_PLOT);
    line_chart(
        &tps,
        text,
        (
            "Delta TPS over time",
            "seconds since load start",
            "transactions / s",
        ),
        Style::Lines,
        &[
            ("submitted", BLUE, submitted),
            ("committed (final)", RGBColor(0, 140, 60), committed),
        ],
    )
    .map_err(|e| anyhow::anyhow!("drawing {}: {e}", tps.display()))?;

    let cdf: Points = report.loadgen.latency.cdf.clone();
    let latency = dir.join(LATENCY_PLOT);
    line_chart(
        &latency,
        text,
        (
            "Delta submit -> finality latency (CDF)",
            "latency, ms",
            "fraction of transactions",
        ),
        Style::Lines,
        &[("finality latency", RED, cdf)],
    )
    .map_err(|e| anyhow::anyhow!("drawing {}: {e}", latency.display()))?;

    let heights = dir.join(HEIGHTS_PLOT);
    let alpha = report
        .heights
        .iter()
        .filter_map(|s| s.alpha.map(|h| (s.t_s, h as f64)))
        .collect();
    let delta = report
        .heights
        .iter()
        .filter_map(|s| s.delta.map(|h| (s.t_s, h as f64)))
        .collect();
    line_chart(
        &heights,
        text,
        (
            "Chain heights (validator 0)",
            "seconds since load start",
            "height",
        ),
        Style::Lines,
        &[("alpha", MAGENTA, alpha), ("delta", BLUE, delta)],
    )
    .map_err(|e| anyhow::anyhow!("drawing {}: {e}", heights.display()))?;
    let mut plots = vec![tps, latency, heights];
    if let Some(crosschain) = &report.crosschain {
        let points = crosschain.attestation_latencies.clone();
        let path = dir.join(ATTESTATION_PLOT);
        line_chart(
            &path,
            text,
            (
                "Attestation latency: lock on Alpha -> stake on Delta",
                "seconds since the cross-chain workload started",
                "latency, ms",
            ),
            Style::Dots,
            &[("attestation latency", RGBColor(200, 100, 0), points)],
        )
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        plots.push(path);
    }
    Ok((plots, text))
}

/// The human summary (`report.md`).
pub fn render_markdown(r: &DevnetReport) -> String {
    let mut md = String::new();
    let mode = if r.signed { "signed" } else { "unsigned" };
    let verdict = if r.state_roots_agree {
        "state roots agree"
    } else {
        "**STATE ROOTS DISAGREE**"
    };
    let _ = writeln!(md, "# dualchain devnet report\n");
    let _ = writeln!(
        md,
        "{} validators, {:.0} s of {} {} load at {:.0} tx/s, time scale {} (Alpha {} ms / Delta {} ms blocks): {verdict}.\n",
        r.validators,
        r.duration_s,
        mode,
        r.workload.name(),
        r.target_tps,
        r.time_scale,
        r.alpha.block_time_ms,
        r.delta.block_time_ms
    );
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        ("Delta committed TPS", format!("{:.1}", r.delta.tps)),
        (
            "Delta finality p50 / p95 / p99",
            format!(
                "{} / {} / {} ms",
                r.delta.finality_ms_p50, r.delta.finality_ms_p95, r.delta.finality_ms_p99
            ),
        ),
        (
            "submitted / committed / rejected",
            format!(
                "{} / {} / {}",
                r.delta.submitted, r.delta.committed, r.delta.rejected
            ),
        ),
        (
            "achieved submit rate",
            format!("{:.1} tx/s", r.loadgen.achieved_submit_tps),
        ),
        ("Delta height", r.delta.height.to_string()),
        ("Alpha height", r.alpha.height.to_string()),
        ("Alpha TPS", format!("{:.1}", r.alpha.tps)),
        (
            "block ratio (Delta blocks per Alpha block)",
            format!("{:.2}", r.block_ratio),
        ),
        ("state roots agree", r.state_roots_agree.to_string()),
        ("signed", r.signed.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    if let Some(c) = &r.crosschain {
        let _ = writeln!(md, "\n## Cross-chain\n\n| figure | value |\n|---|---|");
        let rows: Vec<(&str, String)> = vec![
            (
                "locks sent / attested to Delta",
                format!("{} / {}", c.locks_sent, c.locks_attested),
            ),
            (
                "attestation latency p50 / p95 / p99",
                format!(
                    "{} / {} / {} ms",
                    c.attestation_latency_ms_p50,
                    c.attestation_latency_ms_p95,
                    c.attestation_latency_ms_p99
                ),
            ),
            (
                "governance results executed on Alpha",
                c.governance_executed.to_string(),
            ),
            (
                "unlocks released on Alpha / attested back",
                format!("{} / {}", c.unlocks_released, c.releases_attested),
            ),
            ("attestations applied", c.attestations.to_string()),
            (
                "records agree on every validator",
                c.records_agree.to_string(),
            ),
            (
                "Delta transfers/s without / with cross-chain traffic",
                format!(
                    "{:.1} / {:.1} (ratio {:.3}; the first {:.0} s ran transfers alone)",
                    c.transfer_tps_without_crosschain,
                    c.transfer_tps_with_crosschain,
                    c.transfer_tps_ratio,
                    c.baseline_s
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        for d in c.disagreements.iter().chain(&c.errors).take(10) {
            let _ = writeln!(md, "\n- {d}");
        }
    }
    if !r.rejected_by_status.is_empty() {
        let _ = writeln!(md, "\n## Refusals\n\n| status | count |\n|---|---|");
        for (k, v) in &r.rejected_by_status {
            let _ = writeln!(md, "| {k} | {v} |");
        }
    }
    let _ = writeln!(
        md,
        "\n## State roots\n\n| chain | height | agree | roots |\n|---|---|---|---|"
    );
    for c in &r.state_root_checks {
        let roots: Vec<String> = c
            .state_roots
            .iter()
            .map(|s| s.chars().take(12).collect())
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.chain,
            c.height,
            c.agree,
            roots.join(" ")
        );
    }
    let _ = writeln!(
        md,
        "\n## Validators\n\n| # | peak RSS | RSS at end | clean stop |\n|---|---|---|---|"
    );
    for m in &r.memory {
        let stop = r
            .shutdown
            .iter()
            .find(|s| s.index == m.index)
            .map_or("-".to_owned(), |s| {
                if s.clean {
                    "yes".to_owned()
                } else {
                    format!("no ({})", s.detail)
                }
            });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {stop} |",
            m.index,
            fmt_kib(m.vm_hwm_kib),
            fmt_kib(m.vm_rss_kib)
        );
    }
    if !r.plots.is_empty() {
        let _ = writeln!(md, "\n## Plots\n");
        for p in &r.plots {
            let name = Path::new(p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned());
            let _ = writeln!(md, "![{name}]({name})");
        }
        if r.plots_without_text {
            let _ = writeln!(
                md,
                "\n(plots drawn without text: font {DEFAULT_FONT} missing; install fonts-dejavu-core)"
            );
        }
    }
    md
}

fn fmt_kib(kib: Option<u64>) -> String {
    kib.map_or("-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Writes `report.json`, `report.md` and the plots into `dir` (created if needed), and
/// records the plot paths in the report.
pub fn write_report(dir: &Path, report: &mut DevnetReport, font: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    match write_plots(dir, report, font) {
        Ok((paths, text)) => {
            report.plots = paths.iter().map(|p| p.display().to_string()).collect();
            report.plots_without_text = !text;
        }
        Err(e) => tracing::warn!(error = format!("{e:#}"), "could not draw the plots"),
    }
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("report.json"), json)
        .with_context(|| format!("writing {}/report.json", dir.display()))?;
    std::fs::write(dir.join("report.md"), render_markdown(report))
        .with_context(|| format!("writing {}/report.md", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencyRecorder;
    use crate::loadgen::TimelinePoint;

    fn sample_report() -> DevnetReport {
        let mut recorder = LatencyRecorder::default();
        for ms in 1..=200u64 {
            recorder.record(std::time::Duration::from_millis(ms));
        }
        let loadgen = LoadgenReport {
            result: dualchain_contract::LoadgenResult {
                average_tps: 1990.0,
                submitted: 60_000,
                committed: 59_700,
                finality_ms: recorder.percentiles(),
                ..Default::default()
            },
            latency: recorder.summary(),
            timeline: (0..30)
                .map(|t| TimelinePoint {
                    t_s: t,
                    submitted: 2000,
                    committed: 1990,
                })
                .collect(),
            ..LoadgenReport::default()
        };
        DevnetReport {
            validators: 4,
            duration_s: 30.0,
            time_scale: 0.1,
            workload: WorkloadKind::Steady,
            signed: false,
            target_tps: 2000.0,
            delta: DeltaFigures {
                tps: 1990.0,
                finality_ms_p50: 100,
                finality_ms_p95: 190,
                finality_ms_p99: 198,
                height: 110,
                blocks_during_load: 100,
                block_time_ms: 300,
                submitted: 60_000,
                committed: 59_700,
                rejected: 3,
            },
            alpha: AlphaFigures {
                height: 22,
                blocks_during_load: 20,
                block_time_ms: 1500,
                ..AlphaFigures::default()
            },
            block_ratio: 5.0,
            state_roots_agree: true,
            state_root_checks: vec![RootCheck {
                chain: "delta".into(),
                height: 108,
                agree: true,
                state_roots: vec!["ab".repeat(32); 4],
                block_digests: vec!["cd".repeat(32); 4],
            }],
            rejected_by_status: [("MEMPOOL_FULL".to_owned(), 3)].into(),
            memory: vec![ValidatorMemory {
                index: 0,
                pid: 1,
                vm_hwm_kib: Some(204_800),
                vm_rss_kib: Some(102_400),
            }],
            shutdown: vec![ShutdownRecord {
                index: 0,
                clean: true,
                detail: "exit status: 0".into(),
            }],
            heights: (0..60)
                .map(|i| HeightSample {
                    t_s: f64::from(i) * 0.5,
                    alpha: Some(u64::from(i as u32) / 3),
                    delta: Some(u64::from(i as u32) * 5 / 3),
                })
                .collect(),
            plots: Vec::new(),
            plots_without_text: false,
            data_dir: None,
            loadgen,
            crosschain: None,
        }
    }

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG"))
    }

    #[test]
    fn report_json_markdown_and_plots_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample_report();
        write_report(dir.path(), &mut report, Path::new(DEFAULT_FONT)).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        for key in [
            "validators",
            "duration_s",
            "block_ratio",
            "state_roots_agree",
            "signed",
            "memory",
            "time_scale",
            "workload",
            "target_tps",
            "rejected_by_status",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        for key in [
            "tps",
            "finality_ms_p50",
            "finality_ms_p95",
            "finality_ms_p99",
            "height",
        ] {
            assert!(json["delta"].get(key).is_some(), "delta.{key} missing");
        }
        for key in ["tps", "height"] {
            assert!(json["alpha"].get(key).is_some(), "alpha.{key} missing");
        }
        assert_eq!(json["block_ratio"], 5.0);
        for plot in [TPS_PLOT, LATENCY_PLOT, HEIGHTS_PLOT] {
            assert!(is_png(&dir.path().join(plot)), "{plot} not a PNG");
        }
        assert_eq!(report.plots.len(), 3);
        assert_eq!(report.plots_without_text, !Path::new(DEFAULT_FONT).exists());
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("| Delta committed TPS | 1990.0 |"), "{md}");
        assert!(md.contains("state roots agree"));
        assert!(md.contains("| MEMPOOL_FULL | 3 |"));
        assert!(md.contains("200.0 MiB"));
        assert!(md.contains("![tps.png](tps.png)"));
    }

    #[test]
    fn plots_are_written_without_a_font() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample_report();
        let (paths, text) =
            write_plots(dir.path(), &report, Path::new("/nonexistent/font.ttf")).unwrap();
        assert!(!text);
        for p in paths {
            assert!(is_png(&p), "{}", p.display());
        }
    }

    #[test]
    fn disagreement_is_loud_in_markdown() {
        let mut report = sample_report();
        report.state_roots_agree = false;
        assert!(render_markdown(&report).contains("STATE ROOTS DISAGREE"));
    }
}
