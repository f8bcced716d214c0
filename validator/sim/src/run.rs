//! One whole-node simulation run: N complete validators — both chains, mempool,
//! consensus, sealer, parallel executor, votes and certificates, the runtime's own
//! persistence — on a single-threaded tokio runtime whose clock is paused (virtual
//! time), over the in-memory hubs with seeded latency, loss and partitions, with
//! crashes (a crashed validator loses everything but its stores) and Byzantine
//! validators, while the clients submit transactions. Then the checks of
//! [`crate::checks`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dualchain_api::ChainApi;
use dualchain_consensus::SharedVerdictCache;
use dualchain_consensus::keys::sim_validator_key;
use dualchain_consensus::sim::Behaviour;
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, AssetId, Attestation, Block, ChainId, ChainParams, CrossChainFailure, CrossChainOp,
    EpochSchedule, FailureReason, Genesis, GenesisAccount, GenesisValidator, Output, ReceiptStatus,
    SaxAllocation, SignedTransaction, Transaction, TxPayload, ValidatorIndex, Verdict,
    set_change_keypair,
};
use dualchain_mempool::AdmissionTime;
use dualchain_net::{MemoryHub, PeerId};
use dualchain_runtime::chain::build_context;
use dualchain_runtime::{
    ChainContext, ChainOptions, Clock, NodeChains, NodeIdentity, VirtualClock, supervise,
};
use dualchain_runtime::{health, relay};
use prometheus::Registry;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checks::{self, Findings};
use crate::config::{NodeSimConfig, SIM_EPOCH_MS, Signatures};
use crate::flow::{self, FlowView, GovernanceFlow};
use crate::forgery;
use crate::reconfigure::{Reconfiguration, ReconfigureView};
use crate::seams::{SimSeams, SimStore, slot};
use crate::workload::{ClientStats, Clients, account_address};

/// Key derivation context of simulated-scheme validator keys (public: simulation only).
const SIM_KEY_CONTEXT: &str = "dualchain 2026-12 whole-node simulation validator key v1";
/// How often the clients act (virtual time).
const CLIENT_TICK_MS: u64 = 20;
/// How often the governance flow looks at the observer's state.
const FLOW_TICK_MS: u64 = 200;
/// Beyond the drain, how long the governance flow may still take (its steps wait for
/// Alpha's 15 s blocks several times).
const FLOW_EXTRA_MS: u64 = 90_000;
/// An unsigned Delta transfer of `amount` native units, fee 1.
fn transfer(sender: Address, nonce: u64, to: Address, amount: u64) -> SignedTransaction {
    Transaction {
        chain: ChainId::Delta,
        sender,
        nonce,
        fee: 1,
        payload: TxPayload::Transfer {
            outputs: vec![Output {
                to,
                asset: AssetId::NATIVE,
                amount,
            }],
        },
    }
    .unsigned()
}

/// Transfers from unfunded accounts each Byzantine validator offers per forgery round.
const UNPAYABLE_PER_ROUND: u64 = 4;
/// How often each Byzantine validator relays forged attestations during the load.
const FORGE_EVERY_MS: u64 = 3_000;
/// Native balance of every client account.
const ACCOUNT_BALANCE: u64 = 1_000_000_000_000;
/// How long the honest validators get to reach the same heights after the drain.
const SETTLE_MS: u64 = 60_000;
/// Tip heights that need no certificate yet when the run stops.
const CERTIFICATE_MARGIN: u64 = 2;

/// What one run produced and what its checks found.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub seed: u64,
    pub safety_violations: Vec<String>,
    pub liveness_failures: Vec<String>,
    pub exactly_once_violations: Vec<String>,
    pub certificate_failures: Vec<String>,
    /// The run's outcome, for the determinism check (see [`checks::Trace`]).
    pub trace: checks::Trace,
    pub virtual_ms: u64,
    /// Delta's transfer clients.
    pub clients: ClientStats,
    /// Alpha's sAX-lock clients.
    pub alpha_clients: ClientStats,
    /// Lowest head height of an honest validator (Alpha, Delta).
    pub min_heights: [u64; 2],
    pub crashes: u64,
    pub behaviours: Vec<Behaviour>,
    /// Alpha locks and the Delta stakes attested from them, at the honest validator
    /// with the fewest stakes.
    pub records: checks::RecordsAgreement,
    /// The epochs both chains entered, at the honest validator whose Delta entered
    /// the fewest.
    pub epochs: checks::EpochsAgreement,
    /// How far the governance flow got, and when each stage was reached.
    pub flow: Vec<(flow::Stage, u64)>,
    /// Forged attestations planted past admission (in the Byzantine validator's
    /// mempool and an honest one's, as a proposer that skips admission carries them;
    /// each must fail at execution: a stake from one is a safety violation).
    pub forged_attestations: u64,
    /// The same forgeries offered to honest validators' APIs, and how many of those
    /// were admitted (the admission check refuses every one: must stay 0).
    pub forged_offered: u64,
    pub forged_admitted: u64,
    /// Of those, refused at execution by the attestation checks (in the observer's
    /// chain; some may still wait in a mempool or be dropped with a lost vertex).
    pub forged_refused: u64,
    /// Failed receipts in the observer's blocks whose positions its API reported
    /// (`checks::check_failed_positions`; a mismatch is a safety violation).
    pub failed_receipts_checked: u64,
    /// Transactions that could only fail and pay nothing (transfers from accounts
    /// that do not exist, a client's transfer at a spent nonce) the Byzantine
    /// validators offered to honest APIs, and how many were admitted (admission
    /// against state refuses them all: must stay 0).
    pub unpayable_offered: u64,
    pub unpayable_admitted: u64,
    /// Offences the validators' runtimes reported to the transport (both chains)
    /// against honest validators (a false accusation: must stay 0) and against the
    /// Byzantine ones.
    pub reports_against_honest: u64,
    pub reports_against_byzantine: u64,
    /// Per chain (Alpha, Delta), the fewest proofs of misbehaviour an honest
    /// validator recorded (found itself or received and checked): with an
    /// equivocating validator, gossip must bring the proof to every honest one,
    /// and each records it once (counted since the validator's last start).
    pub evidence_at_honest_min: [u64; 2],
    /// Validator-set changes that took effect, and the validators they took out and
    /// brought in.
    pub set_changes_applied: usize,
    pub validators_left: usize,
    pub validators_joined: usize,
    /// Epoch transitions at the observer: Alpha entering an epoch → Delta entering it.
    pub transitions_ms: Vec<u64>,
    /// The longest an honest validator's epoch transition step ran once it overran
    /// its timeout (its `dualchain_epoch_transition_stuck_seconds`), and the honest
    /// validators whose transition was ever reported unable to complete.
    pub transition_stuck_max_s: u64,
    pub transition_deadlocks: usize,
    /// The observer's Delta slots under steady load, in and out of epoch transitions.
    pub delta_slots: DeltaSlots,
    /// Per chain (Alpha, Delta), when the observer first held a block past genesis
    /// (simulated ms from the start; `None`: never).
    pub first_block_ms: [Option<u64>; 2],
}

/// Delta slots under steady load (from the load's second second to its end) at the
/// observer, split by whether they fall in an epoch transition (its Alpha entering an
/// epoch → its Delta entering it, and one Delta slot after), and those of them
/// *missed*: no block of the slot carries a transaction (the sealer fills a slot
/// without commits with an empty block). The target is no slot missed in a
/// transition; the slots elsewhere are the same run's baseline under the same faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaSlots {
    pub in_transitions: u64,
    pub missed_in_transitions: u64,
    pub elsewhere: u64,
    pub missed_elsewhere: u64,
}

/// Runs one seed to completion.
pub fn run(cfg: &NodeSimConfig) -> anyhow::Result<RunResult> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    // Everything that reads the clock is made inside the paused runtime: outside it,
    // tokio's clock is the real one.
    runtime.block_on(async { Simulation::new(cfg.clone())?.run().await })
}

/// The genesis of a simulated network: the simulation's validator keys, funded
/// client accounts, unsigned transactions allowed (the clients do not sign: the
/// simulator spends its time on consensus and execution, not account signatures).
pub fn genesis(cfg: &NodeSimConfig) -> Genesis {
    genesis_of(cfg, &validator_keys(cfg))
}

/// The validators' keys of a run: deterministic per index, of the configured scheme.
pub fn validator_keys(cfg: &NodeSimConfig) -> Vec<Arc<ValidatorKeypair>> {
    (0..cfg.validators)
        .map(|i| match cfg.signatures {
            Signatures::MlDsa => sim_validator_key(i),
            Signatures::Simulated => {
                let seed = blake3::derive_key(SIM_KEY_CONTEXT, &(i as u64).to_le_bytes());
                Arc::new(ValidatorKeypair::simulated(&seed))
            }
        })
        .collect()
}

fn genesis_of(cfg: &NodeSimConfig, keys: &[Arc<ValidatorKeypair>]) -> Genesis {
    Genesis {
        network: "sim".into(),
        genesis_time_ms: SIM_EPOCH_MS - cfg.genesis_age_ms,
        epoch_length_alpha_blocks: cfg.epoch_length_alpha_blocks,
        allow_unsigned_transactions: true,
        alpha: ChainParams {
            block_time_ms: cfg.alpha_block_ms,
            consensus: cfg.engines.0,
            ..ChainParams::alpha_default()
        },
        delta: ChainParams {
            block_time_ms: cfg.delta_block_ms,
            consensus: cfg.engines.1,
            ..ChainParams::delta_default()
        },
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, key)| GenesisValidator {
                name: format!("v{i}"),
                public_key: key.public().clone(),
                stake: 1,
            })
            .collect(),
        accounts: (0..cfg.accounts)
            .map(account_address)
            .chain((0..flow::STAKERS).map(flow::staker_address))
            .chain(join_sponsors(cfg))
            .map(|address| GenesisAccount {
                address,
                balances: [(AssetId::NATIVE, ACCOUNT_BALANCE)].into(),
            })
            .collect(),
        sax_allocations: (0..cfg.accounts)
            .map(account_address)
            .chain((0..flow::STAKERS).map(flow::staker_address))
            .chain(join_sponsors(cfg))
            .map(|address| SaxAllocation {
                address,
                amount: ACCOUNT_BALANCE,
            })
            .collect(),
        cross_chain: Default::default(),
    }
}

/// The accounts that lock the joiners' stakes (see [`crate::reconfigure`]).
fn join_sponsors(cfg: &NodeSimConfig) -> impl Iterator<Item = dualchain_core::types::Address> {
    (cfg.validators..cfg.nodes())
        .map(|node| crate::reconfigure::sponsor_address(node as ValidatorIndex))
}

/// A running incarnation of a validator (lost on a crash).
struct Incarnation {
    contexts: Vec<Arc<ChainContext<SimSeams>>>,
    apis: Vec<Arc<dyn ChainApi>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct SimNode {
    index: ValidatorIndex,
    behaviour: Option<Behaviour>,
    /// Milliseconds both chains' wall clocks are off (`NodeSimConfig::clock_skew`).
    clock_skew_ms: i64,
    seams: Arc<SimSeams>,
    identity: Arc<NodeIdentity>,
    running: Option<Incarnation>,
}

impl SimNode {
    fn honest(&self) -> bool {
        self.behaviour.is_none()
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let registry = Registry::new();
        let mut contexts = Vec::new();
        for chain in ChainId::ALL {
            contexts.push(build_context(
                chain,
                self.identity.clone(),
                self.seams.clone(),
                ChainOptions::default(),
                &registry,
            )?);
        }
        for ctx in &contexts {
            ctx.clock_skew_ms
                .store(self.clock_skew_ms, std::sync::atomic::Ordering::Release);
        }
        let node = Arc::new(NodeChains {
            chains: contexts.clone(),
        });
        let apis = node.apis();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> = contexts
            .iter()
            .map(|ctx| tokio::spawn(supervise(ctx.clone(), stop_rx.clone())))
            .collect();
        tasks.extend(relay::spawn_in_process(&contexts, &apis, &stop_rx));
        tasks.push(tokio::spawn(health::monitor(
            contexts.clone(),
            None,
            stop_rx.clone(),
        )));
        self.running = Some(Incarnation {
            contexts,
            apis,
            stop,
            tasks,
        });
        Ok(())
    }

    /// Everything in memory is lost at once; the stores stay.
    fn crash(&mut self) {
        if let Some(incarnation) = self.running.take() {
            for task in &incarnation.tasks {
                task.abort();
            }
            self.seams.kill_networks();
        }
    }

    async fn stop(&mut self) {
        if let Some(incarnation) = self.running.take() {
            let _ = incarnation.stop.send(true);
            for task in incarnation.tasks {
                let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
            }
        }
    }

    fn api(&self, chain: ChainId) -> Option<Arc<dyn ChainApi>> {
        let running = self.running.as_ref()?;
        Some(running.apis[slot(chain)].clone())
    }

    /// The epoch whose set left this validator out, if its `chain` stopped there.
    fn left(&self, chain: ChainId) -> Option<u64> {
        self.running.as_ref()?.contexts[slot(chain)].left_set()
    }

    /// Whether its `chain` follows as a joiner no set holds yet (its API refuses
    /// transactions, as a real joiner's does).
    fn joining(&self, chain: ChainId) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| r.contexts[slot(chain)].joining().is_some())
    }

    fn height(&self, chain: ChainId) -> u64 {
        self.running
            .as_ref()
            .map_or(0, |r| r.contexts[slot(chain)].head().height)
    }

    /// Failures of the runtime itself (not simulated crashes).
    fn failures(&self) -> Vec<String> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        running
            .contexts
            .iter()
            .filter_map(|ctx| {
                let restarts = ctx.restarts.load(std::sync::atomic::Ordering::Relaxed);
                (restarts > 0).then(|| {
                    format!(
                        "validator {} {}: its task group failed {restarts} times; last: {}",
                        self.index,
                        ctx.chain,
                        ctx.last_failure()
                    )
                })
            })
            .collect()
    }
}

/// A scheduled fault.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Crash(ValidatorIndex),
    Restart(ValidatorIndex),
    PartitionStart,
    PartitionHeal,
}

struct Simulation {
    cfg: NodeSimConfig,
    clock: Arc<VirtualClock>,
    hubs: [Arc<MemoryHub>; 2],
    nodes: Vec<SimNode>,
    observer: ValidatorIndex,
    faults: Vec<(u64, Fault)>,
    partition: Vec<Vec<PeerId>>,
    rng: ChaCha8Rng,
    crashes: u64,
    /// Forged attestations the Byzantine validators planted past admission.
    forged: u64,
    /// Forgeries offered to honest validators' APIs, and admitted there.
    forged_offered: u64,
    forged_admitted: u64,
    /// Unpayable transactions offered to honest validators' APIs, and admitted there.
    unpayable_offered: u64,
    unpayable_admitted: u64,
    /// The planned leaves (`cfg.reconfigure`).
    reconfiguration: Reconfiguration,
    /// Per chain (Alpha, Delta), when the observer's consensus first ran each epoch
    /// (simulated ms).
    entered: [BTreeMap<u64, u64>; 2],
    /// Per chain, when the observer first held a block past genesis (simulated ms).
    first_block_ms: [Option<u64>; 2],
    /// What honest validators' epoch transitions reported (see [`RunResult`]).
    transition_stuck_max_s: u64,
    transition_deadlocked: BTreeSet<ValidatorIndex>,
}

impl Simulation {
    fn new(cfg: NodeSimConfig) -> anyhow::Result<Self> {
        let mut keys = validator_keys(&cfg);
        let genesis = Arc::new(genesis_of(&cfg, &keys));
        // Joiners' keys are real ML-DSA-87 whatever the genesis validators sign with:
        // a joiner's key reaches every node as bytes, in its join record.
        keys.extend((cfg.validators..cfg.nodes()).map(sim_validator_key));
        genesis.validate()?;
        let validators = Arc::new(genesis.validator_set()?);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut order: Vec<ValidatorIndex> = (0..cfg.validators as ValidatorIndex).collect();
        order.shuffle(&mut rng);
        let crashing: Vec<ValidatorIndex> = match &cfg.crash_nodes {
            Some(nodes) => nodes.clone(),
            None => order[cfg.byzantine..cfg.byzantine + cfg.crashes].to_vec(),
        };
        let byzantine: Vec<ValidatorIndex> = order
            .iter()
            .copied()
            .filter(|i| !crashing.contains(i))
            .take(cfg.byzantine)
            .collect();
        let observer = order
            .iter()
            .copied()
            .find(|i| !crashing.contains(i) && !byzantine.contains(i))
            .expect("validated: an honest validator stays up");
        let candidates: Vec<ValidatorIndex> = order
            .iter()
            .rev()
            .copied()
            .filter(|i| !crashing.contains(i) && !byzantine.contains(i) && *i != observer)
            .collect();
        let reconfiguration = Reconfiguration::new(cfg.validators, &cfg.reconfigure, &candidates);
        let clock = Arc::new(VirtualClock::new(SIM_EPOCH_MS));
        let hubs = [ChainId::Alpha, ChainId::Delta].map(|chain| {
            let hub = MemoryHub::with_latency(cfg.seed ^ u64::from(chain.tag()) << 40, cfg.latency);
            hub.faults()
                .set_drop_probability(cfg.loss)
                .expect("validated loss");
            hub
        });
        let verdicts = [SharedVerdictCache::new(), SharedVerdictCache::new()];
        let peers: Arc<Vec<PeerId>> =
            Arc::new(keys.iter().map(|key| PeerId::of(key.public())).collect());
        let genesis_digest = genesis.hash();
        let nodes = (0..cfg.nodes())
            .map(|i| {
                let index = i as ValidatorIndex;
                let behaviour = Behaviour::of(&byzantine, index, cfg.seed);
                let bug = cfg.bug.filter(|(node, _)| *node == index).map(|(_, b)| b);
                SimNode {
                    index,
                    behaviour,
                    clock_skew_ms: cfg
                        .clock_skew
                        .filter(|(node, _)| *node == index)
                        .map_or(0, |(_, skew)| skew),
                    seams: Arc::new(SimSeams {
                        clock: clock.clone(),
                        stores: [ChainId::Alpha, ChainId::Delta].map(|chain| {
                            Arc::new(SimStore::new(bug.filter(|b| b.applies_to(chain))))
                        }),
                        hubs: hubs.clone(),
                        verdicts: verdicts.clone(),
                        behaviour,
                        peers: peers.clone(),
                        index,
                        seed: cfg.seed,
                        nets: Default::default(),
                    }),
                    identity: Arc::new(NodeIdentity {
                        genesis: genesis.clone(),
                        genesis_digest,
                        validators: validators.clone(),
                        me: (i < cfg.validators).then_some(index),
                        key: keys[i].clone(),
                        expected: Default::default(),
                    }),
                    running: None,
                }
            })
            .collect();
        let mut faults = Vec::new();
        let mut partition = Vec::new();
        if cfg.partition_ms > 0 {
            let mut side: Vec<bool> = (0..cfg.validators).map(|_| rng.random_bool(0.5)).collect();
            if cfg.validators > 1 && side.iter().all(|s| *s == side[0]) {
                side[0] = !side[0];
            }
            // Joiners alternate sides (drawn from no rng: runs without joiners keep
            // their partitions).
            side.extend((cfg.validators..cfg.nodes()).map(|j| j % 2 == 0));
            for want in [true, false] {
                partition.push(
                    (0..cfg.nodes())
                        .filter(|i| side[*i] == want)
                        .map(|i| peers[i])
                        .collect(),
                );
            }
            faults.push((cfg.fault_start_ms, Fault::PartitionStart));
            faults.push((cfg.fault_start_ms + cfg.partition_ms, Fault::PartitionHeal));
        }
        for (k, node) in crashing.iter().enumerate() {
            let at = cfg.fault_start_ms + 1_000 * k as u64;
            faults.push((at, Fault::Crash(*node)));
            faults.push((at + cfg.crash_ms, Fault::Restart(*node)));
        }
        faults.sort_by_key(|(at, _)| *at);
        Ok(Self {
            cfg,
            clock,
            hubs,
            nodes,
            observer,
            faults,
            partition,
            rng,
            crashes: 0,
            forged: 0,
            forged_offered: 0,
            forged_admitted: 0,
            unpayable_offered: 0,
            unpayable_admitted: 0,
            reconfiguration,
            entered: Default::default(),
            first_block_ms: [None; 2],
            transition_stuck_max_s: 0,
            transition_deadlocked: BTreeSet::new(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        self.clock.monotonic_ms() - SIM_EPOCH_MS
    }

    async fn sleep_until(&self, at_ms: u64) {
        tokio::time::sleep_until(self.clock.instant_at(SIM_EPOCH_MS + at_ms)).await;
    }

    fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Crash(i) => {
                self.crashes += 1;
                self.nodes[usize::from(i)].crash();
            }
            Fault::Restart(i) => self.nodes[usize::from(i)].start()?,
            Fault::PartitionStart => {
                for hub in &self.hubs {
                    hub.faults().partition(self.partition.clone())?;
                }
            }
            Fault::PartitionHeal => {
                for hub in &self.hubs {
                    hub.faults().heal();
                }
            }
        }
        Ok(())
    }

    /// The `chain` APIs of the running validators still in the set (clients may
    /// pick any of them).
    fn targets(&self, chain: ChainId) -> Vec<Arc<dyn ChainApi>> {
        self.nodes
            .iter()
            .filter(|n| n.left(chain).is_none() && !n.joining(chain))
            .filter_map(|n| n.api(chain))
            .collect()
    }

    fn observer_api(&self, chain: ChainId) -> Arc<dyn ChainApi> {
        self.nodes[usize::from(self.observer)]
            .api(chain)
            .expect("the observer never crashes")
    }

    async fn run(mut self) -> anyhow::Result<RunResult> {
        for node in &mut self.nodes {
            node.start()?;
        }
        // Delta transfers at the offered rate; Alpha sAX locks at 1% of it (at least
        // one a second), so Alpha executes real transactions under the same faults.
        let mut clients =
            ChainId::ALL.map(|c| Clients::new(c, self.cfg.accounts, self.cfg.retry_ms));
        let rates = ChainId::ALL.map(|c| match c {
            ChainId::Delta => self.cfg.tps,
            ChainId::Alpha => (self.cfg.tps / 100).max(u64::from(self.cfg.tps > 0)),
        });
        let mut client_rng = ChaCha8Rng::seed_from_u64(self.rng.random());
        let mut flow = GovernanceFlow::new(self.rng.random_range(1..1_000_000));
        let mut liveness = Vec::new();
        let faults_end = self.cfg.faults_end_ms();
        let load_end = self.cfg.load_ms;
        let mut next_fault = 0;
        let mut now = 0;
        loop {
            while let Some(&(at, fault)) = self.faults.get(next_fault)
                && at <= now
            {
                self.apply(fault)?;
                next_fault += 1;
            }
            for chain in ChainId::ALL {
                let clients = &mut clients[slot(chain)];
                let targets = self.targets(chain);
                if (1_000..load_end).contains(&now) {
                    let rate = rates[slot(chain)];
                    clients.offer(now, rate, CLIENT_TICK_MS, &targets, &mut client_rng);
                }
                clients.retry(now, &targets);
                clients.observe(now, self.observer_api(chain).as_ref());
            }
            if now.is_multiple_of(FLOW_TICK_MS) {
                self.step_flow(&mut flow, now);
                self.step_reconfiguration(now);
            }
            self.note_epochs(now);
            if now.is_multiple_of(FORGE_EVERY_MS) && (1_000..load_end).contains(&now) {
                self.relay_forgeries();
                self.offer_unpayable();
            }
            if now >= load_end && now >= faults_end && next_fault == self.faults.len() {
                let in_flight: usize = clients.iter().map(Clients::in_flight).sum();
                if in_flight == 0 && flow.done() && self.reconfiguration.done() {
                    break;
                }
                let drained = now >= load_end.max(faults_end) + self.cfg.drain_ms;
                let flow_over = now >= load_end.max(faults_end) + self.cfg.drain_ms + FLOW_EXTRA_MS;
                if (drained && in_flight > 0) || flow_over {
                    if in_flight > 0 {
                        liveness.push(format!(
                            "{in_flight} transactions still not committed {} s after the load and faults ended",
                            self.cfg.drain_ms / 1000
                        ));
                    }
                    if !flow.done() {
                        liveness.push(format!(
                            "the governance flow stuck at {:?} {} s after the load and faults ended (reached: {:?})",
                            flow.stage(),
                            (self.cfg.drain_ms + FLOW_EXTRA_MS) / 1000,
                            flow.reached
                        ));
                    }
                    if !self.reconfiguration.done() {
                        liveness.push(format!(
                            "{} of {} validator-set changes applied, and the final set through a boundary of its own, not done {} s after the load and faults ended (left so far: {:?}; joined: {:?})",
                            self.reconfiguration.applied(),
                            self.cfg.reconfigure.len(),
                            (self.cfg.drain_ms + FLOW_EXTRA_MS) / 1000,
                            self.reconfiguration.left,
                            self.reconfiguration.joined
                        ));
                    }
                    break;
                }
            }
            now += CLIENT_TICK_MS;
            self.sleep_until(now).await;
        }
        self.settle(&mut liveness).await;
        for node in &self.nodes {
            if node.honest() {
                liveness.extend(node.failures());
            }
        }
        let virtual_ms = self.elapsed_ms();
        // Read from the running validators' metrics, before they stop.
        let evidence = self.evidence_at_honest_min();
        for node in &mut self.nodes {
            node.stop().await;
        }
        Ok(self.check(clients, flow, liveness, virtual_ms, evidence))
    }

    /// Every honest validator reaches the observer's heights on both chains (the
    /// heights it had when the run stopped); and, when at least three Delta block
    /// times passed after the last fault, Delta sealed at least one block.
    async fn settle(&mut self, liveness: &mut Vec<String>) {
        let observer = usize::from(self.observer);
        let target = ChainId::ALL.map(|c| self.nodes[observer].height(c));
        let lagging = |sim: &Self| -> Vec<String> {
            sim.nodes
                .iter()
                .filter(|n| n.honest())
                .flat_map(|n| {
                    ChainId::ALL.into_iter().filter_map(move |c| {
                        let h = n.height(c);
                        (h < target[slot(c)] && n.left(c).is_none()).then(|| {
                            format!("validator {} {c} at {h} of {}", n.index, target[slot(c)])
                        })
                    })
                })
                .collect()
        };
        liveness.extend(
            self.settle_until("not every honest validator caught up", 200, lagging)
                .await,
        );
        self.settle_records(liveness).await;
        self.settle_leavers(liveness).await;
        self.settle_transitions(liveness).await;
        let end = self.cfg.faults_end_ms();
        let delta_blocks_after_faults =
            self.elapsed_ms().saturating_sub(end) / self.cfg.delta_block_ms;
        if delta_blocks_after_faults >= 3 && target[slot(ChainId::Delta)] == 0 {
            liveness.push("the Delta chain sealed no block at all".into());
        }
    }

    /// The epoch schedule of the simulated genesis.
    fn epoch_schedule(&self) -> EpochSchedule {
        EpochSchedule::new(self.cfg.epoch_length_alpha_blocks)
    }

    /// Every honest validator's Delta holds a stake for every lock its Alpha holds
    /// and entered the epoch its Alpha entered (the last locks' and sets'
    /// attestations are on their way when the load stops).
    async fn settle_records(&mut self, liveness: &mut Vec<String>) {
        let schedule = self.epoch_schedule();
        let unattested = |sim: &Self| -> Vec<String> {
            let mut ignored = Vec::new();
            sim.members()
                .filter_map(|n| {
                    let stores = (
                        n.seams.stores[slot(ChainId::Alpha)].as_ref(),
                        n.seams.stores[slot(ChainId::Delta)].as_ref(),
                    );
                    let agreement =
                        checks::check_records(n.index, stores.0, stores.1, &mut ignored);
                    let epochs = checks::check_epochs(n.index, stores, schedule, &mut ignored);
                    (agreement.unattested > 0 || epochs.delta < epochs.alpha).then(|| {
                        format!(
                            "validator {}: {} locks, Delta in epoch {} of Alpha's {}",
                            n.index, agreement.unattested, epochs.delta, epochs.alpha
                        )
                    })
                })
                .collect()
        };
        liveness.extend(
            self.settle_until(
                "sAX locks or validator sets not attested on Delta",
                500,
                unattested,
            )
            .await,
        );
    }

    /// Polls `pending` (what is still missing) every `poll_ms` of simulated time
    /// until it is empty or [`SETTLE_MS`] passed; then the failure, if any.
    async fn settle_until(
        &mut self,
        what: &str,
        poll_ms: u64,
        pending: impl Fn(&Self) -> Vec<String>,
    ) -> Option<String> {
        let deadline = self.elapsed_ms() + SETTLE_MS;
        loop {
            self.note_epochs(self.elapsed_ms());
            let missing = pending(self);
            if missing.is_empty() {
                return None;
            }
            if self.elapsed_ms() >= deadline {
                return Some(format!(
                    "{what} within {} s of the settle: {}",
                    SETTLE_MS / 1000,
                    missing.join(", ")
                ));
            }
            self.sleep_until(self.elapsed_ms() + poll_ms).await;
        }
    }

    /// The honest validators that stay in the set all run long (leavers' chains
    /// stop at their boundaries, with records behind the others').
    fn members(&self) -> impl Iterator<Item = &SimNode> {
        let leavers: BTreeSet<ValidatorIndex> = self.reconfiguration.leavers().collect();
        self.nodes
            .iter()
            .filter(move |n| n.honest() && !leavers.contains(&n.index))
    }

    /// Every validator that left stopped both chains exactly where its set left it
    /// out: Alpha at the epoch the change took effect, Delta when it applied that
    /// epoch's set (its attestation may take a while after the settle).
    async fn settle_leavers(&mut self, liveness: &mut Vec<String>) {
        let wrong = |sim: &Self| -> Vec<String> {
            sim.reconfiguration
                .left
                .iter()
                .flat_map(|(&index, &epoch)| {
                    let node = &sim.nodes[usize::from(index)];
                    ChainId::ALL.into_iter().filter_map(move |chain| {
                        let left = node.left(chain);
                        (left != Some(epoch)).then(|| {
                            format!(
                                "validator {index} {chain} left at {left:?}, not at epoch {epoch}"
                            )
                        })
                    })
                })
                .collect()
        };
        liveness.extend(
            self.settle_until("leavers did not stop at their boundary", 500, wrong)
                .await,
        );
    }

    /// Notes when the observer's consensus of each chain first ran its epoch, and
    /// what honest validators' epoch transitions report.
    fn note_epochs(&mut self, now: u64) {
        for node in self.nodes.iter().filter(|n| n.honest()) {
            let Some(running) = &node.running else {
                continue;
            };
            // One transition per node: both chains carry the same gauges.
            let metrics = &running.contexts[slot(ChainId::Alpha)].metrics;
            let stuck = metrics.epoch_transition_stuck_seconds.get() as u64;
            self.transition_stuck_max_s = self.transition_stuck_max_s.max(stuck);
            if metrics.epoch_transition_deadlocked.get() != 0 {
                self.transition_deadlocked.insert(node.index);
            }
        }
        let Some(running) = &self.nodes[usize::from(self.observer)].running else {
            return;
        };
        for chain in ChainId::ALL {
            let ctx = &running.contexts[slot(chain)];
            let epoch = ctx.metrics.epoch.get() as u64;
            self.entered[slot(chain)].entry(epoch).or_insert(now);
            let first = &mut self.first_block_ms[slot(chain)];
            if first.is_none() && ctx.head().height > 0 {
                *first = Some(now);
            }
        }
    }

    /// Every honest validator that stays in the set has both chains at the same
    /// boundary (its relays no longer paused) and no transition it cannot complete.
    async fn settle_transitions(&mut self, liveness: &mut Vec<String>) {
        let unfinished = |sim: &Self| -> Vec<String> {
            sim.members()
                .filter_map(|n| {
                    let running = n.running.as_ref()?;
                    let ctx = &running.contexts[slot(ChainId::Alpha)];
                    let paused = ctx
                        .cross_chain_paused
                        .load(std::sync::atomic::Ordering::Acquire);
                    (paused || ctx.metrics.epoch_transition_deadlocked.get() != 0)
                        .then(|| format!("validator {}: {}", n.index, ctx.health().reason))
                })
                .collect()
        };
        liveness.extend(
            self.settle_until(
                "epoch transitions did not reach both chains",
                500,
                unfinished,
            )
            .await,
        );
    }

    /// For each epoch both of the observer's chains entered after genesis, when its
    /// Alpha entered it (the boundary block executed) and when its Delta did (the
    /// set's attestation executed), simulated ms (to one poll: 20 ms under load, up
    /// to 500 ms while settling).
    fn transitions(&self) -> Vec<(u64, u64)> {
        let [alpha, delta] = &self.entered;
        alpha
            .iter()
            .filter(|(epoch, _)| **epoch > 0)
            .filter_map(|(epoch, at)| Some((*at, *delta.get(epoch)?)))
            .collect()
    }

    /// How long each of [`Simulation::transitions`] took.
    fn transitions_ms(&self) -> Vec<u64> {
        self.transitions()
            .into_iter()
            .map(|(alpha, delta)| delta.saturating_sub(alpha))
            .collect()
    }

    /// The observer's Delta `blocks` counted into [`DeltaSlots`].
    fn delta_slots(&self, blocks: &[Block]) -> DeltaSlots {
        let block_ms = self.cfg.delta_block_ms;
        let windows: Vec<(u64, u64)> = self
            .transitions()
            .into_iter()
            .map(|(alpha, delta)| (alpha, delta + block_ms))
            .collect();
        // Whether each slot under load carried a transaction (several blocks may
        // share a slot).
        let mut slots: BTreeMap<u64, bool> = BTreeMap::new();
        let steady = 2_000..self.cfg.load_ms;
        for block in blocks {
            let at = block.header.timestamp_ms.saturating_sub(SIM_EPOCH_MS);
            if steady.contains(&at) {
                *slots.entry(block.header.slot).or_default() |= block.header.tx_count > 0;
            }
        }
        let mut counted = DeltaSlots::default();
        for (&slot_number, &carried) in &slots {
            let at = (slot_number * block_ms).saturating_sub(SIM_EPOCH_MS);
            let in_transition = windows.iter().any(|(from, to)| (*from..=*to).contains(&at));
            let (total, missed) = if in_transition {
                (
                    &mut counted.in_transitions,
                    &mut counted.missed_in_transitions,
                )
            } else {
                (&mut counted.elsewhere, &mut counted.missed_elsewhere)
            };
            *total += 1;
            *missed += u64::from(!carried);
        }
        counted
    }

    /// One step of the planned leaves against the observer's Alpha.
    fn step_reconfiguration(&mut self, now: u64) {
        if self.reconfiguration.done() {
            return;
        }
        let observer = &self.nodes[usize::from(self.observer)];
        let Some(target) = observer.api(ChainId::Alpha) else {
            return;
        };
        let keys: Vec<Arc<ValidatorKeypair>> =
            self.nodes.iter().map(|n| n.identity.key.clone()).collect();
        let view = ReconfigureView {
            alpha: &observer.seams.stores[slot(ChainId::Alpha)],
            target: target.as_ref(),
            keys: &keys,
            network: observer.identity.network(),
        };
        self.reconfiguration.step(now, &view);
    }

    /// Each running Byzantine validator makes two forged lock attestations
    /// ([`forgery`]) from its own account, with the right nonce so they reach the
    /// attestation checks. It offers them to an honest validator's Delta API, whose
    /// admission must refuse them; then the simulator plants them past admission, in
    /// its own mempool and in that honest validator's, as a proposer that skips
    /// admission would carry them (a Byzantine proposer's vertices alone rarely commit
    /// when it withholds or equivocates), so every honest executor meets them.
    fn relay_forgeries(&mut self) {
        let now = AdmissionTime::from_micros(self.elapsed_ms().saturating_mul(1000));
        let (mut sent, mut offered, mut admitted) = (0, 0, 0);
        for node in self.nodes.iter().filter(|n| !n.honest()) {
            let Some(running) = &node.running else {
                continue;
            };
            let Some((_, target)) = self.honest_target(node) else {
                break;
            };
            let api = &target.apis[slot(ChainId::Delta)];
            let mempool = &target.contexts[slot(ChainId::Delta)].mempool;
            let forger = forgery::forger_address(node.index);
            let own = &running.contexts[slot(ChainId::Delta)].mempool;
            let mut nonce = node.seams.stores[slot(ChainId::Delta)].next_nonce(&forger);
            for attestation in Self::forgeries(node, running, forger) {
                let tx = Transaction {
                    chain: ChainId::Delta,
                    sender: forger,
                    nonce,
                    fee: 0,
                    payload: TxPayload::CrossChain(CrossChainOp::Attest(Box::new(attestation))),
                }
                .unsigned();
                offered += 1;
                let admission = api.submit(&[bytes::Bytes::from(tx.to_canonical_bytes())]);
                if admission
                    .first()
                    .is_some_and(|a| a.status == dualchain_api::AdmissionStatus::Accepted)
                {
                    admitted += 1;
                }
                let planted_own = own.admit(tx.clone(), Verdict::Valid, now).is_ok();
                let planted_honest = mempool.admit(tx, Verdict::Valid, now).is_ok();
                if planted_own || planted_honest {
                    sent += 1;
                    nonce += 1;
                }
            }
        }
        self.forged += sent;
        self.forged_offered += offered;
        self.forged_admitted += admitted;
    }

    /// Each running Byzantine validator offers an honest validator's Delta API
    /// transactions that could only fail, paying nothing: transfers from accounts
    /// that do not exist (valid transactions: the network takes unsigned ones), and a
    /// client's transfer at a nonce it already spent, with an amount no client sends
    /// (a new digest, so no recent-digest set can know it). Admission against state
    /// must refuse every one.
    fn offer_unpayable(&mut self) {
        let (mut offered, mut admitted) = (0, 0);
        for node in self
            .nodes
            .iter()
            .filter(|n| !n.honest() && n.running.is_some())
        {
            let Some((target, running)) = self.honest_target(node) else {
                break;
            };
            let mut batch: Vec<SignedTransaction> = (0..UNPAYABLE_PER_ROUND)
                .map(|k| {
                    let sender = forgery::spammer_address(node.index, self.unpayable_offered + k);
                    transfer(sender, 0, forgery::forger_address(node.index), 1)
                })
                .collect();
            let client = account_address(usize::from(node.index) % self.cfg.accounts.max(1));
            let spent = target.seams.stores[slot(ChainId::Delta)]
                .next_nonce(&client)
                .checked_sub(1);
            if let Some(nonce) = spent {
                batch.push(transfer(
                    client,
                    nonce,
                    forgery::forger_address(node.index),
                    1_001,
                ));
            }
            let bytes: Vec<bytes::Bytes> = batch
                .iter()
                .map(|tx| bytes::Bytes::from(tx.to_canonical_bytes()))
                .collect();
            offered += bytes.len() as u64;
            admitted += running.apis[slot(ChainId::Delta)]
                .submit(&bytes)
                .iter()
                .filter(|a| a.status == dualchain_api::AdmissionStatus::Accepted)
                .count() as u64;
        }
        self.unpayable_offered += offered;
        self.unpayable_admitted += admitted;
    }

    /// The running honest validator Byzantine `node` sends its bad transactions to
    /// (spread over the honest ones by index), with its incarnation.
    fn honest_target(&self, node: &SimNode) -> Option<(&SimNode, &Incarnation)> {
        let honest: Vec<&SimNode> = self
            .nodes
            .iter()
            .filter(|n| n.honest() && n.running.is_some() && n.left(ChainId::Delta).is_none())
            .collect();
        let target = *honest.get(usize::from(node.index) % honest.len().max(1))?;
        Some((target, target.running.as_ref()?))
    }

    /// A tampered copy of a recent real attestation (when there is one) and an
    /// invented one signed by the Byzantine validator alone.
    fn forgeries(node: &SimNode, running: &Incarnation, forger: Address) -> Vec<Attestation> {
        let alpha = &running.contexts[slot(ChainId::Alpha)];
        let head = alpha.head().height;
        let real = alpha.live().reader.clone().and_then(|reader| {
            (head.saturating_sub(5)..=head)
                .rev()
                .filter_map(|h| reader.attestations_at(h).ok().flatten())
                .find_map(|list| list.into_iter().next())
        });
        let mut forged: Vec<Attestation> = real
            .and_then(|real| forgery::tampered(&real, forger))
            .into_iter()
            .collect();
        forged.push(forgery::invented(
            (&node.identity.key, node.identity.network()),
            node.index,
            forger,
            head + 1,
            1_000_000_000_000_000,
        ));
        forged
    }

    /// One step of the governance flow against the observer's state.
    fn step_flow(&self, flow: &mut GovernanceFlow, now: u64) {
        let observer = &self.nodes[usize::from(self.observer)];
        let Some(running) = &observer.running else {
            return;
        };
        let targets = ChainId::ALL.map(|c| self.targets(c));
        let view = FlowView {
            alpha: &observer.seams.stores[slot(ChainId::Alpha)],
            delta: &observer.seams.stores[slot(ChainId::Delta)],
            delta_time_ms: running.contexts[slot(ChainId::Delta)]
                .head()
                .block_timestamp_ms,
            targets: [&targets[0], &targets[1]],
        };
        flow.step(now, &view);
    }

    /// Per chain, the fewest proofs of misbehaviour a running honest validator
    /// recorded since its start.
    fn evidence_at_honest_min(&self) -> [u64; 2] {
        let mut min = [u64::MAX; 2];
        for node in self.members() {
            for chain in ChainId::ALL {
                let recorded = node.running.as_ref().map_or(0, |running| {
                    running.contexts[slot(chain)]
                        .metrics
                        .evidence_recorded
                        .get()
                });
                min[slot(chain)] = min[slot(chain)].min(recorded);
            }
        }
        min
    }

    fn check(
        &self,
        clients: [Clients; 2],
        flow: GovernanceFlow,
        mut liveness: Vec<String>,
        virtual_ms: u64,
        evidence_at_honest_min: [u64; 2],
    ) -> RunResult {
        let mut findings = Findings::default();
        let mut views: [Vec<checks::ChainView>; 2] = [Vec::new(), Vec::new()];
        for node in self.nodes.iter().filter(|n| n.honest()) {
            for chain in ChainId::ALL {
                if let Some(view) = checks::read_chain(
                    node.index,
                    chain,
                    &node.seams.stores[slot(chain)],
                    (&node.identity.validators, node.identity.network()),
                    &mut findings,
                ) {
                    views[slot(chain)].push(checks::ChainView {
                        stopped: self.reconfiguration.left.contains_key(&node.index),
                        ..view
                    });
                }
            }
        }
        for chain in ChainId::ALL {
            checks::check_chain(
                chain,
                &views[slot(chain)],
                CERTIFICATE_MARGIN,
                &mut findings,
            );
        }
        let delta_slots = views[slot(ChainId::Delta)]
            .iter()
            .find(|v| v.node == self.observer)
            .map(|v| self.delta_slots(&v.blocks))
            .unwrap_or_default();
        let mut safety = std::mem::take(&mut findings.safety);
        safety.extend(flow.unexpected.iter().cloned());
        safety.extend(self.reconfiguration.unexpected.iter().cloned());
        let mut records: Option<checks::RecordsAgreement> = None;
        let mut epochs: Option<checks::EpochsAgreement> = None;
        for node in self.members() {
            let agreement = checks::check_records(
                node.index,
                node.seams.stores[slot(ChainId::Alpha)].as_ref(),
                node.seams.stores[slot(ChainId::Delta)].as_ref(),
                &mut safety,
            );
            if records.is_none_or(|r| agreement.stakes < r.stakes) {
                records = Some(agreement);
            }
            let entered = checks::check_epochs(
                node.index,
                (
                    node.seams.stores[slot(ChainId::Alpha)].as_ref(),
                    node.seams.stores[slot(ChainId::Delta)].as_ref(),
                ),
                self.epoch_schedule(),
                &mut safety,
            );
            if epochs.is_none_or(|e| entered.delta < e.delta) {
                epochs = Some(entered);
            }
        }
        // Not the clients': the validators' relay accounts, the flow's stakers, the
        // leavers' set-change accounts and the joiners' sponsors.
        let relayers: BTreeSet<Address> = self
            .nodes
            .iter()
            .map(|n| Address::of(relay::relay_keypair(&n.identity.key).public()))
            .chain((0..flow::STAKERS).map(flow::staker_address))
            .chain(
                self.nodes
                    .iter()
                    .map(|n| Address::of(set_change_keypair(&n.identity.key).public())),
            )
            .chain(join_sponsors(&self.cfg))
            .collect();
        let mut trace = checks::Trace::new(&[&views[0], &views[1]]);
        trace.count("virtual ms", virtual_ms);
        let mut failed_receipts_checked = 0;
        for chain in ChainId::ALL {
            let clients = &clients[slot(chain)];
            if let Some(longest) = views[slot(chain)].iter().max_by_key(|v| v.blocks.len()) {
                checks::check_exactly_once(&clients.accepted, longest, &relayers, &mut findings);
            }
            let stats = &clients.stats;
            if let Some(observer) = views[slot(chain)].iter().find(|v| v.node == self.observer) {
                let failed = checks::check_failed_positions(
                    &stats.failed_positions,
                    clients.observed_height(),
                    observer,
                    &mut safety,
                );
                trace.count(format!("{chain} failed receipts observed"), failed);
                failed_receipts_checked += failed;
            }
            safety.extend(stats.unexpected_rejections.iter().cloned());
            if stats.submitted > 0 && stats.committed == 0 {
                liveness.push(format!("no {chain} transaction was committed"));
            }
            for (name, value) in [
                ("submitted", stats.submitted),
                ("committed", stats.committed),
                ("resubmissions", stats.resubmissions),
                ("backlogged", stats.backlogged),
                ("latency sum ms", stats.latencies_ms.iter().sum()),
            ] {
                trace.count(format!("{chain} {name}"), value);
            }
        }
        let forgers: BTreeSet<Address> = self
            .nodes
            .iter()
            .filter(|n| !n.honest())
            .map(|n| forgery::forger_address(n.index))
            .collect();
        let mut forged_refused = 0;
        if let Some(longest) = views[slot(ChainId::Delta)]
            .iter()
            .max_by_key(|v| v.blocks.len())
        {
            for (block, receipts) in longest.blocks.iter().zip(&longest.receipts) {
                for (tx, receipt) in block.body.transactions.iter().zip(receipts) {
                    if !forgers.contains(&tx.tx().sender) {
                        continue;
                    }
                    // Failing before the payload (a stale nonce when two forgeries
                    // overtake each other) is a refusal too; only success is wrong.
                    match &receipt.status {
                        ReceiptStatus::Failed(FailureReason::CrossChain(
                            CrossChainFailure::Attestation(_),
                        )) => forged_refused += 1,
                        ReceiptStatus::Failed(_) => {}
                        ReceiptStatus::Success => safety.push(format!(
                            "a forged attestation of validator {:?} was applied",
                            tx.tx().sender
                        )),
                    }
                }
            }
        }
        trace.count("forged attestations refused", forged_refused);
        for (index, epoch) in &self.reconfiguration.left {
            trace.count(format!("validator {index} left at epoch"), *epoch);
        }
        for (stage, at) in &flow.reached {
            trace.count(format!("flow stage {} reached at ms", *stage as u64), *at);
        }
        let [alpha_clients, delta_clients] = clients;
        let (mut reports_against_honest, mut reports_against_byzantine) = (0, 0);
        for node in &self.nodes {
            let peer = PeerId::of(node.identity.key.public());
            let reports: u64 = self.hubs.iter().map(|h| h.reports_against(&peer)).sum();
            if node.honest() {
                reports_against_honest += reports;
            } else {
                reports_against_byzantine += reports;
            }
        }
        RunResult {
            evidence_at_honest_min,
            seed: self.cfg.seed,
            safety_violations: safety,
            liveness_failures: liveness,
            exactly_once_violations: findings.exactly_once,
            certificate_failures: findings.certificates,
            trace,
            virtual_ms,
            clients: delta_clients.stats,
            alpha_clients: alpha_clients.stats,
            min_heights: findings.min_heights,
            crashes: self.crashes,
            forged_attestations: self.forged,
            forged_offered: self.forged_offered,
            forged_admitted: self.forged_admitted,
            forged_refused,
            failed_receipts_checked,
            unpayable_offered: self.unpayable_offered,
            unpayable_admitted: self.unpayable_admitted,
            reports_against_honest,
            reports_against_byzantine,
            behaviours: self.nodes.iter().filter_map(|n| n.behaviour).collect(),
            records: records.unwrap_or_default(),
            epochs: epochs.unwrap_or_default(),
            flow: flow.reached,
            set_changes_applied: self.reconfiguration.applied(),
            validators_left: self.reconfiguration.left.len(),
            validators_joined: self.reconfiguration.joined.len(),
            transitions_ms: self.transitions_ms(),
            transition_stuck_max_s: self.transition_stuck_max_s,
            transition_deadlocks: self.transition_deadlocked.len(),
            delta_slots,
            first_block_ms: self.first_block_ms,
        }
    }
}
