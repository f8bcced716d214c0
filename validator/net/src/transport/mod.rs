//! The QUIC transport: quinn endpoints with hybrid post-quantum TLS, ML-DSA-87
//! identity per connection, and the peer manager around them.
//!
//! Structure of one node:
//!
//! - one quinn endpoint (one UDP socket) both accepts and dials, so a peer's remote
//!   address is its listen address and dialers can recognise who they already have;
//! - an accept loop and one dial loop per configured peer address (DNS names are
//!   re-resolved each round; failed addresses back off exponentially with jitter);
//! - per authenticated connection (`connection`): a writer task draining the peer's
//!   bounded send queue onto one long-lived unidirectional stream (throttled, fault
//!   injected), readers for the peer's unidirectional streams (broadcasts), a task
//!   per inbound bidirectional stream (requests), and a heartbeat;
//! - shared state: the connection table (one connection per validator; a
//!   simultaneous dial is resolved the same way on both sides), scores and bans, the
//!   seen-digest cache, the fault injector and the metrics.
//!
//! Invariants: a connection is in the table only after both identity proofs
//! verified against the current membership; a frame is parsed only after its header
//! passed the wire checks; no payload is delivered twice (seen cache); every task
//! belongs to the node's task set and ends at [`QuicNetwork::shutdown`].

mod config;
mod connection;
mod dialer;
pub(crate) mod frames;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use prometheus::Registry;
use thiserror::Error;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use config::pre_identity_transport_config;
pub use config::{NetConfig, PeerAddress, PeerAddressError, quic_transport_config};

use crate::dedup::SeenCache;
use crate::fault::FaultInjector;
use crate::identity::{MemberSet, Membership, PeerId};
use crate::metrics::{DropReason, NetMetrics};
use crate::network::{
    BroadcastOutcome, EventReceiver, EventSender, NetError, NetFuture, Network, check_outbound,
};
use crate::score::{Offence, PeerScores};
use crate::tls::{self, TlsSetupError};
use crate::wire::{KindClass, Message};

/// QUIC application close codes.
pub mod close_code {
    pub const SHUTDOWN: u32 = 0;
    pub const IDENTITY_REFUSED: u32 = 1;
    pub const DUPLICATE: u32 = 2;
    pub const BANNED: u32 = 3;
    pub const NOT_A_MEMBER: u32 = 4;
    pub const SELF_CONNECTION: u32 = 5;
    pub const HEARTBEAT_TIMEOUT: u32 = 6;
    /// Stream-level: a refused frame.
    pub const BAD_FRAME: u32 = 16;
    /// Stream-level: the request was not answered.
    pub const DECLINED: u32 = 17;
}

/// Why the transport could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot bind the QUIC endpoint to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid transport configuration: {0}")]
    Config(String),
}

/// One outbound frame waiting in a peer's send queue.
pub(crate) struct Outbound {
    frame: Bytes,
    kind: crate::wire::MessageKind,
    enqueued: Instant,
}

/// The live connection to one validator.
#[derive(Clone)]
pub(crate) struct Link {
    conn: quinn::Connection,
    queue: mpsc::Sender<Outbound>,
    generation: u64,
    dialed_by: PeerId,
}

pub(crate) struct Inner {
    config: NetConfig,
    local: PeerId,
    keypair: Arc<ValidatorKeypair>,
    /// The network identity hellos are signed for (the genesis hash).
    network: NetworkId,
    membership: Membership,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    links: DashMap<PeerId, Link>,
    /// Listen address → validator, learnt from authenticated connections.
    addr_book: DashMap<SocketAddr, PeerId>,
    /// Addresses that turned out to be this node (a headless service lists us too).
    self_addrs: DashMap<SocketAddr, ()>,
    scores: PeerScores,
    seen: SeenCache,
    faults: Arc<FaultInjector>,
    metrics: NetMetrics,
    events: EventSender,
    shutdown: watch::Sender<bool>,
    next_generation: AtomicU64,
    /// Woken when a connection goes away, so dialers retry without waiting a round.
    link_lost: Notify,
    tasks: Mutex<JoinSet<()>>,
    /// Permits for inbound connections in their handshake
    /// ([`NetConfig::max_pending_handshakes`]).
    handshakes: Arc<Semaphore>,
}

impl Inner {
    /// Spawns a task owned by this node (aborted at shutdown). Finished tasks are
    /// reaped here so the set does not grow with the number of streams served.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        if !*self.shutdown.borrow() {
            tasks.spawn(task);
        }
    }

    fn link(&self, peer: &PeerId) -> Option<Link> {
        self.links.get(peer).map(|l| l.clone())
    }

    /// Records an offence; bans and disconnects the peer below the threshold.
    fn offence(&self, peer: PeerId, conn: &quinn::Connection, offence: Offence, detail: &str) {
        tracing::warn!(peer = %peer, offence = offence.name(), detail, "refused traffic from peer");
        let reason = match offence {
            Offence::MalformedFrame => Some(DropReason::Malformed),
            Offence::OversizeFrame => Some(DropReason::Oversize),
            Offence::UnexpectedFrame => Some(DropReason::Unexpected),
            Offence::RequestTimeout
            | Offence::HeartbeatMissed
            | Offence::InvalidContent
            | Offence::MissingParents => None,
        };
        if let Some(reason) = reason {
            self.metrics.dropped(reason);
        }
        if self.scores.penalise(peer, offence, Instant::now()) == crate::score::Verdict::Ban {
            tracing::warn!(peer = %peer, score = self.scores.score(&peer), "peer banned: score fell to the ban threshold; disconnecting");
            self.metrics.peer_bans.inc();
            conn.close(close_code::BANNED.into(), b"banned: score below threshold");
        }
    }

    fn enqueue_try(&self, link: &Link, frame: &Bytes, kind: crate::wire::MessageKind) -> bool {
        let out = Outbound {
            frame: frame.clone(),
            kind,
            enqueued: Instant::now(),
        };
        // Counted before the hand-over so the writer's decrement never runs first.
        self.metrics.send_queue_depth.inc();
        match link.queue.try_send(out) {
            Ok(()) => true,
            Err(_) => {
                self.metrics.send_queue_depth.dec();
                self.metrics.dropped(DropReason::QueueFull);
                false
            }
        }
    }
}

/// A running QUIC transport node. Cheap to clone; call [`QuicNetwork::shutdown`] to
/// stop it (its tasks hold the endpoint open until then).
#[derive(Clone)]
pub struct QuicNetwork {
    inner: Arc<Inner>,
}

impl QuicNetwork {
    /// Binds the endpoint and starts accepting and dialing. Must run inside a tokio
    /// runtime. Inbound traffic arrives on the returned channel.
    pub fn start(
        config: NetConfig,
        keypair: Arc<ValidatorKeypair>,
        network: NetworkId,
        membership: Membership,
        registry: &Registry,
    ) -> Result<(Self, EventReceiver), StartError> {
        let metrics = NetMetrics::new(registry)?;
        if config.max_pending_handshakes == 0 {
            return Err(StartError::Config(
                "max_pending_handshakes must be positive".into(),
            ));
        }
        let transport = pre_identity_transport_config(config.idle_timeout);
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(tls::server_config()?));
        server_config.transport_config(transport.clone());
        let mut client_config = quinn::ClientConfig::new(Arc::new(tls::client_config()?));
        client_config.transport_config(transport);
        let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(|source| {
            StartError::Bind {
                addr: config.listen,
                source,
            }
        })?;
        let (events, events_rx) = EventReceiver::channel(config.event_capacity);
        let local = PeerId::of(keypair.public());
        let inner = Arc::new(Inner {
            local,
            keypair,
            network,
            membership,
            endpoint,
            client_config,
            links: DashMap::new(),
            addr_book: DashMap::new(),
            self_addrs: DashMap::new(),
            scores: PeerScores::new(config.score.clone()),
            seen: SeenCache::new(config.seen_cache_capacity),
            faults: Arc::new(FaultInjector::new(config.seed)),
            metrics,
            events,
            shutdown: watch::Sender::new(false),
            next_generation: AtomicU64::new(1),
            link_lost: Notify::new(),
            tasks: Mutex::new(JoinSet::new()),
            handshakes: Arc::new(Semaphore::new(config.max_pending_handshakes)),
            config,
        });
        tracing::info!(peer = %local, addr = ?inner.endpoint.local_addr().ok(), "transport listening (TLS 1.3, X25519MLKEM768 only)");
        inner.spawn(connection::accept_loop(inner.clone()));
        inner.spawn(connection::watch_membership(inner.clone()));
        for target in inner.config.peers.clone() {
            inner.spawn(dialer::dial_loop(inner.clone(), target));
        }
        Ok((Self { inner }, events_rx))
    }

    /// The bound UDP address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .endpoint
            .local_addr()
            .unwrap_or(self.inner.config.listen)
    }

    pub fn metrics(&self) -> &NetMetrics {
        &self.inner.metrics
    }

    pub fn membership(&self) -> &Membership {
        &self.inner.membership
    }

    /// Current score of a peer (0 for unknown peers).
    pub fn peer_score(&self, peer: &PeerId) -> i32 {
        self.inner.scores.score(peer)
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.inner.scores.is_banned(peer, Instant::now())
    }

    /// Smoothed round-trip time of the connection to `peer`.
    pub fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        self.inner.link(peer).map(|l| l.conn.rtt())
    }

    /// Dials `addr` once (outside the configured peer list), returning who answered.
    pub async fn connect(&self, addr: SocketAddr) -> Result<PeerId, NetError> {
        dialer::dial(&self.inner, addr).await
    }

    /// Waits until `peer` is connected or `timeout` passes.
    pub async fn wait_connected(&self, peer: PeerId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.inner.links.contains_key(&peer) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.links.contains_key(&peer)
    }

    /// Closes every connection and the endpoint, and stops every task.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        for link in self.inner.links.iter() {
            link.conn
                .close(close_code::SHUTDOWN.into(), b"node shutting down");
        }
        self.inner
            .endpoint
            .close(close_code::SHUTDOWN.into(), b"node shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
        let mut tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.inner.links.clear();
        self.inner.metrics.connected_peers.set(0);
    }
}

impl Network for QuicNetwork {
    fn local_peer(&self) -> PeerId {
        self.inner.local
    }

    fn connected_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.inner.links.iter().map(|l| *l.key()).collect();
        peers.sort();
        peers
    }

    fn try_broadcast(&self, message: Message) -> Result<BroadcastOutcome, NetError> {
        check_outbound(&message, KindClass::Broadcast)?;
        let frame = message.encode_frame()?;
        self.inner
            .seen
            .insert_message(message.chain, message.kind, &message.payload);
        let links: Vec<Link> = self.inner.links.iter().map(|l| l.clone()).collect();
        let mut outcome = BroadcastOutcome::default();
        for link in &links {
            if self.inner.enqueue_try(link, &frame, message.kind) {
                outcome.queued += 1;
            } else {
                outcome.queue_full += 1;
            }
        }
        Ok(outcome)
    }

    fn send(&self, peer: PeerId, message: Message) -> NetFuture<'_, Result<(), NetError>> {
        Box::pin(async move {
            check_outbound(&message, KindClass::Broadcast)?;
            let out = Outbound {
                frame: message.encode_frame()?,
                kind: message.kind,
                enqueued: Instant::now(),
            };
            let no_peer = || {
                self.inner.metrics.dropped(DropReason::NoPeer);
                NetError::NotConnected(peer)
            };
            self.inner.metrics.send_queue_depth.inc();
            // Fast path: room in the queue, handed over under the table's read guard.
            let queue = {
                let link = self.inner.links.get(&peer).ok_or_else(|| {
                    self.inner.metrics.send_queue_depth.dec();
                    no_peer()
                })?;
                match link.queue.try_send(out) {
                    Ok(()) => return Ok(()),
                    Err(mpsc::error::TrySendError::Closed(_)) => None,
                    Err(mpsc::error::TrySendError::Full(out)) => Some((link.queue.clone(), out)),
                }
            };
            // Slow path: wait for room (back-pressure) without holding the guard.
            let sent = match queue {
                Some((queue, out)) => queue.send(out).await.is_ok(),
                None => false,
            };
            if sent {
                Ok(())
            } else {
                self.inner.metrics.send_queue_depth.dec();
                Err(NetError::NotConnected(peer))
            }
        })
    }

    fn request(
        &self,
        peer: PeerId,
        message: Message,
        timeout: Duration,
    ) -> NetFuture<'_, Result<Bytes, NetError>> {
        Box::pin(async move {
            check_outbound(&message, KindClass::Request)?;
            connection::request(&self.inner, peer, message, timeout, Offence::RequestTimeout).await
        })
    }

    fn faults(&self) -> &Arc<FaultInjector> {
        &self.inner.faults
    }

    fn report(&self, peer: PeerId, offence: Offence) {
        match self.inner.link(&peer) {
            Some(link) => {
                self.inner
                    .offence(peer, &link.conn, offence, "reported by the consensus layer")
            }
            None => {
                // Not connected now: the score still counts at the next connection.
                self.inner.scores.penalise(peer, offence, Instant::now());
            }
        }
    }

    fn set_members(&self, members: MemberSet) {
        self.inner.membership.update(members);
    }
}

/// Generation numbers tell a replaced connection's cleanup not to remove its successor.
fn next_generation(inner: &Inner) -> u64 {
    inner.next_generation.fetch_add(1, Ordering::Relaxed)
}
