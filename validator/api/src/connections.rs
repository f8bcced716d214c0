//! The API's TCP connections: a cap in total and per client address, idle
//! connections closed, and an accept loop that backs off instead of spinning.
//!
//! Why: a gRPC server that accepts every connection lets 1,229 idle sockets
//! exhaust the default file limit, after which `accept` fails with EMFILE and a
//! loop that retries at once burns a core while legitimate calls time out.
//! Here every accepted socket takes a slot in a [`ConnectionTable`]:
//! - at most [`ConnectionLimits::max_connections`] slots, and at most
//!   [`ConnectionLimits::max_connections_per_ip`] per client address. A client
//!   over its address's share is closed at once;
//! - when the table is full, a newcomer displaces an idle connection (no call in
//!   flight): one of the address holding the most connections if the newcomer's
//!   address would still hold fewer, however young (so a few addresses churning
//!   fresh connections cannot lock everyone else out), else the connection idle
//!   longest if idle for at least [`MIN_IDLE_TO_EVICT`]. If every candidate is
//!   busy the newcomer is closed instead: idle sockets never lock out a client
//!   with work to do;
//! - a connection with no call for [`ConnectionLimits::idle_timeout`] is closed;
//! - accept errors that mean "out of descriptors or memory" pause the accept
//!   loop (10 ms, doubling to 1 s) instead of retrying at once.
//!
//! A connection is closed by failing its reads and writes (the HTTP/2 server
//! then drops it); calls in flight are counted by [`CallTracking`] through
//! [`ApiConnectInfo`], which tonic puts in every request's extensions.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use dualchain_core::types::ChainId;
use futures::task::AtomicWaker;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// A full table evicts only connections idle for at least this long, so a
/// client gets time to send its first call after connecting.
pub const MIN_IDLE_TO_EVICT: Duration = Duration::from_secs(1);
/// First pause of the accept loop after a resource error; doubles up to
/// [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// TCP keepalive on accepted sockets: a vanished client's socket is found and
/// closed by the kernel even when HTTP/2 pings cannot be sent.
const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How many connections the API keeps, and for how long an idle one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once (each costs a file descriptor and a task).
    pub max_connections: usize,
    /// Most connections from one client IP address.
    pub max_connections_per_ip: usize,
    /// A connection with no call in flight for this long is closed.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
    pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 512;
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// Checks the limits, with a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max_connections must be positive".into());
        }
        if self.max_connections_per_ip == 0 || self.max_connections_per_ip > self.max_connections {
            return Err(format!(
                "max_connections_per_ip must be between 1 and max_connections ({}), got {}",
                self.max_connections, self.max_connections_per_ip
            ));
        }
        if self.idle_timeout < MIN_IDLE_TO_EVICT {
            return Err(format!(
                "idle_timeout must be at least {MIN_IDLE_TO_EVICT:?}, got {:?}",
                self.idle_timeout
            ));
        }
        Ok(())
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: Self::DEFAULT_MAX_CONNECTIONS_PER_IP,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// One open connection's entry: its calls in flight and when it last had one.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    ip: IpAddr,
    calls_in_flight: AtomicUsize,
    /// Milliseconds since the table's epoch when a call last started or ended.
    last_active_ms: AtomicU64,
    closing: AtomicBool,
    /// The connection task's read waker, woken when the slot is closed.
    waker: AtomicWaker,
}

impl Slot {
    fn idle_since_ms(&self) -> Option<u64> {
        (self.calls_in_flight.load(Ordering::Acquire) == 0)
            .then(|| self.last_active_ms.load(Ordering::Acquire))
    }

    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Remembers `cx`'s waker so [`Slot::close`] can wake the connection.
    fn register(&self, cx: &Context<'_>) {
        self.waker.register(cx.waker());
    }
}

/// Why a new connection was closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address already has `max_connections_per_ip`.
    PerIp,
    /// The table is full and no connection is idle enough to evict.
    Full,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Full => "full",
        }
    }
}

#[derive(Default)]
struct Slots {
    by_id: HashMap<u64, Arc<Slot>>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
}

impl Slots {
    fn remove(&mut self, id: u64) -> Option<Arc<Slot>> {
        let slot = self.by_id.remove(&id)?;
        if let Some(count) = self.per_ip.get_mut(&slot.ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&slot.ip);
            }
        }
        Some(slot)
    }

    /// The connection idle longest among those from `from` (any address if
    /// `None`), if idle since before `cutoff_ms`.
    fn longest_idle(&self, from: Option<IpAddr>, cutoff_ms: u64) -> Option<u64> {
        self.by_id
            .values()
            .filter(|slot| from.is_none_or(|ip| slot.ip == ip))
            .filter_map(|slot| Some((slot.idle_since_ms()?, slot.id)))
            .filter(|(since, _)| *since <= cutoff_ms)
            .min()
            .map(|(_, id)| id)
    }

    /// The connection a newcomer from `ip` displaces from a full table: an idle
    /// one of the address holding the most connections if `ip` would still hold
    /// fewer (fairness between addresses: a flood from a few addresses that keeps
    /// its connections young cannot lock others out), else the longest-idle
    /// connection idle since before `cutoff_ms`.
    fn victim(&self, ip: IpAddr, now_ms: u64) -> Option<u64> {
        let mine = self.per_ip.get(&ip).copied().unwrap_or(0);
        let heaviest = self
            .per_ip
            .iter()
            .max_by_key(|(_, count)| **count)
            .filter(|(_, count)| mine + 1 < **count)
            .map(|(address, _)| *address);
        if let Some(address) = heaviest
            && let Some(victim) = self.longest_idle(Some(address), now_ms)
        {
            return Some(victim);
        }
        let cutoff = now_ms.checked_sub(MIN_IDLE_TO_EVICT.as_millis() as u64)?;
        self.longest_idle(None, cutoff)
    }
}

/// Series of the connection table (const label `chain`).
#[derive(Clone)]
struct ConnectionMetrics {
    open: IntGauge,
    refused: IntCounterVec,
    closed: IntCounterVec,
}

impl ConnectionMetrics {
    fn new(chain: ChainId, registry: Option<&Registry>) -> prometheus::Result<Self> {
        let open = IntGauge::with_opts(
            Opts::new("dualchain_api_connections", "gRPC API connections open now")
                .const_label("chain", chain.name()),
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "dualchain_api_connections_refused_total",
                "gRPC API connections closed on arrival (reason: per_ip, full)",
            )
            .const_label("chain", chain.name()),
            &["reason"],
        )?;
        let closed = IntCounterVec::new(
            Opts::new(
                "dualchain_api_connections_closed_total",
                "gRPC API connections closed by the server (reason: idle, evicted)",
            )
            .const_label("chain", chain.name()),
            &["reason"],
        )?;
        if let Some(registry) = registry {
            registry.register(Box::new(open.clone()))?;
            registry.register(Box::new(refused.clone()))?;
            registry.register(Box::new(closed.clone()))?;
        }
        Ok(Self {
            open,
            refused,
            closed,
        })
    }
}

/// Every open connection of one API server.
pub(crate) struct ConnectionTable {
    limits: ConnectionLimits,
    epoch: Instant,
    slots: Mutex<Slots>,
    metrics: ConnectionMetrics,
}

impl ConnectionTable {
    pub(crate) fn new(
        limits: ConnectionLimits,
        chain: ChainId,
        registry: Option<&Registry>,
    ) -> prometheus::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            limits,
            epoch: Instant::now(),
            slots: Mutex::new(Slots::default()),
            metrics: ConnectionMetrics::new(chain, registry)?,
        }))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().expect("connection table lock")
    }

    /// A slot for a new connection from `ip`, evicting the longest-idle
    /// connection if the table is full.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Arc<Slot>, Refusal> {
        let now = self.now_ms();
        let mut slots = self.lock();
        if slots.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_connections_per_ip {
            return Err(self.refuse(Refusal::PerIp));
        }
        if slots.by_id.len() >= self.limits.max_connections {
            let Some(victim) = slots.victim(ip, now) else {
                return Err(self.refuse(Refusal::Full));
            };
            self.close_slot(&mut slots, victim, "evicted");
        }
        let id = slots.next_id;
        slots.next_id += 1;
        let slot = Arc::new(Slot {
            id,
            ip,
            calls_in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(now),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        slots.by_id.insert(id, Arc::clone(&slot));
        *slots.per_ip.entry(ip).or_insert(0) += 1;
        assert!(slots.by_id.len() <= self.limits.max_connections);
        self.count_open(&slots);
        Ok(slot)
    }

    /// Takes `id` out of the table and makes its connection end.
    fn close_slot(&self, slots: &mut Slots, id: u64, reason: &str) {
        if let Some(slot) = slots.remove(id) {
            slot.close();
            self.metrics.closed.with_label_values(&[reason]).inc();
            self.count_open(slots);
        }
    }

    fn count_open(&self, slots: &Slots) {
        self.metrics.open.set(slots.by_id.len() as i64);
    }

    fn refuse(&self, refusal: Refusal) -> Refusal {
        self.metrics
            .refused
            .with_label_values(&[refusal.label()])
            .inc();
        refusal
    }

    /// Frees the slot of a connection that ended (no-op if it was evicted).
    fn release(&self, id: u64) {
        let mut slots = self.lock();
        if slots.remove(id).is_some() {
            self.count_open(&slots);
        }
    }

    /// Closes every connection idle for at least the idle timeout; returns
    /// how many.
    pub(crate) fn close_idle(&self) -> usize {
        // Before the server has run for one timeout, nothing can be idle that long.
        let Some(cutoff) = self
            .now_ms()
            .checked_sub(self.limits.idle_timeout.as_millis() as u64)
        else {
            return 0;
        };
        let mut slots = self.lock();
        let idle: Vec<u64> = slots
            .by_id
            .values()
            .filter(|slot| slot.idle_since_ms().is_some_and(|since| since <= cutoff))
            .map(|slot| slot.id)
            .collect();
        for id in &idle {
            self.close_slot(&mut slots, *id, "idle");
        }
        idle.len()
    }

    /// Closes idle connections every quarter of the idle timeout until the
    /// task is aborted.
    pub(crate) async fn reap_idle(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.limits.idle_timeout / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let closed = self.close_idle();
            if closed > 0 {
                tracing::debug!(closed, "closed idle API connections");
            }
        }
    }

    /// Marks a call on `slot` as started; the returned guard ends it.
    pub(crate) fn begin_call(self: &Arc<Self>, slot: Arc<Slot>) -> CallOnConnection {
        slot.last_active_ms.store(self.now_ms(), Ordering::Release);
        slot.calls_in_flight.fetch_add(1, Ordering::AcqRel);
        CallOnConnection {
            table: Arc::clone(self),
            slot,
        }
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().by_id.len()
    }
}

/// A call in flight on one connection; dropping it ends the call.
pub(crate) struct CallOnConnection {
    table: Arc<ConnectionTable>,
    slot: Arc<Slot>,
}

impl Drop for CallOnConnection {
    fn drop(&mut self) {
        self.slot
            .last_active_ms
            .store(self.table.now_ms(), Ordering::Release);
        let before = self.slot.calls_in_flight.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "a call ended that never started");
    }
}

/// What tonic puts in each request's extensions for connections of this
/// server: the client's address and the connection's slot.
#[derive(Clone, Debug)]
pub struct ApiConnectInfo {
    pub remote_addr: SocketAddr,
    pub(crate) slot: Arc<Slot>,
}

/// An accepted TCP connection holding a slot; reads and writes fail once the
/// slot is closed (evicted or idle), which ends the HTTP/2 connection.
pub struct LimitedConnection {
    stream: TcpStream,
    info: ApiConnectInfo,
    table: Arc<ConnectionTable>,
}

impl LimitedConnection {
    fn closed_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection closed by the server (idle, or evicted to make room)",
        )
    }
}

impl Drop for LimitedConnection {
    fn drop(&mut self) {
        self.table.release(self.info.slot.id);
    }
}

impl Connected for LimitedConnection {
    type ConnectInfo = ApiConnectInfo;

    fn connect_info(&self) -> ApiConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.info.slot.register(cx);
        if self.info.slot.is_closing() {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.info.slot.is_closing() {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.info.slot.is_closing() {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// True for accept errors that mean the process or system is out of a
/// resource (descriptors, buffers, memory): retrying at once cannot succeed.
fn is_resource_error(error: &io::Error) -> bool {
    const RESOURCE_ERRNOS: [i32; 4] = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
    error
        .raw_os_error()
        .is_some_and(|code| RESOURCE_ERRNOS.contains(&code))
}

/// The accept loop as a stream of admitted connections (see the module docs).
pub(crate) struct LimitedIncoming {
    listener: TcpListener,
    table: Arc<ConnectionTable>,
    backoff: Option<Pin<Box<Sleep>>>,
    next_backoff: Duration,
}

impl LimitedIncoming {
    pub(crate) fn new(listener: TcpListener, table: Arc<ConnectionTable>) -> Self {
        Self {
            listener,
            table,
            backoff: None,
            next_backoff: MIN_ACCEPT_BACKOFF,
        }
    }

    fn configure(stream: &TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an API connection");
        }
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE_TIME)
            .with_interval(TCP_KEEPALIVE_INTERVAL);
        if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(%error, "cannot set TCP keepalive on an API connection");
        }
    }

    fn pause_after(&mut self, error: &io::Error) {
        tracing::warn!(
            %error,
            pause = ?self.next_backoff,
            "the API cannot accept connections (out of descriptors or memory); pausing accept"
        );
        self.backoff = Some(Box::pin(tokio::time::sleep(self.next_backoff)));
        self.next_backoff = (self.next_backoff * 2).min(MAX_ACCEPT_BACKOFF);
    }
}

impl Stream for LimitedIncoming {
    type Item = io::Result<LimitedConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(backoff) = self.backoff.as_mut() {
                std::task::ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            let (stream, remote_addr) = match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(accepted)) => accepted,
                Poll::Ready(Err(error)) if is_resource_error(&error) => {
                    self.pause_after(&error);
                    continue;
                }
                // Per-connection failures (reset before accept, ...): next one.
                Poll::Ready(Err(error)) => {
                    tracing::debug!(%error, "API accept failed");
                    continue;
                }
            };
            self.next_backoff = MIN_ACCEPT_BACKOFF;
            let Ok(slot) = self.table.admit(remote_addr.ip()) else {
                // Dropping the stream closes it: the client sees the
                // connection end before any HTTP/2 exchange.
                continue;
            };
            Self::configure(&stream);
            return Poll::Ready(Some(Ok(LimitedConnection {
                stream,
                info: ApiConnectInfo { remote_addr, slot },
                table: Arc::clone(&self.table),
            })));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, per_ip: usize) -> Arc<ConnectionTable> {
        let limits = ConnectionLimits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            idle_timeout: Duration::from_secs(2),
        };
        ConnectionTable::new(limits, ChainId::Delta, None).unwrap()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_address_over_its_share_is_refused_while_others_get_in() {
        let table = table(10, 2);
        let _a = table.admit(ip(2)).unwrap();
        let _b = table.admit(ip(2)).unwrap();
        assert_eq!(table.admit(ip(2)).unwrap_err(), Refusal::PerIp);
        assert!(table.admit(ip(3)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_idle_connection_and_never_a_busy_one() {
        let table = table(2, 2);
        let first = table.admit(ip(2)).unwrap();
        tokio::time::advance(Duration::from_millis(500)).await;
        let second = table.admit(ip(3)).unwrap();
        // Neither is idle long enough yet: the newcomer is refused.
        assert_eq!(table.admit(ip(4)).unwrap_err(), Refusal::Full);

        tokio::time::advance(MIN_IDLE_TO_EVICT).await;
        let busy = table.begin_call(Arc::clone(&first));
        let _third = table.admit(ip(4)).unwrap();
        assert!(second.is_closing(), "the idle one goes");
        assert!(!first.is_closing(), "the one with a call in flight stays");
        assert_eq!(table.open(), 2);

        // Only busy or young connections left: refused again.
        assert_eq!(table.admit(ip(5)).unwrap_err(), Refusal::Full);
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed_after_the_timeout_and_busy_ones_are_kept() {
        let table = table(10, 10);
        let idle = table.admit(ip(2)).unwrap();
        let busy = table.admit(ip(2)).unwrap();
        let call = table.begin_call(Arc::clone(&busy));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(table.close_idle(), 1);
        assert!(idle.is_closing());
        assert!(!busy.is_closing());
        drop(call);
        // The call just ended: the connection is fresh again.
        assert_eq!(table.close_idle(), 0);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(table.close_idle(), 1);
        assert_eq!(table.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_displaces_a_young_idle_connection_of_the_heaviest_address() {
        let table = table(4, 4);
        let flood: Vec<_> = (0..3).map(|_| table.admit(ip(9)).unwrap()).collect();
        let busy = table.begin_call(Arc::clone(&flood[0]));
        let other = table.admit(ip(8)).unwrap();
        // Full; everything is younger than MIN_IDLE_TO_EVICT.
        let honest = table.admit(ip(1)).expect("the heaviest address gives way");
        assert!(flood[1].is_closing() || flood[2].is_closing());
        assert!(
            !flood[0].is_closing(),
            "never a connection with a call in flight"
        );
        assert!(!other.is_closing() && !honest.is_closing());
        // The flooder itself gains nothing by it: it is not lighter than itself.
        assert_eq!(table.admit(ip(9)).unwrap_err(), Refusal::Full);
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_from_the_first_millisecond_is_not_idle_yet() {
        let table = table(1, 1);
        let first = table.admit(ip(2)).unwrap();
        assert_eq!(table.close_idle(), 0);
        assert_eq!(table.admit(ip(3)).unwrap_err(), Refusal::Full);
        assert!(!first.is_closing());
    }

    #[test]
    fn released_slots_free_their_address_share() {
        let table = table(10, 1);
        let slot = table.admit(ip(2)).unwrap();
        assert!(table.admit(ip(2)).is_err());
        table.release(slot.id);
        table.release(slot.id);
        assert!(table.admit(ip(2)).is_ok());
        assert_eq!(table.open(), 1);
    }

    #[test]
    fn limits_are_checked_with_the_field_name() {
        let bad = [
            (
                ConnectionLimits {
                    max_connections: 0,
                    ..Default::default()
                },
                "max_connections",
            ),
            (
                ConnectionLimits {
                    max_connections_per_ip: 5_000,
                    ..Default::default()
                },
                "max_connections_per_ip",
            ),
            (
                ConnectionLimits {
                    idle_timeout: Duration::from_millis(10),
                    ..Default::default()
                },
                "idle_timeout",
            ),
        ];
        for (limits, field) in bad {
            assert!(limits.validate().unwrap_err().contains(field));
        }
        ConnectionLimits::default().validate().unwrap();
    }

    #[test]
    fn out_of_descriptors_is_a_resource_error_and_a_reset_is_not() {
        assert!(is_resource_error(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_resource_error(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_resource_error(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        assert!(!is_resource_error(&io::Error::other("x")));
    }
}
