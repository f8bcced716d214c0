//! `dualchain-execution`: executing blocks — the sequential reference executor, the
//! parallel executor that must always agree with it, and the state they run on.
//!
//! Pipeline of one Delta block:
//!
//! 1. **admission** — [`verify::SignatureVerifier`] checks signatures in parallel once
//!    and caches the verdicts (unsigned only with the genesis flag);
//!    [`admission::check_sender`] keeps out what could only fail against the committed
//!    state (spent nonce, unknown sender, unpayable fee or amounts);
//! 2. **execution** — [`executor::Executor`] in one of three [`ExecutionMode`]s runs
//!    the rules of [`rules`] (the exact rules, including what a failed transaction
//!    still changes, are written there) over a working set ([`workset`]) loaded
//!    lazily from the thread-safe [`state::StateCache`]; the parallel executor
//!    schedules independent transactions from their declared access sets
//!    ([`schedule`]);
//! 3. **merge** — the [`outcome::BlockOutcome`] becomes state changes, a new state
//!    root and one atomic write batch through the chain store ([`merge`]); then the
//!    cache moves to the new height.
//!
//! Alpha's record state (locks, governance, validator sets) lives in [`records`],
//! with the same cache / overlay / merge shape. State layout: [`keys`].
//!
//! [`cli`] holds `dualchain bench exec`; [`workload`] its seeded workloads.

pub mod admission;
pub mod cli;
pub mod crosschain;
pub mod epochs;
pub mod executor;
pub mod keys;
pub mod merge;
pub mod outcome;
pub mod records;
pub mod rules;
pub mod schedule;
pub mod state;
pub mod verify;
pub mod workload;
pub mod workset;

pub use executor::{ExecutionError, ExecutionMode, Executor, ExecutorConfig};
pub use outcome::{AccountUpdate, BlockOutcome, ExecutionStats};
pub use state::{StateCache, StateError, Totals};
pub use verify::{SignatureVerifier, Verdict};
