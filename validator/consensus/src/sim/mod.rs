//! Deterministic multi-node simulator: N consensus engines (DAG-BFT's commit rule or
//! the Avalanche rule, `SimConfig::engine.ordering`) in one thread, virtual time, a
//! seeded RNG, and faults.
//!
//! One run is fixed by its [`SimConfig`] (seed included): message latency and loss,
//! a partition into two random sides that heals after `partition_ms`, crash and
//! restart of `crashes` honest nodes (a restarted node reopens its engine and sealer
//! from its own [`MemoryEngine`], nothing else survives), and `byzantine` nodes, each
//! with one [`Behaviour`]. Every node runs the real engine, real ML-DSA-87 signatures
//! and the real wire encoding; the only sharing between simulated nodes is the
//! verification-verdict cache and a decode cache for identical broadcast bytes (both
//! deterministic functions of the bytes, see [`crate::verify`]).
//!
//! After each run the simulator checks:
//! - **safety**: every honest node's committed sequence is a prefix of every other's
//!   (compared by sub-DAG digest), no vertex is committed twice, sequence numbers are
//!   contiguous, sealed blocks are identical per height, and every piece of
//!   misbehaviour evidence verifies and accuses a Byzantine node;
//! - **liveness**: every honest node commits after the last fault ended and reaches
//!   the target round within the time limit;
//! - **determinism** (by the caller running a seed twice): the trace digest, a hash of
//!   every honest node's commits and blocks and of the network counters, is equal.

pub mod byzantine;
pub mod network;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, AssetId, ChainId, Output as TxOutput, Transaction, TxPayload, ValidatorIndex,
    ValidatorSet, Vertex,
};
use dualchain_storage::{Column, KvEngine, MemoryEngine, WriteBatch};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use byzantine::Behaviour;
pub use network::LatencyModel;
use network::{Event, EventQueue, Links};

use crate::avalanche::AvalancheMessage;
use crate::config::DagBftConfig;
use crate::consensus::{Consensus, Input, Output, Round, TimeMs};
use crate::engine::DagBft;
use crate::evidence::Evidence;
use crate::finality::{FinalityTracker, Histogram};
use crate::keys::sim_validators;
use crate::leader::LeaderSchedule;
use crate::sealer::{BlockSealer, SealerConfig};
use crate::store::KvConsensusStore;
use crate::verify::SharedVerdictCache;
use crate::wire::NetMessage;

const SEALER_STATE_KEY: &[u8] = b"sealer/state";

/// Parameters of one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub validators: usize,
    pub byzantine: usize,
    /// What every Byzantine validator does; `None` rotates through
    /// [`Behaviour::ALL`] by seed ([`Behaviour::of`]).
    pub behaviour: Option<Behaviour>,
    /// Probability that any one message is lost.
    pub loss: f64,
    /// Length of the partition (0: none). It starts at `fault_start_ms`.
    pub partition_ms: TimeMs,
    /// The side of each node during the partition (random if `None`).
    pub partition_sides: Option<Vec<bool>>,
    /// Honest nodes crashed (one after another from `fault_start_ms`) and restarted.
    pub crashes: usize,
    pub crash_ms: TimeMs,
    pub fault_start_ms: TimeMs,
    /// Every honest node must commit a leader of at least this round.
    pub rounds: Round,
    pub seed: u64,
    pub latency: LatencyModel,
    pub engine: DagBftConfig,
    pub block_time_ms: TimeMs,
    pub batch_interval_ms: TimeMs,
    pub txs_per_batch: usize,
    /// Virtual time allowed after the last fault ends (plus 500 ms per target round).
    pub time_limit_after_faults_ms: TimeMs,
}

impl SimConfig {
    /// Fault-free defaults on the Delta chain, at 100 ms rounds against 1 s blocks
    /// (the simulator's timing model; the node paces Delta at 50 ms).
    pub fn new(validators: usize, seed: u64) -> Self {
        let engine = DagBftConfig {
            epoch_seed: Digest(blake3::derive_key(
                "dualchain 2026-11 simulation epoch seed v1",
                b"",
            )),
            ..DagBftConfig::for_chain(ChainId::Delta).paced(100)
        };
        Self {
            validators,
            byzantine: 0,
            behaviour: None,
            loss: 0.0,
            partition_ms: 0,
            partition_sides: None,
            crashes: 0,
            crash_ms: 1_500,
            fault_start_ms: 500,
            rounds: 20,
            seed,
            latency: LatencyModel::default(),
            engine,
            block_time_ms: 1_000,
            batch_interval_ms: 200,
            txs_per_batch: 2,
            time_limit_after_faults_ms: 30_000,
        }
    }

    /// The largest Byzantine count the validator set tolerates.
    pub fn max_faulty(validators: usize) -> usize {
        validators.saturating_sub(1) / 3
    }

    pub fn validate(&self) -> Result<(), SimError> {
        if !(1..=dualchain_core::types::MAX_VALIDATORS).contains(&self.validators) {
            return Err(SimError::Invalid(format!(
                "validators must be 1..={}, got {}",
                dualchain_core::types::MAX_VALIDATORS,
                self.validators
            )));
        }
        if self.byzantine + self.crashes > self.validators {
            return Err(SimError::Invalid(format!(
                "{} Byzantine plus {} crashing nodes exceed {} validators",
                self.byzantine, self.crashes, self.validators
            )));
        }
        if !(0.0..1.0).contains(&self.loss) {
            return Err(SimError::Invalid(format!(
                "loss must be in [0, 1), got {}",
                self.loss
            )));
        }
        if self.block_time_ms == 0 || self.batch_interval_ms == 0 {
            return Err(SimError::Invalid(
                "block time and batch interval must be positive".into(),
            ));
        }
        Ok(())
    }

    fn last_fault_end(&self) -> TimeMs {
        let partition_end = if self.partition_ms > 0 {
            self.fault_start_ms + self.partition_ms
        } else {
            0
        };
        let crash_end = if self.crashes > 0 {
            self.fault_start_ms + 100 * (self.crashes as u64 - 1) + self.crash_ms
        } else {
            0
        };
        partition_end.max(crash_end)
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation parameters: {0}")]
    Invalid(String),
    #[error("validator set: {0}")]
    ValidatorSet(#[from] dualchain_core::types::ValidatorSetError),
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
}

/// What one run produced and what its checks found.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub seed: u64,
    pub safety_violations: Vec<String>,
    pub liveness_failure: Option<String>,
    /// Hash of every honest node's commits and blocks and of the network counters.
    pub trace_digest: Digest,
    /// Fewest committed leaders of an honest node.
    pub commits_min: u64,
    /// Fewest sealed blocks of an honest node.
    pub blocks_min: u64,
    pub latency_rounds: Histogram,
    pub latency_ms: Histogram,
    pub max_dag_vertices: usize,
    pub max_dag_bytes: usize,
    /// Most vertices (and their encoded bytes) an honest node held waiting for
    /// parents.
    pub max_pending: usize,
    pub max_pending_bytes: usize,
    /// Vertices honest nodes dropped because their parents never arrived.
    pub abandoned: u64,
    pub vertices_created: u64,
    pub virtual_ms: TimeMs,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub bytes_sent: u64,
    pub rejected_signatures: u64,
    pub undecodable_messages: u64,
    /// Proofs of equivocation honest and Byzantine nodes produced (each node hands
    /// out one per offender, on its own detection or on a peer's proof).
    pub equivocation_evidence: u64,
    /// Proofs of a wrong Avalanche vote, counted the same way.
    pub wrong_vote_evidence: u64,
    pub restarts: u64,
    /// The Avalanche rule's figures (runs with [`crate::config::Ordering::Avalanche`]).
    pub avalanche: Option<AvalancheRun>,
    /// Runs with faults: how long after the last fault ended every honest node had
    /// committed again (`None` if one never did, or without faults).
    pub recovery_ms: Option<TimeMs>,
}

/// What the honest nodes' Snowball pollers did in one run (summed over honest nodes).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AvalancheRun {
    pub stats: crate::avalanche::AvalancheStats,
    /// (Byzantine node, honest observer) pairs, and those in which the observer
    /// excluded the Byzantine node from sampling at some time.
    pub byzantine_pairs: u64,
    pub byzantine_pairs_detected: u64,
}

type SimEngine = DagBft<KvConsensusStore<Arc<MemoryEngine>>, SharedVerdictCache>;

struct Node {
    index: ValidatorIndex,
    behaviour: Option<Behaviour>,
    engine: Option<SimEngine>,
    db: Arc<MemoryEngine>,
    sealer: Option<BlockSealer>,
    tracker: FinalityTracker,
    incarnation: u64,
    timer: Option<TimeMs>,
    /// The node's committed sequence as the application saw it, across restarts.
    commit_log: Vec<Digest>,
    committed_vertices: HashSet<Digest>,
    blocks: BTreeMap<u64, Digest>,
    last_commit_ms: TimeMs,
    /// The first commit at or after the end of the last fault.
    first_commit_after_faults_ms: Option<TimeMs>,
    last_leader_round: Option<Round>,
    tx_nonce: u64,
    /// Distinct vertices this node broadcast (resends excluded).
    proposed: u64,
    last_broadcast_round: Option<Round>,
    byz: byzantine::State,
}

impl Node {
    fn honest(&self) -> bool {
        self.behaviour.is_none()
    }
}

/// One simulated network.
pub struct Simulation {
    cfg: SimConfig,
    validators: Arc<ValidatorSet>,
    keys: Vec<Arc<ValidatorKeypair>>,
    verdicts: SharedVerdictCache,
    /// Decoded broadcast vertices by the address of their shared bytes (the bytes are
    /// kept alive here, so an address is never reused within the run).
    decoded: HashMap<usize, (Arc<[u8]>, Arc<Vertex>)>,
    nodes: Vec<Node>,
    queue: EventQueue,
    rng: ChaCha8Rng,
    links: Links,
    violations: Vec<String>,
    latency_rounds: Histogram,
    latency_ms: Histogram,
    max_dag_vertices: usize,
    max_dag_bytes: usize,
    max_pending: usize,
    max_pending_bytes: usize,
    messages_sent: u64,
    messages_dropped: u64,
    bytes_sent: u64,
    undecodable: u64,
    equivocation_evidence: u64,
    wrong_vote_evidence: u64,
    /// The epoch's leader schedule, to check wrong-vote evidence.
    leaders: LeaderSchedule,
    restarts: u64,
}

impl Simulation {
    /// Sets up a run; `verdicts` may be shared with other runs of the same validators.
    pub fn new(cfg: SimConfig, verdicts: SharedVerdictCache) -> Result<Self, SimError> {
        cfg.validate()?;
        let (keys, set) = sim_validators(cfg.validators, 0)?;
        let validators = Arc::new(set);
        let leaders = LeaderSchedule::new(cfg.engine.epoch_seed, &validators);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut order: Vec<ValidatorIndex> = (0..cfg.validators as ValidatorIndex).collect();
        order.shuffle(&mut rng);
        let byzantine: Vec<ValidatorIndex> = order[..cfg.byzantine].to_vec();
        let crashing: Vec<ValidatorIndex> =
            order[cfg.byzantine..cfg.byzantine + cfg.crashes].to_vec();
        let nodes = (0..cfg.validators)
            .map(|i| {
                let index = i as ValidatorIndex;
                let behaviour = match cfg.behaviour {
                    Some(b) if byzantine.contains(&index) => Some(b),
                    _ => Behaviour::of(&byzantine, index, cfg.seed),
                };
                Node {
                    index,
                    behaviour,
                    engine: None,
                    db: Arc::new(MemoryEngine::new()),
                    sealer: None,
                    tracker: FinalityTracker::new(cfg.engine.chain),
                    incarnation: 0,
                    timer: None,
                    commit_log: Vec::new(),
                    committed_vertices: HashSet::new(),
                    blocks: BTreeMap::new(),
                    last_commit_ms: 0,
                    first_commit_after_faults_ms: None,
                    last_leader_round: None,
                    tx_nonce: 0,
                    proposed: 0,
                    last_broadcast_round: None,
                    byz: byzantine::State::default(),
                }
            })
            .collect();
        let random_side = {
            let mut side: Vec<bool> = (0..cfg.validators).map(|_| rng.random_bool(0.5)).collect();
            // Both sides non-empty.
            if cfg.validators > 1 && side.iter().all(|s| *s == side[0]) {
                side[0] = !side[0];
            }
            side
        };
        let side = match &cfg.partition_sides {
            Some(s) if s.len() == cfg.validators => s.clone(),
            Some(s) => {
                return Err(SimError::Invalid(format!(
                    "partition sides name {} nodes, the network has {}",
                    s.len(),
                    cfg.validators
                )));
            }
            None => random_side,
        };
        let links = Links {
            loss: cfg.loss,
            latency: cfg.latency,
            side,
            partitioned: false,
        };
        let mut sim = Self {
            validators,
            keys,
            verdicts,
            decoded: HashMap::new(),
            nodes,
            queue: EventQueue::default(),
            rng,
            links,
            violations: Vec::new(),
            latency_rounds: Histogram::default(),
            latency_ms: Histogram::default(),
            max_dag_vertices: 0,
            max_dag_bytes: 0,
            max_pending: 0,
            max_pending_bytes: 0,
            messages_sent: 0,
            messages_dropped: 0,
            bytes_sent: 0,
            undecodable: 0,
            equivocation_evidence: 0,
            wrong_vote_evidence: 0,
            leaders,
            restarts: 0,
            cfg,
        };
        for i in 0..sim.nodes.len() {
            sim.open_engine(i)?;
            let start = sim.rng.random_range(0..50);
            sim.queue.push(
                start,
                Event::Start {
                    node: i as ValidatorIndex,
                },
            );
            let batch = sim.rng.random_range(0..sim.cfg.batch_interval_ms);
            sim.queue.push(
                batch,
                Event::Batch {
                    node: i as ValidatorIndex,
                },
            );
        }
        if sim.cfg.partition_ms > 0 {
            sim.queue
                .push(sim.cfg.fault_start_ms, Event::PartitionStart);
            sim.queue.push(
                sim.cfg.fault_start_ms + sim.cfg.partition_ms,
                Event::PartitionHeal,
            );
        }
        for (k, node) in crashing.iter().enumerate() {
            let at = sim.cfg.fault_start_ms + 100 * k as u64;
            sim.queue.push(at, Event::Crash { node: *node });
            sim.queue
                .push(at + sim.cfg.crash_ms, Event::Restart { node: *node });
        }
        Ok(sim)
    }

    fn open_engine(&mut self, i: usize) -> Result<(), SimError> {
        let node = &mut self.nodes[i];
        let store = KvConsensusStore::new(node.db.clone(), 0);
        let engine = DagBft::open(
            self.cfg.engine.clone(),
            node.index,
            self.keys[i].clone(),
            self.validators.clone(),
            store,
            self.verdicts.clone(),
        )?;
        let sealer_cfg = SealerConfig {
            block_time_ms: self.cfg.block_time_ms,
            ..SealerConfig::for_chain(self.cfg.engine.chain)
        };
        let sealer = match node.db.get(Column::Meta, SEALER_STATE_KEY) {
            Ok(Some(bytes)) => BlockSealer::from_state_bytes(sealer_cfg, &bytes)
                .map_err(|e| SimError::Invalid(format!("sealer state of node {i}: {e}")))?,
            Ok(None) => {
                BlockSealer::new(sealer_cfg).map_err(|e| SimError::Invalid(e.to_string()))?
            }
            Err(e) => return Err(SimError::Invalid(format!("store of node {i}: {e}"))),
        };
        let finalized = sealer.next_height().checked_sub(1).filter(|h| *h > 0);
        node.tracker = FinalityTracker::resume(self.cfg.engine.chain, finalized);
        node.sealer = Some(sealer);
        node.engine = Some(engine);
        Ok(())
    }

    /// Runs to completion (target reached after the faults, or the time limit).
    pub fn run(mut self) -> RunResult {
        let fault_end = self.cfg.last_fault_end();
        let deadline = fault_end + self.cfg.time_limit_after_faults_ms + 500 * self.cfg.rounds;
        let mut now = 0;
        let mut done = false;
        while let Some((at, event)) = self.queue.pop() {
            if at > deadline {
                break;
            }
            now = at;
            let committed = self.process(now, event);
            if committed && now >= fault_end && self.target_reached(fault_end) {
                done = true;
                break;
            }
        }
        let liveness_failure = (!done).then(|| {
            let lagging: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.honest())
                .map(|n| {
                    format!(
                        "node {}: last leader round {:?} at {} ms",
                        n.index, n.last_leader_round, n.last_commit_ms
                    )
                })
                .collect();
            format!(
                "seed {}: target round {} not reached by every honest node {} ms after the last fault ({fault_end} ms); {}",
                self.cfg.seed,
                self.cfg.rounds,
                now.saturating_sub(fault_end),
                lagging.join("; ")
            )
        });
        self.finish(now, liveness_failure)
    }

    fn target_reached(&self, fault_end: TimeMs) -> bool {
        self.nodes.iter().filter(|n| n.honest()).all(|n| {
            n.engine.is_some()
                && n.last_leader_round.is_some_and(|r| r >= self.cfg.rounds)
                && n.last_commit_ms >= fault_end
        })
    }

    /// Processes one event; `true` if some node committed.
    fn process(&mut self, now: TimeMs, event: Event) -> bool {
        match event {
            Event::Deliver { to, from, bytes } => {
                if self.nodes[usize::from(to)].engine.is_none() {
                    return false;
                }
                match self.decode(bytes) {
                    Some(msg) => self.handle(usize::from(to), now, msg.into_input(from)),
                    None => {
                        self.undecodable += 1;
                        false
                    }
                }
            }
            Event::Timer {
                node,
                incarnation,
                at,
            } => {
                let n = &mut self.nodes[usize::from(node)];
                if n.engine.is_none() || n.incarnation != incarnation || n.timer != Some(at) {
                    return false;
                }
                n.timer = None;
                self.handle(usize::from(node), now, Input::TimeoutFired)
            }
            Event::Batch { node } => {
                let i = usize::from(node);
                self.queue
                    .push(now + self.cfg.batch_interval_ms, Event::Batch { node });
                if self.nodes[i].engine.is_none() || self.cfg.txs_per_batch == 0 {
                    return false;
                }
                let transactions = (0..self.cfg.txs_per_batch)
                    .map(|_| {
                        let n = &mut self.nodes[i];
                        n.tx_nonce += 1;
                        Transaction {
                            chain: self.cfg.engine.chain,
                            sender: Address([node as u8; 32]),
                            nonce: n.tx_nonce,
                            fee: 1,
                            payload: TxPayload::Transfer {
                                outputs: vec![TxOutput {
                                    to: Address([0xee; 32]),
                                    asset: AssetId::NATIVE,
                                    amount: 1 + now,
                                }],
                            },
                        }
                        .unsigned()
                    })
                    .collect();
                self.handle(i, now, Input::BatchReady { transactions })
            }
            Event::Start { node } => self.handle(usize::from(node), now, Input::Start),
            Event::Crash { node } => {
                let n = &mut self.nodes[usize::from(node)];
                n.engine = None;
                n.sealer = None;
                n.timer = None;
                n.incarnation += 1;
                false
            }
            Event::Restart { node } => {
                let i = usize::from(node);
                self.restarts += 1;
                if let Err(e) = self.open_engine(i) {
                    self.violations
                        .push(format!("node {i} could not restart from its store: {e}"));
                    return false;
                }
                self.handle(i, now, Input::Start)
            }
            Event::PartitionStart => {
                self.links.partitioned = true;
                false
            }
            Event::PartitionHeal => {
                self.links.partitioned = false;
                false
            }
        }
    }

    fn decode(&mut self, bytes: Arc<[u8]>) -> Option<NetMessage> {
        // A broadcast reaches every peer as one shared allocation: decode it once.
        if bytes.len() > 1 && bytes[1] == 0 {
            let key = bytes.as_ptr() as usize;
            if let Some((_, v)) = self.decoded.get(&key) {
                return Some(NetMessage::Vertex(v.clone()));
            }
            let msg = NetMessage::from_canonical_bytes(&bytes).ok()?;
            if let NetMessage::Vertex(v) = &msg {
                self.decoded.insert(key, (bytes, v.clone()));
            }
            return Some(msg);
        }
        NetMessage::from_canonical_bytes(&bytes).ok()
    }

    /// Feeds one input to node `i` and carries out its outputs; `true` if it committed.
    fn handle(&mut self, i: usize, now: TimeMs, input: Input<AvalancheMessage>) -> bool {
        let honest = self.nodes[i].honest();
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return false;
        };
        let outputs = engine.handle(now, input);
        self.max_dag_vertices = self
            .max_dag_vertices
            .max(engine.dag().len() + engine.pending_len());
        self.max_dag_bytes = self.max_dag_bytes.max(engine.dag().encoded_bytes());
        if honest {
            self.max_pending = self.max_pending.max(engine.pending_len());
            self.max_pending_bytes = self.max_pending_bytes.max(engine.pending_bytes());
        }
        let mut committed = false;
        let mut last_sequence = None;
        for output in outputs {
            match output {
                Output::Broadcast(v) => self.broadcast(i, now, v),
                Output::SendVertices { to, vertices } => {
                    if self.nodes[i].behaviour == Some(Behaviour::Withhold) {
                        continue;
                    }
                    self.send(i, usize::from(to), now, &NetMessage::SyncResponse(vertices));
                }
                Output::RequestVertices { to, request } => {
                    self.send(i, usize::from(to), now, &NetMessage::SyncRequest(request));
                }
                Output::Committed(commit) => {
                    committed = true;
                    last_sequence = Some(commit.subdag.sequence);
                    self.record_commit(i, now, commit);
                }
                Output::Skipped { .. } | Output::Rejected { .. } | Output::Orphaned(_) => {}
                Output::Misbehaviour(evidence) => self.pass_on_evidence(i, now, evidence),
                Output::SetTimer { at_ms } => {
                    let n = &mut self.nodes[i];
                    n.timer = Some(at_ms);
                    let (node, incarnation) = (n.index, n.incarnation);
                    self.queue.push(
                        at_ms,
                        Event::Timer {
                            node,
                            incarnation,
                            at: at_ms,
                        },
                    );
                }
                Output::SendEngine { to, message } => self.send_engine(i, now, to, message),
                Output::Halted { reason } => {
                    self.violations.push(format!("node {i} halted: {reason}"));
                }
            }
        }
        // The sealer state is persisted with every commit (`record_commit`), so the
        // engine may forget what it kept for replay.
        if let Some(through) = last_sequence
            && self.nodes[i].sealer.is_some()
        {
            self.handle(i, now, Input::Executed { through });
        }
        committed
    }

    fn record_commit(&mut self, i: usize, now: TimeMs, commit: crate::consensus::Commit) {
        let node = &mut self.nodes[i];
        let honest = node.behaviour.is_none();
        let s = &commit.subdag;
        if let Some(seen) = node.commit_log.get(s.sequence as usize) {
            // Replayed after a restart (not acknowledged before the crash): the same
            // commit again, which the application has applied already.
            if *seen != s.digest() && honest {
                self.violations.push(format!(
                    "node {i} replayed commit {} with different contents",
                    s.sequence
                ));
            }
            return;
        }
        if s.sequence != node.commit_log.len() as u64 && honest {
            self.violations.push(format!(
                "node {i} committed sequence {} after {} commits",
                s.sequence,
                node.commit_log.len()
            ));
        }
        node.commit_log.push(s.digest());
        for v in &s.vertices {
            if !node.committed_vertices.insert(v.digest()) && honest {
                self.violations
                    .push(format!("node {i} committed vertex {} twice", v.digest()));
            }
        }
        node.last_commit_ms = now;
        if now >= self.cfg.last_fault_end() && node.first_commit_after_faults_ms.is_none() {
            node.first_commit_after_faults_ms = Some(now);
        }
        node.last_leader_round = Some(s.leader_round);
        node.tracker.on_commit(&commit, now);
        if honest {
            let mut rounds = Histogram::default();
            let mut ms = Histogram::default();
            for v in &s.vertices {
                rounds.record(commit.decided_at_round.saturating_sub(v.content().round));
                ms.record(now.saturating_sub(v.content().timestamp_ms));
            }
            self.latency_rounds.merge(&rounds);
            self.latency_ms.merge(&ms);
        }
        let Some(sealer) = node.sealer.as_mut() else {
            return;
        };
        match sealer.on_commit(s) {
            Ok(blocks) => {
                for b in &blocks {
                    node.tracker.on_block(b, now);
                    let prev = node.blocks.insert(b.height(), b.digest());
                    if prev.is_some_and(|p| p != b.digest()) && honest {
                        self.violations.push(format!(
                            "node {i} sealed two blocks at height {}",
                            b.height()
                        ));
                    }
                }
                let mut batch = WriteBatch::new();
                batch.put(Column::Meta, SEALER_STATE_KEY, sealer.to_state_bytes());
                if let Err(e) = node.db.write(batch) {
                    self.violations
                        .push(format!("node {i} could not persist its sealer: {e}"));
                }
            }
            Err(e) => {
                if honest {
                    self.violations.push(format!("node {i} sealer: {e}"));
                }
            }
        }
    }

    /// Sends an engine message (a Byzantine node's goes through its behaviour).
    fn send_engine(
        &mut self,
        from: usize,
        now: TimeMs,
        to: Option<ValidatorIndex>,
        message: AvalancheMessage,
    ) {
        let n = self.nodes.len();
        let targets: Vec<usize> = match to {
            Some(to) => vec![usize::from(to)],
            None => (0..n).filter(|p| *p != from).collect(),
        };
        for to in targets {
            let plan = match self.nodes[from].behaviour {
                None => vec![(
                    to,
                    NetMessage::Engine(message.clone())
                        .to_canonical_bytes()
                        .into(),
                )],
                Some(b) => {
                    let key = self.keys[from].clone();
                    let network = self.cfg.engine.network;
                    b.engine_plan(&mut self.rng, (&key, network), n, from, to, message.clone())
                }
            };
            for (to, bytes) in plan {
                self.send_bytes(from, to, now, bytes);
            }
        }
    }

    /// Checks evidence node `i` produced (it must verify, and an honest node never
    /// accuses an honest one) and broadcasts it, as the node's runtime does.
    fn pass_on_evidence(&mut self, i: usize, now: TimeMs, evidence: Evidence) {
        match evidence {
            Evidence::Equivocation { .. } => self.equivocation_evidence += 1,
            Evidence::WrongVote { .. } => self.wrong_vote_evidence += 1,
        }
        let network = self.cfg.engine.network;
        if let Err(e) = evidence.verify(&self.validators, network, &self.leaders) {
            self.violations
                .push(format!("node {i} produced invalid evidence: {e}"));
        }
        let offender = usize::from(evidence.offender());
        if self.nodes[offender].honest() && self.nodes[i].honest() {
            let kind = evidence.kind();
            self.violations
                .push(format!("node {i} accused honest node {offender} of {kind}"));
        }
        let bytes: Arc<[u8]> = NetMessage::Evidence(evidence).to_canonical_bytes().into();
        for to in 0..self.nodes.len() {
            self.send_bytes(i, to, now, bytes.clone());
        }
    }

    fn send(&mut self, from: usize, to: usize, now: TimeMs, msg: &NetMessage) {
        let bytes: Arc<[u8]> = msg.to_canonical_bytes().into();
        self.send_bytes(from, to, now, bytes);
    }

    fn send_bytes(&mut self, from: usize, to: usize, now: TimeMs, bytes: Arc<[u8]>) {
        if from == to {
            return;
        }
        self.messages_sent += 1;
        self.bytes_sent += bytes.len() as u64;
        match self
            .links
            .transmit(&mut self.rng, from as ValidatorIndex, to as ValidatorIndex)
        {
            Some(delay) => self.queue.push(
                now + delay,
                Event::Deliver {
                    to: to as ValidatorIndex,
                    from: from as ValidatorIndex,
                    bytes,
                },
            ),
            None => self.messages_dropped += 1,
        }
    }

    fn broadcast(&mut self, from: usize, now: TimeMs, vertex: Arc<Vertex>) {
        let round = vertex.content().round;
        let node = &mut self.nodes[from];
        if node.last_broadcast_round.is_none_or(|r| round > r) {
            node.last_broadcast_round = Some(round);
            node.proposed += 1;
        }
        let plan = match self.nodes[from].behaviour {
            None => byzantine::honest_plan(self.nodes.len(), from, &vertex),
            Some(b) => {
                let key = self.keys[from].clone();
                let network = self.cfg.engine.network;
                let n = self.nodes.len();
                let node = &mut self.nodes[from];
                b.plan(
                    &mut node.byz,
                    &mut self.rng,
                    (&key, network),
                    n,
                    from,
                    &vertex,
                )
            }
        };
        for (to, bytes) in plan {
            self.send_bytes(from, to, now, bytes);
        }
    }

    fn finish(self, now: TimeMs, liveness_failure: Option<String>) -> RunResult {
        let abandoned = self.honest_total(|s| s.abandoned);
        let rejected_signatures = self.honest_total(|s| s.rejected_signatures);
        let mut violations = self.violations.clone();
        let avalanche = self.avalanche_run(&mut violations);
        let fault_end = self.cfg.last_fault_end();
        let recovery_ms = if fault_end == 0 {
            None
        } else {
            self.nodes
                .iter()
                .filter(|n| n.honest())
                .map(|n| n.first_commit_after_faults_ms.map(|t| t - fault_end))
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.into_iter().max())
        };
        let honest: Vec<&Node> = self.nodes.iter().filter(|n| n.honest()).collect();
        // Committed sequences: prefixes of the longest.
        if let Some(longest) = honest.iter().max_by_key(|n| n.commit_log.len()) {
            for n in &honest {
                if n.commit_log[..] != longest.commit_log[..n.commit_log.len()] {
                    let at = n
                        .commit_log
                        .iter()
                        .zip(&longest.commit_log)
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    violations.push(format!(
                        "seed {}: node {} and node {} diverge at commit {at}",
                        self.cfg.seed, n.index, longest.index
                    ));
                }
            }
        }
        // Blocks: identical per height.
        let mut by_height: BTreeMap<u64, (Digest, ValidatorIndex)> = BTreeMap::new();
        for n in &honest {
            for (h, d) in &n.blocks {
                match by_height.get(h) {
                    Some((other, who)) if other != d => violations.push(format!(
                        "seed {}: nodes {} and {} sealed different blocks at height {h}",
                        self.cfg.seed, who, n.index
                    )),
                    Some(_) => {}
                    None => {
                        by_height.insert(*h, (*d, n.index));
                    }
                }
            }
        }
        let mut trace = blake3::Hasher::new_derive_key("dualchain 2026-11 simulation trace v1");
        for n in &honest {
            trace.update(&n.index.to_le_bytes());
            trace.update(&(n.commit_log.len() as u64).to_le_bytes());
            for d in &n.commit_log {
                trace.update(d.as_bytes());
            }
            for (h, d) in &n.blocks {
                trace.update(&h.to_le_bytes());
                trace.update(d.as_bytes());
            }
        }
        for counter in [
            self.messages_sent,
            self.messages_dropped,
            self.bytes_sent,
            now,
        ] {
            trace.update(&counter.to_le_bytes());
        }
        RunResult {
            seed: self.cfg.seed,
            safety_violations: violations,
            liveness_failure,
            trace_digest: Digest(*trace.finalize().as_bytes()),
            commits_min: honest
                .iter()
                .map(|n| n.commit_log.len() as u64)
                .min()
                .unwrap_or(0),
            blocks_min: honest
                .iter()
                .map(|n| n.blocks.len() as u64)
                .min()
                .unwrap_or(0),
            latency_rounds: self.latency_rounds,
            latency_ms: self.latency_ms,
            max_dag_vertices: self.max_dag_vertices,
            max_dag_bytes: self.max_dag_bytes,
            max_pending: self.max_pending,
            max_pending_bytes: self.max_pending_bytes,
            abandoned,
            vertices_created: self.nodes.iter().map(|n| n.proposed).sum(),
            virtual_ms: now,
            messages_sent: self.messages_sent,
            messages_dropped: self.messages_dropped,
            bytes_sent: self.bytes_sent,
            rejected_signatures,
            undecodable_messages: self.undecodable,
            equivocation_evidence: self.equivocation_evidence,
            wrong_vote_evidence: self.wrong_vote_evidence,
            restarts: self.restarts,
            avalanche,
            recovery_ms,
        }
    }

    /// The pollers' figures; an honest node excluded as Byzantine is a violation.
    fn avalanche_run(&self, violations: &mut Vec<String>) -> Option<AvalancheRun> {
        if self.cfg.engine.ordering == crate::config::Ordering::DagBft {
            return None;
        }
        let mut run = AvalancheRun::default();
        let byzantine: Vec<ValidatorIndex> = self
            .nodes
            .iter()
            .filter(|n| !n.honest())
            .map(|n| n.index)
            .collect();
        for n in self.nodes.iter().filter(|n| n.honest()) {
            let Some(poller) = n.engine.as_ref().and_then(|e| e.avalanche()) else {
                continue;
            };
            let s = poller.stats();
            run.stats.add(&s);
            for accused in poller.byzantine() {
                if self.nodes[usize::from(accused)].honest() {
                    violations.push(format!(
                        "seed {}: node {} excluded honest node {accused} as Byzantine",
                        self.cfg.seed, n.index
                    ));
                }
            }
            let excluded = poller.ever_excluded();
            run.byzantine_pairs += byzantine.len() as u64;
            run.byzantine_pairs_detected +=
                byzantine.iter().filter(|b| excluded.contains(b)).count() as u64;
        }
        Some(run)
    }
}

impl Simulation {
    /// A counter of the honest engines, summed.
    fn honest_total(&self, counter: impl Fn(&crate::engine::EngineStats) -> u64) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.honest())
            .filter_map(|n| n.engine.as_ref())
            .map(|e| counter(e.stats()))
            .sum()
    }
}

/// Runs one seed.
pub fn run_once(cfg: SimConfig, verdicts: &SharedVerdictCache) -> Result<RunResult, SimError> {
    Ok(Simulation::new(cfg, verdicts.clone())?.run())
}

#[cfg(test)]
mod avalanche_tests;
#[cfg(test)]
mod tests;
