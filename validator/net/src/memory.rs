//! An in-memory [`Network`] for the consensus core's tests and the simulator.
//!
//! Nodes join a shared [`MemoryHub`]; messages go straight to the receiver's event
//! channel, through the same fault injector semantics as the QUIC transport (drop,
//! delay, partitions; one injector for the whole hub) and the same duplicate
//! suppression, kind checks and size limits. A hub made with
//! [`MemoryHub::with_latency`] also delays every message by a link latency drawn
//! from its own seeded RNG (a whole-node simulation under virtual time then sees a
//! realistic, reproducible network). Delays need a tokio runtime (they are timers);
//! everything else is immediate.
//!
//! Membership works as in the QUIC transport: a node given a member view
//! ([`Network::set_members`]) is linked only to peers in its view that have it in
//! theirs (a node without a view takes anyone), so a validator that left the set is
//! cut off from those who applied the change, and the others from it.

use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use bytes::Bytes;
use dashmap::DashMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;

use crate::dedup::SeenCache;
use crate::fault::{FaultDecision, FaultInjector};
use crate::identity::{MemberSet, PeerId};
use crate::network::{
    BroadcastOutcome, EventReceiver, EventSender, InboundRequest, NetError, NetEvent, NetFuture,
    Network, check_outbound,
};
use crate::score::Offence;
use crate::wire::{KindClass, Message};

struct MemoryNode {
    events: EventSender,
    seen: Arc<SeenCache>,
    /// Who this node links to; `None`: anyone on the hub.
    members: Option<Arc<MemberSet>>,
}

impl MemoryNode {
    fn admits(&self, peer: &PeerId) -> bool {
        self.members.as_ref().is_none_or(|m| m.contains(peer))
    }
}

/// One-way latency of every message of a hub: `base + uniform(0..=jitter)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkLatency {
    pub base: Duration,
    pub jitter: Duration,
}

/// The shared medium of in-memory nodes.
pub struct MemoryHub {
    nodes: DashMap<PeerId, MemoryNode>,
    faults: Arc<FaultInjector>,
    event_capacity: usize,
    latency: LinkLatency,
    latency_rng: Mutex<ChaCha8Rng>,
    /// Offences reported against each peer ([`Network::report`]): the in-memory
    /// network counts them (for tests and the simulator); it scores and bans no one.
    reports: DashMap<PeerId, u64>,
}

impl MemoryHub {
    /// A hub whose fault injector draws from `seed`.
    pub fn new(seed: u64) -> Arc<Self> {
        Self::with_latency(seed, LinkLatency::default())
    }

    /// A hub whose messages each take `latency` (drawn from an RNG seeded by `seed`).
    pub fn with_latency(seed: u64, latency: LinkLatency) -> Arc<Self> {
        Arc::new(Self {
            nodes: DashMap::new(),
            faults: Arc::new(FaultInjector::new(seed)),
            event_capacity: 4096,
            latency,
            latency_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_7465_6e63_7921)),
            reports: DashMap::new(),
        })
    }

    /// Offences reported against `peer` by any node of the hub.
    pub fn reports_against(&self, peer: &PeerId) -> u64 {
        self.reports.get(peer).map_or(0, |r| *r)
    }

    /// The link latency of one message.
    fn link_delay(&self) -> Duration {
        if self.latency.jitter.is_zero() {
            return self.latency.base;
        }
        let jitter_ms = self.latency.jitter.as_millis() as u64;
        let mut rng = self
            .latency_rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.latency.base + Duration::from_millis(rng.random_range(0..=jitter_ms))
    }

    /// Adds a node; the others get `PeerConnected` for it and it gets one per other.
    pub fn join(self: &Arc<Self>, peer: PeerId) -> (MemoryNetwork, EventReceiver) {
        let (tx, rx) = EventReceiver::channel(self.event_capacity);
        for other in self.nodes.iter() {
            let _ = other.events.try_send(NetEvent::PeerConnected(peer));
            let _ = tx.try_send(NetEvent::PeerConnected(*other.key()));
        }
        self.nodes.insert(
            peer,
            MemoryNode {
                events: tx,
                seen: Arc::new(SeenCache::new(65_536)),
                members: None,
            },
        );
        (
            MemoryNetwork {
                hub: self.clone(),
                local: peer,
            },
            rx,
        )
    }

    /// Removes a node (a crash); the others get `PeerDisconnected`.
    pub fn leave(&self, peer: PeerId) {
        if self.nodes.remove(&peer).is_some() {
            for other in self.nodes.iter() {
                let _ = other.events.try_send(NetEvent::PeerDisconnected(peer));
            }
        }
    }

    pub fn faults(&self) -> &Arc<FaultInjector> {
        &self.faults
    }

    /// Whether `a` and `b` are both on the hub and each admits the other.
    fn linked(&self, a: &PeerId, b: &PeerId) -> bool {
        let admits = |x: &PeerId, y: &PeerId| self.nodes.get(x).is_some_and(|n| n.admits(y));
        a != b && admits(a, b) && admits(b, a)
    }

    /// Replaces `peer`'s member view; peers that are no longer linked to it (or newly
    /// are) get `PeerDisconnected` (`PeerConnected`) events, as on QUIC.
    fn set_members(&self, peer: PeerId, members: MemberSet) {
        let others: Vec<PeerId> = self.nodes.iter().map(|n| *n.key()).collect();
        let before: Vec<bool> = others.iter().map(|o| self.linked(&peer, o)).collect();
        match self.nodes.get_mut(&peer) {
            Some(mut node) => node.members = Some(Arc::new(members)),
            None => return,
        }
        for (other, was) in others.iter().zip(before) {
            let now = self.linked(&peer, other);
            if now == was {
                continue;
            }
            let event = |p| match now {
                true => NetEvent::PeerConnected(p),
                false => NetEvent::PeerDisconnected(p),
            };
            for (to, about) in [(peer, *other), (*other, peer)] {
                if let Some(node) = self.nodes.get(&to) {
                    let _ = node.events.try_send(event(about));
                }
            }
        }
    }

    fn deliver(&self, from: PeerId, to: PeerId, message: Message) -> Delivery {
        let sender_admits = self.nodes.get(&from).is_some_and(|n| n.admits(&to));
        let Some(node) = self
            .nodes
            .get(&to)
            .filter(|n| sender_admits && n.admits(&from))
        else {
            return Delivery::NoPeer;
        };
        if !node
            .seen
            .insert_message(message.chain, message.kind, &message.payload)
        {
            return Delivery::Duplicate;
        }
        let event = NetEvent::Broadcast { from, message };
        if node.events.try_send(event) {
            Delivery::Queued
        } else {
            Delivery::Full
        }
    }
}

enum Delivery {
    Queued,
    Duplicate,
    Full,
    NoPeer,
}

/// One node's handle on a [`MemoryHub`].
#[derive(Clone)]
pub struct MemoryNetwork {
    hub: Arc<MemoryHub>,
    local: PeerId,
}

impl MemoryNetwork {
    /// [`Network::send`] without a future: the in-memory hub never makes a sender
    /// wait (a full receiver drops the message, as a full QUIC queue does).
    pub fn send_now(&self, peer: PeerId, message: Message) -> Result<(), NetError> {
        check_outbound(&message, KindClass::Broadcast)?;
        match self.route(peer, message) {
            Delivery::NoPeer => Err(NetError::NotConnected(peer)),
            _ => Ok(()),
        }
    }

    fn route(&self, to: PeerId, message: Message) -> Delivery {
        let link = self.hub.link_delay();
        let decision = match self.hub.faults.decide(self.local, to) {
            FaultDecision::Deliver if !link.is_zero() => FaultDecision::Delay(link),
            FaultDecision::Delay(d) => FaultDecision::Delay(d + link),
            other => other,
        };
        match decision {
            FaultDecision::Deliver => self.hub.deliver(self.local, to, message),
            FaultDecision::Delay(d) => {
                let hub = self.hub.clone();
                let from = self.local;
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    hub.deliver(from, to, message);
                });
                Delivery::Queued
            }
            // Dropped in flight: the sender cannot tell, as on a real network.
            FaultDecision::Drop | FaultDecision::Partitioned => Delivery::Queued,
        }
    }
}

impl Network for MemoryNetwork {
    fn local_peer(&self) -> PeerId {
        self.local
    }

    fn connected_peers(&self) -> Vec<PeerId> {
        let all: Vec<PeerId> = self.hub.nodes.iter().map(|n| *n.key()).collect();
        let mut peers: Vec<PeerId> = all
            .into_iter()
            .filter(|p| self.hub.linked(&self.local, p))
            .collect();
        peers.sort();
        peers
    }

    fn try_broadcast(&self, message: Message) -> Result<BroadcastOutcome, NetError> {
        check_outbound(&message, KindClass::Broadcast)?;
        if let Some(me) = self.hub.nodes.get(&self.local) {
            me.seen
                .insert_message(message.chain, message.kind, &message.payload);
        }
        let mut outcome = BroadcastOutcome::default();
        for peer in self.connected_peers() {
            match self.route(peer, message.clone()) {
                Delivery::Queued | Delivery::Duplicate => outcome.queued += 1,
                Delivery::Full => outcome.queue_full += 1,
                Delivery::NoPeer => {}
            }
        }
        Ok(outcome)
    }

    fn send(&self, peer: PeerId, message: Message) -> NetFuture<'_, Result<(), NetError>> {
        Box::pin(async move { self.send_now(peer, message) })
    }

    fn request(
        &self,
        peer: PeerId,
        message: Message,
        timeout: Duration,
    ) -> NetFuture<'_, Result<Bytes, NetError>> {
        Box::pin(async move {
            check_outbound(&message, KindClass::Request)?;
            let decision = match self.hub.faults.decide(self.local, peer) {
                // As in `route`: no latency configured, no (zero-length) sleep.
                FaultDecision::Deliver => match self.hub.link_delay() {
                    d if d.is_zero() => FaultDecision::Deliver,
                    d => FaultDecision::Delay(d),
                },
                FaultDecision::Delay(d) => FaultDecision::Delay(d + self.hub.link_delay()),
                other => other,
            };
            if !self.hub.linked(&self.local, &peer) {
                return Err(NetError::NotConnected(peer));
            }
            let events = self
                .hub
                .nodes
                .get(&peer)
                .map(|n| n.events.clone())
                .ok_or(NetError::NotConnected(peer))?;
            let (tx, rx) = oneshot::channel();
            let response_kind = message
                .kind
                .response_kind()
                .expect("checked to be a request kind");
            let chain = message.chain;
            let exchange = async {
                match decision {
                    FaultDecision::Drop | FaultDecision::Partitioned => {
                        std::future::pending::<()>().await
                    }
                    FaultDecision::Delay(d) => tokio::time::sleep(d).await,
                    FaultDecision::Deliver => {}
                }
                events
                    .send(NetEvent::Request(InboundRequest::new(
                        self.local, message, tx,
                    )))
                    .await
                    .map_err(|_| NetError::NotConnected(peer))?;
                let payload = rx.await.map_err(|_| NetError::Declined(peer))?;
                if let FaultDecision::Delay(d) = decision {
                    // The answer takes the link back (and the fault's delay again).
                    tokio::time::sleep(d).await;
                }
                Message::new(chain, response_kind, payload.clone()).check_size()?;
                Ok(payload)
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or(Err(NetError::Timeout { peer, timeout }))
        })
    }

    fn faults(&self) -> &Arc<FaultInjector> {
        &self.hub.faults
    }

    fn report(&self, peer: PeerId, _offence: Offence) {
        *self.hub.reports.entry(peer).or_insert(0) += 1;
    }

    fn set_members(&self, members: MemberSet) {
        self.hub.set_members(self.local, members);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MessageKind;
    use dualchain_core::types::ChainId;

    fn p(b: u8) -> PeerId {
        PeerId::from_bytes([b; 32])
    }

    async fn next_broadcast(rx: &mut EventReceiver) -> Option<(PeerId, Message)> {
        loop {
            match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                Ok(Some(NetEvent::Broadcast { from, message })) => return Some((from, message)),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    #[tokio::test]
    async fn broadcast_request_partition_and_dedup() {
        let hub = MemoryHub::new(1);
        let (a, _arx) = hub.join(p(1));
        let (b, mut brx) = hub.join(p(2));
        let (_c, mut crx) = hub.join(p(3));
        assert_eq!(a.connected_peers(), vec![p(2), p(3)]);

        let m = Message::new(ChainId::Alpha, MessageKind::Vertex, b"v1".to_vec());
        assert_eq!(a.try_broadcast(m.clone()).unwrap().queued, 2);
        assert_eq!(next_broadcast(&mut brx).await, Some((p(1), m.clone())));
        assert_eq!(next_broadcast(&mut crx).await, Some((p(1), m.clone())));
        // C relays the same vertex to B: suppressed as a duplicate.
        b.send(p(3), m.clone()).await.unwrap();
        assert_eq!(next_broadcast(&mut crx).await, None);

        // Request/response.
        let responder = tokio::spawn(async move {
            while let Some(ev) = brx.recv().await {
                if let NetEvent::Request(req) = ev {
                    req.respond(Bytes::from_static(b"answer")).unwrap();
                }
            }
        });
        let q = Message::new(ChainId::Alpha, MessageKind::FetchVertices, b"q".to_vec());
        let answer = a.request(p(2), q.clone(), Duration::from_secs(1)).await;
        assert_eq!(answer.unwrap(), Bytes::from_static(b"answer"));

        // Partition A from B: the request times out; healing restores it.
        a.faults().partition([vec![p(1)], vec![p(2)]]).unwrap();
        let cut = a.request(p(2), q.clone(), Duration::from_millis(50)).await;
        assert!(matches!(cut, Err(NetError::Timeout { .. })));
        a.faults().heal();
        assert!(a.request(p(2), q, Duration::from_secs(1)).await.is_ok());
        responder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn link_latency_delays_every_message_within_its_bounds() {
        let latency = LinkLatency {
            base: Duration::from_millis(10),
            jitter: Duration::from_millis(40),
        };
        let hub = MemoryHub::with_latency(7, latency);
        let (a, _arx) = hub.join(p(1));
        let (_b, mut brx) = hub.join(p(2));
        for i in 0..20u8 {
            let started = tokio::time::Instant::now();
            let m = Message::new(ChainId::Alpha, MessageKind::Vertex, vec![i]);
            a.send_now(p(2), m.clone()).unwrap();
            assert_eq!(next_broadcast(&mut brx).await, Some((p(1), m)));
            let took = started.elapsed();
            assert!(
                (Duration::from_millis(10)..=Duration::from_millis(50)).contains(&took),
                "{took:?}"
            );
        }
    }

    #[tokio::test]
    async fn wrong_kinds_and_sizes_are_refused() {
        let hub = MemoryHub::new(1);
        let (a, _) = hub.join(p(1));
        let req = Message::new(ChainId::Alpha, MessageKind::FetchBlocks, b"x".to_vec());
        assert!(matches!(
            a.try_broadcast(req),
            Err(NetError::WrongKind { .. })
        ));
        let vertex = Message::new(ChainId::Alpha, MessageKind::Vertex, b"x".to_vec());
        assert!(matches!(
            a.request(p(2), vertex, Duration::from_secs(1)).await,
            Err(NetError::WrongKind { .. })
        ));
        let big = Message::new(ChainId::Alpha, MessageKind::FetchBlocks, vec![0; 70_000]);
        assert!(matches!(
            a.request(p(2), big, Duration::from_secs(1)).await,
            Err(NetError::Wire(_))
        ));
    }

    fn pending(rx: &mut EventReceiver) -> Vec<NetEvent> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    #[tokio::test]
    async fn member_views_link_only_mutual_members_and_say_who_went() {
        use dualchain_core::crypto::ValidatorKeypair;
        let keys: Vec<ValidatorKeypair> = (0..3u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 1; 32]))
            .collect();
        let ids: Vec<PeerId> = keys.iter().map(|k| PeerId::of(k.public())).collect();
        let hub = MemoryHub::new(1);
        let (a, mut arx) = hub.join(ids[0]);
        let (_b, mut brx) = hub.join(ids[1]);
        let (c, mut crx) = hub.join(ids[2]);
        for rx in [&mut arx, &mut brx, &mut crx] {
            pending(rx);
        }
        // `a` takes `c` out of its view; `c` (no view) would still take `a`.
        a.set_members(MemberSet::new(
            1,
            keys[..2].iter().map(|k| k.public().clone()),
        ));
        assert_eq!(a.connected_peers(), vec![ids[1]]);
        assert!(!c.connected_peers().contains(&ids[0]));
        assert!(c.connected_peers().contains(&ids[1]));
        let gone = |events: Vec<NetEvent>, peer: PeerId| {
            events
                .iter()
                .any(|e| matches!(e, NetEvent::PeerDisconnected(p) if *p == peer))
        };
        assert!(gone(pending(&mut arx), ids[2]));
        assert!(gone(pending(&mut crx), ids[0]));
        assert!(pending(&mut brx).is_empty(), "b's links did not change");

        // Neither way: `c`'s broadcast reaches `b` only, its request to `a` fails.
        let m = Message::new(ChainId::Alpha, MessageKind::Vertex, b"v".to_vec());
        assert_eq!(c.try_broadcast(m.clone()).unwrap().queued, 1);
        assert_eq!(next_broadcast(&mut brx).await, Some((ids[2], m)));
        assert_eq!(next_broadcast(&mut arx).await, None);
        let req = Message::new(ChainId::Alpha, MessageKind::FetchBlocks, b"r".to_vec());
        assert!(matches!(
            c.request(ids[0], req, Duration::from_secs(1)).await,
            Err(NetError::NotConnected(_))
        ));
        // Back in the view: linked again, and both are told.
        a.set_members(MemberSet::new(2, keys.iter().map(|k| k.public().clone())));
        let mut others = vec![ids[1], ids[2]];
        others.sort();
        assert_eq!(a.connected_peers(), others);
        assert!(
            pending(&mut crx)
                .iter()
                .any(|e| matches!(e, NetEvent::PeerConnected(p) if *p == ids[0]))
        );
    }
}
