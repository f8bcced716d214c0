//! The process's open-file budget: raised at start, and split between the
//! API's connections and everything else.
//!
//! Why: each API connection is a descriptor. With a default soft limit (often
//! 1,024) a thousand idle clients used to take them all, after which the
//! server could accept nothing and RocksDB could open no table. The node
//! raises its soft `RLIMIT_NOFILE` to the hard limit, keeps
//! [`RESERVED_DESCRIPTORS`] for the databases, peers, metrics and logs, and
//! gives each chain's API at most an equal share of the rest.

use anyhow::bail;
use dualchain_api::ConnectionLimits;

/// Descriptors kept for everything but the API's connections: each chain's
/// database (`dualchain_store::MAX_OPEN_FILES` tables plus logs), QUIC
/// sockets, the metrics server, the sibling API client.
pub const RESERVED_DESCRIPTORS: u64 = 2 * (dualchain_store::MAX_OPEN_FILES as u64) + 1_024;
/// Fewest API connections a chain must be able to keep for the node to start.
const MIN_API_CONNECTIONS: usize = 64;

/// Raises the soft open-file limit to the hard one; returns the soft limit in
/// force afterwards.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            let current = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(0);
            tracing::warn!(%error, limit = current, "cannot raise the open-file limit");
            current
        }
    }
}

/// The API connection caps for one chain of `chains` in a process whose
/// open-file limit is `open_files`: the configured ones if they fit, else a
/// clear error; unset ones default to what fits, at most the API's defaults.
pub fn api_connection_limits(
    configured_max: Option<usize>,
    configured_per_ip: Option<usize>,
    chains: usize,
    open_files: u64,
) -> anyhow::Result<ConnectionLimits> {
    assert!(chains > 0, "a node runs at least one chain");
    let share = open_files.saturating_sub(RESERVED_DESCRIPTORS) / chains as u64;
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    let max_connections = match configured_max {
        Some(wanted) if wanted > share => bail!(
            "apiMaxConnections is {wanted} per chain, but the open-file limit ({open_files}, \
             `ulimit -n`) leaves {share} per chain after {RESERVED_DESCRIPTORS} reserved for \
             storage and peers; raise the limit or lower apiMaxConnections"
        ),
        Some(wanted) => wanted,
        None => ConnectionLimits::DEFAULT_MAX_CONNECTIONS.min(share),
    };
    if max_connections < MIN_API_CONNECTIONS {
        bail!(
            "the open-file limit ({open_files}, `ulimit -n`) leaves {max_connections} API \
             connections per chain after {RESERVED_DESCRIPTORS} reserved for storage and peers; \
             at least {MIN_API_CONNECTIONS} are needed: raise the limit"
        );
    }
    let max_connections_per_ip = match configured_per_ip {
        Some(per_ip) => per_ip,
        None => ConnectionLimits::DEFAULT_MAX_CONNECTIONS_PER_IP.min(max_connections),
    };
    let limits = ConnectionLimits {
        max_connections,
        max_connections_per_ip,
        ..ConnectionLimits::default()
    };
    if let Err(message) = limits.validate() {
        bail!(
            "invalid API connection limits: {message} (apiMaxConnections, apiMaxConnectionsPerIp)"
        );
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_a_large_limit() {
        let limits = api_connection_limits(None, None, 2, 1 << 20).unwrap();
        assert_eq!(limits, ConnectionLimits::default());
    }

    #[test]
    fn defaults_shrink_to_a_small_limit_and_per_address_follows() {
        let limits = api_connection_limits(None, None, 2, RESERVED_DESCRIPTORS + 400).unwrap();
        assert_eq!(limits.max_connections, 200);
        assert_eq!(limits.max_connections_per_ip, 200);
    }

    #[test]
    fn a_configured_cap_that_does_not_fit_is_refused_naming_the_key() {
        let error = api_connection_limits(Some(10_000), None, 2, 8_192)
            .unwrap_err()
            .to_string();
        assert!(error.contains("apiMaxConnections"), "{error}");
        assert!(error.contains("8192"), "{error}");
    }

    #[test]
    fn a_limit_too_low_for_any_api_is_refused() {
        let error = api_connection_limits(None, None, 1, 1_024)
            .unwrap_err()
            .to_string();
        assert!(error.contains("raise the limit"), "{error}");
    }

    #[test]
    fn a_per_address_cap_above_the_total_is_refused() {
        let error = api_connection_limits(Some(100), Some(200), 1, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(error.contains("apiMaxConnectionsPerIp"), "{error}");
    }
}
