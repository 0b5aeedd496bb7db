//! The dashboard in a real browser (headless Chromium over WebDriver): the POC's workflows
//! on the demo binary, read and driven through the page as a person would, with the mouse,
//! with the keyboard alone, on a phone-sized screen and behind a token; and the timeline of
//! timers, children, waits, generations and a non-determinism failure, in-process.
//!
//! Each scenario ends with the browser's console checked for errors. Screenshots go to
//! `target/dashboard-screenshots/`. Without a browser the tests skip, saying so in one line
//! (`DURABLE_BROWSER_TESTS=require` makes that a failure).

mod browser_support;
mod demo_support;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use browser_support::Browser;
use demo_support::{Demo, TempDir};
use durable_http::{router, serve, RouterOptions, ServeOptions};
use durable_runtime::store::MemoryStore;
use durable_runtime::{
    activity, orchestrator, ActivityContext, Client, ClientError, OrchestrationContext, Runtime,
    RuntimeBuilder, RuntimeStatus, TaskError,
};
use fantoccini::key::Key;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const ROWS: &str = "document.querySelectorAll('table.instances tbody tr a').length";
const BADGE: &str = "document.querySelector('.facts .badge')?.textContent";
const CUSTOM: &str = "document.querySelector('.facts dd.custom')?.textContent";
const CONFIRMING: &str = "document.querySelector('#confirm-dialog').open";

/// A browser, and the demo on a fresh data directory with `args`; `None` without a browser.
async fn browser_and_demo(test: &str, args: &[&str]) -> Option<(TempDir, Demo, Browser)> {
    let browser = Browser::start(test, 1280, 1000).await?;
    let dir = TempDir::new();
    let demo = Demo::start_with(dir.path(), args);
    Some((dir, demo, browser))
}

/// Every lane of the timeline: its title, summary and bars (classes, text, position).
async fn read_lanes(browser: &Browser) -> Vec<Value> {
    let script = "return [...document.querySelectorAll('.lane:not(.axis-row)')].map(lane => ({
        title: lane.querySelector('.lane-title').innerText,
        href: lane.querySelector('.lane-title a')?.getAttribute('href') ?? null,
        summary: lane.querySelector('.lane-summary').innerText,
        bars: [...lane.querySelectorAll('.bar')].map(bar => {
            const box = bar.getBoundingClientRect();
            return { class: bar.className, text: bar.innerText, x: box.x, width: box.width };
        }),
    }));";
    browser.eval(script).await.as_array().unwrap().clone()
}

fn lane<'a>(lanes: &'a [Value], title: &str) -> &'a Value {
    lanes
        .iter()
        .find(|lane| lane["title"] == title)
        .unwrap_or_else(|| panic!("no lane {title}: {lanes:#?}"))
}

/// A lane's summary, the line under its title.
fn summary(lanes: &[Value], title: &str) -> String {
    lane(lanes, title)["summary"].as_str().unwrap().to_string()
}

/// Waits until the instance page shows the status `status`.
async fn status_is(browser: &Browser, status: &str) {
    let condition = format!("{BADGE} === '{status}'");
    browser
        .until(&format!("the status {status}"), &condition)
        .await;
}

/// Waits until the instance page shows the custom status `text`.
async fn custom_status_is(browser: &Browser, text: &str) {
    let condition = format!("{CUSTOM} === '{text}'");
    browser
        .until(&format!("the custom status {text}"), &condition)
        .await;
}

/// Clicks `button` and waits for the confirmation it asks for.
async fn asks_to_confirm(browser: &Browser, button: &str) {
    browser.click(button).await;
    browser.until("the confirmation", CONFIRMING).await;
}

/// `"1.0 s"` → 1.0.
fn seconds(text: &str) -> f64 {
    text.trim()
        .strip_suffix(" s")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("not seconds: {text:?}"))
}

fn has_class(bar: &Value, class: &str) -> bool {
    bar["class"]
        .as_str()
        .unwrap()
        .split(' ')
        .any(|c| c == class)
}

/// The page's history as the API gives it.
fn history_kinds(demo: &Demo, id: &str) -> Vec<String> {
    let answer = demo.request("GET", &format!("/instances/{id}/history?top=1000"), None);
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn no_horizontal_scroll(browser: &Browser, page: &str) {
    let sizes = browser
        .eval(
            "return { inner: window.innerWidth, document: document.documentElement.scrollWidth,
                      body: document.body.scrollWidth };",
        )
        .await;
    assert_eq!(
        sizes["inner"], 375,
        "the viewport is not a phone's: {sizes}"
    );
    let widest = sizes["document"]
        .as_u64()
        .unwrap()
        .max(sizes["body"].as_u64().unwrap());
    assert!(widest <= 375, "{page} scrolls sideways on a phone: {sizes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_workflow_shows_four_attempts_and_its_back_offs() {
    let Some((_dir, demo, browser)) = browser_and_demo(
        "the_retry_workflow_shows_four_attempts_and_its_back_offs",
        &[],
    )
    .await
    else {
        return;
    };
    let retry = demo.start_instance("/start-retry");
    demo.start_instance("/start-external-event");

    // Find it in the list by its orchestrator's name, and open it.
    browser.goto(&format!("http://{}/", demo.addr)).await;
    browser
        .until("both instances", &format!("{ROWS} === 2"))
        .await;
    browser
        .type_into("input[name=name]", "retry_orchestrator")
        .await;
    browser
        .until(
            "only the retry instance",
            &format!(
                "{ROWS} === 1 && document.querySelector('table.instances tbody a').textContent === '{retry}'"
            ),
        )
        .await;
    browser
        .click(&format!("a[href='#/instance/{retry}']"))
        .await;
    status_is(&browser, "Completed").await;

    // Activity 3: four attempts, three failed, the back-offs between them.
    let lanes = read_lanes(&browser).await;
    let third = lane(&lanes, "Activity 3 · unreliable_activity");
    let parts: Vec<&str> = third["summary"].as_str().unwrap().split(" · ").collect();
    assert_eq!(parts[..2], ["4 attempts", "3 failed"], "{third}");
    let backoffs: Vec<f64> = parts[2]
        .strip_prefix("back-offs ")
        .unwrap_or_else(|| panic!("no back-offs in {parts:?}"))
        .split(", ")
        .map(seconds)
        .collect();
    assert_eq!(backoffs.len(), 3, "{parts:?}");
    for (read, expected) in backoffs.iter().zip([1.0, 2.0, 4.0]) {
        assert!((read - expected).abs() < 0.25, "back-offs {backoffs:?}");
    }
    let bars = third["bars"].as_array().unwrap();
    let attempts: Vec<&Value> = bars.iter().filter(|b| has_class(b, "attempt")).collect();
    let failed = attempts.iter().filter(|b| has_class(b, "failed")).count();
    assert_eq!((attempts.len(), failed), (4, 3), "{third}");
    assert!(!has_class(attempts[3], "failed"));
    // On the axis: attempt, back-off, attempt, …, each back-off labelled, and as long as
    // its share of the time (2 s twice 1 s, 4 s four times).
    let backoff_bars: Vec<&Value> = bars.iter().filter(|b| has_class(b, "backoff")).collect();
    assert_eq!(backoff_bars.len(), 3);
    for (bar, expected) in backoff_bars.iter().zip([1.0, 2.0, 4.0]) {
        let label = bar["text"].as_str().unwrap();
        let read = seconds(label.trim_start_matches("back-off "));
        assert!((read - expected).abs() < 0.25, "label {label:?}");
    }
    let x = |bar: &Value| bar["x"].as_f64().unwrap();
    for i in 0..3 {
        assert!(x(attempts[i]) <= x(backoff_bars[i]), "{third}");
        assert!(x(backoff_bars[i]) < x(attempts[i + 1]), "{third}");
    }
    let width = |bar: &Value| bar["width"].as_f64().unwrap();
    for (i, times) in [(1, 2.0), (2, 4.0)] {
        let ratio = width(backoff_bars[i]) / width(backoff_bars[0]);
        assert!((ratio - times).abs() < times * 0.25, "{third}");
    }
    for other in [
        "Activity 1 · reliable_activity",
        "Activity 2 · reliable_activity",
        "Activity 4 · reliable_activity",
    ] {
        let summary = summary(&lanes, other);
        assert!(
            summary.starts_with("1 attempt · completed"),
            "{other}: {summary}"
        );
    }

    // A failed attempt's bar tells why.
    browser.click(".lane-activity .bar.attempt.failed").await;
    let detail = browser.text(".bar-detail").await;
    assert!(
        detail.contains("Network connection error (simulated)"),
        "{detail}"
    );
    browser.screenshot_of(".timeline", "timeline").await;
    browser.screenshot("instance").await;

    // The list, the filter left behind.
    browser.click(".crumbs a").await;
    browser
        .until("both instances", &format!("{ROWS} === 2"))
        .await;
    browser.screenshot("list").await;
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_raised_through_the_form_complete_the_external_event_workflow() {
    let Some((_dir, demo, browser)) = browser_and_demo(
        "events_raised_through_the_form_complete_the_external_event_workflow",
        &[],
    )
    .await
    else {
        return;
    };
    let id = demo.start_instance("/start-external-event");
    browser
        .goto(&format!("http://{}/#/instance/{id}", demo.addr))
        .await;
    custom_status_is(&browser, "waiting for event step2").await;

    // What is not JSON, or has no name, is refused before anything is sent.
    browser.type_into("#event-name", "step2").await;
    browser.type_into("#event-data", "{ok").await;
    browser.click("form.raise button[type=submit]").await;
    browser
        .until(
            "the JSON error",
            "document.querySelector('#event-error').textContent.includes('not JSON')",
        )
        .await;
    browser.type_into("#event-name", " ").await;
    browser.type_into("#event-data", "\"ok\"").await;
    browser.click("form.raise button[type=submit]").await;
    browser
        .until(
            "the name error",
            "document.querySelector('#event-error').textContent.includes('name')",
        )
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('#confirm-dialog').open")
            .await,
        json!(false)
    );
    assert!(!history_kinds(&demo, &id).contains(&"EventRaised".to_string()));

    for (name, data, next) in [
        ("step2", "\"ok\"", "waiting for event step4"),
        ("step4", "\"done\"", "completed"),
    ] {
        browser.type_into("#event-name", name).await;
        browser.type_into("#event-data", data).await;
        asks_to_confirm(&browser, "form.raise button[type=submit]").await;
        assert_eq!(
            browser.text("#confirm-title").await,
            format!("Raise {name}?")
        );
        browser.click("#confirm-ok").await;
        browser
            .until(
                &format!("the event {name} raised"),
                &format!("{CUSTOM} === '{next}'"),
            )
            .await;
        let result = browser.text(".instance .results").await;
        assert!(result.contains(&format!("Event {name} raised")), "{result}");
    }
    status_is(&browser, "Completed").await;
    let output = browser
        .eval(
            "return [...document.querySelectorAll('.payload')]
                .find(d => d.querySelector('summary').textContent === 'Output')
                .querySelector('pre').textContent",
        )
        .await;
    let output: Value = serde_json::from_str(output.as_str().unwrap()).unwrap();
    assert_eq!(output["step2Data"], "ok");
    assert_eq!(output["step4Data"], "done");
    let lanes = read_lanes(&browser).await;
    for name in ["Event step2", "Event step4"] {
        let line = summary(&lanes, name);
        assert!(line.starts_with("arrived after "), "{name}: {line}");
    }
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_purge_through_the_buttons() {
    let Some((_dir, demo, browser)) =
        browser_and_demo("terminate_and_purge_through_the_buttons", &[]).await
    else {
        return;
    };
    let id = demo.start_instance("/start-external-event");
    browser
        .goto(&format!("http://{}/#/instance/{id}", demo.addr))
        .await;
    status_is(&browser, "Running").await;
    // Purge does not apply to a running instance; a cancelled suspension does nothing.
    assert_eq!(
        browser
            .eval("return document.querySelector('button[data-action=purge]').disabled")
            .await,
        json!(true)
    );
    browser.record_requests().await;
    asks_to_confirm(&browser, "button[data-action=suspend]").await;
    browser.click("#confirm-cancel").await;
    browser.until("no dialog", &format!("!{CONFIRMING}")).await;
    // The page acts (or not) as the dialog closes: nothing was asked of the server.
    assert_eq!(browser.changes_requested().await, Vec::<String>::new());
    assert_eq!(browser.text(".instance .results").await, "");
    assert_eq!(demo.status(&id)["runtimeStatus"], "Running");

    asks_to_confirm(&browser, "button[data-action=terminate]").await;
    browser
        .type_into("#confirm-body input[name=reason]", "enough")
        .await;
    browser.click("#confirm-ok").await;
    status_is(&browser, "Terminated").await;
    assert_eq!(demo.status(&id)["output"], "enough");
    let result = browser.text(".instance .results").await;
    assert!(result.contains("terminate accepted"), "{result}");

    asks_to_confirm(&browser, "button[data-action=purge]").await;
    browser.click("#confirm-ok").await;
    browser
        .until(
            "the purge",
            "document.querySelector('.result.ok')?.textContent.includes('was purged')",
        )
        .await;
    assert_eq!(
        demo.request("GET", &format!("/status/{id}"), None).status,
        404
    );
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_apply_to_the_selection() {
    let Some((_dir, demo, browser)) =
        browser_and_demo("bulk_actions_apply_to_the_selection", &[]).await
    else {
        return;
    };
    let ids: Vec<String> = (0..3)
        .map(|_| demo.start_instance("/start-external-event"))
        .collect();
    browser.goto(&format!("http://{}/", demo.addr)).await;
    browser
        .until("three instances", &format!("{ROWS} === 3"))
        .await;
    for id in &ids[..2] {
        browser
            .click(&format!("input[type=checkbox][value='{id}']"))
            .await;
    }
    assert_eq!(browser.text(".bulk .selection").await, "2 selected");

    for (action, past, status) in [
        ("Terminate…", "terminated", "Terminated"),
        ("Purge…", "purged", "gone"),
    ] {
        let script = format!(
            "[...document.querySelectorAll('.bulk button')].find(b => b.textContent === '{action}').click(); return true;"
        );
        browser.eval(&script).await;
        browser.until("the confirmation", CONFIRMING).await;
        assert_eq!(
            browser.text("#confirm-title").await,
            format!("{} 2 instances?", action.trim_end_matches('…'))
        );
        browser.click("#confirm-ok").await;
        browser
            .until(
                &format!("2 instances {past}"),
                &format!("document.querySelector('.list .results').textContent === '2 instances {past}.'"),
            )
            .await;
        for id in &ids[..2] {
            let answer = demo.request("GET", &format!("/status/{id}"), None);
            match status {
                "gone" => assert_eq!(answer.status, 404),
                _ => assert_eq!(answer.json()["runtimeStatus"], status),
            }
        }
    }
    browser
        .until("one instance left", &format!("{ROWS} === 1"))
        .await;
    assert_eq!(demo.status(&ids[2])["runtimeStatus"], "Running");
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_asked_for_once_and_kept_for_the_tab_only() {
    let test = "the_token_is_asked_for_once_and_kept_for_the_tab_only";
    let args = ["--auth-token", "s3cret"];
    let Some((_dir, demo, browser)) = browser_and_demo(test, &args).await else {
        return;
    };
    let demo = demo.with_token("s3cret");
    let id = demo.start_instance("/start-external-event");
    let open = "document.querySelector('#token-dialog').open";

    browser.goto(&format!("http://{}/", demo.addr)).await;
    browser.until("the token prompt", open).await;
    browser.type_into("#token-input", "guess").await;
    browser.click("#token-form button[type=submit]").await;
    browser
        .until(
            "the refusal",
            "document.querySelector('#token-error').textContent.includes('refused')",
        )
        .await;
    browser.type_into("#token-input", "s3cret").await;
    browser.click("#token-form button[type=submit]").await;
    browser
        .until("the list", &format!("!{open} && {ROWS} === 1"))
        .await;

    // Kept for the tab, nowhere else, and never in the address.
    let kept = browser
        .eval(
            "return { session: sessionStorage.getItem('durable.token'),
                      local: localStorage.length, cookie: document.cookie, url: location.href };",
        )
        .await;
    assert_eq!(kept["session"], "s3cret");
    assert_eq!(kept["local"], 0);
    assert_eq!(kept["cookie"], "");
    assert!(!kept["url"].as_str().unwrap().contains("s3cret"), "{kept}");

    // A reload does not ask again, and the actions carry the token.
    browser.client().refresh().await.unwrap();
    browser.until("the list", &format!("{ROWS} === 1")).await;
    assert_eq!(browser.eval(&format!("return {open}")).await, json!(false));
    browser.click(&format!("a[href='#/instance/{id}']")).await;
    status_is(&browser, "Running").await;
    asks_to_confirm(&browser, "button[data-action=terminate]").await;
    browser.click("#confirm-ok").await;
    status_is(&browser, "Terminated").await;
    let url = browser.client().current_url().await.unwrap();
    assert!(!url.as_str().contains("s3cret"), "{url}");

    // A new tab (its own session storage) asks again.
    browser.eval("sessionStorage.clear(); return true;").await;
    browser.client().refresh().await.unwrap();
    browser.until("the token prompt again", open).await;
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_finds_an_instance_raises_an_event_and_suspends_it() {
    let Some((_dir, demo, browser)) = browser_and_demo(
        "the_keyboard_alone_finds_an_instance_raises_an_event_and_suspends_it",
        &[],
    )
    .await
    else {
        return;
    };
    let id = demo.start_instance("/start-external-event");
    browser.goto(&format!("http://{}/", demo.addr)).await;
    browser
        .until("the instance", &format!("{ROWS} === 1"))
        .await;

    // No click from here on: Tab, Enter, Escape, arrows and typing.
    browser
        .tab_to("the instance's link", 40, |f| {
            f.starts_with("A ") && f.contains(&id)
        })
        .await;
    browser.press(Key::Enter).await;
    custom_status_is(&browser, "waiting for event step2").await;
    browser
        .tab_to("the event's name", 40, |f| f.contains("#event-name"))
        .await;
    browser.type_keys("step2").await;
    browser.press(Key::Tab).await;
    browser.type_keys("\"ok\"").await;
    browser.press(Key::Tab).await;
    assert!(browser.focused().await.contains("Raise event"));
    browser.press(Key::Enter).await;
    browser.until("the confirmation", CONFIRMING).await;
    assert!(browser.focused().await.contains("#confirm-ok"));
    browser.press(Key::Enter).await;
    custom_status_is(&browser, "waiting for event step4").await;

    // Escape cancels a confirmation.
    browser
        .tab_to("Suspend", 40, |f| f.contains("Suspend…"))
        .await;
    browser.press(Key::Enter).await;
    browser.until("the confirmation", CONFIRMING).await;
    browser.record_requests().await;
    browser.press(Key::Escape).await;
    browser
        .until(
            "no dialog",
            "!document.querySelector('#confirm-dialog').open",
        )
        .await;
    assert_eq!(browser.changes_requested().await, Vec::<String>::new());
    assert_eq!(demo.status(&id)["runtimeStatus"], "Running");
    // The reason field has the focus; Enter confirms.
    browser.press(Key::Enter).await;
    browser.until("the confirmation", CONFIRMING).await;
    assert!(browser.focused().await.contains("[reason]"));
    browser.type_keys("lunch").await;
    browser.press(Key::Enter).await;
    status_is(&browser, "Suspended").await;

    // The timeline is one tab stop; the arrows walk its bars and tell what each is.
    browser
        .tab_to("the timeline", 60, |f| f.contains(".bar"))
        .await;
    let first = browser.text(".bar-detail").await;
    browser.press(Key::Right).await;
    browser.press(Key::Right).await;
    let other = browser.text(".bar-detail").await;
    assert_ne!(first, other);
    assert!(other.contains("Activity 1 · reliable_activity"), "{other}");
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_sized_screen_never_scrolls_sideways() {
    let browser = Browser::phone("a_phone_sized_screen_never_scrolls_sideways").await;
    let Some(browser) = browser else { return };
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    let retry = demo.start_instance("/start-retry");
    let waiting = demo.start_instance("/start-external-event");
    browser.goto(&format!("http://{}/", demo.addr)).await;
    browser
        .until("both instances", &format!("{ROWS} === 2"))
        .await;
    no_horizontal_scroll(&browser, "the list").await;
    browser.screenshot("phone-list").await;

    browser
        .goto(&format!("http://{}/#/instance/{waiting}", demo.addr))
        .await;
    browser
        .until("the raise form", "document.querySelector('#event-name')")
        .await;
    no_horizontal_scroll(&browser, "a running instance").await;
    asks_to_confirm(&browser, "button[data-action=terminate]").await;
    no_horizontal_scroll(&browser, "a confirmation").await;
    browser.click("#confirm-cancel").await;

    browser
        .goto(&format!("http://{}/#/instance/{retry}", demo.addr))
        .await;
    status_is(&browser, "Completed").await;
    // Every payload open, the longest lines included.
    browser
        .eval("document.querySelectorAll('details').forEach(d => d.open = true); return true;")
        .await;
    no_horizontal_scroll(&browser, "a completed instance with its payloads open").await;
    browser.screenshot("phone-instance").await;
    browser.finish().await;
}

// In-process: a workflow with a timer, a child, an event wait and a continue-as-new, and
// one whose code changed under it, served by `durable_http::serve` beside the runtime.

#[orchestrator]
async fn doubler(ctx: OrchestrationContext, n: u32) -> Result<u32, TaskError> {
    ctx.sleep(Duration::from_millis(100)).await;
    Ok(n * 2)
}

#[orchestrator]
async fn tour(ctx: OrchestrationContext, generation: u32) -> Result<u32, TaskError> {
    ctx.sleep(Duration::from_millis(300)).await;
    let doubled = ctx.call(doubler, 21).await?;
    ctx.set_custom_status(format!("waiting for go {generation}"));
    let () = ctx.wait_for_event("go").await?;
    if generation == 0 {
        return ctx.continue_as_new(1).await;
    }
    Ok(doubled)
}

#[activity]
async fn refuse(_ctx: ActivityContext, _input: ()) -> Result<(), String> {
    Err("no".into())
}

/// Catches a failed call and sleeps: a timer, not a back-off, though it follows a failure.
#[orchestrator]
async fn catches(ctx: OrchestrationContext) -> Result<(), TaskError> {
    if ctx.call(refuse, ()).await.is_err() {
        ctx.sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[activity]
async fn step_a(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n)
}

#[activity]
async fn step_b(_ctx: ActivityContext, n: u32) -> Result<u32, String> {
    Ok(n * 10)
}

#[orchestrator(name = "evolving")]
async fn evolving_v1(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let a = ctx.call(step_a, 1).await?;
    ctx.set_custom_status("waiting");
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(a + go)
}

#[orchestrator(name = "evolving")]
async fn evolving_v2(ctx: OrchestrationContext) -> Result<u32, TaskError> {
    let a = ctx.call(step_b, 1).await?;
    let go: u32 = ctx.wait_for_event("go").await?;
    Ok(a + go)
}

/// Serves the management API and the dashboard over `client` on a free port.
async fn serve_dashboard(client: Client) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let app = router(client, RouterOptions::default());
    let server = serve(listener, app, ServeOptions::default()).into_future();
    (url, tokio::spawn(server))
}

async fn custom_status(client: &Client, id: &str, expected: &str) {
    let expected = json!(expected);
    client
        .wait_until(id, Duration::from_secs(30), |s| {
            s.custom_status.as_ref() == Some(&expected)
        })
        .await
        .unwrap();
}

/// A runtime in this process, and the management API and dashboard served over its client.
struct Served {
    runtime: Runtime,
    client: Client,
    /// `http://127.0.0.1:PORT/`.
    url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn stop(self) {
        self.server.abort();
        self.runtime.shutdown().await;
    }
}

/// A browser, and the runtime `builder` builds, served; `None` (and no runtime) without a
/// browser.
async fn browser_and_runtime(test: &str, builder: RuntimeBuilder) -> Option<(Served, Browser)> {
    let browser = Browser::start(test, 1280, 1000).await?;
    let runtime = builder.start().unwrap();
    let client = runtime.client();
    let (url, server) = serve_dashboard(client.clone()).await;
    let served = Served {
        runtime,
        client,
        url,
        server,
    };
    Some((served, browser))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_timers_children_waits_and_generations() {
    let builder = Runtime::builder()
        .orchestrator(tour)
        .orchestrator(doubler)
        .orchestrator(catches)
        .activity(refuse);
    let test = "the_timeline_shows_timers_children_waits_and_generations";
    let Some((served, browser)) = browser_and_runtime(test, builder).await else {
        return;
    };
    let (client, url) = (&served.client, &served.url);
    client.start(tour, 0).instance_id("tour-1").await.unwrap();
    custom_status(client, "tour-1", "waiting for go 0").await;
    client.raise_event("tour-1", "go", ()).await.unwrap();
    custom_status(client, "tour-1", "waiting for go 1").await;

    browser.goto(&format!("{url}#/instance/tour-1")).await;
    browser
        .until("the timeline", "document.querySelector('.lane-wait')")
        .await;
    let facts = browser.text(".facts").await;
    assert!(
        facts.contains("Generation\n1") || facts.contains("Generation 1"),
        "{facts}"
    );
    let note = browser.text(".timeline .note").await;
    assert!(
        note.starts_with("Generation 1: the instance continued as new once"),
        "{note}"
    );

    let lanes = read_lanes(&browser).await;
    let timer = summary(&lanes, "Timer");
    assert!(timer.starts_with("300 ms timer · fired "), "{timer}");
    let wait = summary(&lanes, "Event go");
    assert!(wait.starts_with("waiting for "), "{wait}");
    let child = lane(&lanes, "Child 1 · doubler");
    assert!(
        child["summary"]
            .as_str()
            .unwrap()
            .starts_with("1 attempt · completed in"),
        "{child}"
    );
    let href = child["href"].as_str().unwrap().to_string();
    let child_id = urlencoding_decode(href.strip_prefix("#/instance/").unwrap());
    assert!(child_id.starts_with("tour-1:"), "{child_id}");

    // The child's lane links to the child, whose history links back.
    browser.click(".lane-child .lane-title a").await;
    browser
        .until(
            "the child's page",
            &format!(
                "document.querySelector('h1').textContent === {}",
                json!(child_id)
            ),
        )
        .await;
    status_is(&browser, "Completed").await;
    let lanes_of_child = read_lanes(&browser).await;
    let timer = summary(&lanes_of_child, "Timer");
    assert!(timer.starts_with("100 ms timer"), "{timer}");
    browser.click("td.details a").await;
    browser
        .until(
            "the parent's page again",
            "document.querySelector('h1').textContent === 'tour-1'",
        )
        .await;

    // The event arrives: the wait ends, the run completes.
    browser
        .until("the timeline", "document.querySelector('.lane-wait')")
        .await;
    client.raise_event("tour-1", "go", ()).await.unwrap();
    status_is(&browser, "Completed").await;
    let lanes = read_lanes(&browser).await;
    let wait = summary(&lanes, "Event go");
    assert!(wait.starts_with("arrived after "), "{wait}");
    let run = summary(&lanes, "Orchestration");
    assert!(run.starts_with("Completed after "), "{run}");
    browser.screenshot_of(".timeline", "timeline-tour").await;

    // A timer after a failure that is not retried is a timer.
    client
        .start(catches, ())
        .instance_id("catches-1")
        .await
        .unwrap();
    client
        .wait_for_completion("catches-1", Duration::from_secs(30))
        .await
        .unwrap();
    browser.goto(&format!("{url}#/instance/catches-1")).await;
    status_is(&browser, "Completed").await;
    let lanes = read_lanes(&browser).await;
    let call = summary(&lanes, "Activity 1 · refuse");
    assert!(
        call.starts_with("1 attempt · 1 failed · failed in "),
        "{call}"
    );
    let timer = summary(&lanes, "Timer");
    assert!(timer.starts_with("200 ms timer · fired "), "{timer}");
    browser.finish().await;
    served.stop().await;
}

/// `%3A` → `:`; enough for the ids of these tests.
fn urlencoding_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_determinism_failure_shows_what_was_expected_and_found() {
    let Some(browser) = Browser::start(
        "a_non_determinism_failure_shows_what_was_expected_and_found",
        1280,
        1000,
    )
    .await
    else {
        return;
    };
    let store = Arc::new(MemoryStore::new());
    let first = Runtime::builder()
        .shared_store(store.clone())
        .orchestrator(evolving_v1)
        .activity(step_a)
        .start()
        .unwrap();
    let id = first.client().start(evolving_v1, ()).await.unwrap();
    custom_status(&first.client(), &id, "waiting").await;
    first.shutdown().await;

    let second = Runtime::builder()
        .shared_store(store)
        .orchestrator(evolving_v2)
        .activity(step_a)
        .activity(step_b)
        .cache_capacity(0)
        .start()
        .unwrap();
    let client = second.client();
    client.raise_event(&id, "go", 5).await.unwrap();
    let status = client
        .wait_for_completion(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status.runtime_status, RuntimeStatus::Failed);

    let (url, server) = serve_dashboard(client.clone()).await;
    browser
        .goto(&format!("{url}#/instance/{}", id.as_str()))
        .await;
    browser
        .until("the failure", "document.querySelector('.drift')")
        .await;
    let drift = browser
        .eval("return [...document.querySelectorAll('.drift > div')].map(d => [d.querySelector('h3').textContent, d.querySelector('pre').textContent]);")
        .await;
    let expected = &drift[0];
    let found = &drift[1];
    assert!(
        expected[0].as_str().unwrap().starts_with("Expected at "),
        "{drift}"
    );
    assert!(
        expected[1]
            .as_str()
            .unwrap()
            .starts_with("activity `step_a`"),
        "{drift}"
    );
    assert_eq!(found[0], "Found (the code now)");
    assert!(
        found[1].as_str().unwrap().starts_with("activity `step_b`"),
        "{drift}"
    );
    browser.screenshot("nondeterminism").await;
    browser.finish().await;
    server.abort();
    second.shutdown().await;
}

/// What a parked instance is given: the lane it waits in, and items it counts.
#[derive(Serialize, Deserialize)]
struct Ticket {
    lane: String,
    items: Vec<u32>,
}

/// Waits for `go`, showing which lane it is parked in; then adds up its items.
#[orchestrator]
async fn parked(ctx: OrchestrationContext, ticket: Ticket) -> Result<u32, TaskError> {
    ctx.set_custom_status(format!("parked in {}", ticket.lane));
    let () = ctx.wait_for_event("go").await?;
    Ok(ticket.items.iter().sum())
}

/// The items each parked instance is given.
const ITEMS: [u32; 3] = [2, 3, 5];

/// Starts a parked instance for each `(id, lane)`, one after the other, each parked before
/// the next starts (so they are created in this order).
async fn park(client: &Client, instances: &[(&str, &str)]) {
    for (id, lane) in instances {
        let ticket = Ticket {
            lane: lane.to_string(),
            items: ITEMS.to_vec(),
        };
        client.start(parked, ticket).instance_id(*id).await.unwrap();
        custom_status(client, id, &format!("parked in {lane}")).await;
    }
}

/// A browser, and a runtime of parked instances served; `None` without a browser.
async fn browser_and_parking(test: &str) -> Option<(Served, Browser)> {
    browser_and_runtime(test, Runtime::builder().orchestrator(parked)).await
}

/// The ids the list shows, in its order.
const LISTED: &str = "[...document.querySelectorAll('table.instances tbody tr a')].map(a => a.textContent).join(' ')";

/// The ids the list shows.
async fn listed(browser: &Browser) -> Vec<String> {
    let ids = browser.eval(&format!("return {LISTED};")).await;
    ids.as_str()
        .unwrap()
        .split(' ')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// The count a status chip shows, as a JavaScript expression.
fn chip_count(status: &str) -> String {
    format!("document.querySelector('.chip.status-{status} .count')?.textContent.trim()")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_searches_counts_terminates_and_purges_what_it_selects() {
    let test = "the_filter_searches_counts_terminates_and_purges_what_it_selects";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    let (client, url) = (&served.client, &served.url);
    park(
        client,
        &[
            ("cart-1", "a"),
            ("cart-2", "a"),
            ("cart-3", "a"),
            ("cart-4", "b"),
            ("other-1", "a"),
        ],
    )
    .await;
    // The id prefix from the address; the custom-status search typed in.
    browser
        .goto(&format!("{url}#/?instanceIdPrefix=cart-"))
        .await;
    browser.until("four carts", &format!("{ROWS} === 4")).await;
    let running = "document.querySelector('.chip.status-Running .count')?.textContent.trim()";
    browser
        .until("the count of running carts", &format!("{running} === '4'"))
        .await;
    browser
        .type_into("input[name=customStatus]", "parked in a")
        .await;
    browser
        .until("three carts in lane a", &format!("{ROWS} === 3"))
        .await;
    browser
        .until("their count", &format!("{running} === '3'"))
        .await;
    browser.screenshot("list-filtered").await;

    // The bulk action counts first (a dry run), and says so before anything is done.
    asks_to_confirm(&browser, "button[data-filter-action=terminate]").await;
    assert_eq!(
        browser.text("#confirm-title").await,
        "Terminate 3 instances?"
    );
    let dry_run = browser.text("#confirm-body .dry-run").await;
    assert!(dry_run.contains("selects 3 instances"), "{dry_run}");
    for id in ["cart-1", "cart-2", "cart-3"] {
        assert_eq!(
            client.status(id).await.unwrap().runtime_status,
            RuntimeStatus::Running,
            "nothing is done before the confirmation"
        );
    }
    browser.click("#confirm-ok").await;
    browser
        .until(
            "three terminated",
            "document.querySelector('.list .results').textContent === '3 instances terminated.'",
        )
        .await;
    for id in ["cart-1", "cart-2", "cart-3"] {
        let status = client
            .wait_for_completion(id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Terminated, "{id}");
    }
    for id in ["cart-4", "other-1"] {
        assert_eq!(
            client.status(id).await.unwrap().runtime_status,
            RuntimeStatus::Running,
            "{id} is outside the filter"
        );
    }

    // Purge what the id prefix alone selects: the dry run counts only what purge applies to
    // (the three terminated carts, not the running cart-4), and nothing more is asked of
    // the server before the confirmation.
    browser
        .goto(&format!("{url}#/?instanceIdPrefix=cart-"))
        .await;
    browser.until("four carts", &format!("{ROWS} === 4")).await;
    browser.record_requests().await;
    asks_to_confirm(&browser, "button[data-filter-action=purge]").await;
    assert_eq!(browser.text("#confirm-title").await, "Purge 3 instances?");
    let dry_run = browser.text("#confirm-body .dry-run").await;
    assert!(dry_run.contains("selects 3 instances"), "{dry_run}");
    let asked = browser.changes_requested().await;
    assert_eq!(
        asked,
        ["POST /bulk/purge?instanceIdPrefix=cart-&dryRun=true"],
        "only the dry run before the confirmation"
    );
    for id in ["cart-1", "cart-2", "cart-3"] {
        assert!(client.status(id).await.is_ok(), "{id} purged too soon");
    }
    browser.click("#confirm-ok").await;
    browser
        .until(
            "three purged",
            "document.querySelector('.list .results').textContent === '3 instances purged.'",
        )
        .await;
    browser
        .until("the running cart alone", &format!("{LISTED} === 'cart-4'"))
        .await;
    for id in ["cart-1", "cart-2", "cart-3"] {
        let error = client.status(id).await.err();
        assert!(
            matches!(error, Some(ClientError::NotFound(_))),
            "{id}: {error:?}"
        );
    }
    for id in ["cart-4", "other-1"] {
        assert_eq!(
            client.status(id).await.unwrap().runtime_status,
            RuntimeStatus::Running,
            "{id} is not purged"
        );
    }
    browser.finish().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_chip_filters_the_list_by_its_count() {
    let test = "a_status_chip_filters_the_list_by_its_count";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    let client = &served.client;
    park(client, &[("chip-1", "a"), ("chip-2", "a"), ("chip-3", "a")]).await;
    client.terminate("chip-3", "enough").await.unwrap();
    client
        .wait_for_completion("chip-3", Duration::from_secs(30))
        .await
        .unwrap();

    browser.goto(&served.url).await;
    browser
        .until("three instances", &format!("{ROWS} === 3"))
        .await;
    let (running, terminated) = (chip_count("Running"), chip_count("Terminated"));
    browser
        .until(
            "the counts",
            &format!("{running} === '2' && {terminated} === '1'"),
        )
        .await;
    assert_eq!(
        browser
            .eval(&format!("return {}", chip_count("Completed")))
            .await,
        "0"
    );
    let pressed = "return [...document.querySelectorAll('.statuses button[aria-pressed=true]')].map(b => b.dataset.status)";

    // A chip shows its status alone; the counts stay those of the other filters.
    browser.click(".chip.status-Terminated").await;
    browser
        .until("the terminated one", &format!("{LISTED} === 'chip-3'"))
        .await;
    assert_eq!(browser.eval(pressed).await, json!(["Terminated"]));
    assert_eq!(
        browser.eval("return location.hash").await,
        "#/?runtimeStatus=Terminated"
    );
    assert_eq!(browser.eval(&format!("return {running}")).await, "2");
    browser.screenshot("list-by-status").await;

    // A second chip adds its status; a chip pressed again takes its status away.
    browser.click(".chip.status-Running").await;
    browser.until("all three", &format!("{ROWS} === 3")).await;
    browser.click(".chip.status-Terminated").await;
    browser
        .until("the running two", &format!("{ROWS} === 2"))
        .await;
    let mut ids = listed(&browser).await;
    ids.sort();
    assert_eq!(ids, ["chip-1", "chip-2"]);
    assert_eq!(browser.eval(pressed).await, json!(["Running"]));

    // "All" shows every status again.
    browser.click(".statuses button[data-status='']").await;
    browser.until("all three", &format!("{ROWS} === 3")).await;
    assert_eq!(browser.eval(pressed).await, json!([""]));
    assert_eq!(browser.eval("return location.hash").await, "#/");
    browser.finish().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creation_time_range_filters_the_list() {
    let test = "the_creation_time_range_filters_the_list";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    let client = &served.client;
    park(client, &[("early-1", "a"), ("early-2", "a")]).await;
    // The next whole second (the fields' precision) after both were created; the late one
    // is created once it has passed.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let boundary = Duration::from_secs(now.as_secs() + 1);
    tokio::time::sleep(boundary - now + Duration::from_millis(20)).await;
    park(client, &[("late-1", "a")]).await;
    assert!(client.status("late-1").await.unwrap().created_at >= boundary_time(boundary));

    browser.goto(&served.url).await;
    browser
        .until("three instances", &format!("{ROWS} === 3"))
        .await;
    // The boundary in the browser's local time, as a `datetime-local` field holds it.
    let local = browser
        .eval(&format!(
            "const d = new Date({}); const p = n => String(n).padStart(2, '0');
             return `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}:${{p(d.getSeconds())}}`;",
            boundary.as_millis()
        ))
        .await;
    let local = local.as_str().unwrap();
    let running = chip_count("Running");

    browser.pick("input[name=createdTimeFrom]", local).await;
    browser
        .until("the late one", &format!("{LISTED} === 'late-1'"))
        .await;
    browser
        .until("its count", &format!("{running} === '1'"))
        .await;
    let hash = browser.eval("return location.hash").await;
    assert!(
        hash.as_str().unwrap().contains("createdTimeFrom="),
        "the address keeps the filter: {hash}"
    );

    browser.pick("input[name=createdTimeFrom]", "").await;
    browser.pick("input[name=createdTimeTo]", local).await;
    browser
        .until("the early two", &format!("{ROWS} === 2"))
        .await;
    let mut ids = listed(&browser).await;
    ids.sort();
    assert_eq!(ids, ["early-1", "early-2"]);
    browser
        .until("their count", &format!("{running} === '2'"))
        .await;
    browser.finish().await;
    served.stop().await;
}

/// `boundary` (since the epoch) as the time type of an instance's status.
fn boundary_time(boundary: Duration) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + boundary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_and_next_page_through_the_list() {
    let test = "previous_and_next_page_through_the_list";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    let ids: Vec<String> = (1..=30).map(|i| format!("page-{i:02}")).collect();
    let instances: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "a")).collect();
    park(&served.client, &instances).await;

    let previous = ".pager button:first-of-type";
    let next = ".pager button:last-of-type";
    let disabled = |css: &str| format!("document.querySelector('{css}').disabled");
    browser.goto(&format!("{}#/?top=25", served.url)).await;
    browser
        .until(
            "a first page of 25",
            &format!("{ROWS} === 25 && !{}", disabled(next)),
        )
        .await;
    assert_eq!(browser.text(".page-number").await, "Page 1");
    assert_eq!(
        browser
            .eval(&format!("return {}", disabled(previous)))
            .await,
        true
    );
    let first = listed(&browser).await;

    browser.click(next).await;
    browser
        .until(
            "the second page, of 5",
            &format!(
                "document.querySelector('.page-number').textContent === 'Page 2' && {ROWS} === 5"
            ),
        )
        .await;
    assert_eq!(
        browser.eval(&format!("return {}", disabled(next))).await,
        true
    );
    assert_eq!(
        browser
            .eval(&format!("return {}", disabled(previous)))
            .await,
        false
    );
    let second = listed(&browser).await;
    // Oldest first, across pages (park creates them in the order of their ids).
    assert_eq!(first, ids[..25], "the first page");
    assert_eq!(second, ids[25..], "the second page");

    browser.click(previous).await;
    browser
        .until(
            "the first page again",
            &format!(
                "document.querySelector('.page-number').textContent === 'Page 1' && {ROWS} === 25"
            ),
        )
        .await;
    assert_eq!(listed(&browser).await, first);
    browser.finish().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_refreshes_itself() {
    let test = "the_list_refreshes_itself";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    let client = &served.client;
    park(client, &[("fresh-1", "a")]).await;
    browser.goto(&served.url).await;
    browser
        .until("the instance", &format!("{LISTED} === 'fresh-1'"))
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('input[name=auto]').checked")
            .await,
        true
    );
    // Marks this page: a reload would lose the mark.
    browser
        .eval("window.notReloaded = true; return true;")
        .await;

    // A new instance appears, and an old one's new status shows, without a reload.
    park(client, &[("fresh-2", "a")]).await;
    client.terminate("fresh-1", "enough").await.unwrap();
    browser
        .until(
            "the new instance, and the other terminated",
            &format!(
                "{ROWS} === 2 && document.querySelector(\"a[href='#/instance/fresh-1']\").closest('tr').querySelector('.badge').textContent === 'Terminated'"
            ),
        )
        .await;
    browser
        .until(
            "the counts",
            &format!(
                "{} === '1' && {} === '1'",
                chip_count("Running"),
                chip_count("Terminated")
            ),
        )
        .await;
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        true
    );
    browser.finish().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_then_resume_through_the_instance_page() {
    let test = "suspend_then_resume_through_the_instance_page";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    let client = &served.client;
    park(client, &[("held-1", "a")]).await;
    browser
        .goto(&format!("{}#/instance/held-1", served.url))
        .await;
    status_is(&browser, "Running").await;
    let disabled = |action: &str| {
        format!("return document.querySelector('button[data-action={action}]').disabled")
    };
    assert_eq!(browser.eval(&disabled("resume")).await, true);

    asks_to_confirm(&browser, "button[data-action=suspend]").await;
    browser
        .type_into("#confirm-body input[name=reason]", "for a moment")
        .await;
    browser.click("#confirm-ok").await;
    status_is(&browser, "Suspended").await;
    assert_eq!(browser.eval(&disabled("suspend")).await, true);
    assert_eq!(browser.eval(&disabled("resume")).await, false);

    // The event it waits for arrives meanwhile, and is held.
    client.raise_event("held-1", "go", ()).await.unwrap();
    assert_eq!(
        client.status("held-1").await.unwrap().runtime_status,
        RuntimeStatus::Suspended
    );

    asks_to_confirm(&browser, "button[data-action=resume]").await;
    assert_eq!(browser.text("#confirm-title").await, "Resume held-1?");
    browser
        .type_into("#confirm-body input[name=reason]", "go on")
        .await;
    browser.click("#confirm-ok").await;
    // It runs on: the held event is delivered, and the run completes.
    status_is(&browser, "Completed").await;
    let result = browser.text(".instance .results").await;
    assert!(result.contains("resume accepted"), "{result}");
    let output = browser
        .eval(
            "return [...document.querySelectorAll('.payload')]
                .find(d => d.querySelector('summary').textContent === 'Output')
                .querySelector('pre').textContent",
        )
        .await;
    assert_eq!(output, json!(ITEMS.iter().sum::<u32>().to_string()));
    let reasons = browser
        .eval(
            "return [...document.querySelectorAll('table.events tbody tr')]
                .filter(row => ['ExecutionSuspended', 'ExecutionResumed'].includes(row.dataset.kind))
                .map(row => [row.dataset.kind, row.querySelector('td.details').textContent]);",
        )
        .await;
    assert_eq!(
        reasons,
        json!([
            ["ExecutionSuspended", "for a moment"],
            ["ExecutionResumed", "go on"]
        ])
    );
    browser.finish().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_page_shows_its_input_and_expands_history_payloads() {
    let test = "the_instance_page_shows_its_input_and_expands_history_payloads";
    let Some((served, browser)) = browser_and_parking(test).await else {
        return;
    };
    park(&served.client, &[("shown-1", "b")]).await;
    browser
        .goto(&format!("{}#/instance/shown-1", served.url))
        .await;
    custom_status_is(&browser, "parked in b").await;
    let ticket = json!({ "lane": "b", "items": ITEMS });

    // The input, as JSON.
    let input = browser
        .eval(
            "return [...document.querySelectorAll('.payload')]
                .find(d => d.querySelector('summary').textContent === 'Input')
                .querySelector('pre').textContent",
        )
        .await;
    let input: Value = serde_json::from_str(input.as_str().unwrap()).unwrap();
    assert_eq!(input, ticket);

    // The history's first event, closed until its payload is opened.
    let start = "table.events tbody tr[data-kind=ExecutionStarted]";
    let shown = format!(
        "return {{ open: document.querySelector('{start} details').open,
                   visible: document.querySelector('{start} details pre').checkVisibility() }}"
    );
    browser
        .until("the history", &format!("document.querySelector('{start}')"))
        .await;
    assert_eq!(
        browser.eval(&shown).await,
        json!({ "open": false, "visible": false })
    );
    browser.click(&format!("{start} details summary")).await;
    assert_eq!(
        browser.eval(&shown).await,
        json!({ "open": true, "visible": true })
    );
    let summary = browser.text(&format!("{start} details summary")).await;
    let json = browser.text(&format!("{start} details pre")).await;
    assert_eq!(summary, format!("JSON ({} B)", json.len()));
    let event: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(event["v"], 2, "{event}");
    assert_eq!(event["kind"], "ExecutionStarted");
    assert_eq!(event["name"], "parked");
    assert_eq!(event["input"], ticket);
    browser.finish().await;
    served.stop().await;
}
