//! `dualchain-consensus`: the consensus layer of a dualchain validator.
//!
//! - [`consensus`]: the [`Consensus`] trait every engine implements — a sans-I/O,
//!   deterministic state machine (`handle(now, input) -> outputs`);
//! - [`engine`]: the DAG-BFT engine ([`DagBft`]) — vertex intake and validation,
//!   round advancement with leader waits and back-pressure, sync of missing
//!   ancestors, equivocation evidence, persistence through [`store`];
//! - [`dag`]: the DAG store (by digest and by round/author, GC, snapshots);
//! - [`commit`]: the commit rule (Mysticeti, NDSS 2025) with its safety argument;
//! - [`avalanche`]: the Avalanche ordering rule — leader slots decided by Snowball
//!   sampling of peers (signed queries and votes), with its safety argument;
//! - [`leader`]: stake-weighted leader schedule from a hash of (epoch seed, round);
//! - [`sealer`]: committed sequence → blocks per slot (Alpha 15 s, Delta 3 s);
//! - [`finality`]: finalized height, commit latency, confirmation depth, events;
//! - [`wire`]: the canonical encoding of consensus messages;
//! - [`sim`]: a deterministic multi-node simulator with faults, and [`cli`] its
//!   `dualchain sim` subcommand.
//!
//! Nothing here reads a clock or opens a socket; the only randomness is seeded: the
//! simulator's ChaCha RNG and the Avalanche sampler's ChaCha stream (seeded by epoch
//! seed, node and query id).

pub mod avalanche;
pub mod cli;
pub mod commit;
pub mod config;
pub mod consensus;
pub mod dag;
pub mod engine;
pub mod evidence;
pub mod finality;
pub mod keys;
pub mod leader;
pub mod pending;
pub mod sealer;
pub mod sim;
pub mod store;
pub mod sync;
pub mod verify;
pub mod wire;

#[cfg(test)]
mod testing;

pub use config::{DagBftConfig, Ordering};
pub use consensus::{
    Commit, CommittedSubDag, Consensus, Input, Now, Output, Round, SyncRequest, TimeMs,
};
pub use engine::{DagBft, EngineError, EngineStats, RejectReason};
pub use evidence::Evidence;
pub use finality::{FinalityEvent, FinalityTracker};
pub use sealer::{BlockLimits, BlockSealer, SealedBlock, SealerConfig};
pub use store::{ConsensusStore, KvConsensusStore};
pub use verify::{DirectVerifier, SharedVerdictCache, VertexVerifier};
