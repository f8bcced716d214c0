//! A `dualchain.v1` gRPC client, written once for the tools, the tests and the operator.
//!
//! - [`node`] — small helpers with bounded waits: status, heights, blocks, readiness,
//!   batch submission.
//! - [`crosschain`] — the cross-chain flow: records read with their proofs checked,
//!   operations (sAX lock, governance, validator-set changes) sent at the sender's
//!   next nonce.

#![deny(unsafe_code)]

pub mod crosschain;
pub mod node;
