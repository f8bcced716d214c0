//! Oversized request messages are RESOURCE_EXHAUSTED, as `transactions.proto`
//! documents (and as gRPC specifies for exceeded limits).
//!
//! tonic refuses a request message above `max_decoding_message_size` with
//! OUT_OF_RANGE before any handler runs. [`OversizeIsResourceExhausted`] wraps a
//! service and rewrites that one status, keeping tonic's message (which states
//! the size and the limit); [`remap`] does the same for statuses met while
//! reading a client stream inside a handler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::Service;
use tonic::codegen::http::{self, HeaderMap};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// How tonic's decoder starts its message for a request over the limit.
const DECODE_TOO_LARGE: &str = "Error, decoded message length too large";

/// `status` with OUT_OF_RANGE turned into RESOURCE_EXHAUSTED if it reports a
/// request message over the size limit; any other status unchanged.
pub(crate) fn remap(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().starts_with(DECODE_TOO_LARGE) {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}

/// Rewrites the status of a trailers-only response in place.
fn remap_headers(headers: &mut HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() != Code::OutOfRange {
        return;
    }
    let remapped = remap(status);
    if remapped.code() == Code::ResourceExhausted
        && let Err(error) = remapped.add_header(headers)
    {
        tracing::warn!(%error, "cannot rewrite an oversized-message status");
    }
}

/// A gRPC service whose oversized-request refusals say RESOURCE_EXHAUSTED.
#[derive(Clone, Debug)]
pub(crate) struct OversizeIsResourceExhausted<S> {
    inner: S,
}

impl<S> OversizeIsResourceExhausted<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for OversizeIsResourceExhausted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for OversizeIsResourceExhausted<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            remap_headers(response.headers_mut());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_size_refusal_is_remapped() {
        let oversized = Status::out_of_range(
            "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
        );
        let remapped = remap(oversized);
        assert_eq!(remapped.code(), Code::ResourceExhausted);
        assert!(remapped.message().contains("the limit is: 4 bytes"));
        assert_eq!(
            remap(Status::out_of_range("from_height too old")).code(),
            Code::OutOfRange
        );
        assert_eq!(
            remap(Status::not_found("Error, decoded message length too large")).code(),
            Code::NotFound
        );
    }

    #[test]
    fn trailers_only_headers_are_rewritten() {
        let mut headers = HeaderMap::new();
        Status::out_of_range("Error, decoded message length too large: found 9 bytes")
            .add_header(&mut headers)
            .unwrap();
        remap_headers(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("found 9 bytes"));
    }
}
