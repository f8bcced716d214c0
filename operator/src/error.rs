//! Reconcile errors, split into transient (requeued with backoff) and permanent (written
//! to a status condition; the object waits for a spec change instead of hot-looping).

use crate::build::network::BuildError;
use crate::keys::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("key material: {0}")]
    Keys(#[from] KeyError),
    #[error("building objects: {0}")]
    Build(#[from] BuildError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Permanent errors need a human to change something; retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::InvalidSpec(_) | Error::Genesis(_) | Error::Build(_) => true,
            Error::Keys(KeyError::Entropy(_)) => false,
            Error::Keys(_) => true,
            Error::Kube(_) | Error::Json(_) => false,
        }
    }

    /// Reason label for metrics and conditions (bounded cardinality).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "Conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 403 => "Forbidden",
            Error::Kube(kube::Error::Api(status)) if status.code == 422 => "Rejected",
            Error::Kube(kube::Error::Api(_)) => "ApiError",
            Error::Kube(_) => "ApiUnavailable",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Genesis(_) => "GenesisMismatch",
            Error::Keys(_) => "BadKeySecret",
            Error::Build(_) => "BuildFailed",
            Error::Json(_) => "Serialization",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an API error is "not found".
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is "already exists".
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
