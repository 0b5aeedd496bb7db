//! The dashboard's page and assets, in-process: all compiled in, all referenced files
//! served, nothing loaded from elsewhere (the policy says so, and the files agree), loaded
//! without the token while the API still needs it. The page itself is tested in a browser
//! (`tests/tests/dashboard_browser.rs`).

mod support;

use axum::body::Body;
use axum::Router;
use durable_http::{router, RouterOptions};
use serde_json::Value;
use support::{get, runtime, send, waiting, Answer};

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                      connect-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name}: {answer:?}"))
        .to_str()
        .unwrap()
}

/// The values of `attribute="…"` in `html`.
fn attributes<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!(" {attribute}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// The modules a script imports (`from './x.js'`).
fn imports(script: &str) -> Vec<&str> {
    script
        .match_indices("from './")
        .map(|(at, _)| {
            let rest = &script[at + "from './".len()..];
            &rest[..rest.find('\'').unwrap()]
        })
        .collect()
}

/// Every file the page loads, from `index.html` through the scripts' imports, each fetched.
async fn every_file(app: &Router) -> Vec<(String, Answer)> {
    let index = get(app, "/").await;
    let mut pending: Vec<String> = attributes(&index.body, "src")
        .into_iter()
        .chain(attributes(&index.body, "href"))
        .filter(|link| !link.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut files = vec![("index.html".to_string(), index)];
    while let Some(link) = pending.pop() {
        if files.iter().any(|(seen, _)| *seen == link) {
            continue;
        }
        assert!(
            link.starts_with("dashboard/"),
            "a link outside the dashboard: {link}"
        );
        let answer = get(app, &format!("/{link}")).await;
        assert_eq!(answer.status, 200, "{link}: {answer:?}");
        if link.ends_with(".js") {
            pending.extend(
                imports(&answer.body)
                    .iter()
                    .map(|m| format!("dashboard/{m}")),
            );
        }
        files.push((link, answer));
    }
    files
}

#[tokio::test]
async fn the_page_and_all_it_loads_are_served_under_a_policy_of_this_server_only() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    let files = every_file(&app).await;
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "index.html",
        "dashboard/style.css",
        "dashboard/icon.svg",
        "dashboard/main.js",
        "dashboard/api.js",
        "dashboard/list.js",
        "dashboard/instance.js",
        "dashboard/timeline.js",
        "dashboard/history.js",
        "dashboard/actions.js",
        "dashboard/ui.js",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is not loaded: {names:?}"
        );
    }
    for (name, answer) in &files {
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(header(answer, "content-security-policy"), POLICY, "{name}");
        assert_eq!(header(answer, "x-content-type-options"), "nosniff");
        assert_eq!(header(answer, "referrer-policy"), "no-referrer");
        let content_type = header(answer, "content-type");
        let expected = match name.rsplit('.').next().unwrap() {
            "html" => "text/html; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected file type {other}"),
        };
        assert_eq!(content_type, expected, "{name}");
        // Nothing names another server: the SVG's namespace is a name, not a fetch.
        let outside = answer
            .body
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for scheme in ["http://", "https://", "//cdn", "@import"] {
            assert!(!outside.contains(scheme), "{name} mentions {scheme}");
        }
    }
    // No inline script, style or handler, which the policy would block.
    let index = &files[0].1.body;
    assert_eq!(
        index.matches("<script").count(),
        attributes(index, "src")
            .iter()
            .filter(|s| s.ends_with(".js"))
            .count()
    );
    for inline in [" style=", " onclick=", " onload=", "<style", "javascript:"] {
        assert!(!index.contains(inline), "index.html has {inline}");
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_page_loads_without_the_token_and_the_api_still_needs_it() {
    let runtime = runtime();
    let client = runtime.client();
    waiting(&client, "w-1").await;
    let app = router(
        client.clone(),
        RouterOptions::default().auth_token("s3cret"),
    );

    let files = every_file(&app).await;
    assert!(files.len() > 5);
    get(&app, "/instances").await.error(401);
    get(&app, "/instances/w-1/history").await.error(401);

    let session = |auth: Option<&'static str>| {
        let app = app.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let answer = send(&app, "GET", "/dashboard/session", &headers, Body::empty()).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(header(&answer, "cache-control"), "no-store");
            answer.json()
        }
    };
    assert_eq!(session(None).await["token"], "missing");
    assert_eq!(session(Some("Bearer guess")).await["token"], "wrong");
    assert_eq!(session(Some("Basic s3cret")).await["token"], "missing");
    let accepted = session(Some("Bearer s3cret")).await;
    assert_eq!(accepted["token"], "accepted");
    assert_eq!(
        accepted["listFilters"],
        serde_json::json!([
            "runtimeStatus",
            "name",
            "instanceIdPrefix",
            "customStatus",
            "createdTimeFrom",
            "createdTimeTo"
        ])
    );
    assert_eq!(accepted["counts"], true);
    assert_eq!(accepted["bulk"], true);

    // With a token, any host name may load the page (a reverse proxy's): it holds no data.
    let proxied = send(
        &app,
        "GET",
        "/",
        &[("host", "durable.example")],
        Body::empty(),
    )
    .await;
    assert_eq!(proxied.status, 200);

    let open = router(client, RouterOptions::default());
    let answer = get(&open, "/dashboard/session").await;
    assert_eq!(answer.json()["token"], "notRequired");
    runtime.shutdown().await;
}

#[tokio::test]
async fn other_pages_cannot_read_the_dashboard_either() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    let foreign = [("origin", "http://evil.example")];
    for path in ["/", "/dashboard/main.js", "/dashboard/session"] {
        send(&app, "GET", path, &foreign, Body::empty())
            .await
            .error(403);
        let cross = [("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "cors")];
        send(&app, "GET", path, &cross, Body::empty())
            .await
            .error(403);
    }
    // Without a token, a name that resolves here is DNS rebinding: refused.
    let rebound = [("host", "evil.example:8080")];
    send(&app, "GET", "/", &rebound, Body::empty())
        .await
        .error(403);
    // A link to the dashboard, followed from another site, opens it.
    let followed = [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
    ];
    let answer = send(&app, "GET", "/", &followed, Body::empty()).await;
    assert_eq!(answer.status, 200);
    runtime.shutdown().await;
}

#[tokio::test]
async fn only_the_compiled_in_files_are_served() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default());
    for path in [
        "/dashboard/nothing.js",
        "/dashboard/..%2FCargo.toml",
        "/dashboard/%2E%2E%2Fsrc%2Flib.rs",
        "/dashboard/index.html",
        "/dashboard/",
        "/dashboard/style.css%00",
    ] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        let _: Value = answer.json();
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn nested_under_a_prefix_the_page_links_under_it() {
    let runtime = runtime();
    let app = Router::new().nest(
        "/durable",
        router(runtime.client(), RouterOptions::default()),
    );
    let page = get(&app, "/durable").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("src=\"durable/dashboard/main.js\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("\"dashboard/"), "{}", page.body);
    assert_eq!(get(&app, "/durable/dashboard/main.js").await.status, 200);
    assert_eq!(get(&app, "/durable/instances").await.status, 200);

    // A segment that HTML would read otherwise stays text.
    let odd = Router::new().nest("/a&b", router(runtime.client(), RouterOptions::default()));
    let page = get(&odd, "/a&b").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("src=\"a&amp;b/dashboard/main.js\""),
        "{}",
        page.body
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_can_be_left_out() {
    let runtime = runtime();
    let app = router(runtime.client(), RouterOptions::default().dashboard(false));
    get(&app, "/").await.error(404);
    get(&app, "/dashboard/main.js").await.error(404);
    assert_eq!(get(&app, "/instances").await.status, 200);
    runtime.shutdown().await;
}
