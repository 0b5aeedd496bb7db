//! The checks in front of every route, in order: who may call (origin, then host unless a
//! token is set), the bearer token, the body limit; then the time limit of the request.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::auth::{unauthorized, BearerToken};
use crate::body::TooLarge;
use crate::error::ApiError;
use crate::options::RouterOptions;
use crate::origin::{check_origin, AllowedHosts};

/// Puts the checks of `options` in front of `routes`: what [`router`](crate::router) does
/// for the management API, for routes of your own.
///
/// Routes merged into a router after this call are not guarded: guard each set of routes,
/// or the merged whole once.
pub fn guard<S>(routes: Router<S>, options: &RouterOptions) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let access = match options.auth_token.as_deref() {
        Some(token) => Access::Token(BearerToken::new(token)),
        None => Access::ThisServer(AllowedHosts::new(&options.allowed_hosts)),
    };
    layer(routes, options, access)
}

/// The same checks for pages that hold no data (the dashboard's assets), but for the
/// token: they load without it, and the page then asks its user for it.
pub(crate) fn guard_pages<S>(routes: Router<S>, options: &RouterOptions) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let access = match options.auth_token {
        Some(_) => Access::Open,
        None => Access::ThisServer(AllowedHosts::new(&options.allowed_hosts)),
    };
    layer(routes, options, access)
}

fn layer<S>(routes: Router<S>, options: &RouterOptions, access: Access) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let guard = Arc::new(Guard {
        access,
        max_body: options.max_body,
        request_timeout: options.request_timeout,
    });
    routes
        .layer(DefaultBodyLimit::max(options.max_body))
        .layer(middleware::from_fn_with_state(guard, check))
}

struct Guard {
    access: Access,
    max_body: usize,
    request_timeout: Duration,
}

/// Who may call, once the origin rule has passed.
enum Access {
    /// Requests carrying the token. The token is what a rebinding page lacks: with one, any
    /// name may reach the server.
    Token(BearerToken),
    /// Without a token: requests whose `Host` names this server.
    ThisServer(AllowedHosts),
    /// Anyone: pages that hold no data, when a token guards the data.
    Open,
}

async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if let Err(refused) = check_origin(&request) {
        return refused.into_response();
    }
    match &guard.access {
        Access::Token(token) => {
            if let Err(message) = token.check(request.headers()) {
                return unauthorized(message);
            }
        }
        Access::ThisServer(hosts) => {
            if let Err(refused) = hosts.check(&request) {
                return refused.into_response();
            }
        }
        Access::Open => {}
    }
    let request = match limit_body(request, guard.max_body) {
        Ok(request) => request,
        Err(too_large) => return ApiError::from(too_large).into_response(),
    };
    match tokio::time::timeout(guard.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {:?} (reading its body included), the most \
                 this server allows",
                guard.request_timeout
            ),
        )
        .into_response(),
    }
}

/// Refuses a body whose `Content-Length` is over `max` before a byte of it is read, and
/// cuts off any other at `max`.
fn limit_body(request: Request, max: usize) -> Result<Request, TooLarge> {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if length.is_some_and(|length| length > max as u64) {
        return Err(TooLarge(max));
    }
    Ok(request.map(|body| {
        Body::new(Limited::new(body, max).map_err(move |error| {
            if error.is::<LengthLimitError>() {
                Box::new(TooLarge(max))
            } else {
                error
            }
        }))
    }))
}
