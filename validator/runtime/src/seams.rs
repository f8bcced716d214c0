//! The seams of the runtime: where a chain stores, how it talks, what time it is,
//! and where its CPU-heavy work runs. A node fills them with RocksDB, QUIC, the
//! system clock and threads; the whole-node simulator with memory engines, the
//! in-memory hub, virtual time and inline execution — the runtime code between the
//! seams is the same.

use std::sync::Arc;

use dualchain_consensus::SharedVerdictCache;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::{ChainId, ValidatorSet};
use dualchain_net::{EventReceiver, Network};
use dualchain_storage::KvEngine;
use dualchain_store::StoreOptions;
use futures::future::BoxFuture;
use prometheus::Registry;

use crate::clock::Clock;

/// Where CPU-heavy work (block execution, batch signature verification) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Off the async workers: the block executor on its own OS thread, vertex
    /// verification on the rayon pool (a node).
    Threads,
    /// Inline on the task that needs it, in a fixed order: deterministic, for a
    /// single-threaded simulation.
    Inline,
}

/// What one validator's runtime is built on. One value serves both chains of a node.
pub trait Seams: Send + Sync + 'static {
    /// The storage engine of one chain.
    type Engine: KvEngine + Clone + 'static;
    /// The transport of one chain.
    type Net: Network + 'static;
    type Clock: Clock;

    fn clock(&self) -> Arc<Self::Clock>;

    fn placement(&self) -> Placement;

    /// Opens `chain`'s database; called on every (re)start of the chain's tasks.
    /// Blocking: with [`Placement::Threads`] it runs on a blocking thread.
    fn open_store(&self, chain: ChainId) -> anyhow::Result<Self::Engine>;

    /// Where `chain`'s database lives and how it is opened, for state sync to create
    /// it from a snapshot before [`Seams::open_store`]; `None` where there are no
    /// files (the simulator), and such a chain always starts from its store as is.
    fn store_location(&self, _chain: ChainId) -> Option<(std::path::PathBuf, StoreOptions)> {
        None
    }

    /// Starts `chain`'s transport as validator `key` of `validators` on `network`; its
    /// metrics go into `registry`.
    fn start_network(
        &self,
        chain: ChainId,
        key: &Arc<ValidatorKeypair>,
        network: NetworkId,
        validators: &ValidatorSet,
        registry: &Registry,
    ) -> anyhow::Result<(Arc<Self::Net>, EventReceiver)>;

    /// Stops a transport started by [`Seams::start_network`].
    fn stop_network(&self, net: Arc<Self::Net>) -> BoxFuture<'static, ()>;

    /// The vertex verdict cache of `chain`'s engine: verification results of vertex
    /// signatures (bounded). A simulator shares one across its nodes.
    fn vertex_verdicts(&self, chain: ChainId) -> SharedVerdictCache;
}
