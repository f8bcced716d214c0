//! Reading a validator's Prometheus endpoint (`--metrics-listen`) in tests and
//! benchmarks: one plain HTTP/1.0 GET, no client library.

use std::io::{Read, Write};
use std::time::Duration;

use dualchain_core::types::ChainId;

/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The text exposition of the metrics listener on 127.0.0.1:`port` (headers included).
pub fn scrape(port: u16) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// The value of the first sample of `name` labelled `chain="<chain>"` whose line also
/// contains `extra` (another label, or "").
pub fn sample(text: &str, name: &str, chain: ChainId, extra: &str) -> Option<f64> {
    samples(text, name, chain, extra).next().map(|(_, v)| v)
}

/// The values of every sample of `name` labelled `chain="<chain>"` whose line also
/// contains `extra`, with their lines (a counter split by other labels, a histogram's
/// buckets).
fn samples<'a>(
    text: &'a str,
    name: &'a str,
    chain: ChainId,
    extra: &'a str,
) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    let label = format!("chain=\"{}\"", chain.name());
    text.lines().filter_map(move |l| {
        let rest = l.strip_prefix(name)?;
        let matches = (rest.starts_with('{') || rest.starts_with(' '))
            && l.contains(&label)
            && l.contains(extra);
        if !matches {
            return None;
        }
        Some((l, l.rsplit(' ').next()?.parse().ok()?))
    })
}

/// The sum of every sample of `name` for `chain` whose line contains `extra` (a
/// counter over all its other labels); `None` when there is none.
pub fn sum(text: &str, name: &str, chain: ChainId, extra: &str) -> Option<f64> {
    samples(text, name, chain, extra)
        .map(|(_, v)| v)
        .reduce(|a, b| a + b)
}

/// The cumulative buckets `(le, count)` of histogram `name` for `chain`, in order of
/// `le` (`+Inf` last).
pub fn histogram(text: &str, name: &str, chain: ChainId) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples(text, &bucket, chain, "")
        .filter_map(|(line, count)| {
            let le = line.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The `q` quantile of cumulative `buckets`, interpolated linearly inside the bucket
/// it falls in, as Prometheus' `histogram_quantile` does; a quantile in the `+Inf`
/// bucket is the highest finite bound. `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let share = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        dualchain_peers{chain=\"alpha\"} 3\n\
        dualchain_peers{chain=\"delta\"} 2\n\
        dualchain_peers_total{chain=\"delta\"} 9\n\
        dualchain_refused_total{chain=\"delta\",reason=\"backlog\"} 7\n";

    #[test]
    fn a_sample_is_found_by_name_chain_and_label_and_not_by_a_longer_name() {
        assert_eq!(
            sample(TEXT, "dualchain_peers", ChainId::Delta, ""),
            Some(2.0)
        );
        assert_eq!(
            sample(TEXT, "dualchain_peers", ChainId::Alpha, ""),
            Some(3.0)
        );
        assert_eq!(
            sample(
                TEXT,
                "dualchain_refused_total",
                ChainId::Delta,
                "reason=\"backlog\""
            ),
            Some(7.0)
        );
        assert_eq!(
            sample(TEXT, "dualchain_refused_total", ChainId::Alpha, ""),
            None
        );
        assert_eq!(sample(TEXT, "dualchain_peer", ChainId::Delta, ""), None);
    }

    #[test]
    fn counters_sum_over_their_labels_and_histograms_give_interpolated_quantiles() {
        let text = "m_total{chain=\"delta\",direction=\"out\",kind=\"a\"} 3\n\
            m_total{chain=\"delta\",direction=\"out\",kind=\"b\"} 4\n\
            m_total{chain=\"delta\",direction=\"in\",kind=\"a\"} 100\n\
            m_total{chain=\"alpha\",direction=\"out\",kind=\"a\"} 100\n\
            h_bucket{chain=\"delta\",le=\"0.5\"} 10\n\
            h_bucket{chain=\"delta\",le=\"+Inf\"} 40\n\
            h_bucket{chain=\"delta\",le=\"0.25\"} 0\n\
            h_bucket{chain=\"delta\",le=\"1\"} 30\n\
            h_sum{chain=\"delta\"} 12\n";
        let d = ChainId::Delta;
        assert_eq!(sum(text, "m_total", d, "direction=\"out\""), Some(7.0));
        assert_eq!(sum(text, "m_total", d, "kind=\"c\""), None);
        let buckets = histogram(text, "h", d);
        assert_eq!(
            buckets,
            vec![(0.25, 0.0), (0.5, 10.0), (1.0, 30.0), (f64::INFINITY, 40.0)]
        );
        // Rank 20 of 40: halfway through the (0.5, 1] bucket.
        assert_eq!(quantile(&buckets, 0.5), Some(0.75));
        assert_eq!(quantile(&buckets, 0.125), Some(0.375));
        // Past the last finite bound: that bound.
        assert_eq!(quantile(&buckets, 0.95), Some(1.0));
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert!(histogram(text, "h", ChainId::Alpha).is_empty());
    }
}
