//! The benchmark harness: every workload of the benchmark issue on durable (in-memory and
//! file store with fsync on) and, with `--features duroxide`, on duroxide 0.1.x (SQLite in
//! memory and in a file), in one run, ending with one table of figures and ratios.
//!
//! ```text
//! cargo run --release -p durable-bench [--features duroxide] -- [--quick|--full] [--only <workload>] [--dir <path>]
//! ```
//!
//! See `docs/benchmarks.md` for what each workload measures and the published figures.

#![forbid(unsafe_code)]

mod durable;
#[cfg(feature = "duroxide")]
mod peer;
mod postgres;
mod stats;
mod sys;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stats::{median, percentile, spread};

const USAGE: &str = "usage: durable-bench [--quick|--full] [--only <workload>] [--dir <path>] [--chains <n>] [--store memory|file] [--postgres <url>]
  --quick          a smoke run with small sizes (the default)
  --full           the published sizes (about 15-30 minutes with --features duroxide)
  --only <w>       one workload: 1|chains, 2|sequential, 3|latency, 4|paused, 5|reopen, 6|nocache,
                   postgres (workloads 1-3 on PostgreSQL with 1, 2 and 4 worker processes, and DBOS)
                   (5 runs 4 first: it reopens the directory 4 leaves)
  --dir <path>     where the file stores live (default: the system's temporary directory)
  --chains <n>     workload 1's size (instead of the mode's)
  --store <s>      durable's store only: memory|file (no peer; e.g. to count instructions
                   per chain under callgrind)

  --no-export      with --features telemetry, skip workload 1's run exporting spans (to
                   count the instructions of the features compiled in but unused)

  --postgres <url> the server of the PostgreSQL section (default: DURABLE_TEST_POSTGRES_URL;
                   the section is skipped with one line when neither is given)";

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // duroxide logs every retried "database is locked" at WARN (hundreds a
                // run); what matters, instances that failed, is counted in the table.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,duroxide=error")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let mut full = false;
    let mut only = None;
    let mut chains_n = None;
    let mut dir = std::env::temp_dir();
    let mut export = true;
    let mut pg_url = durable_postgres::testing::url();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => full = false,
            "--full" => full = true,
            "--no-export" => export = false,
            "--only" => {
                let w = it.next().map(String::as_str).unwrap_or("");
                only = Some(parse_workload(w).unwrap_or_else(|| {
                    eprintln!("unknown workload `{w}`\n{USAGE}");
                    std::process::exit(2)
                }));
            }
            "--chains" => {
                let n = it.next().and_then(|n| n.parse().ok());
                chains_n = Some(n.unwrap_or_else(|| {
                    eprintln!("{USAGE}");
                    std::process::exit(2)
                }));
            }
            "--store" => {
                let engine = match it.next().map(String::as_str) {
                    Some("memory") => Engine::DurableMemory,
                    Some("file") => Engine::DurableFile,
                    _ => {
                        eprintln!("{USAGE}");
                        std::process::exit(2)
                    }
                };
                let _ = ONLY_ENGINE.set(engine);
            }
            "--dir" => {
                dir = PathBuf::from(it.next().unwrap_or_else(|| {
                    eprintln!("{USAGE}");
                    std::process::exit(2)
                }))
            }
            "--postgres" => {
                pg_url = Some(it.next().cloned().unwrap_or_else(|| {
                    eprintln!("{USAGE}");
                    std::process::exit(2)
                }))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument `{other}`\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    std::fs::create_dir_all(&dir).expect("create the data directory");
    let mut config = if full {
        Config::full()
    } else {
        Config::quick()
    };
    if let Some(n) = chains_n {
        config.chains_n = vec![n];
    }
    config.export_spans = export;
    run(&config, only, &dir, pg_url.as_deref());
}

fn parse_workload(w: &str) -> Option<u8> {
    Some(match w {
        "1" | "chains" => 1,
        "2" | "sequential" => 2,
        "3" | "latency" => 3,
        "4" | "paused" => 4,
        "5" | "reopen" => 5,
        "6" | "nocache" => 6,
        "postgres" => 7,
        _ => return None,
    })
}

/// Sizes and repetitions of one mode.
struct Config {
    name: &'static str,
    chains_n: Vec<usize>,
    chains_runs: usize,
    seq_n: Vec<u64>,
    seq_runs: usize,
    latency_runs: usize,
    latency_runs_peer: usize,
    warmup: usize,
    paused_n: usize,
    /// The time duroxide may take for one series (a size of one workload on one provider);
    /// sizes projected past it are skipped and reported as such.
    peer_budget: Duration,
    /// The same for workload 6 (cache off grows with the square of the steps).
    nocache_budget: Duration,
    fdatasync_samples: usize,
    /// Whether workload 1 runs again exporting spans (`--features telemetry`).
    export_spans: bool,
    postgres: postgres::PgConfig,
}

impl Config {
    fn quick() -> Config {
        Config {
            name: "quick",
            chains_n: vec![1_000],
            chains_runs: 3,
            seq_n: vec![100, 1_000],
            seq_runs: 1,
            latency_runs: 200,
            latency_runs_peer: 30,
            warmup: 10,
            paused_n: 10_000,
            peer_budget: Duration::from_secs(30),
            nocache_budget: Duration::from_secs(20),
            fdatasync_samples: 50,
            export_spans: true,
            postgres: postgres::PgConfig {
                chains_n: 1_000,
                chains_runs: 1,
                dbos_chains_n: 300,
                seq_n: vec![100],
                dbos_seq_n: vec![100],
                latency_runs: 100,
                dbos_latency_runs: 20,
                warmup: 10,
            },
        }
    }

    fn full() -> Config {
        Config {
            name: "full",
            chains_n: vec![1_000, 10_000],
            chains_runs: 5,
            seq_n: vec![100, 1_000, 10_000],
            seq_runs: 3,
            latency_runs: 2_000,
            latency_runs_peer: 200,
            warmup: 20,
            paused_n: 100_000,
            peer_budget: Duration::from_secs(240),
            nocache_budget: Duration::from_secs(120),
            fdatasync_samples: 200,
            export_spans: true,
            postgres: postgres::PgConfig {
                chains_n: 5_000,
                chains_runs: 3,
                dbos_chains_n: 1_000,
                seq_n: vec![100, 1_000],
                dbos_seq_n: vec![100],
                latency_runs: 500,
                dbos_latency_runs: 100,
                warmup: 20,
            },
        }
    }
}

/// The four columns: durable's two stores, duroxide's two providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    DurableMemory,
    DurableFile,
    DuroxideMemory,
    DuroxideFile,
}

/// `--store`: the one engine to run.
static ONLY_ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();

const ENGINES: [Engine; 4] = [
    Engine::DurableMemory,
    Engine::DurableFile,
    Engine::DuroxideMemory,
    Engine::DuroxideFile,
];

impl Engine {
    fn label(self) -> &'static str {
        match self {
            Engine::DurableMemory => "durable mem",
            Engine::DurableFile => "durable file",
            Engine::DuroxideMemory => "duroxide mem",
            Engine::DuroxideFile => "duroxide file",
        }
    }

    fn column(self) -> usize {
        self as usize
    }

    fn is_peer(self) -> bool {
        matches!(self, Engine::DuroxideMemory | Engine::DuroxideFile)
    }

    fn available(self) -> bool {
        if let Some(&only) = ONLY_ENGINE.get() {
            return self == only;
        }
        !self.is_peer() || cfg!(feature = "duroxide")
    }
}

/// One line of the final table.
struct Row {
    workload: u8,
    metric: String,
    unit: &'static str,
    cells: [Option<f64>; 4],
    notes: [String; 4],
    lower_is_better: bool,
}

/// A target of the issue and whether this run met it.
struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    targets: Vec<Target>,
}

impl Report {
    fn row(
        &mut self,
        workload: u8,
        metric: impl Into<String>,
        unit: &'static str,
        lower: bool,
    ) -> usize {
        self.rows.push(Row {
            workload,
            metric: metric.into(),
            unit,
            cells: [None; 4],
            notes: Default::default(),
            lower_is_better: lower,
        });
        self.rows.len() - 1
    }

    fn set(&mut self, row: usize, engine: Engine, value: Option<f64>, note: impl Into<String>) {
        self.rows[row].cells[engine.column()] = value;
        self.rows[row].notes[engine.column()] = note.into();
    }

    fn get(&self, workload: u8, metric: &str, engine: Engine) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.metric == metric)
            .and_then(|r| r.cells[engine.column()])
    }

    fn target(
        &mut self,
        what: impl Into<String>,
        value: Option<f64>,
        fmt: impl Fn(f64) -> String,
        ok: impl Fn(f64) -> bool,
    ) {
        self.targets.push(Target {
            what: what.into(),
            measured: value.map_or_else(|| "not measured".into(), &fmt),
            met: value.map(ok),
        });
    }

    fn print(&self) {
        let mut out = String::new();
        let headers = [
            "workload",
            "metric",
            "durable mem",
            "durable file",
            "duroxide mem",
            "duroxide file",
            "mem: durable ×",
            "file: durable ×",
        ];
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
        for row in &self.rows {
            let cell = |i: usize| match row.cells[i] {
                Some(v) if row.notes[i].is_empty() => fmt_value(v, row.unit),
                Some(v) => format!("{} ({})", fmt_value(v, row.unit), row.notes[i]),
                None if row.notes[i].is_empty() => "–".into(),
                None => row.notes[i].clone(),
            };
            let ratio = |d: usize, x: usize| match (row.cells[d], row.cells[x]) {
                (Some(d), Some(x)) if d > 0.0 && x > 0.0 => {
                    let r = if row.lower_is_better { x / d } else { d / x };
                    format!("{}×", fmt_ratio(r))
                }
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
                row.workload,
                row.metric,
                row.unit,
                cell(0),
                cell(1),
                cell(2),
                cell(3),
                ratio(0, 2),
                ratio(1, 3),
            );
        }
        println!("\n## Results\n\n\"durable ×\": how many times better durable is than duroxide on the same store kind in this run (throughput ratio, or time ratio inverted).\n");
        print!("{out}");
        println!("\n## Targets\n");
        println!("| target | measured | met |");
        println!("|---|---|---|");
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            println!("| {} | {} | {} |", t.what, t.measured, met);
        }
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "orch/s" | "events/s" | "MB" | "B/instance" => format!("{v:.0}"),
        "×" => fmt_ratio(v),
        _ if v >= 100.0 => format!("{v:.0}"),
        _ if v >= 10.0 => format!("{v:.1}"),
        _ if v >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// Runs `f` on a fresh multi-threaded tokio runtime, dropped afterwards, so that nothing one
/// engine leaves behind runs during the next measurement.
fn block<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(f)
}

fn durable_kind(engine: Engine) -> durable::StoreKind {
    match engine {
        Engine::DurableMemory => durable::StoreKind::Memory,
        _ => durable::StoreKind::File,
    }
}

#[cfg(feature = "duroxide")]
fn peer_kind(engine: Engine) -> peer::StoreKind {
    match engine {
        Engine::DuroxideMemory => peer::StoreKind::Memory,
        _ => peer::StoreKind::File,
    }
}

/// Workload 1 on one engine, one run: (elapsed, instances not completed). Never inlined:
/// callgrind's inclusive count of this function is the workload's cost in instructions.
#[inline(never)]
fn chains_once(engine: Engine, dir: &Path, n: usize) -> (Duration, usize) {
    if !engine.is_peer() {
        return block(durable::chains(durable_kind(engine), dir, n));
    }
    #[cfg(feature = "duroxide")]
    {
        block(peer::chains(peer_kind(engine), dir, n))
    }
    #[cfg(not(feature = "duroxide"))]
    unreachable!("duroxide is not built")
}

/// Workload 2/6 on one engine, one run.
fn sequential_once(
    engine: Engine,
    dir: &Path,
    steps: u64,
    cache: Option<usize>,
) -> (Duration, Option<durable_runtime::Stats>) {
    if !engine.is_peer() {
        let (t, s) = block(durable::sequential_run(
            durable_kind(engine),
            dir,
            steps,
            cache,
        ));
        return (t, Some(s));
    }
    #[cfg(feature = "duroxide")]
    {
        (
            block(peer::sequential_run(peer_kind(engine), dir, steps)),
            None,
        )
    }
    #[cfg(not(feature = "duroxide"))]
    unreachable!("duroxide is not built")
}

fn latency_once(engine: Engine, dir: &Path, runs: usize, warmup: usize) -> Vec<f64> {
    if !engine.is_peer() {
        return block(durable::latency(durable_kind(engine), dir, runs, warmup));
    }
    #[cfg(feature = "duroxide")]
    {
        block(peer::latency(peer_kind(engine), dir, runs, warmup))
    }
    #[cfg(not(feature = "duroxide"))]
    unreachable!("duroxide is not built")
}

fn run(config: &Config, only: Option<u8>, dir: &Path, pg_url: Option<&str>) {
    let started = Instant::now();
    println!("# durable-bench ({} mode)\n", config.name);
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let machine = sys::Machine::probe(dir, config.fdatasync_samples);
    machine.print(dir);
    println!(
        "durable: in-memory store; file store with Durability::Fsync (the default) in a fresh directory under {}; default runtime options (cache 10,000 instances, 256 concurrent turns and activities)",
        dir.display()
    );
    #[cfg(feature = "duroxide")]
    for line in block(peer::settings(dir)) {
        println!("{line}");
    }
    #[cfg(not(feature = "duroxide"))]
    println!("duroxide: not built (add `--features duroxide` to run the peer)");
    println!(
        "tokio: a fresh multi-threaded runtime ({} workers) per measurement\n",
        machine.cores
    );

    let wants = |w: u8| only.is_none_or(|o| o == w || (o == 5 && w == 4));
    let postgres_section = || match pg_url {
        Some(url) => block(postgres::section(
            url,
            &config.postgres,
            sys::ms(machine.fdatasync_median),
        )),
        None => {
            println!("PostgreSQL: skipped (pass --postgres <url> or set DURABLE_TEST_POSTGRES_URL)")
        }
    };
    if only == Some(7) {
        postgres_section();
        println!("\n(total time {:.0} s)", started.elapsed().as_secs_f64());
        return;
    }
    let mut report = Report::default();
    if wants(1) {
        workload_chains(config, dir, &mut report);
    }
    if wants(2) {
        workload_sequential(config, dir, &mut report, 2, None);
    }
    if wants(3) {
        workload_latency(config, dir, &mut report);
    }
    if wants(4) {
        workload_paused(config, dir, &mut report, only.is_none_or(|o| o == 5));
    }
    if wants(6) {
        workload_sequential(config, dir, &mut report, 6, Some(0));
    }
    targets(config, &mut report);
    report.print();
    println!();
    postgres_section();
    println!(
        "\n(total time {:.0} s; fdatasync median {:.3} ms on {})",
        started.elapsed().as_secs_f64(),
        sys::ms(machine.fdatasync_median),
        machine.fs_type
    );
}

fn workload_chains(config: &Config, dir: &Path, report: &mut Report) {
    println!("## 1. N instances × 3-activity chain, started together");
    for &n in &config.chains_n {
        let row = report.row(1, format!("N={n} chains"), "orch/s", false);
        for engine in ENGINES.into_iter().filter(|e| e.available()) {
            let mut runs = config.chains_runs;
            if engine.is_peer() {
                // Project from the previous size (linear in N) and stay within the budget.
                let previous = config
                    .chains_n
                    .iter()
                    .take_while(|&&m| m < n)
                    .last()
                    .and_then(|&m| report.get(1, &format!("N={m} chains"), engine));
                if let Some(rate) = previous {
                    let projected = n as f64 / rate;
                    if projected > config.peer_budget.as_secs_f64() {
                        println!("  {:13} N={n}: skipped (projected {projected:.0} s a run, budget {:.0} s)", engine.label(), config.peer_budget.as_secs_f64());
                        report.set(row, engine, None, format!("skipped: ~{projected:.0} s/run"));
                        continue;
                    }
                    runs =
                        runs.min(((config.peer_budget.as_secs_f64() / projected) as usize).max(1));
                }
            }
            let mut rates = Vec::new();
            let mut failed = 0;
            let budget_start = Instant::now();
            for i in 0..runs {
                let (t, f) = chains_once(engine, dir, n);
                failed += f;
                let rate = n as f64 / t.as_secs_f64();
                rates.push(rate);
                println!(
                    "  {:13} N={n} run {}: {:.3} s = {:.0} orch/s{}",
                    engine.label(),
                    i + 1,
                    t.as_secs_f64(),
                    rate,
                    if f > 0 {
                        format!(", {f} not completed")
                    } else {
                        String::new()
                    }
                );
                if engine.is_peer()
                    && budget_start.elapsed() * (i as u32 + 2) / (i as u32 + 1) > config.peer_budget
                {
                    break;
                }
            }
            let mut note = if rates.len() != config.chains_runs {
                format!("median of {}", rates.len())
            } else {
                String::new()
            };
            if failed > 0 {
                let _ = write!(
                    note,
                    "{}{failed} failed",
                    if note.is_empty() { "" } else { ", " }
                );
            }
            println!(
                "  {:13} N={n}: median {:.0} orch/s (runs {})",
                engine.label(),
                median(&rates),
                spread(&rates, |v| format!("{v:.0}"))
            );
            report.set(row, engine, Some(median(&rates)), note);
        }
        #[cfg(feature = "telemetry")]
        if config.export_spans {
            chains_exported(config, dir, report, n);
        }
    }
}

/// Workload 1 again on durable's stores, every span exported (`--features telemetry`).
#[cfg(feature = "telemetry")]
fn chains_exported(config: &Config, dir: &Path, report: &mut Report, n: usize) {
    let row = report.row(1, format!("N={n} chains, spans exported"), "orch/s", false);
    for engine in ENGINES.into_iter().filter(|e| !e.is_peer()) {
        let mut rates = Vec::new();
        for i in 0..config.chains_runs {
            let (t, failed, spans) = block(durable::chains_exported(durable_kind(engine), dir, n));
            let rate = n as f64 / t.as_secs_f64();
            rates.push(rate);
            println!(
                "  {:13} N={n} spans exported, run {}: {:.3} s = {:.0} orch/s, {spans} spans{}",
                engine.label(),
                i + 1,
                t.as_secs_f64(),
                rate,
                if failed > 0 {
                    format!(", {failed} not completed")
                } else {
                    String::new()
                }
            );
        }
        println!(
            "  {:13} N={n} spans exported: median {:.0} orch/s (runs {})",
            engine.label(),
            median(&rates),
            spread(&rates, |v| format!("{v:.0}"))
        );
        report.set(row, engine, Some(median(&rates)), String::new());
    }
}

fn workload_sequential(
    config: &Config,
    dir: &Path,
    report: &mut Report,
    workload: u8,
    cache: Option<usize>,
) {
    if workload == 2 {
        println!("## 2. One orchestration, N sequential activities");
    } else {
        println!("## 6. Workload 2 with the instance cache off (cache_capacity(0))");
    }
    let engines: Vec<Engine> = ENGINES
        .into_iter()
        .filter(|e| e.available() && (workload == 2 || !e.is_peer()))
        .collect();
    let mut per_step: BTreeMap<(u64, usize), f64> = BTreeMap::new();
    for engine in &engines {
        let budget = if workload == 6 {
            config.nocache_budget
        } else {
            config.peer_budget
        };
        let limited = engine.is_peer() || workload == 6;
        let mut previous: Option<(u64, f64)> = None;
        for &n in &config.seq_n {
            if let (true, Some((m, t))) = (limited, previous) {
                // These grow with the square of the steps: project so, and skip past the budget.
                let projected = t * (n as f64 / m as f64).powi(2);
                if projected > budget.as_secs_f64() {
                    println!("  {:13} N={n}: skipped (projected {projected:.0} s from quadratic growth, budget {:.0} s)", engine.label(), budget.as_secs_f64());
                    per_step.insert((n, engine.column()), f64::NAN);
                    continue;
                }
            }
            let mut times = Vec::new();
            let runs = if limited { 1 } else { config.seq_runs };
            for _ in 0..runs {
                let (t, stats) = sequential_once(*engine, dir, n, cache);
                times.push(t.as_secs_f64());
                let stats = stats.map_or_else(String::new, |s| {
                    format!(
                        " [turns {}, commits {}, replays {}, events replayed {}, cache hits {}]",
                        s.turns, s.commits, s.replays, s.events_replayed, s.cache_hits
                    )
                });
                println!(
                    "  {:13} N={n}: {:.3} s = {:.1} µs/step{stats}",
                    engine.label(),
                    t.as_secs_f64(),
                    t.as_secs_f64() * 1e6 / n as f64
                );
            }
            let t = median(&times);
            previous = Some((n, t));
            per_step.insert((n, engine.column()), t * 1e6 / n as f64);
        }
    }
    let label = if workload == 2 { "" } else { ", cache off" };
    for &n in &config.seq_n {
        let row = report.row(workload, format!("N={n} steps{label}"), "µs/step", true);
        for engine in &engines {
            match per_step.get(&(n, engine.column())) {
                Some(v) if v.is_nan() => report.set(row, *engine, None, "skipped (budget)"),
                Some(v) => report.set(row, *engine, Some(*v), ""),
                None => {}
            }
        }
    }
    // Growth: time(N) / time(N/10) for the two largest sizes.
    if let [.., a, b] = config.seq_n[..] {
        let row = report.row(workload, format!("time({b})/time({a}){label}"), "×", true);
        for engine in &engines {
            if let (Some(&pa), Some(&pb)) = (
                per_step.get(&(a, engine.column())),
                per_step.get(&(b, engine.column())),
            ) {
                if pa.is_finite() && pb.is_finite() {
                    report.set(row, *engine, Some(pb * b as f64 / (pa * a as f64)), "");
                }
            }
        }
    }
    if workload == 6 {
        // The cache's worth: time with the cache off / time with it on, same N.
        for &n in &config.seq_n {
            let row = report.row(6, format!("N={n}: cache off / cache on"), "×", true);
            for engine in &engines {
                let on = report.get(2, &format!("N={n} steps"), *engine);
                let off = per_step
                    .get(&(n, engine.column()))
                    .copied()
                    .filter(|v| v.is_finite());
                if let (Some(on), Some(off)) = (on, off) {
                    report.set(row, *engine, Some(off / on), "");
                }
            }
        }
    }
}

fn workload_latency(config: &Config, dir: &Path, report: &mut Report) {
    println!("## 3. Start-to-complete latency of one 3-activity chain, run one after another");
    let p50 = report.row(3, "p50 latency", "ms", true);
    let p99 = report.row(3, "p99 latency", "ms", true);
    for engine in ENGINES.into_iter().filter(|e| e.available()) {
        let runs = if engine.is_peer() {
            config.latency_runs_peer
        } else {
            config.latency_runs
        };
        let samples = latency_once(engine, dir, runs, config.warmup);
        let (a, b) = (
            percentile(&samples, 50.0) * 1e3,
            percentile(&samples, 99.0) * 1e3,
        );
        println!(
            "  {:13} {runs} runs: p50 {a:.3} ms, p99 {b:.3} ms, max {:.3} ms",
            engine.label(),
            percentile(&samples, 100.0) * 1e3
        );
        let note = if engine.is_peer() {
            format!("{runs} runs")
        } else {
            String::new()
        };
        report.set(p50, engine, Some(a), note.clone());
        report.set(p99, engine, Some(b), note);
    }
}

/// Runs this binary as a child (so the resident size is the workload's alone) and collects
/// its `RESULT key=value` lines.
fn run_child(args: &[&str]) -> BTreeMap<String, String> {
    let exe = std::env::current_exe().expect("find this binary");
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    results(&output, &format!("child {args:?}"))
}

/// The `RESULT key=value` lines a child printed; panics, showing its output, if it failed.
pub(crate) fn results(output: &std::process::Output, what: &str) -> BTreeMap<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed: {}\n{stdout}",
        output.status
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn child(args: &[String]) {
    match args {
        [w, n, dir] if w == "paused" => block(durable::paused_child(
            PathBuf::from(dir),
            n.parse().expect("a count"),
        )),
        [w, dir] if w == "reopen" => block(durable::reopen_child(PathBuf::from(dir))),
        [w, url, schema] if w == "pg-worker" => {
            block(postgres::worker_child(url.clone(), schema.clone()))
        }
        _ => panic!("unknown child {args:?}"),
    }
}

fn workload_paused(config: &Config, dir: &Path, report: &mut Report, reopen: bool) {
    let n = config.paused_n;
    println!("## 4. {n} instances paused on an external event (durable file store, child process)");
    let data = tempfile::Builder::new()
        .prefix("durable-bench-paused-")
        .tempdir_in(dir)
        .expect("create a temporary directory");
    let path = data.path().to_str().expect("a UTF-8 path").to_string();
    let r = run_child(&["paused", &n.to_string(), &path]);
    let num = |k: &str| r.get(k).and_then(|v| v.parse::<f64>().ok());
    let mb = |k: &str| num(k).map(|kb| kb / 1024.0);
    println!(
        "  created and paused in {:.2} s; RSS {:.0} MB (baseline {:.0} MB, peak {:.0} MB, {} cached); raise-all to complete {:.2} s; RSS after {:.0} MB; {} not completed",
        num("pause_s").unwrap_or(f64::NAN),
        mb("paused_rss_kb").unwrap_or(f64::NAN),
        mb("baseline_rss_kb").unwrap_or(f64::NAN),
        mb("paused_hwm_kb").unwrap_or(f64::NAN),
        r.get("cached").map_or("?", String::as_str),
        num("complete_s").unwrap_or(f64::NAN),
        mb("completed_rss_kb").unwrap_or(f64::NAN),
        r.get("failed").map_or("?", String::as_str),
    );
    if let Some(stats) = r.get("stats") {
        println!("  {stats}");
    }
    let with_n = |m: &str| format!("{m}, N={n}");
    let set = |report: &mut Report, metric: String, unit, lower, value: Option<f64>| {
        let row = report.row(4, metric, unit, lower);
        report.set(row, Engine::DurableFile, value, "");
        for e in [Engine::DuroxideMemory, Engine::DuroxideFile] {
            if e.available() {
                report.set(row, e, None, "not run");
            }
        }
    };
    set(
        report,
        with_n("RSS while paused"),
        "MB",
        true,
        mb("paused_rss_kb"),
    );
    set(
        report,
        with_n("RSS per paused instance"),
        "B/instance",
        true,
        num("paused_rss_kb")
            .zip(num("baseline_rss_kb"))
            .map(|(p, b)| (p - b) * 1024.0 / n as f64),
    );
    set(
        report,
        with_n("start + pause"),
        "orch/s",
        false,
        num("pause_s").map(|s| n as f64 / s),
    );
    set(
        report,
        with_n("raise all → all complete"),
        "s",
        true,
        num("complete_s"),
    );
    set(
        report,
        with_n("raise all → all complete"),
        "orch/s",
        false,
        num("complete_s").map(|s| n as f64 / s),
    );
    let bytes = durable::dir_bytes(data.path());
    println!(
        "  data directory after completion: {:.1} MB",
        bytes as f64 / 1e6
    );

    if reopen {
        println!("## 5. Reopening the file store holding {n} finished instances (warm page cache, child process)");
        let r = run_child(&["reopen", &path]);
        let num = |k: &str| r.get(k).and_then(|v| v.parse::<f64>().ok());
        println!(
            "  open as left: {:.3} s (RSS {:.0} MB); checkpoint {:.3} s; open after the checkpoint {:.3} s",
            num("open_s").unwrap_or(f64::NAN),
            num("opened_rss_kb").unwrap_or(f64::NAN) / 1024.0,
            num("checkpoint_s").unwrap_or(f64::NAN),
            num("reopen_checkpointed_s").unwrap_or(f64::NAN),
        );
        for (metric, key) in [
            (
                format!(
                    "open as left ({:.0} MB of files), N={n}",
                    bytes as f64 / 1e6
                ),
                "open_s",
            ),
            (
                format!("open after a checkpoint, N={n}"),
                "reopen_checkpointed_s",
            ),
        ] {
            let row = report.row(5, metric, "s", true);
            report.set(row, Engine::DurableFile, num(key), "");
            for e in [Engine::DuroxideMemory, Engine::DuroxideFile] {
                if e.available() {
                    report.set(row, e, None, "not run");
                }
            }
        }
    }
}

fn targets(config: &Config, report: &mut Report) {
    let ops = |v: f64| format!("{v:.0} orch/s");
    let big = *config.chains_n.last().unwrap_or(&0);
    let w1 = format!("N={big} chains");
    let q = if big == 10_000 {
        String::new()
    } else {
        format!(" (measured at N={big})")
    };
    let dm = report.get(1, &w1, Engine::DurableMemory);
    let df = report.get(1, &w1, Engine::DurableFile);
    report.target(
        format!("1. in-memory ≥ 50,000 orch/s at N=10,000{q}"),
        dm,
        ops,
        |v| v >= 50_000.0,
    );
    let xm = report.get(1, &w1, Engine::DuroxideMemory);
    report.target(
        format!("1. in-memory ≥ 100× duroxide in-memory, same run{q}"),
        dm.zip(xm).map(|(d, x)| d / x),
        |v| format!("{v:.0}×"),
        |v| v >= 100.0,
    );
    let xf = report.get(1, &w1, Engine::DuroxideFile);
    let small = format!("N={} chains", config.chains_n[0]);
    if xm.is_none() && big != config.chains_n[0] {
        // duroxide skipped the large size: compare at the small one.
        let dm = report.get(1, &small, Engine::DurableMemory);
        let xm = report.get(1, &small, Engine::DuroxideMemory);
        report.target(format!("1. in-memory ≥ 100× duroxide in-memory, same run (at {small}: duroxide skipped N={big})"), dm.zip(xm).map(|(d, x)| d / x), |v| format!("{v:.0}×"), |v| v >= 100.0);
        let df = report.get(1, &small, Engine::DurableFile);
        let xf = report.get(1, &small, Engine::DuroxideFile);
        report.target(
            format!("1. (file store vs duroxide file, at {small})"),
            df.zip(xf).map(|(d, x)| d / x),
            |v| format!("{v:.0}×"),
            |_| true,
        );
    } else {
        report.target(
            format!("1. (file store vs duroxide file{q})"),
            df.zip(xf).map(|(d, x)| d / x),
            |v| format!("{v:.0}×"),
            |_| true,
        );
    }
    report.target(
        format!("1. file store (fsync) ≥ 10,000 orch/s at N=10,000{q}"),
        df,
        ops,
        |v| v >= 10_000.0,
    );

    if let [.., a, b] = config.seq_n[..] {
        let growth = format!("time({b})/time({a})");
        for (engine, name) in [
            (Engine::DurableMemory, "in-memory"),
            (Engine::DurableFile, "file store"),
        ] {
            report.target(
                format!("2. {name}: {growth} ≤ 12"),
                report.get(2, &growth, engine),
                |v| format!("{v:.2}"),
                |v| v <= 12.0,
            );
        }
    }
    for (engine, name, limit) in [
        (Engine::DurableMemory, "in-memory", 20.0),
        (Engine::DurableFile, "file store", 400.0),
    ] {
        // Per-step cost at N ≥ 1,000 (at N = 100 the fixed start and finish costs dominate).
        let worst = config
            .seq_n
            .iter()
            .filter(|&&n| n >= 1_000)
            .filter_map(|n| {
                report
                    .get(2, &format!("N={n} steps"), engine)
                    .map(|v| (v, *n))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        report.target(
            format!("2. {name} ≤ {limit} µs per step (worst N ≥ 1,000)"),
            worst.map(|w| w.0),
            |v| format!("{v:.1} µs/step (at N={})", worst.map_or(0, |w| w.1)),
            |v| v <= limit,
        );
    }
    report.target(
        "3. in-memory p50 ≤ 0.2 ms",
        report.get(3, "p50 latency", Engine::DurableMemory),
        |v| format!("{v:.3} ms"),
        |v| v <= 0.2,
    );
    report.target(
        "3. file store p50 ≤ 2 ms",
        report.get(3, "p50 latency", Engine::DurableFile),
        |v| format!("{v:.3} ms"),
        |v| v <= 2.0,
    );
    let n = config.paused_n;
    let q = if n == 100_000 {
        String::new()
    } else {
        format!(" (measured at N={n})")
    };
    report.target(
        format!("4. RSS ≤ 300 MB with 100,000 paused{q}"),
        report.get(4, &format!("RSS while paused, N={n}"), Engine::DurableFile),
        |v| format!("{v:.0} MB"),
        |v| v <= 300.0,
    );
    let open = report
        .rows
        .iter()
        .find(|r| r.workload == 5 && r.metric.starts_with("open as left"))
        .and_then(|r| r.cells[Engine::DurableFile.column()]);
    report.target(
        format!("5. reopen with 100,000 finished ≤ 1 s{q}"),
        open,
        |v| format!("{v:.3} s"),
        |v| v <= 1.0,
    );
}
