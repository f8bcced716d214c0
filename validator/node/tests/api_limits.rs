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
