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

pub use dualchain_contract::loadgen::PLOT_KEYS;

use crate::loadgen::{LoadgenReport, TimelinePoint};
use crate::workload::WorkloadKind;

/// Font used for plot text.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Plot file names (the first three are also the loadgen contract's `PLOT_KEYS`).
pub const TPS_PLOT: &str = PLOT_KEYS[0];
pub const LATENCY_PLOT: &str = PLOT_KEYS[1];
pub const HEIGHTS_PLOT: &str = PLOT_KEYS[2];
pub const ATTESTATION_PLOT: &str = "attestation_latency.png";

/// Figures of the Delta chain over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeltaFigures {
    /// Own committed transactions per second: final with a successful receipt.
    pub tps: f64,
    /// Block finality: submit → the finality event of the block holding the
    /// transaction.
    pub finality_ms_p50: u64,
    pub finality_ms_p95: u64,
    pub finality_ms_p99: u64,
    /// Ordering finality: submit → the consensus commit holding the transaction
    /// (its place and result fixed); `None` when the validators did not stream
    /// their commits.
    pub ordering_finality_ms_p50: Option<u64>,
    pub ordering_finality_ms_p95: Option<u64>,
    pub ordering_finality_ms_p99: Option<u64>,
    /// The pipeline's throughput ceiling for this network (`bench pipeline`), tx/s;
    /// `None` when not measured.
    pub ceiling_tps: Option<f64>,
    /// `tps / ceiling_tps`: how close the whole system comes to its per-transaction
    /// CPU budget.
    pub ceiling_fraction: Option<f64>,
    /// Head height on validator 0 at the end.
    pub height: u64,
    /// Blocks sealed while the load ran.
    pub blocks_during_load: u64,
    /// Blocks finalized per block time during the load (1.0: finality keeps pace;
    /// less: it falls behind), from the instants validator 0's height changed.
    pub finality_pace: Option<f64>,
    pub block_time_ms: u64,
    pub submitted: u64,
    /// Own transactions final with a successful receipt.
    pub committed: u64,
    /// Own transactions final with a failed receipt (in a block, not goodput).
    pub failed: u64,
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
    /// As Delta's: blocks finalized per block time during the load. With 15 s blocks
    /// a minute holds four, so a second of jitter in one block's finality moves it
    /// by several per cent.
    pub finality_pace: Option<f64>,
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
    /// The steady load offered: `--tps`, or `capacity.steady_tps`.
    pub target_tps: f64,
    /// The capacity probe that chose the load (absent when `--tps` was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::capacity::CapacityFigures>,
    /// The consensus engine each chain ran.
    pub consensus: ConsensusNames,
    pub delta: DeltaFigures,
    pub alpha: AlphaFigures,
    /// Delta blocks per Alpha block by slot (block timestamps) over the Alpha blocks
    /// finalized from the load's start to the end of its settle: 5 by design, one
    /// block per slot (see [`crate::devnet::ratio_by_slots`]); the counts sealed
    /// during the load if the timestamps could not be read; 0 when fewer than two
    /// Alpha blocks make no ratio. Whether finality keeps up with the slots in
    /// wall-clock time is each chain's `finality_pace`.
    pub block_ratio: f64,
    /// What Delta's consensus engine delivered and cost during the load.
    pub delta_engine: crate::engine_figures::EngineFigures,
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

/// The consensus engines of a devnet's chains, by their genesis names.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConsensusNames {
    pub alpha: String,
    pub delta: String,
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

/// One plot: what it shows, independent of where it is drawn.
struct Chart<'a> {
    file: &'static str,
    /// Title, x-axis and y-axis descriptions.
    labels: (&'a str, &'a str, &'a str),
    style: Style,
    series: Vec<Series<'a>>,
}

/// Pixel size of every plot.
const PLOT_SIZE: (u32, u32) = (1000, 600);

impl Chart<'_> {
    /// Draws into a PNG file in `dir`.
    fn write(&self, dir: &Path, text: bool) -> anyhow::Result<PathBuf> {
        let path = dir.join(self.file);
        self.draw(
            BitMapBackend::new(&path, PLOT_SIZE).into_drawing_area(),
            text,
        )
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Draws in memory and returns the PNG bytes (for a pod with no writable disk).
    fn png(&self, text: bool) -> anyhow::Result<Vec<u8>> {
        let (width, height) = PLOT_SIZE;
        let mut rgb = vec![0u8; width as usize * height as usize * 3];
        self.draw(
            BitMapBackend::with_buffer(&mut rgb, PLOT_SIZE).into_drawing_area(),
            text,
        )
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", self.file))?;
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &rgb,
            width,
            height,
            image::ColorType::Rgb8,
        )
        .with_context(|| format!("encoding {}", self.file))?;
        Ok(png)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
        text: bool,
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (title, x_desc, y_desc) = self.labels;
        root.fill(&WHITE)?;
        let points = self.series.iter().flat_map(|(_, _, p)| p.iter());
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
        for (name, color, points) in &self.series {
            let color = *color;
            let drawn = match self.style {
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
        if text && self.series.len() > 1 {
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
}

/// Whole seconds spanning one block time (at least one): the committed series is
/// averaged over this many per-second bins, since commits arrive a block at a time
/// and per-second bins of 3 s blocks draw a sawtooth of 0 and three seconds' worth.
pub fn smoothing_window_s(block_ms: f64) -> usize {
    if !(block_ms.is_finite() && block_ms > 0.0) {
        return 1;
    }
    ((block_ms / 1000.0).ceil() as usize).clamp(1, 60)
}

/// The centred moving average of `values` over `window` entries (fewer at the edges).
fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    let (before, after) = ((window - 1) / 2, window / 2);
    (0..values.len())
        .map(|i| {
            let from = i.saturating_sub(before);
            let to = (i + after).min(values.len() - 1);
            let part = &values[from..=to];
            part.iter().sum::<f64>() / part.len() as f64
        })
        .collect()
}

fn tps_chart(timeline: &[TimelinePoint], window_s: usize) -> Chart<'static> {
    let submitted = timeline
        .iter()
        .map(|p| (p.t_s as f64, p.submitted as f64))
        .collect();
    let committed_per_s: Vec<f64> = timeline.iter().map(|p| p.committed as f64).collect();
    let committed = timeline
        .iter()
        .zip(moving_average(&committed_per_s, window_s))
        .map(|(p, mean)| (p.t_s as f64, mean))
        .collect();
    let committed_label = if window_s > 1 {
        "committed (final, mean over one block time)"
    } else {
        "committed (final)"
    };
    Chart {
        file: TPS_PLOT,
        labels: (
            "Delta TPS over time",
            "seconds since load start",
            "transactions / s",
        ),
        style: Style::Lines,
        series: vec![
            ("submitted", BLUE, submitted),
            (committed_label, RGBColor(0, 140, 60), committed),
        ],
    }
}

fn latency_chart(cdf: &[(f64, f64)]) -> Chart<'static> {
    Chart {
        file: LATENCY_PLOT,
        labels: (
            "Delta submit -> finality latency (CDF)",
            "latency, ms",
            "fraction of transactions",
        ),
        style: Style::Lines,
        series: vec![("finality latency", RED, cdf.to_vec())],
    }
}

/// Heights over time; `title` says whose.
fn heights_chart<'a>(title: &'a str, heights: &[HeightSample]) -> Chart<'a> {
    let line = |height: fn(&HeightSample) -> Option<u64>| -> Points {
        heights
            .iter()
            .filter_map(|s| height(s).map(|h| (s.t_s, h as f64)))
            .collect()
    };
    let mut series = Vec::new();
    for (name, color, points) in [
        ("alpha", MAGENTA, line(|s| s.alpha)),
        ("delta", BLUE, line(|s| s.delta)),
    ] {
        if !points.is_empty() {
            series.push((name, color, points));
        }
    }
    Chart {
        file: HEIGHTS_PLOT,
        labels: (title, "seconds since load start", "height"),
        style: Style::Lines,
        series,
    }
}

/// Draws the three plots into `dir`; returns their paths and whether text was drawn.
pub fn write_plots(
    dir: &Path,
    report: &DevnetReport,
    font: &Path,
) -> anyhow::Result<(Vec<PathBuf>, bool)> {
    let text = font_available(font);
    let mut charts = vec![
        tps_chart(
            &report.loadgen.timeline,
            smoothing_window_s(report.delta.block_time_ms as f64),
        ),
        latency_chart(&report.loadgen.latency.cdf),
        heights_chart("Chain heights (validator 0)", &report.heights),
    ];
    if let Some(crosschain) = &report.crosschain {
        charts.push(Chart {
            file: ATTESTATION_PLOT,
            labels: (
                "Attestation latency: lock on Alpha -> stake on Delta",
                "seconds since the cross-chain workload started",
                "latency, ms",
            ),
            style: Style::Dots,
            series: vec![(
                "attestation latency",
                RGBColor(200, 100, 0),
                crosschain.attestation_latencies.clone(),
            )],
        });
    }
    let plots = charts
        .iter()
        .map(|chart| chart.write(dir, text))
        .collect::<anyhow::Result<_>>()?;
    Ok((plots, text))
}

/// A plot drawn in memory: its key ([`PLOT_KEYS`]) and PNG bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plot {
    pub key: &'static str,
    pub png: Vec<u8>,
}

/// The mean time between the finality events a load run saw, ms (0 when it saw none).
fn mean_block_ms(report: &LoadgenReport) -> f64 {
    match report.blocks_observed {
        0 => 0.0,
        blocks => report.run_s * 1000.0 / blocks as f64,
    }
}

/// The plots of a `dualchain loadgen` run (TPS over time, finality CDF, the first
/// target's heights over time), drawn in memory for the result ConfigMap; the flag says
/// whether text was drawn (the font at `font` exists).
pub fn loadgen_plots(
    report: &LoadgenReport,
    heights: &[HeightSample],
    font: &Path,
) -> anyhow::Result<(Vec<Plot>, bool)> {
    let text = font_available(font);
    let charts = [
        tps_chart(&report.timeline, smoothing_window_s(mean_block_ms(report))),
        latency_chart(&report.latency.cdf),
        heights_chart("Chain height (first target)", heights),
    ];
    let plots = charts
        .iter()
        .map(|chart| {
            Ok(Plot {
                key: chart.file,
                png: chart.png(text)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((plots, text))
}

/// A figure to two decimals, or a dash when it was not measured.
fn or_dash(figure: Option<f64>) -> String {
    figure.map_or_else(|| "-".to_owned(), |f| format!("{f:.2}"))
}

/// What the capacity probe found and what the steady load offered, in one sentence.
fn capacity_sentence(c: &crate::capacity::CapacityFigures) -> String {
    let ordering = c
        .ordering_finality_ms_p95
        .map_or_else(String::new, |ms| format!(", ordering finality p95 {ms} ms"));
    let ceiling = c.ceiling_fraction.map_or_else(String::new, |f| {
        format!(" ({:.1} % of the pipeline ceiling)", f * 100.0)
    });
    format!(
        "**Capacity: {:.0} tx/s** committed at maximum load{ceiling}, measured over {} Delta \
         blocks in the second half of a {:.0} s probe (block finality p95 {} ms{ordering} there, queueing \
         included). The steady load below offered {:.0} % of it: {:.0} tx/s.",
        c.tps,
        c.blocks,
        c.probe_duration_s,
        c.finality_ms_p95,
        c.load_fraction * 100.0,
        c.steady_tps
    )
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
        "{} validators, {:.0} s of {} {} load at {:.0} tx/s, time scale {} (Alpha {} ms blocks on {} / Delta {} ms on {}): {verdict}.\n",
        r.validators,
        r.duration_s,
        mode,
        r.workload.name(),
        r.target_tps,
        r.time_scale,
        r.alpha.block_time_ms,
        r.consensus.alpha,
        r.delta.block_time_ms,
        r.consensus.delta
    );
    if let Some(c) = &r.capacity {
        let _ = writeln!(md, "{}\n", capacity_sentence(c));
    }
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        ("Delta committed TPS", format!("{:.1}", r.delta.tps)),
        (
            "of the transactions in Delta's blocks, failed (receipts; not counted as committed)",
            r.delta_engine.failed_receipts_share.map_or_else(
                || "not measured".to_owned(),
                |f| format!("{:.1} % (own: {} failed)", f * 100.0, r.delta.failed),
            ),
        ),
        (
            "of the pipeline ceiling",
            match (r.delta.ceiling_tps, r.delta.ceiling_fraction) {
                (Some(ceiling), Some(fraction)) => {
                    format!("{:.1} % of {ceiling:.0} tx/s", fraction * 100.0)
                }
                _ => "not measured".to_owned(),
            },
        ),
        (
            "Delta ordering finality p50 / p95 / p99",
            match (
                r.delta.ordering_finality_ms_p50,
                r.delta.ordering_finality_ms_p95,
                r.delta.ordering_finality_ms_p99,
            ) {
                (Some(p50), Some(p95), Some(p99)) => format!("{p50} / {p95} / {p99} ms"),
                _ => "not measured".to_owned(),
            },
        ),
        (
            "Delta block finality p50 / p95 / p99",
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
            "block ratio (Delta blocks per Alpha block, by slot)",
            format!("{:.2}", r.block_ratio),
        ),
        (
            "blocks finalized per block time (Delta / Alpha)",
            format!(
                "{} / {}",
                or_dash(r.delta.finality_pace),
                or_dash(r.alpha.finality_pace)
            ),
        ),
        ("state roots agree", r.state_roots_agree.to_string()),
        ("signed", r.signed.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(
        md,
        "\n## Delta consensus ({}), during the load and its drain\n\n| figure | value |\n|---|---|",
        r.consensus.delta
    );
    for (k, v) in r.delta_engine.rows() {
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
            capacity: None,
            consensus: ConsensusNames {
                alpha: "dag-bft".into(),
                delta: "avalanche".into(),
            },
            delta: DeltaFigures {
                tps: 1990.0,
                finality_ms_p50: 100,
                finality_ms_p95: 190,
                finality_ms_p99: 198,
                ordering_finality_ms_p50: Some(40),
                ordering_finality_ms_p95: Some(75),
                ordering_finality_ms_p99: Some(90),
                ceiling_tps: Some(8_000.0),
                ceiling_fraction: Some(0.24875),
                height: 110,
                blocks_during_load: 100,
                finality_pace: Some(0.98),
                block_time_ms: 300,
                submitted: 60_000,
                committed: 59_700,
                failed: 7,
                rejected: 3,
            },
            alpha: AlphaFigures {
                height: 22,
                blocks_during_load: 20,
                finality_pace: None,
                block_time_ms: 1500,
                ..AlphaFigures::default()
            },
            block_ratio: 5.0,
            delta_engine: crate::engine_figures::EngineFigures {
                validators_read: 4,
                window_s: 31.0,
                vertices_per_s: 40.0,
                vertex_finality_ms_p50: Some(310.0),
                vertex_finality_ms_p95: None,
                vertex_propagation_ms_p95: Some(45.0),
                messages_per_vertex: Some(9.5),
                cpu_percent_mean: Some(60.0),
                cpu_percent_max: Some(71.0),
                failed_receipts_share: Some(0.125),
            },
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
    fn committed_tps_is_averaged_over_one_block_time() {
        assert_eq!(smoothing_window_s(3_000.0), 3);
        assert_eq!(smoothing_window_s(300.0), 1);
        assert_eq!(smoothing_window_s(15_000.0), 15);
        assert_eq!(smoothing_window_s(0.0), 1);
        assert_eq!(smoothing_window_s(f64::NAN), 1);
        // 3 s blocks, 2,000 tx/s: per-second bins of 0, 0, 6,000.
        let sawtooth: Vec<f64> = (0..30)
            .map(|t| if t % 3 == 2 { 6_000.0 } else { 0.0 })
            .collect();
        let smooth = moving_average(&sawtooth, 3);
        assert_eq!(smooth.len(), 30);
        assert!(
            smooth[1..29].iter().all(|v| (v - 2_000.0).abs() < 1e-9),
            "{smooth:?}"
        );
        assert_eq!(moving_average(&sawtooth, 1), sawtooth);
        assert!(moving_average(&[], 3).is_empty());
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
            "ordering_finality_ms_p50",
            "ordering_finality_ms_p95",
            "ordering_finality_ms_p99",
            "ceiling_fraction",
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
        assert!(
            md.contains(
                "| of the transactions in Delta's blocks, failed (receipts; not counted as committed) | 12.5 % (own: 7 failed) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| blocks finalized per block time (Delta / Alpha) | 0.98 / - |"),
            "{md}"
        );
        assert!(
            md.contains("| Delta ordering finality p50 / p95 / p99 | 40 / 75 / 90 ms |")
                && md.contains("| Delta block finality p50 / p95 / p99 | 100 / 190 / 198 ms |"),
            "{md}"
        );
        assert_eq!(json["delta"]["ordering_finality_ms_p95"], 75);
        assert!(
            md.contains("| of the pipeline ceiling | 24.9 % of 8000 tx/s |"),
            "{md}"
        );
        assert!(md.contains("state roots agree"));
        assert!(md.contains("| MEMPOOL_FULL | 3 |"));
        assert!(
            md.contains("## Delta consensus (avalanche)")
                && md.contains("| vertex finality p50 / p95 | 310 ms / - |")
                && md.contains("| messages per finalized vertex | 9.5 |"),
            "{md}"
        );
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
    fn a_probed_run_leads_with_its_capacity_and_the_share_it_offered() {
        let mut report = sample_report();
        assert!(!render_markdown(&report).contains("Capacity"));
        let without = serde_json::to_value(&report).unwrap();
        assert!(
            without.get("capacity").is_none(),
            "absent when --tps was given"
        );
        report.capacity = Some(crate::capacity::CapacityFigures {
            tps: 4_000.0,
            blocks: 4,
            probe_duration_s: 24.0,
            load_fraction: 0.5,
            steady_tps: 2_000.0,
            finality_ms_p95: 9_100,
            ordering_finality_ms_p95: Some(2_500),
            ceiling_fraction: Some(0.5),
            ..Default::default()
        });
        let md = render_markdown(&report);
        assert!(
            md.contains(
                "**Capacity: 4000 tx/s** committed at maximum load (50.0 % of the pipeline \
                 ceiling), measured over 4 Delta blocks in the second half of a 24 s probe \
                 (block finality p95 \
                 9100 ms, ordering finality p95 2500 ms there, queueing included). The steady \
                 load below offered 50 % of it: 2000 tx/s."
            ),
            "{md}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["capacity"]["tps"], 4_000.0);
        assert_eq!(json["capacity"]["steady_tps"], json["target_tps"]);
    }

    #[test]
    fn a_load_runs_plots_are_drawn_in_memory_as_contract_pngs() {
        let report = sample_report();
        let (plots, _) =
            loadgen_plots(&report.loadgen, &report.heights, Path::new(DEFAULT_FONT)).unwrap();
        let keys: Vec<&str> = plots.iter().map(|p| p.key).collect();
        assert_eq!(keys, PLOT_KEYS);
        for plot in &plots {
            assert!(
                dualchain_contract::loadgen::is_plot(plot.key, &plot.png),
                "{} is {} bytes",
                plot.key,
                plot.png.len()
            );
        }
        // The same chart in memory and on disk: the same pixels (PNG bytes may differ).
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = write_plots(dir.path(), &report, Path::new(DEFAULT_FONT)).unwrap();
        let on_disk = image::open(&paths[0]).unwrap().to_rgb8();
        let in_memory = image::load_from_memory(&plots[0].png).unwrap().to_rgb8();
        assert_eq!(on_disk.as_raw(), in_memory.as_raw());
    }

    #[test]
    fn disagreement_is_loud_in_markdown() {
        let mut report = sample_report();
        report.state_roots_agree = false;
        assert!(render_markdown(&report).contains("STATE ROOTS DISAGREE"));
    }
}
