//! The fake `dualchain.v1` node through real clients.

use std::time::Duration;

use dualchain_client::node as client;
use dualchain_core::types::Address;
use dualchain_proto::NodeClient;
use dualchain_proto::v1::{Chain, StreamFinalityRequest, TxStatus};
use dualchain_testkit::{FakeNode, FakeNodeConfig, workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admits_like_a_mempool_and_finalizes_the_admitted_digests() {
    let server = FakeNode::new(FakeNodeConfig::delta(100))
        .start()
        .await
        .unwrap();
    let url = server.url();
    assert!(client::is_ready(&url).await);
    let mut finality = NodeClient::new(client::connect(&url).await.unwrap())
        .stream_finality(StreamFinalityRequest {
            chain: Chain::Delta as i32,
            from_height: None,
            include_tx_digests: true,
        })
        .await
        .unwrap()
        .into_inner();

    let addresses: Vec<Address> = (0..4u8).map(|i| Address([i; 32])).collect();
    let mut txs = workload::unsigned_bytes(&workload::ring_transfers(&addresses, 0, 2));
    txs.push(txs[0].clone()); // duplicate
    txs.push(vec![1, 2, 3]); // garbage
    assert_eq!(client::submit(&url, Chain::Delta, &txs).await.unwrap(), 8);
    assert_eq!(server.node.accepted(), 8);

    let mut seen = 0;
    while seen < 8 {
        let event = tokio::time::timeout(Duration::from_secs(5), finality.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.tx_digests.len(), event.tx_count as usize);
        seen += event.tx_digests.len();
    }
    assert_eq!(seen, 8);
    assert!(server.node.finality_requests()[0].include_tx_digests);

    let (height, finalized) = client::chain_heights(&url, Chain::Delta).await.unwrap();
    assert!(height >= 1 && finalized == height);
    let (root, digest) = client::block_id(&url, Chain::Delta, height).await.unwrap();
    assert_eq!(
        root,
        hex::encode(server.node.state_root(Chain::Delta, height))
    );
    assert_eq!(
        digest,
        hex::encode(FakeNode::block_digest(Chain::Delta, height))
    );
    assert!(client::chain_status(&url, Chain::Alpha).await.is_err());

    // Signatures are checked unless unsigned transactions are allowed.
    let strict = FakeNode::new(FakeNodeConfig {
        allow_unsigned: false,
        ..FakeNodeConfig::delta(100)
    })
    .start()
    .await
    .unwrap();
    let mut client =
        dualchain_proto::TransactionsClient::new(client::connect(&strict.url()).await.unwrap());
    let response = client
        .submit_batch(dualchain_proto::v1::SubmitBatchRequest {
            chain: Chain::Delta as i32,
            transactions: txs[..1].to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.results[0].status(), TxStatus::InvalidSignature);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fakes_sharing_a_genesis_agree_unless_told_to_diverge() {
    let genesis = dualchain_testkit::unix_ms();
    let a = FakeNode::new(FakeNodeConfig::both(genesis, 500, 100));
    let b = FakeNode::new(FakeNodeConfig {
        diverge: true,
        ..FakeNodeConfig::both(genesis, 500, 100)
    });
    let c = FakeNode::new(FakeNodeConfig::both(genesis, 500, 100));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Alpha first: Delta only grows while we read.
    let alpha = a.height(Chain::Alpha);
    let delta = a.height(Chain::Delta);
    assert!(alpha >= 1);
    assert!(delta >= 5 * alpha, "delta {delta}, alpha {alpha}");
    assert_eq!(a.state_root(Chain::Delta, 3), c.state_root(Chain::Delta, 3));
    assert_ne!(a.state_root(Chain::Delta, 3), b.state_root(Chain::Delta, 3));

    // One node served on two addresses (the two API ports of a validator).
    let ports = dualchain_testkit::free_ports(2).unwrap();
    let addrs: Vec<std::net::SocketAddr> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let addrs = addrs.clone();
        async move {
            a.serve_on(&addrs, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    for addr in &addrs {
        let url = format!("http://{addr}");
        let mut ready = false;
        for _ in 0..50 {
            if client::is_ready(&url).await {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "{url} not ready");
        assert_eq!(client::node_status(&url).await.unwrap().chains.len(), 2);
    }
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
