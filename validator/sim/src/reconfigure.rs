//! Validator-set changes in the whole-node simulation: honest validators leave, one
//! change of the set after another (`--reconfigure 6,5`), while the load, the flow
//! and the faults go on. Each leaver's own key signs its request, which its own
//! set-change account (derived from its key, unfunded) sends to Alpha with no fee;
//! the change is done when the observer's Alpha runs an epoch
//! whose set no longer holds them. The checks then ask every leaver's chains to have
//! stopped at their boundary and everyone else to go on without them.

use std::collections::BTreeMap;

use bytes::Bytes;
use dualchain_api::{AdmissionStatus, ChainApi};
use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, ChainId, CrossChainOp, EpochRecord, PendingSetChanges, RecordKey, RecordKind,
    SetChangeKind, Transaction, TxPayload, ValidatorIndex, ValidatorSet, set_change_keypair,
    set_change_message, validator_set_key,
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
    pub keys: &'a [std::sync::Arc<ValidatorKeypair>],
    pub network: NetworkId,
}

/// The planned leaves and how far they got.
#[derive(Debug, Default)]
pub struct Reconfiguration {
    /// The leavers of each change, in order.
    steps: Vec<Vec<ValidatorIndex>>,
    next: usize,
    /// When each leaver's request was last sent.
    sent: BTreeMap<ValidatorIndex, u64>,
    /// The Alpha epoch whose set first left each leaver out.
    pub left: BTreeMap<ValidatorIndex, u64>,
    /// Requests refused for a reason no honest run gives.
    pub unexpected: Vec<String>,
}

impl Reconfiguration {
    /// Changes from `validators` members through `sizes`, taking leavers from
    /// `candidates` in order (validated: there are enough).
    pub fn new(validators: usize, sizes: &[usize], candidates: &[ValidatorIndex]) -> Self {
        let mut steps = Vec::new();
        let (mut size, mut taken) = (validators, 0);
        for &next in sizes {
            let count = size - next;
            steps.push(candidates[taken..taken + count].to_vec());
            taken += count;
            size = next;
        }
        Self {
            steps,
            ..Self::default()
        }
    }

    /// Every validator that leaves in this run.
    pub fn leavers(&self) -> impl Iterator<Item = ValidatorIndex> + '_ {
        self.steps.iter().flatten().copied()
    }

    pub fn done(&self) -> bool {
        self.next == self.steps.len()
    }

    /// Changes applied so far.
    pub fn applied(&self) -> usize {
        self.next
    }

    /// Notes who the observer's current set left out, moves to the next change when
    /// this one is complete, and sends the requests still missing.
    pub fn step(&mut self, now_ms: u64, view: &ReconfigureView<'_>) {
        let Some((epoch, set, pending)) = read_epoch(view.alpha) else {
            return;
        };
        while let Some(step) = self.steps.get(self.next) {
            for &leaver in step {
                if set
                    .index_of(view.keys[usize::from(leaver)].public())
                    .is_none()
                {
                    self.left.entry(leaver).or_insert(epoch);
                }
            }
            if !step.iter().all(|l| self.left.contains_key(l)) {
                break;
            }
            self.next += 1;
        }
        let Some(step) = self.steps.get(self.next).cloned() else {
            return;
        };
        for leaver in step {
            let key = &view.keys[usize::from(leaver)];
            let is_pending = pending.0.iter().any(|c| c.key() == key.public());
            let recent = self
                .sent
                .get(&leaver)
                .is_some_and(|at| now_ms < at + RESEND_MS);
            if self.left.contains_key(&leaver) || is_pending || recent {
                continue;
            }
            self.sent.insert(leaver, now_ms);
            self.send(leaver, key, epoch, view);
        }
    }

    fn send(
        &mut self,
        leaver: ValidatorIndex,
        key: &ValidatorKeypair,
        epoch: u64,
        view: &ReconfigureView<'_>,
    ) {
        let sender = Address::of(set_change_keypair(key).public());
        let message = set_change_message(SetChangeKind::Leave, &sender, None, epoch);
        let proof = key.sign(
            SigningDomain::ValidatorSetChange.on(view.network),
            message.as_bytes(),
        );
        let tx = Transaction {
            chain: ChainId::Alpha,
            sender,
            nonce: view.alpha.next_nonce(&sender),
            fee: 0,
            payload: TxPayload::CrossChain(CrossChainOp::ValidatorLeave {
                key: key.public().clone(),
                proof,
            }),
        }
        .unsigned();
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
            Some((other, reason)) => self.unexpected.push(format!(
                "the leave request of validator {leaver} was refused: {other:?}: {reason}"
            )),
        }
    }
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
        assert_eq!(r.steps, vec![vec![6, 2], vec![3]]);
        assert_eq!(r.leavers().collect::<Vec<_>>(), vec![6, 2, 3]);
        assert!(!r.done());
        assert!(Reconfiguration::new(4, &[], &[]).done());
    }
}
