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
    let label = format!("chain=\"{}\"", chain.name());
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && l.contains(&label)
                && l.contains(extra)
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
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
}
