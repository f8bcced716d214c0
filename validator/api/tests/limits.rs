//! What one client can take from the API: connections (total, per address,
//! idle), calls in flight, request sizes and time — each limit exercised with
//! real gRPC clients and raw sockets on loopback addresses (127.0.0.x stand
//! for distinct clients).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dualchain_api::{ApiOptions, CallLimits, ConnectionLimits, MIN_IDLE_TO_EVICT};
use dualchain_core::types::ChainId;
use dualchain_proto::limits::MAX_QUERY_REQUEST_BYTES;
use dualchain_proto::v1::{
    Chain, FinalityEvent, GetRecordRequest, GetStatusRequest, StreamFinalityRequest, SubmitRequest,
};
use dualchain_proto::{CrossChainClient, NodeClient, TransactionsClient};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Streaming};

use support::{FakeChain, Running, bounded, options_with_token};

const HONEST: [u8; 4] = [127, 0, 0, 1];

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn options(connections: ConnectionLimits, calls: CallLimits) -> ApiOptions {
    ApiOptions {
        connections,
        calls,
        ..options_with_token()
    }
}

fn connections(max: usize, per_ip: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: max,
        max_connections_per_ip: per_ip,
        ..ConnectionLimits::default()
    }
}

async fn start(options: ApiOptions) -> Running {
    let server = Running::start(FakeChain::new(ChainId::Delta, 64), options).await;
    // Wait for the accept loop: one call from the honest address.
    let channel = server.channel().await;
    status(channel).await.expect("the fresh server answers");
    // The warm-up connection closes with its channel; let its slot go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
}

/// A raw TCP connection from `from` that never sends a byte.
async fn idle_socket(server: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// True if the server closed `stream` within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match tokio::time::timeout(within, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // The server's HTTP/2 preface (SETTINGS): keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

async fn channel_from(
    server: SocketAddr,
    from: IpAddr,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{server}"))
        .unwrap()
        .local_address(Some(from))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn status(channel: Channel) -> Result<(), tonic::Status> {
    NodeClient::new(channel)
        .get_status(GetStatusRequest {})
        .await
        .map(|_| ())
}

async fn open_stream(channel: Channel) -> Result<Streaming<FinalityEvent>, tonic::Status> {
    NodeClient::new(channel)
        .stream_finality(StreamFinalityRequest {
            chain: Chain::Unspecified as i32,
            from_height: None,
            include_tx_digests: false,
        })
        .await
        .map(|response| response.into_inner())
}

#[tokio::test]
async fn idle_connections_over_the_cap_make_room_for_a_client_with_work() {
    bounded(async {
        let server = start(options(connections(8, 8), CallLimits::default())).await;
        let mut idle = Vec::new();
        for n in 0..8u8 {
            idle.push(idle_socket(server.addr, loopback(10 + n)).await);
        }
        tokio::time::sleep(MIN_IDLE_TO_EVICT + Duration::from_millis(300)).await;

        let channel = channel_from(server.addr, HONEST.into()).await.unwrap();
        status(channel).await.expect("a client with work gets in");

        let mut closed = 0;
        for socket in &mut idle {
            if closed_by_server(socket, Duration::from_millis(500)).await {
                closed += 1;
            }
        }
        assert_eq!(closed, 1, "exactly one idle connection makes room");
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn when_every_connection_is_busy_a_newcomer_is_turned_away_at_once() {
    bounded(async {
        let server = start(options(connections(2, 2), CallLimits::default())).await;
        let mut busy = Vec::new();
        for n in 0..2u8 {
            let channel = channel_from(server.addr, loopback(20 + n)).await.unwrap();
            let stream = open_stream(channel.clone()).await.unwrap();
            busy.push((channel, stream));
        }
        tokio::time::sleep(MIN_IDLE_TO_EVICT + Duration::from_millis(300)).await;

        let mut newcomer = idle_socket(server.addr, HONEST.into()).await;
        assert!(
            closed_by_server(&mut newcomer, Duration::from_secs(2)).await,
            "a full table of busy connections must close the newcomer"
        );
        for (_, stream) in &mut busy {
            server.fake.commit(1);
            let event = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
            assert!(
                matches!(event, Ok(Ok(Some(_)))),
                "a busy connection is never evicted"
            );
        }
        // A client that leaves frees its slot for the next one.
        drop(busy.pop());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let channel = channel_from(server.addr, HONEST.into()).await.unwrap();
        status(channel).await.expect("the freed slot is reused");
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn one_address_cannot_take_more_than_its_share() {
    bounded(async {
        let server = start(options(connections(64, 3), CallLimits::default())).await;
        let flooder = loopback(30);
        let mut kept = Vec::new();
        for _ in 0..3 {
            kept.push(idle_socket(server.addr, flooder).await);
        }
        let mut over = idle_socket(server.addr, flooder).await;
        assert!(closed_by_server(&mut over, Duration::from_secs(2)).await);
        for socket in &mut kept {
            assert!(!closed_by_server(socket, Duration::from_millis(100)).await);
        }
        let channel = channel_from(server.addr, HONEST.into()).await.unwrap();
        status(channel)
            .await
            .expect("other addresses are unaffected");
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_connection_without_calls_is_closed_after_the_idle_timeout() {
    bounded(async {
        let limits = ConnectionLimits {
            idle_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        };
        let server = start(options(limits, CallLimits::default())).await;
        let mut silent = idle_socket(server.addr, loopback(40)).await;
        assert!(closed_by_server(&mut silent, Duration::from_secs(5)).await);

        // A connection with a stream open stays however long it lasts.
        let channel = channel_from(server.addr, loopback(41)).await.unwrap();
        let mut stream = open_stream(channel.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.fake.commit(1);
        let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the busy connection is still served")
            .expect("stream healthy")
            .expect("stream open");
        assert_eq!(event.height, 1);
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn calls_beyond_the_limits_are_shed_at_once_and_served_again_after() {
    bounded(async {
        let calls = CallLimits {
            max_streams_open: 2,
            ..CallLimits::default()
        };
        let server = start(options(ConnectionLimits::default(), calls)).await;
        let channel = server.channel().await;
        let first = open_stream(channel.clone()).await.unwrap();
        let _second = open_stream(channel.clone()).await.unwrap();
        let refused = open_stream(channel.clone()).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        // Open streams never take the permits of unary calls.
        status(channel.clone())
            .await
            .expect("GetStatus is not shed");

        drop(first);
        let mut reopened = None;
        for _ in 0..50 {
            if let Ok(stream) = open_stream(channel.clone()).await {
                reopened = Some(stream);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            reopened.is_some(),
            "the permit of an ended stream comes back"
        );
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_submission_stream_that_goes_quiet_ends_with_deadline_exceeded() {
    bounded(async {
        let calls = CallLimits {
            submission_idle_timeout: Duration::from_millis(500),
            ..CallLimits::default()
        };
        let server = start(options(ConnectionLimits::default(), calls)).await;
        let (sender, receiver) = tokio::sync::mpsc::channel::<SubmitRequest>(1);
        sender
            .send(SubmitRequest {
                chain: Chain::Delta as i32,
                transactions: vec![b"one".to_vec()],
            })
            .await
            .unwrap();
        let answer = TransactionsClient::new(server.channel().await)
            .submit_transactions(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap_err();
        assert_eq!(answer.code(), Code::DeadlineExceeded, "{answer:?}");
        assert!(answer.message().contains("stay admitted"));
        drop(sender);
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn query_requests_are_held_to_the_query_limit() {
    bounded(async {
        let server = start(options_with_token()).await;
        let mut client = CrossChainClient::new(server.channel().await);
        let oversized = client
            .get_record(GetRecordRequest {
                chain: Chain::Delta as i32,
                key: vec![7; MAX_QUERY_REQUEST_BYTES + 1],
            })
            .await
            .unwrap_err();
        assert_eq!(oversized.code(), Code::ResourceExhausted, "{oversized:?}");
        // Just under the limit reaches the handler (which refuses the key).
        let handled = client
            .get_record(GetRecordRequest {
                chain: Chain::Delta as i32,
                key: vec![7; MAX_QUERY_REQUEST_BYTES - 16],
            })
            .await
            .unwrap_err();
        assert_eq!(handled.code(), Code::InvalidArgument, "{handled:?}");
        server.stop().await.unwrap();
    })
    .await;
}
