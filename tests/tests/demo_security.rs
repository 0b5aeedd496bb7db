//! Other web pages cannot drive the demo: a foreign Origin, a cross-site fetch, or (without
//! a token) a Host that is not the demo (DNS rebinding) is refused over a real socket;
//! `--allowed-host` lets a name in.

mod demo_support;

use demo_support::{Demo, Response, TempDir};
use serde_json::json;

/// `method path` with exactly these headers (`Host` among them).
fn send(demo: &Demo, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    demo.raw(head.as_bytes())
}

fn port_of(demo: &Demo) -> &str {
    demo.addr.rsplit(':').next().unwrap()
}

#[test]
fn other_web_pages_cannot_start_or_read_instances() {
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let host = demo.addr.clone();
    let port = port_of(&demo).to_string();

    // A page of another site posts to the demo (a form, or fetch without CORS).
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://localhost:{port}"),
    ] {
        let headers = [("Host", host.as_str()), ("Origin", origin)];
        for (method, path) in [
            ("POST", "/start-retry"),
            ("POST", "/start-external-event"),
            ("GET", "/instances"),
            ("GET", "/status/x"),
        ] {
            let message = send(&demo, method, path, &headers).error(403);
            assert!(message.contains("Origin"), "{message}");
        }
    }
    let cross_site = [("Host", host.as_str()), ("Sec-Fetch-Site", "cross-site")];
    send(&demo, "POST", "/start-retry", &cross_site).error(403);

    // DNS rebinding: the attacker's name now resolves to 127.0.0.1, so its page is
    // same-origin with itself and may read the answers, but its Host names it.
    let rebound = format!("attacker.example:{port}");
    let origin = format!("http://{rebound}");
    let headers = [("Host", rebound.as_str()), ("Origin", origin.as_str())];
    send(&demo, "GET", "/instances", &headers).error(403);
    send(&demo, "POST", "/start-retry", &headers).error(403);

    // Nothing was started by the refused requests.
    let listed = demo.request("GET", "/instances", None).json();
    assert_eq!(listed["instances"], json!([]));

    // The demo's own pages, and curl, by address or by `localhost`.
    let same = format!("http://{host}");
    let headers = [("Host", host.as_str()), ("Origin", same.as_str())];
    let response = send(&demo, "POST", "/start-external-event", &headers);
    assert_eq!(response.status, 202, "{response:?}");
    let localhost = format!("localhost:{port}");
    let response = send(&demo, "GET", "/instances", &[("Host", localhost.as_str())]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["instances"].as_array().unwrap().len(), 1);
}

#[test]
fn allowed_host_names_and_a_token_let_other_names_in() {
    let dir = TempDir::new();
    let demo = Demo::start_with(
        dir.path(),
        &[
            "--allowed-host",
            "durable.test",
            "--allowed-host",
            "ops.test",
        ],
    );
    let port = port_of(&demo).to_string();
    for name in ["durable.test", "OPS.test"] {
        let host = format!("{name}:{port}");
        let response = send(&demo, "GET", "/instances", &[("Host", host.as_str())]);
        assert_eq!(response.status, 200, "{response:?}");
    }
    let other = format!("other.test:{port}");
    send(&demo, "GET", "/instances", &[("Host", other.as_str())]).error(403);
    drop(demo);

    // With a token, the name does not matter: a rebinding page does not have the token.
    let demo = Demo::start_with(dir.path(), &["--auth-token", "t"]);
    let port = port_of(&demo).to_string();
    let other = format!("other.test:{port}");
    let headers = [("Host", other.as_str()), ("Authorization", "Bearer t")];
    let response = send(&demo, "GET", "/instances", &headers);
    assert_eq!(response.status, 200, "{response:?}");
    send(&demo, "GET", "/instances", &[("Host", other.as_str())]).error(401);
    let foreign = [
        ("Host", other.as_str()),
        ("Authorization", "Bearer t"),
        ("Origin", "http://evil.example"),
    ];
    send(&demo, "GET", "/instances", &foreign).error(403);
}
