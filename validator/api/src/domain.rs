//! What a chain offers the API, in domain types: the node implements
//! [`crate::ChainApi`] with these, and only this crate converts them to and from
//! `dualchain.v1` (see `convert`). The validator runtime therefore never sees a
//! protobuf type, and the gRPC contract can change without touching it (the shape of
//! linkerd's policy controller: domain types in the core, proto at the edge).

use dualchain_core::Digest;
use dualchain_core::crypto::NetworkId;
use dualchain_core::types::{BlockCertificate, BlockHeader, ChainId, RecordProof};
use dualchain_merkle::Proof;

/// Health of one chain on a node, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Blocks are being sealed and finalized at the configured rate.
    Healthy,
    /// Making progress, but something is wrong (the reason says what).
    Degraded,
    /// Not paused, yet no block for several block times.
    Stalled,
    /// Not running on this node: starting, paused, shutting down or halted.
    Stopped,
}

/// One chain's status on this node.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainStatus {
    pub chain: ChainId,
    /// Height of the newest executed and committed block.
    pub height: u64,
    /// Height of the newest finalized block (≤ `height`).
    pub finalized_height: u64,
    /// Highest DAG round this node proposed.
    pub round: u64,
    pub epoch: u64,
    pub connected_peers: u32,
    pub mempool_depth: u64,
    pub mempool_capacity: u64,
    pub health: Health,
    /// Why the chain is not healthy (empty when healthy).
    pub health_reason: String,
    pub paused: bool,
    /// When this node committed its head block, Unix ms (0 before the first block).
    pub last_block_time_unix_ms: u64,
    pub latest_state_root: Digest,
    pub head_digest: Digest,
    pub fault_injection_active: bool,
    /// Digest of the validator set of `epoch` (`set_digest`), the same on both chains.
    pub validator_set: Digest,
    /// The head block's epoch: below `epoch` between the chain's boundary and its
    /// first block with the new set, and for good once the validator left the set.
    pub head_epoch: u64,
}

/// Node-wide status; `chains` holds every chain the node runs.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStatus {
    pub node_version: String,
    /// Digest of this validator's ML-DSA-87 public key.
    pub validator_key_digest: Digest,
    /// Index in the current epoch's validator set, if a member.
    pub validator_index: Option<u32>,
    pub epoch: u64,
    pub chains: Vec<ChainStatus>,
    /// Peer id on the p2p network (hex), as partitions name peers.
    pub peer_id: String,
    pub started_at_unix_ms: u64,
    /// The network every signature is bound to (the genesis hash).
    pub network_id: NetworkId,
}

/// The outcome of admitting one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdmissionStatus {
    /// Decoded, verified and queued in the mempool.
    Accepted,
    /// Already pending or already in a block.
    Duplicate,
    /// The mempool is at capacity (transient).
    MempoolFull,
    /// The node cannot serve more within its admission wait limit, or its signature
    /// verification budget is spent; refused before the signature was checked
    /// (transient: retry after the hint).
    Overloaded,
    /// Not a canonical transaction encoding.
    InvalidEncoding,
    InvalidSignature,
    /// The transaction names another chain.
    WrongChain,
    /// Unsigned, and the genesis does not enable the unsigned benchmark mode.
    UnsignedNotAllowed,
    /// Larger than a transaction may be.
    TooLarge,
    /// The nonce is spent: below the sender's next nonce on the committed state.
    NonceTooOld,
    /// The nonce is beyond the window the node accepts ahead of the sender's next one.
    NonceTooNew,
    /// The sender does not exist, or cannot pay the fee plus what it moves.
    InsufficientBalance,
    /// The node sheds load from this sender (transient).
    RateLimited,
    /// Refused by a rule not listed above; the reason says which.
    RejectedOther,
    /// The node failed while processing it; it may be resubmitted.
    InternalError,
}

/// Admission result of one submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The transaction digest, when the bytes decoded.
    pub digest: Option<Digest>,
    pub status: AdmissionStatus,
    /// Human-readable explanation; empty when accepted.
    pub reason: String,
    /// For a transient refusal: how long the node expects to need before it can take
    /// the transaction (0: no hint).
    pub retry_after_ms: u32,
}

impl Admission {
    pub fn accepted(digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            status: AdmissionStatus::Accepted,
            reason: String::new(),
            retry_after_ms: 0,
        }
    }

    pub fn refused(digest: Option<Digest>, status: AdmissionStatus, reason: String) -> Self {
        Self {
            digest,
            status,
            reason,
            retry_after_ms: 0,
        }
    }

    /// A transient refusal with a hint of when to come back.
    pub fn deferred(
        digest: Option<Digest>,
        status: AdmissionStatus,
        reason: String,
        retry_after_ms: u32,
    ) -> Self {
        Self {
            retry_after_ms,
            ..Self::refused(digest, status, reason)
        }
    }
}

/// Why a chain takes no ordinary transaction now, and when to come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorShut {
    pub retry_after_ms: u32,
    pub reason: String,
}

/// A snapshot the chain wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub chain: ChainId,
    pub height: u64,
    /// Absolute path of the file on the node's filesystem.
    pub path: String,
    /// BLAKE3 of the file's bytes.
    pub checksum: [u8; 32],
    pub size_bytes: u64,
    pub state_root: Digest,
    pub created_at_unix_ms: u64,
}

/// Fault injection settings of one chain's transport (already checked against the
/// API's documented limits when they come from a request).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    /// Probability in [0, 1] that an outbound message is dropped.
    pub drop_probability: f64,
    /// Fixed delay added to every outbound message.
    pub added_delay_ms: u32,
    /// Extra uniform random delay per message, on top of `added_delay_ms`.
    pub jitter_ms: u32,
    /// Groups of peers (by peer id) that can reach each other; empty: no partition.
    pub partitions: Vec<Vec<[u8; 32]>>,
    /// Outbound bytes per second on each link (0: no limit).
    pub bandwidth_bytes_per_sec: u64,
    /// Milliseconds added to the chain's wall clock (negative: behind).
    pub clock_skew_ms: i64,
    /// Cleared automatically after this long (0: never).
    pub expires_after_ms: u64,
}

impl FaultPlan {
    /// Whether any fault is in effect.
    pub fn is_active(&self) -> bool {
        self.drop_probability > 0.0
            || self.added_delay_ms > 0
            || self.jitter_ms > 0
            || !self.partitions.is_empty()
            || self.bandwidth_bytes_per_sec > 0
            || self.clock_skew_ms != 0
    }
}

/// A change to a chain's fault injection.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultChange {
    /// Turn every fault off.
    Clear,
    /// Replace the settings in force.
    Set(FaultPlan),
}

/// One state record at a node's head, with its sparse-Merkle proof against the head's
/// state root (inclusion when `value` is set, non-inclusion otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAtHead {
    pub height: u64,
    pub state_root: Digest,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub proof: Proof,
}

/// A page of the attestable records one block changed, with what turns each into an
/// attestation: the block's header and, once the node holds it, its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRecords {
    pub header: BlockHeader,
    pub certificate: Option<BlockCertificate>,
    /// Records from the requested start, in the order the block changed them.
    pub records: Vec<RecordProof>,
    /// Index of the first record of the next page, when more follow.
    pub next_start: Option<u32>,
}

impl BlockRecords {
    /// The page of `all` (a block's records in order) from `start`, at most `limit`.
    pub fn page(
        header: BlockHeader,
        certificate: Option<BlockCertificate>,
        mut all: Vec<RecordProof>,
        start: usize,
        limit: usize,
    ) -> Self {
        let total = all.len();
        let end = total.min(start.saturating_add(limit));
        all.truncate(end);
        let records = if start < end {
            all.split_off(start)
        } else {
            Vec::new()
        };
        Self {
            header,
            certificate,
            records,
            next_start: (end < total).then(|| u32::try_from(end).unwrap_or(u32::MAX)),
        }
    }
}
