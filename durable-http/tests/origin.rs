//! Other web pages cannot drive the API: a foreign `Origin` (`null` included) or a cross-site
//! fetch is refused, and so, without a token, is a `Host` that is not this server (DNS
//! rebinding). curl and same-origin requests pass.

mod support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::Request;
use durable_http::{router, LocalAddr, RouterOptions};
use support::{completed, runtime, send, Answer};
use tower::ServiceExt;

async fn get_with(app: &axum::Router, headers: &[(&str, &str)]) -> Answer {
    send(app, "GET", "/instances", headers, Body::empty()).await
}

#[tokio::test]
async fn a_foreign_origin_is_refused_whatever_the_method() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    completed(&client, "done-1").await;

    for origin in [
        "null",
        "http://evil.example",
        "http://evil.example:8080",
        "http://localhost:9999",
        "http://localhost",
        "http://127.0.0.1:8080",
        "file://",
        "not an origin",
        "",
    ] {
        let headers = [("host", "localhost:8080"), ("origin", origin)];
        let message = get_with(&app, &headers).await.error(403);
        assert!(message.contains("Origin"), "{origin}: {message}");
        for (method, path) in [
            ("POST", "/instances/done-1/terminate"),
            ("DELETE", "/instances/done-1"),
            ("POST", "/instances/done-1/raiseEvent/x"),
        ] {
            send(&app, method, path, &headers, Body::empty())
                .await
                .error(403);
        }
    }
    // Nothing was purged.
    let answer = get_with(&app, &[]).await;
    assert_eq!(answer.json()["instances"][0]["instanceId"], "done-1");
    runtime.shutdown().await;
}

#[tokio::test]
async fn curl_and_same_origin_requests_pass() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    for headers in [
        // curl: no Origin.
        &[("host", "localhost:8080")][..],
        &[("host", "127.0.0.1:8080"), ("user-agent", "curl/8.5.0")][..],
        // A page of this server.
        &[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ][..],
        &[
            ("host", "LocalHost:8080"),
            ("origin", "http://localhost:8080"),
        ][..],
        &[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ][..],
        &[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")][..],
        &[("host", "localhost"), ("origin", "http://localhost")][..],
        &[("host", "localhost:80"), ("origin", "http://localhost")][..],
        // Behind a proxy that serves it over TLS under the same name.
        &[("host", "localhost"), ("origin", "https://localhost")][..],
        // Fetch metadata of a same-origin fetch, and of a URL typed by the user.
        &[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ][..],
        &[("host", "localhost:8080"), ("sec-fetch-site", "none")][..],
        // A link followed from another site: a navigation, which reads nothing.
        &[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ][..],
    ] {
        let answer = get_with(&app, headers).await;
        assert_eq!(answer.status, 200, "{headers:?}: {answer:?}");
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn cross_site_fetches_are_refused_even_without_an_origin() {
    let runtime = runtime();
    let client = runtime.client();
    let app = router(client.clone(), RouterOptions::default());
    completed(&client, "done-1").await;
    for site in ["cross-site", "same-site"] {
        for mode in ["no-cors", "cors", "navigate"] {
            let headers = [
                ("host", "localhost:8080"),
                ("sec-fetch-site", site),
                ("sec-fetch-mode", mode),
            ];
            // A form posted from another site is a navigation too.
            send(&app, "DELETE", "/instances/done-1", &headers, Body::empty())
                .await
                .error(403);
            send(
                &app,
                "POST",
                "/instances/done-1/terminate",
                &headers,
                Body::empty(),
            )
            .await
            .error(403);
            if mode != "navigate" {
                get_with(&app, &headers).await.error(403);
            }
        }
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn without_a_token_the_host_must_be_this_server() {
    let runtime = runtime();
    let app = router(
        runtime.client(),
        RouterOptions::default().allowed_host("Durable.Internal"),
    );
    // DNS rebinding: a page of attacker.example, whose name now resolves to 127.0.0.1, is
    // same-origin with itself, and its Host names it.
    for host in [
        "attacker.example:8080",
        "attacker.example",
        "localhost.attacker.example",
        "127.0.0.1.nip.io:8080",
        "10.0.0.1:8080",
        "durable.internal.evil",
        "localhost.",
        "",
        "a b",
    ] {
        let origin = format!("http://{host}");
        for headers in [
            &[("host", host)][..],
            &[("host", host), ("origin", origin.as_str())][..],
        ] {
            let answer = get_with(&app, headers).await;
            assert!(
                answer.status == 403 || answer.status == 400,
                "{host}: {answer:?}"
            );
            answer.error(answer.status.as_u16());
        }
    }
    for host in [
        "localhost",
        "localhost:1234",
        "LOCALHOST:8080",
        "127.0.0.1:8080",
        "127.0.0.1",
        "[::1]:8080",
        "durable.internal:8080",
        "DURABLE.internal",
    ] {
        let answer = get_with(&app, &[("host", host)]).await;
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
    runtime.shutdown().await;
}

/// `GET /instances` with this `Host`, arrived on `local` as `serve` records it.
async fn arrived_on(app: &axum::Router, local: &str, host: &str) -> Answer {
    let local: SocketAddr = local.parse().unwrap();
    let mut request = Request::builder()
        .uri("/instances")
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(LocalAddr(local));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    Answer {
        status,
        headers: response.headers().clone(),
        body: String::new(),
    }
}

#[tokio::test]
async fn the_address_a_connection_arrived_on_is_this_server() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    assert_eq!(
        arrived_on(&app, "10.1.2.3:80", "10.1.2.3").await.status,
        200
    );
    assert_eq!(
        arrived_on(&app, "10.1.2.3:80", "10.1.2.3:8080")
            .await
            .status,
        200
    );
    assert_eq!(
        arrived_on(&app, "[fd00::1]:80", "[fd00::1]:80")
            .await
            .status,
        200
    );
    // An IPv4 client on a dual-stack socket arrives on a mapped address.
    assert_eq!(
        arrived_on(&app, "[::ffff:10.1.2.3]:80", "10.1.2.3")
            .await
            .status,
        200
    );
    assert_eq!(
        arrived_on(&app, "10.1.2.3:80", "localhost").await.status,
        200
    );
    assert_eq!(
        arrived_on(&app, "10.1.2.3:80", "10.1.2.4").await.status,
        403
    );
    // Once the address is known, other loopback addresses are not it.
    assert_eq!(
        arrived_on(&app, "127.0.0.1:80", "127.0.0.2").await.status,
        403
    );
    assert_eq!(
        arrived_on(&app, "10.1.2.3:80", "127.0.0.1").await.status,
        403
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn with_a_token_any_host_may_ask_but_origins_are_still_checked() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default().auth_token("t"));
    let token = ("authorization", "Bearer t");
    let answer = get_with(&app, &[("host", "durable.example.com"), token]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Without the token, a rebinding page learns nothing.
    get_with(&app, &[("host", "attacker.example")])
        .await
        .error(401);
    // A foreign origin is refused before the token is looked at.
    let foreign = [
        ("host", "localhost"),
        ("origin", "http://evil.example"),
        token,
    ];
    get_with(&app, &foreign).await.error(403);
    let foreign = [("host", "localhost"), ("origin", "null")];
    get_with(&app, &foreign).await.error(403);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_request_without_a_host_is_refused() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    let request = Request::builder()
        .uri("/instances")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 400);
    // An absolute-form target names the host the client meant: it is checked too.
    let request = Request::builder()
        .uri("http://attacker.example/instances")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 403);
    runtime.shutdown().await;
}

#[tokio::test]
async fn over_http2_the_target_names_the_server() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    for (origin, status) in [("http://localhost:8080", 200), ("http://evil.example", 403)] {
        let request = Request::builder()
            .uri("http://localhost:8080/instances")
            .version(axum::http::Version::HTTP_2)
            .header("origin", origin)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{origin}");
    }
    runtime.shutdown().await;
}
