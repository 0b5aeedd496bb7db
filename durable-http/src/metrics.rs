//! GET /metrics: the text the embedder's metrics exporter renders (Prometheus' format).

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::options::Render;

/// Renders on each scrape, off the async workers (a large registry takes a while).
pub(crate) async fn scrape(render: Render) -> Response {
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(text) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics panicked; see the server's log",
        )
        .into_response(),
    }
}
