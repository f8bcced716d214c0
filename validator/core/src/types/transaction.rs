//! Transactions: what an account asks the chain to do, and how it is authorised.
//!
//! The transaction digest covers the [`Transaction`] only, not its [`Authorization`]:
//! a transaction's identity cannot be changed by re-encoding or re-signing it, which
//! makes deduplication and receipts by digest sound.

use crate::crypto::{AccountKeypair, AccountPublicKey, AccountSignature, NetworkId, SigningDomain};
use crate::encoding::{
    Canonical, Decode, DecodeError, Encode, Reader, check_strictly_increasing, write_vec,
};
use crate::hash::{Digest, HashDomain};

use super::account::{Address, AssetId};
use super::chain::ChainId;
use super::crosschain::CrossChainOp;

/// Size limits of transactions.
pub mod limits {
    /// Outputs of one transfer or multisig spend.
    pub const MAX_OUTPUTS: usize = 256;
    /// Signers of one multisig policy (and approvals of one transaction).
    pub const MAX_MULTISIG_SIGNERS: usize = 16;
    /// Encoded size of one signed transaction of any kind but `Attest` (the gRPC API
    /// documents the same limit).
    pub const MAX_TX_BYTES: usize = 128 * 1024;
    /// Encoded size of one signed `Attest` transaction. An attestation carries a
    /// quorum certificate of ML-DSA-87 signatures (4,629 bytes per signer: 67 signers,
    /// 310 KB, for 100 equal validators) and the attested record, so it is bounded by
    /// the largest attestation the decoder accepts plus an ordinary transaction's room
    /// for the envelope and authorization; every other kind stays under
    /// [`MAX_TX_BYTES`].
    pub const MAX_ATTEST_TX_BYTES: usize =
        MAX_TX_BYTES + <crate::types::Attestation as crate::encoding::Canonical>::MAX_ENCODED_LEN;
}
use limits::*;

/// One recipient of a transfer: `amount` of `asset` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Output {
    pub to: Address,
    pub asset: AssetId,
    pub amount: u64,
}

impl Encode for Output {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.to.encode_to(out);
        self.asset.encode_to(out);
        self.amount.encode_to(out);
    }
}

impl Decode for Output {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            to: Decode::decode_from(r)?,
            asset: Decode::decode_from(r)?,
            amount: r.read_u64("amount")?,
        })
    }
}

const OUTPUT_LEN: usize = 32 + 4 + 8;

/// What a transaction does.
///
/// Tags 0–3 are the account kinds below; tags 16–31 are reserved for the cross-chain
/// kinds: 16–23 are the [`CrossChainOp`]s (sAX lock and unlock, attestations,
/// governance, validator join and leave), the rest are refused by this version's
/// decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxPayload {
    /// Moves funds from the sender to one or many outputs, each in its own asset.
    Transfer { outputs: Vec<Output> },
    /// Destroys `amount` of `asset` from the sender; counted in burned supply.
    Burn { asset: AssetId, amount: u64 },
    /// Puts the sender's account under a `threshold`-of-`signers` policy; from then
    /// on its spends need [`Authorization::Multisig`].
    MultisigConfigure {
        threshold: u8,
        signers: Vec<Address>,
    },
    /// A transfer out of a multisig account, authorised by its signers' approvals.
    MultisigSpend { outputs: Vec<Output> },
    /// A cross-chain operation (tags 16–21).
    CrossChain(CrossChainOp),
}

impl TxPayload {
    /// The largest canonical encoding of a signed transaction of this kind:
    /// [`MAX_ATTEST_TX_BYTES`] for attestations, [`MAX_TX_BYTES`] for every other kind.
    pub fn max_encoded_len(&self) -> usize {
        match self {
            TxPayload::CrossChain(CrossChainOp::Attest(_)) => MAX_ATTEST_TX_BYTES,
            _ => MAX_TX_BYTES,
        }
    }

    const TRANSFER: u8 = 0;
    const BURN: u8 = 1;
    const MULTISIG_CONFIGURE: u8 = 2;
    const MULTISIG_SPEND: u8 = 3;
    /// First tag of the range reserved for cross-chain kinds.
    pub const RESERVED_CROSS_CHAIN: std::ops::RangeInclusive<u8> = 16..=31;

    /// The outputs of a transfer-like payload (empty for others).
    pub fn outputs(&self) -> &[Output] {
        match self {
            TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => outputs,
            _ => &[],
        }
    }
}

fn decode_outputs(r: &mut Reader<'_>) -> Result<Vec<Output>, DecodeError> {
    let outputs: Vec<Output> = r.read_vec(MAX_OUTPUTS, OUTPUT_LEN, "outputs")?;
    if outputs.is_empty() {
        return Err(DecodeError::Invalid {
            what: "outputs",
            detail: "a transfer needs at least one output".into(),
        });
    }
    Ok(outputs)
}

impl Encode for TxPayload {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            TxPayload::Transfer { outputs } => {
                out.push(Self::TRANSFER);
                write_vec(out, outputs);
            }
            TxPayload::Burn { asset, amount } => {
                out.push(Self::BURN);
                asset.encode_to(out);
                amount.encode_to(out);
            }
            TxPayload::MultisigConfigure { threshold, signers } => {
                out.push(Self::MULTISIG_CONFIGURE);
                threshold.encode_to(out);
                write_vec(out, signers);
            }
            TxPayload::MultisigSpend { outputs } => {
                out.push(Self::MULTISIG_SPEND);
                write_vec(out, outputs);
            }
            TxPayload::CrossChain(op) => {
                out.push(op.tag());
                op.encode_body(out);
            }
        }
    }
}

impl Decode for TxPayload {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8("transaction kind")? {
            Self::TRANSFER => Ok(TxPayload::Transfer {
                outputs: decode_outputs(r)?,
            }),
            Self::BURN => Ok(TxPayload::Burn {
                asset: Decode::decode_from(r)?,
                amount: r.read_u64("burn amount")?,
            }),
            Self::MULTISIG_CONFIGURE => {
                let threshold = r.read_u8("multisig threshold")?;
                let signers: Vec<Address> =
                    r.read_vec(MAX_MULTISIG_SIGNERS, 32, "multisig signers")?;
                check_strictly_increasing(signers.iter(), "multisig signers")?;
                if threshold == 0 || usize::from(threshold) > signers.len() {
                    return Err(DecodeError::Invalid {
                        what: "multisig policy",
                        detail: format!(
                            "threshold {threshold} must be between 1 and the {} signers",
                            signers.len()
                        ),
                    });
                }
                Ok(TxPayload::MultisigConfigure { threshold, signers })
            }
            Self::MULTISIG_SPEND => Ok(TxPayload::MultisigSpend {
                outputs: decode_outputs(r)?,
            }),
            tag if CrossChainOp::is_tag(tag) => {
                Ok(TxPayload::CrossChain(CrossChainOp::decode_body(tag, r)?))
            }
            tag => Err(DecodeError::UnknownTag {
                what: "transaction kind",
                tag,
            }),
        }
    }
}

/// The signed content of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub chain: ChainId,
    /// The account whose nonce advances and which pays the fee.
    pub sender: Address,
    /// Must equal the sender's next nonce when executed.
    pub nonce: u64,
    /// Fee in the native asset, charged even if the payload fails.
    pub fee: u64,
    pub payload: TxPayload,
}

impl Transaction {
    /// The transaction's identity: BLAKE3 (transaction domain) of its encoding.
    pub fn digest(&self) -> Digest {
        self.measure().0
    }

    /// The digest and the length of the encoding it hashes (one encoding for both).
    fn measure(&self) -> (Digest, usize) {
        let mut bytes = Vec::with_capacity(128);
        self.encode_to(&mut bytes);
        (HashDomain::Transaction.hash(&bytes), bytes.len())
    }

    /// Signs as a single-key account for `network`. The sender must be
    /// `Address::of(key.public())`.
    pub fn sign(self, key: &AccountKeypair, network: NetworkId) -> SignedTransaction {
        let (digest, tx_len) = self.measure();
        let signature = key.sign(SigningDomain::Transaction.on(network), digest.as_bytes());
        let auth = Authorization::Single {
            public_key: key.public().clone(),
            signature,
        };
        SignedTransaction::assemble(self, auth, digest, tx_len)
    }

    /// Approves with several signers of a multisig policy, for `network`.
    pub fn sign_multisig(self, keys: &[&AccountKeypair], network: NetworkId) -> SignedTransaction {
        let (digest, tx_len) = self.measure();
        let mut approvals: Vec<Approval> = keys
            .iter()
            .map(|k| Approval {
                public_key: k.public().clone(),
                signature: k.sign(SigningDomain::Transaction.on(network), digest.as_bytes()),
            })
            .collect();
        approvals.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        approvals.dedup_by(|a, b| a.public_key == b.public_key);
        let auth = Authorization::Multisig { approvals };
        SignedTransaction::assemble(self, auth, digest, tx_len)
    }

    /// Leaves the transaction unsigned: valid only on a network whose genesis enables
    /// the unsigned benchmark mode.
    pub fn unsigned(self) -> SignedTransaction {
        let (digest, tx_len) = self.measure();
        SignedTransaction::assemble(self, Authorization::Unsigned, digest, tx_len)
    }
}

impl Encode for Transaction {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.chain.encode_to(out);
        self.sender.encode_to(out);
        self.nonce.encode_to(out);
        self.fee.encode_to(out);
        self.payload.encode_to(out);
    }
}

impl Decode for Transaction {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            chain: Decode::decode_from(r)?,
            sender: Decode::decode_from(r)?,
            nonce: r.read_u64("nonce")?,
            fee: r.read_u64("fee")?,
            payload: Decode::decode_from(r)?,
        })
    }
}

/// One signer's approval of a multisig transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub public_key: AccountPublicKey,
    pub signature: AccountSignature,
}

impl Encode for Approval {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.public_key.encode_to(out);
        self.signature.encode_to(out);
    }
}

impl Decode for Approval {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            public_key: Decode::decode_from(r)?,
            signature: Decode::decode_from(r)?,
        })
    }
}

/// How a transaction is authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// The sender's own key.
    Single {
        public_key: AccountPublicKey,
        signature: AccountSignature,
    },
    /// Approvals of signers of the sender's multisig policy, sorted by public key.
    /// Whether they meet the policy is checked at execution, against the state.
    Multisig { approvals: Vec<Approval> },
    /// No signature: the benchmark mode a genesis flag must enable explicitly.
    Unsigned,
}

impl Authorization {
    /// The length of `encode_to`'s output, from its shape: a tag, then raw keys and
    /// signatures (the multisig list with its length prefix).
    fn encoded_len(&self) -> usize {
        let approval = |key: &AccountPublicKey, signature: &AccountSignature| {
            key.as_bytes().len() + signature.as_bytes().len()
        };
        1 + match self {
            Authorization::Single {
                public_key,
                signature,
            } => approval(public_key, signature),
            Authorization::Multisig { approvals } => {
                4 + approvals
                    .iter()
                    .map(|a| approval(&a.public_key, &a.signature))
                    .sum::<usize>()
            }
            Authorization::Unsigned => 0,
        }
    }
}

impl Encode for Authorization {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Authorization::Single {
                public_key,
                signature,
            } => {
                out.push(0);
                public_key.encode_to(out);
                signature.encode_to(out);
            }
            Authorization::Multisig { approvals } => {
                out.push(1);
                write_vec(out, approvals);
            }
            Authorization::Unsigned => out.push(2),
        }
    }
}

impl Decode for Authorization {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8("authorization")? {
            0 => Ok(Authorization::Single {
                public_key: Decode::decode_from(r)?,
                signature: Decode::decode_from(r)?,
            }),
            1 => {
                let approvals: Vec<Approval> =
                    r.read_vec(MAX_MULTISIG_SIGNERS, 1312 + 2420, "multisig approvals")?;
                if approvals.is_empty() {
                    return Err(DecodeError::Invalid {
                        what: "multisig approvals",
                        detail: "at least one approval is needed".into(),
                    });
                }
                check_strictly_increasing(
                    approvals.iter().map(|a| &a.public_key),
                    "multisig approvals",
                )?;
                Ok(Authorization::Multisig { approvals })
            }
            2 => Ok(Authorization::Unsigned),
            tag => Err(DecodeError::UnknownTag {
                what: "authorization",
                tag,
            }),
        }
    }
}

/// Why a transaction's signatures were refused at admission.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TxSignatureError {
    #[error("the signing key's address {key_address} is not the sender {sender}")]
    SenderMismatch {
        sender: Address,
        key_address: Address,
    },
    #[error("invalid signature: {0}")]
    Invalid(#[from] crate::crypto::SignatureError),
    #[error("invalid signature of multisig approval {index}: {source}")]
    InvalidApproval {
        index: usize,
        source: crate::crypto::SignatureError,
    },
    #[error(
        "unsigned transactions are refused: this network's genesis does not enable the unsigned benchmark mode"
    )]
    UnsignedNotAllowed,
}

/// The outcome of a transaction's stateless signature check, as admission and
/// execution both use it (computed once, by the execution crate's verifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Valid,
    /// A signature does not verify, or the key is not the sender's.
    Invalid,
    /// Unsigned, on a network whose genesis does not enable the benchmark mode.
    UnsignedNotAllowed,
}

impl From<&Result<(), TxSignatureError>> for Verdict {
    fn from(result: &Result<(), TxSignatureError>) -> Self {
        match result {
            Ok(()) => Verdict::Valid,
            Err(TxSignatureError::UnsignedNotAllowed) => Verdict::UnsignedNotAllowed,
            Err(_) => Verdict::Invalid,
        }
    }
}

/// Something that judges transactions' signatures (the execution crate's cached
/// verifier in a node), so components that only consume verdicts (the mempool) need
/// not depend on who computes them.
pub trait VerdictSource {
    fn verdict(&self, tx: &SignedTransaction) -> Verdict;
}

/// A transaction with its authorisation and its (cached) digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    tx: Transaction,
    auth: Authorization,
    digest: Digest,
    /// Bytes of `encode_to` (transaction and authorisation, no version byte), known
    /// for free at decode: batches, vertices and blocks are sized without re-encoding.
    encoded_len: u32,
}

/// Offset of the payload's kind tag in a canonical transaction: version, chain,
/// sender, nonce and fee come first, all of fixed size.
const KIND_TAG_OFFSET: usize = 1 + 1 + 32 + 8 + 8;

impl SignedTransaction {
    /// The size limit of the transaction that `bytes` encode, read from its kind tag
    /// without decoding, so that an admission refuses bytes above it before spending
    /// work on them (bytes too short to hold a tag get the ordinary limit).
    pub fn max_len_of_encoding(bytes: &[u8]) -> usize {
        match bytes.get(KIND_TAG_OFFSET) {
            Some(&tag) if tag == CrossChainOp::ATTEST => MAX_ATTEST_TX_BYTES,
            _ => MAX_TX_BYTES,
        }
    }

    /// Whether `error`, from decoding a transaction, says it is larger than its
    /// kind's limit (an admission answers that as "too large", not "malformed").
    pub fn is_oversize(error: &DecodeError) -> bool {
        matches!(error, DecodeError::TooLong { what, .. } if *what == Self::NAME)
    }

    pub fn new(tx: Transaction, auth: Authorization) -> Self {
        let (digest, tx_len) = tx.measure();
        Self::assemble(tx, auth, digest, tx_len)
    }

    /// A transaction built locally (not decoded), from its digest and the length of
    /// the transaction's encoding that the digest hashed.
    fn assemble(tx: Transaction, auth: Authorization, digest: Digest, tx_len: usize) -> Self {
        let encoded_len =
            u32::try_from(tx_len + auth.encoded_len()).expect("a transaction is far below 4 GiB");
        Self {
            tx,
            auth,
            digest,
            encoded_len,
        }
    }

    /// The length of [`Encode::encode_to`]'s output (what a vertex or block body
    /// holds per transaction), without encoding.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len as usize
    }

    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    pub fn auth(&self) -> &Authorization {
        &self.auth
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn is_unsigned(&self) -> bool {
        matches!(self.auth, Authorization::Unsigned)
    }

    /// The stateless signature check done once at admission: the key matches the
    /// sender and every signature verifies over the digest in the transaction domain
    /// of `network`. Multisig policy membership is a state question, left to the
    /// executor.
    pub fn verify_signatures(
        &self,
        network: NetworkId,
        allow_unsigned: bool,
    ) -> Result<(), TxSignatureError> {
        self.verify_signatures_with(network, allow_unsigned, |key| key.clone())
    }

    /// [`SignedTransaction::verify_signatures`], verifying with the key `intern`
    /// returns for each public key. `intern` must return a key with the same bytes; a
    /// verifier passes a long-lived copy whose expanded ML-DSA key is already
    /// computed (expansion is a large share of a verification, and a sender's key
    /// arrives again in every transaction it sends).
    pub fn verify_signatures_with(
        &self,
        network: NetworkId,
        allow_unsigned: bool,
        intern: impl Fn(&AccountPublicKey) -> AccountPublicKey,
    ) -> Result<(), TxSignatureError> {
        let message = self.digest.as_bytes();
        match &self.auth {
            Authorization::Single {
                public_key,
                signature,
            } => {
                let key_address = Address::of(public_key);
                if key_address != self.tx.sender {
                    return Err(TxSignatureError::SenderMismatch {
                        sender: self.tx.sender,
                        key_address,
                    });
                }
                let key = intern(public_key);
                debug_assert_eq!(key.as_bytes(), public_key.as_bytes());
                key.verify(SigningDomain::Transaction.on(network), message, signature)?;
                Ok(())
            }
            Authorization::Multisig { approvals } => {
                for (index, a) in approvals.iter().enumerate() {
                    intern(&a.public_key)
                        .verify(
                            SigningDomain::Transaction.on(network),
                            message,
                            &a.signature,
                        )
                        .map_err(|source| TxSignatureError::InvalidApproval { index, source })?;
                }
                Ok(())
            }
            Authorization::Unsigned if allow_unsigned => Ok(()),
            Authorization::Unsigned => Err(TxSignatureError::UnsignedNotAllowed),
        }
    }
}

impl Encode for SignedTransaction {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.tx.encode_to(out);
        self.auth.encode_to(out);
    }
}

impl Decode for SignedTransaction {
    /// Refuses a transaction larger than its kind's limit
    /// ([`TxPayload::max_encoded_len`]) with [`DecodeError::TooLong`], wherever it is
    /// read: API, mempool or a peer's vertex.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.rest();
        let tx = Transaction::decode_from(r)?;
        let tx_bytes = &start[..start.len() - r.remaining()];
        let digest = HashDomain::Transaction.hash(tx_bytes);
        let auth = Authorization::decode_from(r)?;
        // The limits are on the canonical encoding: a version byte before what is read
        // here (a vertex carries its transactions without it).
        let len = 1 + start.len() - r.remaining();
        let max = tx.payload.max_encoded_len();
        if len > max {
            return Err(DecodeError::TooLong {
                what: Self::NAME,
                len,
                max,
            });
        }
        Ok(Self {
            tx,
            auth,
            digest,
            encoded_len: (len - 1) as u32,
        })
    }
}

impl Canonical for SignedTransaction {
    const NAME: &'static str = "transaction";
    /// The largest of any kind; [`TxPayload::max_encoded_len`] is the limit of each.
    const MAX_ENCODED_LEN: usize = MAX_ATTEST_TX_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: NetworkId = NetworkId(Digest([0x11; 32]));

    fn key(seed: u8) -> AccountKeypair {
        AccountKeypair::from_seed(&[seed; 32])
    }

    fn transfer(from: &AccountKeypair, nonce: u64) -> Transaction {
        Transaction {
            chain: ChainId::Delta,
            sender: Address::of(from.public()),
            nonce,
            fee: 10,
            payload: TxPayload::Transfer {
                outputs: vec![
                    Output {
                        to: Address([1; 32]),
                        asset: AssetId::NATIVE,
                        amount: 5,
                    },
                    Output {
                        to: Address([2; 32]),
                        asset: AssetId(7),
                        amount: 9,
                    },
                ],
            },
        }
    }

    #[test]
    fn signed_transfer_round_trips_and_verifies() {
        let k = key(1);
        let stx = transfer(&k, 0).sign(&k, NET);
        let bytes = stx.to_canonical_bytes();
        let back = SignedTransaction::from_canonical_bytes(&bytes).unwrap();
        assert_eq!(back, stx);
        assert_eq!(back.digest(), stx.tx().digest());
        back.verify_signatures(NET, false).unwrap();
    }

    #[test]
    fn a_transaction_signed_for_another_network_fails() {
        let k = key(1);
        let elsewhere = NetworkId(Digest([0x12; 32]));
        let single = transfer(&k, 0).sign(&k, elsewhere);
        assert!(matches!(
            single.verify_signatures(NET, false),
            Err(TxSignatureError::Invalid(_))
        ));
        let multi = transfer(&k, 1).sign_multisig(&[&k], elsewhere);
        assert!(matches!(
            multi.verify_signatures(NET, false),
            Err(TxSignatureError::InvalidApproval { index: 0, .. })
        ));
        single.verify_signatures(elsewhere, false).unwrap();
    }

    #[test]
    fn encoded_len_is_the_length_of_the_encoding_built_or_decoded() {
        let (a, b) = (key(1), key(2));
        let built = [
            transfer(&a, 0).sign(&a, NET),
            transfer(&a, 1).sign_multisig(&[&a, &b], NET),
            transfer(&a, 2).unsigned(),
        ];
        for stx in built {
            let mut bytes = Vec::new();
            stx.encode_to(&mut bytes);
            assert_eq!(stx.encoded_len(), bytes.len());
            let decoded =
                SignedTransaction::from_canonical_bytes(&stx.to_canonical_bytes()).unwrap();
            assert_eq!(decoded.encoded_len(), bytes.len());
        }
    }

    #[test]
    fn signature_of_another_transaction_or_key_fails() {
        let k = key(1);
        let stx = transfer(&k, 0).sign(&k, NET);
        let Authorization::Single { signature, .. } = stx.auth().clone() else {
            unreachable!()
        };
        let replay = SignedTransaction::new(
            transfer(&k, 1),
            Authorization::Single {
                public_key: k.public().clone(),
                signature,
            },
        );
        assert!(matches!(
            replay.verify_signatures(NET, false),
            Err(TxSignatureError::Invalid(_))
        ));
        let other = key(2);
        let wrong_sender = transfer(&k, 0).sign(&other, NET);
        assert!(matches!(
            wrong_sender.verify_signatures(NET, false),
            Err(TxSignatureError::SenderMismatch { .. })
        ));
    }

    #[test]
    fn unsigned_needs_the_flag() {
        let stx = transfer(&key(1), 0).unsigned();
        assert_eq!(
            stx.verify_signatures(NET, false),
            Err(TxSignatureError::UnsignedNotAllowed)
        );
        stx.verify_signatures(NET, true).unwrap();
    }

    #[test]
    fn multisig_approvals_verify_and_are_canonical() {
        let (a, b) = (key(3), key(4));
        let tx = Transaction {
            payload: TxPayload::MultisigSpend {
                outputs: vec![Output {
                    to: Address([9; 32]),
                    asset: AssetId::NATIVE,
                    amount: 1,
                }],
            },
            ..transfer(&a, 0)
        };
        let stx = tx.sign_multisig(&[&b, &a], NET);
        stx.verify_signatures(NET, false).unwrap();
        let bytes = stx.to_canonical_bytes();
        assert_eq!(
            SignedTransaction::from_canonical_bytes(&bytes).unwrap(),
            stx
        );
        // Swapping the two approvals gives a non-canonical encoding.
        let Authorization::Multisig { mut approvals } = stx.auth().clone() else {
            unreachable!()
        };
        approvals.swap(0, 1);
        let swapped =
            SignedTransaction::new(stx.tx().clone(), Authorization::Multisig { approvals });
        assert!(matches!(
            SignedTransaction::from_canonical_bytes(&swapped.to_canonical_bytes()),
            Err(DecodeError::NonCanonical { .. })
        ));
    }

    #[test]
    fn multisig_policy_rules_are_enforced_by_the_decoder() {
        let mut tx = transfer(&key(1), 0);
        let mut signers = vec![Address([2; 32]), Address([1; 32])];
        tx.payload = TxPayload::MultisigConfigure {
            threshold: 1,
            signers: signers.clone(),
        };
        let bytes = tx.clone().unsigned().to_canonical_bytes();
        assert!(matches!(
            SignedTransaction::from_canonical_bytes(&bytes),
            Err(DecodeError::NonCanonical { .. })
        ));
        signers.sort();
        for threshold in [0, 3] {
            tx.payload = TxPayload::MultisigConfigure {
                threshold,
                signers: signers.clone(),
            };
            let bytes = tx.clone().unsigned().to_canonical_bytes();
            assert!(matches!(
                SignedTransaction::from_canonical_bytes(&bytes),
                Err(DecodeError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn cross_chain_kinds_roundtrip_and_the_rest_of_the_range_is_refused() {
        use crate::crypto::{SigningDomain, ValidatorKeypair};
        use crate::types::{GovernanceChange, ParameterChange, ParameterName};
        let validator = ValidatorKeypair::from_seed(&[5; 32]);
        let ops = [
            CrossChainOp::SaxLock {
                amount: 5,
                unlock_at_ms: 6,
            },
            CrossChainOp::SaxUnlock {
                lock: Digest([1; 32]),
            },
            CrossChainOp::Propose {
                change: ParameterChange {
                    name: ParameterName::new("gov.id").unwrap(),
                    value: 2,
                }
                .into(),
                voting_period_ms: 3,
            },
            CrossChainOp::Propose {
                change: GovernanceChange::ValidatorStake {
                    member: Digest([4; 32]),
                    stake: 7,
                },
                voting_period_ms: 3,
            },
            CrossChainOp::Propose {
                change: GovernanceChange::RemoveValidator {
                    member: Digest([4; 32]),
                },
                voting_period_ms: 3,
            },
            CrossChainOp::Vote {
                proposal: Digest([2; 32]),
                approve: true,
            },
            CrossChainOp::FinalizeProposal {
                proposal: Digest([3; 32]),
            },
            CrossChainOp::ValidatorJoin {
                key: validator.public().clone(),
                lock: Digest([4; 32]),
                proof: validator.sign(SigningDomain::ValidatorSetChange.on(NET), b"join"),
            },
            CrossChainOp::ValidatorLeave {
                key: validator.public().clone(),
                proof: validator.sign(SigningDomain::ValidatorSetChange.on(NET), b"leave"),
            },
        ];
        for op in ops {
            let mut tx = transfer(&key(1), 0);
            tx.payload = TxPayload::CrossChain(op);
            let signed = tx.sign(&key(1), NET);
            let bytes = signed.to_canonical_bytes();
            assert_eq!(
                SignedTransaction::from_canonical_bytes(&bytes).unwrap(),
                signed
            );
        }

        let mut bytes = transfer(&key(1), 0).unsigned().to_canonical_bytes();
        let payload_tag_at = 1 + 1 + 32 + 8 + 8;
        assert_eq!(bytes[payload_tag_at], TxPayload::TRANSFER);
        for tag in [24, *TxPayload::RESERVED_CROSS_CHAIN.end(), 4, 15] {
            bytes[payload_tag_at] = tag;
            assert!(matches!(
                SignedTransaction::from_canonical_bytes(&bytes),
                Err(DecodeError::UnknownTag { .. })
            ));
        }
    }
}
