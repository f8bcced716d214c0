//! The simulated clients: funded accounts sending transactions at an offered rate
//! through the validators' own admission path ([`ChainApi::submit`]), each account
//! with one transaction in flight, resubmitting to another validator when one is not
//! committed in time — as a real wallet would. Commitment is read from one honest
//! validator's blocks ([`ChainApi::block`]). On Delta the clients send transfers; on
//! Alpha they lock sAX (the first step of the cross-chain flow), so Alpha executes
//! real transactions under the same faults.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use dualchain_api::{AdmissionStatus, ChainApi};
use dualchain_core::Digest;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, AssetId, ChainId, CrossChainOp, Output, Transaction, TxPayload,
};

use crate::config::SIM_EPOCH_MS;

/// How long the simulated sAX locks hold (past the end of any run).
const LOCK_MS: u64 = 24 * 3_600_000;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The address of client account `i` of the simulation.
pub fn account_address(i: usize) -> Address {
    let mut h = blake3::Hasher::new_derive_key("dualchain 2026-12 simulated account v1");
    h.update(&(i as u64).to_le_bytes());
    Address(*h.finalize().as_bytes())
}

/// Where transfers go.
pub fn sink_address() -> Address {
    Address(blake3::derive_key(
        "dualchain 2026-12 simulated sink v1",
        b"",
    ))
}

/// A transaction in flight.
struct Pending {
    digest: Digest,
    bytes: Bytes,
    first_sent_ms: u64,
    last_sent_ms: u64,
    /// Index of the first validator it went to; attempt `n` goes to the `n`-th next
    /// one, so a retry never lands on the same (possibly Byzantine) node twice in a row.
    first_target: usize,
    attempts: usize,
}

struct Account {
    address: Address,
    nonce: u64,
    pending: Option<Pending>,
}

/// What the clients saw.
#[derive(Clone, Debug, Default)]
pub struct ClientStats {
    /// Transactions accepted by at least one validator.
    pub submitted: u64,
    /// Of those, seen in a block of the observer.
    pub committed: u64,
    pub resubmissions: u64,
    /// Offered transactions not sent because every account had one in flight.
    pub backlogged: u64,
    /// Refusals a valid transaction should never get (signature, encoding, chain…).
    pub unexpected_rejections: Vec<String>,
    /// Submission to commit, virtual ms, per committed transaction.
    pub latencies_ms: Vec<u64>,
    /// Of the blocks read from the observer's API, the positions of the transactions
    /// the API said failed (non-empty only), to check against the receipts in its
    /// store.
    pub failed_positions: BTreeMap<u64, Arc<[u32]>>,
}

/// The clients of one run on one chain.
pub struct Clients {
    chain: ChainId,
    accounts: Vec<Account>,
    idle: VecDeque<usize>,
    by_digest: HashMap<Digest, usize>,
    /// Pending transactions by `(last sent, account)`: retries take the due ones
    /// from the front instead of scanning every account each tick.
    due: BTreeSet<(u64, usize)>,
    /// Every transaction accepted at least once.
    pub accepted: BTreeSet<Digest>,
    carry: f64,
    observed_height: u64,
    retry_ms: u64,
    pub stats: ClientStats,
}

impl Clients {
    pub fn new(chain: ChainId, accounts: usize, retry_ms: u64) -> Self {
        Self {
            chain,
            accounts: (0..accounts)
                .map(|i| Account {
                    address: account_address(i),
                    nonce: 0,
                    pending: None,
                })
                .collect(),
            idle: (0..accounts).collect(),
            by_digest: HashMap::new(),
            due: BTreeSet::new(),
            accepted: BTreeSet::new(),
            carry: 0.0,
            observed_height: 0,
            retry_ms,
            stats: ClientStats::default(),
        }
    }

    /// Transactions in flight.
    pub fn in_flight(&self) -> usize {
        self.by_digest.len()
    }

    /// The account's next transaction: a transfer to the sink on Delta, a lock of a
    /// little sAX on Alpha.
    fn next_tx(&self, account: usize, now_ms: u64) -> (Digest, Bytes) {
        let a = &self.accounts[account];
        let amount = 1 + now_ms % 1_000;
        let payload = match self.chain {
            ChainId::Delta => TxPayload::Transfer {
                outputs: vec![Output {
                    to: sink_address(),
                    asset: AssetId::NATIVE,
                    amount,
                }],
            },
            ChainId::Alpha => TxPayload::CrossChain(CrossChainOp::SaxLock {
                amount,
                unlock_at_ms: SIM_EPOCH_MS + now_ms + LOCK_MS,
            }),
        };
        let tx = Transaction {
            chain: self.chain,
            sender: a.address,
            nonce: a.nonce,
            fee: 1,
            payload,
        }
        .unsigned();
        (tx.digest(), Bytes::from(tx.to_canonical_bytes()))
    }

    /// Offers `count` new transactions (`rate` per second over `dt_ms`) to the
    /// validators in `targets` (live APIs, chosen by `rng`).
    pub fn offer(
        &mut self,
        now_ms: u64,
        rate: u64,
        dt_ms: u64,
        targets: &[Arc<dyn ChainApi>],
        rng: &mut ChaCha8Rng,
    ) {
        self.carry += rate as f64 * dt_ms as f64 / 1000.0;
        let count = self.carry.floor() as u64;
        self.carry -= count as f64;
        if targets.is_empty() {
            self.stats.backlogged += count;
            return;
        }
        for _ in 0..count {
            let Some(account) = self.idle.pop_front() else {
                self.stats.backlogged += 1;
                continue;
            };
            let (digest, bytes) = self.next_tx(account, now_ms);
            let first_target = rng.random_range(0..targets.len());
            self.accounts[account].pending = Some(Pending {
                digest,
                bytes: bytes.clone(),
                first_sent_ms: now_ms,
                last_sent_ms: now_ms,
                first_target,
                attempts: 0,
            });
            self.by_digest.insert(digest, account);
            self.due.insert((now_ms, account));
            self.submit(targets[first_target].as_ref(), digest, bytes, now_ms);
        }
    }

    fn submit(&mut self, api: &dyn ChainApi, digest: Digest, bytes: Bytes, now_ms: u64) {
        let Some(result) = api.submit(&[bytes]).pop() else {
            return;
        };
        match result.status {
            AdmissionStatus::Accepted | AdmissionStatus::Duplicate => {
                if self.accepted.insert(digest) {
                    self.stats.submitted += 1;
                }
            }
            // A retry after the transaction committed, once the pool forgot its digest:
            // its nonce is spent. Nothing to do; finality tracking sees the commit (and
            // reports the transaction lost if the nonce went to anything else).
            AdmissionStatus::NonceTooOld if self.accepted.contains(&digest) => {}
            // Transient: try again soon (to another validator).
            AdmissionStatus::MempoolFull
            | AdmissionStatus::RateLimited
            | AdmissionStatus::Overloaded => {
                if let Some(&account) = self.by_digest.get(&digest)
                    && let Some(p) = self.accounts[account].pending.as_mut()
                {
                    self.due.remove(&(p.last_sent_ms, account));
                    p.last_sent_ms = now_ms.saturating_sub(self.retry_ms) + 500;
                    self.due.insert((p.last_sent_ms, account));
                }
            }
            other => self.stats.unexpected_rejections.push(format!(
                "transaction {digest} refused with {other:?}: {}",
                result.reason
            )),
        }
    }

    /// Resubmits what waited too long, each time to the next validator in `targets`.
    pub fn retry(&mut self, now_ms: u64, targets: &[Arc<dyn ChainApi>]) {
        if targets.is_empty() {
            return;
        }
        let ready: Vec<(u64, usize)> = self
            .due
            .iter()
            .take_while(|(last_sent_ms, _)| now_ms >= last_sent_ms + self.retry_ms)
            .copied()
            .collect();
        let mut due = Vec::with_capacity(ready.len());
        for (last_sent_ms, account) in ready {
            self.due.remove(&(last_sent_ms, account));
            self.due.insert((now_ms, account));
            let p = self.accounts[account]
                .pending
                .as_mut()
                .expect("every due entry has a pending transaction");
            p.last_sent_ms = now_ms;
            p.attempts += 1;
            let target = (p.first_target + p.attempts) % targets.len();
            due.push((p.digest, p.bytes.clone(), target));
        }
        for (digest, bytes, target) in due {
            self.stats.resubmissions += 1;
            self.submit(targets[target].as_ref(), digest, bytes, now_ms);
        }
    }

    /// The height up to which the observer's blocks were read.
    pub fn observed_height(&self) -> u64 {
        self.observed_height
    }

    /// Reads the observer's new blocks and settles the transactions they hold.
    pub fn observe(&mut self, now_ms: u64, observer: &dyn ChainApi) {
        let head = observer.finalized_height();
        while self.observed_height < head {
            let height = self.observed_height + 1;
            let Ok(Some(block)) = observer.block(height) else {
                return;
            };
            if !block.failed_txs.is_empty() {
                self.stats
                    .failed_positions
                    .insert(height, block.failed_txs.clone());
            }
            for tx in &block.block.body.transactions {
                let Some(account) = self.by_digest.remove(&tx.digest()) else {
                    continue;
                };
                let a = &mut self.accounts[account];
                if let Some(p) = a.pending.take() {
                    self.due.remove(&(p.last_sent_ms, account));
                    self.stats.latencies_ms.push(now_ms - p.first_sent_ms);
                }
                a.nonce += 1;
                self.stats.committed += 1;
                self.idle.push_back(account);
            }
            self.observed_height = height;
        }
    }
}
