//! `dualchain-runtime`: what composes the sans-I/O cores (consensus engine, sealer,
//! executor, mempool) into one chain of a validator, generic over the seams a node
//! and the simulator fill differently ([`Seams`]):
//!
//! | seam | node (`dualchain run`) | simulator (`dualchain sim --mode node`) |
//! |---|---|---|
//! | storage ([`dualchain_storage::KvEngine`]) | RocksDB | one `MemoryEngine` per node and chain |
//! | network ([`dualchain_net::Network`]) | QUIC | the in-memory hub with seeded faults |
//! | time ([`Clock`]) | [`SystemClock`] | [`VirtualClock`] on a paused tokio runtime |
//! | CPU-heavy work ([`Placement`]) | the executor thread, the rayon pool | inline, in order |
//!
//! # Module map (one file per component)
//!
//! - [`seams`]: the [`Seams`] trait and [`Placement`];
//! - [`clock`]: the [`Clock`] seam and its real and virtual implementations;
//! - [`context`]: [`ChainContext`], what one chain keeps across restarts of its tasks;
//! - [`chain`]: opening a chain (store, genesis, engine, transport), running its task
//!   group, and the supervisor that restarts it;
//! - [`driver`]: the consensus driver, the only owner of the engine;
//! - [`epoch_transition`]: the epoch transition state machine (pause, both
//!   boundaries, apply, resume; stuck and deadlock detection), fed once a second by
//!   the health monitor;
//! - [`executor`]: the block executor (seal → execute → commit → vote);
//! - [`votes`]: block votes → block certificates;
//! - [`relay`]: the attestation relay, carrying each chain's finalized records to the
//!   other as `Attest` transactions;
//! - [`service`]: [`ChainService`], the chain's [`dualchain_api::ChainApi`];
//! - [`health`]: the health assessment of a chain;
//! - [`metrics`]: the chain's Prometheus metrics;
//! - [`nonce_gate`]: the proposer holds a transaction whose sender's earlier nonce has
//!   not come yet (for at most two block times).
//!
//! # The path of one committed sub-DAG
//!
//! The engine decides a commit and writes its [`dualchain_consensus::store::CommitRecord`]
//! in the same batch as its state; the driver hands it to the executor over a bounded
//! channel (when the channel is full the driver stops taking network input: execution
//! back-pressure reaches consensus by construction); the executor seals, executes and
//! commits blocks in one batch each, votes, and acknowledges the commits its batches
//! made durable; the driver feeds the acknowledgement back to the engine
//! ([`dualchain_consensus::Input::Executed`]), which then forgets them. A restart replays
//! every commit not acknowledged.

pub mod admission_gate;
pub mod avalanche_metrics;
pub mod block_server;
pub mod block_sync;
pub mod chain;
pub mod clock;
mod committed;
pub mod context;
pub mod driver;
pub mod epoch_transition;
pub mod executor;
pub mod follower;
pub mod health;
pub mod membership;
pub mod metrics;
pub mod nonce_gate;
pub mod relay;
pub mod replay;
pub mod reseed;
pub mod seams;
pub mod service;
pub mod state_server;
pub mod state_sync;
pub mod sync_server;
pub mod synthetic;
pub mod votes;

pub use chain::{ChainOptions, engine_config, genesis_changes, run_chain, supervise};
pub use clock::{Clock, SystemClock, VirtualClock};
pub use context::{ChainContext, Head, NodeIdentity};
pub use seams::{Placement, Seams};
pub use service::{ChainService, NodeChains};
