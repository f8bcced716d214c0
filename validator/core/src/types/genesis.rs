//! Genesis: the validator set, initial balances and chain parameters of a network.
//!
//! Stored as JSON for people and ConfigMaps; identified by the BLAKE3 digest of its
//! canonical binary encoding, so whitespace or key order in the JSON never changes
//! the network's identity.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::crypto::{NetworkId, ValidatorPublicKey};
use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader, write_len, write_vec};
use crate::hash::{Digest, HashDomain};

use super::account::{Address, AssetId};
use super::chain::{ChainId, ConsensusEngine};
use super::crosschain::CrossChainParams;
use super::validator::{MAX_VALIDATORS, ValidatorSet, ValidatorSetError};

const MAX_NAME_LEN: usize = 64;
const MAX_GENESIS_ACCOUNTS: usize = 10_000_000;
const MAX_ASSETS_PER_ACCOUNT: usize = 1024;
/// The last millisecond of year 9999: a genesis time beyond it is a mistake, and the
/// bound keeps `genesis time + slot × block time` far from `u64` overflow.
pub const MAX_GENESIS_TIME_MS: u64 = 253_402_300_799_999;
/// One hour: the longest block time (the defaults are 15 s and 3 s).
pub const MAX_BLOCK_TIME_MS: u64 = 3_600_000;
/// The longest epoch, in Alpha blocks (about 475 years of 15 s blocks).
pub const MAX_EPOCH_LENGTH_ALPHA_BLOCKS: u64 = 1_000_000_000;
/// The epoch length `dualchain genesis` writes unless told otherwise (an hour of 15 s
/// Alpha blocks).
pub const DEFAULT_EPOCH_LENGTH_ALPHA_BLOCKS: u64 = 240;

/// Parameters of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    /// Target block time (slot length) in milliseconds.
    pub block_time_ms: u64,
    /// QUIC port for validator-to-validator traffic.
    pub p2p_port: u16,
    /// gRPC control API port.
    pub api_port: u16,
    /// Consensus engine of this chain.
    #[serde(default)]
    pub consensus: ConsensusEngine,
}

impl ChainParams {
    /// Alpha's defaults: 15 s blocks, ports 4130 (p2p) and 3030 (API).
    pub fn alpha_default() -> Self {
        Self {
            block_time_ms: 15_000,
            p2p_port: 4130,
            api_port: 3030,
            consensus: ConsensusEngine::DagBft,
        }
    }

    /// Delta's defaults: 3 s blocks, ports 4131 (p2p) and 4030 (API).
    pub fn delta_default() -> Self {
        Self {
            block_time_ms: 3_000,
            p2p_port: 4131,
            api_port: 4030,
            consensus: ConsensusEngine::DagBft,
        }
    }
}

impl Encode for ChainParams {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.block_time_ms.encode_to(out);
        self.p2p_port.encode_to(out);
        self.api_port.encode_to(out);
        self.consensus.encode_to(out);
    }
}

impl Decode for ChainParams {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block_time_ms: r.read_u64("block time")?,
            p2p_port: r.read_u16("p2p port")?,
            api_port: r.read_u16("api port")?,
            consensus: Decode::decode_from(r)?,
        })
    }
}

/// A validator in genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// A readable name (e.g. the pod name), for logs and reports.
    pub name: String,
    /// ML-DSA-87 public key, hex.
    #[serde(with = "hex_validator_key")]
    pub public_key: ValidatorPublicKey,
    pub stake: u64,
}

impl Encode for GenesisValidator {
    fn encode_to(&self, out: &mut Vec<u8>) {
        crate::encoding::write_var_bytes(out, self.name.as_bytes());
        self.public_key.encode_to(out);
        self.stake.encode_to(out);
    }
}

impl Decode for GenesisValidator {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.read_string(MAX_NAME_LEN, "validator name")?,
            public_key: Decode::decode_from(r)?,
            stake: r.read_u64("stake")?,
        })
    }
}

/// An account with initial balances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    pub address: Address,
    /// Balance per asset (asset 0 is the native fee asset).
    pub balances: BTreeMap<AssetId, u64>,
}

impl Encode for GenesisAccount {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.address.encode_to(out);
        write_len(out, self.balances.len());
        for (asset, amount) in &self.balances {
            asset.encode_to(out);
            amount.encode_to(out);
        }
    }
}

impl Decode for GenesisAccount {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let address = Decode::decode_from(r)?;
        let count = r.read_len(MAX_ASSETS_PER_ACCOUNT, 12, "balances")?;
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            pairs.push((AssetId::decode_from(r)?, r.read_u64("balance")?));
        }
        crate::encoding::check_strictly_increasing(pairs.iter().map(|(a, _)| *a), "balances")?;
        Ok(Self {
            address,
            balances: pairs.into_iter().collect(),
        })
    }
}

/// An account's initial sAX: its native balance on Alpha, which it can lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaxAllocation {
    pub address: Address,
    pub amount: u64,
}

impl Encode for SaxAllocation {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.address.encode_to(out);
        self.amount.encode_to(out);
    }
}

impl Decode for SaxAllocation {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            address: Decode::decode_from(r)?,
            amount: r.read_u64("sAX amount")?,
        })
    }
}

/// Why a genesis is not usable.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis validators: {0}")]
    Validators(#[from] ValidatorSetError),
    #[error("{chain} block time must be greater than 0")]
    ZeroBlockTime { chain: ChainId },
    #[error(
        "Delta's block time ({delta_ms} ms) must divide Alpha's ({alpha_ms} ms) so that a whole number of Delta blocks fits in each Alpha block"
    )]
    BlockTimesNotAligned { alpha_ms: u64, delta_ms: u64 },
    #[error("ports must be distinct, {0} is used twice")]
    PortClash(u16),
    #[error("epoch length must be at least one Alpha block")]
    ZeroEpoch,
    #[error("account {0} appears twice")]
    DuplicateAccount(Address),
    #[error("the sAX allocations add up to more than {max}", max = u64::MAX)]
    SaxSupplyOverflow,
    #[error("cross_chain: {0}")]
    CrossChain(String),
    #[error("network name must be 1 to {MAX_NAME_LEN} bytes")]
    BadName,
    #[error("validator {index}'s name must be 1 to {MAX_NAME_LEN} bytes")]
    BadValidatorName { index: usize },
    #[error("{count} {what}: at most {max} fit in a genesis")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("genesis_time_ms {0} is beyond year 9999 ({MAX_GENESIS_TIME_MS})")]
    GenesisTimeOutOfRange(u64),
    #[error("{chain} block time {ms} ms is longer than one hour ({MAX_BLOCK_TIME_MS} ms)")]
    BlockTimeTooLong { chain: ChainId, ms: u64 },
    #[error("epoch length {0} is more than {MAX_EPOCH_LENGTH_ALPHA_BLOCKS} Alpha blocks")]
    EpochTooLong(u64),
    #[error("genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis: {0}")]
    Encoding(#[from] DecodeError),
}

/// The genesis of a network (both chains).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Network name, e.g. `devnet`.
    pub network: String,
    /// Start of slot 0 (unix ms).
    pub genesis_time_ms: u64,
    /// Epoch length in Alpha blocks; validator-set changes take effect at boundaries.
    pub epoch_length_alpha_blocks: u64,
    /// Benchmark mode: accept transactions without signatures. Off unless set here,
    /// and every report of a network with it on says "unsigned".
    #[serde(default)]
    pub allow_unsigned_transactions: bool,
    pub alpha: ChainParams,
    pub delta: ChainParams,
    pub validators: Vec<GenesisValidator>,
    /// Delta accounts and their balances.
    pub accounts: Vec<GenesisAccount>,
    /// Alpha accounts and their sAX (what can be locked for stake on Delta).
    #[serde(default)]
    pub sax_allocations: Vec<SaxAllocation>,
    /// Parameters of attestations and governance (defaults when absent).
    #[serde(default)]
    pub cross_chain: CrossChainParams,
}

impl Genesis {
    /// The network's identity: BLAKE3 (genesis domain) of the canonical encoding.
    pub fn hash(&self) -> Digest {
        HashDomain::Genesis.hash(&self.to_canonical_bytes())
    }

    /// The network id every signature of this network is bound to (its hash).
    pub fn network_id(&self) -> NetworkId {
        NetworkId(self.hash())
    }

    pub fn chain(&self, chain: ChainId) -> &ChainParams {
        match chain {
            ChainId::Alpha => &self.alpha,
            ChainId::Delta => &self.delta,
        }
    }

    /// The validator set of epoch 0.
    pub fn validator_set(&self) -> Result<ValidatorSet, ValidatorSetError> {
        ValidatorSet::new(
            0,
            self.validators
                .iter()
                .map(|v| (v.public_key.clone(), v.stake)),
        )
    }

    /// Checks every rule a node relies on; run before using a genesis.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.network.is_empty() || self.network.len() > MAX_NAME_LEN {
            return Err(GenesisError::BadName);
        }
        self.validator_set()?;
        self.validate_bounds()?;
        for chain in ChainId::ALL {
            if self.chain(chain).block_time_ms == 0 {
                return Err(GenesisError::ZeroBlockTime { chain });
            }
        }
        if !self
            .alpha
            .block_time_ms
            .is_multiple_of(self.delta.block_time_ms)
        {
            return Err(GenesisError::BlockTimesNotAligned {
                alpha_ms: self.alpha.block_time_ms,
                delta_ms: self.delta.block_time_ms,
            });
        }
        let mut ports = BTreeSet::new();
        for port in [
            self.alpha.p2p_port,
            self.alpha.api_port,
            self.delta.p2p_port,
            self.delta.api_port,
        ] {
            if !ports.insert(port) {
                return Err(GenesisError::PortClash(port));
            }
        }
        if self.epoch_length_alpha_blocks == 0 {
            return Err(GenesisError::ZeroEpoch);
        }
        let mut seen = BTreeSet::new();
        for account in &self.accounts {
            if !seen.insert(account.address) {
                return Err(GenesisError::DuplicateAccount(account.address));
            }
        }
        let mut seen = BTreeSet::new();
        let mut supply: u64 = 0;
        for allocation in &self.sax_allocations {
            if !seen.insert(allocation.address) {
                return Err(GenesisError::DuplicateAccount(allocation.address));
            }
            // Bounded total supply: stake weights and tallies can then never overflow.
            supply = supply
                .checked_add(allocation.amount)
                .ok_or(GenesisError::SaxSupplyOverflow)?;
        }
        self.cross_chain
            .validate()
            .map_err(GenesisError::CrossChain)?;
        Ok(())
    }

    /// What the canonical decoder and the slot arithmetic can handle: names and list
    /// lengths within the decoder's limits (a genesis it cannot read back could never
    /// be served to a joining node), times and lengths far from overflow.
    fn validate_bounds(&self) -> Result<(), GenesisError> {
        for (index, validator) in self.validators.iter().enumerate() {
            if validator.name.is_empty() || validator.name.len() > MAX_NAME_LEN {
                return Err(GenesisError::BadValidatorName { index });
            }
        }
        for (what, count, max) in [
            ("accounts", self.accounts.len(), MAX_GENESIS_ACCOUNTS),
            (
                "sAX allocations",
                self.sax_allocations.len(),
                MAX_GENESIS_ACCOUNTS,
            ),
            (
                "assets of one account",
                self.accounts
                    .iter()
                    .map(|a| a.balances.len())
                    .max()
                    .unwrap_or(0),
                MAX_ASSETS_PER_ACCOUNT,
            ),
        ] {
            if count > max {
                return Err(GenesisError::TooMany { what, count, max });
            }
        }
        if self.genesis_time_ms > MAX_GENESIS_TIME_MS {
            return Err(GenesisError::GenesisTimeOutOfRange(self.genesis_time_ms));
        }
        for chain in ChainId::ALL {
            let ms = self.chain(chain).block_time_ms;
            if ms > MAX_BLOCK_TIME_MS {
                return Err(GenesisError::BlockTimeTooLong { chain, ms });
            }
        }
        if self.epoch_length_alpha_blocks > MAX_EPOCH_LENGTH_ALPHA_BLOCKS {
            return Err(GenesisError::EpochTooLong(self.epoch_length_alpha_blocks));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis serialises to JSON")
    }

    /// Parses and validates a genesis JSON document.
    pub fn from_json(json: &str) -> Result<Self, GenesisError> {
        let genesis: Genesis = serde_json::from_str(json)?;
        genesis.validate()?;
        Ok(genesis)
    }
}

impl Encode for Genesis {
    fn encode_to(&self, out: &mut Vec<u8>) {
        crate::encoding::write_var_bytes(out, self.network.as_bytes());
        self.genesis_time_ms.encode_to(out);
        self.epoch_length_alpha_blocks.encode_to(out);
        self.allow_unsigned_transactions.encode_to(out);
        self.alpha.encode_to(out);
        self.delta.encode_to(out);
        write_vec(out, &self.validators);
        write_vec(out, &self.accounts);
        write_vec(out, &self.sax_allocations);
        self.cross_chain.encode_to(out);
    }
}

impl Decode for Genesis {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            network: r.read_string(MAX_NAME_LEN, "network name")?,
            genesis_time_ms: r.read_u64("genesis time")?,
            epoch_length_alpha_blocks: r.read_u64("epoch length")?,
            allow_unsigned_transactions: r.read_bool("allow unsigned")?,
            alpha: Decode::decode_from(r)?,
            delta: Decode::decode_from(r)?,
            validators: r.read_vec(MAX_VALIDATORS, 4 + 2592 + 8, "genesis validators")?,
            accounts: r.read_vec(MAX_GENESIS_ACCOUNTS, 36, "genesis accounts")?,
            sax_allocations: r.read_vec(MAX_GENESIS_ACCOUNTS, 40, "sAX allocations")?,
            cross_chain: Decode::decode_from(r)?,
        })
    }
}

impl Canonical for Genesis {
    const NAME: &'static str = "genesis";
    const MAX_ENCODED_LEN: usize = 1 << 30;
}

mod hex_validator_key {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::crypto::ValidatorPublicKey;

    pub fn serialize<S: Serializer>(key: &ValidatorPublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ValidatorPublicKey, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text.trim()).map_err(serde::de::Error::custom)?;
        ValidatorPublicKey::from_bytes(&bytes).map_err(|_| {
            serde::de::Error::custom(format!(
                "a validator public key is {} bytes of ML-DSA-87, got {}",
                2592,
                bytes.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ValidatorKeypair;

    pub(crate) fn sample(validators: usize) -> Genesis {
        Genesis {
            network: "test".into(),
            genesis_time_ms: 1_700_000_000_000,
            epoch_length_alpha_blocks: 240,
            allow_unsigned_transactions: false,
            alpha: ChainParams::alpha_default(),
            delta: ChainParams::delta_default(),
            validators: (0..validators)
                .map(|i| GenesisValidator {
                    name: format!("validator-{i}"),
                    public_key: ValidatorKeypair::from_seed(&[i as u8; 32]).public().clone(),
                    stake: 100,
                })
                .collect(),
            accounts: vec![GenesisAccount {
                address: Address([5; 32]),
                balances: [(AssetId::NATIVE, 1_000), (AssetId(3), 7)].into(),
            }],
            sax_allocations: vec![SaxAllocation {
                address: Address([5; 32]),
                amount: 500,
            }],
            cross_chain: CrossChainParams::default(),
        }
    }

    #[test]
    fn json_round_trip_keeps_the_hash() {
        let g = sample(4);
        g.validate().unwrap();
        let back = Genesis::from_json(&g.to_json()).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
        let canonical = Genesis::from_canonical_bytes(&g.to_canonical_bytes()).unwrap();
        assert_eq!(canonical, g);
    }

    #[test]
    fn defaults_give_five_delta_blocks_per_alpha_block() {
        let g = sample(1);
        assert_eq!(g.alpha.block_time_ms / g.delta.block_time_ms, 5);
        assert_eq!((g.alpha.p2p_port, g.alpha.api_port), (4130, 3030));
        assert_eq!((g.delta.p2p_port, g.delta.api_port), (4131, 4030));
    }

    #[test]
    fn each_chain_names_its_engine_and_an_unknown_engine_is_refused() {
        let mut hashes = std::collections::BTreeSet::new();
        for alpha in ConsensusEngine::ALL {
            for delta in ConsensusEngine::ALL {
                let mut g = sample(4);
                (g.alpha.consensus, g.delta.consensus) = (alpha, delta);
                g.validate().unwrap();
                let back = Genesis::from_json(&g.to_json()).unwrap();
                assert_eq!((back.alpha.consensus, back.delta.consensus), (alpha, delta));
                assert!(
                    hashes.insert(g.hash()),
                    "the engines are part of the identity"
                );
            }
        }
        let json = sample(4).to_json().replacen("dag-bft", "snowman", 1);
        let error = Genesis::from_json(&json).unwrap_err().to_string();
        assert!(
            error.contains("snowman") && error.contains("avalanche"),
            "{error}"
        );
    }

    #[test]
    fn invalid_genesis_is_refused_with_reasons() {
        let mut g = sample(4);
        g.delta.block_time_ms = 4_000;
        assert!(matches!(
            g.validate(),
            Err(GenesisError::BlockTimesNotAligned { .. })
        ));
        let mut g = sample(4);
        g.alpha.block_time_ms = 0;
        assert!(matches!(
            g.validate(),
            Err(GenesisError::ZeroBlockTime { .. })
        ));
        let mut g = sample(4);
        g.validators[2].name = "v".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            g.validate(),
            Err(GenesisError::BadValidatorName { index: 2 })
        ));
        g.validators[2].name.clear();
        assert!(matches!(
            g.validate(),
            Err(GenesisError::BadValidatorName { index: 2 })
        ));
        let mut g = sample(4);
        g.genesis_time_ms = MAX_GENESIS_TIME_MS + 1;
        assert!(matches!(
            g.validate(),
            Err(GenesisError::GenesisTimeOutOfRange(_))
        ));
        let mut g = sample(4);
        g.alpha.block_time_ms = MAX_BLOCK_TIME_MS * 2;
        g.delta.block_time_ms = MAX_BLOCK_TIME_MS;
        assert!(matches!(
            g.validate(),
            Err(GenesisError::BlockTimeTooLong {
                chain: ChainId::Alpha,
                ..
            })
        ));
        let mut g = sample(4);
        g.epoch_length_alpha_blocks = u64::MAX;
        assert!(matches!(g.validate(), Err(GenesisError::EpochTooLong(_))));
        let mut g = sample(4);
        g.accounts[0].balances = (0..=MAX_ASSETS_PER_ACCOUNT as u32)
            .map(|asset| (AssetId(asset), 1))
            .collect();
        assert!(matches!(
            g.validate(),
            Err(GenesisError::TooMany {
                what: "assets of one account",
                ..
            })
        ));
        // At the bounds, the genesis validates and its canonical bytes read back.
        let mut g = sample(4);
        g.validators[0].name = "v".repeat(MAX_NAME_LEN);
        g.genesis_time_ms = MAX_GENESIS_TIME_MS;
        g.epoch_length_alpha_blocks = MAX_EPOCH_LENGTH_ALPHA_BLOCKS;
        g.validate().unwrap();
        assert_eq!(
            Genesis::from_canonical_bytes(&g.to_canonical_bytes()).unwrap(),
            g
        );
        let mut g = sample(4);
        g.delta.api_port = g.alpha.api_port;
        assert!(matches!(g.validate(), Err(GenesisError::PortClash(3030))));
        let mut g = sample(4);
        g.accounts.push(g.accounts[0].clone());
        assert!(matches!(
            g.validate(),
            Err(GenesisError::DuplicateAccount(_))
        ));
        assert!(matches!(
            sample(0).validate(),
            Err(GenesisError::Validators(_))
        ));
        let mut g = sample(4);
        g.sax_allocations.push(SaxAllocation {
            address: Address([6; 32]),
            amount: u64::MAX,
        });
        assert!(matches!(g.validate(), Err(GenesisError::SaxSupplyOverflow)));
        let mut g = sample(4);
        g.sax_allocations.push(g.sax_allocations[0].clone());
        assert!(matches!(
            g.validate(),
            Err(GenesisError::DuplicateAccount(_))
        ));
        let mut g = sample(4);
        g.cross_chain.quorum_bps = 10_001;
        assert!(matches!(g.validate(), Err(GenesisError::CrossChain(_))));
        // A genesis written before the cross-chain fields still parses, with defaults.
        let mut json: serde_json::Value = serde_json::from_str(&sample(1).to_json()).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("sax_allocations");
        object.remove("cross_chain");
        let old = Genesis::from_json(&json.to_string()).unwrap();
        assert!(old.sax_allocations.is_empty());
        assert_eq!(old.cross_chain, CrossChainParams::default());
        let json = sample(1).to_json().replace("\"stake\"", "\"stakes\"");
        assert!(matches!(
            Genesis::from_json(&json),
            Err(GenesisError::Json(_))
        ));
    }
}
