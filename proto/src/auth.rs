//! Bearer-token authentication of the `Admin` service.
//!
//! Every `Admin` call carries the metadata entry
//! `authorization: Bearer TOKEN`. Servers check it with [`check_admin_token`]
//! (or wrap the service with [`RequireAdminToken`]); clients attach it with
//! the [`AdminToken`] interceptor.

use std::{fmt, sync::Arc};

use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataMap, MetadataValue},
    service::Interceptor,
};

/// Metadata key carrying the admin credentials.
pub const ADMIN_AUTH_METADATA_KEY: &str = "authorization";

/// Authentication scheme expected in front of the token.
const BEARER: &str = "Bearer";

/// The single message returned for every authentication failure, so that a
/// caller learns nothing about why (and never sees the expected token).
const REFUSED: &str = "admin call refused: missing or invalid bearer token";

/// Checks that `metadata` carries `authorization: Bearer <expected>`.
///
/// The token comparison takes time independent of where the tokens differ
/// (it depends only on the length of the presented token). The scheme word is
/// matched case-insensitively. Any failure — missing entry, non-ASCII value,
/// wrong scheme, wrong token, or an empty `expected` (no token configured) —
/// yields `UNAUTHENTICATED` with a fixed message that contains neither the
/// expected nor the presented token.
pub fn check_admin_token(metadata: &MetadataMap, expected: &str) -> Result<(), Status> {
    check_bearer_token(metadata, |presented| {
        !expected.is_empty() && constant_time_eq(presented.as_bytes(), expected.as_bytes())
    })
}

/// Checks the `authorization: Bearer <token>` entry of `metadata` with `accept`,
/// for credentials other than the token itself (a node holding only the token's
/// digest). Parsing is that of [`check_admin_token`] (scheme case-insensitive,
/// token trimmed, an empty token refused); `accept` must compare in constant
/// time. Every failure is the same `UNAUTHENTICATED` message.
pub fn check_bearer_token(
    metadata: &MetadataMap,
    accept: impl FnOnce(&str) -> bool,
) -> Result<(), Status> {
    let refused = || Status::unauthenticated(REFUSED);
    let value = metadata.get(ADMIN_AUTH_METADATA_KEY).ok_or_else(refused)?;
    let value = value.to_str().map_err(|_| refused())?;
    let (scheme, presented) = value.split_once(' ').ok_or_else(refused)?;
    let presented = presented.trim();
    if !scheme.eq_ignore_ascii_case(BEARER) || presented.is_empty() {
        return Err(refused());
    }
    if accept(presented) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Compares two byte strings in time that depends only on `presented.len()`,
/// not on the position of the first difference nor on the secret's contents.
fn constant_time_eq(presented: &[u8], secret: &[u8]) -> bool {
    // Any length difference makes the result false, but every presented byte
    // is still processed, so the loop length leaks only what the caller sent.
    let mut diff = u8::from(presented.len() != secret.len());
    for (i, &byte) in presented.iter().enumerate() {
        let other = if secret.is_empty() {
            0
        } else {
            secret[i % secret.len()]
        };
        diff |= byte ^ other;
    }
    std::hint::black_box(diff) == 0
}

/// Server-side interceptor enforcing the admin token on every call.
///
/// ```no_run
/// # use dualchain_proto::{Admin, AdminServer, RequireAdminToken};
/// # fn wrap(admin_impl: impl Admin) {
/// let svc = AdminServer::with_interceptor(admin_impl, RequireAdminToken::new("token"));
/// # }
/// ```
#[derive(Clone)]
pub struct RequireAdminToken {
    expected: Arc<str>,
}

impl RequireAdminToken {
    /// Enforces `expected` as the admin token. An empty token refuses every
    /// call (the admin API is effectively disabled).
    pub fn new(expected: impl Into<Arc<str>>) -> Self {
        Self {
            expected: expected.into(),
        }
    }
}

impl fmt::Debug for RequireAdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireAdminToken")
            .field("expected", &"<redacted>")
            .finish()
    }
}

impl Interceptor for RequireAdminToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        check_admin_token(request.metadata(), &self.expected)?;
        Ok(request)
    }
}

/// Client-side interceptor attaching `authorization: Bearer TOKEN` to every
/// call; use with `AdminClient::with_interceptor(channel, token)`.
///
/// Its `Debug` output never shows the token.
#[derive(Clone)]
pub struct AdminToken {
    header: MetadataValue<Ascii>,
}

/// The token cannot be sent as gRPC metadata (empty, or not visible ASCII).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAdminToken;

impl fmt::Display for InvalidAdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("admin token must be non-empty visible ASCII without spaces")
    }
}

impl std::error::Error for InvalidAdminToken {}

impl AdminToken {
    /// Prepares the metadata value for `token`.
    pub fn new(token: &str) -> Result<Self, InvalidAdminToken> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidAdminToken);
        }
        let mut header: MetadataValue<Ascii> = format!("{BEARER} {token}")
            .parse()
            .map_err(|_| InvalidAdminToken)?;
        header.set_sensitive(true);
        Ok(Self { header })
    }

    /// Adds the `authorization` entry to `metadata`, replacing any existing one.
    pub fn apply(&self, metadata: &mut MetadataMap) {
        metadata.insert(ADMIN_AUTH_METADATA_KEY, self.header.clone());
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Interceptor for AdminToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.apply(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert(ADMIN_AUTH_METADATA_KEY, value.parse().unwrap());
        map
    }

    #[test]
    fn accepts_the_right_token() {
        assert!(check_admin_token(&with_auth("Bearer s3cret"), "s3cret").is_ok());
        assert!(check_admin_token(&with_auth("bearer s3cret"), "s3cret").is_ok());
    }

    #[test]
    fn refuses_everything_else_without_leaking() {
        let cases = [
            with_auth("Bearer wrong"),
            with_auth("Bearer s3cre"),
            with_auth("Bearer s3crett"),
            with_auth("Basic s3cret"),
            with_auth("s3cret"),
            with_auth("Bearer "),
            MetadataMap::new(),
        ];
        for metadata in cases {
            let status = check_admin_token(&metadata, "s3cret").unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains("s3cret"));
        }
    }

    #[test]
    fn empty_expected_token_refuses_all() {
        let status = check_admin_token(&with_auth("Bearer "), "").unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcabc", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(!constant_time_eq(b"a", b""));
    }

    #[test]
    fn client_token_round_trips_through_the_check() {
        let token = AdminToken::new("s3cret").unwrap();
        let mut metadata = MetadataMap::new();
        token.apply(&mut metadata);
        assert!(check_admin_token(&metadata, "s3cret").is_ok());
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(AdminToken::new("has space").unwrap_err(), InvalidAdminToken);
        assert_eq!(AdminToken::new("").unwrap_err(), InvalidAdminToken);
    }
}
