//! What the pool stores per transaction, and the batches it hands to the proposer.

use dualchain_core::hash::Digest;
use dualchain_core::types::{Authorization, SignedTransaction, TxPayload};

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
/// Length prefix of encoded sequences.
const LEN_PREFIX: usize = 4;
/// chain tag + sender + nonce + fee.
const TX_HEADER: usize = 1 + 32 + 8 + 8;
/// address + asset + amount.
const OUTPUT_LEN: usize = 32 + 4 + 8;

/// The canonical encoded size of a signed transaction (version byte included, the
/// size [`MAX_TX_BYTES`](dualchain_core::types::tx_limits::MAX_TX_BYTES) bounds),
/// computed from its shape without encoding it: admission is on the hot path. A unit
/// test pins it to the encoder's output for every kind.
pub fn encoded_len(stx: &SignedTransaction) -> usize {
    let payload = 1 + match &stx.tx().payload {
        TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => {
            LEN_PREFIX + OUTPUT_LEN * outputs.len()
        }
        TxPayload::Burn { .. } => 4 + 8,
        TxPayload::MultisigConfigure { signers, .. } => 1 + LEN_PREFIX + 32 * signers.len(),
        // Rare and of many shapes (an attestation nests a header, a certificate and a
        // proof): measured by encoding.
        TxPayload::CrossChain(op) => {
            let mut body = Vec::new();
            op.encode_body(&mut body);
            body.len()
        }
    };
    let auth = 1 + match stx.auth() {
        Authorization::Single {
            public_key,
            signature,
        } => public_key.as_bytes().len() + signature.as_bytes().len(),
        Authorization::Multisig { approvals } => {
            LEN_PREFIX
                + approvals
                    .iter()
                    .map(|a| a.public_key.as_bytes().len() + a.signature.as_bytes().len())
                    .sum::<usize>()
        }
        Authorization::Unsigned => 0,
    };
    VERSION_BYTE + TX_HEADER + payload + auth
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::crypto::AccountKeypair;
    use dualchain_core::encoding::Canonical;
    use dualchain_core::types::{Address, AssetId, ChainId, CrossChainOp, Output, Transaction};

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
                t.clone().sign(&a),
                t.clone().sign_multisig(&[&a, &b]),
            ] {
                assert_eq!(encoded_len(&stx), stx.to_canonical_bytes().len(), "{stx:?}");
            }
        }
    }
}
