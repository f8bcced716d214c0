//! `GetStatus` latency while 10,000 idle client connections press on the API
//! (issue 21's target: p99 < 100 ms), against a baseline measured in the same
//! run without them.
//!
//! The attacker opens 10,000 TCP connections from 40 loopback addresses
//! (127.0.0.10–49, 250 each) and never sends a byte; the server keeps what its
//! caps allow (4,096 by default) and closes the rest. The honest client
//! (127.0.0.1) then calls `GetStatus` (a) on its open channel and (b) on a new
//! connection per call, which must evict an idle one each time.
//!
//! `cargo bench -p dualchain-api --bench idle_connections` runs it in full;
//! without `--bench` (as `cargo test --all-targets` runs benches) it runs a
//! small smoke version.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use dualchain_api::ApiOptions;
use dualchain_core::types::ChainId;
use dualchain_proto::NodeClient;
use dualchain_proto::v1::GetStatusRequest;
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::{Channel, Endpoint};

use support::{FakeChain, Running};

struct Scale {
    idle_connections: usize,
    addresses: u8,
    calls: usize,
}

const FULL: Scale = Scale {
    idle_connections: 10_000,
    addresses: 40,
    calls: 2_000,
};
const SMOKE: Scale = Scale {
    idle_connections: 400,
    addresses: 4,
    calls: 100,
};

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let scale = if full { FULL } else { SMOKE };
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("open-file limit");
    assert!(
        limit as usize > scale.idle_connections + 4_096 + 256,
        "the open-file limit ({limit}) cannot hold the attack and the server"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(scale));
}

async fn run(scale: Scale) {
    let registry = prometheus::Registry::new();
    let options = ApiOptions {
        metrics_registry: Some(registry.clone()),
        ..ApiOptions::default()
    };
    let server = Running::start(FakeChain::new(ChainId::Delta, 64), options).await;
    let honest = honest_channel(server.addr).await;
    let baseline = measure(&honest, scale.calls).await;
    let baseline_fresh = measure_fresh(server.addr, scale.calls / 10).await;

    let idle = open_idle(server.addr, &scale).await;
    // Let every idle connection age past the eviction threshold.
    tokio::time::sleep(dualchain_api::MIN_IDLE_TO_EVICT + Duration::from_millis(500)).await;
    let attacked = measure(&honest, scale.calls).await;
    let attacked_fresh = measure_fresh(server.addr, scale.calls / 10).await;

    println!(
        "idle_connections: {} attempted from {} addresses; server: {} open, {} closed on arrival, \
         {} evicted for newcomers",
        idle.len(),
        scale.addresses,
        metric(&registry, "dualchain_api_connections") as u64,
        metric(&registry, "dualchain_api_connections_refused_total") as u64,
        metric(&registry, "dualchain_api_connections_closed_total") as u64,
    );
    report("GetStatus on an open channel", &baseline, &attacked);
    report(
        "GetStatus on a new connection",
        &baseline_fresh,
        &attacked_fresh,
    );
    drop(idle);
    server.stop().await.expect("server stops");
}

fn report(what: &str, baseline: &[Duration], attacked: &[Duration]) {
    let (b50, b99) = (percentile(baseline, 50), percentile(baseline, 99));
    let (a50, a99) = (percentile(attacked, 50), percentile(attacked, 99));
    println!(
        "{what}: baseline p50 {:.2} ms p99 {:.2} ms; under idle connections p50 {:.2} ms p99 {:.2} ms \
         (p99 ratio {:.2}; target p99 < 100 ms: {})",
        ms(b50),
        ms(b99),
        ms(a50),
        ms(a99),
        a99.as_secs_f64() / b99.as_secs_f64().max(1e-9),
        if a99 < Duration::from_millis(100) {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percentile(samples: &[Duration], pct: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() * pct).div_ceil(100)).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

async fn honest_channel(server: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{server}"))
        .expect("endpoint")
        .local_address(Some(IpAddr::from([127, 0, 0, 1])))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("honest client connects")
}

async fn measure(channel: &Channel, calls: usize) -> Vec<Duration> {
    let mut client = NodeClient::new(channel.clone());
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        client
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus answers");
        samples.push(started.elapsed());
    }
    samples
}

/// Each call on a connection of its own (connect included in the time).
async fn measure_fresh(server: SocketAddr, calls: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let channel = honest_channel(server).await;
        NodeClient::new(channel)
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus answers on a new connection");
        samples.push(started.elapsed());
    }
    samples
}

/// The sum of every series of `name` in `registry`.
fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric())
        // The field a family does not use reads as zero.
        .map(|metric| metric.get_gauge().get_value() + metric.get_counter().get_value())
        .sum()
}

/// Opens the attacker's connections and holds them.
async fn open_idle(server: SocketAddr, scale: &Scale) -> Vec<TcpStream> {
    let per_address = scale.idle_connections / scale.addresses as usize;
    let mut sockets = Vec::with_capacity(scale.idle_connections);
    for address in 0..scale.addresses {
        let from = IpAddr::from([127, 0, 0, 10 + address]);
        for _ in 0..per_address {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.bind(SocketAddr::new(from, 0)).expect("bind");
            sockets.push(socket.connect(server).await.expect("connect"));
        }
    }
    sockets
}
