use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::encoding::{Decode, DecodeError, Encode, Reader};

/// Which of the two chains an object belongs to.
///
/// Alpha: 15 s blocks, record state (locks, governance, validator set).
/// Delta: 3 s blocks, account state (balances per asset, nonces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainId {
    Alpha = 0,
    Delta = 1,
}

impl ChainId {
    pub const ALL: [ChainId; 2] = [ChainId::Alpha, ChainId::Delta];

    /// The other chain of the network (the one attestations come from and go to).
    pub const fn other(self) -> ChainId {
        match self {
            ChainId::Alpha => ChainId::Delta,
            ChainId::Delta => ChainId::Alpha,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            ChainId::Alpha => "alpha",
            ChainId::Delta => "delta",
        }
    }

    pub const fn tag(self) -> u8 {
        self as u8
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(ChainId::Alpha),
            1 => Some(ChainId::Delta),
            _ => None,
        }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChainId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "alpha" => Ok(ChainId::Alpha),
            "delta" => Ok(ChainId::Delta),
            other => Err(format!("unknown chain {other:?}: expected alpha or delta")),
        }
    }
}

impl Encode for ChainId {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
    }
}

impl Decode for ChainId {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = reader.read_u8("chain id")?;
        ChainId::from_tag(tag).ok_or(DecodeError::UnknownTag {
            what: "chain id",
            tag,
        })
    }
}

/// The consensus engine a chain runs (selectable per chain in genesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ConsensusEngine {
    /// Round-based DAG BFT with a deterministic commit rule (the default).
    #[default]
    DagBft = 0,
    /// Snowball sampling over the same vertex DAG: each leader slot is decided by
    /// repeated signed queries to random samples of peers (probabilistic finality).
    Avalanche = 1,
}

impl ConsensusEngine {
    /// Every engine, in tag order.
    pub const ALL: [ConsensusEngine; 2] = [ConsensusEngine::DagBft, ConsensusEngine::Avalanche];

    /// The engine's name in genesis files and manifests.
    pub fn name(self) -> &'static str {
        match self {
            ConsensusEngine::DagBft => "dag-bft",
            ConsensusEngine::Avalanche => "avalanche",
        }
    }
}

impl Encode for ConsensusEngine {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl Decode for ConsensusEngine {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.read_u8("consensus engine")? {
            0 => Ok(ConsensusEngine::DagBft),
            1 => Ok(ConsensusEngine::Avalanche),
            tag => Err(DecodeError::UnknownTag {
                what: "consensus engine",
                tag,
            }),
        }
    }
}
