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
use prometheus::IntGauge;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

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
    rx: mpsc::Receiver<EventBatch>,
    pending: std::vec::IntoIter<NetEvent>,
    /// The bytes the batch being handed out holds against its sender's budget; given
    /// back with its last event.
    held: Option<HeldBytes>,
}

/// Events sent in one channel operation, and the budget bytes they hold.
struct EventBatch {
    events: Vec<NetEvent>,
    held: Option<HeldBytes>,
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
                held: None,
            },
        )
    }

    /// The next event; `None` once the network is gone.
    pub async fn recv(&mut self) -> Option<NetEvent> {
        loop {
            if let Some(event) = self.next_pending() {
                return Some(event);
            }
            let batch = self.rx.recv().await?;
            self.start(batch);
        }
    }

    /// Hands out `batch` next.
    fn start(&mut self, batch: EventBatch) {
        self.pending = batch.events.into_iter();
        self.held = batch.held;
    }

    /// The next event of the current batch; the batch's budget bytes go back with
    /// its last event (from then on they are the consumer's to account for).
    fn next_pending(&mut self) -> Option<NetEvent> {
        let event = self.pending.next();
        if self.pending.len() == 0 {
            self.held = None;
        }
        event
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<NetEvent> {
        loop {
            if let Some(event) = self.next_pending() {
                return Some(event);
            }
            let batch = self.rx.try_recv().ok()?;
            self.start(batch);
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
    tx: mpsc::Sender<EventBatch>,
}

impl EventSender {
    /// Waits for room; fails only when the receiver is gone.
    pub async fn send(&self, event: NetEvent) -> Result<(), NetError> {
        self.send_batch(vec![event]).await
    }

    pub async fn send_batch(&self, events: Vec<NetEvent>) -> Result<(), NetError> {
        self.send_held(events, None).await
    }

    /// Like [`send_batch`](Self::send_batch), but first waits until `budget` has
    /// `bytes` free and holds them until the consumer has taken the whole batch.
    pub async fn send_batch_within(
        &self,
        events: Vec<NetEvent>,
        budget: &InboundBudget,
        bytes: usize,
    ) -> Result<(), NetError> {
        let held = budget.reserve(bytes).await?;
        self.send_held(events, Some(held)).await
    }

    async fn send_held(
        &self,
        events: Vec<NetEvent>,
        held: Option<HeldBytes>,
    ) -> Result<(), NetError> {
        let batch = EventBatch { events, held };
        self.tx.send(batch).await.map_err(|_| NetError::Shutdown)
    }

    /// Without waiting; false if the channel is full or closed.
    pub fn try_send(&self, event: NetEvent) -> bool {
        let batch = EventBatch {
            events: vec![event],
            held: None,
        };
        self.tx.try_send(batch).is_ok()
    }
}

/// How many bytes of one peer's inbound frames may wait for the consumer.
///
/// The event channel is bounded by batches, and a batch can hold 16 MiB vertices:
/// a peer that sends large frames faster than the consumer takes them would
/// otherwise park gigabytes here. With a budget per connection, its reader stops
/// reading once the budget is spent; QUIC flow control then stops the sender, and
/// only that sender (other peers have their own budgets).
#[derive(Clone, Debug)]
pub struct InboundBudget {
    permits: Arc<Semaphore>,
    capacity: u32,
    queued: IntGauge,
}

impl InboundBudget {
    /// A budget of `capacity` bytes (at most 4 GiB) whose use `queued` shows.
    pub fn new(capacity: usize, queued: IntGauge) -> Self {
        let capacity = u32::try_from(capacity).unwrap_or(u32::MAX).max(1);
        Self {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            queued,
        }
    }

    /// Waits until `bytes` are free and takes them. A frame larger than the whole
    /// budget takes all of it, so it waits until nothing else of this peer's waits.
    async fn reserve(&self, bytes: usize) -> Result<HeldBytes, NetError> {
        let n = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| NetError::Shutdown)?;
        self.queued.add(i64::from(n));
        Ok(HeldBytes {
            _permit: permit,
            bytes: n,
            queued: self.queued.clone(),
        })
    }

    /// Bytes free now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Budget bytes held by a batch in the channel; returned when dropped.
#[derive(Debug)]
struct HeldBytes {
    _permit: OwnedSemaphorePermit,
    bytes: u32,
    queued: IntGauge,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.queued.sub(i64::from(self.bytes));
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

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::Digest;
    use dualchain_core::types::ChainId;
    use std::task::{Context, Poll, Waker};

    fn vertex_event(from: u8, len: usize) -> NetEvent {
        NetEvent::Broadcast {
            from: PeerId(Digest([from; 32])),
            message: Message::new(ChainId::Delta, MessageKind::Vertex, vec![0u8; len]),
        }
    }

    /// Polls once, without a runtime's help: the output if the future finished now.
    fn poll_now<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(f).poll(&mut cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_spent_budget_holds_its_sender_until_the_consumer_takes_the_batch() {
        let queued = IntGauge::new("q", "q").unwrap();
        let budget = InboundBudget::new(1000, queued.clone());
        let (tx, mut rx) = EventReceiver::channel(4096);
        tx.send_batch_within(
            vec![vertex_event(1, 600), vertex_event(1, 100)],
            &budget,
            700,
        )
        .await
        .unwrap();
        assert_eq!(budget.available(), 300);
        assert_eq!(queued.get(), 700);
        // The next 600 bytes do not fit: the sender waits, the channel has room.
        let mut second = Box::pin(tx.send_batch_within(vec![vertex_event(1, 600)], &budget, 600));
        assert!(poll_now(&mut second).is_none());
        // Taking the first event of the batch does not free it; taking its last does.
        assert!(rx.try_recv().is_some());
        assert!(poll_now(&mut second).is_none());
        assert_eq!(queued.get(), 700);
        assert!(rx.try_recv().is_some());
        assert_eq!(queued.get(), 0);
        poll_now(&mut second).expect("room now").unwrap();
        assert_eq!(budget.available(), 400);
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_takes_all_of_it_and_still_goes_through() {
        let queued = IntGauge::new("q", "q").unwrap();
        let budget = InboundBudget::new(1000, queued.clone());
        let (tx, mut rx) = EventReceiver::channel(4096);
        tx.send_batch_within(vec![vertex_event(1, 5000)], &budget, 5000)
            .await
            .unwrap();
        assert_eq!((budget.available(), queued.get()), (0, 1000));
        let Some(NetEvent::Broadcast { message, .. }) = rx.recv().await else {
            panic!("the large frame is delivered");
        };
        assert_eq!(message.payload.len(), 5000);
        assert_eq!((budget.available(), queued.get()), (1000, 0));
    }

    #[tokio::test]
    async fn unbudgeted_batches_still_flow() {
        let (tx, mut rx) = EventReceiver::channel(16);
        tx.send_batch(vec![vertex_event(1, 10), vertex_event(2, 10)])
            .await
            .unwrap();
        assert!(tx.try_send(vertex_event(3, 10)));
        let mut from = Vec::new();
        while let Some(NetEvent::Broadcast { from: peer, .. }) = rx.try_recv() {
            from.push(peer.0.0[0]);
        }
        assert_eq!(from, [1, 2, 3]);
    }
}
