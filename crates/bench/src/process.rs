//! The real binaries as child processes, and what they cost: CPU time (user + system, every
//! thread, librdkafka's included) and peak RSS, read from /proc as the kernel counts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio::process::{Child, Command};

/// `name` in `dir`, or beside this bench (the same cargo profile's target directory).
pub fn binary(name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    let path = match dir {
        Some(d) => d.join(name),
        None => std::env::current_exe()?.with_file_name(name),
    };
    ensure!(
        path.exists(),
        "{} not found: run `cargo build --release --workspace` (or pass --bin-dir)",
        path.display()
    );
    Ok(path)
}

/// A loopback address nobody listens on yet, for a child's `--http-addr`.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// (peak RSS in MiB, user + system CPU seconds) of a live process.
pub fn stats(pid: u32) -> Option<(f64, f64)> {
    let hwm_kb = status_kib(pid, "VmHWM:")?;
    Some((hwm_kb / 1024.0, cpu_seconds(&format!("/proc/{pid}/stat"))?))
}

/// Resident set size of a live process right now, in MiB (not the peak: a soak watches
/// whether it keeps growing).
pub fn rss_mib(pid: u32) -> Option<f64> {
    Some(status_kib(pid, "VmRSS:")? / 1024.0)
}

/// File descriptors a live process holds open (sockets included): a leak of connections
/// shows here long before it hits the limit.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A `kB` line of /proc/<pid>/status, e.g. `VmRSS:`.
fn status_kib(pid: u32, key: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User + system CPU seconds of this process so far (all its threads).
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // After the command name (which may hold spaces): utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux we run on.
    Some(ticks / 100.0)
}

/// A child process whose peak RSS and CPU time are sampled while it runs.
pub struct Watched {
    child: Child,
    pid: u32,
    last: Arc<Mutex<(f64, f64)>>,
}

#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
    /// What it printed on stdout: the summary line.
    pub stdout: String,
}

impl Finished {
    /// A `key=value` figure of the summary line.
    pub fn summary(&self, key: &str) -> Option<f64> {
        self.stdout
            .lines()
            .rfind(|l| l.starts_with("summary:"))?
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))?
            .parse()
            .ok()
    }
}

impl Watched {
    pub fn spawn(mut command: Command) -> Result<Watched> {
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning a binary")?;
        let pid = child.id().context("pid")?;
        let last = Arc::new(Mutex::new((0.0, 0.0)));
        let sampled = last.clone();
        tokio::spawn(async move {
            // VmHWM is the kernel's own peak; CPU time grows until exit, so the last
            // sample before exit is the figure.
            while let Some(now) = stats(pid) {
                *sampled.lock().unwrap_or_else(|e| e.into_inner()) = now;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Watched { child, pid, last })
    }

    /// (peak RSS MiB, CPU seconds) right now.
    pub fn now(&self) -> (f64, f64) {
        stats(self.pid).unwrap_or_else(|| *self.last.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// SIGTERM: the binaries finish in-flight work, commit and exit.
    pub async fn stop(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -TERM {}", self.pid);
        Ok(())
    }

    pub async fn wait(self, limit: Duration) -> Result<Finished> {
        let Ok(output) = tokio::time::timeout(limit, self.child.wait_with_output()).await else {
            bail!("pid {} still running after {limit:?}", self.pid);
        };
        let output = output?;
        let (peak_rss_mib, cpu_seconds) = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Finished {
            success: output.status.success(),
            peak_rss_mib,
            cpu_seconds,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }
}

/// The cumulative buckets of histogram `name` in a scraped `/metrics` body, in order:
/// (upper bound as written, e.g. "0.05" or "+Inf"; observations at or below it).
pub fn buckets(body: &str, name: &str) -> Vec<(String, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (bound, count) = l.split_once("\"} ")?;
            Some((bound.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// Waits until the consumer at `addr` holds partitions.
pub async fn wait_assigned(addr: SocketAddr, limit: Duration) -> Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    while bed::sample_sum(
        &bed::scrape(&client, addr).await,
        "consumer_assigned_partitions",
    ) == 0
    {
        ensure!(
            Instant::now() < deadline,
            "the consumer was not assigned partitions in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
