//! The `Admin` service's own listener: never the public API port.
//!
//! The Admin bearer token must not cross a network in clear, and the public port
//! is open to every client, so `Admin` is served only on a second listener that is
//! either a loopback address (reachable from the pod or host itself) or TLS with
//! the node's own certificate (the operator pins that certificate and reaches the
//! port through a NetworkPolicy that admits nobody else). [`AdminPlacement::check`]
//! refuses every other combination before anything listens.
//!
//! The listener is small by design: a few connections (operators and scripts, not
//! clients), calls bounded in time and number like the public API's, request
//! bodies of [`dualchain_proto::limits::MAX_QUERY_REQUEST_BYTES`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use tonic::service::interceptor::InterceptedService;

use crate::admin::AdminAuth;
use crate::call_limits::{CallGateLayer, CallLimits};
use crate::connections::{ConnectionLimits, ConnectionTable, LimitedIncoming};
use crate::oversize::OversizeIsResourceExhausted;
use crate::server::ApiServeError;

/// The `Admin` service as served: size limits, then the credential check.
pub(crate) type AdminService = OversizeIsResourceExhausted<
    InterceptedService<dualchain_proto::AdminServer<crate::admin::AdminService>, AdminAuth>,
>;

/// Connections the admin listener keeps open at once, and per client address.
pub const ADMIN_MAX_CONNECTIONS: usize = 16;
pub const ADMIN_MAX_CONNECTIONS_PER_IP: usize = 8;
/// Admin calls running at once (pause, snapshot and fault changes are rare).
const ADMIN_MAX_CALLS_IN_FLIGHT: usize = 16;
/// Longest one admin call may run (a snapshot of a large state takes a while).
const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The certificate and private key (PEM) the admin listener presents.
#[derive(Clone)]
pub struct AdminTls {
    pub certificate_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
}

impl fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminTls")
            .field(
                "certificate_pem",
                &format!("{} bytes", self.certificate_pem.len()),
            )
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

/// The one rule of where `Admin` may listen: on a loopback address, or anywhere
/// with TLS (the bearer token never crosses a network in clear). The node checks its
/// configuration with it before binding; the server checks again before serving.
pub fn check_admin_placement(addr: SocketAddr, tls: bool) -> Result<(), String> {
    if tls || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "the admin listener {addr} is not a loopback address, so it needs admin_tls (a \
         certificate and key): the admin bearer token never crosses a network in clear"
    ))
}

/// Where the admin listener is and how it is protected, checked as a whole.
pub(crate) struct AdminPlacement<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<&'a AdminTls>,
}

impl AdminPlacement<'_> {
    /// A non-loopback admin listener must speak TLS.
    pub(crate) fn check(&self) -> Result<(), ApiServeError> {
        check_admin_placement(self.addr, self.tls.is_some()).map_err(ApiServeError::InvalidOptions)
    }

    /// A server builder with the listener's TLS identity (checked here: a bad
    /// certificate or key is an option error, not a failed handshake later).
    fn server(&self) -> Result<Server, ApiServeError> {
        let builder = Server::builder();
        let Some(tls) = self.tls else {
            return Ok(builder);
        };
        install_crypto_provider();
        let identity = Identity::from_pem(&tls.certificate_pem, &tls.private_key_pem);
        builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|error| {
                ApiServeError::InvalidOptions(format!(
                    "admin_tls: the certificate or key is not usable: {error}"
                ))
            })
    }
}

/// Makes AWS-LC the process's rustls provider unless one is installed: tonic's TLS
/// asks for the process default, which rustls cannot pick itself in a build that
/// also links ring (the operator's Kubernetes client does). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A prepared admin listener: bound, checked, ready to serve.
pub(crate) struct AdminListener {
    server: Server,
    incoming: LimitedIncoming,
    table: Arc<ConnectionTable>,
    gate: CallGateLayer,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
}

impl AdminListener {
    /// Checks the placement and TLS identity of `listener`.
    pub(crate) fn prepare(
        listener: TcpListener,
        tls: Option<&AdminTls>,
        chain: dualchain_core::types::ChainId,
    ) -> Result<Self, ApiServeError> {
        let addr = listener.local_addr().map_err(ApiServeError::LocalAddr)?;
        let placement = AdminPlacement { addr, tls };
        placement.check()?;
        let server = placement.server()?;
        let limits = ConnectionLimits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            max_connections_per_ip: ADMIN_MAX_CONNECTIONS_PER_IP,
            ..ConnectionLimits::default()
        };
        // Unregistered metrics: the public listener's carry the chain's figures.
        let table = ConnectionTable::new(limits, chain, None)?;
        let calls = CallLimits {
            max_calls_in_flight: ADMIN_MAX_CALLS_IN_FLIGHT,
            call_timeout: ADMIN_CALL_TIMEOUT,
            ..CallLimits::default()
        };
        let gate = CallGateLayer::new(&calls, Arc::clone(&table), chain, None)?;
        Ok(Self {
            server,
            incoming: LimitedIncoming::new(listener, Arc::clone(&table)),
            table,
            gate,
            addr,
            tls: tls.is_some(),
        })
    }

    /// Serves `admin` until `stop` completes.
    pub(crate) async fn run(
        self,
        admin: AdminService,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), ApiServeError> {
        let reaper = tokio::spawn(Arc::clone(&self.table).reap_idle());
        let served = self
            .server
            .max_concurrent_streams(ADMIN_MAX_CALLS_IN_FLIGHT as u32)
            .load_shed(true)
            .layer(self.gate)
            .add_service(admin)
            .serve_with_incoming_shutdown(self.incoming, stop)
            .await;
        reaper.abort();
        served.map_err(ApiServeError::AdminTransport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(addr: &str, tls: Option<&AdminTls>) -> Result<(), ApiServeError> {
        AdminPlacement {
            addr: addr.parse().unwrap(),
            tls,
        }
        .check()
    }

    #[test]
    fn a_non_loopback_admin_listener_needs_tls() {
        let tls = AdminTls {
            certificate_pem: Vec::new(),
            private_key_pem: Vec::new(),
        };
        for open in ["0.0.0.0:3031", "10.1.2.3:3031", "[::]:3031"] {
            let error = placement(open, None).unwrap_err().to_string();
            assert!(error.contains("needs admin_tls"), "{error}");
            assert!(error.contains(open), "{error}");
            placement(open, Some(&tls)).unwrap();
        }
        for loopback in ["127.0.0.1:3031", "127.9.9.9:1", "[::1]:3031"] {
            placement(loopback, None).unwrap();
        }
    }

    #[test]
    fn tls_material_is_never_printed() {
        let tls = AdminTls {
            certificate_pem: b"cert".to_vec(),
            private_key_pem: b"-----BEGIN PRIVATE KEY----- secret".to_vec(),
        };
        let printed = format!("{tls:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
