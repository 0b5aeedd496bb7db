//! Request bodies: said to be JSON, read within the size limit, parsed with an error that
//! names the shape expected.

use std::error::Error;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
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
/// The `headers` must say it is JSON (`Content-Type: application/json`, or
/// `application/<anything>+json`), or the answer is 415: a web page can send another site a
/// form or `text/plain` without asking, but not JSON. Behind [`guard`](crate::guard), a body
/// over the limit is a 413.
pub async fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    expected: &str,
) -> Result<T, ApiError> {
    require_json(headers)?;
    let bytes = read_body(body).await?;
    parse_json(&bytes, expected)
}

/// Answers 415 unless `headers` say the body is JSON.
pub(crate) fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let essence = content_type
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|subtype| subtype.strip_suffix("+json"))
            .is_some_and(|name| !name.is_empty());
    if is_json {
        return Ok(());
    }
    let sent = match content_type {
        Some(content_type) => format!("not `{content_type}`"),
        None => "none was sent".to_string(),
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "send the body as JSON with `Content-Type: application/json` \
             (curl: -H 'Content-Type: application/json'); {sent}"
        ),
    ))
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
