//! Headless Chromium driven over WebDriver (the system's `chromium` and `chromedriver`), for
//! the dashboard's tests: a fresh profile per test, the browser's console read at the end
//! of each scenario, screenshots under `target/dashboard-screenshots/`.
//!
//! Where no browser can be started, a test says so in one line and passes; with
//! `DURABLE_BROWSER_TESTS=require` (set by `.ci/run`) it fails instead.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Real time allowed for anything a test waits for on the page.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Set to `require` to fail, rather than skip, where no browser can be started.
pub const REQUIRE: &str = "DURABLE_BROWSER_TESTS";

const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// At most two browsers at once: the machine has two cores.
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// The screen a browser shows pages on.
#[derive(Clone, Copy)]
enum Screen {
    Desktop { width: u32, height: u32 },
    Phone,
}

/// A browser session; [`Browser::finish`] ends it, checking the console.
pub struct Browser {
    client: Client,
    _driver: Driver,
    _permit: SemaphorePermit<'static>,
}

/// chromedriver, leader of a process group that holds the Chromium it starts, and the
/// directory of its profile: all gone when dropped.
struct Driver {
    child: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A program named by the environment variable `env`, or the first of `names` on the PATH.
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    names
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// `target/`, where the test binary was built (`target/debug/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// `POST /session/{id}/se/log {"type": "browser"}`: the console's entries since last asked.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

impl Browser {
    /// A browser whose window is `width`×`height`, or `None` after one line saying why
    /// none could be started (a panic instead under `DURABLE_BROWSER_TESTS=require`).
    pub async fn start(test: &str, width: u32, height: u32) -> Option<Browser> {
        Browser::start_as(test, Screen::Desktop { width, height }).await
    }

    /// A browser that shows pages as a 375×667 phone does (headless windows are at least
    /// 500 pixels wide, so Chromium's mobile emulation sets the viewport).
    pub async fn phone(test: &str) -> Option<Browser> {
        Browser::start_as(test, Screen::Phone).await
    }

    async fn start_as(test: &str, screen: Screen) -> Option<Browser> {
        // A loaded machine now and then loses a fresh chromedriver (its port taken between
        // `free_port` and its bind, or a slow start): a new driver on a new port, twice more.
        let mut launched = Browser::launch(screen).await;
        for _ in 0..2 {
            match &launched {
                Err(why) if !why.starts_with("no ") => {
                    eprintln!("{test}: retrying the browser start ({why})");
                    launched = Browser::launch(screen).await;
                }
                _ => break,
            }
        }
        match launched {
            Ok(browser) => Some(browser),
            Err(why) if std::env::var(REQUIRE).as_deref() == Ok("require") => {
                panic!("{test}: no browser: {why} (install it: {INSTALL})")
            }
            Err(why) => {
                eprintln!("skipped {test}: no browser ({why}); `{INSTALL}` runs it");
                None
            }
        }
    }

    async fn launch(screen: Screen) -> Result<Browser, String> {
        let chromium = program(
            "CHROME_BINARY",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .ok_or("no chromium on the PATH")?;
        let chromedriver =
            program("CHROMEDRIVER", &["chromedriver"]).ok_or("no chromedriver on the PATH")?;
        let permit = BROWSERS.acquire().await.expect("never closed");
        let profile = std::env::temp_dir().join(format!(
            "durable-browser-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&profile).map_err(|e| format!("no profile directory: {e}"))?;
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that the whole of it (Chromium too) can be ended.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", chromedriver.display()))?;
        let mut driver = Driver { child, profile };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || driver.child.try_wait().ok().flatten().is_some() {
                return Err(format!("{} did not start", chromedriver.display()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (width, height) = match screen {
            Screen::Desktop { width, height } => (width, height),
            Screen::Phone => (500, 900),
        };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--window-size={width},{height}"),
            &format!(
                "--user-data-dir={}",
                driver.profile.join("chrome").display()
            ),
        ];
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let mut options = json!({ "binary": chromium, "args": args });
        if let Screen::Phone = screen {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": 375, "height": 667, "pixelRatio": 2, "mobile": true, "touch": true }
            });
        }
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| format!("{} did not start a session: {e}", chromium.display()))?;
        Ok(Browser {
            client,
            _driver: driver,
            _permit: permit,
        })
    }

    /// The WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// Runs `script` (a function body: `return …`) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// What the page shows, for failure messages.
    pub async fn page_text(&self) -> String {
        let text = self.eval("return document.body.innerText").await;
        text.as_str()
            .unwrap_or_default()
            .chars()
            .take(3000)
            .collect()
    }

    /// Waits until the JavaScript expression `condition` is true.
    pub async fn until(&self, what: &str, condition: &str) {
        let script = format!("return Boolean({condition});");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.eval(&script).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the page never showed {what} ({condition}); it shows:\n{}",
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects, once there is one.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("its text")
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Replaces the value of the input `css` by typing `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("cleared");
        input.send_keys(text).await.expect("typed");
    }

    /// Sets the value of the input `css` as its own picker would (a `datetime-local` field
    /// takes typed text differently in each locale), firing `input` and `change`; a value
    /// the input refuses (it empties itself) fails the test.
    pub async fn pick(&self, css: &str, value: &str) {
        let input = self.find(css).await;
        self.client
            .execute(
                "const [input, value] = arguments; input.value = value;
                 if (value && !input.value) return false;
                 input.dispatchEvent(new Event('input', { bubbles: true }));
                 input.dispatchEvent(new Event('change', { bubbles: true }));
                 return true;",
                vec![
                    serde_json::to_value(&input).expect("an element reference"),
                    json!(value),
                ],
            )
            .await
            .map(|taken| assert_eq!(taken, json!(true), "{css} refused {value:?}"))
            .unwrap_or_else(|e| panic!("cannot set {css}: {e}"));
    }

    /// From now on the page notes each call it makes to the server (`METHOD /path?query`),
    /// for [`Browser::requests`]; a reload forgets them.
    pub async fn record_requests(&self) {
        self.eval(
            "if (!window.durableRequests) {
                 window.durableRequests = [];
                 const fetch = window.fetch;
                 window.fetch = (resource, init) => {
                     const url = new URL(resource instanceof Request ? resource.url : resource, location.href);
                     const method = (init?.method ?? resource.method ?? 'GET').toUpperCase();
                     window.durableRequests.push(`${method} ${url.pathname}${url.search}`);
                     return fetch.call(window, resource, init);
                 };
             }
             return true;",
        )
        .await;
    }

    /// The calls noted since [`Browser::record_requests`] that change something: all but
    /// `GET`s.
    pub async fn changes_requested(&self) -> Vec<String> {
        let calls = self.eval("return window.durableRequests;").await;
        let calls = calls
            .as_array()
            .expect("record_requests was called on this page");
        calls
            .iter()
            .map(|call| call.as_str().unwrap().to_string())
            .filter(|call| !call.starts_with("GET "))
            .collect()
    }

    /// Presses `key` on the keyboard, wherever the focus is.
    pub async fn press(&self, key: Key) {
        let key = char::from(key);
        self.press_char(key).await;
    }

    /// Types `text` on the keyboard, wherever the focus is.
    pub async fn type_keys(&self, text: &str) {
        for c in text.chars() {
            self.press_char(c).await;
        }
    }

    async fn press_char(&self, value: char) {
        let actions = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.client
            .perform_actions(actions)
            .await
            .expect("key pressed");
    }

    /// What has the focus: `TAG.class.es #id text [label or name]`.
    pub async fn focused(&self) -> String {
        let script = "const e = document.activeElement; \
                      const classes = [...e.classList].map(c => `.${c}`).join(''); \
                      return `${e.tagName}${classes} #${e.id} ${(e.textContent || '').trim().slice(0, 60)} \
                      [${e.getAttribute('aria-label') || e.getAttribute('name') || ''}]`;";
        self.eval(script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Presses Tab until `matches(focused())`, at most `limit` times.
    pub async fn tab_to(&self, what: &str, limit: usize, matches: impl Fn(&str) -> bool) {
        let mut seen = Vec::new();
        for _ in 0..limit {
            self.press(Key::Tab).await;
            let focused = self.focused().await;
            if matches(&focused) {
                return;
            }
            seen.push(focused);
        }
        panic!(
            "Tab never reached {what}; it went through:\n{}",
            seen.join("\n")
        );
    }

    /// Saves a screenshot of the page as `target/dashboard-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        save(name, &png)
    }

    /// The same, of the element `css` selects, scrolled to the top of the window first
    /// (what is outside the window is not in the picture).
    pub async fn screenshot_of(&self, css: &str, name: &str) -> PathBuf {
        let element = self.find(css).await;
        self.client
            .execute(
                "arguments[0].scrollIntoView({ block: 'start' }); return true;",
                vec![serde_json::to_value(&element).expect("an element reference")],
            )
            .await
            .expect("scrolled");
        let png = element.screenshot().await.expect("a screenshot");
        save(name, &png)
    }

    /// The console's errors and warnings since last asked (failed loads, exceptions,
    /// policy violations, `console.error`).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser's log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| matches!(entry["level"].as_str(), Some("SEVERE" | "WARNING")))
            .map(|entry| format!("{} {}", entry["level"], entry["message"]))
            .collect()
    }

    /// Ends the scenario: the console must be free of errors; then the browser closes.
    pub async fn finish(self) {
        let errors = self.console_errors().await;
        assert!(
            errors.is_empty(),
            "the browser's console has errors:\n{}",
            errors.join("\n")
        );
        let _ = self.client.clone().close().await;
    }
}

fn save(name: &str, png: &[u8]) -> PathBuf {
    let dir = target_dir().join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("the screenshot saved");
    path
}
