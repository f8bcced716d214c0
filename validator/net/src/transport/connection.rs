//! One connection's life: identity handshake, registration, the per-connection
//! tasks (writer, broadcast readers, request servers, heartbeat) and cleanup.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::ChainId;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::frames::{FrameStreamReader, ReadFrameError, read_frame};
use super::{Inner, Link, Outbound, close_code, next_generation};
use crate::fault::FaultDecision;
use crate::identity::{EXPORTER_LABEL, EXPORTER_LEN, Hello, IdentityError, PeerId, Role};
use crate::metrics::DropReason;
use crate::network::{InboundBudget, InboundRequest, NetError, NetEvent};
use crate::score::Offence;
use crate::throttle::TokenBucket;
use crate::tls::{HandshakeFailure, classify_handshake_error};
use crate::wire::{FRAME_HEADER_LEN, KindClass, Message, MessageKind, WireError};

/// Most frames the writer hands to quinn in one call (fewer wake-ups under load).
const WRITE_BATCH_FRAMES: usize = 64;
const WRITE_BATCH_BYTES: usize = 1024 * 1024;

/// Why an authenticated connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EstablishError {
    #[error("identity refused: {0}")]
    Identity(#[from] IdentityError),
    #[error("identity handshake failed: {0}")]
    Handshake(String),
    #[error("identity handshake timed out")]
    Timeout,
    #[error("the address is this node itself")]
    SelfConnection,
    #[error("validator {0} is banned")]
    Banned(PeerId),
    #[error("a connection to {0} already exists and is preferred")]
    Duplicate(PeerId),
}

impl EstablishError {
    fn reason(&self) -> &'static str {
        match self {
            EstablishError::Identity(e) => e.reason(),
            EstablishError::Handshake(_) => "identity_handshake",
            EstablishError::Timeout => "timeout",
            EstablishError::SelfConnection => "self_connection",
            EstablishError::Banned(_) => "banned",
            EstablishError::Duplicate(_) => "duplicate",
        }
    }
}

/// Logs and counts a failed QUIC/TLS handshake; the classical-only refusal gets its
/// own unmistakable line.
pub(crate) fn record_tls_failure(
    inner: &Inner,
    remote: SocketAddr,
    error: &quinn::ConnectionError,
) {
    let failure = classify_handshake_error(error);
    inner.metrics.handshake_failed(failure.reason());
    match failure {
        HandshakeFailure::ClassicalOnlyKeyExchange => tracing::warn!(
            %remote,
            "refused connection: peer offered only classical key exchange groups; \
             hybrid X25519MLKEM768 is required and there is no classical fallback"
        ),
        _ => tracing::debug!(%remote, reason = failure.reason(), %error, "QUIC handshake failed"),
    }
}

/// What to do with a connection attempt, given the handshakes in progress.
enum Admission {
    Accept(OwnedSemaphorePermit),
    /// Ask the client to prove its address first (a QUIC retry costs us no
    /// state); a real client comes back at once with the token.
    Retry,
    Refuse,
}

/// Handshakes are costly (ML-KEM, ML-DSA, a task): beyond half of the
/// permits an unvalidated address is retried, beyond all of them refused.
fn admission(inner: &Inner, incoming: &quinn::Incoming) -> Admission {
    let busy = inner.config.max_pending_handshakes - inner.handshakes.available_permits();
    if busy * 2 >= inner.config.max_pending_handshakes
        && !incoming.remote_address_validated()
        && incoming.may_retry()
    {
        return Admission::Retry;
    }
    match Arc::clone(&inner.handshakes).try_acquire_owned() {
        Ok(permit) => Admission::Accept(permit),
        Err(_) => Admission::Refuse,
    }
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(inner: Arc<Inner>) {
    while let Some(incoming) = inner.endpoint.accept().await {
        let permit = match admission(&inner, &incoming) {
            Admission::Accept(permit) => permit,
            Admission::Retry => {
                inner.metrics.handshake_failed("retry_sent");
                if incoming.retry().is_err() {
                    tracing::debug!("cannot send a QUIC retry");
                }
                continue;
            }
            Admission::Refuse => {
                inner.metrics.handshake_failed("overloaded");
                tracing::debug!(
                    remote = %incoming.remote_address(),
                    "refused a connection: too many handshakes in progress"
                );
                incoming.refuse();
                continue;
            }
        };
        let node = inner.clone();
        inner.spawn(async move {
            // Held until the identity is proven or refused.
            let _permit = permit;
            let remote = incoming.remote_address();
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => return record_tls_failure(&node, remote, &e),
            };
            match tokio::time::timeout(node.config.handshake_timeout, connecting).await {
                Ok(Ok(conn)) => {
                    let _ = establish(&node, conn, Role::Acceptor, remote).await;
                }
                Ok(Err(e)) => record_tls_failure(&node, remote, &e),
                Err(_) => node
                    .metrics
                    .handshake_failed(HandshakeFailure::Timeout.reason()),
            }
        });
    }
}

/// Closes connections of validators that left the membership view.
pub(crate) async fn watch_membership(inner: Arc<Inner>) {
    let mut updates = inner.membership.subscribe();
    while updates.changed().await.is_ok() {
        let current = updates.borrow_and_update().clone();
        for link in inner.links.iter() {
            if !current.contains(link.key()) {
                tracing::info!(peer = %link.key(), epoch = current.epoch, "disconnecting: no longer in the validator set");
                link.conn.close(
                    close_code::NOT_A_MEMBER.into(),
                    b"not in the current validator set",
                );
            }
        }
    }
}

fn exporter_secret(conn: &quinn::Connection) -> Result<[u8; EXPORTER_LEN], EstablishError> {
    let mut secret = [0u8; EXPORTER_LEN];
    conn.export_keying_material(&mut secret, EXPORTER_LABEL, b"")
        .map_err(|_| EstablishError::Handshake("TLS exporter unavailable".into()))?;
    Ok(secret)
}

fn hello_frame(hello: &Hello) -> Result<Bytes, EstablishError> {
    Message::new(
        ChainId::Alpha,
        MessageKind::Hello,
        hello.to_canonical_bytes(),
    )
    .encode_frame()
    .map_err(|e| EstablishError::Handshake(e.to_string()))
}

async fn read_hello(recv: &mut quinn::RecvStream) -> Result<Hello, EstablishError> {
    match read_frame(recv, KindClass::Handshake).await {
        Ok(Some((_, payload))) => {
            Ok(Hello::from_canonical_bytes(&payload).map_err(IdentityError::Malformed)?)
        }
        Ok(None) => Err(EstablishError::Handshake("peer sent no hello".into())),
        Err(ReadFrameError::Wire(e)) => Err(EstablishError::Handshake(e.to_string())),
        Err(ReadFrameError::Stream(e)) => Err(EstablishError::Handshake(e)),
    }
}

/// Both identity proofs over the first bidirectional stream: the dialer speaks
/// first, the acceptor verifies it before answering with its own.
async fn exchange_hellos(
    inner: &Inner,
    conn: &quinn::Connection,
    role: Role,
    remote: SocketAddr,
) -> Result<PeerId, EstablishError> {
    let exporter = exporter_secret(conn)?;
    let ours = hello_frame(&Hello::sign(&inner.keypair, role, &exporter, inner.network))?;
    let io = |e: &dyn std::fmt::Display| EstablishError::Handshake(e.to_string());
    match role {
        Role::Dialer => {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| io(&e))?;
            send.write_chunk(ours).await.map_err(|e| io(&e))?;
            send.finish().map_err(|e| io(&e))?;
            let theirs = read_hello(&mut recv).await?;
            Ok(theirs.verify(
                Role::Acceptor,
                &exporter,
                &inner.membership.current(),
                inner.network,
            )?)
        }
        Role::Acceptor => {
            let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| io(&e))?;
            let theirs = read_hello(&mut recv).await?;
            let peer = theirs.verify(
                Role::Dialer,
                &exporter,
                &inner.membership.current(),
                inner.network,
            )?;
            // A banned validator learns nothing more than the refusal. (Ourselves
            // still gets our hello, so the dialing side learns the address is its own.)
            if peer != inner.local {
                admit(inner, peer, role, remote)?;
            }
            send.write_chunk(ours).await.map_err(|e| io(&e))?;
            send.finish().map_err(|e| io(&e))?;
            Ok(peer)
        }
    }
}

/// Authenticates a fresh QUIC connection and, if accepted, registers it and starts
/// its tasks. Refusals are logged, counted and close the connection.
pub(crate) async fn establish(
    inner: &Arc<Inner>,
    conn: quinn::Connection,
    role: Role,
    remote: SocketAddr,
) -> Result<PeerId, EstablishError> {
    let result = match tokio::time::timeout(
        inner.config.handshake_timeout,
        exchange_hellos(inner, &conn, role, remote),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(EstablishError::Timeout),
    };
    let peer = match result.and_then(|peer| admit(inner, peer, role, remote)) {
        Ok(peer) => {
            super::config::grant_member_limits(&conn, inner.config.max_concurrent_requests);
            peer
        }
        Err(e) => {
            inner.metrics.handshake_failed(e.reason());
            let code = match &e {
                EstablishError::SelfConnection => close_code::SELF_CONNECTION,
                EstablishError::Banned(_) => close_code::BANNED,
                EstablishError::Duplicate(_) => close_code::DUPLICATE,
                _ => close_code::IDENTITY_REFUSED,
            };
            match &e {
                EstablishError::Identity(_) => {
                    tracing::warn!(%remote, error = %e, "refused connection: validator identity not proven")
                }
                _ => tracing::debug!(%remote, error = %e, "connection not kept"),
            }
            if matches!(e, EstablishError::SelfConnection) && role == Role::Acceptor {
                // Let our dialing half read the hello and record the address first.
                let _ = tokio::time::timeout(inner.config.handshake_timeout, conn.closed()).await;
            }
            conn.close(code.into(), e.reason().as_bytes());
            return Err(e);
        }
    };
    let dialed_by = match role {
        Role::Dialer => inner.local,
        Role::Acceptor => peer,
    };
    let Some((link, queue_rx, fresh)) = register(inner, peer, conn, dialed_by) else {
        inner.metrics.handshake_failed("duplicate");
        return Err(EstablishError::Duplicate(peer));
    };
    inner.addr_book.insert(remote, peer);
    if fresh {
        tracing::info!(peer = %peer, %remote, ?role, "validator connected");
        let _ = inner.events.send(NetEvent::PeerConnected(peer)).await;
    }
    start_tasks(inner, peer, link, queue_rx);
    Ok(peer)
}

/// Checks that apply once the identity is known.
fn admit(
    inner: &Inner,
    peer: PeerId,
    role: Role,
    remote: SocketAddr,
) -> Result<PeerId, EstablishError> {
    if peer == inner.local {
        if role == Role::Dialer {
            inner.self_addrs.insert(remote, ());
        }
        return Err(EstablishError::SelfConnection);
    }
    if inner.scores.is_banned(&peer, Instant::now()) {
        return Err(EstablishError::Banned(peer));
    }
    Ok(peer)
}

/// Puts the connection in the table. With two live connections to one validator
/// (both dialed at once) both sides keep the one dialed by the smaller id; a new
/// connection from the same dialer replaces the old one (the dialer knows its old
/// connection is gone). Returns `None` if the new connection lost.
fn register(
    inner: &Inner,
    peer: PeerId,
    conn: quinn::Connection,
    dialed_by: PeerId,
) -> Option<(Link, mpsc::Receiver<Outbound>, bool)> {
    let (queue, queue_rx) = mpsc::channel(inner.config.send_queue_capacity.max(1));
    let link = Link {
        conn: conn.clone(),
        queue,
        generation: next_generation(inner),
        dialed_by,
    };
    match inner.links.entry(peer) {
        Entry::Vacant(slot) => {
            slot.insert(link.clone());
            inner.metrics.connected_peers.inc();
            Some((link, queue_rx, true))
        }
        Entry::Occupied(mut slot) => {
            let existing = slot.get();
            let preferred_dialer = inner.local.min(peer);
            let replace = existing.conn.close_reason().is_some()
                || existing.dialed_by == dialed_by
                || dialed_by == preferred_dialer;
            if replace {
                let old = slot.insert(link.clone());
                old.conn.close(
                    close_code::DUPLICATE.into(),
                    b"replaced by a newer connection",
                );
                Some((link, queue_rx, false))
            } else {
                conn.close(close_code::DUPLICATE.into(), b"duplicate connection");
                None
            }
        }
    }
}

fn start_tasks(inner: &Arc<Inner>, peer: PeerId, link: Link, queue_rx: mpsc::Receiver<Outbound>) {
    inner.spawn(write_loop(inner.clone(), peer, link.conn.clone(), queue_rx));
    // One budget for everything this connection delivers: broadcasts on any of its
    // streams and requests alike.
    let budget = InboundBudget::new(
        inner.config.inbound_budget_bytes,
        inner.metrics.inbound_queued_bytes.clone(),
    );
    inner.spawn(accept_broadcast_streams(
        inner.clone(),
        peer,
        link.conn.clone(),
        budget.clone(),
    ));
    inner.spawn(accept_requests(
        inner.clone(),
        peer,
        link.conn.clone(),
        budget,
    ));
    inner.spawn(heartbeat(inner.clone(), peer, link.generation));
    let node = inner.clone();
    inner.spawn(async move {
        let reason = link.conn.closed().await;
        let removed = node
            .links
            .remove_if(&peer, |_, l| l.generation == link.generation)
            .is_some();
        if removed {
            node.metrics.connected_peers.dec();
            tracing::info!(peer = %peer, %reason, "validator disconnected");
            node.link_lost.notify_waiters();
            let _ = node.events.send(NetEvent::PeerDisconnected(peer)).await;
        }
    });
}

/// Drains the peer's send queue onto one long-lived unidirectional stream, applying
/// injected faults and the bandwidth limit per frame.
async fn write_loop(
    inner: Arc<Inner>,
    peer: PeerId,
    conn: quinn::Connection,
    mut queue: mpsc::Receiver<Outbound>,
) {
    let mut stream: Option<quinn::SendStream> = None;
    let mut bucket = inner
        .config
        .outbound_rate_limit
        .map(|limit| TokenBucket::new(limit, Instant::now()));
    // The injected limit (a benchmark's bandwidth fault), on top of the configured one;
    // a new bucket whenever the fault's rate changes.
    let mut injected: Option<TokenBucket> = None;
    let mut chunks: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH_FRAMES);
    let mut batch: Vec<Outbound> = Vec::with_capacity(WRITE_BATCH_FRAMES);
    'frames: loop {
        let first = tokio::select! {
            next = queue.recv() => match next {
                Some(out) => out,
                None => break,
            },
            _ = conn.closed() => break,
        };
        let mut bytes = first.frame.len();
        batch.push(first);
        while batch.len() < WRITE_BATCH_FRAMES && bytes < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(out) => {
                    bytes += out.frame.len();
                    batch.push(out);
                }
                Err(_) => break,
            }
        }
        inner.metrics.send_queue_depth.sub(batch.len() as i64);
        for out in batch.drain(..) {
            let mut wait_until = None;
            match inner.faults.decide(inner.local, peer) {
                FaultDecision::Deliver => {}
                FaultDecision::Drop => {
                    inner.metrics.dropped(DropReason::FaultDrop);
                    continue;
                }
                FaultDecision::Partitioned => {
                    inner.metrics.dropped(DropReason::Partitioned);
                    continue;
                }
                FaultDecision::Delay(d) => wait_until = Some(out.enqueued + d),
            }
            match (inner.faults.bandwidth(), injected.as_ref()) {
                (None, _) => injected = None,
                (Some(limit), Some(b)) if b.limit() == limit => {}
                (Some(limit), _) => injected = Some(TokenBucket::new(limit, Instant::now())),
            }
            for bucket in [bucket.as_mut(), injected.as_mut()].into_iter().flatten() {
                let wait = bucket.take(out.frame.len(), Instant::now());
                if !wait.is_zero() {
                    let until = Instant::now() + wait;
                    wait_until = Some(wait_until.map_or(until, |w: Instant| w.max(until)));
                }
            }
            if let Some(until) = wait_until {
                // Whatever was batched before goes out first, in order.
                if !flush(&conn, &mut stream, &mut chunks).await {
                    break 'frames;
                }
                tokio::time::sleep_until(until.into()).await;
            }
            inner.metrics.record_out(out.kind, out.frame.len());
            chunks.push(out.frame);
        }
        if !flush(&conn, &mut stream, &mut chunks).await {
            break;
        }
    }
    if let Some(mut s) = stream {
        let _ = s.finish();
    }
    // Frames still queued for a gone connection are lost; keep the gauge honest.
    queue.close();
    while queue.try_recv().is_ok() {
        inner.metrics.send_queue_depth.dec();
    }
}

/// Writes the batched frames; reopens the broadcast stream if the old one failed.
/// False when the connection is gone.
async fn flush(
    conn: &quinn::Connection,
    stream: &mut Option<quinn::SendStream>,
    chunks: &mut Vec<Bytes>,
) -> bool {
    if chunks.is_empty() {
        return true;
    }
    if stream.is_none() {
        match conn.open_uni().await {
            Ok(s) => *stream = Some(s),
            Err(_) => return false,
        }
    }
    let s = stream.as_mut().expect("opened above");
    let result = s.write_all_chunks(chunks).await;
    chunks.clear();
    if result.is_err() {
        *stream = None;
        return conn.close_reason().is_none();
    }
    true
}

async fn accept_broadcast_streams(
    inner: Arc<Inner>,
    peer: PeerId,
    conn: quinn::Connection,
    budget: InboundBudget,
) {
    while let Ok(recv) = conn.accept_uni().await {
        let reader = read_broadcasts(inner.clone(), peer, conn.clone(), recv, budget.clone());
        inner.spawn(reader);
    }
}

fn penalise_wire(inner: &Inner, peer: PeerId, conn: &quinn::Connection, error: &WireError) {
    let offence = match error {
        WireError::Oversize { .. } => Offence::OversizeFrame,
        WireError::UnexpectedKind { .. } => Offence::UnexpectedFrame,
        _ => Offence::MalformedFrame,
    };
    inner.offence(peer, conn, offence, &error.to_string());
}

/// How long an answer may take to be written to its requester: the largest frame
/// (64 MiB) at 5 MB/s. A requester reading slower is cut off.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// Most frames taken from one stream per delivery to the consumer.
const READ_BATCH_FRAMES: usize = 64;

async fn read_broadcasts(
    inner: Arc<Inner>,
    peer: PeerId,
    conn: quinn::Connection,
    mut recv: quinn::RecvStream,
    budget: InboundBudget,
) {
    let mut reader = FrameStreamReader::new();
    let mut frames = Vec::with_capacity(READ_BATCH_FRAMES);
    loop {
        frames.clear();
        match reader
            .read_batch(
                &mut recv,
                KindClass::Broadcast,
                &mut frames,
                READ_BATCH_FRAMES,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) | Err(ReadFrameError::Stream(_)) => return,
            Err(ReadFrameError::Wire(e)) => {
                penalise_wire(&inner, peer, &conn, &e);
                let _ = recv.stop(close_code::BAD_FRAME.into());
                return;
            }
        }
        let reachable = inner.faults.can_reach(peer, inner.local);
        let mut events = Vec::with_capacity(frames.len());
        let mut bytes = 0;
        for message in frames.drain(..) {
            inner
                .metrics
                .record_in(message.kind, FRAME_HEADER_LEN + message.payload.len());
            if !reachable {
                inner.metrics.dropped(DropReason::Partitioned);
                continue;
            }
            if !inner
                .seen
                .insert_message(message.chain, message.kind, &message.payload)
            {
                inner.metrics.dropped(DropReason::Duplicate);
                continue;
            }
            bytes += message.payload.len();
            events.push(NetEvent::Broadcast {
                from: peer,
                message,
            });
        }
        if events.is_empty() {
            continue;
        }
        inner.scores.reward_by(peer, events.len());
        // Waiting for the budget stops this stream's reads, and so its sender.
        let delivered = inner.events.send_batch_within(events, &budget, bytes);
        if delivered.await.is_err() {
            return;
        }
    }
}

async fn accept_requests(
    inner: Arc<Inner>,
    peer: PeerId,
    conn: quinn::Connection,
    budget: InboundBudget,
) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        let server = serve_request(
            inner.clone(),
            peer,
            conn.clone(),
            send,
            recv,
            budget.clone(),
        );
        inner.spawn(server);
    }
}

/// Answers one inbound request stream: pings here, everything else by the consumer.
async fn serve_request(
    inner: Arc<Inner>,
    peer: PeerId,
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    budget: InboundBudget,
) {
    let read = tokio::time::timeout(
        inner.config.request_read_timeout,
        read_frame(&mut recv, KindClass::Request),
    )
    .await;
    let (header, payload) = match read {
        Ok(Ok(Some(frame))) => frame,
        Ok(Err(ReadFrameError::Wire(e))) => {
            penalise_wire(&inner, peer, &conn, &e);
            let _ = recv.stop(close_code::BAD_FRAME.into());
            let _ = send.reset(close_code::BAD_FRAME.into());
            return;
        }
        Ok(Ok(None)) | Ok(Err(ReadFrameError::Stream(_))) | Err(_) => {
            let _ = send.reset(close_code::DECLINED.into());
            return;
        }
    };
    inner
        .metrics
        .record_in(header.kind, FRAME_HEADER_LEN + header.len);
    let response_kind = header
        .kind
        .response_kind()
        .expect("request class kinds have a response kind");
    let is_control = header.kind == MessageKind::Ping;
    let answer = if is_control {
        payload
    } else {
        // An injected partition makes the request vanish (the requester times out).
        if !inner.faults.can_reach(peer, inner.local) {
            inner.metrics.dropped(DropReason::Partitioned);
            tokio::time::sleep(inner.config.respond_timeout).await;
            return;
        }
        let (tx, rx) = oneshot::channel();
        let bytes = payload.len();
        let message = Message {
            chain: header.chain,
            kind: header.kind,
            payload,
        };
        let request = vec![NetEvent::Request(InboundRequest::new(peer, message, tx))];
        let delivered = inner.events.send_batch_within(request, &budget, bytes);
        if delivered.await.is_err() {
            let _ = send.reset(close_code::DECLINED.into());
            return;
        }
        match tokio::time::timeout(inner.config.respond_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                let _ = send.reset(close_code::DECLINED.into());
                return;
            }
        }
    };
    if !is_control {
        match inner.faults.decide(inner.local, peer) {
            FaultDecision::Deliver => {}
            FaultDecision::Delay(d) => tokio::time::sleep(d).await,
            FaultDecision::Drop | FaultDecision::Partitioned => {
                inner.metrics.dropped(DropReason::FaultDrop);
                tokio::time::sleep(inner.config.respond_timeout).await;
                return;
            }
        }
    }
    let frame = match Message::new(header.chain, response_kind, answer).encode_frame() {
        Ok(f) => f,
        Err(_) => {
            let _ = send.reset(close_code::DECLINED.into());
            return;
        }
    };
    let len = frame.len();
    // A requester that does not read its answer would otherwise pin the answer (up
    // to a 64 MiB frame) in this task for as long as the connection lives.
    let write = tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, send.write_chunk(frame)).await;
    if matches!(write, Ok(Ok(()))) && send.finish().is_ok() {
        inner.metrics.record_out(response_kind, len);
    } else {
        let _ = send.reset(close_code::DECLINED.into());
    }
}

/// Sends one request on a fresh bidirectional stream and reads the answer.
pub(crate) async fn request(
    inner: &Inner,
    peer: PeerId,
    message: Message,
    timeout: Duration,
    timeout_offence: Offence,
) -> Result<Bytes, NetError> {
    let link = inner.link(&peer).ok_or(NetError::NotConnected(peer))?;
    let expected = message
        .kind
        .response_kind()
        .expect("checked to be a request kind");
    let decision = if message.kind == MessageKind::Ping {
        FaultDecision::Deliver
    } else {
        inner.faults.decide(inner.local, peer)
    };
    let started = Instant::now();
    let conn = link.conn.clone();
    let exchange = async {
        match decision {
            FaultDecision::Deliver => {}
            FaultDecision::Delay(d) => tokio::time::sleep(d).await,
            FaultDecision::Drop | FaultDecision::Partitioned => {
                inner.metrics.dropped(if decision == FaultDecision::Drop {
                    DropReason::FaultDrop
                } else {
                    DropReason::Partitioned
                });
                std::future::pending::<()>().await;
            }
        }
        let connection_error = |e: &dyn std::fmt::Display| NetError::Connection {
            peer,
            reason: e.to_string(),
        };
        let frame = message.encode_frame()?;
        let frame_len = frame.len();
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| connection_error(&e))?;
        send.write_chunk(frame)
            .await
            .map_err(|e| connection_error(&e))?;
        send.finish().map_err(|e| connection_error(&e))?;
        inner.metrics.record_out(message.kind, frame_len);
        match read_frame(&mut recv, KindClass::Response).await {
            Ok(Some((header, payload))) if header.kind == expected => {
                inner
                    .metrics
                    .record_in(header.kind, FRAME_HEADER_LEN + header.len);
                Ok(payload)
            }
            Ok(Some((header, _))) => {
                let e = WireError::UnexpectedKind {
                    kind: header.kind,
                    expected: expected.name(),
                };
                penalise_wire(inner, peer, &conn, &e);
                Err(NetError::BadResponse {
                    peer,
                    reason: e.to_string(),
                })
            }
            Ok(None) => Err(NetError::Declined(peer)),
            Err(ReadFrameError::Wire(e)) => {
                penalise_wire(inner, peer, &conn, &e);
                Err(NetError::BadResponse {
                    peer,
                    reason: e.to_string(),
                })
            }
            Err(ReadFrameError::Stream(reason)) => {
                if conn.close_reason().is_some() {
                    Err(NetError::Connection { peer, reason })
                } else {
                    Err(NetError::Declined(peer))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(payload)) => {
            inner
                .metrics
                .request_latency
                .observe(started.elapsed().as_secs_f64());
            Ok(payload)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            // Injected faults are not the peer's fault.
            if decision == FaultDecision::Deliver {
                inner.offence(peer, &conn, timeout_offence, "no answer in time");
            }
            Err(NetError::Timeout { peer, timeout })
        }
    }
}

/// Pings the peer every interval; closes the connection after too many misses.
async fn heartbeat(inner: Arc<Inner>, peer: PeerId, generation: u64) {
    let mut ticker = tokio::time::interval(inner.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut misses = 0u32;
    let mut nonce = 0u64;
    loop {
        ticker.tick().await;
        let Some(link) = inner.link(&peer).filter(|l| l.generation == generation) else {
            return;
        };
        nonce += 1;
        let ping = Message::new(
            ChainId::Alpha,
            MessageKind::Ping,
            nonce.to_le_bytes().to_vec(),
        );
        match request(
            &inner,
            peer,
            ping,
            inner.config.heartbeat_timeout,
            Offence::HeartbeatMissed,
        )
        .await
        {
            Ok(pong) if pong[..] == nonce.to_le_bytes() => misses = 0,
            Ok(_) => {
                inner.offence(
                    peer,
                    &link.conn,
                    Offence::UnexpectedFrame,
                    "pong does not echo the ping",
                );
                misses += 1;
            }
            Err(NetError::NotConnected(_)) => return,
            Err(_) => misses += 1,
        }
        if misses >= inner.config.heartbeat_max_misses {
            tracing::warn!(peer = %peer, misses, "closing connection: heartbeats unanswered");
            link.conn
                .close(close_code::HEARTBEAT_TIMEOUT.into(), b"heartbeat timeout");
            return;
        }
    }
}
