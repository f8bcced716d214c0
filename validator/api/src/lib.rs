//! The validator's outward face: the `dualchain.v1` gRPC server of one chain (plus
//! `grpc.health.v1` and server reflection) and the Prometheus `/metrics` endpoint.
//!
//! The node implements [`ChainApi`] for each chain it runs; this crate turns that into
//! tonic services, so the gRPC plumbing (request validation, limits, streaming, admin
//! token, health) is tested here against a fake chain, without RocksDB or consensus.
//!
//! # Entry points
//!
//! - [`serve_api`] / [`serve_api_on`]: one tonic server for one chain with the
//!   `Transactions`, `Node` and `CrossChain` services, `grpc.health.v1` and server
//!   reflection (v1 and v1alpha), until a shutdown future completes; and, on a listener
//!   of its own ([`ApiListeners::admin`]: loopback, or TLS with [`ApiOptions::admin_tls`]),
//!   the `Admin` service behind a bearer token checked against
//!   [`ApiOptions::admin_token`] (the token or its BLAKE3 digest).
//! - [`serve_metrics`] / [`serve_metrics_on`]: `GET /metrics` (Prometheus text
//!   format) and `GET /healthz` over HTTP/1.1.
//!
//! # Module map
//!
//! - `server`: options, error type, the serve functions and graceful shutdown;
//! - `admin_server`: the `Admin` service's own listener (loopback, or TLS);
//! - `chain`: which chain a request names, against the chain this port serves;
//! - `status`: every [`ApiError`] → `tonic::Status` mapping, in one place;
//! - [`domain`]: what [`ChainApi`] speaks (status, admissions, snapshots, fault
//!   plans), free of protobuf types;
//! - `convert`: core block/certificate types → proto messages, and domain types ↔
//!   proto messages (the only place either meets the wire format);
//! - `transactions`, `node`, `finality`, `ordering`, `admin`, `crosschain`: the
//!   service implementations;
//! - `oversize`: oversized requests → RESOURCE_EXHAUSTED, as the contract says;
//! - `faults`: validation of `FaultInjection` against the documented limits;
//! - `health`: `grpc.health.v1` statuses (`""` and `dualchain.v1.Node`);
//! - `request_metrics`: per-method request counters and latencies;
//! - `metrics_http`: the Prometheus endpoint.

use std::sync::Arc;

use bytes::Bytes;
use dualchain_core::types::{Attestation, Block, BlockCertificate, BlockEvents, ChainId};

mod admin;
mod admin_server;
mod call_limits;
mod chain;
mod connections;
mod convert;
mod crosschain;
pub mod domain;
mod faults;
mod finality;
mod health;
mod metrics_http;
mod node;
mod ordering;
mod oversize;
mod request_metrics;
mod server;
mod status;
mod submit_door;
mod transactions;

pub use admin::AdminCredential;
pub use admin_server::{
    ADMIN_MAX_CONNECTIONS, ADMIN_MAX_CONNECTIONS_PER_IP, AdminTls, check_admin_placement,
    install_crypto_provider,
};
pub use call_limits::CallLimits;
pub use chain::{from_proto as chain_from_proto, to_proto as chain_to_proto};
pub use connections::{ApiConnectInfo, ConnectionLimits, LimitedConnection, MIN_IDLE_TO_EVICT};
pub use convert::{block_to_proto, finality_event, health_from_proto, ordering_events};
pub use domain::{
    Admission, AdmissionStatus, BlockRecords, ChainStatus, DoorShut, FaultChange, FaultPlan,
    Health, NodeStatus, RecordAtHead, SnapshotInfo,
};
pub use faults::{FaultValidationError, validate_fault_injection};
pub use metrics_http::{MetricsServeError, serve_metrics, serve_metrics_on};
pub use server::{
    ApiListeners, ApiOptions, ApiServeError, DEFAULT_MAX_REPLAY_BLOCKS, serve_api, serve_api_on,
};

/// A consensus commit: transactions whose order (and so whose result) became fixed on
/// this node, before any block holds them. `Node.StreamOrdering` streams these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderedCommit {
    /// Epoch of the consensus instance that committed.
    pub epoch: u64,
    /// Position in the epoch's committed sequence.
    pub sequence: u64,
    /// Wall-clock time (unix ms) this node committed.
    pub ordered_at_unix_ms: u64,
    /// The commit's consensus timestamp (the same on every node).
    pub commit_timestamp_ms: u64,
    /// Digests of the committed transactions, in commit order.
    pub tx_digests: Vec<dualchain_core::Digest>,
}

/// A block the chain has executed and committed (BFT-final), as the API sees it.
#[derive(Clone, Debug)]
pub struct FinalizedBlock {
    /// Header (with executed state and receipts roots) and body.
    pub block: Arc<Block>,
    /// The block certificate, once 2f+1 validators signed the executed header.
    pub certificate: Option<BlockCertificate>,
    /// Wall-clock time (unix ms) this node committed the block.
    pub finalized_at_unix_ms: u64,
    /// Blocks committed on top of this one, including itself, when the event was made.
    pub confirmation_depth: u32,
    /// The block's cross-chain events (`sax_lock_attested`, `governance_executed`, …),
    /// streamed with its finality event.
    pub events: Arc<BlockEvents>,
    /// Positions in the block of the transactions whose receipts did not succeed,
    /// increasing (what a client needs to tell goodput from final failures).
    pub failed_txs: Arc<[u32]>,
}

/// Why a chain refused an API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A conflicting operation is running (e.g. a snapshot of this chain is already
    /// being written); retrying later may succeed.
    #[error("{0}")]
    Aborted(String),
    /// A resource ran out (e.g. the data volume is full).
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What one chain of a running validator offers the API, in domain types (see
/// [`domain`]); the conversions to `dualchain.v1` live in this crate only.
/// Implemented by the node; every method is cheap or bounded unless documented as
/// blocking.
pub trait ChainApi: Send + Sync + 'static {
    /// The chain this API port serves.
    fn chain(&self) -> ChainId;

    /// Node-wide status; `chains` holds at least this chain.
    fn node_status(&self) -> NodeStatus;

    /// Admits canonical transaction bytes into the mempool, one result per input in
    /// order. CPU-bound (decoding and signature verification): call from a blocking
    /// context.
    fn submit(&self, transactions: &[Bytes]) -> Vec<Admission>;

    /// `Some` while the chain takes no ordinary transaction at all (overloaded): the
    /// API then refuses `Transactions` calls before decoding them. Cheap: it is
    /// asked on every such call.
    fn door_shut(&self) -> Option<DoorShut> {
        None
    }

    /// Transactions waiting in the mempool.
    fn mempool_depth(&self) -> u64;

    /// The committed block at `height` (None above the head or below what is kept).
    fn block(&self, height: u64) -> Result<Option<FinalizedBlock>, ApiError>;

    /// Height of the newest committed block (0 = genesis only).
    fn finalized_height(&self) -> u64;

    /// Live finality events, one per committed block, in height order.
    fn subscribe_finality(&self) -> tokio::sync::broadcast::Receiver<FinalizedBlock>;

    /// Live consensus commits, in commit order (no replay: commits are not kept).
    fn subscribe_ordering(&self) -> tokio::sync::broadcast::Receiver<Arc<OrderedCommit>>;

    /// `SERVING` readiness: store open, peers joined, not paused, not catching up.
    fn ready(&self) -> bool;

    /// Stops proposing and sealing; returns (already paused, height).
    fn pause(&self, reason: &str) -> Result<(bool, u64), ApiError>;

    /// Resumes after [`ChainApi::pause`]; returns (already running, height).
    fn resume(&self) -> Result<(bool, u64), ApiError>;

    /// Writes a snapshot of the chain's state. Blocking (seconds on big states).
    fn snapshot(&self) -> Result<SnapshotInfo, ApiError>;

    /// Replaces the chain's fault injection, or clears it; returns the settings now
    /// in force.
    fn set_faults(&self, change: FaultChange) -> Result<FaultPlan, ApiError>;

    /// The fault injection in force.
    fn faults(&self) -> FaultPlan;

    /// Size of the validator set of `epoch`, for `BlockCertificate.validator_count`
    /// (clients compare it with the signer count). `None` when unknown, which the
    /// API reports as 0; the default exists so implementations without epoch
    /// history still compile.
    fn validator_count(&self, epoch: u64) -> Option<u32> {
        let _ = epoch;
        None
    }

    /// The record `key` at the head, with its proof (a store read and ~256 hashes).
    fn record(&self, key: &[u8]) -> Result<RecordAtHead, ApiError>;

    /// Up to `limit` attestable records the block at `height` changed, from index
    /// `start`; `None` above the head or below what this node keeps. A store read.
    fn block_records(
        &self,
        height: u64,
        start: usize,
        limit: usize,
    ) -> Result<Option<BlockRecords>, ApiError>;

    /// The attestation of record `key` as the block at `height` changed it:
    /// NotFound when it did not change such a record, Unavailable while this node
    /// lacks the block's certificate. A store read.
    fn attestation(&self, height: u64, key: &[u8]) -> Result<Attestation, ApiError>;
}
