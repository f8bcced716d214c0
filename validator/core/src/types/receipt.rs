//! Receipts: the outcome of every transaction in a block — nothing is dropped silently.

use crate::encoding::{Canonical, Decode, DecodeError, Encode, Reader};
use crate::hash::{Digest, HashDomain, list_root};

use super::account::AssetId;
use super::crosschain::CrossChainFailure;

/// Why a transaction failed. Failed transactions still get a receipt (and, per the
/// executor's rules, may still pay their fee and advance the nonce).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The nonce is not the sender's next nonce.
    BadNonce { expected: u64, got: u64 },
    /// The sender cannot cover the fee in the native asset.
    InsufficientFee { available: u64, fee: u64 },
    /// The sender cannot cover the payload in `asset`.
    InsufficientBalance {
        asset: AssetId,
        available: u64,
        needed: u64,
    },
    /// The approvals do not meet the account's multisig policy.
    BadMultisigAuthorization,
    /// A multisig spend from an account without a multisig policy.
    NotMultisigAccount,
    /// A single-key spend from an account under a multisig policy.
    MultisigRequired,
    /// The signature check failed (the admission verdict was negative).
    InvalidSignature,
    /// Unsigned transaction on a network that does not allow them.
    UnsignedNotAllowed,
    /// The transaction is for the other chain.
    WrongChain,
    /// An amount or balance would overflow.
    Overflow,
    /// The transaction breaks a structural rule the decoder enforces (no or too many
    /// outputs, an invalid multisig policy or approval list). Only transactions built
    /// in memory, never decoded ones, can reach the executor like this.
    Malformed,
    /// A cross-chain operation was refused (which check, in the inner reason).
    CrossChain(CrossChainFailure),
}

impl FailureReason {
    pub fn code(&self) -> &'static str {
        match self {
            FailureReason::BadNonce { .. } => "bad_nonce",
            FailureReason::InsufficientFee { .. } => "insufficient_fee",
            FailureReason::InsufficientBalance { .. } => "insufficient_balance",
            FailureReason::BadMultisigAuthorization => "bad_multisig_authorization",
            FailureReason::NotMultisigAccount => "not_multisig_account",
            FailureReason::MultisigRequired => "multisig_required",
            FailureReason::InvalidSignature => "invalid_signature",
            FailureReason::UnsignedNotAllowed => "unsigned_not_allowed",
            FailureReason::WrongChain => "wrong_chain",
            FailureReason::Overflow => "overflow",
            FailureReason::Malformed => "malformed",
            FailureReason::CrossChain(failure) => failure.code(),
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureReason::BadNonce { expected, got } => {
                write!(f, "bad nonce: expected {expected}, got {got}")
            }
            FailureReason::InsufficientFee { available, fee } => {
                write!(
                    f,
                    "insufficient balance for fee {fee}: {available} available"
                )
            }
            FailureReason::InsufficientBalance {
                asset,
                available,
                needed,
            } => write!(
                f,
                "insufficient {asset}: needed {needed}, {available} available"
            ),
            FailureReason::CrossChain(failure) => write!(f, "cross-chain: {failure}"),
            other => f.write_str(other.code()),
        }
    }
}

impl Encode for FailureReason {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            FailureReason::BadNonce { expected, got } => {
                out.push(0);
                expected.encode_to(out);
                got.encode_to(out);
            }
            FailureReason::InsufficientFee { available, fee } => {
                out.push(1);
                available.encode_to(out);
                fee.encode_to(out);
            }
            FailureReason::InsufficientBalance {
                asset,
                available,
                needed,
            } => {
                out.push(2);
                asset.encode_to(out);
                available.encode_to(out);
                needed.encode_to(out);
            }
            FailureReason::BadMultisigAuthorization => out.push(3),
            FailureReason::NotMultisigAccount => out.push(4),
            FailureReason::MultisigRequired => out.push(5),
            FailureReason::InvalidSignature => out.push(6),
            FailureReason::UnsignedNotAllowed => out.push(7),
            FailureReason::WrongChain => out.push(8),
            FailureReason::Overflow => out.push(9),
            FailureReason::Malformed => out.push(10),
            FailureReason::CrossChain(failure) => {
                out.push(11);
                failure.encode_to(out);
            }
        }
    }
}

impl Decode for FailureReason {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.read_u8("failure reason")? {
            0 => FailureReason::BadNonce {
                expected: r.read_u64("expected nonce")?,
                got: r.read_u64("nonce")?,
            },
            1 => FailureReason::InsufficientFee {
                available: r.read_u64("available")?,
                fee: r.read_u64("fee")?,
            },
            2 => FailureReason::InsufficientBalance {
                asset: Decode::decode_from(r)?,
                available: r.read_u64("available")?,
                needed: r.read_u64("needed")?,
            },
            3 => FailureReason::BadMultisigAuthorization,
            4 => FailureReason::NotMultisigAccount,
            5 => FailureReason::MultisigRequired,
            6 => FailureReason::InvalidSignature,
            7 => FailureReason::UnsignedNotAllowed,
            8 => FailureReason::WrongChain,
            9 => FailureReason::Overflow,
            10 => FailureReason::Malformed,
            11 => FailureReason::CrossChain(Decode::decode_from(r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "failure reason",
                    tag,
                });
            }
        })
    }
}

/// Success, or failure with a reason.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptStatus {
    Success,
    Failed(FailureReason),
}

/// The outcome of one transaction of a block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub tx_digest: Digest,
    pub status: ReceiptStatus,
    /// Fee actually charged (native asset).
    pub fee_charged: u64,
}

impl Receipt {
    pub fn is_success(&self) -> bool {
        self.status == ReceiptStatus::Success
    }

    pub fn digest(&self) -> Digest {
        let mut bytes = Vec::with_capacity(64);
        self.encode_to(&mut bytes);
        HashDomain::Receipt.hash(&bytes)
    }

    /// Positions (increasing) of the receipts of a block that did not succeed.
    pub fn failed_positions(receipts: &[Receipt]) -> Vec<u32> {
        receipts
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_success())
            .map(|(i, _)| u32::try_from(i).expect("a block holds fewer than 2^32 transactions"))
            .collect()
    }

    /// Root over the receipts of a block, in block order.
    pub fn root(receipts: &[Receipt]) -> Digest {
        let digests: Vec<Digest> = receipts.iter().map(Receipt::digest).collect();
        list_root(HashDomain::ReceiptsRoot, &digests)
    }
}

impl Encode for Receipt {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.tx_digest.encode_to(out);
        match &self.status {
            ReceiptStatus::Success => out.push(0),
            ReceiptStatus::Failed(reason) => {
                out.push(1);
                reason.encode_to(out);
            }
        }
        self.fee_charged.encode_to(out);
    }
}

impl Decode for Receipt {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tx_digest = Decode::decode_from(r)?;
        let status = match r.read_u8("receipt status")? {
            0 => ReceiptStatus::Success,
            1 => ReceiptStatus::Failed(Decode::decode_from(r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "receipt status",
                    tag,
                });
            }
        };
        Ok(Self {
            tx_digest,
            status,
            fee_charged: r.read_u64("fee charged")?,
        })
    }
}

impl Canonical for Receipt {
    const NAME: &'static str = "receipt";
    const MAX_ENCODED_LEN: usize = 1 + 32 + 1 + 1 + 4 + 8 + 8 + 8;
}
