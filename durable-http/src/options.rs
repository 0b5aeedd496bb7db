//! What an embedder sets: the checks and limits of the router, and those of the server.

use std::fmt;
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
}

impl Default for RouterOptions {
    /// No token, bodies up to 1 MiB.
    fn default() -> Self {
        RouterOptions {
            auth_token: None,
            allowed_hosts: Vec::new(),
            max_body: 1024 * 1024,
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
}

impl fmt::Debug for RouterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterOptions")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<hidden>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// How [`serve`](crate::serve) treats connections, before any request reaches the router.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub(crate) header_timeout: Duration,
}

impl Default for ServeOptions {
    /// Request headers within 30 s.
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeOptions {
    /// How long a client has to send a request's headers, from when the server starts
    /// waiting for them (default 30 s); then the connection is closed.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }
}
