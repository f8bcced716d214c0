//! What the pool stores per transaction, and the batches it hands to the proposer.

use dualchain_core::hash::Digest;
use dualchain_core::types::SignedTransaction;

/// When a transaction was admitted, on a clock chosen by the caller (for example
/// microseconds since the node started, or a plain admission sequence number).
///
/// The pool never reads a clock itself: ordering depends only on these values, so
/// replaying the same admissions gives the same batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdmissionTime(pub u64);

impl AdmissionTime {
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }
}

/// A pending transaction with what the pool knows about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub tx: SignedTransaction,
    pub admitted_at: AdmissionTime,
    /// Canonical encoded size, counted against the byte bounds.
    pub encoded_len: usize,
}

impl Envelope {
    pub fn digest(&self) -> Digest {
        self.tx.digest()
    }
}

/// Transactions drained for one proposal, in proposal order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub envelopes: Vec<Envelope>,
    /// Sum of the envelopes' encoded sizes.
    pub bytes: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    pub fn digests(&self) -> Vec<Digest> {
        self.envelopes.iter().map(Envelope::digest).collect()
    }

    pub fn into_transactions(self) -> Vec<SignedTransaction> {
        self.envelopes.into_iter().map(|e| e.tx).collect()
    }
}

/// The version byte of canonical encodings.
const VERSION_BYTE: usize = 1;

/// The canonical encoded size of a signed transaction (version byte included, the
/// size [`MAX_TX_BYTES`](dualchain_core::types::tx_limits::MAX_TX_BYTES) bounds),
/// without encoding it: the transaction measured itself when it was decoded or
/// built. A unit test pins it to the encoder's output for every kind.
pub fn encoded_len(stx: &SignedTransaction) -> usize {
    VERSION_BYTE + stx.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::crypto::{AccountKeypair, NetworkId};
    use dualchain_core::encoding::Canonical;
    use dualchain_core::types::{
        Address, AssetId, ChainId, CrossChainOp, Output, Transaction, TxPayload,
    };

    const NET: NetworkId = NetworkId(dualchain_core::hash::Digest([0x11; 32]));

    fn tx(sender: Address, payload: TxPayload) -> Transaction {
        Transaction {
            chain: ChainId::Delta,
            sender,
            nonce: 3,
            fee: 1,
            payload,
        }
    }

    #[test]
    fn encoded_len_matches_the_encoder_for_every_kind() {
        let a = AccountKeypair::from_seed(&[1; 32]);
        let b = AccountKeypair::from_seed(&[2; 32]);
        let sender = Address::of(a.public());
        let output = Output {
            to: Address([9; 32]),
            asset: AssetId::NATIVE,
            amount: 5,
        };
        let payloads = [
            TxPayload::Transfer {
                outputs: vec![output; 3],
            },
            TxPayload::Burn {
                asset: AssetId(2),
                amount: 7,
            },
            TxPayload::MultisigConfigure {
                threshold: 1,
                signers: vec![Address([1; 32]), Address([2; 32])],
            },
            TxPayload::MultisigSpend {
                outputs: vec![output],
            },
            TxPayload::CrossChain(CrossChainOp::SaxLock {
                amount: 1,
                unlock_at_ms: 2,
            }),
            TxPayload::CrossChain(CrossChainOp::Vote {
                proposal: dualchain_core::hash::Digest([4; 32]),
                approve: false,
            }),
        ];
        for payload in payloads {
            let t = tx(sender, payload);
            for stx in [
                t.clone().unsigned(),
                t.clone().sign(&a, NET),
                t.clone().sign_multisig(&[&a, &b], NET),
            ] {
                assert_eq!(encoded_len(&stx), stx.to_canonical_bytes().len(), "{stx:?}");
            }
        }
    }
}
