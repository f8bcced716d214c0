//! A validator process with a small open-file limit under a flood of idle API
//! connections: the API keeps answering and the chain keeps sealing (before the
//! connection caps, the process ran out of descriptors, its accept loop spun
//! and `GetStatus` timed out).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{ClusterSpec, LocalCluster, TOKEN, bin, runtime};
use dualchain_core::types::ChainId;
use tokio::net::TcpSocket;

const WAIT: Duration = Duration::from_secs(90);
/// The validator may hold this many descriptors: 2,048 kept for storage and peers,
/// the rest split between the two chains' APIs (276 connections each).
const OPEN_FILE_LIMIT: u64 = 2_600;
/// More connections than the validator could ever hold.
const FLOOD: usize = 3_000;
const FLOOD_ADDRESSES: usize = 6;

#[test]
fn idle_connections_beyond_the_open_file_limit_leave_the_api_answering() {
    let mut spec = ClusterSpec::new(1).block_times(1_000, 200).accounts(10);
    spec.admin_token = Some(TOKEN.into());
    spec.extra_run_args = vec!["--sync-policy".into(), "os-buffered".into()];
    spec.dir_prefix = "dualchain-api-limits-".into();
    spec.open_file_limit = Some(OPEN_FILE_LIMIT);
    let mut c = LocalCluster::prepare(bin(), spec).expect("preparing the cluster");
    c.start_all().unwrap();
    runtime().block_on(async {
        c.wait_height(0, ChainId::Delta, 3, WAIT).await;
        let url = c.api_url(0, ChainId::Delta);
        let api: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .expect("the API URL is http://<ip>:<port>");

        let mut flood = Vec::with_capacity(FLOOD);
        for n in 0..FLOOD {
            let from = IpAddr::from([127, 0, 0, 2 + (n % FLOOD_ADDRESSES) as u8]);
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(from, 0)).unwrap();
            // The server closes what it does not keep; the connect itself succeeds
            // or fails, either is fine for a flood.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(2), socket.connect(api)).await
            {
                flood.push(stream);
            }
        }
        assert!(
            flood.len() > 1_000,
            "the flood got {} connections",
            flood.len()
        );

        let before = tokio::time::timeout(Duration::from_secs(10), c.height(0, ChainId::Delta))
            .await
            .expect("GetStatus answers within 10 s under the flood")
            .expect("GetStatus succeeds under the flood");
        c.wait_height(0, ChainId::Delta, before + 5, WAIT).await;
        drop(flood);
    });
    let stops = runtime().block_on(c.stop_all(Duration::from_secs(30)));
    assert!(stops.iter().all(|s| s.clean), "{stops:?}");
}

/// A validator whose admin listeners speak TLS answers `Admin` only to a client that
/// trusts its certificate (for the name in it), never on the public port, and never
/// to a plaintext client.
#[test]
fn the_admin_api_over_tls_answers_only_a_client_that_trusts_the_validators_certificate() {
    use dualchain_proto::v1::{Chain, GetFaultInjectionRequest};
    use dualchain_proto::{AdminClient, AdminToken};
    use std::os::unix::fs::PermissionsExt;
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    const NAME: &str = "v-0.admin.test";
    // The test links both of rustls's providers (through the workspace): pick one.
    dualchain_api::install_crypto_provider();
    let tls_dir = tempfile::tempdir().unwrap();
    let identity = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    let certificate = tls_dir.path().join("tls.crt");
    let key = tls_dir.path().join("tls.key");
    std::fs::write(&certificate, identity.cert.pem()).unwrap();
    std::fs::write(&key, identity.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut spec = ClusterSpec::new(1).block_times(1_000, 200).accounts(10);
    spec.admin_token = Some(TOKEN.into());
    spec.extra_run_args = vec![
        "--admin-tls-cert".into(),
        certificate.display().to_string(),
        "--admin-tls-key".into(),
        key.display().to_string(),
    ];
    spec.dir_prefix = "dualchain-admin-tls-".into();
    let mut c = LocalCluster::prepare(bin(), spec).expect("preparing the cluster");
    c.start_all().unwrap();
    runtime().block_on(async {
        c.wait_height(0, ChainId::Delta, 2, WAIT).await;
        let log = common::plain(&c.log(0));
        assert!(
            log.lines()
                .any(|l| l.contains("gRPC admin API listening") && l.contains("tls=true")),
            "{log}"
        );
        let admin_addr = c.admin_url(0, ChainId::Delta).replace("http://", "");
        let request = || GetFaultInjectionRequest {
            chain: Chain::Delta as i32,
        };
        let token = || AdminToken::new(TOKEN).unwrap();

        let trusting = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(identity.cert.pem()))
            .domain_name(NAME);
        let channel = Endpoint::from_shared(format!("https://{admin_addr}"))
            .unwrap()
            .tls_config(trusting)
            .unwrap()
            .connect()
            .await
            .expect("a client trusting the validator's certificate connects");
        AdminClient::with_interceptor(channel, token())
            .get_fault_injection(request())
            .await
            .expect("an admin call over TLS with the token");

        let plaintext = Endpoint::from_shared(format!("http://{admin_addr}"))
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let refused = AdminClient::with_interceptor(plaintext, token())
            .get_fault_injection(request())
            .await;
        assert!(refused.is_err(), "a plaintext admin call: {refused:?}");

        let stranger = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
        let distrusting = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(stranger.cert.pem()))
            .domain_name(NAME);
        let connected = Endpoint::from_shared(format!("https://{admin_addr}"))
            .unwrap()
            .tls_config(distrusting)
            .unwrap()
            .connect()
            .await;
        assert!(connected.is_err(), "a client trusting another certificate");

        let public = c.channel(0, ChainId::Delta).await.unwrap();
        let absent = AdminClient::with_interceptor(public, token())
            .get_fault_injection(request())
            .await
            .unwrap_err();
        assert_eq!(absent.code(), tonic::Code::Unimplemented, "{absent:?}");
    });
    let stops = runtime().block_on(c.stop_all(Duration::from_secs(30)));
    assert!(stops.iter().all(|s| s.clean), "{stops:?}");
}
