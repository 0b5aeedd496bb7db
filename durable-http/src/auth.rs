//! The bearer token every request must carry when one is set.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The token requests must send as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub(crate) struct BearerToken(Box<[u8]>);

impl BearerToken {
    pub(crate) fn new(token: &str) -> Self {
        BearerToken(token.as_bytes().into())
    }

    /// Lets a request through if it carries the token, or says why not.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match given {
            Some(token) if same_secret(token.trim().as_bytes(), &self.0) => Ok(()),
            Some(_) => Err("wrong bearer token"),
            None => Err("this server needs a bearer token: send `Authorization: Bearer <token>`"),
        }
    }
}

/// The 401 answer, which names the scheme expected.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares in time independent of where the inputs differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
