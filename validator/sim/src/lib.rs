//! `dualchain-sim`: the whole-node deterministic simulator (`dualchain sim --mode
//! node`).
//!
//! N complete validators — both chains, mempool, consensus, sealer, parallel
//! executor, votes and certificates, the runtime's own persistence — run *unchanged*
//! (the `dualchain-runtime` code a node runs) on one thread, with the runtime's seams
//! filled by simulated parts ([`seams::SimSeams`]): a memory store per validator and
//! chain that survives its crashes, the in-memory hubs with seeded latency, loss and
//! partitions, a virtual clock (tokio's paused clock), inline execution. Clients
//! submit transactions through the validators' own admission path. A seed fixes the
//! whole run; the same seed gives the same trace digest.
//!
//! - [`config`]: the parameters of one run;
//! - [`seams`]: the simulated seams (and the store bugs tests plant);
//! - [`byzantine`]: the simulated transport and Byzantine validators' rewriting;
//! - [`workload`]: the clients;
//! - [`flow`]: the cross-chain governance flow (lock, stake, propose, vote, execute,
//!   unlock) every run drives;
//! - [`forgery`]: the forged attestations Byzantine validators relay;
//! - [`reconfigure`]: validators leaving the set, one change after another;
//! - [`run`]: one run;
//! - [`checks`]: what a run must show;
//! - [`cli`]: `dualchain sim` (both modes).

pub mod byzantine;
pub mod checks;
pub mod cli;
pub mod config;
pub mod flow;
pub mod forgery;
pub mod reconfigure;
pub mod run;
pub mod seams;
pub mod workload;

pub use config::{NodeSimConfig, Signatures};
pub use run::{RunResult, run};
pub use seams::StoreBug;
