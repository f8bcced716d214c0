//! Keeping configured peers connected: resolve, dial, back off, repeat.
//!
//! One loop per configured address. Each round it resolves the address (a DNS name
//! may yield several pods), skips addresses known to be this node or a validator
//! already connected, and dials the rest whose backoff has expired. A failed address
//! waits `min_backoff · 2^failures` (capped, with ±25% seeded jitter so a restarted
//! cluster does not dial in lockstep). A lost connection wakes every loop at once,
//! and a membership update (a new epoch, a joiner admitted) also forgets every
//! backoff: an address refused as a non-member may be a member now.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Inner;
use super::config::PeerAddress;
use super::connection::{establish, record_tls_failure};
use crate::identity::{PeerId, Role};
use crate::network::NetError;

struct Backoff {
    next_delay: Duration,
    not_before: Instant,
}

pub(crate) async fn dial_loop(inner: Arc<Inner>, target: PeerAddress) {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut hasher);
    let mut rng = ChaCha8Rng::seed_from_u64(inner.config.seed ^ hasher.finish());
    let mut backoff: HashMap<SocketAddr, Backoff> = HashMap::new();
    let mut shutdown = inner.shutdown.subscribe();
    let mut members = inner.membership.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Registered before dialing so a loss during this round is not missed.
        let lost = inner.link_lost.notified();
        tokio::pin!(lost);
        lost.as_mut().enable();
        let mut wake_at = Instant::now() + inner.config.redial_interval;
        let addrs = match target.resolve().await {
            Ok(addrs) => addrs,
            Err(e) => {
                tracing::debug!(%target, error = %e, "peer address does not resolve yet");
                Vec::new()
            }
        };
        for addr in addrs {
            if inner.self_addrs.contains_key(&addr) {
                continue;
            }
            let known = inner.addr_book.get(&addr).map(|p| *p);
            if known.is_some_and(|peer| inner.links.contains_key(&peer)) {
                continue;
            }
            let now = Instant::now();
            if let Some(b) = backoff.get(&addr)
                && now < b.not_before
            {
                wake_at = wake_at.min(b.not_before);
                continue;
            }
            match dial(&inner, addr).await {
                Ok(_) => {
                    backoff.remove(&addr);
                }
                Err(e) => {
                    let entry = backoff.entry(addr).or_insert(Backoff {
                        next_delay: inner.config.reconnect_min_backoff,
                        not_before: now,
                    });
                    let jitter = rng.random_range(0.75..1.25);
                    let delay = entry.next_delay.mul_f64(jitter);
                    entry.not_before = Instant::now() + delay;
                    entry.next_delay =
                        (entry.next_delay * 2).min(inner.config.reconnect_max_backoff);
                    wake_at = wake_at.min(entry.not_before);
                    tracing::debug!(%addr, error = %e, retry_in = ?delay, "dial failed");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at.into()) => {}
            _ = &mut lost => {}
            Ok(()) = members.changed() => backoff.clear(),
            _ = shutdown.changed() => return,
        }
    }
}

/// One dial: QUIC + TLS handshake, then the identity exchange as dialer.
pub(crate) async fn dial(inner: &Arc<Inner>, addr: SocketAddr) -> Result<PeerId, NetError> {
    let unknown = PeerId::from_bytes([0; 32]);
    let failed = |reason: String| NetError::Connection {
        peer: unknown,
        reason,
    };
    let connecting = inner
        .endpoint
        .connect_with(inner.client_config.clone(), addr, crate::tls::SERVER_NAME)
        .map_err(|e| failed(e.to_string()))?;
    let conn = match tokio::time::timeout(inner.config.handshake_timeout, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            record_tls_failure(inner, addr, &e);
            return Err(failed(e.to_string()));
        }
        Err(_) => return Err(failed("handshake timed out".into())),
    };
    establish(inner, conn, Role::Dialer, addr)
        .await
        .map_err(|e| failed(e.to_string()))
}
