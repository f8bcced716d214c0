//! The simulated transport, and what a Byzantine validator does with it.
//!
//! A Byzantine validator runs the real runtime (so its vertices keep the DAG moving
//! and it executes blocks like everyone else), but its transport rewrites what it
//! broadcasts with one of the consensus simulator's [`Behaviour`]s: equivocating
//! vertices, withheld vertices (and, see [`crate::seams`], unanswered sync requests),
//! vertices with corrupt signatures, or garbage. An equivocating validator also
//! votes for a header nobody executed, validly signed, towards half of its peers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dualchain_consensus::sim::Behaviour;
use dualchain_consensus::sim::byzantine::State;
use dualchain_consensus::wire::NetMessage;
use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::BlockCertificate;
use dualchain_net::network::NetFuture;
use dualchain_net::{
    BroadcastOutcome, FaultInjector, MemberSet, MemoryHub, MemoryNetwork, Message, MessageKind,
    NetError, Network, Offence, PeerId,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A Byzantine validator's plan for its outgoing broadcasts.
pub struct Byzantine {
    behaviour: Behaviour,
    key: Arc<ValidatorKeypair>,
    network: NetworkId,
    peers: Arc<Vec<PeerId>>,
    me: usize,
    state: State,
    rng: ChaCha8Rng,
}

impl Byzantine {
    pub fn new(
        behaviour: Behaviour,
        key: Arc<ValidatorKeypair>,
        network: NetworkId,
        peers: Arc<Vec<PeerId>>,
        me: usize,
        seed: u64,
    ) -> Self {
        Self {
            behaviour,
            key,
            network,
            peers,
            me,
            state: State::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// (peer, message) pairs to send instead of broadcasting `message`; `None`
    /// sends it honestly.
    fn rewrite(&mut self, message: &Message) -> Option<Vec<(PeerId, Message)>> {
        match message.kind {
            MessageKind::Vertex => {
                let Ok(NetMessage::Vertex(vertex)) =
                    NetMessage::from_canonical_bytes(&message.payload)
                else {
                    return None;
                };
                let plan = self.behaviour.plan(
                    &mut self.state,
                    &mut self.rng,
                    (&self.key, self.network),
                    self.peers.len(),
                    self.me,
                    &vertex,
                );
                Some(
                    plan.into_iter()
                        .map(|(to, bytes)| {
                            let payload = Bytes::copy_from_slice(&bytes);
                            (
                                self.peers[to],
                                Message::new(message.chain, MessageKind::Vertex, payload),
                            )
                        })
                        .collect(),
                )
            }
            MessageKind::Certificate if self.behaviour == Behaviour::Equivocate => {
                let vote = BlockCertificate::from_canonical_bytes(&message.payload).ok()?;
                let forged_digest = Digest(blake3::hash(vote.header_digest.as_bytes()).into());
                let forged = BlockCertificate {
                    header_digest: forged_digest,
                    signatures: vec![(
                        self.me as u16,
                        self.key.sign(
                            SigningDomain::BlockVote.on(self.network),
                            forged_digest.as_bytes(),
                        ),
                    )],
                    ..vote
                };
                let forged = Message::new(
                    message.chain,
                    MessageKind::Certificate,
                    forged.to_canonical_bytes(),
                );
                Some(
                    self.peers
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != self.me)
                        .map(|(i, peer)| {
                            let m = if i % 2 == 0 {
                                message.clone()
                            } else {
                                forged.clone()
                            };
                            (*peer, m)
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

/// A simulated validator's transport on one chain's hub. A crashed node's transport
/// is dead: tasks of the old incarnation still running (a fetch, a push) send
/// nothing any more.
pub struct SimNet {
    inner: MemoryNetwork,
    hub: Arc<MemoryHub>,
    byzantine: Option<Mutex<Byzantine>>,
    alive: AtomicBool,
}

impl SimNet {
    pub fn new(
        inner: MemoryNetwork,
        hub: Arc<MemoryHub>,
        byzantine: Option<Mutex<Byzantine>>,
    ) -> Self {
        Self {
            inner,
            hub,
            byzantine,
            alive: AtomicBool::new(true),
        }
    }

    /// Leaves the hub (the other nodes see a disconnection); sends nothing after.
    pub fn leave(&self) {
        if self.alive.swap(false, Ordering::AcqRel) {
            self.hub.leave(self.inner.local_peer());
        }
    }

    fn dead(&self) -> Option<NetError> {
        (!self.alive.load(Ordering::Acquire)).then_some(NetError::Shutdown)
    }
}

impl Network for SimNet {
    fn local_peer(&self) -> PeerId {
        self.inner.local_peer()
    }

    fn connected_peers(&self) -> Vec<PeerId> {
        self.inner.connected_peers()
    }

    fn try_broadcast(&self, message: Message) -> Result<BroadcastOutcome, NetError> {
        if let Some(e) = self.dead() {
            return Err(e);
        }
        let rewritten = self.byzantine.as_ref().and_then(|b| {
            b.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .rewrite(&message)
        });
        let Some(plan) = rewritten else {
            return self.inner.try_broadcast(message);
        };
        let mut outcome = BroadcastOutcome::default();
        for (peer, m) in plan {
            if self.inner.send_now(peer, m).is_ok() {
                outcome.queued += 1;
            }
        }
        Ok(outcome)
    }

    fn send(&self, peer: PeerId, message: Message) -> NetFuture<'_, Result<(), NetError>> {
        match self.dead() {
            Some(e) => Box::pin(async move { Err(e) }),
            None => self.inner.send(peer, message),
        }
    }

    fn request(
        &self,
        peer: PeerId,
        message: Message,
        timeout: Duration,
    ) -> NetFuture<'_, Result<Bytes, NetError>> {
        match self.dead() {
            Some(e) => Box::pin(async move { Err(e) }),
            None => self.inner.request(peer, message, timeout),
        }
    }

    fn faults(&self) -> &Arc<FaultInjector> {
        self.inner.faults()
    }

    fn report(&self, peer: PeerId, offence: Offence) {
        self.inner.report(peer, offence)
    }

    fn set_members(&self, members: MemberSet) {
        self.inner.set_members(members)
    }
}
