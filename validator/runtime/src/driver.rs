//! The consensus driver of one chain: the only owner of the sans-I/O engine.
//!
//! One tokio task turns the world into engine inputs — peer messages, timers,
//! mempool batches — and the engine's outputs into the world: broadcasts, fetches,
//! committed sub-DAGs for the executor, block votes. After every engine step its
//! store writes (held back by [`BufferedEngine`]) and the journal entries of what it
//! committed are written in **one** batch before any output leaves, so the engine's
//! "persist before broadcast" rule holds and no decision is ever lost (see
//! [`super::journal`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use dualchain_consensus::wire::NetMessage;
use dualchain_consensus::{
    Consensus, DagBft, DirectVerifier, Input, KvConsensusStore, Output, SyncRequest,
};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{BlockCertificate, ValidatorIndex, Vertex};
use dualchain_mempool::AdmissionTime;
use dualchain_net::{InboundRequest, Message, MessageKind, NetEvent, Network, PeerId, QuicNetwork};
use dualchain_storage::{Column, KvEngine, WriteBatch};
use dualchain_store::RocksEngine;
use tokio::sync::{mpsc, watch};

use super::exec::{ExecCommand, ExecEvent};
use super::journal::{BufferedEngine, encode_subdag, journal_key};
use super::shared::{ChainShared, unix_ms};
use super::votes::VoteBook;

pub type Engine = DagBft<KvConsensusStore<BufferedEngine<Arc<RocksEngine>>>, DirectVerifier>;

/// How often the driver offers the engine a mempool batch and refreshes gauges.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Sub-DAGs queued for the executor above which no new batches are proposed
/// (execution back-pressure reaches consensus, and through it the mempool).
const MAX_EXEC_BACKLOG: i64 = 32;
/// How long a vertex fetch from one peer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of vertices in one sync answer. The engine answers with up to
/// `max_sync_vertices` vertices, which with full vertices can be gigabytes; the
/// transport refuses frames over the `Vertices` kind's limit. The answer is cut to
/// a prefix (the engine lists parents before children), and the requester asks again
/// for the rest.
const MAX_SYNC_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Network events handled per write (see `Driver::on_net_burst`).
const MAX_EVENTS_PER_WRITE: usize = 256;
/// Bytes of transactions per proposal: far below the vertex limit.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

pub struct Driver {
    pub shared: Arc<ChainShared>,
    pub engine: Engine,
    pub buffered: BufferedEngine<Arc<RocksEngine>>,
    pub db: Arc<RocksEngine>,
    pub net: Arc<QuicNetwork>,
    pub events: dualchain_net::EventReceiver,
    pub exec: std::sync::mpsc::Sender<ExecCommand>,
    pub exec_events: mpsc::UnboundedReceiver<ExecEvent>,
    pub votes: VoteBook,
    pub max_batch_txs: usize,
    pub max_queued_txs: usize,
    peers: HashMap<PeerId, ValidatorIndex>,
    peer_ids: Vec<PeerId>,
    timer_at: Option<u64>,
    sync_tx: mpsc::UnboundedSender<(ValidatorIndex, Vec<Arc<Vertex>>)>,
    sync_rx: mpsc::UnboundedReceiver<(ValidatorIndex, Vec<Arc<Vertex>>)>,
    /// Journal entries of steps not yet written.
    journal: WriteBatch,
    /// Steps whose outputs wait for the burst's write (see `on_net_burst`).
    deferred: Option<Vec<Step>>,
}

/// One engine step's outputs, waiting for its writes to be durable.
struct Step {
    outputs: Vec<Output<std::convert::Infallible>>,
    answering: Option<(ValidatorIndex, InboundRequest)>,
    now: u64,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<ChainShared>,
        engine: Engine,
        buffered: BufferedEngine<Arc<RocksEngine>>,
        db: Arc<RocksEngine>,
        net: Arc<QuicNetwork>,
        events: dualchain_net::EventReceiver,
        exec: std::sync::mpsc::Sender<ExecCommand>,
        exec_events: mpsc::UnboundedReceiver<ExecEvent>,
        votes: VoteBook,
        max_batch_txs: usize,
        max_queued_txs: usize,
    ) -> Self {
        let peer_ids: Vec<PeerId> = shared
            .validators
            .validators()
            .iter()
            .map(|v| PeerId::of(&v.public_key))
            .collect();
        let peers = peer_ids
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as ValidatorIndex))
            .collect();
        let (sync_tx, sync_rx) = mpsc::unbounded_channel();
        Self {
            shared,
            engine,
            buffered,
            db,
            net,
            events,
            exec,
            exec_events,
            votes,
            max_batch_txs,
            max_queued_txs,
            peers,
            peer_ids,
            timer_at: None,
            sync_tx,
            sync_rx,
            journal: WriteBatch::new(),
            deferred: None,
        }
    }

    /// Runs until `shutdown` turns true (clean stop) or something fails (the
    /// supervisor restarts the chain).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        self.step(Input::Start, None)?;
        let mut tick = tokio::time::interval(BATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer = self.timer_at.map(|at| {
                let wait = at.saturating_sub(unix_ms());
                tokio::time::sleep(Duration::from_millis(wait))
            });
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                }
                event = self.events.recv() => {
                    let Some(event) = event else { bail!("transport stopped") };
                    self.busy("driver", |d| d.on_net_burst(event))?;
                }
                Some((from, vertices)) = self.sync_rx.recv() => {
                    if !self.shared.is_paused() {
                        self.busy("driver", |d| d.step(Input::SyncResponse { from, vertices }, None))?;
                    }
                }
                Some(event) = self.exec_events.recv() => {
                    self.busy("driver", |d| d.on_exec_event(event))?;
                }
                _ = async { timer.expect("guarded").await }, if timer.is_some() => {
                    self.timer_at = None;
                    if !self.shared.is_paused() {
                        self.busy("driver", |d| d.step(Input::TimeoutFired, None))?;
                    }
                }
                _ = tick.tick() => {
                    self.busy("driver", |d| d.on_tick())?;
                }
            }
        }
    }

    fn busy<T>(&mut self, task: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let started = std::time::Instant::now();
        let out = f(self);
        self.shared
            .metrics
            .driver_busy_seconds
            .with_label_values(&[task])
            .inc_by(started.elapsed().as_micros() as u64);
        out
    }

    fn on_tick(&mut self) -> anyhow::Result<()> {
        let peers = self.net.connected_peers().len() as u64;
        self.shared.connected_peers.store(peers, Ordering::Relaxed);
        self.shared.metrics.peers.set(peers as i64);
        if let Some(round) = self.engine.last_proposed_round() {
            self.shared.round.store(round, Ordering::Relaxed);
            self.shared.metrics.round.set(round as i64);
        }
        if self.shared.is_paused() || self.shared.metrics.exec_queue_depth.get() > MAX_EXEC_BACKLOG
        {
            return Ok(());
        }
        let room = self.max_queued_txs.saturating_sub(self.engine.queued_txs());
        let want = room.min(self.max_batch_txs);
        if want == 0 || self.shared.mempool.is_empty() {
            return Ok(());
        }
        let now = AdmissionTime::from_micros(unix_ms().saturating_mul(1000));
        let batch = self
            .shared
            .mempool
            .take_batch_at(want, MAX_BATCH_BYTES, now);
        if batch.is_empty() {
            return Ok(());
        }
        let transactions = batch.into_transactions();
        self.step(Input::BatchReady { transactions }, None)
    }

    fn on_net_event(&mut self, event: NetEvent) -> anyhow::Result<()> {
        match event {
            NetEvent::PeerConnected(peer) => {
                tracing::debug!(chain = %self.shared.chain, %peer, "peer connected");
                Ok(())
            }
            NetEvent::PeerDisconnected(peer) => {
                tracing::debug!(chain = %self.shared.chain, %peer, "peer disconnected");
                Ok(())
            }
            NetEvent::Broadcast { from, message } => {
                let Some(&index) = self.peers.get(&from) else {
                    return Ok(());
                };
                if self.shared.is_paused() {
                    return Ok(());
                }
                match message.kind {
                    MessageKind::Vertex => match NetMessage::from_canonical_bytes(&message.payload)
                    {
                        Ok(NetMessage::Vertex(vertex)) => self.step(
                            Input::VertexReceived {
                                from: index,
                                vertex,
                            },
                            None,
                        ),
                        Ok(_) | Err(_) => {
                            tracing::debug!(chain = %self.shared.chain, %from, "undecodable vertex message");
                            Ok(())
                        }
                    },
                    MessageKind::Certificate => {
                        self.on_votes(&message.payload);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            NetEvent::Request(request) => self.on_request(request),
        }
    }

    fn on_request(&mut self, request: InboundRequest) -> anyhow::Result<()> {
        let Some(&index) = self.peers.get(&request.from) else {
            return Ok(());
        };
        if self.shared.is_paused() || request.message.kind != MessageKind::FetchVertices {
            // Dropping the request declines it; the peer asks someone else.
            return Ok(());
        }
        let sync = match NetMessage::from_canonical_bytes(&request.message.payload) {
            Ok(NetMessage::SyncRequest(sync)) => sync,
            _ => return Ok(()),
        };
        self.step(
            Input::SyncRequest {
                from: index,
                request: sync,
            },
            Some((index, request)),
        )
    }

    fn on_votes(&mut self, payload: &[u8]) {
        let votes = match BlockCertificate::from_canonical_bytes(payload) {
            Ok(v) => v,
            Err(_) => {
                self.shared.metrics.votes_rejected.inc();
                return;
            }
        };
        let head = self.shared.head().height;
        match self.votes.add_votes(&votes, head) {
            Ok(Some(certificate)) => self.persist_certificate(certificate),
            Ok(None) => {}
            Err(e) => {
                self.shared.metrics.votes_rejected.inc();
                tracing::debug!(chain = %self.shared.chain, error = %e, "block vote refused");
            }
        }
    }

    fn on_exec_event(&mut self, event: ExecEvent) -> anyhow::Result<()> {
        match event {
            ExecEvent::Executed { header, vote } => {
                let single =
                    BlockCertificate::from_votes(&header, [(self.engine.me(), vote.clone())]);
                let message = Message::new(
                    self.shared.chain,
                    MessageKind::Certificate,
                    single.to_canonical_bytes(),
                );
                if let Err(e) = self.net.try_broadcast(message) {
                    tracing::debug!(chain = %self.shared.chain, error = %e, "vote broadcast failed");
                }
                if let Some(certificate) = self.votes.add_own(self.engine.me(), header, vote) {
                    self.persist_certificate(certificate);
                }
            }
        }
        Ok(())
    }

    fn persist_certificate(&mut self, certificate: BlockCertificate) {
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Certificates,
            dualchain_storage::keys::height_key(certificate.height).to_vec(),
            certificate.to_canonical_bytes(),
        );
        match self.db.write(batch) {
            Ok(()) => {
                self.shared.metrics.certificates.inc();
                self.shared
                    .metrics
                    .certified_height
                    .set(self.votes.certified_height() as i64);
            }
            Err(e) => {
                tracing::warn!(chain = %self.shared.chain, height = certificate.height, error = %e, "could not persist a block certificate");
            }
        }
    }

    /// One engine step: handle the input, persist its writes with the journal entries
    /// of its commits in one batch, then carry out its outputs. `answering` is an
    /// inbound fetch whose reply is the engine's `SendVertices` to that peer.
    fn step(
        &mut self,
        input: Input<std::convert::Infallible>,
        answering: Option<(ValidatorIndex, InboundRequest)>,
    ) -> anyhow::Result<()> {
        let now = unix_ms();
        let outputs = self.engine.handle(now, input);
        for output in &outputs {
            if let Output::Committed(commit) = output {
                self.journal.put(
                    Column::Meta,
                    journal_key(commit.subdag.sequence),
                    encode_subdag(&commit.subdag),
                );
            }
        }
        let step = Step {
            outputs,
            answering,
            now,
        };
        match &mut self.deferred {
            Some(steps) => {
                steps.push(step);
                Ok(())
            }
            None => self.finish(vec![step]),
        }
    }

    /// Handles a burst of ready network events as one unit: every engine step runs,
    /// their writes go to disk in one batch (one fsync instead of one per vertex),
    /// then their outputs leave in order.
    fn on_net_burst(&mut self, first: NetEvent) -> anyhow::Result<()> {
        self.deferred = Some(Vec::new());
        let mut result = self.on_net_event(first);
        let mut taken = 1;
        while result.is_ok() && taken < MAX_EVENTS_PER_WRITE {
            let Some(event) = self.events.try_recv() else {
                break;
            };
            result = self.on_net_event(event);
            taken += 1;
        }
        let steps = self.deferred.take().unwrap_or_default();
        result?;
        self.finish(steps)
    }

    /// Persists the engine's held-back writes and the journal, then carries out the
    /// steps' outputs.
    fn finish(&mut self, steps: Vec<Step>) -> anyhow::Result<()> {
        let mut batch = self.buffered.take();
        batch.extend(std::mem::take(&mut self.journal));
        if !batch.is_empty() {
            self.db
                .write(batch)
                .context("persisting the consensus state and commit journal")?;
        }
        for step in steps {
            self.dispatch(step)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, step: Step) -> anyhow::Result<()> {
        let Step {
            outputs,
            mut answering,
            now,
        } = step;
        for output in outputs {
            match output {
                Output::Broadcast(vertex) => {
                    let message = Message::new(
                        self.shared.chain,
                        MessageKind::Vertex,
                        NetMessage::Vertex(vertex).to_canonical_bytes(),
                    );
                    if let Err(e) = self.net.try_broadcast(message) {
                        tracing::warn!(chain = %self.shared.chain, error = %e, "vertex broadcast failed");
                    }
                }
                Output::SendVertices { to, vertices } => {
                    if let Some((peer, _)) = &answering
                        && *peer == to
                    {
                        let (_, request) = answering.take().expect("checked");
                        let vertices = fit_sync_answer(vertices, MAX_SYNC_ANSWER_BYTES);
                        let payload = NetMessage::SyncResponse(vertices).to_canonical_bytes();
                        if let Err(e) = request.respond(Bytes::from(payload)) {
                            tracing::warn!(chain = %self.shared.chain, error = %e, "sync answer refused");
                        }
                    } else {
                        self.push_vertices(to, vertices);
                    }
                }
                Output::RequestVertices { to, request } => self.fetch(to, request),
                Output::Committed(commit) => {
                    let metrics = &self.shared.metrics;
                    for v in &commit.subdag.vertices {
                        let created = v.content().timestamp_ms;
                        metrics
                            .commit_latency
                            .observe(now.saturating_sub(created) as f64 / 1000.0);
                    }
                    metrics.exec_queue_depth.inc();
                    self.exec
                        .send(ExecCommand::Commit(commit.subdag))
                        .map_err(|_| anyhow::anyhow!("the block executor stopped"))?;
                }
                Output::Skipped { round, leader } => {
                    tracing::debug!(chain = %self.shared.chain, round, leader, "leader slot skipped");
                }
                Output::Misbehaviour(evidence) => {
                    tracing::warn!(chain = %self.shared.chain, ?evidence, "validator misbehaviour");
                }
                Output::Rejected { from, reason } => {
                    tracing::debug!(chain = %self.shared.chain, from, %reason, "input rejected");
                }
                Output::SetTimer { at_ms } => self.timer_at = Some(at_ms),
                Output::SendEngine { message, .. } => match message {},
                Output::Halted { reason } => bail!("consensus halted: {reason}"),
            }
        }
        if let Some((_, request)) = answering {
            // Nothing to send: an empty answer beats making the peer time out.
            let payload = NetMessage::SyncResponse(Vec::new()).to_canonical_bytes();
            let _ = request.respond(Bytes::from(payload));
        }
        Ok(())
    }

    fn push_vertices(&self, to: ValidatorIndex, vertices: Vec<Arc<Vertex>>) {
        let Some(&peer) = self.peer_ids.get(to as usize) else {
            return;
        };
        let net = self.net.clone();
        let chain = self.shared.chain;
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
        let chain = self.shared.chain;
        let answers = self.sync_tx.clone();
        let payload = NetMessage::SyncRequest(request).to_canonical_bytes();
        tokio::spawn(async move {
            let message = Message::new(chain, MessageKind::FetchVertices, payload);
            match net.request(peer, message, FETCH_TIMEOUT).await {
                Ok(bytes) => match NetMessage::from_canonical_bytes(&bytes) {
                    Ok(NetMessage::SyncResponse(vertices)) => {
                        let _ = answers.send((to, vertices));
                    }
                    _ => tracing::debug!(%chain, %peer, "undecodable sync answer"),
                },
                Err(e) => tracing::debug!(%chain, %peer, error = %e, "vertex fetch failed"),
            }
        });
    }
}

/// The longest prefix of `vertices` whose encodings fit in `budget` bytes (at least
/// one vertex, which always fits the frame limit on its own).
fn fit_sync_answer(mut vertices: Vec<Arc<Vertex>>, budget: usize) -> Vec<Arc<Vertex>> {
    let mut used = 0usize;
    let mut keep = 0;
    for v in &vertices {
        let size = v.to_canonical_bytes().len();
        if keep > 0 && used + size > budget {
            break;
        }
        used += size;
        keep += 1;
    }
    vertices.truncate(keep);
    vertices
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::types::{ChainId, UnsignedVertex};

    fn vertex(round: u64) -> Arc<Vertex> {
        Arc::new(
            UnsignedVertex {
                chain: ChainId::Delta,
                epoch: 0,
                round,
                author: 0,
                parents: vec![],
                transactions: vec![],
                timestamp_ms: round,
            }
            .sign(&dualchain_consensus::keys::sim_validator_key(0)),
        )
    }

    #[test]
    fn sync_answers_are_cut_to_the_byte_budget_keeping_the_order() {
        let vertices: Vec<_> = (0..10).map(vertex).collect();
        let one = vertices[0].to_canonical_bytes().len();
        let cut = fit_sync_answer(vertices.clone(), 3 * one + one / 2);
        assert_eq!(cut.len(), 3);
        assert_eq!(cut[..], vertices[..3]);
        assert_eq!(
            fit_sync_answer(vertices.clone(), 1).len(),
            1,
            "one vertex always goes"
        );
        assert_eq!(fit_sync_answer(vertices.clone(), usize::MAX).len(), 10);
    }
}
