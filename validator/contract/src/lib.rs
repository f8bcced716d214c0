//! Definitions that two sides must agree on, each defined exactly once.
//!
//! - [`loadgen`] — the loadgen result document: what `dualchain loadgen --json` prints
//!   and publishes to the result ConfigMap, and what the operator parses for a
//!   `BenchmarkCluster` verdict (`operator/README.md`, "Loadgen contract").
//! - [`stats`] — the percentile definition (nearest rank) behind the document's
//!   `finality_ms`, plus a counting histogram, for every figure reported as p50/p95/p99.
//! - [`binaries`] — the names of the two executables (`dualchain`, `dualchain-tools`)
//!   and how one finds the other.
//!
//! This crate depends on serde and serde_json only, so the validator binary, the tools, the operator
//! and the I/O-free cores can all use it without linking anything else (in particular
//! neither kube nor the plotting stack reach the validator binary through it).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod binaries;
pub mod loadgen;
pub mod stats;

pub use loadgen::{LoadgenResult, parse_result};
pub use stats::Percentiles;
