//! `dualchain status`: one node's status, readable or as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use dualchain_proto::NodeClient;
use dualchain_proto::v1::{ChainStatus, GetStatusRequest, NodeStatus};
use serde::Serialize;

/// A node's status in plain types (hex digests), for JSON and printing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    pub endpoint: String,
    pub node_version: String,
    pub validator_key_digest: String,
    /// The network this node belongs to (hex of its genesis digest): what every
    /// signature sent to it must be bound to.
    pub network_id: String,
    pub validator_index: Option<u32>,
    pub epoch: u64,
    pub peer_id: String,
    pub started_at_unix_ms: u64,
    pub chains: Vec<ChainView>,
}

/// One chain's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainView {
    pub chain: String,
    pub height: u64,
    pub finalized_height: u64,
    pub round: u64,
    pub epoch: u64,
    /// The head block's epoch: below `epoch` between the chain's boundary and its
    /// first block with the new set.
    pub head_epoch: u64,
    /// Digest of the set of `epoch` (the same on both chains of a validator).
    pub validator_set_digest: String,
    pub connected_peers: u32,
    pub mempool_depth: u64,
    pub mempool_capacity: u64,
    pub health: String,
    pub health_reason: String,
    pub paused: bool,
    pub last_block_time_unix_ms: u64,
    pub latest_state_root: String,
    pub head_digest: String,
    pub fault_injection_active: bool,
}

fn chain_name(chain: dualchain_proto::v1::Chain) -> String {
    chain
        .as_str_name()
        .trim_start_matches("CHAIN_")
        .to_ascii_lowercase()
}

impl ChainView {
    pub fn from_proto(c: &ChainStatus) -> Self {
        Self {
            chain: chain_name(c.chain()),
            height: c.height,
            finalized_height: c.finalized_height,
            round: c.round,
            epoch: c.epoch,
            head_epoch: c.head_epoch,
            validator_set_digest: hex::encode(&c.validator_set_digest),
            connected_peers: c.connected_peers,
            mempool_depth: c.mempool_depth,
            mempool_capacity: c.mempool_capacity,
            health: c
                .health()
                .as_str_name()
                .trim_start_matches("HEALTH_")
                .to_ascii_lowercase(),
            health_reason: c.health_reason.clone(),
            paused: c.paused,
            last_block_time_unix_ms: c.last_block_time_unix_ms,
            latest_state_root: hex::encode(&c.latest_state_root),
            head_digest: hex::encode(&c.head_digest),
            fault_injection_active: c.fault_injection_active,
        }
    }
}

impl StatusView {
    pub fn from_proto(endpoint: &str, s: &NodeStatus) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            node_version: s.node_version.clone(),
            validator_key_digest: hex::encode(&s.validator_key_digest),
            network_id: hex::encode(&s.network_id),
            validator_index: s.validator_index,
            epoch: s.epoch,
            peer_id: s.peer_id.clone(),
            started_at_unix_ms: s.started_at_unix_ms,
            chains: s.chains.iter().map(ChainView::from_proto).collect(),
        }
    }

    /// Human-readable rendering: a node header and one block per chain.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let index = self
            .validator_index
            .map_or("not in the validator set".to_owned(), |i| i.to_string());
        let _ = writeln!(out, "node      {}", self.endpoint);
        let _ = writeln!(out, "version   {}", self.node_version);
        let _ = writeln!(out, "network   {}", short(&self.network_id));
        let _ = writeln!(out, "validator {index}");
        let _ = writeln!(out, "peer id   {}", self.peer_id);
        let _ = writeln!(out, "epoch     {}", self.epoch);
        for c in &self.chains {
            let reason = if c.health_reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.health_reason)
            };
            let paused = if c.paused { ", PAUSED" } else { "" };
            let faults = if c.fault_injection_active {
                ", fault injection active"
            } else {
                ""
            };
            let _ = writeln!(out);
            let _ = writeln!(out, "{}: {}{reason}{paused}{faults}", c.chain, c.health);
            let _ = writeln!(
                out,
                "  height {} (finalized {}), round {}, epoch {}",
                c.height, c.finalized_height, c.round, c.epoch
            );
            // A chain that left the set stays at its last block (stopped, and says why).
            let switching = if c.head_epoch < c.epoch && c.health != "stopped" {
                format!(" (its head block is of epoch {}: switching)", c.head_epoch)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  validator set {}{switching}",
                short(&c.validator_set_digest)
            );
            let _ = writeln!(
                out,
                "  peers {}, mempool {}/{}",
                c.connected_peers, c.mempool_depth, c.mempool_capacity
            );
            let _ = writeln!(out, "  state root {}", short(&c.latest_state_root));
            let _ = writeln!(out, "  head       {}", short(&c.head_digest));
        }
        if self.chains.is_empty() {
            let _ = writeln!(out, "\n(the node reports no chains)");
        }
        out
    }
}

fn short(hex: &str) -> &str {
    if hex.is_empty() {
        "-"
    } else {
        &hex[..hex.len().min(16)]
    }
}

/// Fetches the status of the node at `endpoint`.
pub async fn fetch_status(endpoint: &str) -> anyhow::Result<StatusView> {
    let channel = crate::loadgen::connect(endpoint).await?;
    let mut client = NodeClient::new(channel);
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_status(GetStatusRequest {}),
    )
    .await
    .with_context(|| format!("{endpoint} did not answer GetStatus within 10 s"))?
    .with_context(|| format!("GetStatus on {endpoint}"))?
    .into_inner();
    Ok(StatusView::from_proto(endpoint, &status))
}

#[cfg(test)]
mod tests {
    use dualchain_proto::v1::{Chain, Health};

    use super::*;

    #[test]
    fn both_chains_are_rendered_readably_and_as_json() {
        let chain = |c: Chain, h: u64, health: Health, reason: &str| ChainStatus {
            chain: c as i32,
            height: h,
            finalized_height: h - 1,
            connected_peers: 3,
            mempool_depth: 12,
            mempool_capacity: 500_000,
            health: health as i32,
            health_reason: reason.into(),
            latest_state_root: vec![0xab; 32],
            head_digest: vec![0xcd; 32],
            epoch: 2,
            head_epoch: if c == Chain::Alpha { 1 } else { 2 },
            validator_set_digest: vec![0x5e; 32],
            ..ChainStatus::default()
        };
        let status = NodeStatus {
            node_version: "0.1.0".into(),
            validator_index: Some(0),
            epoch: 2,
            peer_id: "peer-0".into(),
            network_id: vec![0x5e; 32],
            chains: vec![
                chain(Chain::Alpha, 10, Health::Healthy, ""),
                chain(Chain::Delta, 50, Health::Degraded, "timing drift"),
            ],
            ..NodeStatus::default()
        };
        let view = StatusView::from_proto("http://127.0.0.1:4030", &status);
        let text = view.render();
        for part in [
            "validator 0",
            "network   5e5e5e5e5e5e5e5e",
            "alpha: healthy",
            "delta: degraded (timing drift)",
            "height 50 (finalized 49)",
            "peers 3, mempool 12/500000",
            "state root abababababababab",
            "validator set 5e5e5e5e5e5e5e5e (its head block is of epoch 1: switching)",
            "validator set 5e5e5e5e5e5e5e5e\n",
        ] {
            assert!(text.contains(part), "{part} missing in\n{text}");
        }
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["chains"][1]["chain"], "delta");
        assert_eq!(json["network_id"], "5e".repeat(32));
        assert_eq!(json["chains"][0]["latest_state_root"], "ab".repeat(32));
        assert_eq!(json["chains"][0]["head_epoch"], 1);
        assert_eq!(json["chains"][1]["validator_set_digest"], "5e".repeat(32));
        let observer = StatusView::from_proto("x", &NodeStatus::default()).render();
        assert!(observer.contains("not in the validator set"));
        assert!(observer.contains("reports no chains"));
    }
}
