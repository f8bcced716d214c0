//! The peers file: where every validator of the network listens.
//!
//! Same format the operator mounts (`peers.json`) and `dualchain devnet` writes:
//! `[{"index","name","host","alphaP2pPort","deltaP2pPort","alphaApiPort","deltaApiPort"}]`.
//! `host` is an IP address or a DNS name (a StatefulSet pod's stable name, which may
//! not resolve until the pod exists: the transport keeps retrying).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use dualchain_core::types::ChainId;
pub use dualchain_core::types::PeerEntry;
use dualchain_net::PeerAddress;

/// Most entries a peers file may hold (the validator-set limit is far below).
const MAX_PEERS: usize = 10_000;

/// The QUIC address of `peer`'s `chain`.
pub fn p2p_address(peer: &PeerEntry, chain: ChainId) -> PeerAddress {
    let port = peer.p2p_port(chain);
    match peer.host.parse::<IpAddr>() {
        Ok(ip) => PeerAddress::Socket(SocketAddr::new(ip, port)),
        Err(_) => PeerAddress::Dns {
            host: peer.host.clone(),
            port,
        },
    }
}

/// Reads and checks a peers file: indices unique, hosts non-empty, ports non-zero.
pub fn load_peers(path: &Path) -> anyhow::Result<Vec<PeerEntry>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading peers file {}", path.display()))?;
    if bytes.len() > 16 * 1024 * 1024 {
        bail!("peers file {} is over 16 MiB", path.display());
    }
    let peers: Vec<PeerEntry> = serde_json::from_slice(&bytes)
        .with_context(|| format!("invalid peers file {}", path.display()))?;
    check_peers(&peers).with_context(|| format!("invalid peers file {}", path.display()))?;
    Ok(peers)
}

fn check_peers(peers: &[PeerEntry]) -> anyhow::Result<()> {
    if peers.len() > MAX_PEERS {
        bail!("{} entries, over the limit of {MAX_PEERS}", peers.len());
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in peers {
        if !seen.insert(p.index) {
            bail!("validator index {} appears twice", p.index);
        }
        if p.host.trim().is_empty() {
            bail!("peer {} has an empty host", p.index);
        }
        if [
            p.alpha_p2p_port,
            p.delta_p2p_port,
            p.alpha_api_port,
            p.delta_api_port,
        ]
        .contains(&0)
        {
            bail!("peer {} has a zero port", p.index);
        }
    }
    Ok(())
}

/// The addresses to dial for `chain`: every entry except our own (`me`: our genesis
/// index; a joining validator has none and dials every entry).
pub fn dial_targets(peers: &[PeerEntry], me: Option<u32>, chain: ChainId) -> Vec<PeerAddress> {
    peers
        .iter()
        .filter(|p| Some(p.index) != me)
        .map(|p| p2p_address(p, chain))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u32, host: &str) -> PeerEntry {
        PeerEntry {
            index,
            name: format!("v-{index}"),
            host: host.into(),
            alpha_p2p_port: 4130,
            delta_p2p_port: 4131,
            alpha_api_port: 3030,
            delta_api_port: 4030,
        }
    }

    #[test]
    fn ips_become_sockets_and_names_stay_dns() {
        let peers = vec![entry(0, "127.0.0.1"), entry(1, "v-1.v-peers.ns.svc")];
        let targets = dial_targets(&peers, Some(0), ChainId::Delta);
        assert_eq!(
            targets,
            vec![PeerAddress::Dns {
                host: "v-1.v-peers.ns.svc".into(),
                port: 4131
            }]
        );
        assert_eq!(
            p2p_address(&peers[0], ChainId::Alpha),
            PeerAddress::Socket("127.0.0.1:4130".parse().unwrap())
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        let dup = serde_json::json!([
            {"index":0,"name":"a","host":"h","alphaP2pPort":1,"deltaP2pPort":2,"alphaApiPort":3,"deltaApiPort":4},
            {"index":0,"name":"b","host":"h","alphaP2pPort":1,"deltaP2pPort":2,"alphaApiPort":3,"deltaApiPort":4}
        ]);
        std::fs::write(&path, dup.to_string()).unwrap();
        let err = format!("{:#}", load_peers(&path).unwrap_err());
        assert!(err.contains("appears twice"), "{err}");
        std::fs::write(&path, "[{\"index\":0}]").unwrap();
        assert!(load_peers(&path).is_err());
    }
}
