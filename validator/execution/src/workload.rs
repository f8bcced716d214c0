//! Seeded benchmark workloads: a genesis with funded accounts and a block of
//! transfers with a chosen share of conflicts.
//!
//! Conflict `r`: each transaction, with probability `r`, pays the one hot account
//! (account 0); otherwise it pays a fresh account. Senders are fresh accounts taken
//! in turn. With at least `2 × txs + 1` accounts, conflict 0.0 gives a block of
//! fully independent transactions and 1.0 a block where every transaction touches
//! the hot account. With fewer accounts the pool wraps around, and senders reappear
//! with their next nonce (an extra, realistic source of conflicts).
//!
//! Everything is derived from the seed (ChaCha8), keys included, so a workload is
//! reproducible byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::chain_store::ChainStore;
use dualchain_core::crypto::{AccountKeypair, ValidatorKeypair};
use dualchain_core::hash::HashDomain;
use dualchain_core::types::{
    Address, AssetId, ChainId, ChainParams, Genesis, GenesisAccount, GenesisValidator, Output,
    SignedTransaction, Transaction, TxPayload,
};
use dualchain_storage::{KvEngine, MemoryEngine};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::keys::AccountRecord;
use crate::merge::StateCommitment;
use crate::state::{StateCache, genesis_state_changes};

/// Native balance every workload account starts with.
pub const INITIAL_BALANCE: u64 = 1_000_000_000_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub txs: usize,
    pub accounts: usize,
    /// Share of transactions touching the hot account, 0.0 to 1.0.
    pub conflict: f64,
    pub seed: u64,
    /// ML-DSA-44 signatures; otherwise unsigned (the genesis then enables that mode).
    pub signed: bool,
}

/// A generated workload.
pub struct Workload {
    pub genesis: Genesis,
    pub txs: Vec<SignedTransaction>,
}

impl Workload {
    pub fn generate(spec: &WorkloadSpec) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let accounts = spec.accounts.max(2);
        let seeds: Vec<[u8; 32]> = (0..accounts).map(|_| rng.random()).collect();
        let keys: Vec<AccountKeypair> = if spec.signed {
            seeds.par_iter().map(AccountKeypair::from_seed).collect()
        } else {
            Vec::new()
        };
        let addresses: Vec<Address> = if spec.signed {
            keys.iter().map(|k| Address::of(k.public())).collect()
        } else {
            seeds.iter().map(|s| Address(*s)).collect()
        };

        let mut nonces = vec![0u64; accounts];
        let mut cursor = 0usize;
        let mut next_account = || {
            cursor = cursor % (accounts - 1) + 1;
            cursor
        };
        let conflict = spec.conflict.clamp(0.0, 1.0);
        let plan: Vec<(usize, u64, usize, u64)> = (0..spec.txs)
            .map(|_| {
                let sender = next_account();
                let recipient = if rng.random_bool(conflict) {
                    0
                } else {
                    next_account()
                };
                let nonce = nonces[sender];
                nonces[sender] += 1;
                (sender, nonce, recipient, rng.random_range(1..=1000))
            })
            .collect();
        let validator = ValidatorKeypair::from_seed(&rng.random());
        let genesis = Genesis {
            network: "bench-exec".into(),
            genesis_time_ms: 0,
            epoch_length_alpha_blocks: 1,
            allow_unsigned_transactions: !spec.signed,
            alpha: ChainParams::alpha_default(),
            delta: ChainParams::delta_default(),
            validators: vec![GenesisValidator {
                name: "bench".into(),
                public_key: validator.public().clone(),
                stake: 1,
            }],
            accounts: addresses
                .iter()
                .map(|&address| GenesisAccount {
                    address,
                    balances: BTreeMap::from([(AssetId::NATIVE, INITIAL_BALANCE)]),
                })
                .collect(),
            sax_allocations: Vec::new(),
            cross_chain: Default::default(),
        };
        let network = genesis.network_id();
        let txs = plan
            .par_iter()
            .map(|&(sender, nonce, recipient, amount)| {
                let tx = Transaction {
                    chain: ChainId::Delta,
                    sender: addresses[sender],
                    nonce,
                    fee: 1,
                    payload: TxPayload::Transfer {
                        outputs: vec![Output {
                            to: addresses[recipient],
                            asset: AssetId::NATIVE,
                            amount,
                        }],
                    },
                };
                if spec.signed {
                    tx.sign(&keys[sender], network)
                } else {
                    tx.unsigned()
                }
            })
            .collect();

        Self { genesis, txs }
    }
}

/// A Delta store at genesis, a warm state cache on it and the state commitment.
pub struct GenesisState<E: KvEngine = Arc<MemoryEngine>> {
    pub store: ChainStore<E>,
    pub cache: StateCache<E>,
    pub commitment: StateCommitment,
}

impl GenesisState {
    /// Writes the genesis balances into a fresh in-memory store (height 0).
    pub fn build(genesis: &Genesis) -> Result<Self, dualchain_core::chain_store::ChainStoreError> {
        Self::build_on(Arc::new(MemoryEngine::new()), genesis)
    }
}

impl<E: KvEngine + Clone> GenesisState<E> {
    /// Writes the genesis balances into `engine`, which must be empty (height 0): the
    /// pipeline benchmark builds the state on RocksDB, as a node holds it.
    pub fn build_on(
        engine: E,
        genesis: &Genesis,
    ) -> Result<Self, dualchain_core::chain_store::ChainStoreError> {
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta)?;
        store.init_genesis(
            HashDomain::Genesis.hash(b"bench"),
            &genesis_state_changes(genesis),
        )?;
        let cache = StateCache::new(engine, 0);
        cache.warm(
            genesis.accounts.iter().map(|a| {
                let record = AccountRecord {
                    native: a.balances.get(&AssetId::NATIVE).copied().unwrap_or(0),
                    ..AccountRecord::default()
                };
                (a.address, record)
            }),
            genesis.accounts.iter().flat_map(|a| {
                a.balances
                    .iter()
                    .filter(|(asset, _)| **asset != AssetId::NATIVE)
                    .map(move |(&asset, &amount)| ((a.address, asset), amount))
            }),
        );
        let commitment = StateCommitment::new(store.state_tree().clone());
        Ok(Self {
            store,
            cache,
            commitment,
        })
    }
}
