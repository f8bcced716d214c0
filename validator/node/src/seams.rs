//! The real seams of a validator process: RocksDB, QUIC, the system clock, and
//! threads for CPU-heavy work. Everything else is the runtime's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use dualchain_consensus::SharedVerdictCache;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::{ChainId, ValidatorSet};
use dualchain_net::{EventReceiver, Membership, NetConfig, PeerAddress, QuicNetwork};
use dualchain_runtime::chain::VERTEX_VERDICT_CAPACITY;
use dualchain_runtime::{Placement, Seams, SystemClock};
use dualchain_storage::SyncPolicy;
use dualchain_store::{RocksEngine, StoreOptions};
use futures::future::BoxFuture;
use prometheus::Registry;

/// Where and how one chain of this process stores and talks.
#[derive(Clone, Debug)]
pub struct ChainIo {
    pub data_dir: PathBuf,
    pub p2p_listen: SocketAddr,
    pub peers: Vec<PeerAddress>,
    pub sync_policy: SyncPolicy,
}

/// The seams of `dualchain run`.
pub struct NodeSeams {
    clock: Arc<SystemClock>,
    chains: BTreeMap<ChainId, ChainIo>,
}

impl NodeSeams {
    pub fn new(chains: BTreeMap<ChainId, ChainIo>) -> Self {
        Self {
            clock: Arc::new(SystemClock::new()),
            chains,
        }
    }

    fn io(&self, chain: ChainId) -> anyhow::Result<&ChainIo> {
        self.chains
            .get(&chain)
            .with_context(|| format!("this process does not run the {chain} chain"))
    }
}

impl Seams for NodeSeams {
    type Engine = Arc<RocksEngine>;
    type Net = QuicNetwork;
    type Clock = SystemClock;

    fn clock(&self) -> Arc<SystemClock> {
        self.clock.clone()
    }

    fn placement(&self) -> Placement {
        Placement::Threads
    }

    fn store_location(&self, chain: ChainId) -> Option<(PathBuf, StoreOptions)> {
        let io = self.io(chain).ok()?;
        Some((
            io.data_dir.join("db"),
            StoreOptions {
                sync: io.sync_policy,
                ..StoreOptions::default()
            },
        ))
    }

    fn open_store(&self, chain: ChainId) -> anyhow::Result<Arc<RocksEngine>> {
        self.io(chain)?;
        let (db_dir, options) = self
            .store_location(chain)
            .expect("a chain this process runs");
        std::fs::create_dir_all(&db_dir)
            .with_context(|| format!("creating data directory {}", db_dir.display()))?;
        let engine = RocksEngine::open(&db_dir, &options)
            .with_context(|| format!("opening the {chain} database in {}", db_dir.display()))?;
        Ok(Arc::new(engine))
    }

    fn start_network(
        &self,
        chain: ChainId,
        key: &Arc<ValidatorKeypair>,
        network: NetworkId,
        validators: &ValidatorSet,
        registry: &Registry,
    ) -> anyhow::Result<(Arc<QuicNetwork>, EventReceiver)> {
        let io = self.io(chain)?;
        let me = validators
            .index_of(key.public())
            .with_context(|| format!("the {chain} key is not in the validator set"))?;
        let mut cfg = NetConfig::new(io.p2p_listen);
        cfg.peers = io.peers.clone();
        cfg.seed = u64::from(me) << 8 | u64::from(chain.tag());
        let membership = Membership::from_validator_set(validators);
        let (net, events) = QuicNetwork::start(cfg, key.clone(), network, membership, registry)
            .with_context(|| format!("listening on {}", io.p2p_listen))?;
        tracing::info!(%chain, listen = %net.local_addr(), "transport started");
        Ok((Arc::new(net), events))
    }

    fn stop_network(&self, net: Arc<QuicNetwork>) -> BoxFuture<'static, ()> {
        Box::pin(async move { net.shutdown().await })
    }

    fn vertex_verdicts(&self, _chain: ChainId) -> SharedVerdictCache {
        SharedVerdictCache::with_capacity(VERTEX_VERDICT_CAPACITY)
    }
}
