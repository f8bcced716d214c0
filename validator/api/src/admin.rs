//! Service `Admin`: pause/resume, snapshots and fault injection, behind the
//! admin bearer token.
//!
//! Authentication runs in [`AdminAuth`], a tonic interceptor, before any
//! handler, against the node's [`AdminCredential`]: a token is checked by
//! [`RequireAdminToken`] (constant-time comparison, one fixed message that never
//! echoes a token); a BLAKE3 digest by hashing the presented bearer token and
//! comparing digests in constant time, so the node never holds the token
//! itself. Without a credential every call is UNAUTHENTICATED with a message
//! saying the admin API is disabled. Chain calls that may block (locks, file
//! writes) run on blocking threads.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use dualchain_proto::limits::MAX_PAUSE_REASON_BYTES;
use dualchain_proto::v1::{
    Chain, FaultInjection, GetFaultInjectionRequest, PauseChainRequest, PauseChainResponse,
    ResumeChainRequest, ResumeChainResponse, SnapshotResult, TriggerSnapshotRequest,
};
use dualchain_proto::{Admin, AdminToken, RequireAdminToken, check_bearer_token};
use tonic::service::Interceptor;
use tonic::{Code, Request, Response, Status};

use crate::convert::{fault_change_from_proto, fault_plan_to_proto, snapshot_to_proto};
use crate::request_metrics::RequestMetrics;
use crate::server::Context;
use crate::status::{api_status, blocking};

/// Message of every admin call on a node without an admin token.
const ADMIN_DISABLED: &str =
    "admin API disabled: this node has no admin token configured, so every Admin call is refused";

/// What a node checks the bearer token of an `Admin` call against.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminCredential {
    /// The token itself (visible ASCII without spaces).
    Token(String),
    /// The BLAKE3 digest of the token's bytes: the node can check a token without
    /// holding it, so reading the node's files or memory reveals no token.
    Blake3Digest([u8; 32]),
}

impl AdminCredential {
    /// The digest of `token`, as [`AdminCredential::Blake3Digest`] expects it.
    pub fn digest_of(token: &str) -> [u8; 32] {
        *blake3::hash(token.as_bytes()).as_bytes()
    }

    /// Checks a token credential (digests are always well formed).
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            AdminCredential::Token(token) if AdminToken::new(token).is_err() => Err(
                "admin_token must be non-empty visible ASCII without spaces (use None to \
                 disable the admin API)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

impl From<String> for AdminCredential {
    fn from(token: String) -> Self {
        AdminCredential::Token(token)
    }
}

impl From<&str> for AdminCredential {
    fn from(token: &str) -> Self {
        AdminCredential::Token(token.to_string())
    }
}

impl fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminCredential::Token(_) => f.write_str("Token(<redacted>)"),
            AdminCredential::Blake3Digest(_) => f.write_str("Blake3Digest(<redacted>)"),
        }
    }
}

#[derive(Clone)]
enum Check {
    Token(RequireAdminToken),
    Digest(blake3::Hash),
}

/// The credential check in front of the `Admin` service.
#[derive(Clone)]
pub(crate) struct AdminAuth {
    check: Option<Check>,
    metrics: RequestMetrics,
}

impl AdminAuth {
    /// A token credential must be valid (checked by the server options).
    pub(crate) fn new(credential: Option<&AdminCredential>, metrics: RequestMetrics) -> Self {
        Self {
            check: credential.map(|c| match c {
                AdminCredential::Token(token) => {
                    Check::Token(RequireAdminToken::new(token.as_str()))
                }
                AdminCredential::Blake3Digest(digest) => {
                    Check::Digest(blake3::Hash::from_bytes(*digest))
                }
            }),
            metrics,
        }
    }
}

impl Interceptor for AdminAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let checked = match &mut self.check {
            Some(Check::Token(token)) => token.call(request),
            Some(Check::Digest(digest)) => {
                // `blake3::Hash` equality is constant-time.
                check_bearer_token(request.metadata(), |presented| {
                    blake3::hash(presented.as_bytes()) == *digest
                })
                .map(|()| request)
            }
            None => Err(Status::unauthenticated(ADMIN_DISABLED)),
        };
        if checked.is_err() {
            self.metrics.count("Admin", Code::Unauthenticated);
        }
        checked
    }
}

/// The `Admin` service of one chain.
pub(crate) struct AdminService {
    context: Arc<Context>,
}

impl AdminService {
    pub(crate) fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    fn resolve(&self, chain: i32) -> Result<Chain, Status> {
        crate::chain::resolve(chain, self.context.api.chain())
    }

    async fn pause_inner(&self, request: PauseChainRequest) -> Result<PauseChainResponse, Status> {
        let chain = self.resolve(request.chain)?;
        if request.reason.len() > MAX_PAUSE_REASON_BYTES {
            return Err(Status::invalid_argument(format!(
                "reason is {} bytes, at most {MAX_PAUSE_REASON_BYTES} are allowed",
                request.reason.len()
            )));
        }
        let api = Arc::clone(&self.context.api);
        let (already_paused, height) = blocking(&self.context.blocking, "pause", move || {
            api.pause(&request.reason).map_err(api_status)
        })
        .await??;
        tracing::info!(
            chain = chain.as_str_name(),
            already_paused,
            height,
            "chain paused via admin API"
        );
        Ok(PauseChainResponse {
            chain: chain as i32,
            already_paused,
            height,
        })
    }

    async fn resume_inner(
        &self,
        request: ResumeChainRequest,
    ) -> Result<ResumeChainResponse, Status> {
        let chain = self.resolve(request.chain)?;
        let api = Arc::clone(&self.context.api);
        let (already_running, height) = blocking(&self.context.blocking, "resume", move || {
            api.resume().map_err(api_status)
        })
        .await??;
        tracing::info!(
            chain = chain.as_str_name(),
            already_running,
            height,
            "chain resumed via admin API"
        );
        Ok(ResumeChainResponse {
            chain: chain as i32,
            already_running,
            height,
        })
    }

    async fn snapshot_inner(
        &self,
        request: TriggerSnapshotRequest,
    ) -> Result<SnapshotResult, Status> {
        let chain = self.resolve(request.chain)?;
        let api = Arc::clone(&self.context.api);
        let snapshot = blocking(&self.context.blocking, "snapshot", move || {
            api.snapshot().map_err(api_status)
        })
        .await??;
        let result = snapshot_to_proto(snapshot);
        tracing::info!(
            chain = chain.as_str_name(),
            height = result.height,
            path = %result.path,
            "snapshot written via admin API"
        );
        Ok(result)
    }

    async fn set_faults_inner(&self, faults: FaultInjection) -> Result<FaultInjection, Status> {
        let chain = self.resolve(faults.chain)?;
        // Limits first, then the peer ids: both INVALID_ARGUMENT before the chain
        // sees anything.
        let change = fault_change_from_proto(&faults)?;
        let api = Arc::clone(&self.context.api);
        let served = api.chain();
        let plan = blocking(&self.context.blocking, "fault injection", move || {
            api.set_faults(change).map_err(api_status)
        })
        .await??;
        let in_force = fault_plan_to_proto(&plan, served);
        tracing::info!(
            chain = chain.as_str_name(),
            active = in_force.active,
            "fault injection set via admin API"
        );
        Ok(in_force)
    }

    fn get_faults_inner(
        &self,
        request: GetFaultInjectionRequest,
    ) -> Result<FaultInjection, Status> {
        self.resolve(request.chain)?;
        let api = &self.context.api;
        Ok(fault_plan_to_proto(&api.faults(), api.chain()))
    }

    fn observe<T>(
        &self,
        method: &str,
        started: Instant,
        result: Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        self.context.metrics.observe(method, started, &result);
        result.map(Response::new)
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn pause_chain(
        &self,
        request: Request<PauseChainRequest>,
    ) -> Result<Response<PauseChainResponse>, Status> {
        let started = Instant::now();
        let result = self.pause_inner(request.into_inner()).await;
        self.observe("PauseChain", started, result)
    }

    async fn resume_chain(
        &self,
        request: Request<ResumeChainRequest>,
    ) -> Result<Response<ResumeChainResponse>, Status> {
        let started = Instant::now();
        let result = self.resume_inner(request.into_inner()).await;
        self.observe("ResumeChain", started, result)
    }

    async fn trigger_snapshot(
        &self,
        request: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<SnapshotResult>, Status> {
        let started = Instant::now();
        let result = self.snapshot_inner(request.into_inner()).await;
        self.observe("TriggerSnapshot", started, result)
    }

    async fn set_fault_injection(
        &self,
        request: Request<FaultInjection>,
    ) -> Result<Response<FaultInjection>, Status> {
        let started = Instant::now();
        let result = self.set_faults_inner(request.into_inner()).await;
        self.observe("SetFaultInjection", started, result)
    }

    async fn get_fault_injection(
        &self,
        request: Request<GetFaultInjectionRequest>,
    ) -> Result<Response<FaultInjection>, Status> {
        let started = Instant::now();
        let result = self.get_faults_inner(request.into_inner());
        self.observe("GetFaultInjection", started, result)
    }
}
