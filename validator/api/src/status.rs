//! The one place where chain errors become gRPC statuses.
//!
//! Every handler maps [`ApiError`] through [`api_status`] so the code a client
//! sees for a given failure is the same on every RPC, and matches the codes the
//! .proto files document (NOT_FOUND for missing blocks, ABORTED for a snapshot
//! already running, RESOURCE_EXHAUSTED for a full volume, ...).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::Status;

use crate::ApiError;

/// The gRPC status for a chain error. Messages are passed through: the chain
/// writes them for operators and never puts secrets in them.
pub(crate) fn api_status(error: ApiError) -> Status {
    match error {
        ApiError::InvalidArgument(message) => Status::invalid_argument(message),
        ApiError::NotFound(message) => Status::not_found(message),
        ApiError::Unavailable(message) => Status::unavailable(message),
        ApiError::FailedPrecondition(message) => Status::failed_precondition(message),
        ApiError::Aborted(message) => Status::aborted(message),
        ApiError::ResourceExhausted(message) => Status::resource_exhausted(message),
        ApiError::Internal(message) => Status::internal(format!("internal error: {message}")),
    }
}

/// The status for a blocking task that panicked or was cancelled: the request
/// fails, the server keeps running.
pub(crate) fn join_status(what: &str, error: tokio::task::JoinError) -> Status {
    tracing::error!(task = what, %error, "blocking API task failed");
    Status::internal(format!("internal error: {what} did not complete"))
}

/// Runs a CPU- or I/O-bound chain call off the async workers, once one of
/// `threads`' permits is free (so calls never grow the blocking pool without
/// bound). The permit goes with the work: a call that times out or is
/// cancelled frees it only when its thread is done.
pub(crate) async fn blocking<T, F>(
    threads: &Arc<Semaphore>,
    what: &'static str,
    work: F,
) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let permit = Arc::clone(threads)
        .acquire_owned()
        .await
        .map_err(|_| Status::unavailable("the server is shutting down"))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|error| join_status(what, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn every_error_kind_has_its_documented_code() {
        let cases = [
            (ApiError::InvalidArgument("a".into()), Code::InvalidArgument),
            (ApiError::NotFound("b".into()), Code::NotFound),
            (ApiError::Unavailable("c".into()), Code::Unavailable),
            (
                ApiError::FailedPrecondition("d".into()),
                Code::FailedPrecondition,
            ),
            (ApiError::Aborted("e".into()), Code::Aborted),
            (
                ApiError::ResourceExhausted("f".into()),
                Code::ResourceExhausted,
            ),
            (ApiError::Internal("g".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            let status = api_status(error);
            assert_eq!(status.code(), code);
            assert!(status.message().contains(&message), "{}", status.message());
        }
    }

    #[tokio::test]
    async fn a_panicking_blocking_task_is_an_internal_status() {
        let threads = Arc::new(Semaphore::new(1));
        let status = blocking(&threads, "test work", || -> u32 { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("test work"));
    }
}
