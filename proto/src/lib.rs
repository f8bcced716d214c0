//! The `dualchain.v1` gRPC control API of a dualchain validator.
//!
//! Each chain (Alpha on port 3030, Delta on port 4030 by default) runs in its
//! own container and serves this API for itself. The node, the load generator
//! and the Kubernetes operator all talk through the types in this crate.
//!
//! # Layout
//!
//! - `proto/dualchain/v1/*.proto` — the contract, with every service, rpc,
//!   message and field documented (units, limits, defaults):
//!   - `common.proto`: the [`v1::Chain`] enum and package-wide conventions;
//!   - `transactions.proto`: service `Transactions` (submission);
//!   - `node.proto`: service `Node` (status, blocks, finality stream);
//!   - `admin.proto`: service `Admin` (pause/resume, snapshots, faults),
//!     bearer-token protected;
//!   - `crosschain.proto`: service `CrossChain` (records with proofs,
//!     attestations for the other chain).
//! - [`v1`] — the code generated from them by `build.rs`: prost messages and
//!   enums, plus tonic clients (`v1::*_client`) and servers (`v1::*_server`),
//!   re-exported at the crate root ([`NodeClient`], [`NodeServer`], ...).
//! - [`FILE_DESCRIPTOR_SET`] — the encoded `FileDescriptorSet` of the package,
//!   for gRPC server reflection (`tonic-reflection`).
//! - [`auth`] — the admin bearer-token helpers: [`check_admin_token`] and
//!   [`RequireAdminToken`] for servers, [`AdminToken`] for clients.
//! - [`limits`] — the documented limits as constants.
//!
//! # Build without `protoc`
//!
//! `build.rs` parses the .proto files with `protox` (a protobuf compiler in
//! pure Rust) into a `FileDescriptorSet`, writes it to `OUT_DIR`, and hands it
//! to `tonic_prost_build::compile_fds`, which generates code without running
//! `protoc`. A fresh machine needs nothing but cargo. The build script reruns
//! only when a .proto file (or the script) changes.
//!
//! # Example: an authenticated admin client
//!
//! ```no_run
//! use dualchain_proto::{AdminClient, AdminToken, v1::{Chain, PauseChainRequest}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:3030")
//!     .connect()
//!     .await?;
//! let mut admin = AdminClient::with_interceptor(channel, AdminToken::new("s3cret")?);
//! admin
//!     .pause_chain(PauseChainRequest { chain: Chain::Alpha as i32, reason: "maintenance".into() })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Example: serving `Admin` with the token enforced
//!
//! ```no_run
//! use dualchain_proto::{Admin, AdminServer, RequireAdminToken};
//!
//! async fn serve(admin: impl Admin, token: String) -> Result<(), tonic::transport::Error> {
//!     let admin = AdminServer::with_interceptor(admin, RequireAdminToken::new(token));
//!     tonic::transport::Server::builder()
//!         .add_service(admin)
//!         .serve(([0, 0, 0, 0], 3030).into())
//!         .await
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;

/// The metadata key of a `Transactions` call refused whole while the node is
/// overloaded (`RESOURCE_EXHAUSTED`): how long to wait, in decimal milliseconds.
pub const RETRY_AFTER_MS_KEY: &str = "retry-after-ms";

/// Messages, enums, clients and servers generated from `dualchain/v1/*.proto`.
///
/// Enum values lose their prefix in Rust: `CHAIN_ALPHA` is [`v1::Chain::Alpha`],
/// `TX_STATUS_ACCEPTED` is [`v1::TxStatus::Accepted`]. Enum-typed message
/// fields are `i32` on the wire; use the generated getters (e.g.
/// `status.chain()`) to read them as enums, unknown values mapping to the
/// `Unspecified` variant.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("dualchain.v1");
}

mod ext;

pub use auth::{
    ADMIN_AUTH_METADATA_KEY, AdminToken, InvalidAdminToken, RequireAdminToken, check_admin_token,
    check_bearer_token,
};
pub use v1::admin_client::AdminClient;
pub use v1::admin_server::{Admin, AdminServer};
pub use v1::cross_chain_client::CrossChainClient;
pub use v1::cross_chain_server::{CrossChain, CrossChainServer};
pub use v1::node_client::NodeClient;
pub use v1::node_server::{Node, NodeServer};
pub use v1::transactions_client::TransactionsClient;
pub use v1::transactions_server::{Transactions, TransactionsServer};

/// Encoded `google.protobuf.FileDescriptorSet` of the `dualchain.v1` package
/// (with source info, so comments are included), produced by `build.rs`.
///
/// Register it with `tonic-reflection`
/// (`Builder::configure().register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)`)
/// so `grpcurl` and friends can discover the API.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dualchain_v1_descriptor.bin"));

/// The protobuf package name of this API.
pub const PACKAGE: &str = "dualchain.v1";

/// Limits documented in the .proto files, for servers to enforce and clients
/// to respect.
pub mod limits {
    /// Maximum size of one canonically encoded transaction: 128 KiB, for every kind
    /// but attestations.
    pub const MAX_TX_BYTES: usize = 128 * 1024;
    /// Maximum size of one canonically encoded attestation transaction (kind 17),
    /// which carries a quorum certificate of up to 512 ML-DSA-87 signatures and the
    /// attested record: 6,704,052 bytes (the node's codec derives the same number).
    pub const MAX_ATTEST_TX_BYTES: usize = 6_704_052;
    /// Maximum number of transactions in one `SubmitBatchRequest` or one
    /// `SubmitRequest` message.
    pub const MAX_TXS_PER_MESSAGE: usize = 10_000;
    /// Maximum number of rejected results listed in a `SubmitSummary`.
    pub const MAX_SUMMARY_REJECTED_RESULTS: usize = 10_000;
    /// Default maximum gRPC message size the node accepts and sends: 64 MiB
    /// (tonic's own default is 4 MiB, too small for full batches).
    pub const DEFAULT_MAX_GRPC_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
    /// Largest request message of the query and admin services (`Node`,
    /// `CrossChain`, `Admin`), whose requests are a few fields: 64 KiB. Larger
    /// requests are RESOURCE_EXHAUSTED.
    pub const MAX_QUERY_REQUEST_BYTES: usize = 64 * 1024;
    /// Length of every digest (BLAKE3) in the API, in bytes.
    pub const DIGEST_LEN: usize = 32;
    /// Minimum per-stream buffer of `StreamFinality`, in events.
    pub const MIN_FINALITY_STREAM_BUFFER: usize = 1_024;
    /// Per-stream buffer of `StreamOrdering`, in events.
    pub const ORDERING_STREAM_BUFFER: usize = 256;
    /// Most transaction digests in one `OrderingEvent` (a larger commit is split).
    pub const MAX_ORDERING_EVENT_DIGESTS: usize = 16_384;
    /// Maximum `FaultInjection.added_delay_ms` and `jitter_ms`.
    pub const MAX_FAULT_DELAY_MS: u32 = 60_000;
    /// Minimum non-zero `FaultInjection.bandwidth_bytes_per_sec` (the transport's
    /// fault injector refuses slower links too).
    pub const MIN_FAULT_BANDWIDTH_BYTES_PER_SEC: u64 = 1_024;
    /// Largest `FaultInjection.clock_skew_ms`, either way (an hour).
    pub const MAX_FAULT_CLOCK_SKEW_MS: i64 = 3_600_000;
    /// Maximum number of `FaultInjection.partitions` groups.
    pub const MAX_PARTITION_GROUPS: usize = 64;
    /// Maximum number of peer ids in one `PeerGroup`.
    pub const MAX_PEERS_PER_GROUP: usize = 1_024;
    /// Maximum length of `PauseChainRequest.reason`, in bytes.
    pub const MAX_PAUSE_REASON_BYTES: usize = 256;
    /// Maximum length of `GetRecordRequest.key`, in bytes.
    pub const MAX_RECORD_KEY_BYTES: usize = 256;
    /// Maximum length of `GetAttestationRequest.key`, in bytes (attestable
    /// records have short keys).
    pub const MAX_ATTESTED_KEY_BYTES: usize = 64;
    /// Records per `BlockRecords` page when `GetBlockRecordsRequest.limit` is 0.
    pub const DEFAULT_RECORDS_PER_PAGE: usize = 256;
    /// Maximum `GetBlockRecordsRequest.limit`.
    pub const MAX_RECORDS_PER_PAGE: usize = 1_024;
}
