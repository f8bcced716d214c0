//! `dualchain-core`: the types, canonical encoding and post-quantum cryptography that
//! every part of a dualchain validator shares.
//!
//! - [`encoding`]: the one canonical, versioned, size-limited binary encoding of
//!   everything hashed or signed;
//! - [`hash`]: BLAKE3 digests with a domain-separation context per object type;
//! - [`crypto`]: ML-DSA-87 validator keys and ML-DSA-44 account keys, with signing
//!   domains as FIPS 204 context strings;
//! - [`keyfile`]: key directories laid out like mounted Kubernetes Secrets;
//! - [`types`]: chains, validator sets, transactions, vertices, blocks, certificates,
//!   receipts and genesis;
//! - [`chain_store`]: the typed layer over the storage engine — one atomic write
//!   batch per sealed block, and the state root.
//!
//! This crate does no I/O besides reading and writing key files. Its only `unsafe`
//! code is the AWS-LC verification call in `crypto::verify_aws_lc`.

#![deny(unsafe_code)]

pub mod chain_store;
pub mod crypto;
pub mod encoding;
pub mod hash;
pub mod keyfile;
pub mod types;

pub use encoding::{Canonical, DecodeError};
pub use hash::{Digest, HashDomain};
