//! What the machine is: printed before every run so that figures can be compared.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::stats::{median, percentile};

/// The machine and the data directory's disk.
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub fs_type: String,
    pub fdatasync_median: Duration,
    pub fdatasync_p99: Duration,
    pub fdatasync_samples: usize,
}

impl Machine {
    pub fn probe(dir: &Path, fdatasync_samples: usize) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let (fdatasync_median, fdatasync_p99) = fdatasync_time(dir, fdatasync_samples);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory,
            kernel,
            fs_type: fs_type(dir),
            fdatasync_median,
            fdatasync_p99,
            fdatasync_samples,
        }
    }

    pub fn print(&self, dir: &Path) {
        println!(
            "machine: {} cores ({}), {} memory, Linux {}",
            self.cores, self.cpu_model, self.memory, self.kernel
        );
        println!(
            "data directory: {} (filesystem {})",
            dir.display(),
            self.fs_type
        );
        println!(
            "raw fdatasync of a 64-byte append: median {:.3} ms, p99 {:.3} ms ({} samples; {:.0} syncs/s)",
            ms(self.fdatasync_median),
            ms(self.fdatasync_p99),
            self.fdatasync_samples,
            1.0 / self.fdatasync_median.as_secs_f64()
        );
    }
}

/// `stat -f -c %T <dir>`: the file system's type as the kernel names it.
pub fn fs_type(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Median and p99 of (append 64 bytes + fdatasync) to a fresh file in `dir`.
fn fdatasync_time(dir: &Path, samples: usize) -> (Duration, Duration) {
    let path = dir.join(format!("fdatasync-probe-{}", std::process::id()));
    let mut file = match OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(_) => return (Duration::ZERO, Duration::ZERO),
    };
    let record = [0x5au8; 64];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        file.write_all(&record).expect("write the fdatasync probe");
        file.sync_data().expect("fdatasync the probe");
        times.push(t.elapsed().as_secs_f64());
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    (
        Duration::from_secs_f64(median(&times)),
        Duration::from_secs_f64(percentile(&times, 99.0)),
    )
}

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`).
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
