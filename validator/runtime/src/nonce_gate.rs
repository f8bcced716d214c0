//! Proposes each sender's transactions in nonce order.
//!
//! Nonces execute strictly in order: a transaction ordered before its predecessor
//! fails (`BadNonce`, nothing charged), and so does every later one of that sender
//! until it sends the missing nonce again. The mempool keeps each sender's lane in
//! nonce order, but a lane can have a hole: batches a client sends concurrently
//! arrive out of order, and a refused transaction comes back after its successors.
//! A proposer that takes the lane's head whatever precedes it then puts a doomed
//! transaction into a vertex.
//!
//! The gate holds a transaction back while its nonce is ahead of what the sender can
//! execute next — the committed nonce, or one past the highest this validator
//! proposed for it — until the predecessor comes, or for at most `hold` of admission
//! time: a predecessor that another validator proposes, or that never comes, must not
//! stall the sender (after the hold the transaction is proposed and may fail, as
//! before). Held transactions stay with the driver, out of the mempool (giving them
//! back could be refused when the pool is full, and they would be lost); they are
//! bounded, and the oldest is proposed when the bound is reached. A transaction
//! behind the expectation (given back after an abandoned proposal) is proposed and
//! resets it.

use std::collections::{HashMap, VecDeque};

use dualchain_core::types::Address;
use dualchain_mempool::{AdmissionTime, Envelope};

/// Senders whose proposed nonce is remembered at most; beyond, the memory is
/// dropped and the committed nonces alone decide (a hold at worst).
const MAX_REMEMBERED_SENDERS: usize = 1 << 20;

/// What to do with one transaction now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Propose,
    Hold,
}

/// See the module docs.
pub struct NonceGate {
    /// One past the highest nonce proposed here, per sender.
    proposed_next: HashMap<Address, u64>,
    held: VecDeque<Envelope>,
    hold_micros: u64,
    max_held: usize,
}

impl NonceGate {
    /// A gate holding a transaction for at most `hold_micros` of admission time, and
    /// at most `max_held` transactions (at least one).
    pub fn new(hold_micros: u64, max_held: usize) -> Self {
        Self {
            proposed_next: HashMap::new(),
            held: VecDeque::new(),
            hold_micros,
            max_held: max_held.max(1),
        }
    }

    /// Decides for `envelope`; `committed_next` reads its sender's next nonce in
    /// committed state, called only when our own proposals do not already reach the
    /// transaction's nonce (the usual case once a sender is flowing). A proposal is
    /// recorded.
    pub fn decide(
        &mut self,
        envelope: &Envelope,
        committed_next: impl FnOnce() -> u64,
        now: AdmissionTime,
    ) -> Gate {
        let tx = envelope.tx.tx();
        let proposed = self.proposed_next.get(&tx.sender).copied().unwrap_or(0);
        let waited = now
            .as_micros()
            .saturating_sub(envelope.admitted_at.as_micros());
        if tx.nonce > proposed && tx.nonce > committed_next() && waited < self.hold_micros {
            return Gate::Hold;
        }
        if self.proposed_next.len() >= MAX_REMEMBERED_SENDERS {
            self.proposed_next.clear();
        }
        self.proposed_next
            .insert(tx.sender, tx.nonce.saturating_add(1));
        Gate::Propose
    }

    /// Holds `envelope`; returns the oldest held one if the bound is exceeded (to be
    /// proposed now).
    pub fn hold(&mut self, envelope: Envelope) -> Option<Envelope> {
        self.held.push_back(envelope);
        (self.held.len() > self.max_held)
            .then(|| self.held.pop_front())
            .flatten()
    }

    /// Keeps `envelope` for the next proposal whatever the bound (there was no room
    /// for it in this one: the proposal's own limit bounds how many).
    pub fn keep(&mut self, envelope: Envelope) {
        self.held.push_back(envelope);
    }

    /// Everything held, oldest first, to decide again (or to give back on a stop).
    pub fn take_held(&mut self) -> Vec<Envelope> {
        self.held.drain(..).collect()
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Forgets the proposed nonces (a new epoch's engine starts without our queue).
    pub fn reset(&mut self) {
        self.proposed_next.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::types::{AssetId, ChainId, Output, Transaction, TxPayload};

    fn envelope(sender: u8, nonce: u64, admitted_at: u64) -> Envelope {
        let tx = Transaction {
            chain: ChainId::Delta,
            sender: Address([sender; 32]),
            nonce,
            fee: 1,
            payload: TxPayload::Transfer {
                outputs: vec![Output {
                    to: Address([9; 32]),
                    asset: AssetId::NATIVE,
                    amount: 1,
                }],
            },
        }
        .unsigned();
        Envelope {
            encoded_len: 100,
            admitted_at: AdmissionTime::from_micros(admitted_at),
            tx,
        }
    }

    const HOLD: u64 = 1_000;

    #[test]
    fn a_nonce_ahead_of_the_sender_waits_for_its_predecessor() {
        let mut gate = NonceGate::new(HOLD, 8);
        let now = AdmissionTime::from_micros(10);
        assert_eq!(gate.decide(&envelope(1, 6, 0), || 5, now), Gate::Hold);
        assert_eq!(gate.decide(&envelope(1, 5, 0), || 5, now), Gate::Propose);
        // Nonce 5 is proposed (not yet committed): 6 may follow it.
        assert_eq!(gate.decide(&envelope(1, 6, 0), || 5, now), Gate::Propose);
        assert_eq!(gate.decide(&envelope(1, 8, 0), || 5, now), Gate::Hold);
        // Another sender is not held by this one's gap.
        assert_eq!(gate.decide(&envelope(2, 0, 0), || 0, now), Gate::Propose);
        // The committed nonce moving past our proposals (another validator's) counts.
        assert_eq!(gate.decide(&envelope(1, 8, 0), || 8, now), Gate::Propose);
    }

    #[test]
    fn a_predecessor_that_never_comes_holds_a_transaction_only_so_long() {
        let mut gate = NonceGate::new(HOLD, 8);
        let gapped = envelope(1, 3, 100);
        assert_eq!(
            gate.decide(&gapped, || 0, AdmissionTime::from_micros(100 + HOLD - 1)),
            Gate::Hold
        );
        assert_eq!(
            gate.decide(&gapped, || 0, AdmissionTime::from_micros(100 + HOLD)),
            Gate::Propose
        );
    }

    #[test]
    fn a_transaction_behind_the_expectation_is_proposed_and_resets_it() {
        let mut gate = NonceGate::new(HOLD, 8);
        let now = AdmissionTime::from_micros(0);
        for nonce in 0..4 {
            assert_eq!(
                gate.decide(&envelope(1, nonce, 0), || 0, now),
                Gate::Propose
            );
        }
        // Nonce 2 given back after its proposal was abandoned: proposed again, and
        // 3 may follow it again.
        assert_eq!(gate.decide(&envelope(1, 2, 0), || 0, now), Gate::Propose);
        assert_eq!(gate.decide(&envelope(1, 3, 0), || 0, now), Gate::Propose);
        assert_eq!(gate.decide(&envelope(1, 5, 0), || 0, now), Gate::Hold);
    }

    #[test]
    fn held_transactions_are_bounded_and_given_back_oldest_first() {
        let mut gate = NonceGate::new(HOLD, 2);
        assert!(gate.hold(envelope(1, 1, 0)).is_none());
        assert!(gate.hold(envelope(2, 1, 0)).is_none());
        let evicted = gate.hold(envelope(3, 1, 0)).expect("the oldest leaves");
        assert_eq!(evicted.tx.tx().sender, Address([1; 32]));
        assert_eq!(gate.held(), 2);
        let back: Vec<u8> = gate
            .take_held()
            .iter()
            .map(|e| e.tx.tx().sender.0[0])
            .collect();
        assert_eq!(back, vec![2, 3]);
        assert_eq!(gate.held(), 0);
    }
}
