//! Deterministic transaction workloads for the load generator.
//!
//! A [`TxPlanner`] decides, sequentially and from a seed, *what* each transaction is
//! (class, sender, nonce, recipient, amount); [`materialize`] then turns a chunk of
//! plans into canonical bytes in parallel, which is where the ML-DSA-44 signing cost
//! goes. Splitting the two keeps nonces strictly ordered per sender while signing uses
//! every core.
//!
//! # Transfers
//! Every valid transaction is a Delta native-asset transfer with fee 1 and an amount of
//! 1–1000 from a sender to another funded account. Senders are taken round-robin over
//! the accounts, so every sender's nonces advance 0, 1, 2, … with no gaps.
//!
//! # Workloads
//! - `steady` and `bursty`: 100 % valid transfers (the two differ only in the send
//!   schedule, see [`crate::schedule`]).
//! - `adversarial`: a fixed mix, drawn per transaction from the seeded RNG:
//!
//! | share | class | what the node should answer |
//! |------:|-------|-----------------------------|
//! | 55 % | valid transfer | accepted, committed |
//! | 20 % | hot-account conflict: a valid transfer paying account 0 | accepted, committed (execution serialises on the hot account) |
//! | 8 %  | duplicate: the exact bytes of the previous valid transaction again | `DUPLICATE` |
//! | 7 %  | bad signature: a correctly signed transfer with one signature byte flipped | `INVALID_SIGNATURE` |
//! | 7 %  | stale nonce: the sender's previous nonce reused with another amount | `NONCE_TOO_OLD` (or a nonce conflict) |
//! | 3 %  | over-size: 128 KiB + 1 bytes | `TOO_LARGE` |
//!
//! Only the first two classes advance the sender's nonce and are tracked for finality.
//! The bad-signature class consumes no nonce either, so it never opens a gap.

use std::sync::Arc;

use dualchain_core::crypto::{AccountSignature, NetworkId};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Authorization, SignedTransaction, Transaction};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::accounts::Account;

/// Size of the over-size transactions of the adversarial mix: one byte over the limit.
pub const OVERSIZE_TX_BYTES: usize = dualchain_proto::limits::MAX_TX_BYTES + 1;

/// The workload shape chosen on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Valid transfers at a constant rate.
    #[default]
    Steady,
    /// Valid transfers in an on/off square wave with the same mean rate.
    Bursty,
    /// The documented mix of conflicts, duplicates, bad signatures, stale nonces and
    /// over-size transactions, at a constant rate.
    Adversarial,
    /// Steady transfers on Delta beside the cross-chain flow (sAX locks attested to
    /// Delta, a governance round executed on Alpha, unlocks released): `dualchain
    /// devnet` only, which reaches both chains of every validator.
    Crosschain,
}

impl WorkloadKind {
    pub const fn name(self) -> &'static str {
        match self {
            WorkloadKind::Steady => "steady",
            WorkloadKind::Bursty => "bursty",
            WorkloadKind::Adversarial => "adversarial",
            WorkloadKind::Crosschain => "crosschain",
        }
    }
}

/// What a planned transaction is meant to exercise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxClass {
    Valid,
    HotConflict,
    Duplicate,
    BadSignature,
    StaleNonce,
    Oversize,
}

impl TxClass {
    /// True for classes the node should accept and commit: the ones whose latency is
    /// measured and whose transient rejections are retried.
    pub const fn expects_commit(self) -> bool {
        matches!(self, TxClass::Valid | TxClass::HotConflict)
    }
}

/// The adversarial mix, as cumulative per-mille thresholds (see the module table).
const ADVERSARIAL_MIX: [(u32, TxClass); 6] = [
    (550, TxClass::Valid),
    (750, TxClass::HotConflict),
    (830, TxClass::Duplicate),
    (900, TxClass::BadSignature),
    (970, TxClass::StaleNonce),
    (1000, TxClass::Oversize),
];

/// One decided transaction, before signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxPlan {
    /// A transaction signed by account `signer` (or left unsigned); `corrupt` flips a
    /// signature byte after signing.
    Transfer {
        class: TxClass,
        signer: usize,
        tx: Transaction,
        corrupt: bool,
    },
    /// Raw bytes over the size limit, never decoded by the node.
    Oversize,
}

/// A transaction ready to send.
#[derive(Clone, Debug)]
pub struct PreparedTx {
    pub class: TxClass,
    /// Canonical bytes as submitted.
    pub bytes: Arc<[u8]>,
    /// Digest to look for in finality events; `None` for untracked classes.
    pub tracked_digest: Option<[u8; 32]>,
    /// Index of the signing account (`None` for raw over-size bytes): the load
    /// generator sends an account's transactions to one node, in nonce order.
    pub signer: Option<usize>,
}

/// Sequential, seeded planner holding the per-account nonces.
pub struct TxPlanner {
    accounts: usize,
    addresses: Vec<dualchain_core::types::Address>,
    kind: WorkloadKind,
    rng: ChaCha8Rng,
    /// Next nonce of every account, starting from the chain's current nonces.
    nonces: Vec<u64>,
    cursor: usize,
    last_valid: Option<(usize, Transaction)>,
}

impl TxPlanner {
    /// A planner over `accounts` whose on-chain next nonces are `start_nonces` (all 0 on
    /// a fresh genesis; pass `None` for that).
    pub fn new(
        accounts: &[Account],
        kind: WorkloadKind,
        seed: u64,
        start_nonces: Option<Vec<u64>>,
    ) -> Self {
        let nonces = start_nonces.unwrap_or_else(|| vec![0; accounts.len()]);
        assert_eq!(nonces.len(), accounts.len(), "one start nonce per account");
        Self {
            accounts: accounts.len(),
            addresses: accounts.iter().map(|a| a.address).collect(),
            kind,
            rng: ChaCha8Rng::seed_from_u64(seed),
            nonces,
            cursor: 0,
            last_valid: None,
        }
    }

    /// The next nonce the planner would give account `index`.
    pub fn next_nonce(&self, index: usize) -> u64 {
        self.nonces[index]
    }

    fn next_sender(&mut self) -> usize {
        let sender = self.cursor;
        self.cursor = (self.cursor + 1) % self.accounts;
        sender
    }

    fn pick_class(&mut self) -> TxClass {
        if self.kind != WorkloadKind::Adversarial {
            return TxClass::Valid;
        }
        let roll = self.rng.random_range(0..1000u32);
        ADVERSARIAL_MIX
            .iter()
            .find(|(threshold, _)| roll < *threshold)
            .map_or(TxClass::Valid, |(_, class)| *class)
    }

    fn transfer(&mut self, sender: usize, recipient: usize, nonce: u64) -> Transaction {
        let amount = self.rng.random_range(1..=1000);
        dualchain_testkit::workload::transfer(
            self.addresses[sender],
            self.addresses[recipient],
            nonce,
            amount,
        )
    }

    fn other_account(&mut self, sender: usize) -> usize {
        let offset = self.rng.random_range(1..self.accounts);
        (sender + offset) % self.accounts
    }

    fn valid(&mut self, class: TxClass) -> TxPlan {
        let sender = self.next_sender();
        let recipient = if class == TxClass::HotConflict && sender != 0 {
            0
        } else {
            self.other_account(sender)
        };
        let nonce = self.nonces[sender];
        self.nonces[sender] += 1;
        let tx = self.transfer(sender, recipient, nonce);
        self.last_valid = Some((sender, tx.clone()));
        TxPlan::Transfer {
            class,
            signer: sender,
            tx,
            corrupt: false,
        }
    }

    /// Decides the next transaction.
    pub fn next_plan(&mut self) -> TxPlan {
        match self.pick_class() {
            class @ (TxClass::Valid | TxClass::HotConflict) => self.valid(class),
            TxClass::Duplicate => match self.last_valid.clone() {
                Some((signer, tx)) => TxPlan::Transfer {
                    class: TxClass::Duplicate,
                    signer,
                    tx,
                    corrupt: false,
                },
                None => self.valid(TxClass::Valid),
            },
            TxClass::BadSignature => {
                let sender = self.rng.random_range(0..self.accounts);
                let recipient = self.other_account(sender);
                let nonce = self.nonces[sender];
                let tx = self.transfer(sender, recipient, nonce);
                TxPlan::Transfer {
                    class: TxClass::BadSignature,
                    signer: sender,
                    tx,
                    corrupt: true,
                }
            }
            TxClass::StaleNonce => {
                let sender = self.rng.random_range(0..self.accounts);
                match self.nonces[sender].checked_sub(1) {
                    Some(stale) => {
                        let recipient = self.other_account(sender);
                        let tx = self.transfer(sender, recipient, stale);
                        TxPlan::Transfer {
                            class: TxClass::StaleNonce,
                            signer: sender,
                            tx,
                            corrupt: false,
                        }
                    }
                    None => self.valid(TxClass::Valid),
                }
            }
            TxClass::Oversize => TxPlan::Oversize,
        }
    }

    /// Decides the next `count` transactions.
    pub fn plan_chunk(&mut self, count: usize) -> Vec<TxPlan> {
        (0..count).map(|_| self.next_plan()).collect()
    }
}

/// Turns plans into canonical bytes, signing on all cores (rayon) when `signed`.
///
/// Unsigned mode still signs the bad-signature class, so that it carries a signature
/// to fail; everything else goes out with [`Authorization::Unsigned`].
/// Signatures are for `network` (the targets' `NodeStatus.network_id`).
pub fn materialize(
    plans: Vec<TxPlan>,
    accounts: &[Account],
    network: NetworkId,
    signed: bool,
) -> Vec<PreparedTx> {
    plans
        .into_par_iter()
        .map(|plan| prepare_one(plan, accounts, network, signed))
        .collect()
}

fn prepare_one(plan: TxPlan, accounts: &[Account], network: NetworkId, signed: bool) -> PreparedTx {
    match plan {
        TxPlan::Oversize => {
            let mut bytes = vec![0u8; OVERSIZE_TX_BYTES];
            bytes[0] = SignedTransaction::VERSION;
            PreparedTx {
                class: TxClass::Oversize,
                bytes: bytes.into(),
                tracked_digest: None,
                signer: None,
            }
        }
        TxPlan::Transfer {
            class,
            signer,
            tx,
            corrupt,
        } => {
            let stx = if corrupt {
                corrupt_signature(tx.sign(&accounts[signer].key, network))
            } else if signed {
                tx.sign(&accounts[signer].key, network)
            } else {
                tx.unsigned()
            };
            PreparedTx {
                class,
                tracked_digest: class.expects_commit().then(|| stx.digest().0),
                bytes: stx.to_canonical_bytes().into(),
                signer: Some(signer),
            }
        }
    }
}

/// Flips one bit of the signature, keeping the encoding well-formed.
fn corrupt_signature(stx: SignedTransaction) -> SignedTransaction {
    match stx.auth() {
        Authorization::Single {
            public_key,
            signature,
        } => {
            let mut bytes = signature.as_bytes().to_vec();
            bytes[0] ^= 0x01;
            let signature = AccountSignature::from_bytes(&bytes)
                .expect("a signature of the right length stays well-formed");
            SignedTransaction::new(
                stx.tx().clone(),
                Authorization::Single {
                    public_key: public_key.clone(),
                    signature,
                },
            )
        }
        _ => stx,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::accounts::{AccountSource, load_accounts};

    /// The network this test signs for.
    const NET: NetworkId = NetworkId(dualchain_core::Digest([0x11; 32]));

    /// Checks that a prepared transaction decodes and carries (or not) a valid signature,
    /// as the node's admission on `network` would.
    fn admission_check(
        tx: &PreparedTx,
        network: NetworkId,
        allow_unsigned: bool,
    ) -> Result<(), String> {
        let stx = SignedTransaction::from_canonical_bytes(&tx.bytes).map_err(|e| e.to_string())?;
        stx.verify_signatures(network, allow_unsigned)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn accounts(n: usize) -> Vec<Account> {
        load_accounts(&AccountSource::Seed { seed: 3, count: n }).unwrap()
    }

    #[test]
    fn steady_transfers_are_valid_signed_and_nonces_are_contiguous() {
        let accounts = accounts(4);
        let mut planner = TxPlanner::new(&accounts, WorkloadKind::Steady, 1, None);
        let txs = materialize(planner.plan_chunk(12), &accounts, NET, true);
        let mut next: HashMap<_, u64> = HashMap::new();
        for tx in &txs {
            assert_eq!(tx.class, TxClass::Valid);
            admission_check(tx, NET, false).unwrap();
            let stx = SignedTransaction::from_canonical_bytes(&tx.bytes).unwrap();
            assert_eq!(tx.tracked_digest, Some(stx.digest().0));
            let expected = next.entry(stx.tx().sender).or_default();
            assert_eq!(stx.tx().nonce, *expected);
            *expected += 1;
            assert_ne!(stx.tx().payload.outputs()[0].to, stx.tx().sender);
        }
        assert_eq!(planner.next_nonce(0), 3);
    }

    #[test]
    fn unsigned_transfers_need_the_unsigned_mode() {
        let accounts = accounts(3);
        let mut planner = TxPlanner::new(&accounts, WorkloadKind::Steady, 1, None);
        let txs = materialize(planner.plan_chunk(3), &accounts, NET, false);
        for tx in &txs {
            admission_check(tx, NET, true).unwrap();
            assert!(admission_check(tx, NET, false).is_err());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let accounts = accounts(5);
        let run = |seed| {
            let mut planner = TxPlanner::new(&accounts, WorkloadKind::Adversarial, seed, None);
            materialize(planner.plan_chunk(200), &accounts, NET, false)
                .into_iter()
                .map(|t| t.bytes)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn adversarial_mix_has_every_class_and_each_fails_as_documented() {
        let accounts = accounts(8);
        let mut planner = TxPlanner::new(&accounts, WorkloadKind::Adversarial, 5, None);
        let txs = materialize(planner.plan_chunk(2000), &accounts, NET, true);
        let mut counts: HashMap<TxClass, usize> = HashMap::new();
        for tx in &txs {
            *counts.entry(tx.class).or_default() += 1;
            match tx.class {
                TxClass::Valid | TxClass::HotConflict => admission_check(tx, NET, false).unwrap(),
                TxClass::BadSignature => assert!(admission_check(tx, NET, true).is_err()),
                TxClass::Oversize => assert_eq!(tx.bytes.len(), OVERSIZE_TX_BYTES),
                TxClass::Duplicate | TxClass::StaleNonce => {
                    admission_check(tx, NET, false).unwrap();
                    assert!(tx.tracked_digest.is_none());
                }
            }
        }
        // Shares within a few points of the documented mix.
        let share = |c| counts.get(&c).copied().unwrap_or(0) as f64 / 2000.0;
        assert!((share(TxClass::Valid) - 0.55).abs() < 0.05, "{counts:?}");
        assert!(
            (share(TxClass::HotConflict) - 0.20).abs() < 0.04,
            "{counts:?}"
        );
        for class in [
            TxClass::Duplicate,
            TxClass::BadSignature,
            TxClass::StaleNonce,
            TxClass::Oversize,
        ] {
            assert!(share(class) > 0.01, "{class:?} missing: {counts:?}");
        }
    }

    #[test]
    fn duplicates_repeat_the_previous_valid_bytes_and_stale_nonces_are_used_ones() {
        let accounts = accounts(6);
        let mut planner = TxPlanner::new(&accounts, WorkloadKind::Adversarial, 11, None);
        let txs = materialize(planner.plan_chunk(500), &accounts, NET, true);
        let mut last_valid: Option<&PreparedTx> = None;
        let mut used: HashMap<_, u64> = HashMap::new();
        for tx in &txs {
            match tx.class {
                TxClass::Valid | TxClass::HotConflict => {
                    let stx = SignedTransaction::from_canonical_bytes(&tx.bytes).unwrap();
                    used.insert(stx.tx().sender, stx.tx().nonce + 1);
                    last_valid = Some(tx);
                }
                TxClass::Duplicate => assert_eq!(tx.bytes, last_valid.unwrap().bytes),
                TxClass::StaleNonce => {
                    let stx = SignedTransaction::from_canonical_bytes(&tx.bytes).unwrap();
                    assert!(stx.tx().nonce < used[&stx.tx().sender]);
                }
                _ => {}
            }
        }
    }
}
