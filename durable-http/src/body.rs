//! Request bodies: read within the size limit, parsed as JSON with an error that names the
//! shape expected.

use std::error::Error;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// A body was cut off at the limit of [`RouterOptions::max_body`](crate::RouterOptions::max_body).
#[derive(Debug, thiserror::Error)]
#[error("the body is larger than {0} bytes, the most this server accepts")]
pub(crate) struct TooLarge(pub(crate) usize);

impl From<TooLarge> for ApiError {
    fn from(error: TooLarge) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
    }
}

/// Reads a request body whose JSON should be `expected` (a description such as
/// `` a JSON object {"eventName": "<name>"} ``, used in the 400 answer).
///
/// Behind [`guard`](crate::guard), a body over the limit is a 413.
pub async fn json_body<T: DeserializeOwned>(body: Body, expected: &str) -> Result<T, ApiError> {
    let bytes = read_body(body).await?;
    parse_json(&bytes, expected)
}

/// Reads the whole body.
pub(crate) async fn read_body(body: Body) -> ApiResult<Bytes> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(match find::<TooLarge>(&error) {
            Some(too_large) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large.to_string()),
            None => ApiError::bad_request(format!("cannot read the body: {error}")),
        }),
    }
}

/// Parses `bytes` as JSON, or answers 400 saying what was `expected`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8], expected: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body must be {expected}: {e}")))
}

/// The first error of type `E` in `error`'s chain of sources.
fn find<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}
