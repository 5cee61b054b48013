//! End-to-end latency at a steady rate: the real `producer` and `consumer`
//! binaries run side by side against the services, fed by a local API-shaped
//! server. Each row's latency is Cassandra's write time of the row minus its
//! Kafka record timestamp (`produced_at`), both on this machine's clock, read
//! back for every row. Also prints each binary's peak RSS and CPU time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use scylla::client::session_builder::SessionBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Users per second the producer publishes (its --rate).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long the producer runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Users per API page (small pages keep the stream steady).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Directory of the producer and consumer binaries (default: next to this one, e.g.
    /// target/release after `cargo build --release --workspace`).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    #[arg(
        long,
        env = "CASSANDRA_CONTACT_POINTS",
        default_value = "localhost:9042"
    )]
    cassandra_contact_points: String,
}

pub async fn run(args: Args) -> Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("bench's directory")?
            .to_path_buf(),
    };
    for bin in ["producer", "consumer"] {
        ensure!(
            bin_dir.join(bin).exists(),
            "{} not found: run `cargo build --release --workspace` (or pass --bin-dir)",
            bin_dir.join(bin).display()
        );
    }
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = format!("bench_latency_{stamp}");
    let keyspace = format!("bench_latency_{stamp}");
    let api = serve_pages(args.batch_size).await?;
    println!(
        "latency bench: users at {}/s for {}s, topic {topic}",
        args.rate, args.seconds
    );

    // The consumer first, and only once it has its partitions does the producer start: the
    // group join is start-up, not latency.
    let metrics_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let mut consumer = Command::new(bin_dir.join("consumer"));
    consumer
        .args(["--topic", &topic, "--dlq-topic", &format!("{topic}.dlq")])
        .args([
            "--group-id",
            &format!("{topic}_writer"),
            "--keyspace",
            &keyspace,
        ])
        .args([
            "--http-addr",
            &metrics_addr.to_string(),
            "--progress-interval",
            "60s",
        ])
        .kill_on_drop(true);
    let consumer = Watched::spawn(consumer)?;
    wait_assigned(metrics_addr).await?;
    let mut producer = Command::new(bin_dir.join("producer"));
    producer
        .args([
            "--api-url",
            &format!("http://{api}/api/"),
            "--topic",
            &topic,
        ])
        .args(["--rate", &args.rate.to_string()])
        .args(["--duration", &format!("{}s", args.seconds)])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args(["--progress-interval", "60s"])
        .kill_on_drop(true);
    let producer = Watched::spawn(producer)?;
    let produced = producer
        .wait(Duration::from_secs(args.seconds + 120))
        .await?;
    ensure!(produced.success, "producer failed");
    // --duration ends the run on time: the rows to wait for are what the producer published.
    let expected = produced
        .summary("published")
        .context("no published= in the producer's summary")?;

    let session = SessionBuilder::new()
        .known_nodes(args.cassandra_contact_points.split(','))
        .build()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let latencies = loop {
        let rows = latencies_ms(&session, &keyspace).await.unwrap_or_default();
        if rows.len() as i64 >= expected || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    consumer.stop().await?;
    let consumed = consumer.wait(Duration::from_secs(60)).await?;

    ensure!(!latencies.is_empty(), "no rows written");
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "latency bench: {} rows; end-to-end (Kafka timestamp -> row written) p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal: p99 < 50 ms)",
        sorted.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
    for (name, stats) in [("producer", &produced), ("consumer", &consumed)] {
        println!(
            "latency bench: {name}: peak RSS {:.1} MiB, CPU {:.2} s ({:.1} µs per record)",
            stats.peak_rss_mib,
            stats.cpu_seconds,
            stats.cpu_seconds * 1e6 / sorted.len() as f64
        );
    }
    Ok(())
}

/// Waits until the consumer's /metrics shows partitions assigned.
async fn wait_assigned(addr: SocketAddr) -> Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = client.get(format!("http://{addr}/metrics")).send().await {
            let text = response.text().await.unwrap_or_default();
            let assigned = text
                .lines()
                .find_map(|l| l.strip_prefix("consumer_assigned_partitions "))
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(0);
            if assigned > 0 {
                return Ok(());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the consumer was not assigned partitions in 120s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Milliseconds from each row's Kafka timestamp to Cassandra's write time of it.
async fn latencies_ms(
    session: &scylla::client::session::Session,
    keyspace: &str,
) -> Result<Vec<f64>> {
    let result = session
        .query_unpaged(
            format!("SELECT produced_at, WRITETIME(first_name) FROM {keyspace}.created_users"),
            (),
        )
        .await?
        .into_rows_result()?;
    let mut out = Vec::new();
    for row in result.rows::<(scylla::value::CqlTimestamp, i64)>()? {
        let (produced, written_us) = row?;
        out.push(written_us as f64 / 1000.0 - produced.0 as f64);
    }
    Ok(out)
}

/// A child process whose peak RSS and CPU time are sampled while it runs.
struct Watched {
    child: Child,
    pid: u32,
    peak: Arc<std::sync::Mutex<(f64, f64)>>,
}

#[derive(Debug)]
struct Finished {
    success: bool,
    peak_rss_mib: f64,
    cpu_seconds: f64,
    /// What it printed: the summary line.
    stdout: String,
}

impl Finished {
    /// A `key=value` figure of the summary line.
    fn summary(&self, key: &str) -> Option<i64> {
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
    fn spawn(mut command: Command) -> Result<Watched> {
        let child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("spawning a binary")?;
        let pid = child.id().context("pid")?;
        let peak = Arc::new(std::sync::Mutex::new((0.0, 0.0)));
        let sampled = peak.clone();
        tokio::spawn(async move {
            // VmHWM is the kernel's own peak; CPU time grows until exit. Sample both.
            while let Some(now) = proc_stats(pid) {
                *sampled.lock().unwrap_or_else(|e| e.into_inner()) = now;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Watched { child, pid, peak })
    }

    async fn stop(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -TERM {}", self.pid);
        Ok(())
    }

    async fn wait(self, limit: Duration) -> Result<Finished> {
        let Ok(output) = tokio::time::timeout(limit, self.child.wait_with_output()).await else {
            bail!("pid {} still running after {limit:?}", self.pid);
        };
        let output = output?;
        let (peak_rss_mib, cpu_seconds) = *self.peak.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Finished {
            success: output.status.success(),
            peak_rss_mib,
            cpu_seconds,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }
}

/// (VmHWM in MiB, user+system CPU seconds) of a live process.
fn proc_stats(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 14th field overall.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((hwm_kb / 1024.0, ticks / 100.0))
}

/// Serves `GET /api/?results=N` with N fresh users, as the Random User API would.
async fn serve_pages(page_size: usize) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let results = request
                    .split_whitespace()
                    .nth(1)
                    .and_then(|target| target.split("results=").nth(1))
                    .and_then(|v| v.split('&').next())
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(page_size);
                let body = crate::users::pages(results, results.max(1))
                    .pop()
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    Ok(addr)
}
