//! dualchain-net: the validator transport.
//!
//! - [`wire`]: versioned, length-prefixed frames with per-kind size limits.
//! - [`identity`]: ML-DSA-87 peer identity bound to the TLS session, and the
//!   runtime-updatable membership view.
//! - [`network`]: the [`Network`] seam consensus and the simulator program against,
//!   with [`memory`] as the in-memory implementation and [`transport`] (feature
//!   `quic`, on by default) as the real one over quinn with hybrid post-quantum TLS
//!   ([`tls`]).
//! - Peer management parts: [`dedup`] (seen-digest cache), [`score`] (scoring and
//!   bans), [`throttle`] (bandwidth limit), [`fault`] (runtime fault injection),
//!   [`metrics`] (Prometheus).
//! - [`cli`]: `dualchain bench net` (loopback throughput and latency next to a raw
//!   quinn baseline).

pub mod dedup;
pub mod fault;
pub mod identity;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod score;
pub mod throttle;
pub mod wire;

#[cfg(feature = "quic")]
mod bench;
#[cfg(feature = "quic")]
pub mod cli;
#[cfg(feature = "quic")]
pub mod tls;
#[cfg(feature = "quic")]
pub mod transport;

pub use fault::{FaultConfig, FaultDecision, FaultInjector};
pub use identity::{MemberSet, Membership, PeerId};
pub use memory::{LinkLatency, MemoryHub, MemoryNetwork};
pub use metrics::NetMetrics;
pub use network::{BroadcastOutcome, EventReceiver, InboundRequest, NetError, NetEvent, Network};
pub use score::Offence;
pub use wire::{Message, MessageKind, WireError};

#[cfg(feature = "quic")]
pub use bench::Loopback;
#[cfg(feature = "quic")]
pub use transport::{NetConfig, PeerAddress, QuicNetwork};
