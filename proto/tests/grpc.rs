//! End-to-end over real HTTP/2 on loopback: a tonic server with test doubles
//! of `Node`, `Admin` and `Transactions`, and the generated clients.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use dualchain_proto::{
    ADMIN_AUTH_METADATA_KEY, Admin, AdminClient, AdminServer, AdminToken, Node, NodeClient,
    NodeServer, RequireAdminToken, Transactions, TransactionsClient, TransactionsServer,
    v1::{
        Block, BlockHeader, Chain, ChainStatus, FaultInjection, FinalityEvent, FinalityEventKind,
        GetBlockRequest, GetFaultInjectionRequest, GetStatusRequest, Health, NodeStatus,
        OrderingEvent, PauseChainRequest, PauseChainResponse, ResumeChainRequest,
        ResumeChainResponse, SnapshotResult, StatusCount, StreamFinalityRequest,
        StreamOrderingRequest, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest,
        SubmitSummary, TriggerSnapshotRequest, TxResult, TxStatus,
    },
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::{Stream, StreamExt, wrappers::TcpListenerStream};
use tonic::{Request, Response, Status, Streaming, transport::Channel};

const TOKEN: &str = "test-admin-token-7f3a9c";
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `body` under a hard time bound so a hung server fails the test.
async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time bound");
}

// ---------------------------------------------------------------- doubles

fn digest(tag: u8, n: u64) -> Vec<u8> {
    let mut d = vec![tag; 32];
    d[24..].copy_from_slice(&n.to_be_bytes());
    d
}

struct TestNode;

#[tonic::async_trait]
impl Node for TestNode {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(NodeStatus {
            node_version: "0.1.0+test".into(),
            validator_key_digest: digest(0xAB, 0),
            network_id: digest(0x4E, 0),
            validator_index: Some(0),
            epoch: 7,
            chains: vec![ChainStatus {
                chain: Chain::Delta as i32,
                height: 120,
                finalized_height: 117,
                round: 480,
                epoch: 7,
                connected_peers: 3,
                mempool_depth: 42,
                mempool_capacity: 100_000,
                health: Health::Degraded as i32,
                health_reason: "2 of 3 peers".into(),
                paused: false,
                last_block_time_unix_ms: 1_700_000_000_000,
                latest_state_root: digest(0x55, 120),
                head_digest: digest(0xDD, 120),
                fault_injection_active: true,
                validator_set_digest: digest(0x5E, 7),
                head_epoch: 7,
            }],
            peer_id: "validator-0".into(),
            started_at_unix_ms: 1_699_999_000_000,
        }))
    }

    async fn get_block(
        &self,
        request: Request<GetBlockRequest>,
    ) -> Result<Response<Block>, Status> {
        let req = request.into_inner();
        if req.height > 120 {
            return Err(Status::not_found(format!("no block at {}", req.height)));
        }
        Ok(Response::new(Block {
            header: Some(BlockHeader {
                chain: req.chain,
                height: req.height,
                digest: digest(0xDD, req.height),
                ..Default::default()
            }),
            header_bytes: vec![1, 2, 3],
            body: req.include_body.then(Vec::new),
            certificate: None,
            finalized: req.height <= 117,
            failed_tx_count: 0,
        }))
    }

    type StreamFinalityStream =
        Pin<Box<dyn Stream<Item = Result<FinalityEvent, Status>> + Send + 'static>>;

    async fn stream_finality(
        &self,
        request: Request<StreamFinalityRequest>,
    ) -> Result<Response<Self::StreamFinalityStream>, Status> {
        let req = request.into_inner();
        let chain = match req.chain() {
            Chain::Unspecified => Chain::Delta,
            chain => chain,
        };
        let from = req.from_height.unwrap_or(100);
        let include = req.include_tx_digests;
        let events = (from..from + 5).map(move |height| {
            let tx_count = (height % 3) as u32;
            Ok(FinalityEvent {
                kind: chain.finality_event_kind() as i32,
                chain: chain as i32,
                height,
                block_digest: digest(0xDD, height),
                state_root: digest(0x55, height),
                tx_count,
                finalized_at_unix_ms: 1_700_000_000_000 + height * 3_000,
                block_timestamp_unix_ms: 1_700_000_000_000 + height * 3_000 - 500,
                confirmation_depth: 0,
                failed_tx_indexes: Vec::new(),
                tx_digests: if include {
                    (0..u64::from(tx_count))
                        .map(|i| digest(0x77, height * 10 + i))
                        .collect()
                } else {
                    Vec::new()
                },
                replayed: req.from_height.is_some(),
                cross_chain_events: Vec::new(),
            })
        });
        // Pace the stream a little so the client really reads it incrementally.
        let stream = tokio_stream::iter(events).throttle(Duration::from_millis(5));
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamOrderingStream =
        Pin<Box<dyn Stream<Item = Result<OrderingEvent, Status>> + Send + 'static>>;

    async fn stream_ordering(
        &self,
        _request: Request<StreamOrderingRequest>,
    ) -> Result<Response<Self::StreamOrderingStream>, Status> {
        Err(Status::unimplemented("this double has no commits"))
    }
}

/// Admin double that counts the calls that reached it.
#[derive(Clone, Default)]
struct TestAdmin {
    calls: Arc<AtomicUsize>,
}

impl TestAdmin {
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl Admin for TestAdmin {
    async fn pause_chain(
        &self,
        request: Request<PauseChainRequest>,
    ) -> Result<Response<PauseChainResponse>, Status> {
        self.hit();
        Ok(Response::new(PauseChainResponse {
            chain: request.into_inner().chain,
            already_paused: false,
            height: 120,
        }))
    }

    async fn resume_chain(
        &self,
        request: Request<ResumeChainRequest>,
    ) -> Result<Response<ResumeChainResponse>, Status> {
        self.hit();
        Ok(Response::new(ResumeChainResponse {
            chain: request.into_inner().chain,
            already_running: false,
            height: 120,
        }))
    }

    async fn trigger_snapshot(
        &self,
        request: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<SnapshotResult>, Status> {
        self.hit();
        Ok(Response::new(SnapshotResult {
            height: 117,
            path: "/data/snapshots/delta-117.snap".into(),
            checksum: digest(0xC5, 117),
            chain: request.into_inner().chain,
            size_bytes: 4096,
            state_root: digest(0x55, 117),
            created_at_unix_ms: 1_700_000_000_000,
        }))
    }

    async fn set_fault_injection(
        &self,
        request: Request<FaultInjection>,
    ) -> Result<Response<FaultInjection>, Status> {
        self.hit();
        let mut settings = request.into_inner();
        if !(0.0..=1.0).contains(&settings.drop_probability) {
            return Err(Status::invalid_argument("drop_probability outside [0, 1]"));
        }
        if settings.clear {
            settings = FaultInjection {
                chain: settings.chain,
                ..Default::default()
            };
        }
        settings.active = settings.drop_probability > 0.0
            || settings.added_delay_ms > 0
            || settings.jitter_ms > 0
            || !settings.partitions.is_empty();
        Ok(Response::new(settings))
    }

    async fn get_fault_injection(
        &self,
        request: Request<GetFaultInjectionRequest>,
    ) -> Result<Response<FaultInjection>, Status> {
        self.hit();
        Ok(Response::new(FaultInjection {
            chain: request.into_inner().chain,
            ..Default::default()
        }))
    }
}

struct TestTransactions;

fn admit(index: u64, tx: &[u8]) -> TxResult {
    let (status, reason) = match tx.first() {
        None => (TxStatus::InvalidEncoding, "empty transaction"),
        Some(0xFF) => (TxStatus::InvalidSignature, "bad signature"),
        Some(_) => (TxStatus::Accepted, ""),
    };
    TxResult {
        index,
        digest: if tx.is_empty() {
            Vec::new()
        } else {
            digest(0x77, index)
        },
        status: status as i32,
        reason: reason.into(),
        retry_after_ms: 0,
    }
}

#[tonic::async_trait]
impl Transactions for TestTransactions {
    async fn submit_transactions(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<SubmitSummary>, Status> {
        let mut stream = request.into_inner();
        let mut summary = SubmitSummary {
            chain: Chain::Delta as i32,
            ..Default::default()
        };
        while let Some(message) = stream.message().await? {
            for tx in &message.transactions {
                let result = admit(summary.received, tx);
                summary.received += 1;
                if result.status() == TxStatus::Accepted {
                    summary.accepted += 1;
                } else {
                    summary.rejected += 1;
                    summary.rejected_results.push(result);
                }
            }
        }
        summary.status_counts = vec![
            StatusCount {
                status: TxStatus::Accepted as i32,
                count: summary.accepted,
            },
            StatusCount {
                status: TxStatus::InvalidSignature as i32,
                count: summary.rejected,
            },
        ];
        Ok(Response::new(summary))
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let req = request.into_inner();
        if req.transactions.len() > dualchain_proto::limits::MAX_TXS_PER_MESSAGE {
            return Err(Status::invalid_argument("too many transactions"));
        }
        let results: Vec<TxResult> = req
            .transactions
            .iter()
            .enumerate()
            .map(|(i, tx)| admit(i as u64, tx))
            .collect();
        let accepted = results
            .iter()
            .filter(|r| r.status() == TxStatus::Accepted)
            .count() as u32;
        Ok(Response::new(SubmitBatchResponse {
            chain: Chain::Delta as i32,
            rejected: results.len() as u32 - accepted,
            accepted,
            results,
            mempool_depth: 0,
        }))
    }
}

// ------------------------------------------------------------------ server

struct TestServer {
    addr: SocketAddr,
    admin_calls: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    /// Serves the doubles on an ephemeral loopback port; Admin is wrapped in
    /// the crate's token enforcement.
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        assert!(addr.ip().is_loopback());
        let admin = TestAdmin::default();
        let admin_calls = admin.calls.clone();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NodeServer::new(TestNode))
                .add_service(AdminServer::with_interceptor(
                    admin,
                    RequireAdminToken::new(TOKEN),
                ))
                .add_service(TransactionsServer::new(TestTransactions))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stop.await;
                }),
        );
        Self {
            addr,
            admin_calls,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect to test server")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .await
            .expect("server task")
            .expect("server ran cleanly");
    }
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn get_status_round_trip() {
    bounded(async {
        let server = TestServer::start().await;
        let mut node = NodeClient::new(server.channel().await);

        let status = node
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus")
            .into_inner();
        assert_eq!(status.node_version, "0.1.0+test");
        assert_eq!(status.validator_index, Some(0), "index 0 survives as Some");
        assert_eq!(status.validator_key_digest.len(), 32);
        assert_eq!(status.epoch, 7);
        assert_eq!(status.peer_id, "validator-0");
        assert_eq!(status.chains.len(), 1);
        let delta = &status.chains[0];
        assert_eq!(delta.chain(), Chain::Delta);
        assert_eq!((delta.height, delta.finalized_height), (120, 117));
        assert_eq!(delta.health(), Health::Degraded);
        assert_eq!(delta.health_reason, "2 of 3 peers");
        assert_eq!(delta.mempool_depth, 42);
        assert_eq!(delta.latest_state_root, digest(0x55, 120));
        assert!(delta.fault_injection_active);
        assert!(!delta.paused);

        let block = node
            .get_block(GetBlockRequest {
                chain: Chain::Delta as i32,
                height: 117,
                include_body: true,
                include_certificate: false,
            })
            .await
            .expect("GetBlock")
            .into_inner();
        assert_eq!(block.header.as_ref().map(|h| h.height), Some(117));
        assert_eq!(block.body, Some(Vec::new()), "requested empty body is Some");
        assert!(block.finalized);

        let missing = node
            .get_block(GetBlockRequest {
                chain: Chain::Delta as i32,
                height: 10_000,
                ..Default::default()
            })
            .await
            .expect_err("block above head");
        assert_eq!(missing.code(), tonic::Code::NotFound);

        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn stream_finality_yields_events_in_order() {
    bounded(async {
        let server = TestServer::start().await;
        let mut node = NodeClient::new(server.channel().await);

        let mut stream = node
            .stream_finality(StreamFinalityRequest {
                chain: Chain::Delta as i32,
                from_height: Some(40),
                include_tx_digests: true,
            })
            .await
            .expect("StreamFinality")
            .into_inner();

        let mut heights = Vec::new();
        while let Some(event) = stream.message().await.expect("stream item") {
            assert_eq!(event.kind(), FinalityEventKind::DeltaBlockFinalized);
            assert_eq!(event.kind().spec_name(), Some("delta_block_finalized"));
            assert_eq!(event.chain(), Chain::Delta);
            assert_eq!(event.block_digest, digest(0xDD, event.height));
            assert_eq!(event.tx_digests.len(), event.tx_count as usize);
            assert!(event.replayed);
            heights.push(event.height);
        }
        assert_eq!(heights, vec![40, 41, 42, 43, 44]);

        // Without from_height: live events only, no digests unless asked.
        let live: Vec<FinalityEvent> = node
            .stream_finality(StreamFinalityRequest {
                chain: Chain::Unspecified as i32,
                from_height: None,
                include_tx_digests: false,
            })
            .await
            .expect("StreamFinality")
            .into_inner()
            .map(|item| item.expect("stream item"))
            .collect()
            .await;
        let live_heights: Vec<u64> = live.iter().map(|e| e.height).collect();
        assert_eq!(live_heights, vec![100, 101, 102, 103, 104]);
        assert!(live.iter().all(|e| !e.replayed && e.tx_digests.is_empty()));

        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn admin_requires_the_bearer_token() {
    bounded(async {
        let server = TestServer::start().await;
        let channel = server.channel().await;

        // No token at all: refused before reaching the service.
        let mut anonymous = AdminClient::new(channel.clone());
        let refused = anonymous
            .pause_chain(PauseChainRequest {
                chain: Chain::Delta as i32,
                reason: "test".into(),
            })
            .await
            .expect_err("call without token must fail");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(
            !refused.message().contains(TOKEN),
            "message leaks the token"
        );

        // A wrong token: refused the same way, revealing neither token.
        let wrong = "not-the-token";
        let mut impostor =
            AdminClient::with_interceptor(channel.clone(), AdminToken::new(wrong).unwrap());
        let refused = impostor
            .trigger_snapshot(TriggerSnapshotRequest {
                chain: Chain::Delta as i32,
            })
            .await
            .expect_err("call with wrong token must fail");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(!refused.message().contains(TOKEN));
        assert!(!refused.message().contains(wrong));
        let metadata_dump = format!("{:?}", refused.metadata());
        assert!(!metadata_dump.contains(TOKEN));
        assert_eq!(
            server.admin_calls.load(Ordering::SeqCst),
            0,
            "refused calls must not reach the service"
        );

        // The right token, attached by the client-side interceptor.
        let mut admin =
            AdminClient::with_interceptor(channel.clone(), AdminToken::new(TOKEN).unwrap());
        let paused = admin
            .pause_chain(PauseChainRequest {
                chain: Chain::Delta as i32,
                reason: "test".into(),
            })
            .await
            .expect("PauseChain with token")
            .into_inner();
        assert_eq!(paused.chain(), Chain::Delta);
        assert_eq!(paused.height, 120);

        let snapshot = admin
            .trigger_snapshot(TriggerSnapshotRequest {
                chain: Chain::Delta as i32,
            })
            .await
            .expect("TriggerSnapshot with token")
            .into_inner();
        assert_eq!(snapshot.height, 117);
        assert_eq!(snapshot.checksum.len(), 32);

        let faults = admin
            .set_fault_injection(FaultInjection {
                chain: Chain::Delta as i32,
                drop_probability: 0.25,
                added_delay_ms: 50,
                jitter_ms: 10,
                partitions: vec![dualchain_proto::v1::PeerGroup {
                    peer_ids: vec!["validator-0".into(), "validator-1".into()],
                }],
                ..Default::default()
            })
            .await
            .expect("SetFaultInjection with token")
            .into_inner();
        assert!(faults.active);
        assert_eq!(faults.partitions[0].peer_ids.len(), 2);

        let bad = admin
            .set_fault_injection(FaultInjection {
                drop_probability: 1.5,
                ..Default::default()
            })
            .await
            .expect_err("out-of-range probability");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);

        // A raw metadata entry works too (e.g. from grpcurl -H).
        let mut request = Request::new(GetFaultInjectionRequest {
            chain: Chain::Delta as i32,
        });
        request.metadata_mut().insert(
            ADMIN_AUTH_METADATA_KEY,
            format!("Bearer {TOKEN}").parse().unwrap(),
        );
        let current = AdminClient::new(channel)
            .get_fault_injection(request)
            .await
            .expect("GetFaultInjection with raw header")
            .into_inner();
        assert_eq!(current.chain(), Chain::Delta);

        assert_eq!(server.admin_calls.load(Ordering::SeqCst), 5);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn transactions_batch_and_stream() {
    bounded(async {
        let server = TestServer::start().await;
        let mut txs = TransactionsClient::new(server.channel().await);

        let batch = txs
            .submit_batch(SubmitBatchRequest {
                chain: Chain::Delta as i32,
                transactions: vec![vec![1, 2], vec![0xFF], vec![]],
            })
            .await
            .expect("SubmitBatch")
            .into_inner();
        let statuses: Vec<(u64, TxStatus)> = batch
            .results
            .iter()
            .map(|r| (r.index, r.status()))
            .collect();
        assert_eq!(
            statuses,
            [
                (0, TxStatus::Accepted),
                (1, TxStatus::InvalidSignature),
                (2, TxStatus::InvalidEncoding)
            ]
        );
        assert_eq!((batch.accepted, batch.rejected), (1, 2));

        let messages = (0..4u8).map(|m| SubmitRequest {
            chain: Chain::Delta as i32,
            transactions: vec![vec![m, 1], vec![if m == 2 { 0xFF } else { m }, 2]],
        });
        let summary = txs
            .submit_transactions(tokio_stream::iter(messages))
            .await
            .expect("SubmitTransactions")
            .into_inner();
        assert_eq!(
            (summary.received, summary.accepted, summary.rejected),
            (8, 7, 1)
        );
        assert_eq!(summary.rejected_results.len(), 1);
        assert_eq!(
            summary.rejected_results[0].index, 5,
            "index counts across the stream"
        );

        server.stop().await;
    })
    .await;
}
