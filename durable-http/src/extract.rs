//! What handlers read from a request: the instance id of the path, the query, a page size.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::Uri;
use durable_runtime::InstanceId;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

/// The most items one page holds.
pub(crate) const MAX_PAGE: usize = 1000;

/// A page's size when the request does not say.
pub(crate) const DEFAULT_PAGE: usize = 100;

/// An instance id from the path, checked against the id rule.
pub(crate) fn instance_id(path: Result<Path<String>, PathRejection>) -> ApiResult<InstanceId> {
    let Path(id) = path.map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    checked_id(id)
}

pub(crate) fn checked_id(id: String) -> ApiResult<InstanceId> {
    InstanceId::new(id).map_err(|e| ApiError::bad_request(format!("invalid instance id: {e}")))
}

/// The query string as `T`; none is `T::default()`.
pub(crate) fn query<T: for<'de> Deserialize<'de> + Default>(uri: &Uri) -> ApiResult<T> {
    if uri.query().is_none() {
        return Ok(T::default());
    }
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
}

/// The page size a `top` parameter asks for: [`DEFAULT_PAGE`] when absent, at most
/// [`MAX_PAGE`], never 0.
pub(crate) fn page_size(top: Option<usize>) -> ApiResult<usize> {
    match top {
        Some(0) => Err(ApiError::bad_request("`top` must be at least 1")),
        Some(n) => Ok(n.min(MAX_PAGE)),
        None => Ok(DEFAULT_PAGE),
    }
}
