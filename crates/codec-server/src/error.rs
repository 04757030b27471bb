//! The one place errors become HTTP answers.
//!
//! Client faults (bad JSON or base64, an unknown key id, too large, wrong
//! method or content type, missing credentials) are 4xx with a JSON body
//! `{"error": "<code>", "detail": "<what was wrong and what to do>"}`; our own
//! faults are 500 with an opaque detail, and the cause is logged instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use payload_converter::{BudgetError, CodecErrorKind, PayloadCodecError};
use payload_storage::StorageError;
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not valid JSON or not a `Payloads` object.
    #[error("{0}")]
    InvalidJson(String),
    /// A payload field is malformed (for example bad base64).
    #[error("{0}")]
    InvalidPayload(String),
    /// The body is larger than the configured limit.
    #[error(
        "request body is larger than the limit of {limit} bytes; raise `server.max_body_bytes` if payloads this large are expected"
    )]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read (the client went away, or sent a broken
    /// chunked encoding).
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The body did not arrive before the request's deadline.
    #[error(
        "the request body did not arrive within {0} seconds; send it faster, or raise \
         `server.request_timeout_secs`"
    )]
    BodyTimeout(u64),
    /// The payloads would take more than the per-request limit once decoded.
    #[error(
        "the payloads of this request take more than {limit} bytes once decoded \
         (decrypted and decompressed); raise `server.max_decoded_bytes` if payloads this \
         large are expected"
    )]
    DecodedTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many payloads in one request.
    #[error(
        "request has {count} payloads, more than the limit of {limit}; raise `server.max_payloads`"
    )]
    TooManyPayloads {
        /// Payloads in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The request's content type is not JSON.
    #[error("content type `{0}` is not supported; send `Content-Type: application/json`")]
    UnsupportedMediaType(String),
    /// No such route.
    #[error(
        "no route for `{0}`; the Codec Server answers POST …/encode, POST …/decode, GET /healthz, /readyz and /metrics"
    )]
    NotFound(String),
    /// Known route, wrong method.
    #[error("method {method} is not allowed on `{path}`; use {allowed}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path.
        path: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// `/download` is not available.
    #[error(
        "this Codec Server has no external storage driver configured, so it cannot download externally stored payloads"
    )]
    DownloadUnavailable,
    /// No or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the needed permission.
    #[error("{0}")]
    Forbidden(String),
    /// Credentials cannot be checked right now (the identity provider's
    /// signing keys cannot be fetched): not the caller's fault, retry later.
    #[error("{0}")]
    AuthUnavailable(String),
    /// The namespace is refused by configuration.
    #[error("namespace `{0}` is not served by this Codec Server")]
    NamespaceRefused(String),
    /// A codec refused a payload (unknown key, corrupt data, limit).
    #[error("{0}")]
    Codec(PayloadCodecError),
    /// External storage refused a reference: missing, corrupt, too large,
    /// malformed, or a payload given to `/download` is not a reference.
    #[error("{0}")]
    Storage(PayloadCodecError),
    /// The payload store cannot be reached now; the cause is logged.
    #[error(
        "the external payload store is unavailable; retry shortly (the server log has the cause)"
    )]
    StorageUnavailable(String),
    /// The KMS cannot wrap or unwrap a data key now (after retries), or
    /// refuses this server; the cause (which may name cloud principals) is
    /// logged, the KEK is named.
    #[error(
        "the KMS cannot serve KEK `{}` now; retry shortly (the server log has the cause)",
        kms_kek(.0)
    )]
    KmsUnavailable(PayloadCodecError),
    /// The request took longer than the configured timeout.
    #[error("request timed out after {0} seconds")]
    Timeout(u64),
    /// The server is at its concurrency or memory limit.
    #[error("the server is at its concurrency or memory limit; retry shortly")]
    Overloaded,
    /// Our fault; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

/// What a client sees of our own faults.
const OPAQUE_DETAIL: &str = "internal error; the server log has the cause";

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
}

impl ApiError {
    /// The HTTP status and the short machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidPayload(_) => (StatusCode::BAD_REQUEST, "invalid_payload"),
            ApiError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::BodyUnreadable(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::DecodedTooLarge { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
            }
            ApiError::TooManyPayloads { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_many_payloads")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::DownloadUnavailable => (StatusCode::NOT_FOUND, "download_unavailable"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::AuthUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
            ApiError::NamespaceRefused(_) => (StatusCode::FORBIDDEN, "namespace_refused"),
            ApiError::Codec(err) => match err.kind() {
                CodecErrorKind::UnknownKey => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_key"),
                CodecErrorKind::InvalidPayload => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "undecodable_payload")
                }
                CodecErrorKind::LimitExceeded => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
                }
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::Storage(err) => storage_status(err),
            ApiError::StorageUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ApiError::KmsUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "kms_unavailable"),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ApiError {
    /// The error for a codec failure of a request with `timeout_secs`.
    pub(crate) fn from_codec(err: PayloadCodecError, timeout_secs: u64) -> Self {
        match err.inner().downcast_ref::<StorageError>() {
            Some(StorageError::Unavailable { .. }) => {
                return ApiError::StorageUnavailable(err.to_string());
            }
            Some(StorageError::Budget(_)) | None => {}
            Some(_) => return ApiError::Storage(err),
        }
        match (err.kind(), budget_error(&err)) {
            (_, Some(BudgetError::Exceeded { limit })) => ApiError::DecodedTooLarge { limit },
            (CodecErrorKind::Busy, _) => ApiError::Overloaded,
            (CodecErrorKind::Cancelled, _) => ApiError::Timeout(timeout_secs),
            (CodecErrorKind::Unavailable, _) => ApiError::KmsUnavailable(err),
            (kind, _) if kind.is_input_fault() => ApiError::Codec(err),
            _ => ApiError::Internal(err.to_string()),
        }
    }
}

/// The KEK of a KMS fault, as shown (never key material).
fn kms_kek(err: &PayloadCodecError) -> &str {
    err.inner()
        .downcast_ref::<payload_kms::KmsError>()
        .and_then(payload_kms::KmsError::kek)
        .unwrap_or("?")
}

/// The status and code of a storage refusal.
fn storage_status(err: &PayloadCodecError) -> (StatusCode, &'static str) {
    match err.inner().downcast_ref::<StorageError>() {
        Some(StorageError::Missing { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "stored_payload_missing")
        }
        Some(StorageError::Corrupt { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "stored_payload_corrupt")
        }
        Some(StorageError::TooLarge { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "stored_payload_too_large")
        }
        Some(StorageError::UnknownDriver(..)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_storage_driver")
        }
        Some(StorageError::NotAReference(_)) => (StatusCode::BAD_REQUEST, "not_a_reference"),
        _ => (StatusCode::BAD_REQUEST, "invalid_reference"),
    }
}

/// The budget refusal behind a codec error, if that is what it is: from a
/// chain (between codecs) or from one of our codecs.
fn budget_error(err: &PayloadCodecError) -> Option<BudgetError> {
    let inner = err.inner();
    inner.downcast_ref::<BudgetError>().copied().or_else(|| {
        match inner.downcast_ref::<payload_codecs::CodecError>() {
            Some(payload_codecs::CodecError::Budget(budget)) => Some(*budget),
            _ => match inner.downcast_ref::<StorageError>() {
                Some(StorageError::Budget(budget)) => Some(*budget),
                _ => None,
            },
        }
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error answering a request");
                OPAQUE_DETAIL.to_owned()
            }
            ApiError::StorageUnavailable(cause) => {
                tracing::warn!(%cause, "external storage unavailable");
                self.to_string()
            }
            ApiError::KmsUnavailable(cause) => {
                tracing::warn!(%cause, "KMS unavailable");
                self.to_string()
            }
            ApiError::Codec(err) if status.is_server_error() => {
                tracing::error!(cause = %err, "codec failed answering a request");
                OPAQUE_DETAIL.to_owned()
            }
            other => other.to_string(),
        };
        let body = serde_json::to_vec(&ErrorBody {
            error: code,
            detail,
        })
        .unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let ApiError::MethodNotAllowed { allowed, .. } = &self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        response
    }
}
