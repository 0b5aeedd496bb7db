//! The bearer token every request must carry when one is set.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The token requests must send as `Authorization: Bearer <token>`, kept as its SHA-256
/// digest: comparing digests of a fixed size, in constant time, tells a caller neither where
/// a guess differs nor how long the token is.
#[derive(Clone)]
pub(crate) struct BearerToken([u8; 32]);

impl BearerToken {
    pub(crate) fn new(token: &str) -> Self {
        BearerToken(digest(token))
    }

    /// Lets a request through if it carries the token, or says why not.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        match self.verify(headers) {
            Verdict::Accepted => Ok(()),
            Verdict::Wrong => Err("wrong bearer token"),
            Verdict::Missing => {
                Err("this server needs a bearer token: send `Authorization: Bearer <token>`")
            }
        }
    }

    /// What the request's `Authorization` header says to this token.
    pub(crate) fn verify(&self, headers: &HeaderMap) -> Verdict {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            // The scheme's name is case-insensitive (RFC 9110).
            .and_then(|value| {
                let scheme = value.get(..7)?;
                scheme.eq_ignore_ascii_case("bearer ").then(|| &value[7..])
            });
        match given {
            Some(token) if bool::from(digest(token.trim()).ct_eq(&self.0)) => Verdict::Accepted,
            Some(_) => Verdict::Wrong,
            None => Verdict::Missing,
        }
    }
}

/// A request's bearer token, judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It carries the token.
    Accepted,
    /// It carries another.
    Wrong,
    /// It carries none.
    Missing,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The 401 answer, which names the scheme expected.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_token_passes_whatever_the_length_of_a_guess() {
        let token = BearerToken::new("s3cret");
        assert_eq!(token.check(&bearer("Bearer s3cret")), Ok(()));
        assert_eq!(token.check(&bearer("Bearer  s3cret ")), Ok(()));
        let long = format!("Bearer {}", "s".repeat(64 * 1024));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret!",
            "Bearer S3CRET",
            "Bearer ",
            &long,
        ] {
            assert_eq!(
                token.check(&bearer(wrong)),
                Err("wrong bearer token"),
                "{wrong}"
            );
        }
        assert_eq!(token.check(&bearer("bearer s3cret")), Ok(()));
        assert!(token.check(&bearer("Basic s3cret")).is_err());
        assert!(token.check(&bearer("s3cret")).is_err());
        assert!(token.check(&HeaderMap::new()).is_err());
    }
}
