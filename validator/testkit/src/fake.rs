//! A fake `dualchain.v1` node in process: `Node`, `Transactions` and `grpc.health.v1`.
//!
//! - **Admission** is mempool-like: size limit, canonical decoding, signatures (unsigned
//!   only if allowed), duplicates, used nonces; optionally one transaction in eight is
//!   refused once with `MEMPOOL_FULL` to exercise a client's retries.
//! - **Blocks** are sealed on the wall clock: chain `c` is at height
//!   `⌊(now − genesis) / block_ms(c)⌋`, so several fakes sharing a genesis time report
//!   the same heights. State roots and block digests are functions of (chain, height)
//!   — unless the node is configured to [`FakeNodeConfig::diverge`], to exercise
//!   disagreement checks. `GetBlock` headers carry the slot's end as the timestamp
//!   and the transactions the sealer put in that height (kept for the last 4,096).
//! - **Finality**: one sealer task per chain broadcasts a `FinalityEvent` per height,
//!   carrying the digests admitted on that chain since the previous block.
//!   `StreamFinality` subscribers receive the events from their subscription on.
//! - **Ordering**: every accepted `SubmitBatch` is one commit: `StreamOrdering`
//!   subscribers get its digests at once, before the block that finalizes them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use dualchain_core::Digest;
use dualchain_core::crypto::NetworkId;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Address, SignedTransaction};
use dualchain_proto::v1::{
    Block, BlockHeader, Chain, ChainStatus, FinalityEvent, GetBlockRequest, GetStatusRequest,
    NodeStatus, OrderingEvent, StreamFinalityRequest, StreamOrderingRequest, SubmitBatchRequest,
    SubmitBatchResponse, SubmitRequest, SubmitSummary, TxResult, TxStatus,
};
use dualchain_proto::{Node, NodeServer, Transactions, TransactionsServer};
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{BroadcastStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::unix_ms;

/// How a fake node behaves.
#[derive(Clone, Debug)]
pub struct FakeNodeConfig {
    /// Heights count from this instant (Unix ms).
    pub genesis_ms: u64,
    /// Alpha block time; `None`: the node does not serve Alpha.
    pub alpha_block_ms: Option<u64>,
    /// Delta block time; `None`: the node does not serve Delta.
    pub delta_block_ms: Option<u64>,
    /// Admit transactions without a signature.
    pub allow_unsigned: bool,
    /// Refuse one transaction in eight once with `MEMPOOL_FULL`.
    pub refuse_some_once: bool,
    /// The retry hint of those refusals, in ms (0: none); a resubmission before it
    /// elapsed is counted ([`FakeNode::early_retries`]).
    pub refusal_retry_after_ms: u32,
    /// Report state roots no other fake reports.
    pub diverge: bool,
    /// The network id it reports and verifies signatures for.
    pub network: NetworkId,
    /// Serve `StreamOrdering`; without it the fake answers UNIMPLEMENTED, as a node
    /// older than that call does.
    pub serves_ordering: bool,
}

/// The network id of fake nodes unless a test picks another.
pub const FAKE_NETWORK: NetworkId = NetworkId(Digest([0xfa; 32]));

impl FakeNodeConfig {
    /// Delta only, one block every `block_ms` from now, unsigned allowed.
    pub fn delta(block_ms: u64) -> Self {
        Self {
            genesis_ms: unix_ms(),
            alpha_block_ms: None,
            delta_block_ms: Some(block_ms),
            allow_unsigned: true,
            refuse_some_once: false,
            refusal_retry_after_ms: 0,
            diverge: false,
            network: FAKE_NETWORK,
            serves_ordering: true,
        }
    }

    /// Both chains from `genesis_ms`.
    pub fn both(genesis_ms: u64, alpha_block_ms: u64, delta_block_ms: u64) -> Self {
        Self {
            genesis_ms,
            alpha_block_ms: Some(alpha_block_ms),
            delta_block_ms: Some(delta_block_ms),
            ..Self::delta(delta_block_ms)
        }
    }
}

/// Sealed heights whose transaction counts a fake keeps.
const SEALED_COUNTS_KEPT: usize = 4_096;

struct ChainState {
    chain: Chain,
    block_ms: u64,
    pending: Mutex<Vec<Vec<u8>>>,
    /// Transactions of the last [`SEALED_COUNTS_KEPT`] sealed heights (`GetBlock`'s
    /// `tx_count`).
    sealed_counts: Mutex<std::collections::BTreeMap<u64, u32>>,
    events: broadcast::Sender<FinalityEvent>,
    ordering: broadcast::Sender<OrderingEvent>,
    /// Commits (accepted batches) so far: the next `commit_sequence`.
    commits: Mutex<u64>,
}

#[derive(Default)]
struct Pool {
    seen: HashSet<[u8; 32]>,
    refused_once: HashSet<[u8; 32]>,
    /// When each refused transaction may come back (its refusal's retry hint).
    come_back_at: HashMap<[u8; 32], std::time::Instant>,
    /// Transactions sent again before their retry hint elapsed.
    early_retries: u64,
    used_nonces: HashMap<Address, HashSet<u64>>,
    accepted: u64,
}

struct Inner {
    config: FakeNodeConfig,
    chains: Vec<ChainState>,
    pool: Mutex<Pool>,
    finality_requests: Mutex<Vec<StreamFinalityRequest>>,
}

/// The fake node (cheap to clone; clones share state). See the module docs.
#[derive(Clone)]
pub struct FakeNode {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeNode {
    pub fn new(config: FakeNodeConfig) -> Self {
        let chains = [
            (Chain::Alpha, config.alpha_block_ms),
            (Chain::Delta, config.delta_block_ms),
        ]
        .into_iter()
        .filter_map(|(chain, ms)| {
            Some(ChainState {
                chain,
                block_ms: ms?.max(1),
                pending: Mutex::default(),
                sealed_counts: Mutex::default(),
                events: broadcast::channel(4096).0,
                ordering: broadcast::channel(4096).0,
                commits: Mutex::default(),
            })
        })
        .collect();
        Self {
            inner: Arc::new(Inner {
                config,
                chains,
                pool: Mutex::default(),
                finality_requests: Mutex::default(),
            }),
        }
    }

    fn chain(&self, chain: Chain) -> Option<&ChainState> {
        self.inner.chains.iter().find(|c| c.chain == chain)
    }

    /// The chains this node serves.
    pub fn chains(&self) -> Vec<Chain> {
        self.inner.chains.iter().map(|c| c.chain).collect()
    }

    /// Height of `chain` now (0 before the genesis time or for a chain not served).
    pub fn height(&self, chain: Chain) -> u64 {
        self.chain(chain).map_or(0, |c| {
            unix_ms().saturating_sub(self.inner.config.genesis_ms) / c.block_ms
        })
    }

    /// The state root this node reports for `chain` at `height`.
    pub fn state_root(&self, chain: Chain, height: u64) -> Vec<u8> {
        let mut root = vec![0u8; 32];
        root[..8].copy_from_slice(&height.to_le_bytes());
        root[8] = chain as u8;
        root[9] = u8::from(self.inner.config.diverge);
        root
    }

    /// The block digest this node reports for `chain` at `height`.
    pub fn block_digest(chain: Chain, height: u64) -> Vec<u8> {
        let mut digest = vec![0xDD; 32];
        digest[..8].copy_from_slice(&height.to_le_bytes());
        digest[8] = chain as u8;
        digest
    }

    /// Transactions admitted so far.
    pub fn accepted(&self) -> u64 {
        lock(&self.inner.pool).accepted
    }

    /// Refused transactions sent again before the refusal's retry hint elapsed.
    pub fn early_retries(&self) -> u64 {
        lock(&self.inner.pool).early_retries
    }

    /// Every `StreamFinality` request received.
    pub fn finality_requests(&self) -> Vec<StreamFinalityRequest> {
        lock(&self.inner.finality_requests).clone()
    }

    fn admit(&self, index: usize, bytes: &[u8]) -> (TxResult, Option<Vec<u8>>) {
        let result = |status: TxStatus, digest: Vec<u8>| TxResult {
            index: index as u64,
            digest,
            status: status as i32,
            reason: String::new(),
            retry_after_ms: 0,
        };
        if bytes.len() > SignedTransaction::max_len_of_encoding(bytes) {
            return (result(TxStatus::TooLarge, Vec::new()), None);
        }
        let stx = match SignedTransaction::from_canonical_bytes(bytes) {
            Ok(stx) => stx,
            Err(e) if SignedTransaction::is_oversize(&e) => {
                return (result(TxStatus::TooLarge, Vec::new()), None);
            }
            Err(_) => return (result(TxStatus::InvalidEncoding, Vec::new()), None),
        };
        let digest = stx.digest().0;
        if stx
            .verify_signatures(self.inner.config.network, self.inner.config.allow_unsigned)
            .is_err()
        {
            return (result(TxStatus::InvalidSignature, digest.to_vec()), None);
        }
        let mut pool = lock(&self.inner.pool);
        if let Some(at) = pool.come_back_at.remove(&digest)
            && std::time::Instant::now() < at
        {
            pool.early_retries += 1;
        }
        if pool.seen.contains(&digest) {
            return (result(TxStatus::Duplicate, digest.to_vec()), None);
        }
        let (sender, nonce) = (stx.tx().sender, stx.tx().nonce);
        if pool
            .used_nonces
            .get(&sender)
            .is_some_and(|n| n.contains(&nonce))
        {
            return (result(TxStatus::NonceTooOld, digest.to_vec()), None);
        }
        if self.inner.config.refuse_some_once
            && digest[0] % 8 == 0
            && pool.refused_once.insert(digest)
        {
            let hint_ms = self.inner.config.refusal_retry_after_ms;
            let hint = Duration::from_millis(u64::from(hint_ms));
            pool.come_back_at
                .insert(digest, std::time::Instant::now() + hint);
            let refused = TxResult {
                retry_after_ms: hint_ms,
                ..result(TxStatus::MempoolFull, digest.to_vec())
            };
            return (refused, None);
        }
        pool.seen.insert(digest);
        pool.used_nonces.entry(sender).or_default().insert(nonce);
        pool.accepted += 1;
        (
            result(TxStatus::Accepted, digest.to_vec()),
            Some(digest.to_vec()),
        )
    }

    /// One task per chain broadcasting a finality event per sealed height.
    fn spawn_sealers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.inner.chains.len())
            .map(|k| {
                let node = self.clone();
                tokio::spawn(async move {
                    let c = &node.inner.chains[k];
                    let mut sealed = node.height(c.chain);
                    loop {
                        let next_at = node.inner.config.genesis_ms + (sealed + 1) * c.block_ms;
                        let wait = next_at.saturating_sub(unix_ms());
                        tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
                        let now = node.height(c.chain);
                        while sealed < now {
                            sealed += 1;
                            let digests = std::mem::take(&mut *lock(&c.pending));
                            let mut counts = lock(&c.sealed_counts);
                            counts.insert(sealed, digests.len() as u32);
                            if counts.len() > SEALED_COUNTS_KEPT {
                                counts.pop_first();
                            }
                            drop(counts);
                            let _ = c.events.send(FinalityEvent {
                                kind: c.chain.finality_event_kind() as i32,
                                chain: c.chain as i32,
                                height: sealed,
                                block_digest: Self::block_digest(c.chain, sealed),
                                state_root: node.state_root(c.chain, sealed),
                                tx_count: digests.len() as u32,
                                finalized_at_unix_ms: unix_ms(),
                                tx_digests: digests,
                                ..FinalityEvent::default()
                            });
                        }
                    }
                })
            })
            .collect()
    }

    /// Serves on every address in `addrs` (and seals blocks) until `shutdown` resolves.
    pub async fn serve_on(
        &self,
        addrs: &[SocketAddr],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut listeners = Vec::new();
        for addr in addrs {
            listeners.push(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?,
            );
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let sealers = self.spawn_sealers();
        let mut servers = Vec::new();
        for listener in listeners {
            let mut stop = stop.clone();
            servers.push(tokio::spawn(self.clone().serve_listener(
                listener,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        for server in servers {
            server.await.context("fake server task")??;
        }
        for sealer in sealers {
            sealer.abort();
        }
        Ok(())
    }

    async fn serve_listener(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("dualchain.v1.Node", tonic_health::ServingStatus::Serving)
            .await;
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(NodeServer::new(self.clone()))
            .add_service(TransactionsServer::new(self))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
            .context("fake dualchain.v1 server")
    }

    /// Starts serving on an ephemeral loopback port (and sealing); stops when the
    /// returned server is dropped.
    pub async fn start(self) -> anyhow::Result<FakeServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let mut tasks = self.spawn_sealers();
        let server = self.clone().serve_listener(listener, async move {
            let _ = stopped.await;
        });
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("fake node: {e:#}");
            }
        }));
        Ok(FakeServer {
            addr,
            node: self,
            stop: Some(stop),
            tasks,
        })
    }
}

/// A [`FakeNode`] served on a loopback port; stops when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub node: FakeNode,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeServer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[tonic::async_trait]
impl Transactions for FakeNode {
    async fn submit_transactions(
        &self,
        _: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<SubmitSummary>, Status> {
        Err(Status::unimplemented("the fake serves SubmitBatch only"))
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let req = request.into_inner();
        let chain = req.chain();
        let Some(state) = self.chain(chain) else {
            return Err(Status::invalid_argument(format!(
                "this fake does not serve {}",
                chain.as_str_name()
            )));
        };
        let mut results = Vec::with_capacity(req.transactions.len());
        let mut admitted = Vec::new();
        for (i, bytes) in req.transactions.iter().enumerate() {
            let (result, digest) = self.admit(i, bytes);
            results.push(result);
            admitted.extend(digest);
        }
        let accepted = admitted.len() as u32;
        if !admitted.is_empty() {
            let mut commits = lock(&state.commits);
            let _ = state.ordering.send(OrderingEvent {
                chain: chain as i32,
                commit_sequence: *commits,
                ordered_at_unix_ms: unix_ms(),
                tx_digests: admitted.clone(),
                ..OrderingEvent::default()
            });
            *commits += 1;
        }
        lock(&state.pending).extend(admitted);
        Ok(Response::new(SubmitBatchResponse {
            chain: chain as i32,
            rejected: results.len() as u32 - accepted,
            accepted,
            results,
            mempool_depth: 0,
        }))
    }
}

#[tonic::async_trait]
impl Node for FakeNode {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let chains = self
            .chains()
            .into_iter()
            .map(|chain| {
                let height = self.height(chain);
                ChainStatus {
                    chain: chain as i32,
                    height,
                    finalized_height: height,
                    latest_state_root: self.state_root(chain, height),
                    head_digest: Self::block_digest(chain, height),
                    ..ChainStatus::default()
                }
            })
            .collect();
        Ok(Response::new(NodeStatus {
            node_version: "0.0.0-fake".into(),
            chains,
            network_id: self.inner.config.network.0.as_bytes().to_vec(),
            ..NodeStatus::default()
        }))
    }

    async fn get_block(
        &self,
        request: Request<GetBlockRequest>,
    ) -> Result<Response<Block>, Status> {
        let req = request.into_inner();
        let chain = req.chain();
        let Some(state) = self.chain(chain) else {
            return Err(Status::not_found("no such block"));
        };
        if req.height > self.height(chain) {
            return Err(Status::not_found("no such block"));
        }
        let tx_count = lock(&state.sealed_counts)
            .get(&req.height)
            .copied()
            .unwrap_or(0);
        Ok(Response::new(Block {
            header: Some(BlockHeader {
                chain: chain as i32,
                height: req.height,
                // Sealed on the wall clock: the height's slot end.
                timestamp_unix_ms: self.inner.config.genesis_ms + req.height * state.block_ms,
                tx_count,
                state_root: self.state_root(chain, req.height),
                digest: Self::block_digest(chain, req.height),
                ..BlockHeader::default()
            }),
            finalized: true,
            ..Block::default()
        }))
    }

    type StreamFinalityStream =
        Pin<Box<dyn Stream<Item = Result<FinalityEvent, Status>> + Send + 'static>>;

    async fn stream_finality(
        &self,
        request: Request<StreamFinalityRequest>,
    ) -> Result<Response<Self::StreamFinalityStream>, Status> {
        let req = request.into_inner();
        lock(&self.inner.finality_requests).push(req);
        let chain = match req.chain() {
            Chain::Unspecified if self.chain(Chain::Delta).is_some() => Chain::Delta,
            Chain::Unspecified => self.chains().first().copied().unwrap_or(Chain::Delta),
            chain => chain,
        };
        let Some(state) = self.chain(chain) else {
            return Err(Status::invalid_argument("chain not served"));
        };
        let include = req.include_tx_digests;
        let stream = BroadcastStream::new(state.events.subscribe())
            .filter_map(|e| e.ok())
            .map(move |mut e| {
                if !include {
                    e.tx_digests.clear();
                }
                Ok(e)
            });
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamOrderingStream =
        Pin<Box<dyn Stream<Item = Result<OrderingEvent, Status>> + Send + 'static>>;

    async fn stream_ordering(
        &self,
        request: Request<StreamOrderingRequest>,
    ) -> Result<Response<Self::StreamOrderingStream>, Status> {
        if !self.inner.config.serves_ordering {
            return Err(Status::unimplemented("this fake predates StreamOrdering"));
        }
        let chain = match request.into_inner().chain() {
            Chain::Unspecified if self.chain(Chain::Delta).is_some() => Chain::Delta,
            Chain::Unspecified => self.chains().first().copied().unwrap_or(Chain::Delta),
            chain => chain,
        };
        let Some(state) = self.chain(chain) else {
            return Err(Status::invalid_argument("chain not served"));
        };
        let stream = BroadcastStream::new(state.ordering.subscribe())
            .filter_map(|e| e.ok())
            .map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}
