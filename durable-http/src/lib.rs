//! durable's management API over HTTP, for any axum application: list instances, read their
//! status and history, raise events, terminate, suspend, resume and purge.
//!
//! [`router`] serves the API over a [`Client`](durable_runtime::Client); [`serve`] runs
//! it (or any axum router) with the limits that act before routing.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod auth;
mod body;
mod error;
mod guard;
mod options;
mod origin;
mod routes;
mod serve;

pub use body::json_body;
pub use error::ApiError;
pub use guard::guard;
pub use options::{RouterOptions, ServeOptions};
pub use routes::{method_not_allowed, router};
pub use serve::{serve, LocalAddr, Serve};
