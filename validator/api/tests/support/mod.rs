//! A fake chain behind the real server, and helpers to start it on loopback.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dualchain_api::{
    AdminTls, Admission, AdmissionStatus, ApiError, ApiListeners, ApiOptions, ApiServeError,
    BlockRecords, ChainApi, ChainStatus, FaultChange, FaultPlan, FinalizedBlock, Health,
    NodeStatus, OrderedCommit, RecordAtHead, SnapshotInfo,
};
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::hash::{Digest, HashDomain};
use dualchain_core::types::{
    Address, AssetId, Attestation, Block, BlockBody, BlockCertificate, BlockHeader, ChainId,
    Output, RecordProof, Transaction, TxPayload,
};
use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const TOKEN: &str = "test-admin-token-5e1f";
/// The network this fake node reports and signs its certificates for.
pub const NETWORK: NetworkId = NetworkId(Digest([0xCD; 32]));
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `body` under a hard time bound so a hung server fails the test.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time bound");
}

/// A chain held in memory. Transactions: empty bytes are INVALID_ENCODING, a
/// first byte 0xFF is INVALID_SIGNATURE, a repeat is DUPLICATE, the rest
/// ACCEPTED with digest = transaction-domain hash of the bytes.
pub struct FakeChain {
    pub chain: ChainId,
    blocks: Mutex<BTreeMap<u64, FinalizedBlock>>,
    finalized: AtomicU64,
    events: Mutex<Option<broadcast::Sender<FinalizedBlock>>>,
    ordering: Mutex<Option<broadcast::Sender<Arc<OrderedCommit>>>>,
    pub ready: AtomicBool,
    paused: AtomicBool,
    faults: Mutex<FaultPlan>,
    seen: Mutex<HashSet<Vec<u8>>>,
    /// Lengths of every transaction that reached `submit`.
    pub submitted_lengths: Mutex<Vec<usize>>,
    /// Keep only this many newest blocks (0 = all).
    pub keep_last: AtomicU64,
    /// Commit one block right after handing out a subscription (to test
    /// the replay/live overlap).
    pub commit_on_subscribe: AtomicBool,
    /// Sign certificates for committed blocks.
    pub certify: AtomicBool,
    keys: Vec<ValidatorKeypair>,
    /// State records at the head (key → value), proved from a tree built on demand.
    pub records: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Attestable records each height changed.
    pub record_proofs: Mutex<BTreeMap<u64, Vec<RecordProof>>>,
}

impl FakeChain {
    pub fn new(chain: ChainId, broadcast_capacity: usize) -> Arc<Self> {
        let (events, _) = broadcast::channel(broadcast_capacity);
        let fake = Arc::new(Self {
            chain,
            blocks: Mutex::new(BTreeMap::new()),
            finalized: AtomicU64::new(0),
            events: Mutex::new(Some(events)),
            ordering: Mutex::new(Some(broadcast::channel(broadcast_capacity).0)),
            ready: AtomicBool::new(true),
            paused: AtomicBool::new(false),
            faults: Mutex::new(FaultPlan::default()),
            seen: Mutex::new(HashSet::new()),
            submitted_lengths: Mutex::new(Vec::new()),
            keep_last: AtomicU64::new(0),
            commit_on_subscribe: AtomicBool::new(false),
            certify: AtomicBool::new(false),
            keys: (0..4u8)
                .map(|i| ValidatorKeypair::from_seed(&[i + 1; 32]))
                .collect(),
            records: Mutex::new(BTreeMap::new()),
            record_proofs: Mutex::new(BTreeMap::new()),
        });
        // Genesis, height 0.
        fake.insert(make_block(chain, 0, 0), None);
        fake
    }

    fn insert(&self, block: Block, certificate: Option<BlockCertificate>) -> FinalizedBlock {
        let height = block.header.height;
        let finalized = FinalizedBlock {
            block: Arc::new(block),
            certificate,
            finalized_at_unix_ms: 1_700_000_000_000 + height,
            confirmation_depth: 1,
            events: Arc::default(),
            failed_txs: Arc::default(),
        };
        let mut blocks = self.blocks.lock().unwrap();
        blocks.insert(height, finalized.clone());
        let keep = self.keep_last.load(Ordering::SeqCst);
        if keep > 0 {
            while blocks.len() as u64 > keep {
                blocks.pop_first();
            }
        }
        finalized
    }

    /// Commits the next block with `tx_count` transactions and publishes it.
    pub fn commit(&self, tx_count: usize) -> u64 {
        let height = self.finalized.load(Ordering::SeqCst) + 1;
        let block = make_block(self.chain, height, tx_count);
        let certificate = self.certify.load(Ordering::SeqCst).then(|| {
            let votes = [0u16, 1, 3].into_iter().map(|i| {
                (
                    i,
                    BlockCertificate::vote(&self.keys[usize::from(i)], &block.header, NETWORK),
                )
            });
            BlockCertificate::from_votes(&block.header, votes)
        });
        let finalized = self.insert(block, certificate);
        self.finalized.store(height, Ordering::SeqCst);
        if let Some(events) = self.events.lock().unwrap().as_ref() {
            let _ = events.send(finalized);
        }
        height
    }

    pub fn commit_many(&self, count: usize) {
        for _ in 0..count {
            self.commit(1);
        }
    }

    pub fn stored_block(&self, height: u64) -> Option<FinalizedBlock> {
        self.blocks.lock().unwrap().get(&height).cloned()
    }

    /// Stops publishing finality events (as a halting chain would): open
    /// subscriptions see the channel closed.
    pub fn halt(&self) {
        self.events.lock().unwrap().take();
        self.ordering.lock().unwrap().take();
    }

    /// Publishes commit `sequence` of epoch 2 with `tx_count` transactions and
    /// returns their digests (a function of sequence and position).
    pub fn order(&self, sequence: u64, tx_count: usize) -> Vec<Digest> {
        let tx_digests: Vec<Digest> = (0..tx_count)
            .map(|i| {
                let mut bytes = sequence.to_le_bytes().to_vec();
                bytes.extend_from_slice(&(i as u64).to_le_bytes());
                HashDomain::Transaction.hash(&bytes)
            })
            .collect();
        let commit = OrderedCommit {
            epoch: 2,
            sequence,
            ordered_at_unix_ms: 1_700_000_000_000 + sequence,
            commit_timestamp_ms: 1_699_999_999_000 + sequence,
            tx_digests: tx_digests.clone(),
        };
        if let Some(ordering) = self.ordering.lock().unwrap().as_ref() {
            let _ = ordering.send(Arc::new(commit));
        }
        tx_digests
    }
}

/// A block whose header commits to its body.
pub fn make_block(chain: ChainId, height: u64, tx_count: usize) -> Block {
    let transactions = (0..tx_count)
        .map(|i| {
            Transaction {
                chain,
                sender: Address([3; 32]),
                nonce: height * 1_000 + i as u64,
                fee: 1,
                payload: TxPayload::Transfer {
                    outputs: vec![Output {
                        to: Address([4; 32]),
                        asset: AssetId::NATIVE,
                        amount: 10,
                    }],
                },
            }
            .unsigned()
        })
        .collect();
    let body = BlockBody {
        vertices: vec![Digest([height as u8; 32])],
        transactions,
    };
    let header = BlockHeader {
        chain,
        height,
        epoch: 2,
        slot: height,
        parent: Digest([0; 32]),
        timestamp_ms: 1_699_000_000_000 + height * 3_000,
        vertices_root: body.vertices_root(),
        transactions_root: body.transactions_root(),
        receipts_root: Digest([0xEE; 32]),
        state_root: Digest([height as u8; 32]),
        tx_count: tx_count as u32,
    };
    Block { header, body }
}

/// A valid peer id (64 hex characters, as `GetStatus.peer_id` spells one) for
/// partitions.
pub fn peer_id(n: u8) -> String {
    hex::encode([n; 32])
}

impl ChainApi for FakeChain {
    fn chain(&self) -> ChainId {
        self.chain
    }

    fn node_status(&self) -> NodeStatus {
        let height = self.finalized.load(Ordering::SeqCst);
        NodeStatus {
            node_version: "0.1.0+test".into(),
            validator_key_digest: Digest([0xAB; 32]),
            validator_index: Some(0),
            epoch: 2,
            chains: vec![ChainStatus {
                chain: self.chain,
                height,
                finalized_height: height,
                round: 0,
                epoch: 2,
                connected_peers: 0,
                mempool_depth: self.mempool_depth(),
                mempool_capacity: 0,
                health: Health::Healthy,
                health_reason: String::new(),
                paused: self.paused.load(Ordering::SeqCst),
                last_block_time_unix_ms: 0,
                latest_state_root: Digest::ZERO,
                head_digest: Digest::ZERO,
                fault_injection_active: self.faults.lock().unwrap().is_active(),
                validator_set: Digest::ZERO,
                head_epoch: 2,
            }],
            peer_id: "validator-0".into(),
            started_at_unix_ms: 1_699_000_000_000,
            network_id: NETWORK,
        }
    }

    fn submit(&self, transactions: &[Bytes]) -> Vec<Admission> {
        let mut seen = self.seen.lock().unwrap();
        let mut lengths = self.submitted_lengths.lock().unwrap();
        transactions
            .iter()
            .map(|tx| {
                lengths.push(tx.len());
                if tx.is_empty() {
                    return Admission::refused(
                        None,
                        AdmissionStatus::InvalidEncoding,
                        "fake: InvalidEncoding".into(),
                    );
                }
                let digest = HashDomain::Transaction.hash(tx);
                let status = if tx[0] == 0xFF {
                    AdmissionStatus::InvalidSignature
                } else if !seen.insert(tx.to_vec()) {
                    AdmissionStatus::Duplicate
                } else {
                    return Admission::accepted(digest);
                };
                Admission::refused(Some(digest), status, format!("fake: {status:?}"))
            })
            .collect()
    }

    fn mempool_depth(&self) -> u64 {
        self.seen.lock().unwrap().len() as u64
    }

    fn block(&self, height: u64) -> Result<Option<FinalizedBlock>, ApiError> {
        Ok(self.stored_block(height))
    }

    fn finalized_height(&self) -> u64 {
        self.finalized.load(Ordering::SeqCst)
    }

    fn subscribe_finality(&self) -> broadcast::Receiver<FinalizedBlock> {
        let receiver = match self.events.lock().unwrap().as_ref() {
            Some(events) => events.subscribe(),
            None => broadcast::channel(1).1,
        };
        if self.commit_on_subscribe.load(Ordering::SeqCst) {
            self.commit(2);
        }
        receiver
    }

    fn subscribe_ordering(&self) -> broadcast::Receiver<Arc<OrderedCommit>> {
        match self.ordering.lock().unwrap().as_ref() {
            Some(ordering) => ordering.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn pause(&self, _reason: &str) -> Result<(bool, u64), ApiError> {
        Ok((
            self.paused.swap(true, Ordering::SeqCst),
            self.finalized_height(),
        ))
    }

    fn resume(&self) -> Result<(bool, u64), ApiError> {
        Ok((
            !self.paused.swap(false, Ordering::SeqCst),
            self.finalized_height(),
        ))
    }

    fn snapshot(&self) -> Result<SnapshotInfo, ApiError> {
        if self.paused.load(Ordering::SeqCst) {
            return Err(ApiError::Aborted(
                "a snapshot is already being written".into(),
            ));
        }
        let height = self.finalized_height();
        Ok(SnapshotInfo {
            chain: self.chain,
            height,
            path: format!("/data/snapshots/{height}.snap"),
            checksum: [1; 32],
            size_bytes: 4096,
            state_root: Digest([height as u8; 32]),
            created_at_unix_ms: 1_700_000_000_000,
        })
    }

    fn set_faults(&self, change: FaultChange) -> Result<FaultPlan, ApiError> {
        let in_force = match change {
            FaultChange::Clear => FaultPlan::default(),
            FaultChange::Set(plan) => plan,
        };
        *self.faults.lock().unwrap() = in_force.clone();
        Ok(in_force)
    }

    fn faults(&self) -> FaultPlan {
        self.faults.lock().unwrap().clone()
    }

    fn validator_count(&self, _epoch: u64) -> Option<u32> {
        Some(self.keys.len() as u32)
    }

    fn record(&self, key: &[u8]) -> Result<RecordAtHead, ApiError> {
        let records = self.records.lock().unwrap();
        let tree = SparseMerkleTree::from_leaves(
            records.iter().map(|(k, v)| (hash_key(k), hash_value(v))),
        );
        Ok(RecordAtHead {
            height: self.finalized_height(),
            state_root: Digest(tree.root()),
            key: key.to_vec(),
            value: records.get(key).cloned(),
            proof: tree.prove(&hash_key(key)),
        })
    }

    fn block_records(
        &self,
        height: u64,
        start: usize,
        limit: usize,
    ) -> Result<Option<BlockRecords>, ApiError> {
        let Some(block) = self.stored_block(height) else {
            return Ok(None);
        };
        let all = self
            .record_proofs
            .lock()
            .unwrap()
            .get(&height)
            .cloned()
            .unwrap_or_default();
        Ok(Some(BlockRecords::page(
            block.block.header.clone(),
            block.certificate.clone(),
            all,
            start,
            limit,
        )))
    }

    fn attestation(&self, height: u64, key: &[u8]) -> Result<Attestation, ApiError> {
        let proof = self
            .record_proofs
            .lock()
            .unwrap()
            .get(&height)
            .and_then(|list| list.iter().find(|p| p.key == key).cloned())
            .ok_or_else(|| ApiError::NotFound(format!("no attestable record at {height}")))?;
        let block = self
            .stored_block(height)
            .ok_or_else(|| ApiError::NotFound(format!("no block at {height}")))?;
        let certificate = block
            .certificate
            .clone()
            .ok_or_else(|| ApiError::Unavailable(format!("block {height} is not certified yet")))?;
        Ok(proof.attest(block.block.header.clone(), certificate))
    }
}

/// The name in the test admin certificate (the client checks it).
pub const ADMIN_TLS_NAME: &str = "validator-0.admin.test";

/// A server running on 127.0.0.1 with a random port, and, when the options carry
/// an admin token, its admin listener on another (TLS when the options say so).
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    admin_certificate: Option<Vec<u8>>,
    pub fake: Arc<FakeChain>,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ApiServeError>>,
}

impl Running {
    pub async fn start(fake: Arc<FakeChain>, options: ApiOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = match options.admin_token {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr().unwrap());
        let admin_certificate = options
            .admin_tls
            .as_ref()
            .map(|t| t.certificate_pem.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let api: Arc<dyn ChainApi> = fake.clone();
        let listeners = ApiListeners {
            api: listener,
            admin,
        };
        let handle = tokio::spawn(dualchain_api::serve_api_on(
            listeners,
            api,
            options,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            admin_addr,
            admin_certificate,
            fake,
            stop: Some(stop),
            handle,
        }
    }

    /// A channel to the public listener.
    pub async fn channel(&self) -> Channel {
        connect(&format!("http://{}", self.addr), None).await
    }

    /// A channel to the admin listener (trusting the server's own certificate
    /// when it speaks TLS).
    pub async fn admin_channel(&self) -> Channel {
        let addr = self.admin_addr.expect("the server has no admin listener");
        match &self.admin_certificate {
            None => connect(&format!("http://{addr}"), None).await,
            Some(pem) => connect(&format!("https://{addr}"), Some(admin_tls_client(pem))).await,
        }
    }

    /// Starts shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), ApiServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.expect("server task panicked")
    }

    /// Starts shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn join(self) -> Result<(), ApiServeError> {
        self.handle.await.expect("server task panicked")
    }
}

/// Connects to `url`, retrying while the server task reaches its accept loop.
pub async fn connect(url: &str, tls: Option<tonic::transport::ClientTlsConfig>) -> Channel {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot connect to the API server at {url}");
}

/// A client TLS configuration trusting exactly the certificate `pem`, for the
/// name in it.
pub fn admin_tls_client(pem: &[u8]) -> tonic::transport::ClientTlsConfig {
    dualchain_api::install_crypto_provider();
    tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name(ADMIN_TLS_NAME)
}

/// A fresh self-signed certificate and key for [`ADMIN_TLS_NAME`].
pub fn admin_tls_identity() -> AdminTls {
    dualchain_api::install_crypto_provider();
    let certified = rcgen::generate_simple_self_signed(vec![ADMIN_TLS_NAME.to_string()]).unwrap();
    AdminTls {
        certificate_pem: certified.cert.pem().into_bytes(),
        private_key_pem: certified.signing_key.serialize_pem().into_bytes(),
    }
}

pub fn options_with_token() -> ApiOptions {
    ApiOptions {
        admin_token: Some(TOKEN.into()),
        ready_poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        ..Default::default()
    }
}
