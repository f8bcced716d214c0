//! The gRPC server of one chain: options, errors, wiring and graceful shutdown.
//!
//! One tonic server carries `dualchain.v1.{Transactions, Node, CrossChain}`,
//! `grpc.health.v1.Health` and server reflection (`grpc.reflection.v1` and
//! `v1alpha`, describing `dualchain.v1` and the health service); `Admin` has a
//! listener of its own, loopback or TLS (`admin_server`), and is never on the
//! public port. Message size
//! limits apply to both directions of every `dualchain.v1` service; an oversized
//! request is RESOURCE_EXHAUSTED (see `oversize`). Requests of the query and
//! admin services (`Node`, `CrossChain`, `Admin`) are small by design and are
//! held to [`MAX_QUERY_REQUEST_BYTES`]; only `Transactions` takes the full
//! message limit.
//!
//! What one client can take (the threat model in ARCHITECTURE.md lists the
//! rest): connections are capped in total and per address, idle ones closed
//! and evicted (`connections`); calls, streams and submissions in flight are
//! capped with immediate RESOURCE_EXHAUSTED beyond (load shedding), unary calls
//! time out (`call_limits`); each HTTP/2 connection takes at most
//! [`MAX_STREAMS_PER_CONNECTION`] streams and [`MAX_CALLS_PER_CONNECTION`]
//! calls at once, keeps a 16 KiB header list, and is pinged so dead peers are
//! found; chain reads and writes run on at most [`MAX_BLOCKING_CALLS`] threads.
//!
//! Shutdown sequence, when the caller's shutdown future completes:
//! 1. a shared flag turns true: health goes NOT_SERVING (then its watchers
//!    end), open finality streams and submission streams end with UNAVAILABLE;
//! 2. tonic stops accepting connections and sends GOAWAY on open ones;
//! 3. in-flight calls get [`ApiOptions::shutdown_grace`] to finish; connections
//!    still open after that are left to close with the process (logged).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use dualchain_proto::limits::{
    DEFAULT_MAX_GRPC_MESSAGE_BYTES, MAX_QUERY_REQUEST_BYTES, MIN_FINALITY_STREAM_BUFFER,
};
use dualchain_proto::{AdminServer, CrossChainServer, NodeServer, TransactionsServer};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::ChainApi;
use crate::admin::{AdminAuth, AdminCredential, AdminService};
use crate::admin_server::{AdminListener, AdminTls};
use crate::call_limits::{CallGateLayer, CallLimits};
use crate::connections::{ConnectionLimits, ConnectionTable, LimitedIncoming};
use crate::crosschain::CrossChainService;
use crate::node::NodeService;
use crate::oversize::OversizeIsResourceExhausted;
use crate::request_metrics::RequestMetrics;
use crate::submit_door::SubmitDoor;
use crate::transactions::TransactionsService;

/// Default number of blocks `StreamFinality` replays for `from_height`.
pub const DEFAULT_MAX_REPLAY_BLOCKS: u64 = 10_000;
/// HTTP/2 streams one connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Calls one connection may have in its handlers at once; more are
/// RESOURCE_EXHAUSTED (tonic's per-connection limit with load shedding).
pub const MAX_CALLS_PER_CONNECTION: usize = 64;
/// Chain calls (store reads, admission, admin actions) running at once on
/// blocking threads; more wait for a thread (bounded by the call limits).
pub const MAX_BLOCKING_CALLS: usize = 32;
/// Largest HTTP/2 header list accepted (metadata, the admin token).
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// HTTP/2 pings on idle connections, and how long an answer may take.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the gRPC API of one chain is served.
#[derive(Clone)]
pub struct ApiOptions {
    /// What the bearer token of every `Admin` call is checked against: the
    /// token itself, or its BLAKE3 digest (`String`/`&str` convert into a
    /// token). Requires an admin listener ([`ApiListeners::admin`]); `None`
    /// with no admin listener disables the admin API (nothing serves it).
    /// Never logged; a token must be visible ASCII without spaces.
    pub admin_token: Option<AdminCredential>,
    /// The certificate and key the admin listener presents. Required when that
    /// listener is not on a loopback address.
    pub admin_tls: Option<AdminTls>,
    /// Largest gRPC message accepted and sent, in bytes.
    pub max_message_bytes: usize,
    /// Per-stream buffer of `StreamFinality`, in events (at least
    /// [`MIN_FINALITY_STREAM_BUFFER`]).
    pub finality_stream_buffer: usize,
    /// Most blocks one `StreamFinality` replays; an older `from_height` is
    /// OUT_OF_RANGE.
    pub max_replay_blocks: u64,
    /// How often readiness (`ChainApi::ready`) is copied into the health status
    /// of `dualchain.v1.Node`.
    pub ready_poll_interval: Duration,
    /// How long in-flight calls may run after shutdown starts.
    pub shutdown_grace: Duration,
    /// Where the API's request metrics are registered (none: not exported).
    pub metrics_registry: Option<Registry>,
    /// How many connections are kept, per address, and for how long idle.
    pub connections: ConnectionLimits,
    /// How many calls run at once and for how long.
    pub calls: CallLimits,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            admin_token: None,
            admin_tls: None,
            max_message_bytes: DEFAULT_MAX_GRPC_MESSAGE_BYTES,
            finality_stream_buffer: MIN_FINALITY_STREAM_BUFFER,
            max_replay_blocks: DEFAULT_MAX_REPLAY_BLOCKS,
            ready_poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
            metrics_registry: None,
            connections: ConnectionLimits::default(),
            calls: CallLimits::default(),
        }
    }
}

impl fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_tls", &self.admin_tls)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("finality_stream_buffer", &self.finality_stream_buffer)
            .field("max_replay_blocks", &self.max_replay_blocks)
            .field("ready_poll_interval", &self.ready_poll_interval)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("metrics_registry", &self.metrics_registry.is_some())
            .field("connections", &self.connections)
            .field("calls", &self.calls)
            .finish()
    }
}

impl ApiOptions {
    /// Checks the options, with a message naming the field.
    pub fn validate(&self) -> Result<(), ApiServeError> {
        let invalid = |message: String| Err(ApiServeError::InvalidOptions(message));
        if let Some(credential) = &self.admin_token {
            credential.validate().or_else(invalid)?;
        }
        if self.max_message_bytes == 0 {
            return invalid("max_message_bytes must be positive".into());
        }
        if self.finality_stream_buffer < MIN_FINALITY_STREAM_BUFFER {
            return invalid(format!(
                "finality_stream_buffer must be at least {MIN_FINALITY_STREAM_BUFFER}, got {}",
                self.finality_stream_buffer
            ));
        }
        if self.max_replay_blocks == 0 {
            return invalid("max_replay_blocks must be positive".into());
        }
        if self.ready_poll_interval.is_zero() {
            return invalid("ready_poll_interval must be positive".into());
        }
        self.connections
            .validate()
            .or_else(|message| invalid(format!("connections.{message}")))?;
        self.calls
            .validate()
            .or_else(|message| invalid(format!("calls.{message}")))?;
        Ok(())
    }
}

/// Why the gRPC API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiServeError {
    #[error("cannot listen for the gRPC API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the API listener's address: {0}")]
    LocalAddr(std::io::Error),
    #[error("invalid API options: {0}")]
    InvalidOptions(String),
    #[error("cannot register the API request metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the admin gRPC server failed: {0}")]
    AdminTransport(tonic::transport::Error),
    #[error("the admin API task ended abnormally: {0}")]
    AdminTask(String),
}

/// The listeners of one chain's API: the public one, and the `Admin` service's
/// own (loopback, or TLS with [`ApiOptions::admin_tls`]).
pub struct ApiListeners {
    pub api: TcpListener,
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for ApiListeners {
    /// The public listener alone: no admin API.
    fn from(api: TcpListener) -> Self {
        Self { api, admin: None }
    }
}

impl ApiListeners {
    /// The admin listener and the admin options agree: a credential and a
    /// listener come together, TLS only with a listener.
    fn check_admin(&self, options: &ApiOptions) -> Result<(), ApiServeError> {
        let invalid = |message: &str| Err(ApiServeError::InvalidOptions(message.into()));
        match (&self.admin, &options.admin_token) {
            (None, Some(_)) => invalid(
                "admin_token is set but there is no admin listener: the Admin service is \
                 served only on its own listener (loopback, or TLS), never on the public port",
            ),
            (Some(_), None) => invalid(
                "an admin listener needs admin_token: without a credential nobody could call it",
            ),
            (None, None) if options.admin_tls.is_some() => {
                invalid("admin_tls is set but there is no admin listener to present it")
            }
            _ => Ok(()),
        }
    }
}

/// What every service of one server shares.
pub(crate) struct Context {
    pub(crate) api: Arc<dyn ChainApi>,
    pub(crate) metrics: RequestMetrics,
    /// Turns true when shutdown starts; long-lived streams watch it.
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) finality_stream_buffer: usize,
    pub(crate) max_replay_blocks: u64,
    /// Longest a `SubmitTransactions` stream may go without a message.
    pub(crate) submission_idle_timeout: Duration,
    /// Permits for chain calls on blocking threads ([`MAX_BLOCKING_CALLS`]).
    pub(crate) blocking: Arc<Semaphore>,
}

/// Binds `listen` and serves the gRPC API of `api`'s chain until `shutdown`
/// completes (see the module docs for the shutdown sequence).
pub async fn serve_api(
    listen: SocketAddr,
    api: Arc<dyn ChainApi>,
    options: ApiOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiServeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ApiServeError::Bind {
            addr: listen,
            source,
        })?;
    serve_api_on(listener, api, options, shutdown).await
}

/// [`serve_api`] on already bound listeners (bind port 0 and read the port
/// first, as tests and the devnet do): the public one, and optionally the
/// `Admin` service's own.
pub async fn serve_api_on(
    listeners: impl Into<ApiListeners>,
    api: Arc<dyn ChainApi>,
    options: ApiOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiServeError> {
    options.validate()?;
    let ApiListeners {
        api: listener,
        admin: admin_listener,
    } = {
        let listeners = listeners.into();
        listeners.check_admin(&options)?;
        listeners
    };
    let chain = api.chain();
    let admin_server = admin_listener
        .map(|l| AdminListener::prepare(l, options.admin_tls.as_ref(), chain))
        .transpose()?;
    let local_addr = listener.local_addr().map_err(ApiServeError::LocalAddr)?;
    let metrics = RequestMetrics::new(chain, options.metrics_registry.as_ref())?;
    let (stop_sender, stop_receiver) = watch::channel(false);
    let context = Arc::new(Context {
        api: Arc::clone(&api),
        metrics: metrics.clone(),
        shutdown: stop_receiver.clone(),
        finality_stream_buffer: options.finality_stream_buffer,
        max_replay_blocks: options.max_replay_blocks,
        submission_idle_timeout: options.calls.submission_idle_timeout,
        blocking: Arc::new(Semaphore::new(MAX_BLOCKING_CALLS)),
    });
    let registry = options.metrics_registry.as_ref();
    let connections = ConnectionTable::new(options.connections.clone(), chain, registry)?;
    let gate = CallGateLayer::new(&options.calls, Arc::clone(&connections), chain, registry)?;

    let limit = options.max_message_bytes;
    let query_limit = limit.min(MAX_QUERY_REQUEST_BYTES);
    let transactions = OversizeIsResourceExhausted::new(InterceptedService::new(
        TransactionsServer::new(TransactionsService::new(Arc::clone(&context)))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit),
        SubmitDoor::new(Arc::clone(&api)),
    ));
    let node = OversizeIsResourceExhausted::new(
        NodeServer::new(NodeService::new(Arc::clone(&context)))
            .max_decoding_message_size(query_limit)
            .max_encoding_message_size(limit),
    );
    let crosschain = OversizeIsResourceExhausted::new(
        CrossChainServer::new(CrossChainService::new(Arc::clone(&context)))
            .max_decoding_message_size(query_limit)
            .max_encoding_message_size(limit),
    );
    let admin = OversizeIsResourceExhausted::new(InterceptedService::new(
        AdminServer::new(AdminService::new(Arc::clone(&context)))
            .max_decoding_message_size(query_limit)
            .max_encoding_message_size(limit),
        AdminAuth::new(options.admin_token.as_ref(), metrics),
    ));
    let reflection_v1 = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;
    let (health, health_task) =
        crate::health::start(Arc::clone(&api), options.ready_poll_interval, stop_receiver).await;

    let (stop_accepting, stop_accepting_signal) = oneshot::channel::<()>();
    let incoming = LimitedIncoming::new(listener, Arc::clone(&connections));
    let reaper = tokio::spawn(Arc::clone(&connections).reap_idle());
    let server = Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .concurrency_limit_per_connection(MAX_CALLS_PER_CONNECTION)
        .load_shed(true)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .layer(gate)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(transactions)
        .add_service(node)
        .add_service(crosschain)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_accepting_signal.await;
        });
    let mut server = pin!(server);
    let _reaper = AbortOnDrop(reaper);
    tracing::info!(
        %chain,
        addr = %local_addr,
        max_connections = options.connections.max_connections,
        "gRPC API listening"
    );
    let mut admin_task = admin_server.map(|admin_server| {
        tracing::info!(
            %chain,
            addr = %admin_server.addr,
            tls = admin_server.tls,
            "gRPC admin API listening"
        );
        // It stops with the public server.
        let mut stopped = stop_sender.subscribe();
        tokio::spawn(admin_server.run(admin, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let admin_ended = async {
        match admin_task.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };

    tokio::select! {
        result = &mut server => {
            // The server stopped on its own: an accept-loop error.
            stop_sender.send_replace(true);
            health_task.abort();
            result?;
            return Ok(());
        }
        ended = admin_ended => {
            // The admin server stopped on its own: an accept-loop error.
            stop_sender.send_replace(true);
            health_task.abort();
            ended.map_err(|e| ApiServeError::AdminTask(e.to_string()))??;
            return Ok(());
        }
        () = shutdown => {}
    }

    tracing::info!(%chain, addr = %local_addr, "gRPC API shutting down");
    stop_sender.send_replace(true);
    // Readiness turns NOT_SERVING before the listener closes.
    if let Err(error) = health_task.await {
        tracing::warn!(%error, "health task ended abnormally");
    }
    let _ = stop_accepting.send(());
    if let Some(task) = admin_task
        && let Ok(Ok(Err(error))) = tokio::time::timeout(options.shutdown_grace, task).await
    {
        tracing::warn!(%chain, %error, "the admin API ended with an error while stopping");
    }
    match tokio::time::timeout(options.shutdown_grace, &mut server).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            %chain,
            grace = ?options.shutdown_grace,
            "gRPC API connections still open after the shutdown grace period; leaving them"
        ),
    }
    tracing::info!(%chain, "gRPC API stopped");
    Ok(())
}

/// Aborts a background task when the server returns, however it returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reflection over `dualchain.v1` and `grpc.health.v1`, advertising what this
/// port serves: not `Admin`, whose listener is another (the reflection service
/// describes itself).
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    use dualchain_proto::v1::{cross_chain_server, node_server, transactions_server};
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dualchain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(transactions_server::SERVICE_NAME)
        .with_service_name(node_server::SERVICE_NAME)
        .with_service_name(cross_chain_server::SERVICE_NAME)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_proto_limits() {
        let options = ApiOptions::default();
        options.validate().unwrap();
        assert_eq!(options.max_message_bytes, 64 * 1024 * 1024);
        assert!(options.finality_stream_buffer >= 1_024);
    }

    #[test]
    fn bad_options_are_refused_with_the_field_name() {
        let cases: [(ApiOptions, &str); 5] = [
            (
                ApiOptions {
                    admin_token: Some(String::new().into()),
                    ..Default::default()
                },
                "admin_token",
            ),
            (
                ApiOptions {
                    admin_token: Some("has space".into()),
                    ..Default::default()
                },
                "admin_token",
            ),
            (
                ApiOptions {
                    finality_stream_buffer: 10,
                    ..Default::default()
                },
                "finality_stream_buffer",
            ),
            (
                ApiOptions {
                    ready_poll_interval: Duration::ZERO,
                    ..Default::default()
                },
                "ready_poll_interval",
            ),
            (
                ApiOptions {
                    max_replay_blocks: 0,
                    ..Default::default()
                },
                "max_replay_blocks",
            ),
        ];
        for (options, field) in cases {
            let message = options.validate().unwrap_err().to_string();
            assert!(message.contains(field), "{message}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let options = ApiOptions {
            admin_token: Some("very-secret-token".into()),
            ..Default::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("very-secret-token"));
        assert!(shown.contains("redacted"));
        let digest = AdminCredential::digest_of("very-secret-token");
        let options = ApiOptions {
            admin_token: Some(AdminCredential::Blake3Digest(digest)),
            ..Default::default()
        };
        options.validate().unwrap();
        let shown = format!("{options:?}");
        assert!(!shown.contains(&hex::encode(digest)), "{shown}");
    }
}
