//! A synthetic certified history, for the replay harness and its benchmarks.
//!
//! [`SyntheticSpec::network`] makes a network from a seed (validator keys, funded
//! accounts, unsigned benchmark mode so transactions cost no signing), and
//! [`write_history`] writes `blocks` blocks of one chain into a database exactly as
//! a node's executor does: each block executed by the node's executor at its slot's
//! time, sealed with the state root computed once, block, receipts, state and events
//! in one batch ([`dualchain_execution::merge::seal_and_commit`]). Certificates, with
//! the votes of a quorum of the real ML-DSA-87 validator keys, are stored for every
//! `certify_every`-th block and the last one: a certificate vouches for its
//! ancestors through the parent digests, and signing every block of a million-block
//! history would cost more than replaying it.
//!
//! On Alpha every `epoch_length` blocks end an epoch (the executor closes it, the
//! next set is recorded, later headers and certificates are of the next epoch), so
//! a replay crosses epochs and verifies each certificate against its epoch's set.
//! Transactions (transfers among the accounts, each sender's nonces in order) are
//! Delta's; Alpha histories are empty blocks.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, ensure};
use dualchain_core::Digest;
use dualchain_core::crypto::ValidatorKeypair;
use dualchain_core::hash::HashDomain;
use dualchain_core::types::{
    Address, AssetId, BlockCertificate, ChainId, ChainParams, Genesis, GenesisAccount,
    GenesisValidator, MAX_VALIDATORS, Output, SignedTransaction, Transaction, TxPayload,
    ValidatorIndex,
};
use dualchain_execution::ExecutionMode;
use dualchain_execution::epochs::entered_epoch;
use dualchain_execution::merge::{SealParams, seal_and_commit};
use dualchain_storage::KvEngine;

use crate::replay::{BlockReplayer, events_batch};

/// The genesis time of every synthetic network (2026-01-01 UTC).
const GENESIS_TIME_MS: u64 = 1_767_225_600_000;
/// Native balance of each synthetic account: enough for any history's fees.
const ACCOUNT_BALANCE: u64 = 1 << 60;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticSpec {
    pub chain: ChainId,
    pub blocks: u64,
    /// Transfers per block (Delta only).
    pub txs_per_block: usize,
    pub accounts: usize,
    pub validators: usize,
    /// A certificate every this many blocks (the last block always has one).
    pub certify_every: u64,
    pub epoch_length_alpha_blocks: u64,
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            chain: ChainId::Delta,
            blocks: 10_000,
            txs_per_block: 0,
            accounts: 1_000,
            validators: 4,
            certify_every: 1_000,
            epoch_length_alpha_blocks: 100,
            seed: 1,
        }
    }
}

/// A synthetic network: its genesis and the validators' keys.
pub struct SyntheticNetwork {
    pub genesis: Genesis,
    pub keys: Vec<ValidatorKeypair>,
    accounts: Vec<Address>,
}

/// What [`write_history`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryInfo {
    pub blocks: u64,
    pub transactions: u64,
    pub certificates: u64,
    pub epochs_entered: u64,
    pub state_root: Digest,
    pub seconds: f64,
}

impl SyntheticSpec {
    /// Refuses what cannot be generated, with the reason.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.blocks > 0,
            "a synthetic history needs at least one block"
        );
        ensure!(
            (1..=MAX_VALIDATORS).contains(&self.validators),
            "validators must be 1 to {MAX_VALIDATORS}"
        );
        ensure!(self.certify_every > 0, "certify-every must be at least 1");
        ensure!(
            self.txs_per_block <= 100_000,
            "at most 100000 transactions per synthetic block"
        );
        ensure!(
            self.txs_per_block == 0 || self.chain == ChainId::Delta,
            "synthetic transactions are Delta transfers; an Alpha history has empty blocks"
        );
        ensure!(
            self.txs_per_block == 0 || self.accounts >= 2,
            "transfers need at least two accounts"
        );
        ensure!(
            self.accounts <= 1_000_000,
            "at most 1000000 synthetic accounts"
        );
        Ok(())
    }

    /// The network, derived from the seed alone.
    pub fn network(&self) -> SyntheticNetwork {
        let derive = |what: &str, i: u64| {
            let mut input = format!("{what}/{}/", self.seed).into_bytes();
            input.extend_from_slice(&i.to_le_bytes());
            HashDomain::Genesis.hash(&input).0
        };
        let keys: Vec<ValidatorKeypair> = (0..self.validators as u64)
            .map(|i| ValidatorKeypair::from_seed(&derive("synthetic validator", i)))
            .collect();
        let accounts: Vec<Address> = (0..self.accounts as u64)
            .map(|i| Address(derive("synthetic account", i)))
            .collect();
        let genesis = Genesis {
            network: format!("synthetic-{}", self.seed),
            genesis_time_ms: GENESIS_TIME_MS,
            epoch_length_alpha_blocks: self.epoch_length_alpha_blocks,
            allow_unsigned_transactions: true,
            alpha: ChainParams::alpha_default(),
            delta: ChainParams::delta_default(),
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, key)| GenesisValidator {
                    name: format!("synthetic-{i}"),
                    public_key: key.public().clone(),
                    stake: 1,
                })
                .collect(),
            accounts: accounts
                .iter()
                .map(|&address| GenesisAccount {
                    address,
                    balances: BTreeMap::from([(AssetId::NATIVE, ACCOUNT_BALANCE)]),
                })
                .collect(),
            sax_allocations: Vec::new(),
            cross_chain: Default::default(),
        };
        SyntheticNetwork {
            genesis,
            keys,
            accounts,
        }
    }
}

/// The transfers of one block: senders in turn, each paying the next account.
struct Transfers<'a> {
    accounts: &'a [Address],
    nonces: Vec<u64>,
    cursor: usize,
}

impl<'a> Transfers<'a> {
    fn new(accounts: &'a [Address]) -> Self {
        Self {
            accounts,
            nonces: vec![0; accounts.len()],
            cursor: 0,
        }
    }

    fn block(&mut self, count: usize) -> Vec<SignedTransaction> {
        (0..count).map(|_| self.next()).collect()
    }

    fn next(&mut self) -> SignedTransaction {
        let n = self.accounts.len();
        let sender = self.cursor;
        self.cursor = (self.cursor + 1) % n;
        let nonce = self.nonces[sender];
        self.nonces[sender] += 1;
        Transaction {
            chain: ChainId::Delta,
            sender: self.accounts[sender],
            nonce,
            fee: 1,
            payload: TxPayload::Transfer {
                outputs: vec![Output {
                    to: self.accounts[(sender + 1) % n],
                    asset: AssetId::NATIVE,
                    amount: 1 + nonce % 1000,
                }],
            },
        }
        .unsigned()
    }
}

/// Writes the history `spec` describes into `engine` (an empty database), calling
/// `progress` with each height written.
pub fn write_history<E: KvEngine + Clone>(
    spec: &SyntheticSpec,
    network: &SyntheticNetwork,
    engine: E,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<HistoryInfo> {
    spec.check()?;
    let started = Instant::now();
    let genesis = &network.genesis;
    let mut chain = BlockReplayer::open(engine, spec.chain, genesis, ExecutionMode::Parallel)?;
    ensure!(
        chain.height() == 0,
        "the target database already holds blocks; generate into an empty directory"
    );
    let net = genesis.network_id();
    let quorum = genesis.validator_set()?.quorum_stake() as usize;
    let block_time = genesis.chain(spec.chain).block_time_ms;
    let mut transfers = Transfers::new(&network.accounts);
    let mut info = HistoryInfo {
        blocks: 0,
        transactions: 0,
        certificates: 0,
        epochs_entered: 0,
        state_root: Digest::ZERO,
        seconds: 0.0,
    };
    for height in 1..=spec.blocks {
        let txs = transfers.block(spec.txs_per_block);
        let epoch = chain.epoch();
        let (store, cache, executor) = chain.parts();
        let timestamp_ms = GENESIS_TIME_MS + height * block_time;
        let outcome = executor
            .execute_block_at(cache, &txs, timestamp_ms)
            .with_context(|| format!("executing synthetic block {height}"))?;
        let entered = entered_epoch(&outcome.events);
        let extra = events_batch(height, &outcome.events);
        info.transactions += txs.len() as u64;
        let params = SealParams {
            epoch,
            slot: height,
            timestamp_ms,
            vertices: Vec::new(),
        };
        let block = seal_and_commit(store, cache, txs, &outcome, params, extra)
            .with_context(|| format!("committing synthetic block {height}"))?;
        if height % spec.certify_every == 0 || height == spec.blocks {
            let votes = network.keys[..quorum].iter().enumerate().map(|(i, key)| {
                (
                    i as ValidatorIndex,
                    BlockCertificate::vote(key, &block.header, net),
                )
            });
            let certificate = BlockCertificate::from_votes(&block.header, votes);
            store.put_certificate(&certificate)?;
            info.certificates += 1;
        }
        if let Some(next) = entered {
            chain.entered(next);
            info.epochs_entered += 1;
        }
        info.blocks = height;
        info.state_root = block.header.state_root;
        progress(height);
    }
    info.seconds = started.elapsed().as_secs_f64();
    Ok(info)
}
