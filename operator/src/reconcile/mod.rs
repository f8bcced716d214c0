//! The two reconcilers (controller-rs style: `reconcile(obj, ctx)` + `error_policy`).

pub mod benchmark;
pub mod network;
pub mod set_changes;
pub mod validator_sets;
