//! End-to-end latency at a steady rate: the real `producer` and `consumer`
//! binaries run side by side against the services, fed by a local API-shaped
//! server. Each row's latency is the consumer's own measure, from its Kafka record's
//! timestamp to the row written, both on this machine's clock: its
//! `consumer_end_to_end_latency_seconds` histogram, read when the warm-up ends and again
//! when the last row is written, so that the difference is the steady state's. (Not
//! Cassandra's write time: a row is written at its record's timestamp.) Also prints each
//! binary's peak RSS and CPU time.

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
        let goal = goal_ms(rate);
        let within = steady.within(goal / 1000.0);
        println!(
            "latency bench:   {rate:>6.0} users/s: {} (goal p99 <= {goal:.0} ms: {})",
            steady.describe(),
            match within {
                Some(w) if w >= 0.99 => format!("met, {:.2} % within it", w * 100.0),
                Some(w) => format!("not met, {:.2} % within it", w * 100.0),
                None => "no bucket at the goal".to_string(),
            }
        );
    }
    Ok(())
}

/// One rate, start to finish; the steady state's end-to-end latencies.
async fn one_rate(args: &Args, rate: f64) -> Result<Histogram> {
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
    // The producer's first record starts the warm-up: the histogram as it ends is the start
    // of the steady state's figures.
    let client = reqwest::Client::new();
    let started = Instant::now();
    while bed::sample_sum(
        &bed::scrape(&client, metrics_addr).await,
        "consumer_records_consumed_total",
    ) == 0
    {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no record consumed within 60 s of the producer's start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let at_warm = bed::scrape(&client, metrics_addr).await;
    let warm = Histogram::read(&at_warm, END_TO_END);
    let produced = producer
        .wait(Duration::from_secs(args.seconds + 120))
        .await?;
    ensure!(produced.success, "producer failed");
    // --duration ends the run on time: the rows to wait for are what the producer published.
    let expected = produced
        .summary("published")
        .context("no published= in the producer's summary")? as u64;

    let deadline = Instant::now() + Duration::from_secs(120);
    let at_end = loop {
        let text = bed::scrape(&client, metrics_addr).await;
        if bed::sample_sum(&text, "consumer_rows_written_total") >= expected
            || Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let session = args.services.cassandra.connect().await?;
    let rows = count_rows(&session, &keyspace).await?;
    let split = histogram_quantiles(&at_end);
    consumer.stop().await?;
    let consumed = consumer.wait(Duration::from_secs(60)).await?;
    // Its rows are counted: a keyspace and topics left behind per rate would grow the bed (its
    // compactions, its disk) with every run, and later runs would measure that too.
    leftovers
        .remove(
            &args.services.kafka.client_config(&[], &[])?,
            Some(&session),
        )
        .await;

    ensure!(
        rows == expected,
        "{rows} rows of the {expected} published were written"
    );
    let steady = Histogram::read(&at_end, END_TO_END).since(&warm);
    ensure!(steady.count() > 0, "no rows after the warm-up");
    println!(
        "latency bench: warm-up, first {}s ({} rows, not counted): {}",
        args.warmup,
        warm.count(),
        warm.describe()
    );
    println!(
        "latency bench: {} rows; end-to-end (Kafka timestamp -> row written) {} (goal: p99 <= {:.0} ms)",
        steady.count(),
        steady.describe(),
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

const END_TO_END: &str = "consumer_end_to_end_latency_seconds";

/// A latency histogram of the consumer's `/metrics`: (upper bound in seconds, observations
/// at or below it), cumulative, as Prometheus reads it.
#[derive(Debug, Clone)]
struct Histogram(Vec<(f64, u64)>);

impl Histogram {
    fn read(body: &str, name: &str) -> Histogram {
        Histogram(
            process::buckets(body, name)
                .into_iter()
                .filter_map(|(bound, n)| Some((bound.parse().ok()?, n)))
                .collect(),
        )
    }

    /// The observations after `earlier`, a reading of the same histogram.
    fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram(
            self.0
                .iter()
                .zip(&earlier.0)
                .map(|(&(bound, now), &(_, then))| (bound, now.saturating_sub(then)))
                .collect(),
        )
    }

    fn count(&self) -> u64 {
        self.0.last().map_or(0, |b| b.1)
    }

    /// The share of observations at or below `bound` seconds, if it is a bucket's bound.
    fn within(&self, bound: f64) -> Option<f64> {
        let (_, n) = self.0.iter().find(|(b, _)| (b - bound).abs() < 1e-9)?;
        Some(*n as f64 / self.count().max(1) as f64)
    }

    /// The q-quantile in ms, interpolated within its bucket as Prometheus'
    /// `histogram_quantile` does (the bucket's upper bound when that is +Inf: its lower).
    fn quantile_ms(&self, q: f64) -> f64 {
        let rank = q * self.count() as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, n) in &self.0 {
            if n as f64 >= rank && n > lower.1 {
                if bound.is_infinite() {
                    return lower.0 * 1000.0;
                }
                let share = (rank - lower.1 as f64) / (n - lower.1) as f64;
                return (lower.0 + (bound - lower.0) * share) * 1000.0;
            }
            lower = (bound, n);
        }
        lower.0 * 1000.0
    }

    /// The upper bound (seconds) of the bucket the q-quantile falls in.
    fn bound_at(&self, q: f64) -> Option<f64> {
        let rank = q * self.count() as f64;
        self.0
            .iter()
            .find(|(_, n)| *n as f64 >= rank)
            .map(|(bound, _)| *bound)
    }

    /// "p50 7.1 ms, p90 …, p99 …" (interpolated), and the bucket the slowest row is in.
    fn describe(&self) -> String {
        let slowest = self
            .bound_at(1.0)
            .map_or("?".to_string(), |b| format!("{:.0} ms", b * 1000.0));
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max <= {slowest}",
            self.quantile_ms(0.5),
            self.quantile_ms(0.9),
            self.quantile_ms(0.99)
        )
    }
}

/// The rows of the run's table.
async fn count_rows(session: &scylla::client::session::Session, keyspace: &str) -> Result<u64> {
    let result = session
        .query_unpaged(format!("SELECT id FROM {keyspace}.created_users"), ())
        .await?
        .into_rows_result()?;
    Ok(result.rows_num() as u64)
}

/// p50/p90/p99 bucket bounds of the consumer's latency histograms, as Prometheus's
/// `histogram_quantile` would read them (the upper bound of the bucket the quantile falls in).
fn histogram_quantiles(text: &str) -> Vec<(&'static str, String)> {
    ["consumer_write_latency_seconds", END_TO_END]
        .into_iter()
        .map(|name| {
            let histogram = Histogram::read(text, name);
            let at = |q: f64| {
                histogram
                    .bound_at(q)
                    .map_or("?".to_string(), |bound| format!("<= {bound} s"))
            };
            (
                name,
                format!("p50 {}, p90 {}, p99 {}", at(0.5), at(0.9), at(0.99)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "\
consumer_end_to_end_latency_seconds_bucket{le=\"0.01\"} 60
consumer_end_to_end_latency_seconds_bucket{le=\"0.02\"} 109
consumer_end_to_end_latency_seconds_bucket{le=\"0.05\"} 110
consumer_end_to_end_latency_seconds_bucket{le=\"+Inf\"} 110
";

    #[test]
    fn the_steady_state_is_the_difference_of_two_readings_read_as_prometheus_would() {
        let warm = Histogram(vec![
            (0.01, 10),
            (0.02, 10),
            (0.05, 10),
            (f64::INFINITY, 10),
        ]);
        let steady = Histogram::read(BODY, END_TO_END).since(&warm);
        assert_eq!(steady.count(), 100);
        // 50 of 100 at or below 10 ms: p50 is the bucket's top; p99 is the 49th of the 49
        // rows between 10 and 20 ms.
        assert!((steady.quantile_ms(0.5) - 10.0).abs() < 1e-9);
        assert!((steady.quantile_ms(0.99) - 20.0).abs() < 1e-9);
        assert_eq!(steady.within(0.02), Some(0.99));
        assert_eq!(steady.within(0.03), None);
        assert_eq!(
            steady.describe(),
            "p50 10.0 ms, p90 18.2 ms, p99 20.0 ms, max <= 50 ms"
        );
    }
}
