//! What one chain's tasks share with each other and with the API: identity, mempool,
//! verifier, live status, the finality feed, pause and fault switches.
//!
//! The chain's task group (driver, executor thread, transport) can fail and be
//! restarted by the supervisor; everything here outlives a restart, so the API keeps
//! answering (with `NOT_SERVING` readiness) while the chain recovers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dualchain_api::FinalizedBlock;
use dualchain_core::Digest;
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::types::{ChainId, Genesis, ValidatorIndex, ValidatorSet};
use dualchain_execution::{Executor, SignatureVerifier};
use dualchain_mempool::Mempool;
use dualchain_net::{FaultInjector, PeerId};
use dualchain_proto::v1;
use dualchain_store::RocksEngine;
use tokio::sync::broadcast;

use super::exec::ExecCommand;
use super::metrics::{ChainMetrics, RegistrySlot};

/// Finality events buffered per subscriber before it counts as lagging.
pub const FINALITY_CHANNEL_CAPACITY: usize = 1_024;

/// Newest committed block, as the status reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Head {
    pub height: u64,
    pub digest: Digest,
    pub state_root: Digest,
    pub block_timestamp_ms: u64,
    /// Wall clock (unix ms) when this node committed it; 0 before the first block.
    pub committed_at_unix_ms: u64,
}

/// Handles that exist only while the chain's task group runs.
#[derive(Default)]
pub struct Live {
    pub db: Option<Arc<RocksEngine>>,
    pub exec: Option<std::sync::mpsc::Sender<ExecCommand>>,
    pub faults: Option<Arc<FaultInjector>>,
}

/// Why the chain is not simply healthy.
#[derive(Clone, Debug, Default)]
pub struct HealthView {
    pub health: i32,
    pub reason: String,
}

pub struct ChainShared {
    pub chain: ChainId,
    pub genesis: Arc<Genesis>,
    pub genesis_digest: Digest,
    pub validators: Arc<ValidatorSet>,
    pub me: ValidatorIndex,
    pub key: Arc<ValidatorKeypair>,
    pub peer_id: PeerId,
    pub mempool: Arc<Mempool>,
    pub verifier: Arc<SignatureVerifier>,
    pub executor: Arc<Executor>,
    pub metrics: ChainMetrics,
    /// The transport's registry of the current run (swapped on restart).
    pub net_registry: RegistrySlot,
    pub started_at_unix_ms: u64,
    pub block_time_ms: u64,
    pub snapshot_dir: PathBuf,
    pub finality: broadcast::Sender<FinalizedBlock>,
    pub head: Mutex<Head>,
    pub round: AtomicU64,
    pub connected_peers: AtomicU64,
    pub paused: AtomicBool,
    /// Store open and transport started (cleared while the task group restarts).
    pub running: AtomicBool,
    /// Catching up: the newest block we know of is far behind the wall clock.
    pub catching_up: AtomicBool,
    pub restarts: AtomicU64,
    pub last_restart_unix_ms: AtomicU64,
    pub health: Mutex<HealthView>,
    pub live: Mutex<Live>,
    /// The fault injection in force, as last set through the API.
    pub faults: Mutex<v1::FaultInjection>,
    /// Bumped on every fault change, so an expiry timer only clears its own setting.
    pub faults_generation: AtomicU64,
}

impl ChainShared {
    pub fn head(&self) -> Head {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_head(&self, head: Head) {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = head;
    }

    pub fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn health(&self) -> HealthView {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_health(&self, health: v1::Health, reason: impl Into<String>) {
        let mut h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        h.health = health as i32;
        h.reason = reason.into();
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Ready for traffic: running, not paused, not catching up, not stalled.
    pub fn is_ready(&self) -> bool {
        self.running.load(Ordering::Acquire)
            && !self.is_paused()
            && !self.catching_up.load(Ordering::Acquire)
    }

    /// This chain's status record for `GetStatus`.
    pub fn chain_status(&self) -> v1::ChainStatus {
        let head = self.head();
        let health = self.health();
        v1::ChainStatus {
            chain: proto_chain(self.chain) as i32,
            height: head.height,
            finalized_height: head.height,
            round: self.round.load(Ordering::Relaxed),
            epoch: self.validators.epoch(),
            connected_peers: self.connected_peers.load(Ordering::Relaxed) as u32,
            mempool_depth: self.mempool.len() as u64,
            mempool_capacity: self.mempool.config().max_txs as u64,
            health: health.health,
            health_reason: health.reason,
            paused: self.is_paused(),
            last_block_time_unix_ms: head.committed_at_unix_ms,
            latest_state_root: head.state_root.as_bytes().to_vec(),
            head_digest: head.digest.as_bytes().to_vec(),
            fault_injection_active: self
                .faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .active,
        }
    }
}

pub fn proto_chain(chain: ChainId) -> v1::Chain {
    match chain {
        ChainId::Alpha => v1::Chain::Alpha,
        ChainId::Delta => v1::Chain::Delta,
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
