//! dualchain-mempool: the per-chain pool of admitted transactions waiting for a proposer.
//!
//! # Rules
//! - **Bounded**: the pool never holds more than [`MempoolConfig::max_txs`] transactions
//!   or [`MempoolConfig::max_bytes`] encoded bytes. Capacity is reserved atomically before
//!   a transaction is inserted, so concurrent producers cannot overshoot it.
//! - **Explicit rejection**: every refused transaction gets a typed [`Rejection`] (full,
//!   duplicate, per-sender cap, nonce conflict, oversize, wrong chain, bad signature
//!   verdict). Nothing is dropped silently; the only removals besides draining are
//!   committed transactions and transactions whose nonce a commit made stale, both
//!   counted in metrics.
//! - **Dedup by digest**: a transaction already pending, recently included, or
//!   proposed less than 30 s of admission time ago, is refused (a proposal whose
//!   vertex never commits must not make its transactions unsubmittable here). The digest covers the transaction but not its signature, so a
//!   re-signed copy is still a duplicate.
//! - **Fairness**: each sender has its own lane (capped at
//!   [`MempoolConfig::max_per_sender`]), and batches drain lanes round-robin: every
//!   sender with pending transactions gets its first one into a batch before any
//!   sender gets a second. A flooding sender fills its own lane and is refused; it
//!   cannot crowd out others.
//! - **Deterministic order**: a batch is the prefix of one total order over the pending
//!   transactions, by (round in the sender's lane, admission time, digest). Admission
//!   time is a caller-supplied [`AdmissionTime`] (no wall clock inside), so the same
//!   admission sequence always drains in the same order, whatever the thread interleaving.
//! - **Nonce order**: a sender's lane is ordered by nonce and drains only a contiguous
//!   run of nonces from its lowest pending one; a transaction after a nonce gap waits
//!   until the gap is filled.
//! - **Low contention**: state is sharded by sender (one short mutex hold per admission);
//!   the proposer drains while producers keep admitting. Signature verification is not
//!   done here: admission takes the verdict of
//!   a [`dualchain_core::types::VerdictSource`] (the execution crate's cached verifier).
//! - **Metrics** ([`Mempool::with_metrics`], into a registry the node passes in, labelled
//!   by chain): depth and bytes (read at scrape time), admitted, rejections by reason,
//!   drained, committed removals, drops by reason, enqueue latency (measured with
//!   `Instant` around admission, feeding only the histogram) and queue wait (on the
//!   caller's clock, [`Mempool::take_batch_at`]).
//!
//! [`cli`] holds the `bench mempool` subcommand (throughput against a `Mutex<VecDeque>`
//! baseline, run-to-run variance, drain-order determinism).

pub mod cli;
mod config;
mod envelope;
mod error;
mod metrics;
mod occupancy;
mod pool;
mod recent;
mod select;
mod shard;

pub use config::{ConfigError, MempoolConfig};
pub use envelope::{AdmissionTime, Batch, Envelope, encoded_len};
pub use error::{MempoolError, RejectReason, Rejection};
pub use pool::{CommitRemoval, Mempool, MempoolStats};
