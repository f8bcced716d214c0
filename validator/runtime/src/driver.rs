//! The consensus driver of one chain: the only owner of the sans-I/O engine.
//!
//! One task turns the world into engine inputs — peer messages, timers, mempool
//! batches, executor acknowledgements — and the engine's outputs into the world:
//! broadcasts, fetches, committed sub-DAGs for the executor, block votes. The engine
//! persists what an output depends on before returning it (its own vertex, its
//! commits), so the driver carries outputs out at once.
//!
//! Back-pressure by construction: committed sub-DAGs go to the executor over a
//! bounded channel ([`crate::chain::EXEC_QUEUE_CAPACITY`]). While it is full the
//! driver proposes no new transactions and takes no network input, timers or sync
//! answers (the transport's bounded event queue then pushes back on the peers); it
//! only hands the executor its backlog and takes the executor's events, so the two
//! can never wait on each other.
//!
//! A burst of network events is handled as one unit: vertex signatures are verified
//! together (on the rayon pool, off the event loop, with [`Placement::Threads`]), the
//! vertices enter the engine as one input (one store write), then the burst's sync
//! requests go to the [`SyncServer`], which answers them from the store off this
//! task, each peer within its limits.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use dualchain_consensus::avalanche::{AvalancheMessage, Poller, Query};
use dualchain_consensus::verify::VertexVerifier;
use dualchain_consensus::wire::NetMessage;
use dualchain_consensus::{
    Consensus, DagBft, Evidence, Input, KvConsensusStore, Output, RejectReason, SharedVerdictCache,
    SyncRequest, store::drop_epochs_before,
};
use dualchain_core::Digest;
use dualchain_core::crypto::ValidatorPublicKey;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    BlockCertificate, BlockHeader, BlockRangeRequest, SignedTransaction, StateSyncRequest,
    ValidatorIndex, ValidatorSet, Vertex, VertexError,
};
use dualchain_execution::admission::{AccountRead, Stage, check_sender};
use dualchain_mempool::{AdmissionTime, Envelope};
use dualchain_net::{
    EventReceiver, InboundRequest, Message, MessageKind, NetEvent, Network, Offence, PeerId,
};
use tokio::sync::{mpsc, watch};

use crate::block_server::BlockServer;
use crate::chain::EXEC_QUEUE_CAPACITY;
use crate::chain::open_engine;
use crate::clock::Clock;
use crate::committed::CommittedState;
use crate::context::{ChainContext, reinstate};
use crate::executor::{ExecCommand, ExecEvent};
use crate::follower::BehindWatch;
use crate::membership::transport_members;
use crate::nonce_gate::{Gate, NonceGate};
use crate::seams::{Placement, Seams};
use crate::state_server::StateServer;
use crate::sync_server::{Served, SyncServer};
use crate::votes::{VoteBook, VoteError};

/// The engine of a runtime chain over storage engine `E`.
pub type Engine<E> = DagBft<KvConsensusStore<E>, SharedVerdictCache>;

type EngineOutput = Output<AvalancheMessage>;

/// How often the driver offers the engine a mempool batch and refreshes gauges.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// How long a vertex fetch from one peer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the transport waits for the answer to a consensus query (the Avalanche
/// rule counts a poll at its own, shorter, timeout; a later answer is dropped there).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Answers to our consensus queries waiting for the driver.
const QUERY_ANSWERS_CAPACITY: usize = 256;
/// Network events handled per engine step.
const MAX_EVENTS_PER_BURST: usize = 256;
/// Encoded vertex bytes per engine step: a burst of large vertices ends early, so
/// what a burst holds decoded stays bounded (256 events of 16 MiB would be 4 GiB).
const MAX_BURST_VERTEX_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of transactions per proposal: far below the vertex limit.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Sync answers from fetch tasks waiting for the driver.
const SYNC_ANSWERS_CAPACITY: usize = 64;
/// Our vote for a header not certified after this long is broadcast again.
const VOTE_RESEND_MS: u64 = 1_000;
/// Votes resent per tick at most.
const MAX_VOTE_RESENDS_PER_TICK: usize = 16;
/// Vertices of the next epoch kept for its engine while this one finishes, and their
/// bytes (the oldest go first).
const MAX_EARLY_VERTICES: usize = 4_096;
const MAX_EARLY_BYTES: usize = 64 * 1024 * 1024;

pub struct Driver<S: Seams> {
    ctx: Arc<ChainContext<S>>,
    engine: Engine<S::Engine>,
    net: Arc<S::Net>,
    events: EventReceiver,
    exec: mpsc::Sender<ExecCommand>,
    /// Commands for the executor that did not fit in its queue yet, in order.
    outbox: VecDeque<ExecCommand>,
    exec_events: mpsc::Receiver<ExecEvent>,
    votes: VoteBook,
    /// Our index in the committee of the engine's epoch.
    me: ValidatorIndex,
    max_batch_txs: usize,
    max_queued_txs: usize,
    peers: HashMap<PeerId, ValidatorIndex>,
    peer_ids: Vec<PeerId>,
    timer_at: Option<u64>,
    /// Sync answers, by the peer that gave them (a committee index could name
    /// another validator once the epoch changed).
    sync_tx: mpsc::Sender<(PeerId, Vec<Arc<Vertex>>)>,
    sync_rx: mpsc::Receiver<(PeerId, Vec<Arc<Vertex>>)>,
    /// Responses to our consensus queries (the Avalanche rule), by answering peer.
    query_tx: mpsc::Sender<(PeerId, AvalancheMessage)>,
    query_rx: mpsc::Receiver<(PeerId, AvalancheMessage)>,
    /// Each peer's latest consensus query, waiting for the engine's response (one
    /// per peer: a newer query declines the older one).
    inbound_queries: HashMap<ValidatorIndex, (u64, InboundRequest)>,
    /// The Avalanche state of the epoch that ended here, with that committee's
    /// indexes: it answers the queries of peers still finishing the epoch (a node
    /// that moved on decided its last slots; without its answers they never could).
    ended: Option<(Poller, HashMap<PeerId, ValidatorIndex>)>,
    /// When the confidence of open slots is next sampled into the metrics.
    next_confidence_sample_ms: u64,
    /// Answers peers' sync requests off this task.
    sync_server: SyncServer<S::Engine>,
    /// Answers peers' block range requests (block sync) off this task.
    block_server: BlockServer<S::Engine>,
    state_server: StateServer<S::Engine>,
    /// Admission times of the transactions handed to the engine and not yet
    /// proposed, so a stopping chain gives them back to the mempool in their place.
    queued: HashMap<Digest, AdmissionTime>,
    /// Transactions taken from the mempool whose sender's earlier nonce has not come
    /// yet ([`NonceGate`]).
    nonce_gate: NonceGate,
    /// Vertices of the next epoch that arrived while the engine still ran this one
    /// (bounded): the next engine gets them when it starts. Gossip delivers a vertex
    /// once, so a validator that finishes an epoch after its peers would otherwise
    /// never see their first rounds of the next one.
    early: VecDeque<(PeerId, Arc<Vertex>)>,
    early_bytes: usize,
    /// Whether the chain fell out of its engine's reach (see `follower::BehindWatch`).
    behind: BehindWatch,
    /// The sets whose members the transport admits: the engine's epoch and the one
    /// before it.
    admitted: (Arc<ValidatorSet>, Option<Arc<ValidatorSet>>),
    /// Alpha's current set and pending joiners, admitted too.
    expected: watch::Receiver<Arc<Vec<ValidatorPublicKey>>>,
}

/// What woke the driver.
enum Wake {
    Executor(Option<ExecEvent>),
    /// A queued command went to the executor.
    Sent,
    Net(Option<NetEvent>),
    SyncAnswer(PeerId, Vec<Arc<Vertex>>),
    QueryAnswer(PeerId, AvalancheMessage),
    Timer,
    Tick,
}

/// What a burst of network events asks of the engine.
#[derive(Default)]
struct Burst {
    vertices: Vec<(ValidatorIndex, Arc<Vertex>)>,
    requests: Vec<(PeerId, SyncRequest, InboundRequest)>,
    block_requests: Vec<(PeerId, BlockRangeRequest, InboundRequest)>,
    state_requests: Vec<(PeerId, StateSyncRequest, InboundRequest)>,
    evidence: Vec<(ValidatorIndex, Evidence)>,
    /// Consensus queries of the Avalanche rule, with the request to answer.
    queries: Vec<(ValidatorIndex, Query, InboundRequest)>,
    /// Encoded bytes of `vertices`.
    vertex_bytes: usize,
}

impl<S: Seams> Driver<S> {
    pub fn new(
        ctx: Arc<ChainContext<S>>,
        engine: Engine<S::Engine>,
        net: Arc<S::Net>,
        events: EventReceiver,
        exec: mpsc::Sender<ExecCommand>,
        exec_events: mpsc::Receiver<ExecEvent>,
        votes: VoteBook,
    ) -> Self {
        let committee = ctx.committee();
        let (peers, peer_ids) = peer_maps(&committee);
        let me = committee
            .index_of(ctx.key().public())
            .expect("the engine opened, so we are a member");
        let (sync_tx, sync_rx) = mpsc::channel(SYNC_ANSWERS_CAPACITY);
        ctx.avalanche_metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .engine_opened(engine.epoch());
        let (query_tx, query_rx) = mpsc::channel(QUERY_ANSWERS_CAPACITY);
        let admitted = (committee.clone(), votes.previous_set());
        let mut expected = ctx.identity.expected.subscribe();
        expected.mark_changed();
        let cfg = engine.config();
        let sync_server = SyncServer::new(
            engine.store().engine().clone(),
            cfg.max_sync_vertices,
            ctx.seams.placement(),
        );
        let (max_batch_txs, max_queued_txs) = (cfg.max_batch_txs, cfg.max_queued_txs);
        let block_time_ms = ctx.block_time_ms.max(1);
        let reader = ctx
            .live()
            .reader
            .clone()
            .expect("the chain's store is live before its driver starts");
        let state_server = StateServer::new(
            reader.clone(),
            ctx.snapshot_dir.clone(),
            ctx.seams.placement(),
        );
        let block_server = BlockServer::new(reader, ctx.seams.placement());
        Self {
            ctx,
            engine,
            net,
            events,
            exec,
            outbox: VecDeque::new(),
            exec_events,
            votes,
            me,
            max_batch_txs,
            max_queued_txs,
            peers,
            peer_ids,
            timer_at: None,
            sync_tx,
            sync_rx,
            query_tx,
            query_rx,
            inbound_queries: HashMap::new(),
            ended: None,
            next_confidence_sample_ms: 0,
            sync_server,
            block_server,
            state_server,
            queued: HashMap::new(),
            nonce_gate: NonceGate::new(NONCE_HOLD_BLOCKS * block_time_ms * 1_000, max_batch_txs),
            early: VecDeque::new(),
            early_bytes: 0,
            behind: BehindWatch::default(),
            admitted,
            expected,
        }
    }

    /// Runs until `shutdown` turns true (clean stop) or something fails (the
    /// supervisor restarts the chain). Either way, transactions the engine took but
    /// did not propose go back to the mempool.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let result = self.event_loop(shutdown).await;
        self.reinstate_queued();
        result
    }

    async fn event_loop(&mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        // Start replays the commits the executor has not acknowledged.
        let outputs = self.step(Input::Start);
        self.dispatch(outputs)?;
        let mut tick = tokio::time::interval(BATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let blocked = !self.outbox.is_empty();
            // The API's gate reads this: what waits for our vertices, and whether the
            // executor holds us back.
            self.ctx
                .gate
                .set_driver_state(self.engine.queued_txs(), blocked);
            let timer = self
                .timer_at
                .map(|at| tokio::time::sleep_until(self.ctx.clock.instant_at(at)));
            // The branches only take what woke the driver; it is handled below, once
            // the channel futures (which borrow the driver) are gone.
            let wake = tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                    continue;
                }
                event = self.exec_events.recv() => Wake::Executor(event),
                permit = self.exec.reserve(), if blocked => match permit {
                    Ok(permit) => {
                        permit.send(self.outbox.pop_front().expect("blocked means non-empty"));
                        Wake::Sent
                    }
                    Err(_) => Wake::Executor(None),
                },
                event = self.events.recv(), if !blocked => Wake::Net(event),
                Some((from, vertices)) = self.sync_rx.recv(), if !blocked => {
                    Wake::SyncAnswer(from, vertices)
                }
                Some((from, message)) = self.query_rx.recv(), if !blocked => {
                    Wake::QueryAnswer(from, message)
                }
                _ = async { timer.expect("guarded").await }, if timer.is_some() && !blocked => {
                    Wake::Timer
                }
                _ = tick.tick(), if !blocked => Wake::Tick,
            };
            match wake {
                Wake::Executor(None) => bail!("the block executor stopped"),
                Wake::Executor(Some(event)) => self.busy(|d| d.on_exec_event(event))?,
                Wake::Sent => self.flush_outbox()?,
                Wake::Net(None) => bail!("transport stopped"),
                Wake::Net(Some(event)) => self.on_net_burst(event).await?,
                Wake::SyncAnswer(peer, vertices) => {
                    // From a peer of the committee the engine runs now, under its
                    // index there (an answer may outlive the epoch it was asked in).
                    if let Some(&from) = self.peers.get(&peer)
                        && !self.ctx.is_paused()
                    {
                        self.verify_off_loop(&vertices).await;
                        let outputs = self.busy(|d| d.step(Input::SyncResponse { from, vertices }));
                        self.dispatch(outputs)?;
                    }
                }
                Wake::QueryAnswer(peer, message) => {
                    if let Some(&from) = self.peers.get(&peer)
                        && !self.ctx.is_paused()
                    {
                        let outputs = self.busy(|d| d.step(Input::Engine { from, message }));
                        self.dispatch(outputs)?;
                    }
                }
                Wake::Timer => {
                    self.timer_at = None;
                    if !self.ctx.is_paused() {
                        let outputs = self.busy(|d| d.step(Input::TimeoutFired));
                        self.dispatch(outputs)?;
                    }
                }
                Wake::Tick => self.busy(|d| d.on_tick())?,
            }
        }
    }

    fn busy<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let started = std::time::Instant::now();
        let out = f(self);
        self.ctx
            .metrics
            .driver_busy_seconds
            .with_label_values(&["driver"])
            .inc_by(started.elapsed().as_micros() as u64);
        out
    }

    /// Whether an epoch's set left this validator out: the engine takes no more
    /// input, and the driver only answers peers' sync requests (those still
    /// finishing the epoch need its last rounds) and counts votes for its last
    /// blocks.
    fn left(&self) -> bool {
        self.ctx.left_set().is_some()
    }

    /// One engine step at the clock's current time (none once this validator left
    /// the set: the engine of its last epoch is done).
    fn step(&mut self, input: Input<AvalancheMessage>) -> Vec<EngineOutput> {
        if self.left() {
            return Vec::new();
        }
        self.engine.handle(self.ctx.now(), input)
    }

    /// Our stake in the current committee and that of its members among `connected`
    /// (none once this validator left: it runs no committee).
    fn reachable_stake(&self, connected: &[PeerId]) -> u64 {
        if self.left() {
            return 0;
        }
        let committee = self.ctx.committee();
        let members = connected
            .iter()
            .filter_map(|peer| self.peers.get(peer).copied());
        committee.stake_of(members.chain([self.me]))
    }

    /// Gives the transport the members of the two epochs it serves and the
    /// validators Alpha expects next ([`crate::membership`]).
    fn admit(&mut self) {
        let expected = self.expected.borrow_and_update().clone();
        let (current, previous) = &self.admitted;
        self.net
            .set_members(transport_members(current, previous.as_deref(), &expected));
    }

    fn on_tick(&mut self) -> anyhow::Result<()> {
        if self.expected.has_changed().unwrap_or(false) {
            self.admit();
        }
        let ctx = &self.ctx;
        let connected = self.net.connected_peers();
        let peers = connected.len() as u64;
        ctx.connected_peers.store(peers, Ordering::Relaxed);
        ctx.reachable_stake
            .store(self.reachable_stake(&connected), Ordering::Relaxed);
        ctx.metrics.peers.set(peers as i64);
        let backlog = EXEC_QUEUE_CAPACITY - self.exec.capacity() + self.outbox.len();
        ctx.metrics.exec_queue_depth.set(backlog as i64);
        // A chain paused by its operator falls behind on purpose; one whose validator
        // left the set stopped on purpose (it only serves its last rounds).
        if !ctx.is_paused() && !self.left() {
            self.behind.check(&self.ctx, &self.net)?;
        }
        let ctx = &self.ctx;
        if let Some(round) = self.engine.last_proposed_round() {
            ctx.round.store(round, Ordering::Relaxed);
            ctx.metrics.round.set(round as i64);
        }
        ctx.metrics
            .pending_bytes
            .set(self.engine.pending_bytes() as i64);
        if let Some(poller) = self.engine.avalanche() {
            let now_ms = ctx.clock.monotonic_ms();
            let sample = now_ms >= self.next_confidence_sample_ms;
            if sample {
                self.next_confidence_sample_ms = now_ms + 1_000;
            }
            ctx.partitioned
                .store(poller.is_partitioned(), Ordering::Relaxed);
            ctx.avalanche_metrics
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(self.engine.epoch(), poller, sample);
        }
        let now_ms = ctx.clock.monotonic_ms();
        for vote in self
            .votes
            .due_resends(now_ms, VOTE_RESEND_MS, MAX_VOTE_RESENDS_PER_TICK)
        {
            self.broadcast_vote(&vote);
        }
        let ctx = &self.ctx;
        // No room in the executor's queue: propose nothing new (the mempool keeps it).
        if ctx.is_paused() || self.exec.capacity() == 0 || self.left() {
            return Ok(());
        }
        let room = self.max_queued_txs.saturating_sub(self.engine.queued_txs());
        let want = room.min(self.max_batch_txs);
        if want == 0 || (ctx.mempool.is_empty() && self.nonce_gate.held() == 0) {
            return Ok(());
        }
        let now = AdmissionTime::from_micros(ctx.clock.monotonic_ms().saturating_mul(1000));
        // What waited for an earlier nonce first, then the mempool's batch, then what
        // waited once more: a predecessor in this batch lets its successor through.
        let mut candidates = self.nonce_gate.take_held();
        let fresh = want.saturating_sub(candidates.len());
        if fresh > 0 {
            candidates.extend(
                ctx.mempool
                    .take_batch_at(fresh, MAX_BATCH_BYTES, now)
                    .envelopes,
            );
        }
        let committed = ctx.live().reader.clone().map(CommittedState);
        let mut transactions = Vec::with_capacity(want);
        let limit = (want, now);
        self.gate_candidates(candidates, committed.as_ref(), limit, &mut transactions);
        let again = self.nonce_gate.take_held();
        self.gate_candidates(again, committed.as_ref(), limit, &mut transactions);
        if transactions.is_empty() {
            return Ok(());
        }
        let outputs = self.step(Input::BatchReady { transactions });
        self.dispatch(outputs)
    }

    /// Moves the `candidates` that may be proposed now into `transactions`, up to
    /// `want` in all (the engine drops what exceeds its room), and holds those waiting
    /// for an earlier nonce or beyond `want`. The state may have moved since
    /// admission: what can now only fail (a spent nonce, a fee or amount the sender no
    /// longer has) is dropped, not proposed.
    fn gate_candidates<E: dualchain_storage::KvEngine>(
        &mut self,
        candidates: Vec<Envelope>,
        committed: Option<&CommittedState<E>>,
        (want, now): (usize, AdmissionTime),
        transactions: &mut Vec<SignedTransaction>,
    ) {
        let mut dropped = 0;
        for envelope in candidates {
            if transactions.len() >= want {
                self.nonce_gate.keep(envelope);
                continue;
            }
            let tx = envelope.tx.tx();
            if let Some(state) = committed
                && matches!(check_sender(tx, state, Stage::Proposal), Ok(Err(_)))
            {
                dropped += 1;
                continue;
            }
            // Read only when our own proposals do not already cover the nonce.
            let committed_next =
                || committed.map_or(0, |state| state.account(&tx.sender).map_or(0, |a| a.nonce));
            let ready = match self.nonce_gate.decide(&envelope, committed_next, now) {
                Gate::Propose => Some(envelope),
                Gate::Hold => self.nonce_gate.hold(envelope),
            };
            if let Some(envelope) = ready {
                self.queued.insert(envelope.digest(), envelope.admitted_at);
                transactions.push(envelope.tx);
            }
        }
        self.ctx.metrics.proposals_dropped_unpayable.inc_by(dropped);
    }

    /// Handles a burst of ready network events as one unit (see the module docs).
    async fn on_net_burst(&mut self, first: NetEvent) -> anyhow::Result<()> {
        let mut burst = Burst::default();
        self.collect(first, &mut burst);
        for _ in 1..MAX_EVENTS_PER_BURST {
            if burst.vertex_bytes >= MAX_BURST_VERTEX_BYTES {
                break;
            }
            let Some(event) = self.events.try_recv() else {
                break;
            };
            self.collect(event, &mut burst);
        }
        if !burst.vertices.is_empty() {
            let vertices: Vec<Arc<Vertex>> =
                burst.vertices.iter().map(|(_, v)| v.clone()).collect();
            self.verify_off_loop(&vertices).await;
            let outputs = self.busy(|d| {
                d.step(Input::VerticesReceived {
                    vertices: burst.vertices,
                })
            });
            self.dispatch(outputs)?;
        }
        for (from, query, inbound) in burst.queries {
            self.inbound_queries.insert(from, (query.id, inbound));
            let message = AvalancheMessage::Query(query);
            let outputs = self.busy(|d| d.step(Input::Engine { from, message }));
            self.dispatch(outputs)?;
            // Not answered (too soon after the peer's last query, or another epoch):
            // declined now, so the peer's transport sees a refusal, not a timeout it
            // would hold against us.
            self.inbound_queries.remove(&from);
        }
        for (from, evidence) in burst.evidence {
            let outputs = self.step(Input::EvidenceReceived { from, evidence });
            self.dispatch(outputs)?;
        }
        for (from, request, inbound) in burst.requests {
            let now = self.ctx.clock.monotonic_ms();
            let metrics = &self.ctx.metrics;
            match self.sync_server.serve(from, request, inbound, now) {
                Served::Answering => metrics.sync_requests_served.inc(),
                Served::Declined => metrics.sync_requests_declined.inc(),
            }
        }
        for (from, request, inbound) in burst.block_requests {
            let now = self.ctx.clock.monotonic_ms();
            let metrics = &self.ctx.metrics;
            match self.block_server.serve(from, request, inbound, now) {
                Served::Answering => metrics.block_requests_served.inc(),
                Served::Declined => metrics.block_requests_declined.inc(),
            }
        }
        for (from, request, inbound) in burst.state_requests {
            let now = self.ctx.clock.monotonic_ms();
            let metrics = &self.ctx.metrics;
            match self.state_server.serve(from, request, inbound, now) {
                Served::Answering => metrics.state_requests_served.inc(),
                Served::Declined => metrics.state_requests_declined.inc(),
            }
        }
        Ok(())
    }

    /// Sorts one network event into the burst (votes are handled at once: they do
    /// not touch the engine).
    fn collect(&mut self, event: NetEvent, burst: &mut Burst) {
        let chain = self.ctx.chain;
        match event {
            NetEvent::PeerConnected(peer) => tracing::debug!(%chain, %peer, "peer connected"),
            NetEvent::PeerDisconnected(peer) => {
                tracing::debug!(%chain, %peer, "peer disconnected")
            }
            NetEvent::Broadcast { from, message } => {
                if self.ctx.is_paused() {
                    return;
                }
                // Votes are checked against the sets that signed them, so a member of
                // the previous epoch who left still helps certify that epoch's blocks.
                if message.kind == MessageKind::Certificate {
                    return self.on_votes(from, &message.payload);
                }
                let Some(&index) = self.peers.get(&from).filter(|_| !self.left()) else {
                    return;
                };
                match message.kind {
                    MessageKind::Vertex => match vertex_of_broadcast(&message.payload) {
                        Ok(vertex) => {
                            let age_ms = self
                                .ctx
                                .unix_ms()
                                .saturating_sub(vertex.content().timestamp_ms);
                            self.ctx
                                .metrics
                                .vertex_propagation
                                .observe(age_ms as f64 / 1000.0);
                            self.keep_if_next_epoch(from, &vertex);
                            burst.vertex_bytes += message.payload.len();
                            burst.vertices.push((index, vertex))
                        }
                        Err(offence) => {
                            tracing::debug!(%chain, %from, "undecodable vertex message");
                            self.net.report(from, offence);
                        }
                    },
                    MessageKind::Evidence => match Evidence::from_canonical_bytes(&message.payload)
                    {
                        Ok(evidence) => burst.evidence.push((index, evidence)),
                        Err(error) => {
                            tracing::debug!(%chain, %from, %error, "undecodable evidence");
                            self.net.report(from, Offence::InvalidContent);
                        }
                    },
                    _ => {}
                }
            }
            NetEvent::Request(request) => {
                // Any connected peer may ask: the transport admits the members of this
                // epoch and the previous one, and one that left the set still has to
                // finish its last epoch. Dropping a request declines it; the peer asks
                // someone else.
                if self.ctx.is_paused() {
                    return;
                }
                let payload = &request.message.payload;
                match request.message.kind {
                    MessageKind::FetchVertices => {
                        if let Ok(NetMessage::SyncRequest(sync)) =
                            NetMessage::from_canonical_bytes(payload)
                        {
                            burst.requests.push((request.from, sync, request));
                        }
                    }
                    MessageKind::ConsensusQuery => {
                        match NetMessage::from_canonical_bytes(payload) {
                            Ok(NetMessage::Engine(AvalancheMessage::Query(q))) => {
                                self.route_query(q, request, burst)
                            }
                            _ => {
                                tracing::debug!(%chain, from = %request.from, "undecodable consensus query");
                                self.net.report(request.from, Offence::InvalidContent);
                            }
                        }
                    }
                    MessageKind::FetchBlocks => {
                        if let Ok(range) = BlockRangeRequest::from_canonical_bytes(payload) {
                            burst.block_requests.push((request.from, range, request));
                        }
                    }
                    MessageKind::FetchState => {
                        if let Ok(state) = StateSyncRequest::from_canonical_bytes(payload) {
                            burst.state_requests.push((request.from, state, request));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A query of the engine's epoch goes to the engine (members of its committee
    /// only); one of the epoch that ended here is answered at once from that epoch's
    /// decided slots, under that committee's indexes. Others are declined.
    fn route_query(&mut self, query: Query, request: InboundRequest, burst: &mut Burst) {
        if query.epoch == self.engine.epoch() && !self.left() {
            if let Some(&from) = self.peers.get(&request.from) {
                burst.queries.push((from, query, request));
            }
            return;
        }
        let Some((poller, peers)) = self.ended.as_mut() else {
            return;
        };
        let Some(&from) = peers.get(&request.from) else {
            return;
        };
        let now = self.ctx.now().monotonic_ms;
        // The ended epoch's DAG is gone: its decided slots are answered, any slot
        // still undecided there is `Unknown` (no vertex to check a vote against).
        let no_dag =
            |_: u64, _: &dualchain_core::Digest| dualchain_consensus::avalanche::VoteCheck::Unknown;
        if let Some(response) = poller.answer(now, from, &query, no_dag) {
            let bytes = NetMessage::Engine(AvalancheMessage::Response(response));
            let _ = request.respond(bytes.to_canonical_bytes().into());
        }
    }

    /// Keeps `vertex` for the next engine if it is of the epoch after ours (checked
    /// again, signature included, when that engine takes it).
    fn keep_if_next_epoch(&mut self, from: PeerId, vertex: &Arc<Vertex>) {
        if vertex.content().epoch != self.engine.epoch() + 1 {
            return;
        }
        self.early_bytes += dualchain_consensus::dag::encoded_len(vertex);
        self.early.push_back((from, vertex.clone()));
        while self.early.len() > MAX_EARLY_VERTICES || self.early_bytes > MAX_EARLY_BYTES {
            let Some((_, old)) = self.early.pop_front() else {
                break;
            };
            self.early_bytes -= dualchain_consensus::dag::encoded_len(&old);
        }
    }

    /// Verifies vertex signatures into the engine's verdict cache, on the rayon pool
    /// (the event loop waits without blocking its thread) or inline.
    async fn verify_off_loop(&self, vertices: &[Arc<Vertex>]) {
        if vertices.is_empty() {
            return;
        }
        let cache = self.ctx.vertex_verdicts.clone();
        let validators = self.ctx.committee();
        let network = self.ctx.identity.network();
        match self.ctx.seams.placement() {
            Placement::Inline => {
                cache.verify_batch(vertices, &validators, network);
            }
            Placement::Threads => {
                let vertices = vertices.to_vec();
                let (tx, rx) = tokio::sync::oneshot::channel();
                rayon::spawn(move || {
                    cache.verify_batch(&vertices, &validators, network);
                    let _ = tx.send(());
                });
                // A dropped sender only means the engine verifies these itself.
                let _ = rx.await;
            }
        }
    }

    fn on_votes(&mut self, from: PeerId, payload: &[u8]) {
        let votes = match BlockCertificate::from_canonical_bytes(payload) {
            Ok(v) => v,
            Err(_) => {
                self.ctx.metrics.votes_rejected.inc();
                return;
            }
        };
        let head = self.ctx.head().height;
        let equivocations = self.votes.equivocations();
        let added = self.votes.add_votes(&votes, head);
        if self.votes.equivocations() > equivocations {
            tracing::warn!(chain = %self.ctx.chain, height = votes.height, "a validator signed two block headers of one height");
        }
        match added {
            Ok(Some(certificate)) => self.certified(certificate),
            Ok(None) => {}
            Err(e) => {
                self.ctx.metrics.votes_rejected.inc();
                tracing::debug!(chain = %self.ctx.chain, error = %e, "block vote refused");
                if matches!(e, VoteError::BadSignature(_) | VoteError::UnknownSigner(_)) {
                    self.net.report(from, Offence::InvalidContent);
                }
            }
        }
    }

    fn on_exec_event(&mut self, event: ExecEvent) -> anyhow::Result<()> {
        match event {
            ExecEvent::Executed { header, vote } => {
                let me = self.me;
                let single = BlockCertificate::from_votes(&header, [(me, vote.clone())]);
                self.broadcast_vote(&single);
                let now_ms = self.ctx.clock.monotonic_ms();
                if let Some(certificate) = self.votes.add_own(me, *header, vote, now_ms) {
                    self.certified(certificate);
                }
                Ok(())
            }
            ExecEvent::Durable { through } => {
                let outputs = self.step(Input::Executed { through });
                self.dispatch(outputs)
            }
            ExecEvent::EpochEnded { last, set } => self.enter_epoch(&last, set),
        }
    }

    /// The executor committed the last block of the engine's epoch. Either way the
    /// last rounds the old engine holds are recorded as its tips, for peers still
    /// finishing the epoch, and the transport admits the members of both epochs (the
    /// previous set still certifies its last blocks). If `set` holds this validator,
    /// the engine of the next epoch takes over: the old DAG is abandoned, its queued
    /// transactions and those of our vertices no commit took go back to the mempool
    /// (what it committed after `last` the executor gives back), and the epoch before
    /// it is dropped from the store. Otherwise the chain stops here
    /// ([`Driver::leave_set`]).
    fn enter_epoch(&mut self, last: &BlockHeader, set: Arc<ValidatorSet>) -> anyhow::Result<()> {
        let chain = self.ctx.chain;
        let (epoch, old) = (set.epoch(), self.engine.epoch());
        anyhow::ensure!(
            epoch == old + 1 && last.epoch == old,
            "the {chain} executor ended epoch {} with the set of epoch {epoch} while consensus runs epoch {old}",
            last.epoch
        );
        let db = self.engine.store().engine().clone();
        KvConsensusStore::new(db.clone(), old).put_tips(&self.engine.tips())?;
        self.ended = self
            .engine
            .ended_avalanche()
            .map(|poller| (poller, self.peers.clone()));
        self.admitted = (set.clone(), Some(self.ctx.committee()));
        self.admit();
        let Some(me) = set.index_of(self.ctx.key().public()) else {
            return self.leave_set(last, set);
        };
        let (peers, peer_ids) = peer_maps(&set);
        let mut transactions = self.engine.take_queued();
        transactions.extend(self.engine.uncommitted_own_transactions());
        reinstate(&self.ctx, transactions, |d| self.queued.get(d).copied());
        self.queued.clear();
        self.reinstate_held();
        self.nonce_gate.reset();
        self.engine = open_engine(&self.ctx, db.clone(), set.clone())?;
        self.me = me;
        self.peers = peers;
        self.peer_ids = peer_ids;
        self.votes.enter_epoch(set.clone());
        self.ctx.set_committee(set);
        self.timer_at = None;
        tracing::info!(%chain, epoch, after_height = last.height, "consensus entered the next epoch");
        if old > 0 {
            let drop_old = move || match drop_epochs_before(&db, old) {
                Ok(count) => {
                    tracing::debug!(%chain, epoch = old - 1, count, "consensus records of an old epoch dropped")
                }
                Err(e) => {
                    tracing::warn!(%chain, error = %e, "dropping an old epoch's consensus records failed")
                }
            };
            match self.ctx.seams.placement() {
                Placement::Inline => drop_old(),
                Placement::Threads => drop(tokio::task::spawn_blocking(drop_old)),
            }
        }
        let mut outputs = self.step(Input::Start);
        // Under their senders' indexes in the new committee (members only).
        let early: Vec<_> = std::mem::take(&mut self.early)
            .into_iter()
            .filter(|(_, v)| v.content().epoch == epoch)
            .filter_map(|(peer, v)| Some((*self.peers.get(&peer)?, v)))
            .collect();
        self.early_bytes = 0;
        if !early.is_empty() {
            outputs.extend(self.step(Input::VerticesReceived { vertices: early }));
        }
        self.dispatch(outputs)
    }

    /// `set` left this validator out: the chain stops at `last` here. The old
    /// engine's rounds stay for peers still finishing the epoch, whom the transport
    /// keeps admitting; the API takes no transactions. The chain's committee is
    /// `set` from now on, as after a restart (status, relay turns).
    fn leave_set(&mut self, last: &BlockHeader, set: Arc<ValidatorSet>) -> anyhow::Result<()> {
        let epoch = set.epoch();
        self.timer_at = None;
        self.ctx.set_committee(set);
        self.ctx.mark_left(epoch);
        tracing::warn!(chain = %self.ctx.chain, epoch, after_height = last.height, "this validator is not in the next set: the chain stops here");
        Ok(())
    }

    fn broadcast_vote(&self, vote: &BlockCertificate) {
        let message = Message::new(
            self.ctx.chain,
            MessageKind::Certificate,
            vote.to_canonical_bytes(),
        );
        if let Err(e) = self.net.try_broadcast(message) {
            tracing::debug!(chain = %self.ctx.chain, error = %e, "vote broadcast failed");
        }
    }

    /// A certificate formed: the executor (the chain store's writer) stores it.
    fn certified(&mut self, certificate: BlockCertificate) {
        self.ctx
            .metrics
            .certified_height
            .set(self.votes.certified_height() as i64);
        self.outbox.push_back(ExecCommand::Certificate(certificate));
    }

    /// Moves queued executor commands into its channel while there is room.
    fn flush_outbox(&mut self) -> anyhow::Result<()> {
        while let Some(command) = self.outbox.pop_front() {
            match self.exec.try_send(command) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(command)) => {
                    self.outbox.push_front(command);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => bail!("the block executor stopped"),
            }
        }
        Ok(())
    }

    /// Carries out one step's outputs.
    fn dispatch(&mut self, outputs: Vec<EngineOutput>) -> anyhow::Result<()> {
        let chain = self.ctx.chain;
        for output in outputs {
            match output {
                Output::Broadcast(vertex) => {
                    if vertex.content().author == self.me {
                        let transactions = &vertex.content().transactions;
                        for tx in transactions {
                            self.queued.remove(&tx.digest());
                        }
                        self.ctx
                            .gate
                            .record_proposed(transactions.len(), self.ctx.clock.monotonic_ms());
                    }
                    let message = Message::new(
                        chain,
                        MessageKind::Vertex,
                        NetMessage::Vertex(vertex).to_canonical_bytes(),
                    );
                    if let Err(e) = self.net.try_broadcast(message) {
                        tracing::warn!(%chain, error = %e, "vertex broadcast failed");
                    }
                }
                // Peers' requests are answered by the sync server; the engine
                // sends vertices only if it is ever fed a request itself.
                Output::SendVertices { to, vertices } => self.push_vertices(to, vertices),
                Output::RequestVertices { to, request } => self.fetch(to, request),
                Output::Committed(commit) => {
                    let now = self.ctx.unix_ms();
                    self.ctx
                        .publish_ordered(self.engine.epoch(), &commit.subdag, now);
                    self.ctx
                        .metrics
                        .vertices_committed
                        .inc_by(commit.subdag.vertices.len() as u64);
                    for v in &commit.subdag.vertices {
                        let created = v.content().timestamp_ms;
                        self.ctx
                            .metrics
                            .commit_latency
                            .observe(now.saturating_sub(created) as f64 / 1000.0);
                    }
                    self.outbox.push_back(ExecCommand::Commit {
                        epoch: self.engine.epoch(),
                        subdag: commit.subdag,
                    });
                }
                Output::Skipped { round, leader } => {
                    tracing::debug!(%chain, round, leader, "leader slot skipped");
                }
                Output::Misbehaviour(evidence) => {
                    let offender = evidence.offender();
                    let kind = evidence.kind();
                    tracing::warn!(%chain, offender, kind, "validator misbehaviour proven; passing the evidence on");
                    self.ctx.metrics.evidence_recorded.inc();
                    let message =
                        Message::new(chain, MessageKind::Evidence, evidence.to_canonical_bytes());
                    if let Err(e) = self.net.try_broadcast(message) {
                        tracing::warn!(%chain, error = %e, "evidence broadcast failed");
                    }
                }
                Output::Rejected { from, reason } => {
                    tracing::debug!(%chain, from, %reason, "input rejected");
                    let peer = self.peer_ids.get(usize::from(from));
                    if let (Some(offence), Some(&peer)) = (offence_of(&reason), peer) {
                        self.net.report(peer, offence);
                    }
                }
                Output::SetTimer { at_ms } => self.timer_at = Some(at_ms),
                Output::SendEngine { to, message } => self.send_engine(to, message),
                Output::Orphaned(vertices) => {
                    let transactions: Vec<SignedTransaction> = vertices
                        .iter()
                        .flat_map(|v| v.content().transactions.iter().cloned())
                        .collect();
                    tracing::debug!(%chain, vertices = vertices.len(), "own vertices never committed");
                    self.ctx
                        .metrics
                        .vertices_orphaned
                        .inc_by(vertices.len() as u64);
                    reinstate(&self.ctx, transactions, |_| None);
                }
                Output::Halted { reason } => bail!("consensus halted: {reason}"),
            }
        }
        self.flush_outbox()
    }

    /// Carries an Avalanche message: a query becomes a transport request whose answer
    /// comes back as an engine input; a response answers the peer's pending request.
    fn send_engine(&mut self, to: Option<ValidatorIndex>, message: AvalancheMessage) {
        let chain = self.ctx.chain;
        let Some(to) = to else {
            tracing::debug!(%chain, "engine message without a recipient dropped");
            return;
        };
        match message {
            AvalancheMessage::Response(response) => {
                let Some((id, inbound)) = self.inbound_queries.remove(&to) else {
                    return;
                };
                if id != response.votes.id {
                    // A newer query arrived meanwhile: this response is for an older one.
                    self.inbound_queries.insert(to, (id, inbound));
                    return;
                }
                let bytes = NetMessage::Engine(AvalancheMessage::Response(response));
                if let Err(e) = inbound.respond(bytes.to_canonical_bytes().into()) {
                    tracing::debug!(%chain, to, error = %e, "query response not sent");
                }
            }
            AvalancheMessage::Query(query) => self.query(to, query),
        }
    }

    fn query(&self, to: ValidatorIndex, query: Query) {
        let Some(&peer) = self.peer_ids.get(usize::from(to)) else {
            return;
        };
        let net = self.net.clone();
        let chain = self.ctx.chain;
        let answers = self.query_tx.clone();
        let payload = NetMessage::Engine(AvalancheMessage::Query(query)).to_canonical_bytes();
        tokio::spawn(async move {
            let message = Message::new(chain, MessageKind::ConsensusQuery, payload);
            match net.request(peer, message, QUERY_TIMEOUT).await {
                Ok(bytes) => match NetMessage::from_canonical_bytes(&bytes) {
                    Ok(NetMessage::Engine(response @ AvalancheMessage::Response(_))) => {
                        let _ = answers.send((peer, response)).await;
                    }
                    _ => {
                        tracing::debug!(%chain, %peer, "undecodable query response");
                        net.report(peer, Offence::InvalidContent);
                    }
                },
                Err(e) => tracing::debug!(%chain, %peer, error = %e, "consensus query failed"),
            }
        });
    }

    fn push_vertices(&self, to: ValidatorIndex, vertices: Vec<Arc<Vertex>>) {
        let Some(&peer) = self.peer_ids.get(to as usize) else {
            return;
        };
        let net = self.net.clone();
        let chain = self.ctx.chain;
        tokio::spawn(async move {
            for vertex in vertices {
                let message = Message::new(
                    chain,
                    MessageKind::Vertex,
                    NetMessage::Vertex(vertex).to_canonical_bytes(),
                );
                if net.send(peer, message).await.is_err() {
                    break;
                }
            }
        });
    }

    fn fetch(&self, to: ValidatorIndex, request: SyncRequest) {
        let Some(&peer) = self.peer_ids.get(to as usize) else {
            return;
        };
        let net = self.net.clone();
        let chain = self.ctx.chain;
        let answers = self.sync_tx.clone();
        if request.wanted.is_empty() {
            tracing::debug!(%chain, %peer, epoch = request.epoch, "asking a peer in a later epoch for the tips of ours");
        }
        let payload = NetMessage::SyncRequest(request).to_canonical_bytes();
        tokio::spawn(async move {
            let message = Message::new(chain, MessageKind::FetchVertices, payload);
            match net.request(peer, message, FETCH_TIMEOUT).await {
                Ok(bytes) => match NetMessage::from_canonical_bytes(&bytes) {
                    Ok(NetMessage::SyncResponse(vertices)) => {
                        let _ = answers.send((peer, vertices)).await;
                    }
                    _ => tracing::debug!(%chain, %peer, "undecodable sync answer"),
                },
                Err(e) => tracing::debug!(%chain, %peer, error = %e, "vertex fetch failed"),
            }
        });
    }

    /// Gives the transactions queued in the engine back to the mempool, with their
    /// admission times, so a restart of the chain's tasks loses none of them.
    fn reinstate_queued(&mut self) {
        let transactions = self.engine.take_queued();
        reinstate(&self.ctx, transactions, |d| self.queued.get(d).copied());
        self.queued.clear();
        self.reinstate_held();
    }

    /// Gives the transactions the nonce gate holds back to the mempool, with their
    /// admission times.
    fn reinstate_held(&mut self) {
        let held = self.nonce_gate.take_held();
        let admitted: HashMap<Digest, AdmissionTime> =
            held.iter().map(|e| (e.digest(), e.admitted_at)).collect();
        let transactions = held.into_iter().map(|e| e.tx).collect();
        reinstate(&self.ctx, transactions, |d| admitted.get(d).copied());
    }
}

/// Block times a transaction waits at most for its sender's earlier nonce before it
/// is proposed anyway ([`NonceGate`]).
const NONCE_HOLD_BLOCKS: u64 = 2;

/// Each member's transport id, by id and by index in `set`.
fn peer_maps(set: &ValidatorSet) -> (HashMap<PeerId, ValidatorIndex>, Vec<PeerId>) {
    let ids: Vec<PeerId> = set
        .validators()
        .iter()
        .map(|v| PeerId::of(&v.public_key))
        .collect();
    let by_id = ids
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i as ValidatorIndex))
        .collect();
    (by_id, ids)
}

/// What an engine refusal says about the peer it is blamed on: semantic garbage
/// (it decoded, so it earned the transport a point) must cost more than it earns.
/// Refusals an honest peer can cause (it is ahead, behind, or in another epoch, or
/// its allowance is full) cost nothing.
fn offence_of(reason: &RejectReason) -> Option<Offence> {
    match reason {
        RejectReason::WrongChain(_) | RejectReason::Parents(_) => Some(Offence::InvalidContent),
        RejectReason::Invalid(VertexError::WrongEpoch { .. }) => None,
        RejectReason::Invalid(_) => Some(Offence::InvalidContent),
        RejectReason::ParentsNeverArrived { .. } => Some(Offence::MissingParents),
        RejectReason::TooOld { .. }
        | RejectReason::TooFarAhead { .. }
        | RejectReason::OverBudget(_)
        | RejectReason::Equivocator(_) => None,
        RejectReason::BadEvidence(_) | RejectReason::BadResponse(_) => {
            Some(Offence::InvalidContent)
        }
    }
}

/// The vertex of a `Vertex` broadcast. Anything else under that kind (bytes that do
/// not decode, another message) costs the sender like any invalid content: the frame
/// earned it a point, and garbage must not be a way to earn score (a member that
/// floods random vertex frames is banned within a few of them).
fn vertex_of_broadcast(payload: &[u8]) -> Result<Arc<Vertex>, Offence> {
    match NetMessage::from_canonical_bytes(payload) {
        Ok(NetMessage::Vertex(vertex)) => Ok(vertex),
        Ok(_) | Err(_) => Err(Offence::InvalidContent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_costs_the_sender_and_honest_refusals_cost_nothing() {
        use dualchain_core::crypto::SignatureError;
        let bad_signature =
            RejectReason::Invalid(VertexError::Signature(SignatureError::Invalid {
                role: "validator",
            }));
        assert_eq!(offence_of(&bad_signature), Some(Offence::InvalidContent));
        assert_eq!(
            offence_of(&RejectReason::WrongChain(
                dualchain_core::types::ChainId::Alpha
            )),
            Some(Offence::InvalidContent)
        );
        assert_eq!(
            offence_of(&RejectReason::ParentsNeverArrived { round: 3 }),
            Some(Offence::MissingParents)
        );
        let honest = [
            RejectReason::TooOld {
                round: 1,
                gc_round: 5,
            },
            RejectReason::TooFarAhead {
                round: 5_000,
                ours: 1,
                lookahead: 1_000,
            },
            RejectReason::Invalid(VertexError::WrongEpoch { vertex: 2, set: 1 }),
            RejectReason::Equivocator(2),
        ];
        for reason in honest {
            assert_eq!(offence_of(&reason), None, "{reason}");
        }
        assert!(
            Offence::InvalidContent.penalty() > 1,
            "more than a frame earns"
        );
    }

    #[test]
    fn a_vertex_broadcast_that_is_not_a_vertex_costs_the_sender() {
        use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
        use dualchain_core::types::{ChainId, UnsignedVertex};
        let vertex = UnsignedVertex {
            chain: ChainId::Delta,
            epoch: 0,
            round: 0,
            author: 0,
            parents: Vec::new(),
            transactions: Vec::new(),
            timestamp_ms: 1,
        }
        .sign(
            &ValidatorKeypair::from_seed(&[1; 32]),
            NetworkId(Digest::ZERO),
        );
        let bytes = NetMessage::Vertex(Arc::new(vertex.clone())).to_canonical_bytes();
        assert_eq!(*vertex_of_broadcast(&bytes).unwrap(), vertex);
        let sync = NetMessage::SyncRequest(SyncRequest {
            epoch: 0,
            wanted: Vec::new(),
            have_through_round: 0,
        })
        .to_canonical_bytes();
        for garbage in [
            &sync[..],
            &bytes[..bytes.len() / 2],
            &[0xAB; 64][..],
            &[][..],
        ] {
            assert_eq!(
                vertex_of_broadcast(garbage).unwrap_err(),
                Offence::InvalidContent
            );
        }
    }

    #[test]
    fn the_largest_sync_request_fits_the_transport_frame() {
        let request = SyncRequest {
            epoch: 0,
            wanted: vec![
                (u64::MAX, Digest([7; 32]));
                dualchain_consensus::engine::MAX_SYNC_DIGESTS
            ],
            have_through_round: u64::MAX,
        };
        let bytes = NetMessage::SyncRequest(request).to_canonical_bytes();
        assert!(
            bytes.len() <= MessageKind::FetchVertices.max_payload(),
            "{} bytes",
            bytes.len()
        );
    }
}
