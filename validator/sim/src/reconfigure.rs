//! Validator-set changes in the whole-node simulation, one change of the set after
//! another (`--validators 4 --reconfigure 7,5`), while the load, the flow and the
//! faults go on.
//!
//! - **Joins** (a larger size): validators outside the genesis set run from the start
//!   as joiners (their chains follow by block sync). For each, a funded sponsor
//!   account locks one sAX on Alpha, then sends the join request with that lock as
//!   the stake, signed by the joiner's key. A joiner's key is a real ML-DSA-87 key
//!   even when the genesis validators sign with simulated ones: it enters the network
//!   through its join record, as bytes, the way it does in a real network.
//! - **Leaves** (a smaller size): each leaver's own key signs its request, which its
//!   own set-change account (derived from its key, unfunded) sends with no fee.
//!   Leavers are honest genesis validators that neither crash nor observe, then
//!   validators that joined earlier in the run.
//!
//! A change is done when the observer's Alpha runs an epoch whose set holds every
//! joiner of it, or no longer holds any of its leavers. The checks then ask every
//! leaver's chains to have stopped at their boundary and everyone else (joiners
//! included) to go on with the same blocks.

use std::collections::BTreeMap;

use bytes::Bytes;
use dualchain_api::{AdmissionStatus, ChainApi};
use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, ChainId, CrossChainOp, EpochRecord, LockRecord, PendingSetChanges, RecordKey,
    RecordKind, SignedTransaction, Transaction, TxPayload, ValidatorIndex, ValidatorSet,
    set_change_keypair, set_change_op, validator_set_key,
};
use dualchain_storage::{Column, KvEngine};

use crate::seams::SimStore;

/// A request not in the pending changes this long after it was sent goes again
/// (lost with a crashed mempool, or signed for an epoch that ended before it ran).
const RESEND_MS: u64 = 10_000;

/// What a step reads and where it sends.
pub struct ReconfigureView<'a> {
    /// The observer's Alpha store (its committed records).
    pub alpha: &'a SimStore,
    /// Where requests go (the observer's Alpha API).
    pub target: &'a dyn ChainApi,
    /// Every node's key, by node index (joiners after the genesis validators).
    pub keys: &'a [std::sync::Arc<ValidatorKeypair>],
    pub network: NetworkId,
}

/// One change of the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Join(Vec<ValidatorIndex>),
    Leave(Vec<ValidatorIndex>),
}

impl Change {
    fn nodes(&self) -> &[ValidatorIndex] {
        match self {
            Change::Join(nodes) | Change::Leave(nodes) => nodes,
        }
    }
}

/// The planned changes and how far they got.
#[derive(Debug, Default)]
pub struct Reconfiguration {
    steps: Vec<Change>,
    next: usize,
    /// When each request (a leave, a join, a joiner's lock) was last sent.
    sent: BTreeMap<ValidatorIndex, u64>,
    /// Each joiner's lock: the digest of the locking transaction.
    locks: BTreeMap<ValidatorIndex, Digest>,
    /// The Alpha epoch whose set first left each leaver out.
    pub left: BTreeMap<ValidatorIndex, u64>,
    /// The Alpha epoch whose set first held each joiner.
    pub joined: BTreeMap<ValidatorIndex, u64>,
    /// Requests refused for a reason no honest run gives.
    pub unexpected: Vec<String>,
    /// The observer's Alpha epoch at the last step, and the epoch in which the last
    /// change took effect (the run goes on until the final set crossed a boundary
    /// of its own).
    epoch: u64,
    last_change_epoch: Option<u64>,
}

/// The sponsor account that locks sAX for the join of node `node` (funded in the
/// simulated genesis; unsigned transactions are allowed there).
pub fn sponsor_address(node: ValidatorIndex) -> Address {
    Address(blake3::derive_key(
        "dualchain 2026-12 simulated join sponsor v1",
        &u64::from(node).to_le_bytes(),
    ))
}

/// How many validators `sizes` ever adds to a set of `validators`.
pub fn joiners_of(validators: usize, sizes: &[usize]) -> usize {
    let mut size = validators;
    let mut joiners = 0;
    for &next in sizes {
        joiners += next.saturating_sub(size);
        size = next;
    }
    joiners
}

impl Reconfiguration {
    /// Changes from `validators` members through `sizes`. Joiners are the nodes after
    /// the genesis validators, in order; leavers come from `candidates` in order,
    /// then from the validators that joined before (validated: there are enough).
    pub fn new(validators: usize, sizes: &[usize], candidates: &[ValidatorIndex]) -> Self {
        let mut steps = Vec::new();
        let mut size = validators;
        let mut next_joiner = validators as ValidatorIndex;
        let mut leavable: Vec<ValidatorIndex> = candidates.to_vec();
        let mut taken = 0;
        for &next in sizes {
            if next > size {
                let joiners: Vec<ValidatorIndex> =
                    (next_joiner..next_joiner + (next - size) as ValidatorIndex).collect();
                next_joiner += joiners.len() as ValidatorIndex;
                leavable.extend(&joiners);
                steps.push(Change::Join(joiners));
            } else {
                let count = size - next;
                steps.push(Change::Leave(leavable[taken..taken + count].to_vec()));
                taken += count;
            }
            size = next;
        }
        Self {
            steps,
            ..Self::default()
        }
    }

    /// Every validator that leaves in this run.
    pub fn leavers(&self) -> impl Iterator<Item = ValidatorIndex> + '_ {
        self.steps
            .iter()
            .flat_map(|step| match step {
                Change::Leave(nodes) => nodes.as_slice(),
                Change::Join(_) => &[],
            })
            .copied()
    }

    /// Every change took effect, and the set the last one made crossed a boundary
    /// of its own (so it is shown to run an epoch through).
    pub fn done(&self) -> bool {
        self.next == self.steps.len() && self.last_change_epoch.is_none_or(|e| self.epoch > e)
    }

    /// Changes applied so far.
    pub fn applied(&self) -> usize {
        self.next
    }

    /// Notes whom the observer's current set holds or left out, moves to the next
    /// change when this one is complete, and sends the requests still missing.
    pub fn step(&mut self, now_ms: u64, view: &ReconfigureView<'_>) {
        let Some((epoch, set, pending)) = read_epoch(view.alpha) else {
            return;
        };
        self.epoch = epoch;
        while let Some(step) = self.steps.get(self.next) {
            let key = |node: ValidatorIndex| view.keys[usize::from(node)].public();
            let complete = match step {
                Change::Leave(leavers) => {
                    for &leaver in leavers {
                        if set.index_of(key(leaver)).is_none() {
                            self.left.entry(leaver).or_insert(epoch);
                        }
                    }
                    leavers.iter().all(|l| self.left.contains_key(l))
                }
                Change::Join(joiners) => {
                    for &joiner in joiners {
                        if set.index_of(key(joiner)).is_some() {
                            self.joined.entry(joiner).or_insert(epoch);
                        }
                    }
                    joiners.iter().all(|j| self.joined.contains_key(j))
                }
            };
            if !complete {
                break;
            }
            self.next += 1;
            self.last_change_epoch = Some(epoch);
        }
        let Some(step) = self.steps.get(self.next).cloned() else {
            return;
        };
        for &node in step.nodes() {
            let key = &view.keys[usize::from(node)];
            let is_pending = pending.0.iter().any(|c| c.key() == key.public());
            let recent = self
                .sent
                .get(&node)
                .is_some_and(|at| now_ms < at + RESEND_MS);
            let done = match step {
                Change::Leave(_) => self.left.contains_key(&node),
                Change::Join(_) => self.joined.contains_key(&node),
            };
            if done || is_pending || recent {
                continue;
            }
            match step {
                Change::Leave(_) => self.send_leave(node, key, epoch, view),
                Change::Join(_) => self.lock_or_join(node, key, epoch, view),
            }
            self.sent.insert(node, now_ms);
        }
    }

    /// A joiner's next request: its sponsor's lock until Alpha holds it, then the
    /// join with that lock.
    fn lock_or_join(
        &mut self,
        joiner: ValidatorIndex,
        key: &ValidatorKeypair,
        epoch: u64,
        view: &ReconfigureView<'_>,
    ) {
        let sponsor = sponsor_address(joiner);
        let locked = self
            .locks
            .get(&joiner)
            .is_some_and(|lock| read_lock(view.alpha, lock).is_some());
        if !locked {
            let op = CrossChainOp::SaxLock {
                amount: JOIN_STAKE,
                unlock_at_ms: u64::MAX,
            };
            let tx = alpha_tx(sponsor, 1, op, view);
            self.locks.insert(joiner, tx.digest());
            self.submit(
                tx,
                || format!("the lock for the join of validator {joiner}"),
                view,
            );
            return;
        }
        let lock = self.locks[&joiner];
        let op = set_change_op(view.network, key, &sponsor, Some(lock), epoch);
        let tx = alpha_tx(sponsor, 1, op, view);
        self.submit(
            tx,
            || format!("the join request of validator {joiner}"),
            view,
        );
    }

    fn send_leave(
        &mut self,
        leaver: ValidatorIndex,
        key: &ValidatorKeypair,
        epoch: u64,
        view: &ReconfigureView<'_>,
    ) {
        let sender = Address::of(set_change_keypair(key).public());
        let op = set_change_op(view.network, key, &sender, None, epoch);
        let tx = alpha_tx(sender, 0, op, view);
        self.submit(
            tx,
            || format!("the leave request of validator {leaver}"),
            view,
        );
    }

    /// Submits `tx` to the observer's Alpha; refusals no honest run gives are noted.
    fn submit(
        &mut self,
        tx: SignedTransaction,
        what: impl FnOnce() -> String,
        view: &ReconfigureView<'_>,
    ) {
        let admission = view.target.submit(&[Bytes::from(tx.to_canonical_bytes())]);
        match admission.first().map(|a| (a.status, &a.reason)) {
            Some((
                AdmissionStatus::Accepted
                | AdmissionStatus::Duplicate
                | AdmissionStatus::MempoolFull
                | AdmissionStatus::RateLimited
                | AdmissionStatus::Overloaded
                | AdmissionStatus::NonceTooOld,
                _,
            ))
            | None => {}
            Some((other, reason)) => self
                .unexpected
                .push(format!("{} was refused: {other:?}: {reason}", what())),
        }
    }
}

/// `op` from `sender` at its next committed nonce, unsigned (the simulated genesis
/// allows it).
fn alpha_tx(
    sender: Address,
    fee: u64,
    op: CrossChainOp,
    view: &ReconfigureView<'_>,
) -> SignedTransaction {
    Transaction {
        chain: ChainId::Alpha,
        sender,
        nonce: view.alpha.next_nonce(&sender),
        fee,
        payload: TxPayload::CrossChain(op),
    }
    .unsigned()
}

/// The stake a joiner's lock holds: that of a genesis validator.
const JOIN_STAKE: u64 = 1;

/// The lock record `lock`, if `store`'s committed records hold it.
fn read_lock(store: &SimStore, lock: &Digest) -> Option<LockRecord> {
    let key = RecordKey::new(RecordKind::Lock, lock.0);
    let bytes = store.get(Column::State, &key.state_key()).ok().flatten()?;
    LockRecord::from_canonical_bytes(&bytes).ok()
}

/// Alpha's current epoch, its set and the pending changes, as `store` holds them.
fn read_epoch(store: &SimStore) -> Option<(u64, ValidatorSet, PendingSetChanges)> {
    let read = |key: RecordKey| store.get(Column::State, &key.state_key()).ok().flatten();
    let record =
        EpochRecord::from_canonical_bytes(&read(RecordKey::singleton(RecordKind::Epoch))?).ok()?;
    let set = ValidatorSet::from_canonical_bytes(&read(validator_set_key(record.epoch))?).ok()?;
    let pending = match read(RecordKey::singleton(RecordKind::PendingSetChanges)) {
        Some(bytes) => PendingSetChanges::from_canonical_bytes(&bytes).ok()?,
        None => PendingSetChanges::default(),
    };
    Some((record.epoch, set, pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_take_their_leavers_in_order() {
        let r = Reconfiguration::new(7, &[5, 4], &[6, 2, 3, 1]);
        assert_eq!(
            r.steps,
            vec![Change::Leave(vec![6, 2]), Change::Leave(vec![3])]
        );
        assert_eq!(r.leavers().collect::<Vec<_>>(), vec![6, 2, 3]);
        assert!(!r.done());
        assert!(Reconfiguration::new(4, &[], &[]).done());
    }

    #[test]
    fn joiners_follow_the_genesis_validators_and_may_leave_later() {
        let r = Reconfiguration::new(4, &[7, 5], &[3]);
        assert_eq!(
            r.steps,
            vec![Change::Join(vec![4, 5, 6]), Change::Leave(vec![3, 4])]
        );
        assert_eq!(r.leavers().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(joiners_of(4, &[7, 5]), 3);
        assert_eq!(joiners_of(4, &[5, 4, 6]), 3);
        assert_eq!(joiners_of(7, &[6, 5]), 0);
        assert_ne!(sponsor_address(4), sponsor_address(5));
    }
}
