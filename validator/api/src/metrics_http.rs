//! The Prometheus endpoint (HTTP/1.1):
//!
//! - `GET /metrics`: every metric of the registry in the text exposition format
//!   (`text/plain; version=0.0.4; charset=utf-8`);
//! - `GET /healthz`: 200 `ok` while the process serves (a plain-HTTP liveness
//!   check for tools that do not speak gRPC);
//! - anything else: 404.
//!
//! `HEAD` is answered like `GET` without a body. Shutdown is graceful: in-flight
//! scrapes finish, idle keep-alive connections are closed, for at most
//! [`METRICS_SHUTDOWN_GRACE`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Content type of the text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long open metrics connections may take to finish after shutdown starts.
pub const METRICS_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the metrics endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsServeError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `listen` and serves `registry` until `shutdown` completes.
pub async fn serve_metrics(
    listen: SocketAddr,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), MetricsServeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsServeError::Bind {
            addr: listen,
            source,
        })?;
    serve_metrics_on(listener, registry, shutdown).await
}

/// [`serve_metrics`] on an already bound listener.
pub async fn serve_metrics_on(
    listener: TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), MetricsServeError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics endpoint listening");
    }
    let app = Router::new().fallback(route).with_state(Arc::new(registry));
    let (stop, stop_signal) = oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = stop_signal.await;
    });
    let mut server = pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result.map_err(MetricsServeError::Serve),
        () = shutdown => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(METRICS_SHUTDOWN_GRACE, &mut server).await {
        Ok(result) => result.map_err(MetricsServeError::Serve),
        Err(_) => {
            tracing::warn!("metrics connections still open after the grace period; leaving them");
            Ok(())
        }
    }
}

/// The whole routing table: two paths, GET or HEAD only.
async fn route(State(registry): State<Arc<Registry>>, method: Method, uri: Uri) -> Response {
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return not_found();
    }
    let mut response = match uri.path() {
        "/metrics" => metrics(&registry),
        "/healthz" => (StatusCode::OK, "ok\n").into_response(),
        _ => return not_found(),
    };
    if head {
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

fn metrics(registry: &Registry) -> Response {
    let mut body = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode metrics: {error}\n"),
            )
                .into_response()
        }
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: this endpoint serves GET /metrics and GET /healthz\n",
    )
        .into_response()
}
