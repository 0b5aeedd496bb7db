//! The HTTP/1.1 server: a cap on connections, a time limit and a size limit on request
//! headers, and a graceful shutdown that slow clients cannot hold up.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::options::ServeOptions;
use crate::origin::LocalAddr;

/// Serves `router` on `listener` with the limits of `options`, until the future returned
/// by [`Serve::with_graceful_shutdown`]'s signal resolves (or forever without one).
///
/// Each request carries [`LocalAddr`] and axum's [`ConnectInfo<SocketAddr>`] (the peer) in
/// its extensions.
///
/// ```no_run
/// # async fn run(client: durable_runtime::Client) -> std::io::Result<()> {
/// use durable_http::{router, serve, RouterOptions, ServeOptions};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let app = router(client, RouterOptions::default());
/// serve(listener, app, ServeOptions::default())
///     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
pub fn serve(listener: TcpListener, router: Router, options: ServeOptions) -> Serve {
    Serve {
        listener,
        router,
        options,
        signal: Box::pin(std::future::pending()),
    }
}

/// A server to await, from [`serve`].
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Serve {
    /// Stops when `signal` resolves: no new connection is accepted, and the server returns
    /// once the connections open have answered their requests in progress, or after
    /// [`ServeOptions::shutdown_timeout`], closing those still open.
    pub fn with_graceful_shutdown(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Serve {
        self.signal = Box::pin(signal);
        self
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self))
    }
}

async fn run(serve: Serve) -> io::Result<()> {
    let Serve {
        listener,
        router,
        options,
        mut signal,
    } = serve;
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut full = false;
    loop {
        // At the cap, connections wait in the listener's backlog until one closes; the
        // header and request timeouts see that one does.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !full {
                    tracing::warn!(
                        "{} connections open, the most allowed: new ones wait until one closes",
                        options.max_connections
                    );
                }
                full = true;
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut signal => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                full = false;
                let connection =
                    connection(stream, peer, router.clone(), &options, stopping.clone());
                connections.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(error) => {
                if !is_connection_error(&error) {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    tracing::error!("cannot accept a connection: {error}");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = &mut signal => break,
                    }
                }
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.shutdown_timeout, finished)
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connections still open {:?} after the shutdown began: closing them",
            connections.len(),
            options.shutdown_timeout
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Errors about one connection, which leave the listener as it was.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it closes, or until it has answered its request in progress
/// once `stopping` turns true.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: &ServeOptions,
    mut stopping: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let local = stream.local_addr().ok();
    // Answers are small and written whole: no reason to wait for more.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        if let Some(local) = local {
            request.extensions_mut().insert(LocalAddr(local));
        }
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().call(request.map(Body::new))
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_header_size(options.max_header_bytes);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    async move {
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!("connection from {peer}: {error}");
        }
    }
}
