//! Kubernetes operator for dualchain: `DualChainNetwork` and `BenchmarkCluster`.
//!
//! Layout (kube-rs `controller-rs` style):
//! - [`crd`] — the custom resources, their CEL rules and defaults, and CRD YAML output;
//! - [`schema_check`] — validates manifests against the generated schema (structure,
//!   defaults and CEL rules evaluated by kube's CEL engine) for tests and tooling;
//! - [`build`] — pure builders of every owned object (snapshot-tested);
//! - [`rollout`] — the quorum-preserving roll plan; [`scaling`] — which validators
//!   join or leave when `spec.validators` changes, and how many pods stay; [`keys`], [`genesis`] — key material
//!   and genesis in the formats of `dualchain keygen` / `dualchain genesis`;
//! - [`reconcile`] — the reconcilers; [`validators`] — gRPC status/admin calls;
//! - [`runtime`], [`leader`], [`metrics`] — `dualchain-operator run`;
//! - [`cli`] — the command line (`crd`, `run`).
//!
//! The validator container contract the operator relies on is in `operator/README.md`.

pub mod build;
pub mod cli;
pub mod conditions;
pub mod context;
pub mod crd;
pub mod cron;
pub mod error;
pub mod genesis;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod ports;
pub mod reconcile;
pub mod rollout;
pub mod runtime;
pub mod scaling;
pub mod schema_check;
pub mod status_patch;
pub mod validators;

/// Image used when a spec names none.
pub const DEFAULT_IMAGE: &str = "dualchain:0.1.0";

#[cfg(test)]
mod tests;
