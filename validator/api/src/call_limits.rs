//! Limits on calls: how many run at once (load shedding), how long a unary
//! call may take, and the connection bookkeeping that lets idle connections be
//! told from busy ones.
//!
//! Every call passes [`CallGate`] before it reaches its service:
//! - a streaming method (`StreamFinality`, health `Watch`, reflection) takes a
//!   permit of [`CallLimits::max_streams_open`]; any other call one of
//!   [`CallLimits::max_calls_in_flight`], and a `dualchain.v1.Transactions`
//!   call also one of [`CallLimits::max_submissions_in_flight`] (each may
//!   buffer a message of up to the message limit). Long-lived streams thus
//!   never use up the permits of unary calls such as `GetStatus`. Without a permit the call is answered at once with
//!   RESOURCE_EXHAUSTED: under overload the server sheds work instead of
//!   queueing it without bound, and clients (the load generator does) retry;
//! - the permits are held until the response body ends, so an open
//!   `StreamFinality` counts for as long as it streams;
//! - a call that has not produced its response headers within
//!   [`CallLimits::call_timeout`] ends with DEADLINE_EXCEEDED, except
//!   `SubmitTransactions`, whose response comes when the client half-closes (its
//!   stream is bounded by [`CallLimits::submission_idle_timeout`] between
//!   messages instead, see `transactions`). A shorter `grpc-timeout` sent by
//!   the client applies as well (tonic);
//! - the call is counted on its connection ([`ConnectionTable::begin_call`])
//!   so a connection with a call in flight is never closed as idle.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dualchain_core::types::ChainId;
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};

use crate::connections::{ApiConnectInfo, CallOnConnection, ConnectionTable};

/// The client-streaming submission method: its response future runs as long
/// as the client keeps sending.
const SUBMIT_TRANSACTIONS_PATH: &str = "/dualchain.v1.Transactions/SubmitTransactions";
/// Every method of the submission service.
const TRANSACTIONS_PREFIX: &str = "/dualchain.v1.Transactions/";
/// Methods whose response is a long-lived stream.
const STREAM_PATHS: [&str; 4] = [
    "/dualchain.v1.Node/StreamFinality",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// How many calls run at once and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// Calls in flight at once, streaming methods not included.
    pub max_calls_in_flight: usize,
    /// Streaming methods (`StreamFinality`, health `Watch`, reflection) open at
    /// once.
    pub max_streams_open: usize,
    /// `Transactions` calls in flight at once (each may hold a request message
    /// of up to the message limit in memory).
    pub max_submissions_in_flight: usize,
    /// Longest a call may take to answer (not a stream's lifetime).
    pub call_timeout: Duration,
    /// Longest a `SubmitTransactions` stream may go without a message.
    pub submission_idle_timeout: Duration,
}

impl CallLimits {
    pub const DEFAULT_MAX_CALLS_IN_FLIGHT: usize = 1_024;
    pub const DEFAULT_MAX_STREAMS_OPEN: usize = 256;
    pub const DEFAULT_MAX_SUBMISSIONS_IN_FLIGHT: usize = 16;
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_SUBMISSION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    /// Checks the limits, with a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_calls_in_flight == 0 {
            return Err("max_calls_in_flight must be positive".into());
        }
        if self.max_streams_open == 0 {
            return Err("max_streams_open must be positive".into());
        }
        if self.max_submissions_in_flight == 0
            || self.max_submissions_in_flight > self.max_calls_in_flight
        {
            return Err(format!(
                "max_submissions_in_flight must be between 1 and max_calls_in_flight ({}), got {}",
                self.max_calls_in_flight, self.max_submissions_in_flight
            ));
        }
        if self.call_timeout.is_zero() {
            return Err("call_timeout must be positive".into());
        }
        if self.submission_idle_timeout.is_zero() {
            return Err("submission_idle_timeout must be positive".into());
        }
        Ok(())
    }
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            max_calls_in_flight: Self::DEFAULT_MAX_CALLS_IN_FLIGHT,
            max_streams_open: Self::DEFAULT_MAX_STREAMS_OPEN,
            max_submissions_in_flight: Self::DEFAULT_MAX_SUBMISSIONS_IN_FLIGHT,
            call_timeout: Self::DEFAULT_CALL_TIMEOUT,
            submission_idle_timeout: Self::DEFAULT_SUBMISSION_IDLE_TIMEOUT,
        }
    }
}

/// The tower layer of [`CallGate`] (shared state; one gate per connection).
#[derive(Clone)]
pub(crate) struct CallGateLayer {
    calls: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    submissions: Arc<Semaphore>,
    call_timeout: Duration,
    table: Arc<ConnectionTable>,
    refused: IntCounterVec,
}

impl CallGateLayer {
    pub(crate) fn new(
        limits: &CallLimits,
        table: Arc<ConnectionTable>,
        chain: ChainId,
        registry: Option<&Registry>,
    ) -> prometheus::Result<Self> {
        let refused = IntCounterVec::new(
            Opts::new(
                "dualchain_api_calls_refused_total",
                "gRPC API calls refused before their handler answered (reason: busy, \
                 streams_busy, submissions_busy, timeout)",
            )
            .const_label("chain", chain.name()),
            &["reason"],
        )?;
        if let Some(registry) = registry {
            registry.register(Box::new(refused.clone()))?;
        }
        Ok(Self {
            calls: Arc::new(Semaphore::new(limits.max_calls_in_flight)),
            streams: Arc::new(Semaphore::new(limits.max_streams_open)),
            submissions: Arc::new(Semaphore::new(limits.max_submissions_in_flight)),
            call_timeout: limits.call_timeout,
            table,
            refused,
        })
    }
}

impl<S> tower::Layer<S> for CallGateLayer {
    type Service = CallGate<S>;

    fn layer(&self, inner: S) -> CallGate<S> {
        CallGate {
            inner,
            shared: self.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct CallGate<S> {
    inner: S,
    shared: CallGateLayer,
}

/// What a call holds until its response body ends.
struct Held {
    /// A stream permit for streaming methods, a call permit for the rest.
    _permit: OwnedSemaphorePermit,
    _submission: Option<OwnedSemaphorePermit>,
    _on_connection: Option<CallOnConnection>,
}

/// Which limit turned a call away.
#[derive(Clone, Copy, Debug)]
enum Shed {
    Calls,
    Streams,
    Submissions,
}

impl Shed {
    fn reason(self) -> &'static str {
        match self {
            Shed::Calls => "busy",
            Shed::Streams => "streams_busy",
            Shed::Submissions => "submissions_busy",
        }
    }

    fn status(self) -> Status {
        let what = match self {
            Shed::Calls => "calls in flight",
            Shed::Streams => "open streams",
            Shed::Submissions => "submission calls in flight",
        };
        Status::resource_exhausted(format!("the server is at its limit of {what}; retry"))
    }
}

impl CallGateLayer {
    fn refuse(&self, reason: &str, status: Status) -> Response<Body> {
        self.refused.with_label_values(&[reason]).inc();
        status.into_http()
    }

    /// The permits for a call to `path` (a stream permit, or a call permit and for
    /// a submission a submission permit too), or the limit that sheds it.
    fn admit(
        &self,
        path: &str,
    ) -> Result<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>), Shed> {
        let permit = |pool: &Arc<Semaphore>, shed: Shed| {
            Arc::clone(pool).try_acquire_owned().map_err(|_| shed)
        };
        if STREAM_PATHS.contains(&path) {
            return Ok((permit(&self.streams, Shed::Streams)?, None));
        }
        let call = permit(&self.calls, Shed::Calls)?;
        let submission = if path.starts_with(TRANSACTIONS_PREFIX) {
            Some(permit(&self.submissions, Shed::Submissions)?)
        } else {
            None
        };
        Ok((call, submission))
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> Service<Request<Body>> for CallGate<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let timeout = (path != SUBMIT_TRANSACTIONS_PATH).then_some(self.shared.call_timeout);
        let (permit, submission) = match self.shared.admit(path) {
            Ok(permits) => permits,
            Err(shed) => {
                let refusal = self.shared.refuse(shed.reason(), shed.status());
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        };
        let held = Held {
            _permit: permit,
            _submission: submission,
            _on_connection: request
                .extensions()
                .get::<ApiConnectInfo>()
                .map(|info| self.shared.table.begin_call(Arc::clone(&info.slot))),
        };
        let shared = self.shared.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match timeout {
                None => response.await?,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response?,
                    Err(_) => {
                        return Ok(shared.refuse(
                            "timeout",
                            Status::deadline_exceeded(format!(
                                "the call did not answer within the server's limit of {limit:?}"
                            )),
                        ));
                    }
                },
            };
            Ok(response.map(|body| Body::new(HoldUntilEnd { body, _held: held })))
        })
    }
}

/// A response body that keeps the call's permits until it ends (or is
/// dropped because the client went away).
struct HoldUntilEnd {
    body: Body,
    _held: Held,
}

impl http_body::Body for HoldUntilEnd {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_with_the_field_name() {
        let bad: [(CallLimits, &str); 5] = [
            (
                CallLimits {
                    max_calls_in_flight: 0,
                    ..Default::default()
                },
                "max_calls_in_flight",
            ),
            (
                CallLimits {
                    max_streams_open: 0,
                    ..Default::default()
                },
                "max_streams_open",
            ),
            (
                CallLimits {
                    max_submissions_in_flight: 2_000,
                    ..Default::default()
                },
                "max_submissions_in_flight",
            ),
            (
                CallLimits {
                    call_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "call_timeout",
            ),
            (
                CallLimits {
                    submission_idle_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "submission_idle_timeout",
            ),
        ];
        for (limits, field) in bad {
            assert!(limits.validate().unwrap_err().contains(field));
        }
        CallLimits::default().validate().unwrap();
    }
}
