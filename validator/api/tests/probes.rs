//! Health, reflection, the Prometheus endpoint and the API request metrics,
//! over real sockets on 127.0.0.1.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use dualchain_api::ApiOptions;
use dualchain_core::types::ChainId;
use dualchain_proto::v1::{GetBlockRequest, GetStatusRequest, PauseChainRequest};
use dualchain_proto::{AdminClient, NodeClient};
use prometheus::{IntCounter, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use support::{FakeChain, Running, bounded, options_with_token};

const READINESS: &str = "dualchain.v1.Node";

async fn check(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

/// Polls until `service` reports `wanted` (the readiness poller runs every 50 ms here).
async fn wait_for(client: &mut HealthClient<Channel>, service: &str, wanted: ServingStatus) {
    for _ in 0..200 {
        if check(client, service).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{service:?} never became {wanted:?}");
}

#[tokio::test]
async fn health_reports_liveness_and_mirrors_readiness() {
    bounded(async {
        let fake = FakeChain::new(ChainId::Alpha, 16);
        fake.ready.store(false, Ordering::SeqCst);
        let mut server = Running::start(fake, options_with_token()).await;
        let mut health = HealthClient::new(server.channel().await);
        assert_eq!(check(&mut health, "").await, ServingStatus::Serving);
        assert_eq!(
            check(&mut health, READINESS).await,
            ServingStatus::NotServing
        );

        server.fake.ready.store(true, Ordering::SeqCst);
        wait_for(&mut health, READINESS, ServingStatus::Serving).await;
        server.fake.ready.store(false, Ordering::SeqCst);
        wait_for(&mut health, READINESS, ServingStatus::NotServing).await;
        server.fake.ready.store(true, Ordering::SeqCst);
        wait_for(&mut health, READINESS, ServingStatus::Serving).await;

        let unknown = health
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);

        // Watchers see NOT_SERVING when shutdown starts, then their stream ends.
        let mut watch = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status(), ServingStatus::Serving);
        server.begin_stop();
        let last = watch.message().await.unwrap().unwrap();
        assert_eq!(last.status(), ServingStatus::NotServing);
        assert!(watch.message().await.unwrap_or(None).is_none());
        let stopped = tokio::time::timeout(Duration::from_secs(4), server.join()).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "drained within the grace period"
        );
    })
    .await;
}

#[tokio::test]
async fn reflection_lists_the_services_in_both_versions() {
    use tonic_reflection::pb::{v1, v1alpha};

    bounded(async {
        let server = Running::start(FakeChain::new(ChainId::Delta, 16), options_with_token()).await;
        let channel = server.channel().await;

        let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
        let requests = vec![
            v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            },
            v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                        "dualchain.v1.Node".into(),
                    ),
                ),
            },
        ];
        let mut responses = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let listed = responses.message().await.unwrap().unwrap();
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            listed.message_response
        else {
            panic!("unexpected answer {listed:?}");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        for wanted in [
            "dualchain.v1.Node",
            "dualchain.v1.Transactions",
            "dualchain.v1.CrossChain",
            "grpc.health.v1.Health",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        // Admin has its own listener: the public port does not advertise it.
        assert!(!names.contains(&"dualchain.v1.Admin"), "{names:?}");
        let file = responses.message().await.unwrap().unwrap();
        let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
            file.message_response
        else {
            panic!("unexpected answer {file:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty());

        let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let mut responses = alpha
            .server_reflection_info(tokio_stream::iter(vec![v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
                ),
            }]))
            .await
            .unwrap()
            .into_inner();
        let listed = responses.message().await.unwrap().unwrap();
        let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            listed.message_response
        else {
            panic!("unexpected answer {listed:?}");
        };
        assert!(list.service.iter().any(|s| s.name == "dualchain.v1.Node"));
        drop(server.stop().await);
    })
    .await;
}

/// One HTTP/1.1 request over a fresh connection; returns (status line, headers, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_owned(),
        headers.to_ascii_lowercase(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn metrics_endpoint_serves_the_registry_and_404_elsewhere() {
    bounded(async {
        let registry = Registry::new();
        let counter =
            IntCounter::new("dualchain_test_events_total", "events seen by the test").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(7);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(dualchain_api::serve_metrics_on(listener, registry, async {
            let _ = stopped.await;
        }));

        let (status, headers, body) = http(addr, "GET", "/metrics").await;
        assert!(status.contains("200"), "{status}");
        assert!(
            headers.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{headers}"
        );
        assert!(
            body.contains("# TYPE dualchain_test_events_total counter"),
            "{body}"
        );
        assert!(body.contains("dualchain_test_events_total 7"), "{body}");

        let (status, _, body) = http(addr, "GET", "/healthz").await;
        assert!(status.contains("200"), "{status}");
        assert_eq!(body, "ok\n");
        let (status, _, body) = http(addr, "HEAD", "/metrics").await;
        assert!(status.contains("200"), "{status}");
        assert!(body.is_empty());
        for (method, path) in [("GET", "/"), ("GET", "/metricsx"), ("POST", "/metrics")] {
            let (status, _, _) = http(addr, method, path).await;
            assert!(status.contains("404"), "{method} {path}: {status}");
        }

        stop.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("metrics server stopped")
            .unwrap();
        assert!(result.is_ok());
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    })
    .await;
}

#[tokio::test]
async fn api_requests_are_counted_by_method_and_code() {
    bounded(async {
        let registry = Registry::new();
        let options = ApiOptions {
            metrics_registry: Some(registry.clone()),
            ..options_with_token()
        };
        let server = Running::start(FakeChain::new(ChainId::Delta, 16), options).await;
        let channel = server.channel().await;
        let mut node = NodeClient::new(channel.clone());
        node.get_status(GetStatusRequest {}).await.unwrap();
        node.get_status(GetStatusRequest {}).await.unwrap();
        let _ = node
            .get_block(GetBlockRequest {
                chain: 0,
                height: 50,
                include_body: false,
                include_certificate: false,
            })
            .await
            .unwrap_err();
        let _ = AdminClient::new(server.admin_channel().await)
            .pause_chain(PauseChainRequest {
                chain: 0,
                reason: String::new(),
            })
            .await
            .unwrap_err();

        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for line in [
            r#"dualchain_api_requests_total{chain="delta",code="OK",method="GetStatus"} 2"#,
            r#"dualchain_api_requests_total{chain="delta",code="NOT_FOUND",method="GetBlock"} 1"#,
            r#"dualchain_api_requests_total{chain="delta",code="UNAUTHENTICATED",method="Admin"} 1"#,
            r#"dualchain_api_request_duration_seconds_count{chain="delta",method="GetStatus"} 2"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        drop(server.stop().await);
    })
    .await;
}
