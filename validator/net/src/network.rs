//! The `Network` seam: what consensus, the mempool and the simulator see of the
//! transport, implemented by the QUIC transport and by the in-memory network.
//!
//! Outbound calls go through the trait; inbound traffic arrives as [`NetEvent`]s on
//! the bounded channel returned when a network is created. The channel is bounded on
//! purpose: a consumer that falls behind stops the transport from reading, which in
//! turn stops QUIC flow-control credit, so senders feel the back-pressure instead of
//! this node buffering without limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::fault::FaultInjector;
use crate::identity::{MemberSet, PeerId};
use crate::score::Offence;
use crate::wire::{KindClass, Message, MessageKind, WireError};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Network>`).
pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an outbound operation failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NetError {
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    #[error("request to peer {peer} timed out after {timeout:?}")]
    Timeout { peer: PeerId, timeout: Duration },
    #[error("{kind} cannot be sent this way (it is not {expected})")]
    WrongKind {
        kind: MessageKind,
        expected: &'static str,
    },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("peer {peer} sent an invalid response: {reason}")]
    BadResponse { peer: PeerId, reason: String },
    #[error("peer {0} declined to answer the request")]
    Declined(PeerId),
    #[error("connection to peer {peer} failed: {reason}")]
    Connection { peer: PeerId, reason: String },
    #[error("the network is shut down")]
    Shutdown,
}

/// Something that arrived from a peer (or happened to a connection).
#[derive(Debug)]
pub enum NetEvent {
    /// An authenticated validator connected.
    PeerConnected(PeerId),
    /// Its connection closed.
    PeerDisconnected(PeerId),
    /// A broadcast, delivered once (duplicates are suppressed).
    Broadcast { from: PeerId, message: Message },
    /// A request to answer through [`InboundRequest::respond`].
    Request(InboundRequest),
}

/// The receiving end of a network's inbound events.
///
/// Inside, events travel in batches (all frames read from a stream in one go share
/// one channel operation and one wake-up of the consumer); they are handed out one
/// at a time. The channel is bounded, which is what pushes back on fast senders.
/// `recv` is cancel-safe (it can sit in a `select!` or a timeout).
pub struct EventReceiver {
    rx: mpsc::Receiver<Vec<NetEvent>>,
    pending: std::vec::IntoIter<NetEvent>,
}

impl EventReceiver {
    /// A bounded event channel holding about `capacity` events.
    pub fn channel(capacity: usize) -> (EventSender, EventReceiver) {
        let (tx, rx) = mpsc::channel((capacity / 8).max(16));
        (
            EventSender { tx },
            EventReceiver {
                rx,
                pending: Vec::new().into_iter(),
            },
        )
    }

    /// The next event; `None` once the network is gone.
    pub async fn recv(&mut self) -> Option<NetEvent> {
        loop {
            if let Some(event) = self.pending.next() {
                return Some(event);
            }
            self.pending = self.rx.recv().await?.into_iter();
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<NetEvent> {
        loop {
            if let Some(event) = self.pending.next() {
                return Some(event);
            }
            self.pending = self.rx.try_recv().ok()?.into_iter();
        }
    }
}

impl std::fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventReceiver")
    }
}

/// The sending end (held by the network implementation).
#[derive(Clone, Debug)]
pub struct EventSender {
    tx: mpsc::Sender<Vec<NetEvent>>,
}

impl EventSender {
    /// Waits for room; fails only when the receiver is gone.
    pub async fn send(&self, event: NetEvent) -> Result<(), NetError> {
        self.send_batch(vec![event]).await
    }

    pub async fn send_batch(&self, events: Vec<NetEvent>) -> Result<(), NetError> {
        self.tx.send(events).await.map_err(|_| NetError::Shutdown)
    }

    /// Without waiting; false if the channel is full or closed.
    pub fn try_send(&self, event: NetEvent) -> bool {
        self.tx.try_send(vec![event]).is_ok()
    }
}

/// A request waiting for the local answer. Dropping it without answering makes the
/// requester fail with [`NetError::Declined`] instead of waiting for its timeout.
#[derive(Debug)]
pub struct InboundRequest {
    pub from: PeerId,
    pub message: Message,
    responder: oneshot::Sender<Bytes>,
}

impl InboundRequest {
    pub fn new(from: PeerId, message: Message, responder: oneshot::Sender<Bytes>) -> Self {
        Self {
            from,
            message,
            responder,
        }
    }

    /// The kind the answer will carry.
    pub fn response_kind(&self) -> MessageKind {
        self.message
            .kind
            .response_kind()
            .expect("inbound requests are only built from request kinds")
    }

    /// Answers with `payload` (canonical encoding of the response kind). Refuses a
    /// payload over the response kind's limit rather than have the peer refuse it.
    pub fn respond(self, payload: Bytes) -> Result<(), NetError> {
        let kind = self.response_kind();
        Message::new(self.message.chain, kind, payload.clone()).check_size()?;
        // The requester may have given up; that is not our error.
        let _ = self.responder.send(payload);
        Ok(())
    }
}

/// How a non-blocking broadcast went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BroadcastOutcome {
    /// Peers whose send queue took the message.
    pub queued: usize,
    /// Peers whose queue was full (the message is dropped for them and counted).
    pub queue_full: usize,
}

/// The transport seam.
pub trait Network: Send + Sync {
    /// This node's id.
    fn local_peer(&self) -> PeerId;

    /// Currently connected (authenticated) peers.
    fn connected_peers(&self) -> Vec<PeerId>;

    /// Queues a broadcast for every connected peer without waiting; peers whose queue
    /// is full miss it (gossip redundancy and fetches repair that). The message is
    /// marked as seen locally, so copies relayed back to us are suppressed.
    fn try_broadcast(&self, message: Message) -> Result<BroadcastOutcome, NetError>;

    /// Queues a broadcast-class message for one peer, waiting while its queue is full
    /// (back-pressure). Meant for relaying what we received (already in the seen
    /// cache) and for targeted pushes; unlike `try_broadcast` it does not hash the
    /// payload into the seen cache, which keeps the point-to-point path cheap.
    fn send(&self, peer: PeerId, message: Message) -> NetFuture<'_, Result<(), NetError>>;

    /// Sends a request and waits for the answer's payload, at most `timeout`.
    fn request(
        &self,
        peer: PeerId,
        message: Message,
        timeout: Duration,
    ) -> NetFuture<'_, Result<Bytes, NetError>>;

    /// The runtime fault switch of this network.
    fn faults(&self) -> &Arc<FaultInjector>;

    /// The layer above found a message from `peer` well-formed but wrong (see
    /// [`Offence::InvalidContent`]): it costs the peer score as a wire offence does,
    /// down to a ban and a disconnect.
    fn report(&self, peer: PeerId, offence: Offence);

    /// Who may be connected from now on (an epoch changed the validator set):
    /// connections of peers outside `members` close, and only members are admitted.
    fn set_members(&self, members: MemberSet);
}

/// Checks an outbound message's kind class and size.
pub(crate) fn check_outbound(message: &Message, class: KindClass) -> Result<(), NetError> {
    if message.kind.class() != class {
        return Err(NetError::WrongKind {
            kind: message.kind,
            expected: match class {
                KindClass::Broadcast => "a broadcast kind",
                KindClass::Request => "a request kind",
                KindClass::Response => "a response kind",
                KindClass::Handshake => "the hello",
            },
        });
    }
    message.check_size()?;
    Ok(())
}
