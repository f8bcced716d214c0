//! The real server on 127.0.0.1:0 with the generated clients, against a fake chain.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use dualchain_api::{AdminCredential, ApiOptions, ApiServeError, ChainApi};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{BlockBody, BlockCertificate, BlockHeader, ChainId};
use dualchain_proto::limits::{
    MAX_ATTEST_TX_BYTES, MAX_ORDERING_EVENT_DIGESTS, MAX_TX_BYTES, MAX_TXS_PER_MESSAGE,
};
use dualchain_proto::v1::{
    Chain, FaultInjection, FinalityEvent, FinalityEventKind, GetBlockRequest,
    GetFaultInjectionRequest, GetStatusRequest, OrderingEvent, PauseChainRequest, PeerGroup,
    ResumeChainRequest, StreamFinalityRequest, StreamOrderingRequest, SubmitBatchRequest,
    SubmitRequest, TriggerSnapshotRequest, TxStatus,
};
use dualchain_proto::{AdminClient, AdminToken, NodeClient, TransactionsClient};
use tonic::Code;
use tonic::Streaming;
use tonic::transport::Channel;

use support::{FakeChain, Running, TOKEN, bounded, options_with_token, peer_id};

async fn delta_server() -> Running {
    Running::start(FakeChain::new(ChainId::Delta, 64), options_with_token()).await
}

fn admin(
    channel: Channel,
    token: &str,
) -> AdminClient<tonic::service::interceptor::InterceptedService<Channel, AdminToken>> {
    AdminClient::with_interceptor(channel, AdminToken::new(token).unwrap())
}

async fn next_event(stream: &mut Streaming<FinalityEvent>) -> FinalityEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no finality event within 10 s")
        .expect("stream failed")
        .expect("stream ended")
}

// ------------------------------------------------------------- transactions

/// `len` bytes whose kind tag says "attestation" (the API reads only the tag).
fn attestation_shaped(len: usize) -> Vec<u8> {
    let mut bytes = vec![9; len];
    bytes[1 + 1 + 32 + 8 + 8] = 17;
    bytes
}

#[test]
fn the_documented_limits_are_the_codecs() {
    use dualchain_core::types::tx_limits;
    assert_eq!(MAX_TX_BYTES, tx_limits::MAX_TX_BYTES);
    assert_eq!(MAX_ATTEST_TX_BYTES, tx_limits::MAX_ATTEST_TX_BYTES);
}

#[tokio::test]
async fn submit_batch_maps_every_transaction_in_order() {
    bounded(async {
        let server = delta_server().await;
        let mut client = TransactionsClient::new(server.channel().await);
        let transactions = vec![
            b"first".to_vec(),
            Vec::new(),
            vec![7; MAX_TX_BYTES + 1],
            vec![0xFF, 1, 2],
            b"first".to_vec(),
            vec![8; MAX_TX_BYTES],
            attestation_shaped(MAX_TX_BYTES + 1),
            attestation_shaped(MAX_ATTEST_TX_BYTES + 1),
        ];
        let response = client
            .submit_batch(SubmitBatchRequest {
                chain: Chain::Unspecified as i32,
                transactions,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.chain(), Chain::Delta);
        let statuses: Vec<_> = response.results.iter().map(|r| r.status()).collect();
        assert_eq!(
            statuses,
            vec![
                TxStatus::Accepted,
                TxStatus::InvalidEncoding,
                TxStatus::TooLarge,
                TxStatus::InvalidSignature,
                TxStatus::Duplicate,
                TxStatus::Accepted,
                TxStatus::Accepted,
                TxStatus::TooLarge,
            ]
        );
        let indexes: Vec<_> = response.results.iter().map(|r| r.index).collect();
        assert_eq!(indexes, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(response.accepted, 3);
        assert_eq!(response.rejected, 5);
        assert_eq!(response.mempool_depth, 3);
        let too_large = &response.results[2];
        assert!(too_large.digest.is_empty());
        assert!(too_large.reason.contains("131072"), "{}", too_large.reason);
        let attestation_too_large = &response.results[7];
        assert!(
            attestation_too_large.reason.contains("6704052"),
            "{}",
            attestation_too_large.reason
        );
        assert_eq!(response.results[0].digest.len(), 32);
        // The oversized transactions never reached the chain; an attestation above
        // the ordinary limit did.
        let lengths = server.fake.submitted_lengths.lock().unwrap().clone();
        assert_eq!(lengths.len(), 6);
        assert!(lengths[..5].iter().all(|&len| len <= MAX_TX_BYTES));
        assert_eq!(lengths[5], MAX_TX_BYTES + 1);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn submit_batch_refuses_wrong_chain_bad_chain_and_too_many() {
    bounded(async {
        let server = delta_server().await;
        let mut client = TransactionsClient::new(server.channel().await);
        let wrong = client
            .submit_batch(SubmitBatchRequest {
                chain: Chain::Alpha as i32,
                transactions: vec![b"x".to_vec()],
            })
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::FailedPrecondition);
        assert!(
            wrong.message().contains("CHAIN_DELTA"),
            "{}",
            wrong.message()
        );

        let unknown = client
            .submit_batch(SubmitBatchRequest {
                chain: 42,
                transactions: vec![b"x".to_vec()],
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::InvalidArgument);

        let too_many = client
            .submit_batch(SubmitBatchRequest {
                chain: Chain::Delta as i32,
                transactions: vec![vec![1]; MAX_TXS_PER_MESSAGE + 1],
            })
            .await
            .unwrap_err();
        assert_eq!(too_many.code(), Code::InvalidArgument);
        assert!(
            too_many.message().contains("10000"),
            "{}",
            too_many.message()
        );
        assert!(server.fake.submitted_lengths.lock().unwrap().is_empty());

        let empty = client
            .submit_batch(SubmitBatchRequest {
                chain: Chain::Delta as i32,
                transactions: Vec::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(empty.results.is_empty());
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn message_size_limit_is_configurable() {
    bounded(async {
        let options = ApiOptions {
            max_message_bytes: 256 * 1024,
            ..options_with_token()
        };
        let server = Running::start(FakeChain::new(ChainId::Delta, 64), options).await;
        let mut client = TransactionsClient::new(server.channel().await);
        let status = client
            .submit_batch(SubmitBatchRequest {
                chain: 0,
                transactions: vec![vec![1; 100 * 1024]; 4],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("limit"), "{}", status.message());
        let streamed = client
            .submit_transactions(tokio_stream::iter(vec![
                SubmitRequest {
                    chain: 0,
                    transactions: vec![b"small".to_vec()],
                },
                SubmitRequest {
                    chain: 0,
                    transactions: vec![vec![1; 100 * 1024]; 4],
                },
            ]))
            .await
            .unwrap_err();
        assert_eq!(streamed.code(), Code::ResourceExhausted);
        assert_eq!(
            server.fake.mempool_depth(),
            1,
            "the first message was admitted"
        );
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn submit_stream_summarises_with_indexes_across_messages() {
    bounded(async {
        let server = delta_server().await;
        let mut client = TransactionsClient::new(server.channel().await);
        let messages = vec![
            SubmitRequest {
                chain: Chain::Delta as i32,
                transactions: vec![b"a".to_vec(), b"b".to_vec()],
            },
            SubmitRequest {
                chain: Chain::Unspecified as i32,
                transactions: Vec::new(),
            },
            SubmitRequest {
                chain: Chain::Delta as i32,
                transactions: vec![b"a".to_vec(), vec![0xFF], vec![0; MAX_TX_BYTES + 1]],
            },
        ];
        let summary = client
            .submit_transactions(tokio_stream::iter(messages))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summary.chain(), Chain::Delta);
        assert_eq!(summary.received, 5);
        assert_eq!(summary.accepted, 2);
        assert_eq!(summary.rejected, 3);
        let counts: Vec<_> = summary
            .status_counts
            .iter()
            .map(|c| (c.status(), c.count))
            .collect();
        assert_eq!(
            counts,
            vec![
                (TxStatus::Accepted, 2),
                (TxStatus::Duplicate, 1),
                (TxStatus::InvalidSignature, 1),
                (TxStatus::TooLarge, 1),
            ]
        );
        let rejected: Vec<_> = summary
            .rejected_results
            .iter()
            .map(|r| (r.index, r.status()))
            .collect();
        assert_eq!(
            rejected,
            vec![
                (2, TxStatus::Duplicate),
                (3, TxStatus::InvalidSignature),
                (4, TxStatus::TooLarge)
            ]
        );
        assert!(!summary.results_truncated);
        assert_eq!(summary.mempool_depth, 2);

        let empty = client
            .submit_transactions(tokio_stream::iter(Vec::<SubmitRequest>::new()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(empty.received, 0);
        assert_eq!(empty.chain(), Chain::Delta);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn submit_stream_refuses_a_chain_change_but_keeps_what_was_admitted() {
    bounded(async {
        let server = delta_server().await;
        let mut client = TransactionsClient::new(server.channel().await);
        let messages = vec![
            SubmitRequest {
                chain: Chain::Delta as i32,
                transactions: vec![b"kept".to_vec()],
            },
            SubmitRequest {
                chain: Chain::Alpha as i32,
                transactions: vec![b"refused".to_vec()],
            },
        ];
        let status = client
            .submit_transactions(tokio_stream::iter(messages))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(server.fake.mempool_depth(), 1);

        let first_wrong = client
            .submit_transactions(tokio_stream::iter(vec![SubmitRequest {
                chain: Chain::Alpha as i32,
                transactions: vec![b"x".to_vec()],
            }]))
            .await
            .unwrap_err();
        assert_eq!(first_wrong.code(), Code::FailedPrecondition);

        let too_many = client
            .submit_transactions(tokio_stream::iter(vec![SubmitRequest {
                chain: 0,
                transactions: vec![vec![2]; MAX_TXS_PER_MESSAGE + 1],
            }]))
            .await
            .unwrap_err();
        assert_eq!(too_many.code(), Code::InvalidArgument);
        assert_eq!(server.fake.mempool_depth(), 1);
        drop(server.stop().await);
    })
    .await;
}

// ------------------------------------------------------------- node

#[tokio::test]
async fn status_comes_from_the_chain() {
    bounded(async {
        let server = delta_server().await;
        server.fake.commit_many(3);
        let mut client = NodeClient::new(server.channel().await);
        let status = client
            .get_status(GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.peer_id, "validator-0");
        assert_eq!(status.network_id, support::NETWORK.0.as_bytes().to_vec());
        assert_eq!(status.chains.len(), 1);
        assert_eq!(status.chains[0].chain(), Chain::Delta);
        assert_eq!(status.chains[0].height, 3);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn get_block_found_with_body_and_certificate() {
    bounded(async {
        let server = delta_server().await;
        server.fake.certify.store(true, Ordering::SeqCst);
        server.fake.commit(3);
        let mut client = NodeClient::new(server.channel().await);
        let block = client
            .get_block(GetBlockRequest {
                chain: Chain::Delta as i32,
                height: 1,
                include_body: true,
                include_certificate: true,
            })
            .await
            .unwrap()
            .into_inner();
        let stored = server.fake.stored_block(1).unwrap();
        let header = block.header.as_ref().unwrap();
        assert_eq!(header.height, 1);
        assert_eq!(header.tx_count, 3);
        assert_eq!(
            header.digest,
            stored.block.header.digest().as_bytes().to_vec()
        );
        assert_eq!(
            BlockHeader::from_canonical_bytes(&block.header_bytes).unwrap(),
            stored.block.header
        );
        assert_eq!(
            BlockBody::from_canonical_bytes(block.body.as_deref().unwrap()).unwrap(),
            stored.block.body
        );
        let certificate = block.certificate.unwrap();
        assert_eq!(certificate.signer_indices, vec![0, 1, 3]);
        assert_eq!(certificate.signer_count, 3);
        assert_eq!(certificate.validator_count, 4);
        assert_eq!(
            BlockCertificate::from_canonical_bytes(&certificate.certificate_bytes).ok(),
            stored.certificate
        );
        assert!(block.finalized);

        let bare = client
            .get_block(GetBlockRequest {
                chain: 0,
                height: 1,
                include_body: false,
                include_certificate: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(bare.body.is_none());
        assert!(bare.certificate.is_none());
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn get_block_not_found_pruned_and_wrong_chain() {
    bounded(async {
        let server = delta_server().await;
        server.fake.keep_last.store(3, Ordering::SeqCst);
        server.fake.commit_many(5);
        let mut client = NodeClient::new(server.channel().await);
        let request = |chain: Chain, height| GetBlockRequest {
            chain: chain as i32,
            height,
            include_body: false,
            include_certificate: false,
        };
        let above = client
            .get_block(request(Chain::Delta, 99))
            .await
            .unwrap_err();
        assert_eq!(above.code(), Code::NotFound);
        assert!(
            above.message().contains("above the finalized height 5"),
            "{}",
            above.message()
        );
        let pruned = client
            .get_block(request(Chain::Delta, 1))
            .await
            .unwrap_err();
        assert_eq!(pruned.code(), Code::NotFound);
        assert!(pruned.message().contains("pruned"), "{}", pruned.message());
        let wrong = client
            .get_block(request(Chain::Alpha, 4))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::FailedPrecondition);
        assert!(client.get_block(request(Chain::Delta, 4)).await.is_ok());
        drop(server.stop().await);
    })
    .await;
}

// ------------------------------------------------------------- finality

fn stream_request(from_height: Option<u64>, include_tx_digests: bool) -> StreamFinalityRequest {
    StreamFinalityRequest {
        chain: Chain::Unspecified as i32,
        from_height,
        include_tx_digests,
    }
}

#[tokio::test]
async fn finality_stream_replays_then_goes_live_without_duplicates() {
    bounded(async {
        let server = delta_server().await;
        for _ in 0..5 {
            server.fake.commit(2);
        }
        // One more block lands between the subscription and the replay's read
        // of the finalized height: it must be sent once.
        server
            .fake
            .commit_on_subscribe
            .store(true, Ordering::SeqCst);
        let mut client = NodeClient::new(server.channel().await);
        let mut stream = client
            .stream_finality(stream_request(Some(2), true))
            .await
            .unwrap()
            .into_inner();
        server
            .fake
            .commit_on_subscribe
            .store(false, Ordering::SeqCst);
        for height in 2..=6 {
            let event = next_event(&mut stream).await;
            assert_eq!(event.height, height);
            assert!(event.replayed, "height {height} is a replay");
            assert_eq!(event.kind(), FinalityEventKind::DeltaBlockFinalized);
            assert_eq!(event.chain(), Chain::Delta);
            assert_eq!(event.tx_digests.len(), event.tx_count as usize);
            assert_eq!(event.block_digest.len(), 32);
        }
        server.fake.commit(1);
        server.fake.commit(0);
        let live = next_event(&mut stream).await;
        assert_eq!((live.height, live.replayed), (7, false));
        assert_eq!(live.tx_digests.len(), 1);
        let expected_digest = server.fake.stored_block(7).unwrap().block.body.transactions[0]
            .digest()
            .as_bytes()
            .to_vec();
        assert_eq!(live.tx_digests[0], expected_digest);
        assert_eq!(next_event(&mut stream).await.height, 8);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn finality_stream_without_start_sends_only_new_blocks() {
    bounded(async {
        let server = delta_server().await;
        server.fake.commit_many(4);
        let mut client = NodeClient::new(server.channel().await);
        let mut stream = client
            .stream_finality(stream_request(None, false))
            .await
            .unwrap()
            .into_inner();
        server.fake.commit(3);
        let event = next_event(&mut stream).await;
        assert_eq!((event.height, event.replayed), (5, false));
        assert!(event.tx_digests.is_empty(), "digests only when asked for");
        assert_eq!(event.tx_count, 3);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn a_lagging_stream_is_repaired_from_the_store() {
    bounded(async {
        // A broadcast buffer of 4: committing 200 blocks at once lags the
        // stream's receiver far behind.
        let server = Running::start(FakeChain::new(ChainId::Delta, 4), options_with_token()).await;
        let mut client = NodeClient::new(server.channel().await);
        let mut stream = client
            .stream_finality(stream_request(None, false))
            .await
            .unwrap()
            .into_inner();
        server.fake.commit_many(200);
        for height in 1..=200 {
            let event = next_event(&mut stream).await;
            assert_eq!(event.height, height, "every height once, in order");
            assert!(!event.replayed);
        }
        server.fake.commit(0);
        assert_eq!(next_event(&mut stream).await.height, 201);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_lost_unstored_events_ends_with_resource_exhausted() {
    bounded(async {
        let server = Running::start(FakeChain::new(ChainId::Delta, 4), options_with_token()).await;
        server.fake.keep_last.store(10, Ordering::SeqCst);
        let mut client = NodeClient::new(server.channel().await);
        let mut stream = client
            .stream_finality(stream_request(None, false))
            .await
            .unwrap()
            .into_inner();
        server.fake.commit_many(100);
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("stream stalled")
            {
                Ok(Some(event)) => assert!(event.height <= 100),
                Ok(None) => panic!("stream ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("no longer stored"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("from_height"));
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn replay_start_out_of_range_and_wrong_chain() {
    bounded(async {
        let options = ApiOptions {
            max_replay_blocks: 10,
            ..options_with_token()
        };
        let server = Running::start(FakeChain::new(ChainId::Delta, 64), options).await;
        server.fake.commit_many(30);
        let mut client = NodeClient::new(server.channel().await);
        let too_old = client
            .stream_finality(stream_request(Some(5), false))
            .await
            .unwrap_err();
        assert_eq!(too_old.code(), Code::OutOfRange);
        assert!(too_old.message().contains(">= 21"), "{}", too_old.message());

        server.fake.keep_last.store(5, Ordering::SeqCst);
        server.fake.commit(0);
        let pruned = client
            .stream_finality(stream_request(Some(25), false))
            .await
            .unwrap_err();
        assert_eq!(pruned.code(), Code::OutOfRange);
        assert!(pruned.message().contains("pruned"), "{}", pruned.message());

        let wrong = client
            .stream_finality(StreamFinalityRequest {
                chain: Chain::Alpha as i32,
                from_height: None,
                include_tx_digests: false,
            })
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::FailedPrecondition);

        // A start in the future waits for that height.
        let mut future = client
            .stream_finality(stream_request(Some(33), false))
            .await
            .unwrap()
            .into_inner();
        server.fake.commit_many(3);
        let event = next_event(&mut future).await;
        assert_eq!((event.height, event.replayed), (33, false));
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn a_halted_chain_ends_the_stream_with_unavailable() {
    bounded(async {
        let server = delta_server().await;
        let mut client = NodeClient::new(server.channel().await);
        let mut stream = client
            .stream_finality(stream_request(None, false))
            .await
            .unwrap()
            .into_inner();
        server.fake.commit(0);
        assert_eq!(next_event(&mut stream).await.height, 1);
        server.fake.halt();
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("from_height 2"),
            "{}",
            status.message()
        );
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_returns() {
    bounded(async {
        let mut server = delta_server().await;
        let mut client = NodeClient::new(server.channel().await);
        let mut stream = client
            .stream_finality(stream_request(Some(0), false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next_event(&mut stream).await.height, 0);
        server.begin_stop();
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("shutting down"));
        let stopped = tokio::time::timeout(Duration::from_secs(4), server.join())
            .await
            .expect("graceful shutdown finished before the grace period");
        assert!(stopped.is_ok());
    })
    .await;
}

// ------------------------------------------------------------- ordering

async fn ordering_stream(server: &Running, chain: Chain) -> Streaming<OrderingEvent> {
    NodeClient::new(server.channel().await)
        .stream_ordering(StreamOrderingRequest {
            chain: chain as i32,
        })
        .await
        .expect("StreamOrdering")
        .into_inner()
}

async fn next_ordering(stream: &mut Streaming<OrderingEvent>) -> OrderingEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no ordering event within 10 s")
        .expect("stream failed")
        .expect("stream ended")
}

fn digest_bytes(digests: &[dualchain_core::Digest]) -> Vec<Vec<u8>> {
    digests.iter().map(|d| d.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn ordering_stream_sends_each_commit_live_in_order_and_splits_a_large_one() {
    bounded(async {
        let server = delta_server().await;
        // Before the stream opens: not replayed.
        server.fake.order(0, 2);
        let mut stream = ordering_stream(&server, Chain::Unspecified).await;
        let first = server.fake.order(1, 3);
        let large = server.fake.order(2, MAX_ORDERING_EVENT_DIGESTS + 1);
        server.fake.order(3, 0);

        let event = next_ordering(&mut stream).await;
        assert_eq!(event.chain(), Chain::Delta);
        assert_eq!((event.epoch, event.commit_sequence), (2, 1));
        assert_eq!(event.ordered_at_unix_ms, 1_700_000_000_001);
        assert_eq!(event.commit_timestamp_ms, 1_699_999_999_001);
        assert_eq!(event.tx_digests, digest_bytes(&first));
        assert_eq!(event.missed_before, 0);

        let head = next_ordering(&mut stream).await;
        let tail = next_ordering(&mut stream).await;
        assert_eq!((head.commit_sequence, tail.commit_sequence), (2, 2));
        assert_eq!(head.tx_digests.len(), MAX_ORDERING_EVENT_DIGESTS);
        let streamed: Vec<Vec<u8>> = head.tx_digests.into_iter().chain(tail.tx_digests).collect();
        assert_eq!(streamed, digest_bytes(&large));

        let empty = next_ordering(&mut stream).await;
        assert_eq!(empty.commit_sequence, 3);
        assert!(empty.tx_digests.is_empty());
        drop(server.stop().await);
    })
    .await;
}

/// A reader that does not keep up loses whole commits, never part of one, and
/// every commit is either delivered or counted in the next event's
/// `missed_before`.
#[tokio::test]
async fn a_slow_ordering_reader_loses_whole_commits_and_is_told_how_many() {
    bounded(async {
        let server = Running::start(FakeChain::new(ChainId::Delta, 16), options_with_token()).await;
        let mut stream = ordering_stream(&server, Chain::Delta).await;
        const COMMITS: u64 = 20_000;
        for sequence in 0..COMMITS {
            server.fake.order(sequence, 3);
            if sequence % 1_000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // A marker after the flood: reading until it arrives sees everything the
        // stream kept, and it carries the count of any commits lost just before it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.fake.order(COMMITS, 1);
        let (mut delivered, mut missed, mut last) = (0u64, 0u64, None);
        loop {
            let event = next_ordering(&mut stream).await;
            assert_eq!(
                event.tx_digests.len(),
                if event.commit_sequence == COMMITS {
                    1
                } else {
                    3
                }
            );
            if let Some(last) = last {
                assert_eq!(
                    event.commit_sequence,
                    last + 1 + event.missed_before,
                    "a gap is exactly the commits the event says were missed"
                );
            }
            last = Some(event.commit_sequence);
            delivered += 1;
            missed += event.missed_before;
            if event.commit_sequence == COMMITS {
                break;
            }
        }
        assert!(
            missed > 0,
            "20,000 unread commits overflow a 256-event buffer"
        );
        assert_eq!(delivered + missed, COMMITS + 1);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn ordering_stream_wrong_chain_and_halt() {
    bounded(async {
        let server = delta_server().await;
        let wrong = NodeClient::new(server.channel().await)
            .stream_ordering(StreamOrderingRequest {
                chain: Chain::Alpha as i32,
            })
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::FailedPrecondition);

        let mut stream = ordering_stream(&server, Chain::Delta).await;
        server.fake.order(0, 1);
        assert_eq!(next_ordering(&mut stream).await.commit_sequence, 0);
        server.fake.halt();
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("stopped publishing commits"),
            "{}",
            status.message()
        );
        drop(server.stop().await);
    })
    .await;
}

// ------------------------------------------------------------- admin

/// `Admin` is never served on the public port: with or without a token, and
/// with the right token, an Admin call there is UNIMPLEMENTED and changes nothing.
#[tokio::test]
async fn admin_is_never_on_the_public_port() {
    bounded(async {
        for options in [
            options_with_token(),
            ApiOptions {
                admin_token: None,
                ..options_with_token()
            },
        ] {
            let server = Running::start(FakeChain::new(ChainId::Alpha, 64), options).await;
            let channel = server.channel().await;
            let status = admin(channel.clone(), TOKEN)
                .pause_chain(PauseChainRequest {
                    chain: 0,
                    reason: String::new(),
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
            let status = AdminClient::new(channel)
                .get_fault_injection(GetFaultInjectionRequest { chain: 0 })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
            assert!(
                !server.fake.node_status().chains[0].paused,
                "nothing was paused"
            );
            drop(server.stop().await);
        }
    })
    .await;
}

/// A token without an admin listener, a listener without a token, and TLS
/// without a listener are refused before anything listens.
#[tokio::test]
async fn admin_options_and_listeners_must_agree() {
    bounded(async {
        let fake = FakeChain::new(ChainId::Delta, 4);
        let cases = [
            (options_with_token(), false, "no admin listener"),
            (
                ApiOptions {
                    admin_token: None,
                    ..options_with_token()
                },
                true,
                "needs admin_token",
            ),
            (
                ApiOptions {
                    admin_token: None,
                    admin_tls: Some(support::admin_tls_identity()),
                    ..options_with_token()
                },
                false,
                "admin_tls is set",
            ),
            (
                ApiOptions {
                    admin_tls: Some(dualchain_api::AdminTls {
                        certificate_pem: b"not a certificate".to_vec(),
                        private_key_pem: b"not a key".to_vec(),
                    }),
                    ..options_with_token()
                },
                true,
                "not usable",
            ),
        ];
        for (options, with_admin, expected) in cases {
            let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let admin = match with_admin {
                true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
                false => None,
            };
            let listeners = dualchain_api::ApiListeners { api, admin };
            let error = dualchain_api::serve_api_on(
                listeners,
                fake.clone(),
                options,
                std::future::pending(),
            )
            .await
            .unwrap_err();
            assert!(matches!(error, ApiServeError::InvalidOptions(_)), "{error}");
            assert!(error.to_string().contains(expected), "{error}");
            assert!(!error.to_string().contains(TOKEN), "{error}");
        }
    })
    .await;
}

/// Over TLS the admin listener answers a client that trusts its certificate, and
/// no other: not a plaintext client, not one trusting another certificate.
#[tokio::test]
async fn the_admin_listener_over_tls_answers_only_clients_that_trust_it() {
    bounded(async {
        let options = ApiOptions {
            admin_tls: Some(support::admin_tls_identity()),
            ..options_with_token()
        };
        let server = Running::start(FakeChain::new(ChainId::Delta, 64), options).await;
        let paused = admin(server.admin_channel().await, TOKEN)
            .pause_chain(PauseChainRequest {
                chain: 0,
                reason: "over tls".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!paused.already_paused);
        assert!(server.fake.node_status().chains[0].paused);

        let addr = server.admin_addr.unwrap();
        let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let status = admin(plain, TOKEN)
            .resume_chain(ResumeChainRequest { chain: 0 })
            .await
            .unwrap_err();
        assert_ne!(status.code(), Code::Ok);

        let stranger = support::admin_tls_identity();
        let distrusting = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .tls_config(support::admin_tls_client(&stranger.certificate_pem))
            .unwrap();
        assert!(
            distrusting.connect().await.is_err(),
            "a certificate it does not trust"
        );
        assert!(
            server.fake.node_status().chains[0].paused,
            "neither client resumed the chain"
        );
        drop(server.stop().await);
    })
    .await;
}

/// A node configured with the BLAKE3 digest of its own admin token (what the
/// operator gives each validator) accepts that token and nothing else: not
/// another validator's token, not the digest itself.
#[tokio::test]
async fn a_digest_configured_node_accepts_its_token_and_refuses_another_validators() {
    bounded(async {
        let own = "6f776e2d746f6b656e2d6f662d76616c696461746f722d30";
        let another = "746f6b656e2d6f662d76616c696461746f722d312d2d2d2d";
        let digest = AdminCredential::digest_of(own);
        let options = ApiOptions {
            admin_token: Some(AdminCredential::Blake3Digest(digest)),
            ..options_with_token()
        };
        let server = Running::start(FakeChain::new(ChainId::Delta, 64), options).await;
        let channel = server.admin_channel().await;
        let pause = || PauseChainRequest {
            chain: Chain::Delta as i32,
            reason: "fault".into(),
        };
        for refused in [another, hex::encode(digest).as_str(), TOKEN] {
            let status = admin(channel.clone(), refused)
                .pause_chain(pause())
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
            assert!(!status.message().contains(refused));
            assert!(!status.message().contains(own));
        }
        let status = AdminClient::new(channel.clone())
            .pause_chain(pause())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        // The refused calls changed nothing: the first accepted pause is a new one.
        let paused = admin(channel, own)
            .pause_chain(pause())
            .await
            .unwrap()
            .into_inner();
        assert!(!paused.already_paused);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn admin_needs_the_right_token() {
    bounded(async {
        let server = delta_server().await;
        let channel = server.admin_channel().await;
        let mut anonymous = AdminClient::new(channel.clone());
        let missing = anonymous
            .resume_chain(ResumeChainRequest { chain: 0 })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::Unauthenticated);

        let mut wrong = admin(channel.clone(), "not-the-token");
        // Authentication comes before validation: an invalid request with a
        // wrong token is still UNAUTHENTICATED.
        let status = wrong
            .set_fault_injection(FaultInjection {
                drop_probability: 7.0,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(!status.message().contains(TOKEN));
        assert!(!status.message().contains("not-the-token"));

        let mut right = admin(channel, TOKEN);
        let paused = right
            .pause_chain(PauseChainRequest {
                chain: Chain::Delta as i32,
                reason: "maintenance".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(paused.chain(), Chain::Delta);
        assert!(!paused.already_paused);
        let again = right
            .pause_chain(PauseChainRequest {
                chain: 0,
                reason: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(again.already_paused);
        // The fake refuses snapshots while paused: ABORTED reaches the client.
        let busy = right
            .trigger_snapshot(TriggerSnapshotRequest { chain: 0 })
            .await
            .unwrap_err();
        assert_eq!(busy.code(), Code::Aborted);
        let resumed = right
            .resume_chain(ResumeChainRequest { chain: 0 })
            .await
            .unwrap()
            .into_inner();
        assert!(!resumed.already_running);
        let snapshot = right
            .trigger_snapshot(TriggerSnapshotRequest { chain: 0 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(snapshot.chain(), Chain::Delta);
        assert_eq!(snapshot.checksum.len(), 32);

        let long_reason = right
            .pause_chain(PauseChainRequest {
                chain: 0,
                reason: "x".repeat(257),
            })
            .await
            .unwrap_err();
        assert_eq!(long_reason.code(), Code::InvalidArgument);
        let other_chain = right
            .pause_chain(PauseChainRequest {
                chain: Chain::Alpha as i32,
                reason: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(other_chain.code(), Code::FailedPrecondition);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn fault_injection_is_validated_and_round_trips() {
    bounded(async {
        let server = delta_server().await;
        let mut right = admin(server.admin_channel().await, TOKEN);
        let invalid = [
            FaultInjection {
                drop_probability: f64::NAN,
                ..Default::default()
            },
            FaultInjection {
                drop_probability: 1.5,
                ..Default::default()
            },
            FaultInjection {
                added_delay_ms: 60_001,
                ..Default::default()
            },
            FaultInjection {
                partitions: vec![PeerGroup::default(); 65],
                ..Default::default()
            },
            FaultInjection {
                partitions: vec![PeerGroup {
                    peer_ids: vec!["p".into(); 1_025],
                }],
                ..Default::default()
            },
            FaultInjection {
                clear: true,
                jitter_ms: 5,
                ..Default::default()
            },
            FaultInjection {
                bandwidth_bytes_per_sec: 1_000,
                ..Default::default()
            },
            FaultInjection {
                clock_skew_ms: 3_600_001,
                ..Default::default()
            },
            // Partitions name peers by GetStatus.peer_id: 64 hex characters.
            FaultInjection {
                partitions: vec![PeerGroup {
                    peer_ids: vec![peer_id(0), "validator-1".into()],
                }],
                ..Default::default()
            },
        ];
        for faults in invalid {
            let status = right.set_fault_injection(faults.clone()).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{faults:?}");
        }
        assert!(
            !right
                .get_fault_injection(GetFaultInjectionRequest { chain: 0 })
                .await
                .unwrap()
                .into_inner()
                .active
        );

        let in_force = right
            .set_fault_injection(FaultInjection {
                chain: 0,
                drop_probability: 0.25,
                added_delay_ms: 100,
                partitions: vec![PeerGroup {
                    peer_ids: vec![peer_id(0), peer_id(1)],
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(in_force.chain(), Chain::Delta);
        assert!(in_force.active);
        let read = right
            .get_fault_injection(GetFaultInjectionRequest {
                chain: Chain::Delta as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.drop_probability, 0.25);
        assert_eq!(read.partitions.len(), 1);
        assert_eq!(read.partitions[0].peer_ids, vec![peer_id(0), peer_id(1)]);
        let cleared = right
            .set_fault_injection(FaultInjection {
                clear: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!cleared.active);
        assert!(!cleared.clear, "responses never say clear");
        drop(server.stop().await);
    })
    .await;
}

// ------------------------------------------------------------- errors

#[tokio::test]
async fn invalid_options_and_busy_ports_are_clear_errors() {
    bounded(async {
        let fake = FakeChain::new(ChainId::Delta, 4);
        let options = ApiOptions {
            admin_token: Some(String::new().into()),
            ..Default::default()
        };
        let error = dualchain_api::serve_api(
            "127.0.0.1:0".parse().unwrap(),
            fake.clone(),
            options,
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ApiServeError::InvalidOptions(_)), "{error}");

        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error =
            dualchain_api::serve_api(addr, fake, ApiOptions::default(), std::future::pending())
                .await
                .unwrap_err();
        assert!(matches!(error, ApiServeError::Bind { .. }), "{error}");
        assert!(error.to_string().contains(&addr.to_string()));
    })
    .await;
}
