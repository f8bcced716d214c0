//! Load generation over gRPC, `dualchain status`, and the `dualchain devnet` main job.
//!
//! # Layout
//! - [`accounts`] — the funded account keys a load generator signs with (keyring file or
//!   the public benchmark seed of `dualchain genesis --accounts-seed`).
//! - [`workload`] — deterministic transaction plans (steady, bursty, adversarial mixes),
//!   per-account nonces, and parallel materialisation (ML-DSA-44 signing on all cores).
//! - [`schedule`] — the open-loop send schedule: how many transactions are due at a
//!   given time, independent of how the network answers.
//! - [`latency`] — submit → finality latency samples and their percentiles / CDF.
//! - [`loadgen`] — the engine: pre-signing pipeline, scheduler, per-target senders
//!   (`Transactions/SubmitBatch`), the `Node/StreamFinality` watcher and the result.
//! - [`result_sink`] — publishing the result to a ConfigMap (merge-PATCH) or
//!   `/dev/termination-log`, as the operator's loadgen contract requires.
//! - [`status`] — `dualchain status`.
//! - [`capacity`] — the devnet's capacity probe: goodput at maximum load, then the
//!   steady load at a fraction of it.
//! - [`devnet`] — `dualchain devnet`: N local validators, load, state-root check, report.
//! - [`progress`] — live progress lines / bars while a devnet runs.
//! - [`report`] — devnet `report.json`, `report.md` and PNG plots.
//! - [`overload`] — `dualchain bench overload`: signed load at multiples of the
//!   saturation load on a local network, goodput and finality per step, judged.
//! - [`crosschain_load`] — the cross-chain side of `devnet --workload crosschain`:
//!   locks and their attestation latency, a governance round, records compared.
//! - [`flow_cli`] — `dualchain sax …` / `dualchain gov …`: the cross-chain flow by hand.
//! - [`cli`] — the clap argument structs and `run_*` entry points the binary wires in.

#![deny(unsafe_code)]

pub mod accounts;
pub mod capacity;
pub mod cli;
pub mod crosschain_load;
pub mod devnet;
pub mod engine_figures;
pub mod flow_cli;
pub mod latency;
pub mod loadgen;
pub mod overload;
pub mod progress;
pub mod report;
pub mod result_sink;
pub mod schedule;
pub mod status;
pub mod workload;

pub use loadgen::{LiveStats, LoadgenConfig, LoadgenReport};
