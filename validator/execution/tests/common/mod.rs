//! Shared test support: random workloads (proptest strategies) and an independent
//! model of the transaction rules, written as plainly as possible over ordered maps,
//! to check the executors against something that shares none of their machinery.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use dualchain_core::chain_store::{ChainStore, StateChange};
use dualchain_core::crypto::{AccountKeypair, AccountPublicKey, AccountSignature, SigningDomain};
use dualchain_core::hash::Digest;
use dualchain_core::types::{
    Address, Approval, AssetId, Authorization, ChainId, FailureReason, Output, Receipt,
    ReceiptStatus, SignedTransaction, Transaction, TxPayload,
};
use dualchain_execution::keys::{
    AccountRecord, FEE_POOL_KEY, MultisigPolicy, account_key, balance_key, burned_key,
    decode_balance, decode_total, encode_balance, encode_total,
};
use dualchain_execution::{StateCache, Verdict};
use dualchain_storage::{Column, KvEngine, MemoryEngine};
use proptest::prelude::*;

/// Keys whose addresses can sign multisig approvals.
pub const KEYS: usize = 4;

pub struct Keys {
    pub keys: Vec<AccountKeypair>,
    pub addresses: Vec<Address>,
    /// One valid-looking signature reused everywhere: verdicts are injected.
    pub signature: AccountSignature,
}

pub fn keys() -> &'static Keys {
    static KEYS_CELL: OnceLock<Keys> = OnceLock::new();
    KEYS_CELL.get_or_init(|| {
        let keys: Vec<AccountKeypair> = (0..KEYS as u8)
            .map(|i| AccountKeypair::from_seed(&[i + 1; 32]))
            .collect();
        let addresses = keys.iter().map(|k| Address::of(k.public())).collect();
        let network = dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));
        let signature = keys[0].sign(SigningDomain::Transaction.on(network), b"test");
        Keys {
            keys,
            addresses,
            signature,
        }
    })
}

/// The account pool of a case: the key addresses first, then plain addresses.
pub fn pool(size: usize) -> Vec<Address> {
    let mut pool = keys().addresses.clone();
    for i in 0..size.saturating_sub(KEYS) {
        pool.push(Address([0xA0 + i as u8; 32]));
    }
    pool.truncate(size.max(1));
    pool
}

/// Balances that exercise insufficiency and overflow.
pub fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..50,
        4 => 0u64..5_000,
        1 => Just(u64::MAX),
        1 => (u64::MAX - 100)..=u64::MAX,
    ]
}

/// The genesis state of a case: per-account balances, nonces and policies.
#[derive(Clone, Debug)]
pub struct Genesis {
    pub balances: Vec<((usize, u32), u64)>,
    pub nonces: Vec<(usize, u64)>,
    /// `(account, threshold, signer key indices)`.
    pub policies: Vec<(usize, u8, Vec<usize>)>,
}

pub fn genesis(pool_size: usize) -> impl Strategy<Value = Genesis> {
    (
        prop::collection::vec(((0..pool_size, 0u32..3), amount()), 0..20),
        prop::collection::vec(
            (0..pool_size, prop_oneof![6 => 0u64..3, 1 => Just(u64::MAX)]),
            0..4,
        ),
        prop::collection::vec(
            (
                0..pool_size,
                1u8..4,
                prop::collection::btree_set(0..KEYS, 1..=KEYS),
            ),
            0..4,
        ),
    )
        .prop_map(|(balances, nonces, policies)| Genesis {
            balances,
            nonces,
            policies: policies
                .into_iter()
                .map(|(a, t, s)| (a, t, s.into_iter().collect()))
                .collect(),
        })
}

impl Genesis {
    /// The state column this genesis describes (later entries win).
    pub fn state(&self, pool: &[Address]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = BTreeMap::new();
        let mut records: BTreeMap<usize, AccountRecord> = BTreeMap::new();
        // Every account starts funded; the random entries then override some balances.
        for account in 0..pool.len() {
            records.entry(account).or_default().native = 100_000;
        }
        for &((account, asset), value) in &self.balances {
            if asset == 0 {
                records.entry(account).or_default().native = value;
                continue;
            }
            let key = balance_key(&pool[account], AssetId(asset)).to_vec();
            match encode_balance(value) {
                Some(v) => state.insert(key, v),
                None => state.remove(&key),
            };
        }
        for &(account, nonce) in &self.nonces {
            records.entry(account).or_default().nonce = nonce;
        }
        for (account, threshold, signer_keys) in &self.policies {
            let mut signers: Vec<Address> =
                signer_keys.iter().map(|&k| keys().addresses[k]).collect();
            signers.sort();
            let threshold = (*threshold).min(signers.len() as u8);
            if let Some(policy) = MultisigPolicy::new(threshold, &signers) {
                records.entry(*account).or_default().policy = Some(Arc::new(policy));
            }
        }
        for (account, record) in records {
            if let Some(v) = record.encode_value() {
                state.insert(account_key(&pool[account]).to_vec(), v);
            }
        }
        state
    }
}

/// A store at height 0 holding `state`.
pub fn store_with(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> ChainStore<Arc<MemoryEngine>> {
    let engine = Arc::new(MemoryEngine::new());
    let mut store = ChainStore::open(engine, ChainId::Delta).unwrap();
    let changes: Vec<StateChange> = state
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    store.init_genesis(Digest::ZERO, &changes).unwrap();
    store
}

pub fn cache_of(store: &ChainStore<Arc<MemoryEngine>>) -> StateCache<Arc<MemoryEngine>> {
    StateCache::new(store.engine().clone(), store.head().map_or(0, |h| h.height))
}

/// One generated transaction with its injected verdict.
#[derive(Clone, Debug)]
pub struct GenTx {
    pub stx: SignedTransaction,
    pub verdict: Verdict,
    /// Most transactions get the sender's next nonce at preparation time
    /// ([`prepare`]); the rest keep their random nonce (gaps, replays).
    pub exact_nonce: bool,
}

#[derive(Clone, Debug)]
enum AuthChoice {
    Unsigned,
    Single(usize),
    Multisig(Vec<usize>),
    /// Approvals out of order or duplicated (malformed when built in memory).
    MultisigUnordered(Vec<usize>),
}

fn output(pool_size: usize) -> impl Strategy<Value = (usize, u32, u64)> {
    (
        0..pool_size,
        prop_oneof![3 => Just(0u32), 1 => 1u32..3],
        amount(),
    )
}

/// Payload kind, outputs `(to, asset, amount)`, policy threshold, policy signer keys.
type PayloadParts = (u8, Vec<(usize, u32, u64)>, u8, Vec<usize>);

fn payload(pool_size: usize) -> impl Strategy<Value = PayloadParts> {
    (
        prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        prop_oneof![
            1 => Just(Vec::new()),
            12 => prop::collection::vec(output(pool_size), 1..4)
        ],
        prop_oneof![1 => Just(0u8), 8 => 1u8..3, 1 => Just(3u8)],
        prop::collection::vec(0..KEYS, 1..4),
    )
}

/// A random transaction over the pool.
pub fn gen_tx(pool_size: usize) -> impl Strategy<Value = GenTx> {
    (
        0..pool_size,
        prop_oneof![6 => 0u64..3, 1 => 0u64..8, 1 => Just(u64::MAX)],
        prop_oneof![4 => 0u64..3, 1 => amount()],
        payload(pool_size),
        prop_oneof![
            10 => Just(0u8),
            2 => Just(1u8),
            4 => Just(2u8),
            1 => Just(3u8)
        ],
        prop_oneof![1 => prop::collection::vec(0..KEYS, 0..2), 6 => prop::collection::vec(0..KEYS, 1..5)],
        0..KEYS,
        prop_oneof![40 => Just(Verdict::Valid), 1 => Just(Verdict::Invalid), 1 => Just(Verdict::UnsignedNotAllowed)],
        prop_oneof![40 => Just(ChainId::Delta), 1 => Just(ChainId::Alpha)],
        prop::bool::weighted(0.85),
    )
        .prop_map(
            move |(sender, nonce, fee, (kind, outs, threshold, signers), auth_kind, approvers, single, verdict, chain, exact_nonce)| {
                let pool = pool(pool_size);
                let outputs: Vec<Output> = outs
                    .iter()
                    .map(|&(to, asset, amount)| Output {
                        to: pool[to],
                        asset: AssetId(asset),
                        amount,
                    })
                    .collect();
                let payload = match kind {
                    0 => TxPayload::Transfer { outputs },
                    1 => TxPayload::Burn {
                        asset: AssetId(outs.first().map_or(0, |o| o.1)),
                        amount: outs.first().map_or(1, |o| o.2),
                    },
                    2 => {
                        let mut s: Vec<Address> =
                            signers.iter().map(|&k| keys().addresses[k]).collect();
                        if threshold != 3 {
                            // Usually canonical; sometimes left unsorted / duplicated.
                            s.sort();
                            s.dedup();
                        }
                        TxPayload::MultisigConfigure {
                            threshold,
                            signers: s,
                        }
                    }
                    _ => TxPayload::MultisigSpend { outputs },
                };
                let auth = match auth_kind {
                    0 => AuthChoice::Unsigned,
                    1 => AuthChoice::Single(single),
                    2 => AuthChoice::Multisig(approvers),
                    _ => AuthChoice::MultisigUnordered(approvers),
                };
                let tx = Transaction {
                    chain,
                    sender: pool[sender],
                    nonce,
                    fee,
                    payload,
                };
                GenTx {
                    stx: build_auth(tx, auth),
                    verdict,
                    exact_nonce,
                }
            },
        )
}

fn build_auth(tx: Transaction, auth: AuthChoice) -> SignedTransaction {
    let k = keys();
    let approval = |i: usize| Approval {
        public_key: k.keys[i].public().clone(),
        signature: k.signature.clone(),
    };
    let auth = match auth {
        AuthChoice::Unsigned => Authorization::Unsigned,
        AuthChoice::Single(i) => Authorization::Single {
            public_key: k.keys[i].public().clone(),
            signature: k.signature.clone(),
        },
        AuthChoice::Multisig(mut approvers) => {
            approvers.sort_by(|a, b| k.keys[*a].public().cmp(k.keys[*b].public()));
            approvers.dedup();
            Authorization::Multisig {
                approvals: approvers.into_iter().map(approval).collect(),
            }
        }
        AuthChoice::MultisigUnordered(approvers) => Authorization::Multisig {
            approvals: approvers.into_iter().map(approval).collect(),
        },
    };
    SignedTransaction::new(tx, auth)
}

/// A block: random transactions, plus exact duplicates of some of them.
pub fn block(pool_size: usize, max_txs: usize) -> impl Strategy<Value = Vec<GenTx>> {
    (
        prop::collection::vec(gen_tx(pool_size), 0..max_txs),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..4,
        ),
    )
        .prop_map(|(mut txs, duplicates)| {
            for (from, to) in duplicates {
                if !txs.is_empty() {
                    let copy = txs[from.index(txs.len())].clone();
                    let at = to.index(txs.len() + 1);
                    txs.insert(at, copy);
                }
            }
            txs
        })
}

/// Gives the `exact_nonce` transactions their sender's nonce at that point of the
/// block (running the model as it goes), keeping their authorisation.
pub fn prepare(state: &BTreeMap<Vec<u8>, Vec<u8>>, chain: ChainId, block: &[GenTx]) -> Vec<GenTx> {
    let mut model = Model {
        state: state.clone(),
    };
    block
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.exact_nonce {
                let mut tx = t.stx.tx().clone();
                tx.nonce = model.record(&tx.sender).nonce;
                t.stx = SignedTransaction::new(tx, t.stx.auth().clone());
            }
            model.execute_one(chain, &t);
            t
        })
        .collect()
}

/// The model's view of the state: the `state` column as an ordered map.
pub struct Model {
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Model {
    fn record(&self, a: &Address) -> AccountRecord {
        self.state
            .get(&account_key(a)[..])
            .map(|v| AccountRecord::decode_value(v).unwrap())
            .unwrap_or_default()
    }

    fn set_record(&mut self, a: &Address, r: AccountRecord) {
        match r.encode_value() {
            Some(v) => self.state.insert(account_key(a).to_vec(), v),
            None => self.state.remove(&account_key(a)[..]),
        };
    }

    fn balance(&self, a: &Address, asset: AssetId) -> u64 {
        if asset == AssetId::NATIVE {
            return self.record(a).native;
        }
        self.state
            .get(&balance_key(a, asset)[..])
            .map(|v| decode_balance(v).unwrap())
            .unwrap_or(0)
    }

    fn set_balance(&mut self, a: &Address, asset: AssetId, value: u64) {
        if asset == AssetId::NATIVE {
            let mut record = self.record(a);
            record.native = value;
            self.set_record(a, record);
            return;
        }
        match encode_balance(value) {
            Some(v) => self.state.insert(balance_key(a, asset).to_vec(), v),
            None => self.state.remove(&balance_key(a, asset)[..]),
        };
    }

    fn add_total(&mut self, key: &[u8], amount: u128) {
        let current = self
            .state
            .get(key)
            .map(|v| decode_total(v).unwrap())
            .unwrap_or(0);
        if let Some(v) = encode_total(current + amount) {
            self.state.insert(key.to_vec(), v);
        }
    }

    /// The rules of `dualchain_execution::rules`, step by step.
    pub fn execute(&mut self, chain: ChainId, txs: &[GenTx]) -> Vec<Receipt> {
        txs.iter().map(|t| self.execute_one(chain, t)).collect()
    }

    fn execute_one(&mut self, chain: ChainId, t: &GenTx) -> Receipt {
        let stx = &t.stx;
        let tx = stx.tx();
        let fail = |r: FailureReason, fee: u64| Receipt {
            tx_digest: stx.digest(),
            status: ReceiptStatus::Failed(r),
            fee_charged: fee,
        };
        if tx.chain != chain {
            return fail(FailureReason::WrongChain, 0);
        }
        let malformed = match &tx.payload {
            TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => {
                outputs.is_empty() || outputs.len() > 256
            }
            TxPayload::MultisigConfigure { threshold, signers } => {
                MultisigPolicy::new(*threshold, signers).is_none()
            }
            TxPayload::Burn { .. } | TxPayload::CrossChain(_) => false,
        } || match stx.auth() {
            Authorization::Multisig { approvals } => {
                approvals.is_empty()
                    || approvals.len() > 16
                    || approvals
                        .windows(2)
                        .any(|w| w[0].public_key >= w[1].public_key)
            }
            _ => false,
        };
        if malformed {
            return fail(FailureReason::Malformed, 0);
        }
        match t.verdict {
            Verdict::Valid => {}
            Verdict::UnsignedNotAllowed => return fail(FailureReason::UnsignedNotAllowed, 0),
            Verdict::Invalid => return fail(FailureReason::InvalidSignature, 0),
        }
        let mut record = self.record(&tx.sender);
        if tx.nonce != record.nonce {
            return fail(
                FailureReason::BadNonce {
                    expected: record.nonce,
                    got: tx.nonce,
                },
                0,
            );
        }
        if record.nonce == u64::MAX {
            return fail(FailureReason::Overflow, 0);
        }
        match stx.auth() {
            Authorization::Multisig { approvals } => {
                let Some(policy) = &record.policy else {
                    return fail(FailureReason::NotMultisigAccount, 0);
                };
                let approvers: std::collections::BTreeSet<Address> = approvals
                    .iter()
                    .map(|a| Address::of(&a.public_key))
                    .filter(|a| policy.signers.contains(a))
                    .collect();
                if approvers.len() < policy.threshold as usize {
                    return fail(FailureReason::BadMultisigAuthorization, 0);
                }
            }
            _ => {
                if record.policy.is_some() {
                    return fail(FailureReason::MultisigRequired, 0);
                }
                if matches!(tx.payload, TxPayload::MultisigSpend { .. }) {
                    return fail(FailureReason::NotMultisigAccount, 0);
                }
            }
        }
        let native = self.balance(&tx.sender, AssetId::NATIVE);
        if native < tx.fee {
            return fail(
                FailureReason::InsufficientFee {
                    available: native,
                    fee: tx.fee,
                },
                0,
            );
        }
        record.native = native - tx.fee;
        record.nonce += 1;
        self.set_record(&tx.sender, record.clone());
        self.add_total(FEE_POOL_KEY, tx.fee as u128);

        let before = self.state.clone();
        let result = self.payload(&tx.sender, &tx.payload);
        match result {
            Ok(()) => Receipt {
                tx_digest: stx.digest(),
                status: ReceiptStatus::Success,
                fee_charged: tx.fee,
            },
            Err(reason) => {
                self.state = before;
                fail(reason, tx.fee)
            }
        }
    }

    fn payload(&mut self, sender: &Address, payload: &TxPayload) -> Result<(), FailureReason> {
        match payload {
            // The executors under test run without a cross-chain setup.
            TxPayload::CrossChain(_) => Err(FailureReason::CrossChain(
                dualchain_core::types::CrossChainFailure::Disabled,
            )),
            TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => {
                let mut needs: Vec<(AssetId, u64)> = Vec::new();
                for o in outputs {
                    match needs.iter_mut().find(|(a, _)| *a == o.asset) {
                        Some((_, n)) => {
                            *n = n.checked_add(o.amount).ok_or(FailureReason::Overflow)?
                        }
                        None => needs.push((o.asset, o.amount)),
                    }
                }
                for &(asset, needed) in &needs {
                    let available = self.balance(sender, asset);
                    if available < needed {
                        return Err(FailureReason::InsufficientBalance {
                            asset,
                            available,
                            needed,
                        });
                    }
                }
                for &(asset, needed) in &needs {
                    let b = self.balance(sender, asset);
                    self.set_balance(sender, asset, b - needed);
                }
                for o in outputs {
                    let b = self.balance(&o.to, o.asset);
                    let credited = b.checked_add(o.amount).ok_or(FailureReason::Overflow)?;
                    self.set_balance(&o.to, o.asset, credited);
                }
                Ok(())
            }
            TxPayload::Burn { asset, amount } => {
                let b = self.balance(sender, *asset);
                if b < *amount {
                    return Err(FailureReason::InsufficientBalance {
                        asset: *asset,
                        available: b,
                        needed: *amount,
                    });
                }
                self.set_balance(sender, *asset, b - amount);
                if *amount != 0 {
                    self.add_total(&burned_key(*asset), *amount as u128);
                }
                Ok(())
            }
            TxPayload::MultisigConfigure { threshold, signers } => {
                let mut current = self.record(sender);
                current.policy = Some(Arc::new(MultisigPolicy::new(*threshold, signers).unwrap()));
                self.set_record(sender, current);
                Ok(())
            }
        }
    }
}

/// `state` with `changes` applied.
pub fn applied(
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    changes: &[StateChange],
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = state.clone();
    for (k, v) in changes {
        match v {
            Some(v) => state.insert(k.clone(), v.clone()),
            None => state.remove(k),
        };
    }
    state
}

/// The whole state column of an engine.
pub fn read_state(engine: &dyn KvEngine) -> BTreeMap<Vec<u8>, Vec<u8>> {
    engine
        .scan_from(Column::State, &[])
        .unwrap()
        .map(|kv| kv.unwrap())
        .collect()
}

pub fn public_key(i: usize) -> AccountPublicKey {
    keys().keys[i].public().clone()
}
