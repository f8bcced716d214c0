//! Choosing a batch: the deterministic order and the round-robin fairness rule.
//!
//! Every drainable transaction has a key `(round, admitted_at, digest)`, where `round`
//! is its position in its sender's lane (0 for the lowest nonce). A batch is the
//! prefix of the pending transactions sorted by that key, skipping what does not fit:
//! all senders' first transactions come before anyone's second, and within a round
//! the earliest admitted goes first. The digest breaks ties, so the order is total
//! and depends only on the pending set, never on thread timing or hash-map order.
//!
//! When a transaction does not fit the byte budget, its sender is skipped for the
//! rest of the batch: taking its next nonce would leave a gap the executor refuses.

use std::collections::HashSet;

use dualchain_core::hash::Digest;
use dualchain_core::types::Address;
use foldhash::fast::RandomState;

use crate::envelope::AdmissionTime;

/// The smallest possible canonical transaction (an unsigned burn): once less budget
/// than this is left, nothing more can fit.
pub(crate) const MIN_TX_BYTES: usize = 1 + 49 + 1 + 12 + 1;

/// A transaction that may go into the batch, identified well enough to remove it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub round: u32,
    pub admitted_at: AdmissionTime,
    pub digest: Digest,
    pub sender: Address,
    pub nonce: u64,
    pub size: usize,
    pub shard: u32,
}

impl Candidate {
    fn key(&self) -> (u32, AdmissionTime, Digest) {
        (self.round, self.admitted_at, self.digest)
    }
}

/// The fewest rounds whose candidates number at least `max_txs`, given every lane's
/// length (all rounds if the whole pool is smaller than that).
pub(crate) fn rounds_needed(lane_lengths: &[usize], max_txs: usize) -> usize {
    let longest = lane_lengths.iter().copied().max().unwrap_or(0);
    let candidates_within = |rounds: usize| -> usize {
        lane_lengths
            .iter()
            .map(|&len| len.min(rounds))
            .fold(0usize, usize::saturating_add)
    };
    let (mut low, mut high) = (1, longest.max(1));
    while low < high {
        let middle = low + (high - low) / 2;
        if candidates_within(middle) >= max_txs {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

/// What [`select`] chose.
pub(crate) struct Selection {
    pub picks: Vec<Candidate>,
    /// No further candidate could fit, whatever more rounds would offer.
    pub budget_exhausted: bool,
}

/// Picks the batch from `candidates` (sorted in place by key).
pub(crate) fn select(candidates: &mut [Candidate], max_txs: usize, max_bytes: usize) -> Selection {
    candidates.sort_unstable_by_key(Candidate::key);
    let mut picks = Vec::with_capacity(max_txs.min(candidates.len()));
    let mut bytes = 0usize;
    let mut skipped: HashSet<Address, RandomState> = HashSet::default();
    let mut budget_exhausted = false;
    for candidate in candidates.iter() {
        if picks.len() == max_txs {
            break;
        }
        if max_bytes - bytes < MIN_TX_BYTES {
            budget_exhausted = true;
            break;
        }
        if !skipped.is_empty() && skipped.contains(&candidate.sender) {
            continue;
        }
        if candidate.size > max_bytes - bytes {
            skipped.insert(candidate.sender);
            continue;
        }
        bytes += candidate.size;
        picks.push(candidate.clone());
    }
    Selection {
        picks,
        budget_exhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_needed_is_the_smallest_sufficient() {
        assert_eq!(rounds_needed(&[], 10), 1);
        assert_eq!(rounds_needed(&[5, 5, 5], 3), 1);
        assert_eq!(rounds_needed(&[5, 5, 5], 4), 2);
        assert_eq!(rounds_needed(&[1, 1, 9], 5), 3);
        assert_eq!(rounds_needed(&[1, 1, 9], 50), 9);
    }

    #[test]
    fn min_tx_bytes_is_an_unsigned_burn() {
        use dualchain_core::types::{AssetId, ChainId, Transaction, TxPayload};
        let burn = Transaction {
            chain: ChainId::Delta,
            sender: Address([1; 32]),
            nonce: 0,
            fee: 0,
            payload: TxPayload::Burn {
                asset: AssetId::NATIVE,
                amount: 1,
            },
        }
        .unsigned();
        assert_eq!(crate::envelope::encoded_len(&burn), MIN_TX_BYTES);
    }
}
