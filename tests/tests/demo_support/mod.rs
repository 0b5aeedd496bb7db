//! Drives the built `demo` binary: builds it once, starts it on a free port with a temporary
//! data directory, reads its console, and speaks plain HTTP/1.1 to it.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// Real time allowed for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `demo` binary, built by `cargo build -p demo` in the profile of this test (a no-op
/// when it is up to date). Cargo only builds a package's own binaries for its integration
/// tests, so the tests ask for it.
pub fn demo_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", "demo", "--bin", "demo"])
            .arg("--message-format=json-render-diagnostics")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let output = command
            .output()
            .expect("cannot run cargo to build the demo");
        assert!(output.status.success(), "cargo build -p demo failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|message| {
                message["reason"] == "compiler-artifact" && message["target"]["name"] == "demo"
            })
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo build reported no `demo` executable")
    })
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system's temporary directory.
    pub fn new() -> Self {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "durable-demo-test-{}-{}-{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Console {
    lines: Vec<String>,
    closed: bool,
}

/// A running demo process; killed when dropped.
pub struct Demo {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    console: Arc<(Mutex<Console>, Condvar)>,
    token: Option<String>,
}

impl Demo {
    /// Starts the demo on a free loopback port with its file store in `dir`.
    pub fn start(dir: &Path) -> Demo {
        Demo::start_with(dir, &[])
    }

    /// The same, with more command-line arguments.
    pub fn start_with(dir: &Path, args: &[&str]) -> Demo {
        let mut command = Command::new(demo_binary());
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "info")
            // The demo would take it for --postgres: only the test's arguments choose.
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the demo");
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        for (stream, prefix) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
                "",
            ),
            (Box::new(child.stderr.take().unwrap()), "stderr: "),
        ] {
            let console = Arc::clone(&console);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (lines, changed) = &*console;
                    lines.lock().unwrap().lines.push(format!("{prefix}{line}"));
                    changed.notify_all();
                }
                let (lines, changed) = &*console;
                lines.lock().unwrap().closed = true;
                changed.notify_all();
            });
        }
        let mut demo = Demo {
            child,
            addr: String::new(),
            console,
            token: None,
        };
        let line = demo.wait_for_line(|l| l.contains("demo listening on http://"));
        demo.addr = line
            .split("http://")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        demo
    }

    /// Sends `Authorization: Bearer token` from now on.
    pub fn with_token(mut self, token: &str) -> Demo {
        self.token = Some(token.to_string());
        self
    }

    /// Every console line so far (stderr lines prefixed `stderr: `).
    pub fn lines(&self) -> Vec<String> {
        self.console.0.lock().unwrap().lines.clone()
    }

    /// Waits for a console line matching `matches` (seen already or to come) and returns it.
    pub fn wait_for_line(&self, matches: impl Fn(&str) -> bool) -> String {
        let (console, changed) = &*self.console;
        let deadline = Instant::now() + PATIENCE;
        let mut state = console.lock().unwrap();
        loop {
            if let Some(line) = state.lines.iter().find(|l| matches(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                panic!(
                    "the demo printed no such line ({}); its console:\n{}",
                    if state.closed {
                        "it exited"
                    } else {
                        "timed out"
                    },
                    state.lines.join("\n")
                );
            }
            state = changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Kills the process at once (SIGKILL on Unix): no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a request and reads the whole response.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut headers = vec![];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request_with(method, path, &headers, body)
    }

    /// The same, with these headers (a body gets its Content-Length, and nothing else).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body.unwrap_or("").as_bytes());
        self.raw(&raw)
    }

    /// Writes `raw` on a new connection and reads the response until the server closes it.
    pub fn raw(&self, raw: &[u8]) -> Response {
        let mut stream = TcpStream::connect(&self.addr).expect("cannot connect to the demo");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        // The server may answer and close before reading everything sent (a 413): keep
        // whatever answer came.
        let _ = stream.write_all(raw);
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        Response::parse(&bytes)
    }

    /// `GET /status/{id}`, as JSON.
    pub fn status(&self, id: &str) -> Value {
        let response = self.request("GET", &format!("/status/{id}"), None);
        assert_eq!(response.status, 200, "{response:?}");
        response.json()
    }

    /// Waits until the instance's status satisfies `done`, and returns it.
    pub fn wait_for_status(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status(id);
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "instance {id} did not get there; last status {status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the instance has finished.
    pub fn finished(&self, id: &str) -> Value {
        self.wait_for_status(id, |s| {
            matches!(
                s["runtimeStatus"].as_str(),
                Some("Completed" | "Failed" | "Terminated")
            )
        })
    }

    /// `POST path` expecting 202 and an `instanceId`.
    pub fn start_instance(&self, path: &str) -> String {
        let response = self.request("POST", path, None);
        assert_eq!(response.status, 202, "{response:?}");
        response.json()["instanceId"].as_str().unwrap().to_string()
    }

    /// `POST /send-event/{id}` expecting 202.
    pub fn send_event(&self, id: &str, name: &str, data: Value) {
        let body = serde_json::json!({ "eventName": name, "data": data }).to_string();
        let response = self.request("POST", &format!("/send-event/{id}"), Some(&body));
        assert_eq!(response.status, 202, "{response:?}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Its status code.
    pub status: u16,
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Its body as text.
    pub body: String,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = bytes[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the status and that the body is `{"error": "<non-empty message>"}`; returns
    /// the message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        let json = self.json();
        let message = json["error"].as_str().unwrap_or_else(|| panic!("{self:?}"));
        assert!(!message.is_empty());
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
        message.to_string()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&body[..end]).unwrap_or("0");
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
}

/// The console lines `ReliableActivity execution #N: <step>` for `step`.
pub fn reliable_runs(lines: &[String], step: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("ReliableActivity execution #") && l.ends_with(&format!(": {step}")))
        .count()
}

/// The attempt numbers of the console lines `UnreliableActivity - Attempt #N`, in order.
pub fn unreliable_attempts(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.split("UnreliableActivity - Attempt #").nth(1))
        .map(|n| n.trim().parse().unwrap())
        .collect()
}
