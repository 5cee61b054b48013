//! End-to-end latency at a steady rate: the real `producer` and `consumer`
//! binaries run side by side against the services, fed by a local API-shaped
//! server. Each row's latency is Cassandra's write time of the row minus its
//! Kafka record timestamp (`produced_at`), both on this machine's clock, read
//! back for every row. Also prints each binary's peak RSS and CPU time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tokio::process::Command;

use crate::leftovers::Leftovers;
use crate::process::{self, Watched};
use crate::services::Services;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Users per second the producer publishes (its --rate); several, comma-separated, are
    /// measured one after the other, each with its own topic, binaries and warm-up.
    #[arg(
        long = "rate",
        env = "BENCH_RATE",
        value_delimiter = ',',
        default_value = "1000,5000"
    )]
    rates: Vec<f64>,
    /// Seconds measured after each warm-up (the producer runs for both).
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 20)]
    seconds: u64,
    /// Users per API page (small pages keep the stream steady).
    #[arg(long, env = "BENCH_BATCH_SIZE", default_value_t = 100)]
    batch_size: usize,
    /// Seconds at the start whose rows are not counted: the first contacts of a fresh
    /// producer and consumer (connections, prepared statements, the brokers' and Cassandra's
    /// JIT on new code paths) are start-up, not steady-state latency. Printed apart.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 10)]
    warmup: u64,
    /// Directory of the producer and consumer binaries (default: next to this one, e.g.
    /// target/release after `cargo build --release --workspace`).
    #[arg(long, env = "BENCH_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// The brokers, the registry and Cassandra, for the bench's own clients and for every
    /// binary it starts.
    #[command(flatten)]
    services: Services,
}

/// The goals for p99: 20 ms at up to 1 000 users/s, 50 ms above.
fn goal_ms(rate: f64) -> f64 {
    if rate <= 1000.0 {
        20.0
    } else {
        50.0
    }
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(
        !args.rates.is_empty() && args.rates.iter().all(|r| *r > 0.0),
        "--rate (BENCH_RATE) takes rates above 0, e.g. 1000,5000"
    );
    let mut table = Vec::new();
    for &rate in &args.rates {
        table.push((rate, one_rate(&args, rate).await?));
    }
    println!("latency bench: end-to-end after the warm-up, rate by rate:");
    for (rate, steady) in table {
        let p99 = at(&steady, 0.99);
        let goal = goal_ms(rate);
        println!(
            "latency bench:   {rate:>6.0} users/s: p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms \
             (goal p99 <= {goal:.0} ms: {})",
            at(&steady, 0.5),
            at(&steady, 1.0),
            if p99 <= goal { "met" } else { "not met" }
        );
    }
    Ok(())
}

/// One rate, start to finish; the steady-state latencies in ms, sorted.
async fn one_rate(args: &Args, rate: f64) -> Result<Vec<f64>> {
    let producer_bin = process::binary("producer", args.bin_dir.as_deref())?;
    let consumer_bin = process::binary("consumer", args.bin_dir.as_deref())?;
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = format!("bench_latency_{stamp}");
    let keyspace = format!("bench_latency_{stamp}");
    let group = format!("{topic}_writer");
    let mut leftovers = Leftovers::default();
    leftovers.topic(&topic);
    leftovers.topic(&format!("{topic}.dlq"));
    leftovers.group(&group);
    leftovers.keyspace(&keyspace);
    let api = crate::users::serve(crate::users::Pages::Fresh).await?;
    println!(
        "latency bench: users at {rate}/s for {}s + {}s warm-up, topic {topic}",
        args.seconds, args.warmup
    );

    // The consumer first, and only once it has its partitions does the producer start: the
    // group join is start-up, not latency.
    let metrics_addr = process::free_addr()?;
    let mut consumer = Command::new(consumer_bin);
    consumer
        .args(["--topic", &topic, "--dlq-topic", &format!("{topic}.dlq")])
        .args(["--group-id", &group, "--keyspace", &keyspace])
        .args([
            "--http-addr",
            &metrics_addr.to_string(),
            "--progress-interval",
            "60s",
        ]);
    args.services.pass_to_consumer(consumer.as_std_mut());
    let consumer = Watched::spawn(consumer)?;
    process::wait_assigned(metrics_addr, Duration::from_secs(120)).await?;
    let mut producer = Command::new(producer_bin);
    producer
        .args([
            "--api-url",
            &format!("http://{api}/api/"),
            "--topic",
            &topic,
        ])
        .args(["--rate", &rate.to_string()])
        .args(["--duration", &format!("{}s", args.seconds + args.warmup)])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args(["--progress-interval", "60s"]);
    args.services.pass_to_producer(producer.as_std_mut());
    let producer = Watched::spawn(producer)?;
    let produced = producer
        .wait(Duration::from_secs(args.seconds + 120))
        .await?;
    ensure!(produced.success, "producer failed");
    // --duration ends the run on time: the rows to wait for are what the producer published.
    let expected = produced
        .summary("published")
        .context("no published= in the producer's summary")? as usize;

    let session = args.services.cassandra.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let latencies = loop {
        let rows = latencies_ms(&session, &keyspace).await.unwrap_or_default();
        if rows.len() >= expected || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let split = histogram_quantiles(metrics_addr).await;
    consumer.stop().await?;
    let consumed = consumer.wait(Duration::from_secs(60)).await?;
    // Its rows are read: a keyspace and topics left behind per rate would grow the bed (its
    // compactions, its disk) with every run, and later runs would measure that too.
    leftovers
        .remove(
            &args.services.kafka.client_config(&[], &[])?,
            Some(&session),
        )
        .await;

    ensure!(
        latencies.len() == expected,
        "{} rows of the {expected} published were written",
        latencies.len()
    );
    let first = latencies.iter().map(|l| l.0).fold(f64::INFINITY, f64::min);
    let steady_from = first + args.warmup as f64 * 1000.0;
    let (mut warm, mut steady): (Vec<f64>, Vec<f64>) = (
        latencies
            .iter()
            .filter(|l| l.0 < steady_from)
            .map(|l| l.1)
            .collect(),
        latencies
            .iter()
            .filter(|l| l.0 >= steady_from)
            .map(|l| l.1)
            .collect(),
    );
    ensure!(!steady.is_empty(), "no rows after the warm-up");
    warm.sort_by(f64::total_cmp);
    steady.sort_by(f64::total_cmp);
    println!(
        "latency bench: warm-up, first {}s ({} rows, not counted): {}",
        args.warmup,
        warm.len(),
        quantiles(&warm)
    );
    println!(
        "latency bench: {} rows; end-to-end (Kafka timestamp -> row written) {} (goal: p99 <= {:.0} ms)",
        steady.len(),
        quantiles(&steady),
        goal_ms(rate)
    );
    // Where the time goes, from the consumer's own histograms: the Cassandra write alone,
    // and everything before it (producer linger, broker, fetch) is the difference.
    for (name, quantiles) in split {
        println!("latency bench: consumer's /metrics {name} (warm-up included): {quantiles}");
    }
    for (name, stats) in [("producer", &produced), ("consumer", &consumed)] {
        println!(
            "latency bench: {name}: peak RSS {:.1} MiB, CPU {:.2} s ({:.1} µs per record)",
            stats.peak_rss_mib,
            stats.cpu_seconds,
            stats.cpu_seconds * 1e6 / expected as f64
        );
    }
    Ok(steady)
}

/// p50/p90/p99 bucket bounds of the consumer's latency histograms, as Prometheus's
/// `histogram_quantile` would read them (the upper bound of the bucket the quantile falls in).
async fn histogram_quantiles(addr: SocketAddr) -> Vec<(&'static str, String)> {
    let text = bed::scrape(&reqwest::Client::new(), addr).await;
    [
        "consumer_write_latency_seconds",
        "consumer_end_to_end_latency_seconds",
    ]
    .into_iter()
    .map(|name| {
        let buckets = process::buckets(&text, name);
        let total = buckets.last().map_or(0.0, |b| b.1 as f64);
        let at = |q: f64| {
            buckets
                .iter()
                .find(|(_, count)| *count as f64 >= q * total)
                .map_or("?".to_string(), |(bound, _)| format!("<= {bound} s"))
        };
        (
            name,
            format!("p50 {}, p90 {}, p99 {}", at(0.5), at(0.9), at(0.99)),
        )
    })
    .collect()
}

/// The q-quantile of sorted, non-empty `ms`.
fn at(ms: &[f64], q: f64) -> f64 {
    ms[((ms.len() as f64 - 1.0) * q).round() as usize]
}

fn quantiles(ms: &[f64]) -> String {
    if ms.is_empty() {
        return "none".into();
    }
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(ms, 0.50),
        at(ms, 0.90),
        at(ms, 0.99),
        at(ms, 1.0)
    )
}

/// (Kafka timestamp in ms, milliseconds from it to Cassandra's write time) of each row.
async fn latencies_ms(
    session: &scylla::client::session::Session,
    keyspace: &str,
) -> Result<Vec<(f64, f64)>> {
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
        out.push((
            produced.0 as f64,
            written_us as f64 / 1000.0 - produced.0 as f64,
        ));
    }
    Ok(out)
}
