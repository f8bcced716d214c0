//! Crate tests that need the mocked API server or shared fixtures.

mod bench_reconcile;
mod fake_api;
pub(crate) mod fixtures;
mod leader;
mod monitoring;
mod network_reconcile;
mod schema;
mod snapshots;
