pub mod genesis;
pub mod keygen;
pub mod snapshot;
