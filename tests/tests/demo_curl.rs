//! Every curl command of README.md and of the POC's README, run with curl as written (Host
//! `localhost:8080`, reaching the demo on its test port) in the order the text gives them:
//! none is refused by the origin, host or content-type rules.

mod demo_support;

use std::path::Path;
use std::process::Command;

use demo_support::{Demo, TempDir};

/// The commands starting with `curl` in the ```bash blocks of `markdown`, continuation
/// lines joined.
fn curl_commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_bash = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_bash = trimmed == "```bash";
            continue;
        }
        if !in_bash {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            pending.push_str(start);
            continue;
        }
        pending.push_str(trimmed);
        let command = std::mem::take(&mut pending);
        if command.starts_with("curl ") {
            commands.push(command);
        }
    }
    commands
}

/// Runs `commands` against `demo` in order; the ids the examples use become those of the
/// instances the examples' own starts created.
fn run_all(demo: &Demo, source: &str, commands: &[String]) {
    assert!(!commands.is_empty(), "no curl command found in {source}");
    let mut retry_id = None::<String>;
    let mut event_id = None::<String>;
    for command in commands {
        let mut command = command.clone();
        if let Some(id) = &retry_id {
            command = command.replace("retry-1735124567", id);
        }
        if let Some(id) = &event_id {
            for example in [
                "external-event-1735124662",
                "external-event-1735124567",
                "YOUR_INSTANCE_ID",
            ] {
                command = command.replace(example, id);
            }
        }
        let curl = format!(
            "curl -sS --max-time 30 -w '\\n%{{http_code}}' --connect-to localhost:8080:{} ",
            demo.addr
        );
        let shell = command.replacen("curl ", &curl, 1);
        let output = Command::new("sh")
            .args(["-c", &shell])
            .output()
            .expect("cannot run sh (and curl)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{source}: `{command}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        let code: u16 = code.trim().parse().unwrap();
        // 409 and 410 are answers about the instance's state, which the examples do not
        // follow; a refusal of the request itself is what must never happen.
        assert!(
            (200..300).contains(&code) || code == 409 || code == 410,
            "{source}: `{command}` got {code}: {body}"
        );
        let json: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{source}: `{command}` answered no JSON ({e}): {body}"));
        if command.contains("/start-retry") {
            retry_id = json["instanceId"].as_str().map(str::to_string);
        }
        if command.contains("/start-external-event") {
            event_id = json["instanceId"].as_str().map(str::to_string);
        }
    }
}

#[test]
fn the_readme_curl_commands_work_unchanged() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(readme).unwrap();
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    run_all(&demo, "README.md", &curl_commands(&readme));
}

#[test]
fn the_poc_readme_curl_commands_work_unchanged() {
    // The POC's README lives in the shared folder beside the repository (or beside the
    // folder of worktrees).
    let found = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/seed/POC-README.md"))
        .find_map(|path| std::fs::read_to_string(path).ok());
    let Some(poc) = found else {
        // Its commands are also in README.md, checked above.
        eprintln!("skipped: no shared/seed/POC-README.md beside the repository");
        return;
    };
    let dir = TempDir::new();
    let demo = Demo::start(dir.path());
    run_all(&demo, "the POC's README", &curl_commands(&poc));
}
