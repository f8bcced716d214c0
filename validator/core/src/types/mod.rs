//! The core data types of both chains, each with its canonical encoding.
//!
//! Size limits live next to the types they bound; every decoder enforces them.

mod account;
mod attestation;
mod block;
mod block_sync;
mod chain;
mod crosschain;
mod epoch;
mod genesis;
mod peers;
mod receipt;
mod state_sync;
mod transaction;
mod validator;
mod vertex;

pub use account::{Address, AssetId};
pub use attestation::{
    Attestation, AttestationContext, AttestationError, AttestationId, CertificateCache,
    MAX_ATTESTED_KEY_BYTES, MAX_RECORD_BYTES, RecordProof,
};
pub use block::{
    Block, BlockBody, BlockCertificate, BlockHeader, CertificateError, MAX_BLOCK_BODY_BYTES,
    MAX_BLOCK_TXS, MAX_BLOCK_VERTICES,
};
pub use block_sync::{
    BlockRange, BlockRangeRequest, CertifiedBlock, MAX_BLOCKS_PER_RANGE, MAX_RANGE_ANSWER_BYTES,
};
pub use chain::{ChainId, ConsensusEngine};
pub use crosschain::{
    AttestationRefusal, BlockEvents, CrossChainEvent, CrossChainFailure, CrossChainOp,
    CrossChainParams, GovernanceChange, GovernanceExecution, LockRecord, LockStatus,
    MAX_PARAMETER_NAME, ParameterChange, ParameterName, ParameterRecord, ProposalRecord,
    ProposalStatus, RECORD_PREFIX, RecordKey, RecordKind, StakeRecord, StakeStatus, TxEvent,
    VoteRecord, decode_u64_record, is_attestable,
};
pub use epoch::{
    ADMITTED_LOCK, EpochChainError, EpochRecord, EpochSchedule, MAX_PENDING_SET_CHANGES,
    MemberRecord, PendingSetChanges, SetChange, SetChangeKind, epoch_seed, member_id,
    next_validator_set, set_change_keypair, set_change_message, set_change_op, set_digest,
    validator_set_key, verify_epoch_chain, verify_epoch_chain_of, verify_set_change,
};
pub use genesis::{
    ChainParams, DEFAULT_EPOCH_LENGTH_ALPHA_BLOCKS, Genesis, GenesisAccount, GenesisError,
    GenesisValidator, MAX_EPOCH_LENGTH_ALPHA_BLOCKS, SaxAllocation,
};
pub use peers::PeerEntry;
pub use receipt::{FailureReason, Receipt, ReceiptStatus};
pub use state_sync::{
    MAX_LINKS_PER_ANSWER, MAX_SNAPSHOT_CHUNK_BYTES, SnapshotManifest, StateSyncAnswer,
    StateSyncRequest,
};
pub use transaction::{
    Approval, Authorization, Output, SignedTransaction, Transaction, TxPayload, TxSignatureError,
    Verdict, VerdictSource, limits as tx_limits,
};
pub use validator::{
    MAX_VALIDATORS, ValidatorIndex, ValidatorInfo, ValidatorSet, ValidatorSetError,
};
pub use vertex::{UnsignedVertex, Vertex, VertexError, VertexRef, limits as vertex_limits};
