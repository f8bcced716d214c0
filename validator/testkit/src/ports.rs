//! Loopback ports and the `peers.json` of a local network.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::{Context, bail};
use dualchain_core::types::{ChainId, PeerEntry};

/// Every port [`free_ports`] handed out in this process. The listeners are released
/// before the validators bind, so without this two clusters planned concurrently
/// (tests run in parallel in one process) could be given the same port by the
/// kernel: CI once saw a Delta API bound on another cluster's Alpha API port.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Picks `count` distinct loopback ports free for both TCP and UDP right now and
/// never handed out before by this process (the listeners are held until all are
/// chosen, then released).
pub fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    let mut attempts = 0;
    while ports.len() < count {
        attempts += 1;
        if attempts > count * 50 + 50 {
            bail!("could not find {count} free loopback ports");
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        let port = tcp.local_addr()?.port();
        if handed_out.contains(&port) {
            continue;
        }
        // QUIC needs the same number free on UDP.
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            ports.push(port);
            held.push((tcp, udp));
        }
    }
    handed_out.extend(&ports);
    Ok(ports)
}

/// One validator of a local network: its `peers.json` entry (the
/// [`dualchain_core::types::PeerEntry`] contract of `dualchain run --peers`) and the
/// metrics ports, which are not part of that file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPeer {
    pub entry: PeerEntry,
    /// Metrics of the `--chain both` process, or of the Alpha process.
    pub metrics_port: u16,
    /// Metrics of the Delta process when the chains run as separate processes.
    pub delta_metrics_port: u16,
    /// The admin listeners (loopback, plaintext), not part of `peers.json` either.
    pub alpha_admin_port: u16,
    pub delta_admin_port: u16,
}

impl LocalPeer {
    /// Index of the validator.
    pub fn index(&self) -> usize {
        self.entry.index as usize
    }

    /// API port of `chain`.
    pub fn api_port(&self, chain: ChainId) -> u16 {
        match chain {
            ChainId::Alpha => self.entry.alpha_api_port,
            ChainId::Delta => self.entry.delta_api_port,
        }
    }

    /// QUIC port of `chain`.
    pub fn p2p_port(&self, chain: ChainId) -> u16 {
        self.entry.p2p_port(chain)
    }

    /// Admin port of `chain`.
    pub fn admin_port(&self, chain: ChainId) -> u16 {
        match chain {
            ChainId::Alpha => self.alpha_admin_port,
            ChainId::Delta => self.delta_admin_port,
        }
    }

    /// `http://127.0.0.1:<admin port>` of `chain`.
    pub fn admin_url(&self, chain: ChainId) -> String {
        format!("http://{}:{}", self.entry.host, self.admin_port(chain))
    }

    /// `http://127.0.0.1:<api port>` of `chain`.
    pub fn api_url(&self, chain: ChainId) -> String {
        format!("http://{}:{}", self.entry.host, self.api_port(chain))
    }
}

/// Validators `v-0 … v-(n-1)` on 127.0.0.1 with eight free ports each.
pub fn plan_local_peers(n: usize) -> anyhow::Result<Vec<LocalPeer>> {
    let ports = free_ports(n * 8)?;
    Ok(ports
        .chunks_exact(8)
        .enumerate()
        .map(|(i, p)| LocalPeer {
            entry: PeerEntry {
                index: i as u32,
                name: format!("v-{i}"),
                host: "127.0.0.1".into(),
                alpha_p2p_port: p[0],
                delta_p2p_port: p[1],
                alpha_api_port: p[2],
                delta_api_port: p[3],
            },
            metrics_port: p[4],
            delta_metrics_port: p[5],
            alpha_admin_port: p[6],
            delta_admin_port: p[7],
        })
        .collect())
}

/// The `peers.json` document of `peers`.
pub fn peers_json(peers: &[LocalPeer]) -> String {
    let entries: Vec<&PeerEntry> = peers.iter().map(|p| &p.entry).collect();
    serde_json::to_string_pretty(&entries).expect("peer entries serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_never_handed_out_twice_in_one_process() {
        let first = free_ports(32).unwrap();
        let second = free_ports(32).unwrap();
        assert!(
            first.iter().all(|p| !second.contains(p)),
            "{first:?} {second:?}"
        );
    }

    #[test]
    fn peers_json_matches_the_run_contract_and_ports_are_distinct() {
        let peers = plan_local_peers(4).unwrap();
        let mut all: Vec<u16> = peers
            .iter()
            .flat_map(|p| {
                let e = &p.entry;
                [
                    e.alpha_p2p_port,
                    e.delta_p2p_port,
                    e.alpha_api_port,
                    e.delta_api_port,
                    p.metrics_port,
                    p.delta_metrics_port,
                ]
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 24);
        let text = peers_json(&peers);
        // What `dualchain run --peers` reads (unknown fields refused) reads it back.
        let back: Vec<PeerEntry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back[3], peers[3].entry);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = &json[0];
        assert_eq!(first["index"], 0);
        assert_eq!(first["name"], "v-0");
        assert_eq!(first["host"], "127.0.0.1");
        for key in [
            "alphaP2pPort",
            "deltaP2pPort",
            "alphaApiPort",
            "deltaApiPort",
        ] {
            assert!(first[key].is_u64(), "{key} missing in {first}");
        }
        assert!(first.get("metricsPort").is_none());
        assert_eq!(
            peers[1].api_url(ChainId::Delta),
            format!("http://127.0.0.1:{}", peers[1].entry.delta_api_port)
        );
    }
}
