//! Loopback acceptance tests of the QUIC transport. Every test binds 127.0.0.1
//! only, and every wait is bounded by a tokio timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::ChainId;
use dualchain_net::identity::{EXPORTER_LABEL, EXPORTER_LEN, Hello, Role};
use dualchain_net::metrics::DropReason;
use dualchain_net::throttle::RateLimit;
use dualchain_net::wire::{FrameHeader, WIRE_VERSION};
use dualchain_net::{
    EventReceiver, MemberSet, Membership, Message, MessageKind, NetConfig, NetError, NetEvent,
    Network, Offence, PeerAddress, PeerId, QuicNetwork, tls,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const WAIT: Duration = Duration::from_secs(10);
/// The network every node of these tests belongs to.
const NET: NetworkId = NetworkId(Digest([0x7e; 32]));

fn keys(n: usize, seed: u64) -> Vec<Arc<ValidatorKeypair>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| Arc::new(ValidatorKeypair::generate(&mut rng)))
        .collect()
}

fn membership(keys: &[Arc<ValidatorKeypair>]) -> Membership {
    Membership::new(MemberSet::new(0, keys.iter().map(|k| k.public().clone())))
}

fn config(listen: SocketAddr, peers: Vec<SocketAddr>) -> NetConfig {
    let mut c = NetConfig::new(listen);
    c.peers = peers.into_iter().map(PeerAddress::Socket).collect();
    c.handshake_timeout = Duration::from_secs(2);
    c.reconnect_min_backoff = Duration::from_millis(50);
    c.reconnect_max_backoff = Duration::from_millis(500);
    c.redial_interval = Duration::from_millis(500);
    c.heartbeat_interval = Duration::from_millis(300);
    c.respond_timeout = Duration::from_secs(2);
    c
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Node {
    net: QuicNetwork,
    events: EventReceiver,
    id: PeerId,
}

fn start(config: NetConfig, key: &Arc<ValidatorKeypair>, view: &Membership) -> Node {
    let (net, events) = QuicNetwork::start(
        config,
        key.clone(),
        NET,
        view.clone(),
        &prometheus::Registry::new(),
    )
    .expect("transport starts");
    Node {
        net,
        events,
        id: PeerId::of(key.public()),
    }
}

/// Starts `n` nodes, each configured with the addresses of those started before it.
async fn mesh(keys: &[Arc<ValidatorKeypair>], view: &Membership) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for key in keys {
        let peers = nodes.iter().map(|n| n.net.local_addr()).collect();
        nodes.push(start(config(loopback(), peers), key, view));
    }
    for a in &nodes {
        for b in &nodes {
            if a.id != b.id {
                assert!(
                    a.net.wait_connected(b.id, WAIT).await,
                    "{} ↔ {}",
                    a.id,
                    b.id
                );
            }
        }
    }
    nodes
}

/// Broadcasts received within `within` (other events are skipped).
async fn broadcasts(node: &mut Node, within: Duration) -> Vec<(PeerId, Message)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, node.events.recv()).await {
        if let NetEvent::Broadcast { from, message } = event {
            got.push((from, message));
        }
    }
    got
}

async fn next_broadcast(node: &mut Node) -> (PeerId, Message) {
    tokio::time::timeout(WAIT, async {
        loop {
            match node.events.recv().await {
                Some(NetEvent::Broadcast { from, message }) => return (from, message),
                Some(_) => continue,
                None => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("a broadcast arrives in time")
}

/// Answers every request with `answer` until the channel closes.
fn serve(mut node_events: EventReceiver, answer: &'static [u8]) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = node_events.recv().await {
            if let NetEvent::Request(request) = event {
                request.respond(Bytes::from_static(answer)).unwrap();
            }
        }
    })
}

fn vertex(payload: &[u8]) -> Message {
    Message::new(ChainId::Alpha, MessageKind::Vertex, payload.to_vec())
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn shutdown(nodes: Vec<Node>) {
    for n in nodes {
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_endpoints_exchange_broadcasts_and_requests() {
    let keys = keys(3, 1);
    let view = membership(&keys);
    let mut nodes = mesh(&keys, &view).await;
    assert_eq!(nodes[0].net.connected_peers().len(), 2);
    assert_eq!(nodes[0].net.metrics().connected_peers.get(), 2);

    let m = vertex(b"vertex from node 0");
    let outcome = nodes[0].net.try_broadcast(m.clone()).unwrap();
    assert_eq!(outcome.queued, 2);
    let a = nodes[0].id;
    assert_eq!(next_broadcast(&mut nodes[1]).await, (a, m.clone()));
    assert_eq!(next_broadcast(&mut nodes[2]).await, (a, m.clone()));

    // Node 1 relays it to node 2: a duplicate, suppressed.
    let c = nodes[2].id;
    nodes[1].net.send(c, m.clone()).await.unwrap();
    let mut other = vertex(b"a different vertex");
    other.chain = ChainId::Delta;
    nodes[1].net.send(c, other.clone()).await.unwrap();
    let seen = broadcasts(&mut nodes[2], Duration::from_millis(500)).await;
    assert_eq!(seen, vec![(nodes[1].id, other)]);
    assert_eq!(
        nodes[2].net.metrics().dropped_count(DropReason::Duplicate),
        1
    );

    // Request/response: node 2 answers node 1.
    let node2 = nodes.pop().unwrap();
    let server = serve(node2.events, b"vertices");
    let request = Message::new(ChainId::Alpha, MessageKind::FetchVertices, b"refs".to_vec());
    let answer = nodes[1]
        .net
        .request(node2.id, request.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(answer, Bytes::from_static(b"vertices"));
    assert_eq!(nodes[1].net.metrics().messages_in(MessageKind::Vertices), 1);

    // Kind classes are enforced on the sending side too.
    assert!(matches!(
        nodes[1]
            .net
            .request(node2.id, vertex(b"x"), Duration::from_secs(1))
            .await,
        Err(NetError::WrongKind { .. })
    ));
    server.abort();
    node2.net.shutdown().await;
    shutdown(nodes).await;
}

/// Captures log output of the current thread (the test runs on a current-thread
/// runtime, so every task of the node logs here).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn classical_only_tls_client_is_refused() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let keys = keys(1, 2);
    let node = start(config(loopback(), vec![]), &keys[0], &membership(&keys));
    let mut client = quinn::Endpoint::client(loopback()).unwrap();

    // Control: the same raw client with the hybrid group completes the TLS handshake,
    // so the refusal below is about the key exchange and nothing else.
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        tls::client_config().unwrap(),
    )));
    let hybrid = tokio::time::timeout(
        WAIT,
        client
            .connect(node.net.local_addr(), tls::SERVER_NAME)
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(hybrid.is_ok(), "hybrid client handshake: {hybrid:?}");
    hybrid.unwrap().close(0u32.into(), b"bye");

    let classical = tls::client_config_with_groups(&[
        rustls::crypto::aws_lc_rs::kx_group::X25519,
        rustls::crypto::aws_lc_rs::kx_group::SECP256R1,
    ])
    .unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(classical)));
    let refused = tokio::time::timeout(
        WAIT,
        client
            .connect(node.net.local_addr(), tls::SERVER_NAME)
            .unwrap(),
    )
    .await
    .unwrap();
    let error = refused.expect_err("a classical-only client must be refused");
    assert!(error.to_string().contains("handshake"), "{error}");
    wait_for("the classical-only refusal to be counted", || {
        node.net.metrics().handshake_failures("classical_only_kx") == 1
    })
    .await;
    assert!(node.net.connected_peers().is_empty());
    let text = logs.text();
    assert!(
        text.contains("refused connection: peer offered only classical key exchange groups"),
        "no clear log line for the refusal; logs were:\n{text}"
    );
    client.close(0u32.into(), b"");
    node.net.shutdown().await;
}

/// A raw client that completes hybrid TLS and then sends `hello` (built from this
/// connection's exporter secret by `make_hello`).
async fn raw_identity_client(
    server: SocketAddr,
    make_hello: impl FnOnce(&[u8; EXPORTER_LEN]) -> Hello,
) -> (quinn::Endpoint, quinn::Connection, quinn::RecvStream) {
    let mut client = quinn::Endpoint::client(loopback()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        tls::client_config().unwrap(),
    )));
    let conn = client
        .connect(server, tls::SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    let mut exporter = [0u8; EXPORTER_LEN];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .unwrap();
    let hello = make_hello(&exporter);
    let frame = Message::new(
        ChainId::Alpha,
        MessageKind::Hello,
        hello.to_canonical_bytes(),
    )
    .encode_frame()
    .unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame).await.unwrap();
    send.finish().unwrap();
    (client, conn, recv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonators_are_refused() {
    let all = keys(3, 3);
    let (member, victim, outsider) = (&all[0], &all[1], &all[2]);
    let view = membership(&all[..2]);
    let node = start(config(loopback(), vec![]), member, &view);
    let addr = node.net.local_addr();

    // Valid TLS, a key outside the validator set.
    let (c1, conn, _) =
        raw_identity_client(addr, |x| Hello::sign(outsider, Role::Dialer, x, NET)).await;
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(
        closed.to_string().contains("identity_unknown_validator"),
        "{closed}"
    );

    // Valid TLS, a member's public key, signed by someone else.
    let (c2, conn, _) = raw_identity_client(addr, |x| Hello {
        public_key: victim.public().clone(),
        ..Hello::sign(outsider, Role::Dialer, x, NET)
    })
    .await;
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(
        closed.to_string().contains("identity_bad_signature"),
        "{closed}"
    );

    // A member's genuine signature, but over another connection's secret (relayed).
    let (c3, conn, _) = raw_identity_client(addr, |_| {
        Hello::sign(victim, Role::Dialer, &[0; EXPORTER_LEN], NET)
    })
    .await;
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(
        closed.to_string().contains("identity_bad_signature"),
        "{closed}"
    );

    // A member's genuine signature over this connection, made for another network
    // (the same key validating a testnet): refused.
    let testnet = NetworkId(Digest([0x7f; 32]));
    let (c5, conn, _) =
        raw_identity_client(addr, |x| Hello::sign(victim, Role::Dialer, x, testnet)).await;
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(
        closed.to_string().contains("identity_bad_signature"),
        "{closed}"
    );

    let m = node.net.metrics();
    assert_eq!(m.handshake_failures("identity_unknown_validator"), 1);
    assert_eq!(m.handshake_failures("identity_bad_signature"), 3);
    assert!(node.net.connected_peers().is_empty());

    // The genuine victim is accepted, so the refusals above were about identity.
    let (c4, conn, mut recv) =
        raw_identity_client(addr, |x| Hello::sign(victim, Role::Dialer, x, NET)).await;
    let mut header = [0u8; 7];
    recv.read_exact(&mut header).await.unwrap();
    assert_eq!(
        FrameHeader::decode(&header).unwrap().kind,
        MessageKind::Hello
    );
    wait_for("the victim to be connected", || {
        node.net.connected_peers() == vec![PeerId::of(victim.public())]
    })
    .await;
    conn.close(0u32.into(), b"");
    for c in [c1, c2, c3, c4, c5] {
        c.close(0u32.into(), b"");
    }
    node.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_garbage_and_unexpected_frames_are_rejected_then_banned() {
    let all = keys(3, 4);
    let view = membership(&all);
    let mut node = start(config(loopback(), vec![]), &all[0], &view);
    let honest = start(
        config(loopback(), vec![node.net.local_addr()]),
        &all[2],
        &view,
    );
    assert!(honest.net.wait_connected(node.id, WAIT).await);
    let rogue_key = all[1].clone();
    let rogue = PeerId::of(rogue_key.public());
    // The hello stream's receive half is kept: dropping it would refuse the answer.
    let (client, conn, _hello_answer) = raw_identity_client(node.net.local_addr(), |x| {
        Hello::sign(&rogue_key, Role::Dialer, x, NET)
    })
    .await;
    wait_for("the rogue to be admitted", || {
        node.net.connected_peers().contains(&rogue)
    })
    .await;
    let metrics = node.net.metrics().clone();

    let send_raw = |bytes: Vec<u8>| {
        let conn = conn.clone();
        async move {
            let mut s = conn.open_uni().await.unwrap();
            s.write_all(&bytes).await.unwrap();
            s.finish().unwrap();
        }
    };

    // Garbage: an unknown version byte.
    send_raw(b"\x09garbage that is not a frame".to_vec()).await;
    wait_for("garbage to be refused", || {
        metrics.dropped_count(DropReason::Malformed) == 1
    })
    .await;
    assert_eq!(node.net.peer_score(&rogue), -25);

    // Oversize: a vertex header declaring 4 GiB; refused from the header alone.
    let mut huge = vec![WIRE_VERSION, 0, MessageKind::Vertex.tag()];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    send_raw(huge).await;
    wait_for("the oversize frame to be refused", || {
        metrics.dropped_count(DropReason::Oversize) == 1
    })
    .await;

    // Unexpected: a request kind on a broadcast stream.
    let misplaced = Message::new(ChainId::Alpha, MessageKind::FetchBlocks, b"x".to_vec());
    send_raw(misplaced.encode_frame().unwrap().to_vec()).await;
    wait_for("the misplaced request to be refused", || {
        metrics.dropped_count(DropReason::Unexpected) == 1
    })
    .await;
    assert_eq!(node.net.peer_score(&rogue), -85);

    // Garbage on a request stream is refused as well, and the node keeps serving.
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    s.write_all(&[WIRE_VERSION, 5, 5, 0, 0, 0, 0])
        .await
        .unwrap();
    s.finish().unwrap();
    assert!(
        tokio::time::timeout(WAIT, r.read_to_end(64))
            .await
            .unwrap()
            .is_err()
    );
    // That was the fourth offence (-110): the rogue is banned and disconnected.
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(closed.to_string().contains("banned"), "{closed}");
    assert!(node.net.is_banned(&rogue));
    assert_eq!(metrics.peer_bans.get(), 1);
    wait_for("the rogue to be removed", || {
        !node.net.connected_peers().contains(&rogue)
    })
    .await;

    // A banned validator cannot come back while the ban lasts.
    let (client2, conn2, _answer2) = raw_identity_client(node.net.local_addr(), |x| {
        Hello::sign(&rogue_key, Role::Dialer, x, NET)
    })
    .await;
    let closed = tokio::time::timeout(WAIT, conn2.closed()).await.unwrap();
    assert!(closed.to_string().contains("banned"), "{closed}");

    // Honest traffic is unaffected.
    let m = vertex(b"still working");
    honest.net.send(node.id, m.clone()).await.unwrap();
    assert_eq!(next_broadcast(&mut node).await, (honest.id, m));
    client.close(0u32.into(), b"");
    client2.close(0u32.into(), b"");
    honest.net.shutdown().await;
    node.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_is_reconnected() {
    let keys = keys(2, 5);
    let view = membership(&keys);
    let b = start(config(loopback(), vec![]), &keys[1], &view);
    let b_addr = b.net.local_addr();
    let mut a = start(config(loopback(), vec![b_addr]), &keys[0], &view);
    assert!(a.net.wait_connected(b.id, WAIT).await);

    b.net.shutdown().await;
    let b_id = b.id;
    drop(b);
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NetEvent::PeerDisconnected(p)) = a.events.recv().await {
                assert_eq!(p, b_id);
                break;
            }
        }
    })
    .await
    .expect("A notices B going away");
    assert!(a.net.connected_peers().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // B comes back on the same address (the old socket may take a moment to go).
    let deadline = Instant::now() + WAIT;
    let mut b = loop {
        match QuicNetwork::start(
            config(b_addr, vec![]),
            keys[1].clone(),
            NET,
            view.clone(),
            &prometheus::Registry::new(),
        ) {
            Ok((net, events)) => {
                break Node {
                    net,
                    events,
                    id: b_id,
                };
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot rebind {b_addr}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(
        a.net.wait_connected(b_id, WAIT).await,
        "A redials the restarted B"
    );
    let m = vertex(b"after restart");
    a.net.send(b_id, m.clone()).await.unwrap();
    assert_eq!(next_broadcast(&mut b).await, (a.id, m));
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_stops_delivery_and_heal_restores_it() {
    let keys = keys(3, 6);
    let view = membership(&keys);
    let mut nodes = mesh(&keys, &view).await;
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.id).collect();

    // Configured on node 0 only: cut off from 1 and 2 in both directions.
    nodes[0]
        .net
        .faults()
        .partition([vec![ids[0]], vec![ids[1], ids[2]]])
        .unwrap();
    nodes[0].net.try_broadcast(vertex(b"lost 1")).unwrap();
    nodes[1]
        .net
        .try_broadcast(vertex(b"reaches 2 only"))
        .unwrap();
    assert!(
        broadcasts(&mut nodes[0], Duration::from_millis(500))
            .await
            .is_empty()
    );
    let at2 = broadcasts(&mut nodes[2], Duration::from_millis(300)).await;
    assert_eq!(at2, vec![(ids[1], vertex(b"reaches 2 only"))]);
    assert!(
        broadcasts(&mut nodes[1], Duration::from_millis(100))
            .await
            .is_empty()
    );
    let cut = nodes[0]
        .net
        .request(
            ids[1],
            Message::new(ChainId::Alpha, MessageKind::FetchBlocks, b"1".to_vec()),
            Duration::from_millis(300),
        )
        .await;
    assert!(matches!(cut, Err(NetError::Timeout { .. })), "{cut:?}");
    // Connections stay up (faults apply to application traffic) and nobody is penalised.
    assert_eq!(nodes[0].net.connected_peers().len(), 2);
    assert_eq!(nodes[0].net.peer_score(&ids[1]).min(0), 0);

    nodes[0].net.faults().heal();
    let m = vertex(b"after heal");
    assert_eq!(nodes[0].net.try_broadcast(m.clone()).unwrap().queued, 2);
    assert_eq!(next_broadcast(&mut nodes[1]).await, (ids[0], m.clone()));
    assert_eq!(next_broadcast(&mut nodes[2]).await, (ids[0], m));
    let back = vertex(b"back to 0");
    nodes[2].net.try_broadcast(back.clone()).unwrap();
    assert_eq!(next_broadcast(&mut nodes[0]).await, (ids[2], back));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_probability_one_drops_everything_and_is_counted() {
    let keys = keys(2, 7);
    let view = membership(&keys);
    let mut nodes = mesh(&keys, &view).await;
    nodes[0].net.faults().set_drop_probability(1.0).unwrap();
    for i in 0..5u8 {
        nodes[0].net.try_broadcast(vertex(&[i])).unwrap();
    }
    assert!(
        broadcasts(&mut nodes[1], Duration::from_millis(400))
            .await
            .is_empty()
    );
    assert_eq!(
        nodes[0].net.metrics().dropped_count(DropReason::FaultDrop),
        5
    );
    nodes[0].net.faults().clear();
    nodes[0].net.try_broadcast(vertex(b"ok")).unwrap();
    assert_eq!(next_broadcast(&mut nodes[1]).await.1, vertex(b"ok"));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_validator_set_disconnects() {
    let keys = keys(3, 8);
    let view = membership(&keys);
    let nodes = mesh(&keys, &view).await;
    // Epoch 1 drops validator 2; the shared view is updated at runtime.
    view.update(MemberSet::new(
        1,
        keys[..2].iter().map(|k| k.public().clone()),
    ));
    let removed = nodes[2].id;
    wait_for("validator 2 to be disconnected", || {
        !nodes[0].net.connected_peers().contains(&removed)
            && !nodes[1].net.connected_peers().contains(&removed)
    })
    .await;
    assert_eq!(nodes[0].net.connected_peers(), vec![nodes[1].id]);
    shutdown(nodes).await;
}

/// Sends eight 64 KiB messages from `a` to `b` and returns how long they took to
/// arrive; each must arrive, in order (a throttle slows a link, it loses nothing).
async fn eight_frames_of_64k(a: &Node, b: &mut Node) -> Duration {
    let started = Instant::now();
    for i in 0..8u8 {
        let m = Message::new(
            ChainId::Delta,
            MessageKind::Transactions,
            vec![i; 64 * 1024],
        );
        a.net.send(b.id, m).await.unwrap();
    }
    for i in 0..8u8 {
        let (_, m) = next_broadcast(b).await;
        assert_eq!(m.payload[0], i);
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_bandwidth_is_throttled() {
    let keys = keys(2, 9);
    let view = membership(&keys);
    let mut b = start(config(loopback(), vec![]), &keys[1], &view);
    let mut c = config(loopback(), vec![b.net.local_addr()]);
    c.outbound_rate_limit = Some(RateLimit {
        bytes_per_sec: 1_000_000,
        burst_bytes: 64 * 1024,
    });
    let a = start(c, &keys[0], &view);
    assert!(a.net.wait_connected(b.id, WAIT).await);
    let took = eight_frames_of_64k(&a, &mut b).await;
    // 512 KiB at 1 MB/s with a 64 KiB burst cannot take less than ~0.45 s.
    assert!(took >= Duration::from_millis(440), "{took:?}");
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_bandwidth_fault_throttles_a_running_link() {
    let keys = keys(2, 19);
    let view = membership(&keys);
    let mut b = start(config(loopback(), vec![]), &keys[1], &view);
    let a = start(
        config(loopback(), vec![b.net.local_addr()]),
        &keys[0],
        &view,
    );
    assert!(a.net.wait_connected(b.id, WAIT).await);
    // No limit configured: the fault alone throttles, at once on the live link.
    a.net.faults().set_bandwidth(Some(1_000_000)).unwrap();
    let took = eight_frames_of_64k(&a, &mut b).await;
    // 512 KiB at 1 MB/s with a 100 KB burst cannot take less than ~0.42 s.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_to_silent_consumer_is_declined_not_hung() {
    let keys = keys(2, 10);
    let view = membership(&keys);
    let mut nodes = mesh(&keys, &view).await;
    let b = nodes.pop().unwrap();
    // B's consumer drops requests unanswered.
    let mut events = b.events;
    let dropper = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            drop(event);
        }
    });
    let r = nodes[0]
        .net
        .request(
            b.id,
            Message::new(ChainId::Alpha, MessageKind::ConsensusQuery, b"q".to_vec()),
            Duration::from_secs(3),
        )
        .await;
    assert!(matches!(r, Err(NetError::Declined(_))), "{r:?}");
    dropper.abort();
    b.net.shutdown().await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_names_are_dialed_and_own_address_is_skipped() {
    let keys = keys(2, 11);
    let view = membership(&keys);
    let a = start(config(loopback(), vec![]), &keys[0], &view);
    // B's configuration lists A by DNS name and, as a headless service would, B itself.
    let b_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b_addr: SocketAddr = format!("127.0.0.1:{b_port}").parse().unwrap();
    let mut c = config(b_addr, vec![b_addr]);
    c.peers.push(
        format!("localhost:{}", a.net.local_addr().port())
            .parse()
            .unwrap(),
    );
    let b = start(c, &keys[1], &view);
    assert!(b.net.wait_connected(a.id, WAIT).await, "B dials A by name");
    wait_for("B to recognise its own address", || {
        b.net.metrics().handshake_failures("self_connection") == 2
    })
    .await;
    // Several redial rounds later it has not dialed itself again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.net.metrics().handshake_failures("self_connection"), 2);
    assert_eq!(b.net.connected_peers(), vec![a.id]);
    shutdown(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_garbage_are_delivered_and_the_rest_refused() {
    let all = keys(2, 12);
    let view = membership(&all);
    let mut node = start(config(loopback(), vec![]), &all[0], &view);
    let sender = all[1].clone();
    let sender_id = PeerId::of(sender.public());
    let (client, conn, _hello_answer) = raw_identity_client(node.net.local_addr(), |x| {
        Hello::sign(&sender, Role::Dialer, x, NET)
    })
    .await;
    wait_for("the sender to be admitted", || {
        node.net.connected_peers().contains(&sender_id)
    })
    .await;
    // One write: a good vertex frame immediately followed by garbage.
    let good = vertex(b"good vertex");
    let mut bytes = good.encode_frame().unwrap().to_vec();
    bytes.extend_from_slice(b"\x01\x00\xEE\x00\x00\x00\x00");
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&bytes).await.unwrap();
    s.finish().unwrap();
    assert_eq!(next_broadcast(&mut node).await, (sender_id, good));
    let metrics = node.net.metrics().clone();
    wait_for("the garbage to be refused", || {
        metrics.dropped_count(DropReason::Malformed) == 1
    })
    .await;
    assert_eq!(node.net.peer_score(&sender_id), 1 - 25);
    client.close(0u32.into(), b"");
    node.net.shutdown().await;
}

/// A layer above reporting a peer's well-formed but wrong messages bans it as wire
/// garbage would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_invalid_content_costs_score_down_to_a_ban() {
    let keys = keys(2, 9);
    let view = membership(&keys);
    let nodes = mesh(&keys, &view).await;
    let peer = nodes[1].id;
    let before = nodes[0].net.peer_score(&peer);
    nodes[0].net.report(peer, Offence::MissingParents);
    let after = nodes[0].net.peer_score(&peer);
    assert_eq!(after, before - 5);
    // Down to the threshold (-100) at 25 a report.
    let needed = (after + 100 + 24) / 25;
    for k in 0..needed {
        assert!(
            !nodes[0].net.is_banned(&peer),
            "banned after {k} of {needed}"
        );
        nodes[0].net.report(peer, Offence::InvalidContent);
    }
    assert!(nodes[0].net.is_banned(&peer));
    wait_for("the banned peer is disconnected", || {
        !nodes[0].net.connected_peers().contains(&peer)
    })
    .await;
    shutdown(nodes).await;
}

/// A raw client that completes hybrid TLS and then sends nothing.
async fn silent_tls_client(
    server: SocketAddr,
) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    let mut client = quinn::Endpoint::client(loopback()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        tls::client_config().unwrap(),
    )));
    let connecting = client
        .connect(server, tls::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(WAIT, connecting).await {
        Ok(Ok(conn)) => Ok((client, conn)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_its_hello_a_peer_gets_one_stream_and_a_small_window() {
    let keys = keys(2, 61);
    let view = membership(&keys);
    let node = start(config(loopback(), vec![]), &keys[0], &view);
    let (_client, conn) = silent_tls_client(node.net.local_addr()).await.unwrap();
    let short = Duration::from_millis(500);

    // The hello's stream is the only one it may open.
    let (mut first, _recv) = tokio::time::timeout(short, conn.open_bi())
        .await
        .expect("one bidirectional stream is granted")
        .unwrap();
    assert!(
        tokio::time::timeout(short, conn.open_bi()).await.is_err(),
        "a second stream must wait for the identity"
    );
    assert!(
        tokio::time::timeout(short, conn.open_uni()).await.is_err(),
        "no broadcast stream before the identity"
    );
    // That one stream is the hello's: the first frame that is not a hello
    // ends the connection (before the limits, a peer could open 136 streams
    // and fill 32 MiB of window here without ever proving who it is).
    let header = FrameHeader {
        chain: ChainId::Alpha,
        kind: MessageKind::Vertex,
        len: 1024,
    };
    first.write_all(&header.encode()).await.unwrap();
    tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("a first frame that is not a hello ends the connection");

    // Proven members still get the full limits: a large message goes through.
    let mut pair = mesh(&keys, &view).await;
    let big = Message::new(ChainId::Alpha, MessageKind::Vertex, vec![7u8; 4 << 20]);
    pair[0].net.send(pair[1].id, big.clone()).await.unwrap();
    let (from, got) = next_broadcast(&mut pair[1]).await;
    assert_eq!((from, got.payload.len()), (pair[0].id, big.payload.len()));
    for n in pair {
        n.net.shutdown().await;
    }
    node.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_beyond_the_limit_are_retried_then_refused() {
    let keys = keys(1, 62);
    let mut cfg = config(loopback(), vec![]);
    cfg.max_pending_handshakes = 2;
    let node = start(cfg, &keys[0], &membership(&keys));
    let addr = node.net.local_addr();

    // Two clients sit in their identity handshake (TLS done, no hello).
    let (_a, _conn_a) = silent_tls_client(addr).await.unwrap();
    let (_b, _conn_b) = silent_tls_client(addr).await.unwrap();
    let refused = silent_tls_client(addr)
        .await
        .expect_err("a third handshake must be refused");
    assert!(refused.to_string().contains("refused"), "{refused}");
    assert!(node.net.metrics().handshake_failures("retry_sent") >= 1);
    assert_eq!(node.net.metrics().handshake_failures("overloaded"), 1);

    // The silent ones time out (2 s in this config) and free their permits.
    wait_for("the silent handshakes to time out", || {
        node.net.metrics().handshake_failures("timeout") == 2
    })
    .await;
    assert!(silent_tls_client(addr).await.is_ok());
    node.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_held_to_its_inbound_budget_and_others_still_get_through() {
    const MIB: usize = 1024 * 1024;
    const BUDGET: usize = 4 * MIB;
    const FRAMES: u8 = 96;
    let keys = keys(3, 23);
    let view = membership(&keys);
    let mut victim_config = config(loopback(), vec![]);
    victim_config.inbound_budget_bytes = BUDGET;
    let mut victim = start(victim_config, &keys[0], &view);
    let mut flooder_config = config(loopback(), vec![victim.net.local_addr()]);
    flooder_config.send_queue_capacity = 8;
    let flooder = start(flooder_config, &keys[1], &view);
    let honest = start(
        config(loopback(), vec![victim.net.local_addr()]),
        &keys[2],
        &view,
    );
    for peer in [flooder.id, honest.id] {
        assert!(victim.net.wait_connected(peer, WAIT).await);
    }
    // 96 MiB of distinct 1 MiB vertices, sent with back-pressure, while the victim's
    // consumer reads nothing.
    let net = flooder.net.clone();
    let victim_id = victim.id;
    let flood = tokio::spawn(async move {
        for i in 0..FRAMES {
            let m = Message::new(ChainId::Delta, MessageKind::Vertex, vec![i; MIB]);
            net.send(victim_id, m).await.unwrap();
        }
    });
    let victim_net = victim.net.clone();
    let queued = || victim_net.metrics().inbound_queued_bytes.get();
    wait_for("the flooder to spend its budget", || {
        queued() > (BUDGET - MIB) as i64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(queued() <= BUDGET as i64, "{} bytes queued", queued());
    assert!(!flood.is_finished(), "the flood was not held back");
    // The honest peer's vertex is taken in at once, behind at most the flooder's
    // budget.
    let read_before = victim_net.metrics().messages_in(MessageKind::Vertex);
    honest.net.try_broadcast(vertex(b"honest")).unwrap();
    wait_for("the honest vertex to be read", || {
        victim_net.metrics().messages_in(MessageKind::Vertex) > read_before
    })
    .await;
    let mut flooded_before = 0;
    loop {
        let (from, m) = next_broadcast(&mut victim).await;
        if from == honest.id {
            assert_eq!(m, vertex(b"honest"));
            break;
        }
        flooded_before += 1;
    }
    assert!(
        flooded_before <= BUDGET / MIB,
        "{flooded_before} flood frames first"
    );
    // Held back, not lost: every flood frame arrives, in order.
    let mut next = flooded_before as u8;
    while next < FRAMES {
        let (from, m) = next_broadcast(&mut victim).await;
        assert_eq!(
            (from, m.payload[0], m.payload.len()),
            (flooder.id, next, MIB)
        );
        next += 1;
    }
    flood.await.unwrap();
    assert_eq!(queued(), 0);
    shutdown(vec![victim, flooder, honest]).await;
}
