//! What an embedder sets: the checks and limits of the router, and those of the server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How [`router`](crate::router) and [`guard`](crate::guard) treat requests.
///
/// ```
/// use durable_http::RouterOptions;
///
/// let options = RouterOptions::default().auth_token("s3cret").max_body(64 * 1024);
/// ```
#[derive(Clone)]
pub struct RouterOptions {
    pub(crate) auth_token: Option<String>,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) max_body: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) dashboard: bool,
    pub(crate) metrics: Option<Render>,
}

/// What renders `/metrics`.
pub(crate) type Render = Arc<dyn Fn() -> String + Send + Sync>;

impl Default for RouterOptions {
    /// No token, no other host name, bodies up to 1 MiB, 30 s per request, the dashboard
    /// served.
    fn default() -> Self {
        RouterOptions {
            auth_token: None,
            allowed_hosts: Vec::new(),
            max_body: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            dashboard: true,
            metrics: None,
        }
    }
}

impl RouterOptions {
    /// Every request must carry `Authorization: Bearer <token>`; others get 401.
    ///
    /// # Panics
    ///
    /// If `token` is empty: it would let anyone in.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        assert!(!token.is_empty(), "the bearer token cannot be empty");
        self.auth_token = Some(token);
        self
    }

    /// Without an auth token, a request's `Host` must name this server: `localhost`, the
    /// address the connection arrived on ([`LocalAddr`](crate::LocalAddr); any loopback
    /// address when it is unknown), or a name allowed here. Call once per name; give the
    /// name or address without a port (`durable.internal`, `10.0.0.5`, `fd00::5`).
    pub fn allowed_host(mut self, name: impl Into<String>) -> Self {
        self.allowed_hosts.push(name.into());
        self
    }

    /// The largest request body accepted, in bytes (default 1 MiB). A larger one gets 413:
    /// from its `Content-Length` before a byte of it is read, or when the limit is reached.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long a request may take once its headers are in, reading its body included
    /// (default 30 s); then it is answered 408.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether [`router`](crate::router) serves the web dashboard at `/` (and its assets
    /// under `/dashboard/`); on by default. Turn it off to serve the API alone, or a page of
    /// your own at `/`.
    pub fn dashboard(mut self, serve: bool) -> Self {
        self.dashboard = serve;
        self
    }

    /// Serves `GET /metrics` (behind the same checks as every route) with the text `render`
    /// returns, in the Prometheus text format: with `metrics-exporter-prometheus`, its
    /// handle's `render`. Without it, `/metrics` is 404.
    ///
    /// ```
    /// use durable_http::RouterOptions;
    ///
    /// let options = RouterOptions::default().metrics(|| "durable_up 1\n".to_string());
    /// ```
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }
}

impl fmt::Debug for RouterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterOptions")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<hidden>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_body", &self.max_body)
            .field("request_timeout", &self.request_timeout)
            .field("dashboard", &self.dashboard)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

/// How [`serve`](crate::serve) treats connections, before any request reaches the router.
///
/// ```
/// use std::time::Duration;
/// use durable_http::ServeOptions;
///
/// let options = ServeOptions::default()
///     .max_connections(64)
///     .header_timeout(Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub(crate) header_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    /// Headers within 10 s and 64 KiB, at most 512 connections, 10 s to shut down.
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 512,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    /// How long a client has to send a request's headers, counted from when the server
    /// starts waiting for them (default 10 s): on a new connection, and after each answer on
    /// a kept-alive one. Then the connection is closed, whether bytes trickle in or not.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// The largest request line and headers accepted, in bytes (default 64 KiB); larger ones
    /// get 431 and the connection is closed.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// The most connections open at once (default 512). Further clients wait in the
    /// listener's backlog until one closes.
    ///
    /// # Panics
    ///
    /// If `connections` is 0: nothing could be served.
    pub fn max_connections(mut self, connections: usize) -> Self {
        assert!(connections > 0, "max_connections must be at least 1");
        self.max_connections = connections;
        self
    }

    /// How long connections get to finish their requests in progress once a graceful
    /// shutdown begins (default 10 s); then they are closed.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
}
