//! One lock shard: the lanes of the senders that hash to it, and its digest index.
//!
//! A transaction's digest covers its sender, so a digest always lives in its
//! sender's shard: the pending-duplicate check, the lane caps and the insertion all
//! happen under one lock hold.

use std::collections::{HashMap, VecDeque};

use dualchain_core::hash::Digest;
use dualchain_core::types::Address;
use foldhash::fast::RandomState;

use crate::envelope::Envelope;
use crate::error::Rejection;
use crate::select::Candidate;

/// A sender's pending transactions, sorted by nonce (no two with the same nonce).
///
/// A sorted deque rather than a tree: clients almost always submit in nonce order, so
/// insertion is a push at the back and draining a pop at the front, both O(1) without
/// moving the other envelopes; an out-of-order nonce costs a shift bounded by the
/// sender cap.
#[derive(Default)]
struct Lane {
    envelopes: VecDeque<Envelope>,
}

impl Lane {
    /// `Ok(position)` of `nonce`, or `Err(position)` where it would be inserted.
    fn find(&self, nonce: u64) -> Result<usize, usize> {
        match self.envelopes.back() {
            None => Err(0),
            Some(last) if last.tx.tx().nonce < nonce => Err(self.envelopes.len()),
            Some(_) => self
                .envelopes
                .binary_search_by_key(&nonce, |e| e.tx.tx().nonce),
        }
    }

    fn len(&self) -> usize {
        self.envelopes.len()
    }

    fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }
}

#[derive(Default)]
pub(crate) struct Shard {
    lanes: HashMap<Address, Lane, RandomState>,
    /// digest → (sender, nonce) of every pending transaction of this shard.
    index: HashMap<Digest, (Address, u64), RandomState>,
}

impl Shard {
    /// The checks that need this shard's state: duplicate, nonce conflict, sender cap.
    pub(crate) fn check_admissible(
        &self,
        digest: &Digest,
        sender: &Address,
        nonce: u64,
        max_per_sender: usize,
    ) -> Result<(), Rejection> {
        if self.index.contains_key(digest) {
            return Err(Rejection::DuplicatePending { digest: *digest });
        }
        if let Some(lane) = self.lanes.get(sender) {
            if lane.find(nonce).is_ok() {
                return Err(Rejection::NonceConflict {
                    sender: *sender,
                    nonce,
                });
            }
            if lane.len() >= max_per_sender {
                return Err(Rejection::SenderCapReached {
                    sender: *sender,
                    cap: max_per_sender,
                });
            }
        }
        Ok(())
    }

    /// Inserts an envelope that passed [`Shard::check_admissible`].
    pub(crate) fn insert(&mut self, envelope: Envelope) {
        let sender = envelope.tx.tx().sender;
        let nonce = envelope.tx.tx().nonce;
        self.index.insert(envelope.digest(), (sender, nonce));
        let lane = self.lanes.entry(sender).or_default();
        let position = lane.find(nonce).unwrap_or_else(|free| free);
        lane.envelopes.insert(position, envelope);
    }

    /// Removes the pending transaction `digest` if it is here.
    pub(crate) fn remove_digest(&mut self, digest: &Digest) -> Option<Envelope> {
        let (sender, nonce) = *self.index.get(digest)?;
        self.remove_at(&sender, nonce)
    }

    /// Removes the sender's transaction at `nonce` if it is still the one with `digest`.
    pub(crate) fn remove_exact(
        &mut self,
        sender: &Address,
        nonce: u64,
        digest: &Digest,
    ) -> Option<Envelope> {
        let lane = self.lanes.get(sender)?;
        let position = lane.find(nonce).ok()?;
        if lane.envelopes[position].digest() != *digest {
            return None;
        }
        self.remove_at(sender, nonce)
    }

    fn remove_at(&mut self, sender: &Address, nonce: u64) -> Option<Envelope> {
        let lane = self.lanes.get_mut(sender)?;
        let position = lane.find(nonce).ok()?;
        let envelope = lane.envelopes.remove(position)?;
        if lane.is_empty() {
            self.lanes.remove(sender);
        }
        self.index.remove(&envelope.digest());
        Some(envelope)
    }

    /// Removes the sender's transactions with a nonce at or below `nonce`: once a
    /// transaction with that nonce is committed, they can never execute.
    pub(crate) fn remove_up_to_nonce(&mut self, sender: &Address, nonce: u64) -> Vec<Envelope> {
        let Some(lane) = self.lanes.get_mut(sender) else {
            return Vec::new();
        };
        let stale = lane.envelopes.partition_point(|e| e.tx.tx().nonce <= nonce);
        let removed: Vec<Envelope> = lane.envelopes.drain(..stale).collect();
        if lane.is_empty() {
            self.lanes.remove(sender);
        }
        for envelope in &removed {
            self.index.remove(&envelope.digest());
        }
        removed
    }

    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.index.contains_key(digest)
    }

    pub(crate) fn pending_of(&self, sender: &Address) -> usize {
        self.lanes.get(sender).map_or(0, Lane::len)
    }

    pub(crate) fn senders(&self) -> usize {
        self.lanes.len()
    }

    /// Appends the length of every lane (an upper bound of what it can contribute).
    pub(crate) fn lane_lengths(&self, out: &mut Vec<usize>) {
        out.extend(self.lanes.values().map(Lane::len));
    }

    /// Appends each lane's drainable transactions of the first `rounds` rounds: the
    /// contiguous nonce run from the lane's lowest nonce. Returns whether some lane had
    /// more drainable transactions than `rounds`.
    pub(crate) fn collect_candidates(
        &self,
        shard: usize,
        rounds: usize,
        out: &mut Vec<Candidate>,
    ) -> bool {
        let mut truncated = false;
        for (sender, lane) in &self.lanes {
            let mut expected_nonce = None;
            for (round, envelope) in lane.envelopes.iter().enumerate() {
                let nonce = envelope.tx.tx().nonce;
                if expected_nonce.is_some_and(|expected| expected != nonce) {
                    break;
                }
                if round == rounds {
                    truncated = true;
                    break;
                }
                out.push(Candidate {
                    round: round as u32,
                    admitted_at: envelope.admitted_at,
                    digest: envelope.digest(),
                    sender: *sender,
                    nonce,
                    size: envelope.encoded_len,
                    shard: shard as u32,
                });
                expected_nonce = nonce.checked_add(1);
                if expected_nonce.is_none() {
                    break;
                }
            }
        }
        truncated
    }
}
