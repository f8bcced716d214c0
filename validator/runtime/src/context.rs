//! What one chain's tasks share with each other and with the API: identity, mempool,
//! verifiers, live status, the finality feed, pause and fault switches.
//!
//! The chain's task group (driver, executor, transport) can fail and be restarted by
//! the supervisor; everything here outlives a restart, so the API keeps answering
//! (with `NOT_SERVING` readiness) while the chain recovers, and transactions admitted
//! to the mempool wait for the chain to come back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dualchain_api::{ChainStatus, FaultPlan, FinalizedBlock, Health, OrderedCommit};
use dualchain_consensus::{CommittedSubDag, SharedVerdictCache};
use dualchain_core::Digest;
use dualchain_core::chain_store::ChainReader;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::{
    ChainId, Genesis, SignedTransaction, ValidatorIndex, ValidatorSet, set_digest,
};
use dualchain_execution::{Executor, SignatureVerifier};
use dualchain_mempool::{AdmissionTime, Batch, Envelope, Mempool, encoded_len};
use dualchain_net::{FaultInjector, PeerId};
use tokio::sync::{broadcast, mpsc};

use crate::admission_gate::AdmissionGate;
use crate::clock::Clock;
use crate::executor::ExecCommand;
use crate::metrics::{ChainMetrics, RegistrySlot};
use crate::seams::Seams;

/// Finality events buffered per subscriber before it counts as lagging.
pub const FINALITY_CHANNEL_CAPACITY: usize = 1_024;
/// Commits buffered per ordering subscriber before it counts as lagging (and
/// loses commits: they are not replayable). A commit holds 32 bytes per
/// transaction, so this bounds what a slow subscriber pins.
pub const ORDERING_CHANNEL_CAPACITY: usize = 256;

/// Identity and parameters every chain of the node shares.
pub struct NodeIdentity {
    pub genesis: Arc<Genesis>,
    pub genesis_digest: Digest,
    /// The genesis set.
    pub validators: Arc<ValidatorSet>,
    /// Our index in the genesis set (`None`: a validator that joins a running
    /// network, `dualchain run --join`).
    pub me: Option<ValidatorIndex>,
    pub key: Arc<ValidatorKeypair>,
    /// Alpha's current set and pending joiners, as this process's Alpha chain last
    /// committed them (see [`crate::membership`]).
    pub expected: crate::membership::ExpectedMembers,
}

impl NodeIdentity {
    /// The network every signature of this node is bound to: the genesis hash.
    pub fn network(&self) -> NetworkId {
        NetworkId(self.genesis_digest)
    }
}

/// Newest committed block, as the status reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Head {
    pub height: u64,
    pub digest: Digest,
    pub state_root: Digest,
    /// The head block's epoch (0 at genesis).
    pub epoch: u64,
    pub block_timestamp_ms: u64,
    /// Unix ms when this node committed it; 0 before the first block.
    pub committed_at_unix_ms: u64,
}

/// Handles that exist only while the chain's task group runs.
pub struct Live<E: dualchain_storage::KvEngine> {
    pub reader: Option<ChainReader<E>>,
    pub exec: Option<mpsc::Sender<ExecCommand>>,
    pub faults: Option<Arc<FaultInjector>>,
}

impl<E: dualchain_storage::KvEngine> Default for Live<E> {
    fn default() -> Self {
        Self {
            reader: None,
            exec: None,
            faults: None,
        }
    }
}

/// Why the chain is not simply healthy.
#[derive(Clone, Debug)]
pub struct HealthView {
    pub health: Health,
    pub reason: String,
}

/// One chain of one validator: everything that outlives a restart of its tasks.
pub struct ChainContext<S: Seams> {
    pub chain: ChainId,
    pub identity: Arc<NodeIdentity>,
    pub peer_id: PeerId,
    pub seams: Arc<S>,
    pub clock: Arc<S::Clock>,
    pub mempool: Arc<Mempool>,
    pub verifier: Arc<SignatureVerifier>,
    /// Refuses early what the chain could not order in time (the API asks, the driver
    /// reports what it proposed).
    pub gate: AdmissionGate,
    pub executor: Arc<Executor>,
    /// Vertex signature verdicts (filled off the event loop, read by the engine).
    pub vertex_verdicts: SharedVerdictCache,
    pub metrics: ChainMetrics,
    /// The Avalanche rule's metrics (the driver advances them; zero under DAG-BFT).
    pub avalanche_metrics: Mutex<crate::avalanche_metrics::AvalancheMetrics>,
    /// Whether the Avalanche rule sees a partition (more than half of its latest
    /// queries timed out): the health monitor reports the chain degraded.
    pub partitioned: AtomicBool,
    /// The transport's registry of the current run (swapped on restart).
    pub net_registry: RegistrySlot,
    pub started_at_unix_ms: u64,
    pub block_time_ms: u64,
    /// Where snapshots go (`None`: snapshots are refused, as in the simulator).
    pub snapshot_dir: Option<PathBuf>,
    /// Take a snapshot every this many blocks (0: only on request).
    pub snapshot_interval_blocks: u64,
    /// See [`crate::chain::ChainOptions::consensus_window_ms`].
    pub consensus_window_ms: u64,
    /// How the chain starts when its data directory is empty.
    pub bootstrap: crate::state_sync::Bootstrap,
    pub finality: broadcast::Sender<FinalizedBlock>,
    /// Consensus commits as they happen (`Node.StreamOrdering`).
    pub ordering: broadcast::Sender<Arc<OrderedCommit>>,
    pub head: Mutex<Head>,
    pub round: AtomicU64,
    pub connected_peers: AtomicU64,
    /// Stake of the current committee this node reaches: its own and that of the
    /// members connected to it (the epoch transition's quorum check).
    pub reachable_stake: AtomicU64,
    /// Cross-chain relays hold everything but validator sets: one chain passed an
    /// epoch boundary the other has not reached ([`crate::epoch_transition`], set by
    /// the health monitor).
    pub cross_chain_paused: AtomicBool,
    pub paused: AtomicBool,
    /// Store open and transport started (cleared while the task group restarts).
    pub running: AtomicBool,
    /// Catching up: the newest block we know of is far behind the clock.
    pub catching_up: AtomicBool,
    /// Catching up by block sync (no engine runs; see [`crate::follower`]).
    pub following: AtomicBool,
    /// Set while an empty data directory is filled from a snapshot ([`crate::state_sync`]).
    pub state_syncing: AtomicBool,
    pub restarts: AtomicU64,
    pub last_restart_unix_ms: AtomicU64,
    /// Why the task group last failed (empty before a failure): the health monitor
    /// re-assesses every second, so the reason is kept here for it.
    pub last_failure: Mutex<String>,
    pub health: Mutex<HealthView>,
    /// The validator set the chain's consensus runs now (the genesis set until the
    /// first epoch boundary; then the set of the chain's epoch record).
    /// With its digest (`set_digest`), hashed once per set: the status and the epoch
    /// transition read it every second.
    pub(crate) committee: Mutex<(Arc<ValidatorSet>, Digest)>,
    /// The epoch whose set left this validator out, once the chain stopped there.
    pub left_at_epoch: std::sync::OnceLock<u64>,
    pub live: Mutex<Live<S::Engine>>,
    /// The fault injection in force, as last set through the API.
    pub faults: Mutex<FaultPlan>,
    /// Bumped on every fault change, so an expiry timer only clears its own setting.
    pub faults_generation: AtomicU64,
    /// Milliseconds this chain's wall clock is set off by (a `clock_skew_ms` fault):
    /// added to every Unix time it reads through [`ChainContext::unix_ms`].
    pub clock_skew_ms: AtomicI64,
}

/// Gives transactions the chain took from its mempool but will not commit back to
/// it, each with its admission time if `admitted_at` knows it (else now), so they keep
/// their place (the mempool may refuse some: full, or known by now; the count is
/// logged).
pub fn reinstate<S: Seams>(
    ctx: &ChainContext<S>,
    transactions: Vec<SignedTransaction>,
    admitted_at: impl Fn(&Digest) -> Option<AdmissionTime>,
) {
    if transactions.is_empty() {
        return;
    }
    let now = AdmissionTime::from_micros(ctx.clock.monotonic_ms().saturating_mul(1000));
    let envelopes: Vec<Envelope> = transactions
        .into_iter()
        .map(|tx| Envelope {
            admitted_at: admitted_at(&tx.digest()).unwrap_or(now),
            encoded_len: encoded_len(&tx),
            tx,
        })
        .collect();
    let bytes = envelopes.iter().map(|e| e.encoded_len).sum();
    let count = envelopes.len();
    let refused = ctx
        .mempool
        .reinstate(Batch { envelopes, bytes })
        .into_iter()
        .filter(Result::is_err)
        .count();
    tracing::info!(
        chain = %ctx.chain,
        count,
        refused,
        "transactions given back to the mempool"
    );
}

/// Why a chain that left the set is stopped (health detail, refused submissions).
pub fn left_set_reason(chain: ChainId, epoch: u64) -> String {
    format!(
        "this validator is not in the {chain} validator set of epoch {epoch} (it left): \
         the chain runs no further here; its blocks up to the boundary stay readable; \
         submit transactions to a member"
    )
}

/// Why a joining validator's chain takes no transactions and runs no consensus yet.
pub fn joining_reason(chain: ChainId, epoch: u64) -> String {
    format!(
        "this validator is not in the {chain} validator set of epoch {epoch} yet (it is joining): \
         the chain follows by block sync and votes from the first epoch whose set holds it; \
         submit transactions to a member"
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Seams> ChainContext<S> {
    pub fn genesis(&self) -> &Genesis {
        &self.identity.genesis
    }

    /// The genesis validator set (epoch 0).
    pub fn validators(&self) -> &Arc<ValidatorSet> {
        &self.identity.validators
    }

    /// The set the chain's consensus runs now.
    pub fn committee(&self) -> Arc<ValidatorSet> {
        lock(&self.committee).0.clone()
    }

    /// The set the chain's consensus runs now and its digest.
    pub fn committee_with_digest(&self) -> (Arc<ValidatorSet>, Digest) {
        lock(&self.committee).clone()
    }

    /// The chain's consensus runs `set` from now on (the epoch gauge follows).
    pub fn set_committee(&self, set: Arc<ValidatorSet>) {
        self.metrics.epoch.set(set.epoch() as i64);
        let digest = set_digest(&set);
        *lock(&self.committee) = (set, digest);
    }

    /// Our index in the genesis set, if we are in it (the current set's is
    /// `committee().index_of(key().public())`).
    pub fn me(&self) -> Option<ValidatorIndex> {
        self.identity.me
    }

    pub fn key(&self) -> &Arc<ValidatorKeypair> {
        &self.identity.key
    }

    pub fn head(&self) -> Head {
        *lock(&self.head)
    }

    /// Tells ordering subscribers, if any, that `subdag`'s transactions are
    /// ordered: their place, and so their result, is fixed from now on (see
    /// `Node.StreamOrdering` for the epoch-end exception). Costs nothing without a
    /// subscriber.
    pub fn publish_ordered(&self, epoch: u64, subdag: &CommittedSubDag, now_unix_ms: u64) {
        if self.ordering.receiver_count() == 0 {
            return;
        }
        let tx_digests = subdag
            .vertices
            .iter()
            .flat_map(|v| v.content().transactions.iter().map(|tx| tx.digest()))
            .collect();
        // No subscriber left since the check is not an error either.
        let _ = self.ordering.send(Arc::new(OrderedCommit {
            epoch,
            sequence: subdag.sequence,
            ordered_at_unix_ms: now_unix_ms,
            commit_timestamp_ms: subdag.timestamp_ms,
            tx_digests,
        }));
    }

    pub fn set_head(&self, head: Head) {
        *lock(&self.head) = head;
    }

    pub fn live(&self) -> MutexGuard<'_, Live<S::Engine>> {
        lock(&self.live)
    }

    pub fn health(&self) -> HealthView {
        lock(&self.health).clone()
    }

    pub fn set_health(&self, health: Health, reason: impl Into<String>) {
        *lock(&self.health) = HealthView {
            health,
            reason: reason.into(),
        };
    }

    pub fn last_failure(&self) -> String {
        lock(&self.last_failure).clone()
    }

    /// Bounded: a failure's chain of causes can be long.
    pub fn set_last_failure(&self, reason: &str) {
        const MAX_CHARS: usize = 1_000;
        *lock(&self.last_failure) = reason.chars().take(MAX_CHARS).collect();
    }

    pub fn faults(&self) -> FaultPlan {
        lock(&self.faults).clone()
    }

    /// Records the fault plan in force; its clock skew takes effect at once (the
    /// transport's faults are the injector's, set by the caller).
    pub fn set_faults(&self, plan: FaultPlan) {
        self.clock_skew_ms
            .store(plan.clock_skew_ms, Ordering::Release);
        *lock(&self.faults) = plan;
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// The epoch whose set left this validator out, if its chain stopped there.
    pub fn left_set(&self) -> Option<u64> {
        self.left_at_epoch.get().copied()
    }

    /// The epoch of the head block, while the chain follows as a joiner whose set
    /// does not hold it yet (`None` once a set holds it, or for a member catching up).
    pub fn joining(&self) -> Option<u64> {
        let outside = self.committee().index_of(self.key().public()).is_none();
        (outside && self.left_set().is_none()).then(|| self.head().epoch)
    }

    /// The chain stops here because the set of `epoch` left this validator out: the
    /// health says so, and so does every refused submission ([`left_set_reason`]).
    pub fn mark_left(&self, epoch: u64) {
        let _ = self.left_at_epoch.set(epoch);
        self.set_health(Health::Stopped, left_set_reason(self.chain, epoch));
    }

    /// Ready for traffic: running, not paused, not catching up.
    pub fn is_ready(&self) -> bool {
        self.is_running() && !self.is_paused() && !self.catching_up.load(Ordering::Acquire)
    }

    /// The chain's wall clock: the node's, off by any injected skew.
    pub fn unix_ms(&self) -> u64 {
        let skew = self.clock_skew_ms.load(Ordering::Acquire);
        self.clock.unix_ms().saturating_add_signed(skew)
    }

    /// Both readings as the chain's engine takes them: monotonic time from the
    /// node's clock, Unix time from [`ChainContext::unix_ms`].
    pub fn now(&self) -> dualchain_consensus::Now {
        dualchain_consensus::Now {
            monotonic_ms: self.clock.monotonic_ms(),
            unix_ms: self.unix_ms(),
        }
    }

    /// This chain's status.
    pub fn chain_status(&self) -> ChainStatus {
        let head = self.head();
        let health = self.health();
        let (committee, set) = self.committee_with_digest();
        ChainStatus {
            chain: self.chain,
            height: head.height,
            finalized_height: head.height,
            round: self.round.load(Ordering::Relaxed),
            epoch: committee.epoch(),
            validator_set: set,
            head_epoch: head.epoch,
            connected_peers: self.connected_peers.load(Ordering::Relaxed) as u32,
            mempool_depth: self.mempool.len() as u64,
            mempool_capacity: self.mempool.config().max_txs as u64,
            health: health.health,
            health_reason: health.reason,
            paused: self.is_paused(),
            last_block_time_unix_ms: head.committed_at_unix_ms,
            latest_state_root: head.state_root,
            head_digest: head.digest,
            fault_injection_active: self.faults().is_active(),
        }
    }
}
