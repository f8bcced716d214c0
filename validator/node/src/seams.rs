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

    /// Where `chain`'s database lives and how it is opened.
    fn location(&self, chain: ChainId) -> anyhow::Result<(PathBuf, StoreOptions)> {
        let io = self.io(chain)?;
        let options = StoreOptions {
            sync: io.sync_policy,
            ..StoreOptions::default()
        };
        Ok((io.data_dir.join("db"), options))
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
        self.location(chain).ok()
    }

    fn open_store(&self, chain: ChainId) -> anyhow::Result<Arc<RocksEngine>> {
        let (db_dir, options) = self.location(chain)?;
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
        // The transport's seed (dial jitter) only has to differ between nodes: a
        // member's index, or a joining validator's key id.
        let node = match validators.index_of(key.public()) {
            Some(me) => u64::from(me),
            None => {
                let id = key.public().id();
                u64::from_le_bytes(id.0[..8].try_into().expect("8 of 32 bytes"))
            }
        };
        let mut cfg = NetConfig::new(io.p2p_listen);
        cfg.peers = io.peers.clone();
        cfg.seed = node << 8 | u64::from(chain.tag());
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
