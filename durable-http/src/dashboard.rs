//! The web dashboard: a page and its assets compiled into the binary, served with a
//! Content-Security-Policy under which they load nothing from anywhere else.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{BearerToken, Verdict};
use crate::error::ApiError;
use crate::guard::guard_pages;
use crate::options::RouterOptions;

/// Scripts, styles, images and API calls from this server only; no inline script or
/// style, no plugin, no frame around the page, no form sent anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// A file of the dashboard, as compiled in.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page at `/`.
const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// What the page loads, served under `/dashboard/`.
const ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("actions.js", JS),
    asset!("list.js", JS),
    asset!("instance.js", JS),
    asset!("history.js", JS),
    asset!("timeline.js", JS),
];

/// The filters of `GET /instances` the list page offers: each name is a query parameter
/// of the endpoint (and of `GET /counts` and the bulk endpoints). The page shows an input
/// for each name listed here.
const LIST_FILTERS: &[&str] = &[
    "runtimeStatus",
    "name",
    "instanceIdPrefix",
    "customStatus",
    "createdTimeFrom",
    "createdTimeTo",
];

/// The dashboard's routes, behind the checks of `options` but for the token.
pub(crate) fn routes(options: &RouterOptions) -> Router {
    let token = options.auth_token.as_deref().map(BearerToken::new);
    let routes = Router::new()
        .route("/", get(index))
        .route("/dashboard/session", get(session))
        .route("/dashboard/{file}", get(asset))
        .with_state(Arc::new(token));
    guard_pages(routes, options)
}

/// The page. Its links are relative, so that it works wherever the router is mounted
/// (nested under `/durable`, or behind a proxy that strips a prefix); at a path without a
/// final slash (`/durable`), they are made relative to its last segment.
async fn index(OriginalUri(uri): OriginalUri) -> Response {
    let last = uri.path().rsplit('/').next().unwrap_or_default();
    if last.is_empty() {
        return serve(&INDEX, Cow::Borrowed(INDEX.body));
    }
    let under = format!("=\"{}/dashboard/", escape_attribute(last));
    serve(
        &INDEX,
        Cow::Owned(INDEX.body.replace("=\"dashboard/", &under)),
    )
}

/// `text` as it may stand in a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => serve(asset, Cow::Borrowed(asset.body)),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("the dashboard has no file `{file}`"),
        )
        .into_response(),
    }
}

fn serve(asset: &Asset, body: Cow<'static, str>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // Revalidated on each load: a new release's page never runs an old script.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    secure(response.headers_mut());
    response
}

/// The headers every page and asset carries.
fn secure(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// `GET /dashboard/session`: what the page needs before its first API call. Whether the
/// server wants a token and whether the request carries it (`"token"`: `notRequired`,
/// `accepted`, `missing` or `wrong`), so the page asks its user without provoking a 401;
/// and which list filters and features the API serves.
async fn session(State(token): State<Arc<Option<BearerToken>>>, headers: HeaderMap) -> Response {
    let token = match token.as_ref() {
        None => "notRequired",
        Some(token) => match token.verify(&headers) {
            Verdict::Accepted => "accepted",
            Verdict::Missing => "missing",
            Verdict::Wrong => "wrong",
        },
    };
    let mut response = Json(json!({
        "token": token,
        "listFilters": LIST_FILTERS,
        "counts": true,
        "bulk": true,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
