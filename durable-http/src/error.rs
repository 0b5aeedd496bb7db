//! The one shape of every error answer: a status and `{"error": "<what happened and what to do>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use durable_runtime::ClientError;
use serde_json::json;

/// An error answer: its status, and a message saying what happened and what to do.
///
/// Answers as `{"error": message}`. Routes an embedder adds beside the
/// [`router`](crate::router) can return it to answer in the same shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({status})")]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An answer with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// 400 for a bad id, payload (over the runtime's payload limits too) or query, 404 unknown instance, 410 finished, 409 exists or still
/// running, 504 a wait that timed out, 500 anything else (the store failed).
impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        let status = match &error {
            ClientError::InvalidInstanceId(_)
            | ClientError::BadPayload { .. }
            | ClientError::PayloadLimit { .. }
            | ClientError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ClientError::NotFound(_) => StatusCode::NOT_FOUND,
            ClientError::Finished { .. } => StatusCode::GONE,
            ClientError::AlreadyExists(_)
            | ClientError::IdTaken { .. }
            | ClientError::NotFinished(_) => StatusCode::CONFLICT,
            ClientError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

/// What a handler returns.
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;
