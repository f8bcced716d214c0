//! Transport configuration: listen address, peers, limits and timers.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::score::ScoreConfig;
use crate::throttle::RateLimit;

/// A peer to dial: a socket address, or a DNS name that may resolve to several
/// addresses (a StatefulSet's headless service resolves to every pod).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddress {
    Socket(SocketAddr),
    Dns { host: String, port: u16 },
}

/// Why a peer address string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid peer address {input:?}: {reason} (expected host:port or ip:port)")]
pub struct PeerAddressError {
    input: String,
    reason: &'static str,
}

impl FromStr for PeerAddress {
    type Err = PeerAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(PeerAddress::Socket(addr));
        }
        let err = |reason| PeerAddressError {
            input: s.to_string(),
            reason,
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| err("missing port"))?;
        let port = port.parse::<u16>().map_err(|_| err("bad port"))?;
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid_host {
            return Err(err("bad host name"));
        }
        Ok(PeerAddress::Dns {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddress::Socket(a) => write!(f, "{a}"),
            PeerAddress::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl PeerAddress {
    /// Current addresses (DNS is asked again on every call, so pods that come and
    /// go behind a headless service are followed).
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            PeerAddress::Socket(a) => Ok(vec![*a]),
            PeerAddress::Dns { host, port } => {
                let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                    .await?
                    .collect();
                addrs.sort();
                addrs.dedup();
                Ok(addrs)
            }
        }
    }
}

/// Everything the QUIC transport needs besides keys and membership.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// UDP address to listen on (and dial from).
    pub listen: SocketAddr,
    /// Static peers and DNS names to keep connected.
    pub peers: Vec<PeerAddress>,
    /// Frames buffered per peer before back-pressure (`send`) or drops (`try_broadcast`).
    pub send_queue_capacity: usize,
    /// Outbound bandwidth limit per peer; `None` is unlimited.
    pub outbound_rate_limit: Option<RateLimit>,
    /// QUIC + TLS + identity handshake must finish within this.
    pub handshake_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// Consecutive missed heartbeats before the connection is closed.
    pub heartbeat_max_misses: u32,
    /// QUIC idle timeout (a silent peer is dropped after this).
    pub idle_timeout: Duration,
    pub reconnect_min_backoff: Duration,
    pub reconnect_max_backoff: Duration,
    /// How often dialers re-resolve names and check their peers when nothing happens.
    pub redial_interval: Duration,
    /// Time the local consumer has to answer an inbound request.
    pub respond_timeout: Duration,
    /// Time a peer has to send the request frame on a stream it opened.
    pub request_read_timeout: Duration,
    pub seen_cache_capacity: usize,
    /// Capacity of the inbound event channel.
    pub event_capacity: usize,
    /// Bytes of one connection's received frames that may wait for the consumer;
    /// beyond it the connection is not read (see [`InboundBudget`]).
    ///
    /// [`InboundBudget`]: crate::network::InboundBudget
    pub inbound_budget_bytes: usize,
    /// Concurrent inbound request streams per connection (once the peer's
    /// identity is proven; before that, one stream: the hello).
    pub max_concurrent_requests: u32,
    /// Inbound connections in their handshake (QUIC, TLS and the identity
    /// hello) at once. Beyond half of it, a client whose address is not yet
    /// validated is sent a QUIC retry first; beyond all of it, refused.
    pub max_pending_handshakes: usize,
    pub score: ScoreConfig,
    /// Seed of the fault injector's RNG and the reconnect jitter.
    pub seed: u64,
}

impl NetConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            peers: Vec::new(),
            send_queue_capacity: 1024,
            outbound_rate_limit: None,
            handshake_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(2),
            heartbeat_max_misses: 3,
            idle_timeout: Duration::from_secs(10),
            reconnect_min_backoff: Duration::from_millis(100),
            reconnect_max_backoff: Duration::from_secs(10),
            redial_interval: Duration::from_secs(5),
            respond_timeout: Duration::from_secs(5),
            request_read_timeout: Duration::from_secs(5),
            seen_cache_capacity: 65_536,
            event_capacity: 4096,
            inbound_budget_bytes: DEFAULT_INBOUND_BUDGET_BYTES,
            max_concurrent_requests: 128,
            max_pending_handshakes: 64,
            score: ScoreConfig::default(),
            seed: 0,
        }
    }
}

/// Connection-level receive window until the peer's identity hello verifies:
/// room for the hello (about 8 KiB) and little else, so an unauthenticated peer
/// can make us buffer at most this much.
pub const PRE_IDENTITY_RECEIVE_WINDOW: u32 = 128 * 1024;
/// Connection-level receive window of a proven member.
pub const MEMBER_RECEIVE_WINDOW: u32 = 32 * 1024 * 1024;
/// Default [`NetConfig::inbound_budget_bytes`], the size of the receive window:
/// one member can make this node hold at most 64 MiB it has not handled yet (32 in
/// QUIC's buffers, 32 waiting for the consumer). The largest vertex fits in it.
pub const DEFAULT_INBOUND_BUDGET_BYTES: usize = 32 * 1024 * 1024;
const _: () =
    assert!(DEFAULT_INBOUND_BUDGET_BYTES >= dualchain_core::types::vertex_limits::MAX_VERTEX_BYTES);
/// Unidirectional (broadcast) streams a proven member may keep open.
pub const MEMBER_UNI_STREAMS: u32 = 8;

/// The transport parameters every connection starts with, before the peer
/// has proven its identity: one bidirectional stream (the hello), no
/// unidirectional stream, [`PRE_IDENTITY_RECEIVE_WINDOW`]. The limits of
/// [`quic_transport_config`] are granted once the hello verifies
/// ([`grant_member_limits`]).
pub fn pre_identity_transport_config(idle_timeout: Duration) -> Arc<quinn::TransportConfig> {
    let mut t = member_transport_config(idle_timeout, 1);
    t.max_concurrent_uni_streams(0u32.into());
    t.receive_window(PRE_IDENTITY_RECEIVE_WINDOW.into());
    Arc::new(t)
}

/// Raises a connection whose peer proved its identity to the limits of
/// [`quic_transport_config`].
pub fn grant_member_limits(conn: &quinn::Connection, max_concurrent_requests: u32) {
    conn.set_receive_window(MEMBER_RECEIVE_WINDOW.into());
    conn.set_max_concurrent_uni_streams(MEMBER_UNI_STREAMS.into());
    conn.set_max_concurrent_bi_streams(max_concurrent_requests.into());
}

/// The QUIC transport parameters of a proven member's connection (shared with
/// the raw-quinn bench baseline so the two measure the same link).
pub fn quic_transport_config(
    idle_timeout: Duration,
    max_concurrent_requests: u32,
) -> Arc<quinn::TransportConfig> {
    Arc::new(member_transport_config(
        idle_timeout,
        max_concurrent_requests,
    ))
}

fn member_transport_config(
    idle_timeout: Duration,
    max_concurrent_requests: u32,
) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle_timeout).ok());
    t.keep_alive_interval(Some(idle_timeout / 3));
    // A few long-lived broadcast streams per peer; requests get their own streams.
    t.max_concurrent_uni_streams(MEMBER_UNI_STREAMS.into());
    t.max_concurrent_bidi_streams(max_concurrent_requests.into());
    // Windows sized for 64 KiB–32 MiB frames on LAN/loopback bandwidth-delay products.
    t.stream_receive_window((8u32 * 1024 * 1024).into());
    t.receive_window(MEMBER_RECEIVE_WINDOW.into());
    t.send_window(32 * 1024 * 1024);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_parse() {
        assert_eq!(
            "127.0.0.1:9000".parse::<PeerAddress>().unwrap(),
            PeerAddress::Socket("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            "validator-0.validators.ns.svc:7000"
                .parse::<PeerAddress>()
                .unwrap(),
            PeerAddress::Dns {
                host: "validator-0.validators.ns.svc".into(),
                port: 7000
            }
        );
        assert!("no-port".parse::<PeerAddress>().is_err());
        assert!("bad host:1".parse::<PeerAddress>().is_err());
        assert!("host:99999".parse::<PeerAddress>().is_err());
    }

    #[tokio::test]
    async fn localhost_resolves() {
        let addrs = "localhost:7000"
            .parse::<PeerAddress>()
            .unwrap()
            .resolve()
            .await
            .unwrap();
        assert!(addrs.iter().all(|a| a.port() == 7000) && !addrs.is_empty());
    }
}
