//! Live progress on stderr while a load or a devnet runs.
//!
//! On a terminal, a devnet shows three indicatif lines: Alpha (height, blocks/s),
//! Delta (height, committed TPS over the last 5 s, ordering and block finality p95
//! over the last 5 s) and
//! a bar for the load duration. When stderr is not a terminal (CI, logs, a pod), the
//! same figures are printed as one plain line every few seconds instead, so logs stay
//! readable and free of control characters.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::loadgen::{LiveSnapshot, LiveStats};

/// Interval of plain progress lines.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// One line of progress figures for a standalone load run.
pub fn loadgen_line(s: &LiveSnapshot, duration: Duration) -> String {
    format!(
        "[{:>5.1}s/{:.0}s] submitted {} accepted {} rejected {} committed {} | {:.0} tx/s committed | finality p95 ordering {} block {}",
        s.elapsed.as_secs_f64(),
        duration.as_secs_f64(),
        s.submitted,
        s.accepted,
        s.rejected,
        s.committed,
        s.committed_tps,
        fmt_ms(s.ordering_p95_ms),
        fmt_ms(s.finality_p95_ms),
    )
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or("-".to_owned(), |ms| format!("{ms:.0} ms"))
}

/// Prints [`loadgen_line`] to stderr every [`PLAIN_INTERVAL`] once the send window opens.
pub fn spawn_plain_loadgen_ticker(
    live: Arc<LiveStats>,
    duration: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PLAIN_INTERVAL);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if live.started_at().is_some() {
                eprintln!("{}", loadgen_line(&live.snapshot(), duration));
            }
        }
    })
}

/// Heights of both chains as last seen by the devnet monitor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChainHeights {
    pub alpha: Option<u64>,
    pub delta: Option<u64>,
    /// Alpha blocks per second over the last few seconds.
    pub alpha_blocks_per_s: f64,
    /// Delta blocks per second over the last few seconds.
    pub delta_blocks_per_s: f64,
}

/// The devnet's live display.
pub struct DevnetProgress {
    mode: Mode,
    duration: Duration,
    last_plain: Option<Instant>,
}

enum Mode {
    Bars {
        _multi: MultiProgress,
        alpha: ProgressBar,
        delta: ProgressBar,
        time: ProgressBar,
    },
    Plain,
}

impl DevnetProgress {
    /// Bars on a terminal, plain lines otherwise.
    pub fn new(duration: Duration) -> Self {
        let mode = if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let line = ProgressStyle::with_template("{prefix:>6.bold} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let alpha = multi.add(ProgressBar::new_spinner().with_style(line.clone()));
            alpha.set_prefix("alpha");
            let delta = multi.add(ProgressBar::new_spinner().with_style(line));
            delta.set_prefix("delta");
            let time = multi.add(ProgressBar::new(duration.as_secs().max(1)));
            time.set_style(
                ProgressStyle::with_template(
                    "{prefix:>6.bold} [{bar:40.cyan/blue}] {pos}/{len}s {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            time.set_prefix("load");
            Mode::Bars {
                _multi: multi,
                alpha,
                delta,
                time,
            }
        } else {
            Mode::Plain
        };
        Self {
            mode,
            duration,
            last_plain: None,
        }
    }

    /// Refreshes the display with the latest figures.
    pub fn update(&mut self, heights: ChainHeights, live: &LiveSnapshot) {
        let alpha_line = format!(
            "height {:>6}  {:.2} blocks/s",
            heights.alpha.map_or("-".into(), |h| h.to_string()),
            heights.alpha_blocks_per_s
        );
        let delta_line = format!(
            "height {:>6}  {:.2} blocks/s  {:>8.0} tx/s  finality p95 ordering {} block {}",
            heights.delta.map_or("-".into(), |h| h.to_string()),
            heights.delta_blocks_per_s,
            live.committed_tps,
            fmt_ms(live.ordering_p95_ms),
            fmt_ms(live.finality_p95_ms)
        );
        match &self.mode {
            Mode::Bars {
                alpha, delta, time, ..
            } => {
                alpha.set_message(alpha_line);
                delta.set_message(delta_line);
                time.set_position(live.elapsed.as_secs().min(self.duration.as_secs()));
                time.set_message(format!(
                    "submitted {} committed {} rejected {}",
                    live.submitted, live.committed, live.rejected
                ));
            }
            Mode::Plain => {
                let due = self
                    .last_plain
                    .is_none_or(|t| t.elapsed() >= PLAIN_INTERVAL);
                if due {
                    self.last_plain = Some(Instant::now());
                    eprintln!(
                        "[{:>5.1}s/{:.0}s] alpha {alpha_line} | delta {delta_line} | submitted {} committed {} rejected {}",
                        live.elapsed.as_secs_f64(),
                        self.duration.as_secs_f64(),
                        live.submitted,
                        live.committed,
                        live.rejected
                    );
                }
            }
        }
    }

    /// Prints a message above the bars (or as a plain line).
    pub fn println(&self, message: &str) {
        match &self.mode {
            Mode::Bars { time, .. } => time.println(message),
            Mode::Plain => eprintln!("{message}"),
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Mode::Bars {
            alpha, delta, time, ..
        } = &self.mode
        {
            alpha.finish();
            delta.finish();
            time.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_shows_every_figure() {
        let s = LiveSnapshot {
            elapsed: Duration::from_millis(12_500),
            submitted: 25_000,
            accepted: 24_990,
            rejected: 10,
            committed: 24_000,
            committed_tps: 1999.6,
            finality_p95_ms: Some(412.4),
            ordering_p95_ms: Some(95.2),
        };
        let line = loadgen_line(&s, Duration::from_secs(30));
        assert!(line.starts_with("[ 12.5s/30s]"), "{line}");
        for part in [
            "submitted 25000",
            "rejected 10",
            "committed 24000",
            "2000 tx/s",
            "finality p95 ordering 95 ms block 412 ms",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        let empty = loadgen_line(&LiveSnapshot::default(), Duration::from_secs(1));
        assert!(
            empty.ends_with("finality p95 ordering - block -"),
            "{empty}"
        );
    }
}
