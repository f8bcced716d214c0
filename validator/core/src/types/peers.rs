//! One entry of `peers.json`, where a validator listens: the contract between the
//! operator (which writes the file into each pod), `dualchain devnet`, and
//! `dualchain run --peers` (which reads it). One type keeps writer and reader in step.

use serde::{Deserialize, Serialize};

use super::ChainId;

/// How validator `index` is reached. `host` is an IP address or a DNS name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerEntry {
    pub index: u32,
    pub name: String,
    pub host: String,
    pub alpha_p2p_port: u16,
    pub delta_p2p_port: u16,
    pub alpha_api_port: u16,
    pub delta_api_port: u16,
}

impl PeerEntry {
    /// The QUIC port of this peer's `chain`.
    pub fn p2p_port(&self, chain: ChainId) -> u16 {
        match chain {
            ChainId::Alpha => self.alpha_p2p_port,
            ChainId::Delta => self.delta_p2p_port,
        }
    }
}
