//! Ports of the validator container contract (see `operator/README.md`).
//!
//! P2P ports carry QUIC, hence UDP; API ports carry gRPC (HTTP/2, TCP). Both chain
//! containers share the pod's network namespace, so every port is distinct.

/// Alpha validator-to-validator QUIC port (UDP).
pub const ALPHA_P2P: u16 = 4130;
/// Alpha gRPC control API (`dualchain.v1`, health, reflection).
pub const ALPHA_API: u16 = 3030;
/// Delta validator-to-validator QUIC port (UDP).
pub const DELTA_P2P: u16 = 4131;
/// Delta gRPC control API.
pub const DELTA_API: u16 = 4030;
/// Alpha `dualchain.v1.Admin` (gRPC over TLS with the validator's own certificate;
/// only the operator's pods may reach it).
pub const ALPHA_ADMIN: u16 = 3031;
/// Delta `dualchain.v1.Admin` (TLS, operator only).
pub const DELTA_ADMIN: u16 = 4031;
/// Prometheus metrics of the `alpha` container (HTTP `/metrics`).
pub const ALPHA_METRICS: u16 = 9100;
/// Prometheus metrics of the `delta` container (HTTP `/metrics`).
pub const DELTA_METRICS: u16 = 9101;
/// gRPC health service name the readiness probes ask for (SERVING once the chain is
/// caught up and not stopped). Liveness and startup probes ask for the empty service name
/// (the process as a whole).
pub const READINESS_SERVICE: &str = "dualchain.v1.Node";
/// Operator metrics/health HTTP port.
pub const OPERATOR_METRICS: u16 = 8080;
