//! Errors of the simulator. Every variant maps to the `metav1.Status` (code and reason) that a real
//! API server answers for the same mistake, so HTTP clients and Rust callers see the same thing.

use serde_json::{json, Value};

/// What went wrong; [`SimError::code`] and [`SimError::reason`] give the Kubernetes status.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// 404 NotFound: the object or the resource type does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409 AlreadyExists: create of a name that is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// 409 Conflict: update with a stale resourceVersion.
    #[error("{0}")]
    Conflict(String),
    /// 422 Invalid: the object breaks a validation rule.
    #[error("{0}")]
    Invalid(String),
    /// 400 BadRequest: malformed body, selector or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 405 MethodNotAllowed: the verb is not supported on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 410 Gone with reason Expired: a resourceVersion or continue token older than the history.
    #[error("{0}")]
    Expired(String),
    /// 415 UnsupportedMediaType: an unknown patch type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 401 Unauthorized: no valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 Forbidden: authenticated, but RBAC does not allow the request.
    #[error("{0}")]
    Forbidden(String),
    /// 500 InternalError where kube-apiserver answers one (e.g. a malformed impersonation).
    #[error("{0}")]
    Internal(String),
    /// An error injected through the fault API, with its HTTP code.
    #[error("injected fault: {1}")]
    Injected(u16, String),
    /// Reading seed manifests failed.
    #[error("{0}")]
    Io(String),
}

impl SimError {
    /// The HTTP status code a real API server uses.
    pub fn code(&self) -> u16 {
        match self {
            SimError::NotFound(_) => 404,
            SimError::AlreadyExists(_) | SimError::Conflict(_) => 409,
            SimError::Invalid(_) => 422,
            SimError::BadRequest(_) => 400,
            SimError::MethodNotAllowed(_) => 405,
            SimError::Expired(_) => 410,
            SimError::UnsupportedMediaType(_) => 415,
            SimError::Unauthorized(_) => 401,
            SimError::Forbidden(_) => 403,
            SimError::Internal(_) => 500,
            SimError::Injected(code, _) => *code,
            SimError::Io(_) => 500,
        }
    }

    /// The `reason` field of the `metav1.Status`.
    pub fn reason(&self) -> &'static str {
        match self {
            SimError::NotFound(_) => "NotFound",
            SimError::AlreadyExists(_) => "AlreadyExists",
            SimError::Conflict(_) => "Conflict",
            SimError::Invalid(_) => "Invalid",
            SimError::BadRequest(_) => "BadRequest",
            SimError::MethodNotAllowed(_) => "MethodNotAllowed",
            SimError::Expired(_) => "Expired",
            SimError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            SimError::Unauthorized(_) => "Unauthorized",
            SimError::Forbidden(_) => "Forbidden",
            SimError::Internal(_) => "InternalError",
            SimError::Injected(code, _) => reason_for_code(*code),
            SimError::Io(_) => "InternalError",
        }
    }

    /// The `metav1.Status` object for this error.
    pub fn status(&self) -> Value {
        status_value(self.code(), self.reason(), &self.to_string())
    }
}

/// The reason a real API server gives for a bare HTTP code.
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        504 => "Timeout",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

pub(crate) fn status_value(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

pub type Result<T, E = SimError> = std::result::Result<T, E>;
