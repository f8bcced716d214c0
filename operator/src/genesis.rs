//! The genesis of a network, built from its spec and its validators' public keys.
//!
//! Mirrors what `dualchain genesis` builds (same `dualchain_core::types::Genesis`, same
//! validation). The genesis is created once and never rewritten: the operator only
//! checks later that it still matches the key Secrets.

use dualchain_core::crypto::ValidatorPublicKey;
use dualchain_core::types::{
    Address, AssetId, ChainParams, Genesis, GenesisAccount, GenesisError, GenesisValidator,
    SaxAllocation,
};

use crate::crd::network::DualChainNetworkSpec;
use crate::names;
use crate::ports;

/// Most bytes of genesis JSON a ConfigMap may hold (Kubernetes allows 1 MiB of data;
/// the rest is left for metadata).
pub const MAX_CONFIGMAP_GENESIS_BYTES: usize = 1_000_000;

/// The genesis as the ConfigMap holds it: compact JSON, refused with the figures to
/// change when it does not fit.
pub fn configmap_json(genesis: &Genesis) -> Result<String, String> {
    let json = serde_json::to_string(genesis).map_err(|e| e.to_string())?;
    if json.len() > MAX_CONFIGMAP_GENESIS_BYTES {
        return Err(format!(
            "the genesis is {} bytes of JSON ({} validators, {} accounts, {} sAX allocations) and a ConfigMap holds at most {MAX_CONFIGMAP_GENESIS_BYTES}; lower genesis.accounts or genesis.assets, or set genesis.sax to 0",
            json.len(),
            genesis.validators.len(),
            genesis.accounts.len(),
            genesis.sax_allocations.len()
        ));
    }
    Ok(json)
}

/// Builds and validates the genesis of network `name`.
pub fn build(
    name: &str,
    spec: &DualChainNetworkSpec,
    validators: &[ValidatorPublicKey],
    accounts: &[Address],
    genesis_time_ms: u64,
) -> Result<Genesis, GenesisError> {
    let t = &spec.template;
    let balances: std::collections::BTreeMap<AssetId, u64> = (0..t.genesis.assets)
        .map(|a| (AssetId(a), t.genesis.balance))
        .collect();
    let genesis = Genesis {
        network: name.to_string(),
        genesis_time_ms,
        epoch_length_alpha_blocks: t.epoch_length_alpha_blocks,
        allow_unsigned_transactions: t.genesis.allow_unsigned_transactions,
        alpha: ChainParams {
            block_time_ms: t.alpha.block_time_ms,
            p2p_port: ports::ALPHA_P2P,
            api_port: ports::ALPHA_API,
            consensus: t.alpha.consensus.into(),
        },
        delta: ChainParams {
            block_time_ms: t.delta.block_time_ms,
            p2p_port: ports::DELTA_P2P,
            api_port: ports::DELTA_API,
            consensus: t.delta.consensus.into(),
        },
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, key)| GenesisValidator {
                name: names::validator_pod(name, i as u32),
                public_key: key.clone(),
                stake: t.genesis.stake,
            })
            .collect(),
        accounts: accounts
            .iter()
            .map(|address| GenesisAccount {
                address: *address,
                balances: balances.clone(),
            })
            .collect(),
        sax_allocations: accounts
            .iter()
            .filter(|_| t.genesis.sax > 0)
            .map(|address| SaxAllocation {
                address: *address,
                amount: t.genesis.sax,
            })
            .collect(),
        cross_chain: Default::default(),
    };
    genesis.validate()?;
    Ok(genesis)
}

/// Whether an existing genesis still describes these validators: the key Secrets of
/// its ordinals hold its keys, in order. The network may since have grown (ordinals
/// past the genesis set joined later) or shrunk (fewer ordinals read now).
pub fn matches_validators(genesis: &Genesis, validators: &[ValidatorPublicKey]) -> bool {
    genesis
        .validators
        .iter()
        .zip(validators)
        .all(|(g, k)| g.public_key == *k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::crypto::ValidatorKeypair;

    #[test]
    fn builds_a_valid_genesis_with_contract_ports() {
        let keys: Vec<_> = (0..4u8)
            .map(|i| ValidatorKeypair::from_seed(&[i; 32]).public().clone())
            .collect();
        let accounts: Vec<Address> = crate::keys::seeded_account_keys(2, 1)
            .iter()
            .map(|k| Address::of(k.public()))
            .collect();
        let spec = DualChainNetworkSpec::default();
        let g = build("devnet", &spec, &keys, &accounts, 1_700_000_000_000).unwrap();
        assert_eq!(g.validators[3].name, "devnet-3-0");
        assert_eq!((g.alpha.p2p_port, g.alpha.api_port), (4130, 3030));
        assert_eq!((g.delta.p2p_port, g.delta.api_port), (4131, 4030));
        assert_eq!(g.accounts.len(), 2);
        // Every account can lock sAX (the cross-chain flow); 0 allocates none.
        assert_eq!(g.sax_allocations.len(), 2);
        assert!(g.sax_allocations.iter().all(|a| a.amount == 1_000_000));
        let mut none = DualChainNetworkSpec::default();
        none.template.genesis.sax = 0;
        let g0 = build("devnet", &none, &keys, &accounts, 1_700_000_000_000).unwrap();
        assert!(g0.sax_allocations.is_empty());
        // Round-trips through the JSON the ConfigMap holds.
        let parsed = Genesis::from_json(&g.to_json()).unwrap();
        let compact = Genesis::from_json(&configmap_json(&g).unwrap()).unwrap();
        assert_eq!(compact.hash(), g.hash());
        assert_eq!(parsed.hash(), g.hash());
        assert!(matches_validators(&parsed, &keys));
        // Grown or shrunk since: the genesis ordinals still hold the genesis keys.
        assert!(matches_validators(&parsed, &keys[..3]));
        let mut grown = keys.clone();
        grown.push(ValidatorKeypair::from_seed(&[9; 32]).public().clone());
        assert!(matches_validators(&parsed, &grown));
        // A replaced key Secret is not the same network.
        let mut replaced = keys.clone();
        replaced[1] = ValidatorKeypair::from_seed(&[9; 32]).public().clone();
        assert!(!matches_validators(&parsed, &replaced));
    }

    #[test]
    fn a_genesis_too_large_for_a_configmap_is_refused_with_what_to_change() {
        let keys = vec![ValidatorKeypair::from_seed(&[1; 32]).public().clone()];
        let accounts: Vec<Address> = (0..5_000u32)
            .map(|i| Address(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let mut spec = DualChainNetworkSpec::default();
        spec.template.genesis.assets = 16;
        let g = build("n", &spec, &keys, &accounts, 0).unwrap();
        let err = configmap_json(&g).unwrap_err();
        assert!(err.contains("lower genesis.accounts"), "{err}");
        // 4,000 accounts fit with the default assets and sAX (as the CRD documents).
        let g = build(
            "n",
            &DualChainNetworkSpec::default(),
            &keys,
            &accounts[..4_000],
            0,
        )
        .unwrap();
        assert!(configmap_json(&g).is_ok());
    }

    #[test]
    fn misaligned_block_times_are_refused() {
        let keys = vec![ValidatorKeypair::from_seed(&[1; 32]).public().clone()];
        let mut spec = DualChainNetworkSpec::default();
        spec.template.delta.block_time_ms = 4_000;
        let err = build("n", &spec, &keys, &[], 0).unwrap_err();
        assert!(err.to_string().contains("must divide"), "{err}");
    }
}
