//! Workloads 1–3 on the PostgreSQL store, with 1, 2 and 4 worker processes sharing one
//! schema and a client in this process, side by side with DBOS (its Python package, its
//! system database on the same server) in the same run.
//!
//! Each measurement gets a fresh schema and fresh worker processes (this binary with
//! `--child pg-worker URL SCHEMA`). While workload 1 runs, the CPU time of the server's
//! processes, of the workers and of this client is read from `/proc`, and the server's wait
//! events are sampled from `pg_stat_activity`: that is where the time goes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_postgres::testing::TestSchema;
use durable_postgres::{PostgresOptions, PostgresStore};
use durable_runtime::{Client, Runtime};

use crate::durable::{chain3, noop, sequential, start_chains};
use crate::stats::{median, percentile};

const WAIT: Duration = Duration::from_secs(600);

/// The worker counts of every workload.
pub const WORKERS: [usize; 3] = [1, 2, 4];

/// The database DBOS gets for its system tables, dropped and created again by every run.
const DBOS_DATABASE: &str = "durable_bench_dbos";

/// A worker process: a runtime with the bench's workflows on the schema, until its stdin
/// closes.
pub async fn worker_child(url: String, schema: String) {
    let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema))
        .await
        .expect("connect the worker's store");
    let runtime = Runtime::builder()
        .store(store)
        .orchestrator(chain3)
        .orchestrator(sequential)
        .activity(noop)
        .start()
        .expect("start the worker's runtime");
    println!("ready");
    // Until the parent closes our stdin (or dies).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await;
    runtime.shutdown().await;
}

/// A schema, `workers` worker processes on it, and a client-only runtime here.
struct Fleet {
    children: Vec<Child>,
    runtime: Runtime,
    client: Client,
    _schema: TestSchema,
}

impl Fleet {
    async fn start(url: &str, workers: usize) -> Fleet {
        let schema = TestSchema::new(url).await;
        // Connecting first migrates the schema once, before the workers race for it.
        let store = PostgresStore::connect_with(url, schema.options().client_only(true))
            .await
            .expect("connect the client's store");
        let exe = std::env::current_exe().expect("find this binary");
        let mut children = Vec::new();
        for _ in 0..workers {
            let mut child = Command::new(&exe)
                .args(["--child", "pg-worker", url, schema.name()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a worker process");
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().expect("the worker's stdout"))
                .read_line(&mut line)
                .expect("read the worker's first line");
            assert_eq!(line.trim(), "ready", "the worker did not start");
            children.push(child);
        }
        // Registered to be started by type; a client-only store never runs them here.
        let runtime = Runtime::builder()
            .store(store)
            .orchestrator(chain3)
            .orchestrator(sequential)
            .activity(noop)
            .start()
            .expect("start the client's runtime");
        let client = runtime.client();
        Fleet {
            children,
            runtime,
            client,
            _schema: schema,
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    async fn stop(mut self) {
        self.runtime.shutdown().await;
        for child in &mut self.children {
            drop(child.stdin.take());
        }
        for mut child in self.children.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
    }
}

async fn completed(client: &Client, id: &str, expected: u64) -> bool {
    let status = client
        .wait_for_completion(id, WAIT)
        .await
        .expect("wait for an instance");
    status.output_as::<u64>().ok().flatten() == Some(expected)
}

/// What one run of workload 1 measured.
pub struct ChainsRun {
    pub elapsed: Duration,
    pub failed: usize,
    pub cpu: CpuShare,
    pub waits: Vec<(String, usize)>,
    pub samples: usize,
}

/// Workload 1: `n` chains started together by the client, run by `workers` processes.
pub async fn chains(url: &str, workers: usize, n: usize) -> ChainsRun {
    let fleet = Fleet::start(url, workers).await;
    let client = fleet.client.clone();
    let sampler = WaitSampler::start(url).await;
    let cpu = CpuMeter::start(&fleet.pids());
    let t = Instant::now();
    let ids = start_chains(&client, n).await;
    let mut failed = 0;
    for (i, id) in ids.iter().enumerate() {
        if !completed(&client, id, i as u64 + 3).await {
            failed += 1;
        }
    }
    let elapsed = t.elapsed();
    let cpu = cpu.stop(elapsed);
    let (waits, samples) = sampler.stop().await;
    fleet.stop().await;
    ChainsRun {
        elapsed,
        failed,
        cpu,
        waits,
        samples,
    }
}

/// Workload 2: one orchestration of `steps` sequential activities.
pub async fn sequential_run(url: &str, workers: usize, steps: u64) -> Duration {
    let fleet = Fleet::start(url, workers).await;
    let t = Instant::now();
    let id = fleet
        .client
        .start(sequential, steps)
        .await
        .expect("start sequential");
    assert!(
        completed(&fleet.client, &id, steps).await,
        "sequential failed"
    );
    let elapsed = t.elapsed();
    fleet.stop().await;
    elapsed
}

/// Workload 3: start-to-complete latencies (seconds) of chains run one after another.
pub async fn latency(url: &str, workers: usize, runs: usize, warmup: usize) -> Vec<f64> {
    let fleet = Fleet::start(url, workers).await;
    let mut samples = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t = Instant::now();
        let id = fleet.client.start(chain3, i as u64).await.expect("start");
        assert!(
            completed(&fleet.client, &id, i as u64 + 3).await,
            "chain failed"
        );
        if i >= warmup {
            samples.push(t.elapsed().as_secs_f64());
        }
    }
    fleet.stop().await;
    samples
}

/// CPU time, in cores busy on average over a run: the server, the workers, this process,
/// and the whole machine (other sessions included).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuShare {
    pub server: f64,
    pub workers: f64,
    pub client: f64,
    pub machine: f64,
}

struct CpuMeter {
    pids: Vec<u32>,
    server: u64,
    workers: u64,
    client: u64,
    machine: u64,
}

impl CpuMeter {
    fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            server: server_ticks(),
            workers: pids.iter().map(|&p| process_ticks(p)).sum(),
            client: process_ticks(std::process::id()),
            machine: machine_busy_ticks(),
        }
    }

    fn stop(self, elapsed: Duration) -> CpuShare {
        let hz = ticks_per_second() * elapsed.as_secs_f64();
        let share = |after: u64, before: u64| after.saturating_sub(before) as f64 / hz;
        CpuShare {
            server: share(server_ticks(), self.server),
            workers: share(
                self.pids.iter().map(|&p| process_ticks(p)).sum(),
                self.workers,
            ),
            client: share(process_ticks(std::process::id()), self.client),
            machine: share(machine_busy_ticks(), self.machine),
        }
    }
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks (0 if it is gone).
fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command may hold spaces: the fields start after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The CPU ticks of every `postgres` process on this host (the server under test).
fn server_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(process_ticks)
        .sum()
}

/// Busy ticks of the whole machine (everything but idle and iowait), summed over cores.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

/// Samples the server's sessions of the store every 2 ms: what each active one waits on
/// (`CPU` when it waits on nothing), and the sessions idle inside a transaction (waiting for
/// the client's next statement).
struct WaitSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(BTreeMap<String, usize>, usize)>,
}

impl WaitSampler {
    async fn start(url: &str) -> WaitSampler {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect the wait sampler");
        tokio::spawn(connection);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let statement = client
                .prepare(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity
                     WHERE application_name = 'durable' AND state <> 'idle'
                       AND pid <> pg_backend_pid()",
                )
                .await
                .expect("prepare the sampler's query");
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            let mut samples = 0;
            while !stopped.load(Ordering::Relaxed) {
                // pg_stat_activity is a snapshot per transaction: one statement, one snapshot.
                if let Ok(rows) = client.query(&statement, &[]).await {
                    samples += 1;
                    for row in rows {
                        let state: Option<String> = row.get(0);
                        let kind: Option<String> = row.get(1);
                        let event: Option<String> = row.get(2);
                        let label = match (state.as_deref(), kind, event) {
                            (Some("active"), Some(k), Some(e)) => format!("{k}:{e}"),
                            (Some("active"), _, _) => "CPU (running)".to_string(),
                            (Some(s), _, _) => format!("{s} (waiting for the client)"),
                            (None, _, _) => "unknown".to_string(),
                        };
                        *counts.entry(label).or_default() += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (counts, samples)
        });
        WaitSampler { stop, task }
    }

    /// The wait events seen, most frequent first, and the number of samples.
    async fn stop(self) -> (Vec<(String, usize)>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (counts, samples) = self.task.await.unwrap_or_default();
        let mut waits: Vec<(String, usize)> = counts.into_iter().collect();
        waits.sort_by_key(|w| std::cmp::Reverse(w.1));
        (waits, samples)
    }
}

/// The server's version and the settings that matter to commits.
pub async fn server_settings(url: &str) -> Result<String, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut out = String::new();
    for setting in [
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "commit_delay",
        "shared_buffers",
        "max_connections",
    ] {
        let row = client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .map_err(|e| e.to_string())?;
        let value: String = row.get(0);
        let _ = write!(out, "{setting}={value} ");
    }
    Ok(out.trim_end().to_string())
}

/// DBOS, if this machine has it: `python3` with the `dbos` package.
pub struct Dbos {
    system_url: String,
    admin_url: String,
    pub version: String,
}

impl Dbos {
    /// `Err` says why DBOS cannot run here.
    pub fn find(url: &str) -> Result<Dbos, String> {
        let version = Command::new("python3")
            .args([
                "-c",
                "import importlib.metadata as m; import dbos; print(m.version('dbos'))",
            ])
            .output()
            .map_err(|e| format!("no python3 ({e})"))?;
        if !version.status.success() {
            return Err("python3 has no `dbos` package (pip install dbos)".into());
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url, String::new()),
        };
        let (server, _database) = base
            .rsplit_once('/')
            .filter(|(server, _)| server.contains("://"))
            .ok_or_else(|| format!("cannot read a database name in the URL `{url}`"))?;
        let server = server.replacen("postgres://", "postgresql://", 1);
        Ok(Dbos {
            system_url: format!("{server}/{DBOS_DATABASE}{query}"),
            admin_url: url.to_string(),
            version: String::from_utf8_lossy(&version.stdout).trim().to_string(),
        })
    }

    /// A fresh system database for DBOS.
    async fn reset(&self) {
        let (client, connection) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
            .await
            .expect("connect to create DBOS's database");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {DBOS_DATABASE} WITH (FORCE)"
            ))
            .await
            .expect("drop DBOS's database");
        client
            .batch_execute(&format!("CREATE DATABASE {DBOS_DATABASE}"))
            .await
            .expect("create DBOS's database");
    }

    fn run(&self, args: &[String]) -> BTreeMap<String, String> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/dbos_bench.py");
        let output = Command::new("python3")
            .arg(script)
            .arg(&self.system_url)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run the DBOS script");
        crate::results(&output, &format!("the DBOS script {args:?}"))
    }

    /// Workload 1 on DBOS: the times of `runs` runs of `n` chains, and how many failed.
    pub async fn chains(&self, n: usize, runs: usize) -> (Vec<f64>, usize) {
        self.reset().await;
        let r = self.run(&["chains".into(), n.to_string(), runs.to_string()]);
        let times = (0..runs)
            .filter_map(|i| r.get(&format!("chains_s_{i}"))?.parse().ok())
            .collect();
        let failed = (0..runs)
            .filter_map(|i| r.get(&format!("chains_failed_{i}"))?.parse::<usize>().ok())
            .sum();
        (times, failed)
    }

    /// Workload 2 on DBOS: seconds for one workflow of `steps` steps.
    pub async fn sequential(&self, steps: u64) -> Option<f64> {
        self.reset().await;
        let r = self.run(&["sequential".into(), steps.to_string()]);
        r.get("sequential_s")?.parse().ok()
    }

    /// Workload 3 on DBOS: latencies in seconds.
    pub async fn latency(&self, runs: usize, warmup: usize) -> Vec<f64> {
        self.reset().await;
        let r = self.run(&["latency".into(), runs.to_string(), warmup.to_string()]);
        r.get("latency_s")
            .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_default()
    }

    pub async fn drop_database(&self) {
        if let Ok((client, connection)) =
            tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {DBOS_DATABASE} WITH (FORCE)"
                ))
                .await;
        }
    }
}

/// p50 and p99 in milliseconds.
pub fn p50_p99(samples: &[f64]) -> (f64, f64) {
    (
        percentile(samples, 50.0) * 1e3,
        percentile(samples, 99.0) * 1e3,
    )
}

/// The sizes of the PostgreSQL section.
pub struct PgConfig {
    pub chains_n: usize,
    pub chains_runs: usize,
    pub dbos_chains_n: usize,
    pub seq_n: Vec<u64>,
    pub dbos_seq_n: Vec<u64>,
    pub latency_runs: usize,
    pub dbos_latency_runs: usize,
    pub warmup: usize,
}

/// One line of the PostgreSQL table: a cell per worker count, then DBOS.
struct PgRow {
    workload: u8,
    metric: String,
    unit: &'static str,
    cells: [Option<f64>; 4],
    lower_is_better: bool,
}

fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "chains/s" => format!("{v:.0}"),
        _ if v >= 100.0 => format!("{v:.0}"),
        _ if v >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Workloads 1–3 on PostgreSQL and DBOS, printed as one table with the targets.
pub async fn section(url: &str, config: &PgConfig, fdatasync_ms: f64) {
    println!("\n## PostgreSQL: workloads 1–3 with 1, 2 and 4 worker processes, and DBOS\n");
    match server_settings(url).await {
        Ok(settings) => println!("server: {settings}"),
        Err(error) => {
            println!("PostgreSQL: skipped, cannot reach {url}: {error}");
            return;
        }
    }
    println!(
        "durable: PostgresStore (default options: pool 16, notify interval 5 ms, poll 1 s), a fresh schema and fresh worker processes per measurement; the client is this process (client_only), default runtime options"
    );
    let dbos = match Dbos::find(url) {
        Ok(dbos) => {
            println!(
                "DBOS {} (Python), one process, system database `{DBOS_DATABASE}` on the same server, created afresh per measurement; the same 3-step workflow (3 @DBOS.step calls); workload 1 starts every workflow with DBOS.start_workflow and waits for each handle's result, workload 3 calls the workflow directly",
                dbos.version
            );
            Some(dbos)
        }
        Err(why) => {
            println!("DBOS: skipped ({why})");
            None
        }
    };
    let mut rows: Vec<PgRow> = Vec::new();
    let row = |rows: &mut Vec<PgRow>, workload, metric: String, unit, lower| {
        rows.push(PgRow {
            workload,
            metric,
            unit,
            cells: [None; 4],
            lower_is_better: lower,
        });
        rows.len() - 1
    };

    println!(
        "### 1. {} chains of 3 activities, started together",
        config.chains_n
    );
    let n = config.chains_n;
    let rate = row(&mut rows, 1, format!("N={n} chains"), "chains/s", false);
    let server = row(&mut rows, 1, "server CPU, cores busy".into(), "cores", true);
    let workers_cpu = row(
        &mut rows,
        1,
        "workers' CPU, cores busy".into(),
        "cores",
        true,
    );
    let machine = row(
        &mut rows,
        1,
        "machine busy (every process, other sessions included), cores".into(),
        "cores",
        true,
    );
    for (column, &workers) in WORKERS.iter().enumerate() {
        let mut runs = Vec::new();
        for i in 0..config.chains_runs {
            let run = chains(url, workers, n).await;
            let r = n as f64 / run.elapsed.as_secs_f64();
            println!(
                "  {workers} worker(s) run {}: {:.3} s = {r:.0} chains/s{}; CPU (cores busy): server {:.2}, workers {:.2}, client {:.2}, machine {:.2} of {}",
                i + 1,
                run.elapsed.as_secs_f64(),
                if run.failed > 0 { format!(", {} not completed", run.failed) } else { String::new() },
                run.cpu.server,
                run.cpu.workers,
                run.cpu.client,
                run.cpu.machine,
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            );
            let total: usize = run.waits.iter().map(|w| w.1).sum();
            let top: Vec<String> = run
                .waits
                .iter()
                .take(6)
                .map(|(label, count)| {
                    format!(
                        "{label} {:.0}%",
                        *count as f64 * 100.0 / total.max(1) as f64
                    )
                })
                .collect();
            println!(
                "    server sessions, {} samples ({:.1} busy sessions on average): {}",
                run.samples,
                total as f64 / run.samples.max(1) as f64,
                top.join(", ")
            );
            runs.push((r, run.cpu));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (r, cpu) = runs[runs.len() / 2];
        rows[rate].cells[column] = Some(r);
        rows[server].cells[column] = Some(cpu.server);
        rows[workers_cpu].cells[column] = Some(cpu.workers);
        rows[machine].cells[column] = Some(cpu.machine);
    }
    if let Some(dbos) = &dbos {
        let (times, failed) = dbos.chains(config.dbos_chains_n, 1).await;
        let rates: Vec<f64> = times
            .iter()
            .map(|t| config.dbos_chains_n as f64 / t)
            .collect();
        println!(
            "  DBOS N={}: {:.0} chains/s{}",
            config.dbos_chains_n,
            median(&rates),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
        rows[rate].cells[3] = Some(median(&rates));
        if config.dbos_chains_n != n {
            rows[rate].metric = format!("N={n} chains (DBOS: N={})", config.dbos_chains_n);
        }
    }

    println!("### 2. One orchestration of N sequential activities");
    for &steps in &config.seq_n {
        let per_step = row(&mut rows, 2, format!("N={steps} steps"), "ms/step", true);
        for (column, &workers) in WORKERS.iter().enumerate() {
            let t = sequential_run(url, workers, steps).await;
            let ms = t.as_secs_f64() * 1e3 / steps as f64;
            println!(
                "  {workers} worker(s) N={steps}: {:.3} s = {ms:.3} ms/step",
                t.as_secs_f64()
            );
            rows[per_step].cells[column] = Some(ms);
        }
        if let (Some(dbos), true) = (&dbos, config.dbos_seq_n.contains(&steps)) {
            if let Some(t) = dbos.sequential(steps).await {
                let ms = t * 1e3 / steps as f64;
                println!("  DBOS N={steps}: {t:.3} s = {ms:.3} ms/step");
                rows[per_step].cells[3] = Some(ms);
            }
        }
    }

    println!("### 3. Start-to-complete latency of one chain, one after another");
    let p50 = row(&mut rows, 3, "p50 latency".into(), "ms", true);
    let p99 = row(&mut rows, 3, "p99 latency".into(), "ms", true);
    for (column, &workers) in WORKERS.iter().enumerate() {
        let samples = latency(url, workers, config.latency_runs, config.warmup).await;
        let (a, b) = p50_p99(&samples);
        println!(
            "  {workers} worker(s), {} runs: p50 {a:.2} ms, p99 {b:.2} ms",
            config.latency_runs
        );
        rows[p50].cells[column] = Some(a);
        rows[p99].cells[column] = Some(b);
    }
    if let Some(dbos) = &dbos {
        let samples = dbos.latency(config.dbos_latency_runs, config.warmup).await;
        let (a, b) = p50_p99(&samples);
        println!(
            "  DBOS, {} runs: p50 {a:.2} ms, p99 {b:.2} ms",
            config.dbos_latency_runs
        );
        rows[p50].cells[3] = Some(a);
        rows[p99].cells[3] = Some(b);
        dbos.drop_database().await;
    }

    println!("\n### PostgreSQL results\n");
    println!("| workload | metric | durable, 1 worker | 2 workers | 4 workers | DBOS | durable (2 workers) vs DBOS |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let cell = |i: usize| r.cells[i].map_or("–".to_string(), |v| fmt(v, r.unit));
        let ratio = match (r.cells[1], r.cells[3]) {
            (Some(d), Some(x)) if d > 0.0 && x > 0.0 && r.unit != "cores" => {
                let v = if r.lower_is_better { x / d } else { d / x };
                format!("{v:.1}×")
            }
            _ => "–".into(),
        };
        println!(
            "| {} | {} ({}) | {} | {} | {} | {} | {ratio} |",
            r.workload,
            r.metric,
            r.unit,
            cell(0),
            cell(1),
            cell(2),
            cell(3)
        );
    }
    let get = |i: usize, c: usize| rows[i].cells[c];
    println!("\n### PostgreSQL targets\n");
    println!("| target | measured | met |");
    println!("|---|---|---|");
    let met = |ok: Option<bool>| match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    };
    let two = get(rate, 1);
    println!(
        "| ≥ 2,000 chains/s with 2 workers | {} | {} |",
        two.map_or("–".into(), |v| format!("{v:.0} chains/s")),
        met(two.map(|v| v >= 2_000.0))
    );
    let growth: Vec<String> = WORKERS
        .iter()
        .enumerate()
        .filter_map(|(c, w)| {
            Some(format!(
                "{w}: {:.0}/s, server {:.2} cores, machine {:.2}",
                get(rate, c)?,
                get(server, c)?,
                get(machine, c)?
            ))
        })
        .collect();
    println!(
        "| throughput grows with workers until the server's CPU is the limit | {} | see the CPU rows |",
        growth.join("; ")
    );
    let x = two.zip(get(rate, 3)).map(|(d, x)| d / x);
    println!(
        "| ≥ 10× DBOS, same run | {} | {} |",
        x.map_or("–".into(), |v| format!("{v:.1}×")),
        met(x.map(|v| v >= 10.0))
    );
    let p = get(p50, 1);
    println!(
        "| p50 start-to-complete ≤ 10 ms | {} (raw fdatasync median {fdatasync_ms:.3} ms this run) | {} |",
        p.map_or("–".into(), |v| format!("{v:.2} ms with 2 workers")),
        met(p.map(|v| v <= 10.0))
    );
}
