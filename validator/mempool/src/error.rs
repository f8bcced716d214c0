//! Why a transaction was refused, and errors building a mempool.

use dualchain_core::hash::Digest;
use dualchain_core::types::{Address, ChainId};

/// Why admission refused a transaction. Every refusal is one of these: the pool never
/// drops a submitted transaction without telling the submitter.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Rejection {
    #[error("transaction is for the {tx_chain} chain; this mempool serves {pool_chain}")]
    WrongChain {
        tx_chain: ChainId,
        pool_chain: ChainId,
    },
    #[error("transaction is {size} bytes encoded, over the limit of {limit}")]
    Oversize { size: usize, limit: usize },
    #[error("transaction signature is invalid or not the sender's")]
    InvalidSignature,
    #[error(
        "unsigned transactions are refused: this network's genesis does not enable the unsigned benchmark mode"
    )]
    UnsignedNotAllowed,
    #[error("transaction {digest} is already pending")]
    DuplicatePending { digest: Digest },
    #[error("transaction {digest} was recently proposed or included")]
    DuplicateIncluded { digest: Digest },
    #[error("sender {sender} already has another pending transaction with nonce {nonce}")]
    NonceConflict { sender: Address, nonce: u64 },
    #[error("sender {sender} already has {cap} pending transactions, its cap")]
    SenderCapReached { sender: Address, cap: usize },
    #[error("mempool full ({max_txs} transactions / {max_bytes} bytes)")]
    Full { max_txs: usize, max_bytes: usize },
}

/// The rejection kinds, as metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    WrongChain,
    Oversize,
    InvalidSignature,
    UnsignedNotAllowed,
    DuplicatePending,
    DuplicateIncluded,
    NonceConflict,
    SenderCap,
    Full,
}

impl RejectReason {
    pub const ALL: [RejectReason; 9] = [
        RejectReason::WrongChain,
        RejectReason::Oversize,
        RejectReason::InvalidSignature,
        RejectReason::UnsignedNotAllowed,
        RejectReason::DuplicatePending,
        RejectReason::DuplicateIncluded,
        RejectReason::NonceConflict,
        RejectReason::SenderCap,
        RejectReason::Full,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::WrongChain => "wrong_chain",
            RejectReason::Oversize => "oversize",
            RejectReason::InvalidSignature => "invalid_signature",
            RejectReason::UnsignedNotAllowed => "unsigned_not_allowed",
            RejectReason::DuplicatePending => "duplicate_pending",
            RejectReason::DuplicateIncluded => "duplicate_included",
            RejectReason::NonceConflict => "nonce_conflict",
            RejectReason::SenderCap => "sender_cap",
            RejectReason::Full => "full",
        }
    }

    /// Position in [`RejectReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl Rejection {
    pub fn reason(&self) -> RejectReason {
        match self {
            Rejection::WrongChain { .. } => RejectReason::WrongChain,
            Rejection::Oversize { .. } => RejectReason::Oversize,
            Rejection::InvalidSignature => RejectReason::InvalidSignature,
            Rejection::UnsignedNotAllowed => RejectReason::UnsignedNotAllowed,
            Rejection::DuplicatePending { .. } => RejectReason::DuplicatePending,
            Rejection::DuplicateIncluded { .. } => RejectReason::DuplicateIncluded,
            Rejection::NonceConflict { .. } => RejectReason::NonceConflict,
            Rejection::SenderCapReached { .. } => RejectReason::SenderCap,
            Rejection::Full { .. } => RejectReason::Full,
        }
    }

    /// Whether retrying later can succeed (the pool or the sender's lane drains).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Rejection::Full { .. } | Rejection::SenderCapReached { .. }
        )
    }
}

/// Errors building a mempool.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("registering mempool metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
