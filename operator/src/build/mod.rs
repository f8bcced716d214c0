//! Pure object builders (no I/O), snapshot-tested.

pub mod benchmark;
pub mod network;
