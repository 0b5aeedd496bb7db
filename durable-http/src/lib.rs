//! durable's management API over HTTP, for any axum application: list instances, read their
//! status and history, raise events, terminate, suspend, resume and purge — with the checks
//! that keep other web pages and slow clients out, and a web dashboard at `/`.
//!
//! [`router`] serves the API over a [`Client`](durable_runtime::Client), behind the checks of
//! its [`RouterOptions`]; [`guard`] puts the same checks in front of routes of your own;
//! [`serve`] runs the whole with the limits that act before routing ([`ServeOptions`]).
//!
//! ```no_run
//! use axum::routing::post;
//! use axum::Router;
//! use durable_http::{guard, router, serve, RouterOptions, ServeOptions};
//! use durable_runtime::Runtime;
//!
//! # async fn create_order() -> &'static str { "" }
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::builder() /* .orchestrator(…).activity(…) */ .start()?;
//! let options = RouterOptions::default().auth_token(std::env::var("API_TOKEN")?);
//!
//! // Your routes behind the same checks, and the management API (`/instances/…`) beside them.
//! let mine = Router::new().route("/orders", post(create_order));
//! let app = guard(mine, &options).merge(router(runtime.client(), options));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, app, ServeOptions::default())
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
//!     .await?;
//! runtime.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The router is an ordinary [`axum::Router`]: `merge` it, or `nest` it under a prefix
//! (`Router::new().nest("/durable", router(client, options))`), and serve it with
//! [`serve`] or with any server of your own (`axum::serve` included: then the limits of
//! [`ServeOptions`] are yours to set, and [`LocalAddr`] is missing unless you insert it).
//!
//! # The endpoints
//!
//! | method and path | answer | errors |
//! |---|---|---|
//! | `GET /instances` | 200 `{"instances": [status, …], "continuationToken": "…" or null}`, oldest first | 400 bad query or token |
//! | `GET /instances/{id}` | 200 the status: `instanceId`, `name`, `runtimeStatus`, `createdAt`, `lastUpdatedAt`, `input`, `output`, `customStatus`, `failure`; with `?showHistory=true`, `historyEvents` too | 400, 404 |
//! | `POST /instances/{id}/raiseEvent/{name}`, the event's JSON data as the body | 202 `{"instanceId", "eventName", "accepted": true}` (an empty body is `null`) | 400, 404, 410 finished, 413, 415 |
//! | `POST /instances/{id}/terminate?reason=…` | 202 `{"instanceId", "accepted": "terminate"}` | 404, 410 |
//! | `POST /instances/{id}/suspend?reason=…` | 202; events sent meanwhile are held | 404, 410 |
//! | `POST /instances/{id}/resume?reason=…` | 202; held events are delivered in order | 404, 410 |
//! | `DELETE /instances/{id}` | 200 `{"instancesDeleted": 1}` | 404, 409 still running |
//! | `GET /instances/{id}/history?from=…&top=…` | 200 a page of the history: `{"instanceId", "execution", "generation", "from", "total", "events": [event, …], "next": <from of the next page> or null}` | 400, 404 |
//! | `GET /counts?<filters>` | 200 `{"counts": {"pending", "running", "suspended", "completed", "failed", "terminated"}, "total"}` | 400 |
//! | `POST /bulk/terminate?<filters>&dryRun=true` | 200 `{"dryRun": true, "selected": N}`: how many live instances the filters select; nothing is done | 400 |
//! | `POST /bulk/terminate?<filters>&top=…&continuationToken=…&reason=…` | 200 `{"terminated", "skipped", "continuationToken"}`: one batch of at most `top`; repeat with the token until it is null | 400 |
//! | `POST /bulk/purge?<filters>…` | the same for finished instances: `{"dryRun", "selected"}`, then `{"purged", "skipped", "continuationToken"}` | 400 |
//! | `GET /` | the [dashboard](#the-dashboard) | |
//!
//! `GET /instances` takes `runtimeStatus` (comma-separated), `name` (the orchestrator's,
//! exactly), `top` (page size, default 100, at most 1000), `continuationToken` (also as the
//! `x-ms-continuation-token` header, and returned in it), `createdTimeFrom` and
//! `createdTimeTo` (RFC 3339; from inclusive, to exclusive, from before to),
//! `instanceIdPrefix` (at most 256 bytes, the longest id) and `customStatus` (text the custom
//! status's JSON contains, case-sensitive, at most 1024 bytes); `GET /counts` and the bulk
//! endpoints take the same filters. A bulk action applies only to the statuses it can act
//! on (terminate: live ones; purge: finished ones), and a batch never acts on more than
//! `top` instances, so no request does unbounded work. Instance ids in paths are percent-decoded and checked
//! against the library's rule. Other paths get 404, other methods 405, and every error is
//! `{"error": "<what happened and what to do>"}` ([`ApiError`]).
//!
//! `GET /instances/{id}/history` pages through the history, oldest first: `from` is the
//! position of the first event (default 0), `top` the page size (default 100, at most
//! 1000). Events are the history's own JSON (`{"v": 2, "kind": "TaskScheduled", …}`, `v`
//! the history format version the event was written with, so an older history shows older
//! numbers; activity results carry `started_at` and `ended_at`). `execution` identifies the
//! history paged through (a hash of its start, `null` before the first turn): when it
//! changes between pages, a continue-as-new (`generation` says which) or a new instance
//! under the same id replaced the history, and paging starts over. The store reads only the
//! page's events (and the first two, which identify the history), however long the history.
//!
//! # The dashboard
//!
//! [`router`] serves a web page at `/`: the instance list (counts per status as filters,
//! name, id prefix, custom status, creation time, pages, auto-refresh, actions on a
//! selection or, after a dry-run count, on everything the filter selects), and each
//! instance's status, payloads, timeline (activity attempts and the back-offs between them,
//! timers, event waits, children, generations) and history, with the actions above behind a
//! confirmation. Its files are compiled into the binary and served under `/dashboard/` with
//! a Content-Security-Policy that lets the page load and call nothing but this server, and
//! no inline script. The page and its files hold no data: they load without the bearer
//! token (but pass the origin rule and, without a token, the host rule), and the page asks
//! its user for the token once, keeping it in the tab's `sessionStorage`. `GET
//! /dashboard/session` tells it whether a token is needed and whether its own is good,
//! without a 401. Nested under a prefix, the page is at the prefix (`/durable`).
//! [`RouterOptions::dashboard`]`(false)` leaves it out.
//!
//! # Who may call
//!
//! A server on `127.0.0.1` is reachable from every web page its user opens: a page can post
//! a form to it, or make its own name resolve to `127.0.0.1` (DNS rebinding) and then read
//! the answers as its own. So, in this order, every request through [`router`] or [`guard`]:
//!
//! 1. **Origin.** A request whose `Origin` is not the server it addresses (its `Host`;
//!    scheme not compared, default ports filled in) is refused with 403, and so is
//!    `Origin: null` (sandboxed frames, `file://` pages). So is a request the browser marks
//!    `Sec-Fetch-Site: cross-site` or `same-site`, unless it is a `GET` navigation (a link
//!    followed), which shows the answer to the user and to no page. curl and other clients
//!    that send no `Origin` pass, and so do the server's own pages.
//! 2. **Host**, when no token is set. The `Host` (port ignored, and the target of an
//!    absolute-form request) must be `localhost`, the address the connection arrived on
//!    ([`LocalAddr`], set by [`serve`]; any loopback address when unknown), or a name given to
//!    [`RouterOptions::allowed_host`]. Anything else is 403: that is the name of a page
//!    that made itself resolve here. A request naming no host is 400.
//! 3. **Token.** With [`RouterOptions::auth_token`], every request needs
//!    `Authorization: Bearer <token>` (401 with `WWW-Authenticate: Bearer` otherwise). Only
//!    the token's SHA-256 digest is kept, and digests are compared in constant time: a
//!    guess learns neither where it is wrong nor how long the token is. With a token, any
//!    `Host` may ask (a reverse proxy's name, say): a rebinding page does not have the token.
//! 4. **Body.** A body over [`RouterOptions::max_body`] (1 MiB) is refused with 413, from its
//!    `Content-Length` before a byte is read, or when a body without one reaches the limit.
//!    A JSON body must be sent as `Content-Type: application/json` (or
//!    `application/<name>+json`), or the answer is 415: a page can send another site a form,
//!    `text/plain` or no type at all without the browser asking the site, but not JSON.
//!    curl needs `-H 'Content-Type: application/json'` beside `-d`; a `POST` without a body
//!    needs no type.
//!    A JSON payload over the runtime's payload limits (nesting depth 100, 16 MiB by default;
//!    see `durable_runtime::limits`) is refused with 400 and a message naming the limit.
//! 5. **Time.** A request that takes longer than [`RouterOptions::request_timeout`] (30 s)
//!    from its headers to its answer, reading its body included, is answered 408.
//!
//! These rules assume the API is not meant to be called from other origins: it sends no
//! CORS headers. To use it from a page of your own, serve the page from the same server.
//!
//! # What acts before routing
//!
//! [`serve`] is an HTTP/1.1 server that slow or greedy clients cannot hold:
//! a request's headers must arrive within [`ServeOptions::header_timeout`] (10 s, counted
//! from when the server starts waiting for them, so idle kept-alive connections close too,
//! and bytes trickled one by one do not extend it) and within
//! [`ServeOptions::max_header_bytes`] (64 KiB, 431 beyond); at most
//! [`ServeOptions::max_connections`] (512) are open at once, further clients waiting in the
//! listener's backlog; and once a graceful shutdown begins, connections get
//! [`ServeOptions::shutdown_timeout`] (10 s) to finish their requests in progress before
//! they are closed.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod auth;
mod body;
mod bulk;
mod dashboard;
mod error;
mod extract;
mod filter;
mod guard;
mod history;
mod metrics;
mod options;
mod origin;
mod routes;
mod serve;

pub use body::json_body;
pub use error::ApiError;
pub use guard::guard;
pub use options::{RouterOptions, ServeOptions};
pub use origin::LocalAddr;
pub use routes::{method_not_allowed, router};
pub use serve::{serve, Serve};
