//! The demo's telemetry over real sockets: `--otlp-endpoint` sends the retry workflow's
//! spans to an OTLP/HTTP collector (here a stand-in that keeps the request bodies), and
//! `/metrics` serves the runtime's metrics as Prometheus text.

mod demo_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo_support::{Demo, TempDir, PATIENCE};

/// What the collector received: one (path, content type, body) per request.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A stand-in OTLP/HTTP collector on a free port: answers every POST 200, keeps its body.
fn collector() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let kept = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                // Requests on a kept-alive connection, one after the other.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let (mut length, mut kind) = (0, String::new());
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "content-type" => kind = value.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    kept.lock().unwrap().push((path, kind, body));
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (url, received)
}

/// How many times `needle` occurs in everything the collector received.
fn occurrences(received: &Received, needle: &str) -> usize {
    let needle = needle.as_bytes();
    received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, body)| body.windows(needle.len()).filter(|w| *w == needle).count())
        .sum()
}

#[test]
fn otlp_endpoint_receives_the_spans_and_metrics_are_served() {
    let (url, received) = collector();
    // Batches go out every 100 ms instead of every 5 s.
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let dir = TempDir::new();
    let demo = Demo::start_with(dir.path(), &["--otlp-endpoint", &url]);
    let id = demo.start_instance("/start-retry");
    assert_eq!(demo.finished(&id)["runtimeStatus"], "Completed");

    // Protobuf keeps strings as they are: the span names are in the bodies. The timer spans'
    // names begin with the orchestration span's.
    let deadline = Instant::now() + PATIENCE;
    while occurrences(&received, "orchestration:retry_orchestrator") < 4 {
        assert!(
            Instant::now() < deadline,
            "the collector never got the orchestration span"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        occurrences(&received, "orchestration:retry_orchestrator:timer"),
        3
    );
    assert_eq!(
        occurrences(&received, "orchestration:retry_orchestrator"),
        4
    );
    assert_eq!(occurrences(&received, "activity:reliable_activity"), 3);
    assert_eq!(occurrences(&received, "activity:unreliable_activity"), 4);
    assert_eq!(occurrences(&received, "Database timeout (simulated)"), 1);
    for (path, kind, _) in received.lock().unwrap().iter() {
        assert_eq!(path, "/v1/traces");
        assert_eq!(kind, "application/x-protobuf");
    }

    let metrics = demo.request("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    for line in [
        "durable_instances_started_total{orchestrator=\"retry_orchestrator\"} 1",
        "durable_instances_completed_total{orchestrator=\"retry_orchestrator\"} 1",
        "durable_activity_seconds_count{activity=\"unreliable_activity\",outcome=\"failed\"} 3",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "no `{line}` in:\n{}",
            metrics.body
        );
    }
}

#[test]
fn a_bad_otlp_endpoint_is_refused_with_a_reason() {
    let dir = TempDir::new();
    let output = std::process::Command::new(demo_support::demo_binary())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--otlp-endpoint",
            "localhost:4318",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--otlp-endpoint must be an http:// or https:// URL"),
        "{stderr}"
    );
}
