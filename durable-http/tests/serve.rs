//! The server over real sockets, against slow and greedy clients: headers sent byte by byte,
//! silent connections, more connections than the cap, huge headers, endless and stalled
//! bodies, and a graceful shutdown none of them can hold up.

mod support;

use std::future::IntoFuture as _;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use durable_http::{router, serve, RouterOptions, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Real time allowed for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A server on a free loopback port.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: JoinHandle<io::Result<()>>,
}

impl Server {
    async fn start(app: Router, options: ServeOptions) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = serve(listener, app, options).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        let done = tokio::spawn(server.into_future());
        Server {
            addr,
            stop: Some(stop),
            done,
        }
    }

    /// Begins the graceful shutdown and waits until the server has returned.
    async fn shut_down(mut self) -> Duration {
        let began = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.done)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
        began.elapsed()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// `GET path` on a new connection; the status code of the answer.
    async fn get(&self, path: &str) -> u16 {
        let mut stream = self.connect().await;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        status_of(&read_answer(&mut stream).await)
    }
}

/// Reads until the server closes the connection (or resets it).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The status code of a raw answer (0 for none).
fn status_of(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Waits until the server closes `stream`, while the client keeps sending `trickle` one byte
/// every 20 ms; returns how long that took.
async fn closed_while_trickling(stream: &mut TcpStream, trickle: &[u8]) -> Duration {
    let began = Instant::now();
    let mut buffer = [0u8; 1024];
    for byte in trickle.iter().cycle() {
        assert!(
            began.elapsed() < PATIENCE,
            "the connection is still open after {PATIENCE:?}"
        );
        if stream.write_all(&[*byte]).await.is_err() {
            return began.elapsed();
        }
        // An answer (408, say) is fine; the close must follow.
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buffer));
        if let Ok(Ok(0) | Err(_)) = read.await {
            return began.elapsed();
        }
    }
    unreachable!()
}

/// Routes for the server's own tests: one answers at once, one after 300 ms, one reads its
/// body.
fn app() -> Router {
    Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .route(
            "/upload",
            post(|body: Body| async move {
                let bytes = axum::body::to_bytes(body, usize::MAX).await;
                bytes.map(|b| b.len().to_string()).unwrap_or_default()
            }),
        )
}

#[tokio::test]
async fn headers_sent_byte_by_byte_are_cut_off_at_the_header_timeout() {
    let options = ServeOptions::default().header_timeout(Duration::from_millis(300));
    let server = Server::start(app(), options).await;
    let mut slow = server.connect().await;
    slow.write_all(b"GET /fast HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // Bytes keep arriving, but the headers never end: the time limit is on the headers, not
    // on the silence between bytes.
    closed_while_trickling(&mut slow, b"X-Slow: a\r\n").await;
    assert_eq!(server.get("/fast").await, 200);
    server.shut_down().await;
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let options = ServeOptions::default().header_timeout(Duration::from_millis(300));
    let server = Server::start(app(), options).await;

    // A connection that never says anything.
    let mut silent = server.connect().await;
    assert_eq!(read_answer(&mut silent).await, "");

    // A kept-alive connection after its answer.
    let mut idle = server.connect().await;
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut idle).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.ends_with("fast"), "{answer}");
    server.shut_down().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let options = ServeOptions::default()
        .max_connections(2)
        .header_timeout(Duration::from_secs(60));
    let server = Server::start(app(), options).await;

    // Two kept-alive connections hold both slots (each answered, so each was accepted).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        assert_eq!(status_of(&String::from_utf8_lossy(&buffer[..n])), 200);
        held.push(stream);
    }

    // A third is not served while they are open...
    let mut third = server.connect().await;
    third
        .write_all(b"GET /fast HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(early.is_err(), "served over the cap: {early:?}");

    // ... and is as soon as one closes.
    drop(held.pop());
    let answer = read_answer(&mut third).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    drop(held);
    server.shut_down().await;
}

#[tokio::test]
async fn many_slow_connections_do_not_stop_the_service() {
    let options = ServeOptions::default()
        .max_connections(8)
        .header_timeout(Duration::from_millis(300));
    let server = Server::start(app(), options).await;
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut stream = server.connect().await;
        stream.write_all(b"GET /fast HTTP/1.1\r\nHo").await.unwrap();
        slow.push(stream);
    }
    // Eight at a time are taken and timed out; the request behind them is served.
    assert_eq!(server.get("/fast").await, 200);
    server.shut_down().await;
}

#[tokio::test]
async fn slow_clients_cannot_hold_the_graceful_shutdown() {
    let options = ServeOptions::default()
        .header_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_millis(500));
    let server = Server::start(app(), options).await;

    // Headers that never end, and a body that never ends.
    let mut slow_headers = server.connect().await;
    slow_headers
        .write_all(b"GET /fast HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut slow_body = server.connect().await;
    slow_body
        .write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\nab")
        .await
        .unwrap();
    // A request in progress when the shutdown begins is still answered.
    let mut in_progress = server.connect().await;
    in_progress
        .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let addr = server.addr;
    let took = server.shut_down().await;
    let answer = read_answer(&mut in_progress).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    // The slow ones were closed, not waited for: well under their 60 s header timeout.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(read_answer(&mut slow_headers).await, "");
    read_answer(&mut slow_body).await;
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn huge_or_countless_headers_get_431() {
    let options = ServeOptions::default().max_header_bytes(8 * 1024);
    let server = Server::start(app(), options).await;
    for (name, headers) in [
        (
            "one large header",
            format!("X-Big: {}\r\n", "a".repeat(16 * 1024)),
        ),
        (
            "a megabyte of headers",
            format!("X-Big: {}\r\n", "a".repeat(1024 * 1024)),
        ),
        ("many headers", "X-N: 1\r\n".repeat(500)),
        ("a long target", String::new()),
    ] {
        let path = if name == "a long target" {
            format!("/fast?{}", "q".repeat(16 * 1024))
        } else {
            "/fast".to_string()
        };
        let mut stream = server.connect().await;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
        // The server may answer and close before reading all of it.
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = read_answer(&mut stream).await;
        let status = status_of(&answer);
        // A megabyte is more than the server reads before it answers and closes: the close
        // may reset the connection before the client reads the 431.
        let reset = name == "a megabyte of headers" && status == 0;
        assert!(status == 431 || reset, "{name}: {answer}");
    }
    // Within the limit, headers are fine.
    let mut stream = server.connect().await;
    let request = format!(
        "GET /fast HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(4 * 1024)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(status_of(&read_answer(&mut stream).await), 200);
    server.shut_down().await;
}

/// The management API, with a small body limit and request timeout.
fn management(runtime: &durable_runtime::Runtime) -> Router {
    let options = RouterOptions::default()
        .max_body(1024)
        .request_timeout(Duration::from_millis(300));
    router(runtime.client(), options)
}

#[tokio::test]
async fn endless_and_stalled_bodies_are_refused() {
    let runtime = support::runtime();
    let server = Server::start(management(&runtime), ServeOptions::default()).await;
    let head = "POST /instances/x/raiseEvent/go HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\n";

    // Announced as 10 GB: refused from the header.
    let mut stream = server.connect().await;
    let request = format!("{head}Content-Length: 10000000000\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(status_of(&answer), 413, "{answer}");

    // Chunked without end: cut off at the limit while the client still sends.
    let stream = server.connect().await;
    let (mut read, mut write) = stream.into_split();
    let request = format!("{head}Transfer-Encoding: chunked\r\n\r\n");
    write.write_all(request.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        let chunk = format!("100\r\n{}\r\n", "a".repeat(256));
        for _ in 0..100_000 {
            if write.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, read.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert_eq!(status_of(&answer), 413, "{answer}");
    writer.abort();

    // Announced, then stalled: the request's time runs out.
    let mut stream = server.connect().await;
    let request = format!("{head}Content-Length: 100\r\n\r\n{{\"a\":");
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("took longer than"), "{answer}");

    server.shut_down().await;
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_address_a_connection_arrived_on_is_a_valid_host() {
    let runtime = support::runtime();
    let server = Server::start(management(&runtime), ServeOptions::default()).await;
    let port = server.addr.port();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        // Another loopback address is not the one the server was reached on.
        (format!("127.0.0.2:{port}"), 403),
        (format!("attacker.example:{port}"), 403),
    ] {
        let mut stream = server.connect().await;
        let request =
            format!("GET /instances HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert_eq!(status_of(&answer), status, "{host}: {answer}");
    }
    server.shut_down().await;
    runtime.shutdown().await;
}
