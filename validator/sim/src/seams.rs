//! The simulated seams of one validator: a memory store per chain (which survives
//! the node's crashes), the chains' in-memory hubs, the shared virtual clock, and
//! inline placement. A Byzantine validator's transport rewrites what it sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dualchain_consensus::SharedVerdictCache;
use dualchain_consensus::sim::Behaviour;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::{Address, ChainId, ValidatorIndex, ValidatorSet};
use dualchain_execution::keys::{AccountRecord, account_key};
use dualchain_net::{EventReceiver, MemoryHub, NetEvent, PeerId};
use dualchain_runtime::{Placement, Seams, VirtualClock};
use dualchain_storage::{
    Column, KvEngine, KvIter, MemoryEngine, StorageError, WriteBatch, WriteOp,
};
use futures::future::BoxFuture;
use prometheus::Registry;

use crate::byzantine::SimNet;

/// A bug planted in one node's store, to show the simulator catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreBug {
    /// The consensus engine's commit records are silently not written: the journal
    /// that makes a crash between decision and block write harmless is gone.
    DropCommitRecords,
    /// The `nth` write of a consensus commit record to `chain`'s store panics, once
    /// (a bug that crashes the consensus driver mid-run): the supervisor must restart
    /// that chain alone, from its store.
    PanicOnCommitRecord { chain: ChainId, nth: u64 },
}

impl StoreBug {
    /// Whether the bug is planted in `chain`'s store.
    pub fn applies_to(self, chain: ChainId) -> bool {
        match self {
            StoreBug::DropCommitRecords => true,
            StoreBug::PanicOnCommitRecord { chain: buggy, .. } => buggy == chain,
        }
    }
}

fn is_commit_record(column: Column, key: &[u8]) -> bool {
    column == Column::Consensus && dualchain_consensus::store::is_commit_record_key(key)
}

/// One chain's store of one simulated validator: a memory engine, optionally with a
/// planted bug. It outlives the node's crashes (it is the node's disk).
pub struct SimStore {
    inner: MemoryEngine,
    bug: Option<StoreBug>,
    /// Commit-record writes so far (for [`StoreBug::PanicOnCommitRecord`]).
    commit_writes: AtomicU64,
}

impl SimStore {
    pub fn new(bug: Option<StoreBug>) -> Self {
        Self {
            inner: MemoryEngine::new(),
            bug,
            commit_writes: AtomicU64::new(0),
        }
    }

    /// The committed next nonce of `address` on this store's chain (0 if the account
    /// is absent or does not decode), as a simulated client reads it.
    pub fn next_nonce(&self, address: &Address) -> u64 {
        self.get(Column::State, &account_key(address))
            .ok()
            .flatten()
            .and_then(|bytes| AccountRecord::decode_value(&bytes).ok())
            .map_or(0, |account| account.nonce)
    }
}

impl KvEngine for SimStore {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(column, key)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        match self.bug {
            None => self.inner.write(batch),
            Some(StoreBug::PanicOnCommitRecord { nth, .. }) => {
                let commits = batch
                    .ops()
                    .iter()
                    .filter(|op| matches!(op, WriteOp::Put { column, key, .. } if is_commit_record(*column, key)))
                    .count() as u64;
                let before = self.commit_writes.fetch_add(commits, Ordering::Relaxed);
                if before < nth && before + commits >= nth {
                    panic!("planted bug: commit record write {nth} panics");
                }
                self.inner.write(batch)
            }
            Some(StoreBug::DropCommitRecords) => {
                let mut kept = WriteBatch::with_capacity(batch.len());
                for op in batch.into_ops() {
                    match op {
                        WriteOp::Put { column, key, .. } if is_commit_record(column, &key) => {}
                        WriteOp::Put { column, key, value } => kept.put(column, key, value),
                        WriteOp::Delete { column, key } => kept.delete(column, key),
                    }
                }
                self.inner.write(kept)
            }
        }
    }

    fn scan_from<'a>(&'a self, column: Column, start: &[u8]) -> Result<KvIter<'a>, StorageError> {
        self.inner.scan_from(column, start)
    }

    fn scan_prefix<'a>(
        &'a self,
        column: Column,
        prefix: &[u8],
    ) -> Result<KvIter<'a>, StorageError> {
        self.inner.scan_prefix(column, prefix)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

/// What a simulated validator's chains stand on.
pub struct SimSeams {
    pub clock: Arc<VirtualClock>,
    pub stores: [Arc<SimStore>; 2],
    pub hubs: [Arc<MemoryHub>; 2],
    pub verdicts: [SharedVerdictCache; 2],
    pub behaviour: Option<Behaviour>,
    /// Every validator's peer id, in validator-set order.
    pub peers: Arc<Vec<PeerId>>,
    pub index: ValidatorIndex,
    pub seed: u64,
    /// The transports of the running incarnation, per chain (a crash kills them).
    pub nets: Mutex<[Option<Arc<SimNet>>; 2]>,
}

impl SimSeams {
    /// Kills the running incarnation's transports: it leaves both hubs at once.
    pub fn kill_networks(&self) {
        let nets = std::mem::take(&mut *self.nets.lock().unwrap_or_else(PoisonError::into_inner));
        for net in nets.into_iter().flatten() {
            net.leave();
        }
    }
}

pub fn slot(chain: ChainId) -> usize {
    match chain {
        ChainId::Alpha => 0,
        ChainId::Delta => 1,
    }
}

impl Seams for SimSeams {
    type Engine = Arc<SimStore>;
    type Net = SimNet;
    type Clock = VirtualClock;

    fn clock(&self) -> Arc<VirtualClock> {
        self.clock.clone()
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }

    fn open_store(&self, chain: ChainId) -> anyhow::Result<Arc<SimStore>> {
        Ok(self.stores[slot(chain)].clone())
    }

    fn start_network(
        &self,
        chain: ChainId,
        key: &Arc<ValidatorKeypair>,
        network: NetworkId,
        _validators: &ValidatorSet,
        _registry: &Registry,
    ) -> anyhow::Result<(Arc<SimNet>, EventReceiver)> {
        let hub = &self.hubs[slot(chain)];
        let (net, events) = hub.join(PeerId::of(key.public()));
        let byzantine = self.behaviour.map(|behaviour| {
            crate::byzantine::Byzantine::new(
                behaviour,
                key.clone(),
                network,
                self.peers.clone(),
                usize::from(self.index),
                self.seed ^ (u64::from(self.index) << 32) ^ u64::from(chain.tag()),
            )
        });
        let events = match self.behaviour {
            // A withholding validator answers no sync request.
            Some(Behaviour::Withhold) => decline_requests(events),
            _ => events,
        };
        let net = Arc::new(SimNet::new(net, hub.clone(), byzantine.map(Mutex::new)));
        self.nets.lock().unwrap_or_else(PoisonError::into_inner)[slot(chain)] = Some(net.clone());
        Ok((net, events))
    }

    fn stop_network(&self, net: Arc<SimNet>) -> BoxFuture<'static, ()> {
        Box::pin(async move { net.leave() })
    }

    fn vertex_verdicts(&self, chain: ChainId) -> SharedVerdictCache {
        self.verdicts[slot(chain)].clone()
    }
}

/// Passes every event on except requests, which are dropped (declined).
fn decline_requests(mut events: EventReceiver) -> EventReceiver {
    let (tx, rx) = EventReceiver::channel(4096);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if matches!(event, NetEvent::Request(_)) {
                continue;
            }
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    rx
}
