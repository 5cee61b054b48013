use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::cassandra::CassandraArgs;
use consumer::pipeline::batch::{group, Batching};
use consumer::sink::Sink;
use domain::row::{schema_statements, TimedRow};
use domain::{ApiPage, UserRow};
use futures::stream::{FuturesUnordered, StreamExt};
use producer::frame::Records;
use producer::publish::Publisher;
use tokio::process::Command;

use crate::figures::{self, Series};
use crate::leftovers::Leftovers;
use crate::process::{self, Watched};
use crate::services::Services;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    work: crate::Workload,
    /// Concurrent writes to sweep, for the consumer (--max-in-flight) and the bare loops alike.
    #[arg(
        long,
        env = "BENCH_IN_FLIGHT",
        value_delimiter = ',',
        default_value = "64,128,256,512"
    )]
    in_flight: Vec<usize>,
    /// Most rows per batch, for the consumer (--batch-max-rows) and the bare loop that batches
    /// as it does; 1: no batches, and no batching loop.
    #[arg(long, env = "BENCH_BATCH_MAX_ROWS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    batch_max_rows: u32,
    /// Most bytes of rows per batch, for both (the consumer's --batch-max-bytes).
    #[arg(long, env = "BENCH_BATCH_MAX_BYTES", default_value_t = 5120, value_parser = clap::value_parser!(u32).range(1..))]
    batch_max_bytes: u32,
    /// Cassandra's own metrics, one URL per node (its JMX exporter: the bed's nodes serve it on
    /// port 7073; Compose's on its network only, http://cassandra:7073/metrics): each side's
    /// Cassandra CPU per row is read from their process_cpu_seconds_total. Empty: not measured.
    #[arg(
        long,
        env = "BENCH_CASSANDRA_METRICS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7073/metrics"
    )]
    cassandra_metrics: Vec<String>,
    /// Directory of the consumer binary (default: beside this one).
    #[arg(long, env = "BENCH_BIN_DIR")]
    bin_dir: Option<std::path::PathBuf>,
    /// The brokers, the registry and Cassandra, for the bench's own clients and for every
    /// binary it starts.
    #[command(flatten)]
    services: Services,
}

/// What a round measures at each concurrency: the consumer binary, and the two loops of the
/// driver alone it is held against.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The consumer: Kafka, decode, transform, batches as configured.
    Pipeline,
    /// One prepared INSERT per row: the driver's own loop.
    Bare,
    /// The rows grouped and batched as the consumer's writer does: the floor for batching.
    Batched,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline",
            Kind::Bare => "bare",
            Kind::Batched => "batched",
        }
    }
}

/// One side's figures at one concurrency, over the rounds.
#[derive(Debug, Default)]
struct Side {
    rows_per_s: Series,
    cpu_us_per_row: Series,
    /// Cassandra's CPU (every node's) per row while this side wrote.
    cassandra_us_per_row: Series,
    peak_rss_mib: Series,
}

/// A run's figures: rows/s, this side's CPU µs per row, Cassandra's, and peak RSS (the
/// consumer's; the bench holds every user in memory, so its own says nothing).
struct Measured {
    rate: f64,
    cpu_us: f64,
    cassandra_us: f64,
    rss: Option<f64>,
    /// Rows per write request (the consumer's consumer_write_requests_total).
    rows_per_request: Option<f64>,
}

pub async fn run(args: Args) -> Result<()> {
    let consumer_bin = process::binary("consumer", args.bin_dir.as_deref())?;
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = format!("bench_consumer_{stamp}");
    let probe_group = format!("{topic}_probe");
    let warm_keyspace = format!("bench_warm_{stamp}");
    let mut leftovers = Leftovers::default();
    leftovers.topic(&topic);
    leftovers.topic(&format!("{topic}.dlq"));
    leftovers.group(&probe_group);
    leftovers.keyspace(&warm_keyspace);
    let cassandra_cpu = CassandraCpu::new(&args.cassandra_metrics).await?;
    let users: Vec<domain::User> = crate::users::pages(args.work.records, 5000)
        .iter()
        .map(|p| ApiPage::parse(p).map(|p| p.users))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    load(&args.services, &topic, &users).await?;
    let per_record = per_record_cost(&args, &topic, &probe_group).await?;
    let batching = Batching {
        max_rows: args.batch_max_rows as usize,
        max_bytes: args.batch_max_bytes as usize,
    };
    let kinds: &[Kind] = if batching.max_rows > 1 {
        &[Kind::Pipeline, Kind::Bare, Kind::Batched]
    } else {
        &[Kind::Pipeline, Kind::Bare]
    };
    println!(
        "consumer bench: {} records on {topic}; in flight {:?}; batches of up to {} rows, {} \
         bytes; Cassandra's CPU from {}; {} round(s)",
        users.len(),
        args.in_flight,
        batching.max_rows,
        batching.max_bytes,
        cassandra_cpu.describe(),
        args.work.rounds
    );
    let session = args.services.cassandra.connect().await?;

    // Cassandra's JIT and memtables warm up on the first writes: keep that out of every figure.
    let warm = users.len().min(20_000);
    bare_inserts(
        &args.services.cassandra,
        &warm_keyspace,
        &users[..warm],
        256,
    )
    .await?;

    let mut sides: Vec<Vec<Side>> = kinds
        .iter()
        .map(|_| args.in_flight.iter().map(|_| Side::default()).collect())
        .collect();
    for round in 1..=args.work.rounds {
        for (i, &n) in args.in_flight.iter().enumerate() {
            let keyspace = |kind: Kind| format!("bench_{stamp}_{}_{round}_{n}", kind.name());
            // Cassandra's speed drifts (flushes, compaction, GC): the order of the sides
            // turns around every round.
            let mut order: Vec<usize> = (0..kinds.len()).collect();
            if round % 2 == 0 {
                order.reverse();
            }
            for k in order {
                let kind = kinds[k];
                let measured = match kind {
                    Kind::Pipeline => {
                        let group = format!("{topic}_writer_{round}_{n}");
                        leftovers.group(&group);
                        let run = Run {
                            bin: &consumer_bin,
                            topic: &topic,
                            group: &group,
                            keyspace: &keyspace(kind),
                            max_in_flight: n,
                            batching: &batching,
                        };
                        consume(&args, &run, &cassandra_cpu).await?
                    }
                    Kind::Bare | Kind::Batched => {
                        // The consumer reads its own, from its first record on (`consume`).
                        let cassandra_before = cassandra_cpu.seconds().await?;
                        let cassandra = CassandraArgs {
                            keyspace: keyspace(kind),
                            ..args.services.cassandra.clone()
                        };
                        let (rate, cpu_us) = if kind == Kind::Bare {
                            bare_inserts(&cassandra, &cassandra.keyspace, &users, n).await?
                        } else {
                            batched_inserts(&cassandra, &users, n, &batching).await?
                        };
                        let cassandra_s = cassandra_cpu.seconds().await? - cassandra_before;
                        Measured {
                            rate,
                            cpu_us,
                            cassandra_us: cassandra_s * 1e6 / users.len() as f64,
                            rss: None,
                            rows_per_request: None,
                        }
                    }
                };
                let rss = measured
                    .rss
                    .map(|r| format!(", peak RSS {r:.0} MiB"))
                    .unwrap_or_default();
                let per_request = measured
                    .rows_per_request
                    .map(|r| format!(", {r:.1} rows/request"))
                    .unwrap_or_default();
                println!(
                    "consumer bench: round {round}, {n:>3} in flight: {:<8} {:>7.0} rows/s, \
                     CPU {:>5.1} µs/row, Cassandra {:>5.1} µs/row{rss}{per_request}",
                    kind.name(),
                    measured.rate,
                    measured.cpu_us,
                    measured.cassandra_us,
                );
                let side = &mut sides[k][i];
                side.rows_per_s.push(measured.rate);
                side.cpu_us_per_row.push(measured.cpu_us);
                side.cassandra_us_per_row.push(measured.cassandra_us);
                if let Some(rss) = measured.rss {
                    side.peak_rss_mib.push(rss);
                }
                session
                    .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", keyspace(kind)), ())
                    .await?;
            }
        }
    }
    leftovers
        .remove(
            &args.services.kafka.client_config(&[], &[])?,
            Some(&session),
        )
        .await;

    println!(
        "consumer bench: means over {} round(s) (min–max, ±half the range):",
        args.work.rounds
    );
    for (i, n) in args.in_flight.iter().enumerate() {
        for (k, kind) in kinds.iter().enumerate() {
            let side = &sides[k][i];
            let rss = if *kind == Kind::Pipeline {
                format!(", peak RSS {} MiB", side.peak_rss_mib.describe(0))
            } else {
                " (bench process)".to_string()
            };
            println!(
                "consumer bench: {n:>3} in flight: {:<8} {} rows/s, {} µs CPU/row, Cassandra {} µs CPU/row{rss}",
                kind.name(),
                side.rows_per_s.describe(0),
                side.cpu_us_per_row.describe(1),
                side.cassandra_us_per_row.describe(1),
            );
        }
    }
    // Each side at its own best concurrency (by rows/s): its index in --in-flight.
    let best_at: Vec<usize> = sides
        .iter()
        .map(|by_n| {
            (0..by_n.len())
                .max_by(|&a, &b| {
                    by_n[a]
                        .rows_per_s
                        .mean()
                        .total_cmp(&by_n[b].rows_per_s.mean())
                })
                .unwrap_or(0)
        })
        .collect();
    let best: Vec<&Side> = best_at.iter().zip(&sides).map(|(&i, s)| &s[i]).collect();
    println!(
        "consumer bench: best: {}",
        kinds
            .iter()
            .zip(&best_at)
            .map(|(kind, &i)| format!("{} at {} in flight", kind.name(), args.in_flight[i]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (pipeline, bare) = (best[0], best[1]);
    let batched = best.get(2).copied();
    // The goals: without batches, close to the driver's own loop; with them, well under it
    // (one request carries several rows) and close to a loop that batches the same way.
    let (rate_goal, cpu_goal) = if batched.is_some() {
        (">= 1.30", "<= 0.60")
    } else {
        (">= 0.90", "<= 1.25")
    };
    figures::report(
        "consumer rows/s",
        ("pipeline", &pipeline.rows_per_s),
        ("bare", &bare.rows_per_s),
        "rows/s",
        0,
        rate_goal,
    );
    println!(
        "consumer peak RSS: {} MiB catching up {} records (goal < 64)",
        pipeline.peak_rss_mib.describe(0),
        args.work.records
    );
    // The headline: what a row costs next to the driver's own loop, at the best concurrencies.
    figures::report(
        "consumer CPU/row",
        ("pipeline", &pipeline.cpu_us_per_row),
        ("bare", &bare.cpu_us_per_row),
        "µs",
        1,
        cpu_goal,
    );
    if let Some(batched) = batched {
        figures::report(
            "consumer CPU/row vs batching loop",
            ("pipeline", &pipeline.cpu_us_per_row),
            ("batched", &batched.cpu_us_per_row),
            "µs",
            1,
            "<= 1.15",
        );
        if cassandra_cpu.measured() {
            figures::report(
                "Cassandra CPU/row",
                ("batched", &batched.cassandra_us_per_row),
                ("bare", &bare.cassandra_us_per_row),
                "µs",
                1,
                "< 1.00",
            );
        }
    }
    if cassandra_cpu.measured() {
        figures::report(
            "Cassandra CPU/row under the consumer",
            ("pipeline", &pipeline.cassandra_us_per_row),
            ("bare", &bare.cassandra_us_per_row),
            "µs",
            1,
            "< 1.00 with batches",
        );
    }
    // About what no consumer of these records goes under on this machine: the loop it is
    // held against (batching as it does, when it does) plus reading each record from Kafka
    // and decoding and transforming it (each measured alone, before the rounds). The gap
    // between this and the pipeline is our own bookkeeping. The floor adds three measurements,
    // each with its own noise, so a pipeline close to it can come out under it.
    let (floor_name, floor_side) = match batched {
        Some(b) => ("batching loop", b),
        None => ("bare loop", bare),
    };
    let loop_us = floor_side.cpu_us_per_row.mean();
    let PerRecord { read_us, decode_us } = per_record;
    let floor = loop_us + read_us + decode_us;
    let pipeline_us = pipeline.cpu_us_per_row.mean();
    let gap = pipeline_us - floor;
    let gap = if gap >= 0.0 {
        format!("{gap:.1} µs above it (the pipeline's own bookkeeping)")
    } else {
        format!(
            "{:.1} µs under it (the floor adds three measurements, each with its spread)",
            -gap
        )
    };
    println!(
        "consumer CPU/row floor: {floor_name} {loop_us:.1} + Kafka read {read_us:.1} + decode \
         and transform {decode_us:.1} = {floor:.1} µs; the pipeline's {pipeline_us:.1} µs is \
         {gap}, ratio {:.2} to the floor",
        pipeline_us / floor,
    );
    Ok(())
}

/// Puts the users on the topic as the producer would (registry-framed Avro); the topic is
/// created as `kafka`'s partitions/replication flags say.
pub async fn load(services: &Services, topic: &str, users: &[domain::User]) -> Result<()> {
    let (kafka, registry) = (&services.kafka, &services.registry);
    kafka.ensure_topics(&[topic]).await?;
    let mut config = kafka.client_config(&[], &[])?;
    config.set("linger.ms", "20");
    let mut publisher =
        Publisher::new(&config, registry.settings()?, &registry.shown_url(), topic)?;
    let schema_id = publisher
        .register_schema(&registry.client()?, Duration::from_secs(30))
        .await?;
    let records = Records::frame(users, schema_id);
    ensure!(records.unencodable.is_empty(), "{:?}", records.unencodable);
    for (key, value) in records.iter() {
        publisher.publish_encoded(key, value).await?;
    }
    let delivered = publisher.finish(Duration::from_secs(120)).await?;
    ensure!(
        delivered.delivered as usize == users.len(),
        "load lost records: {delivered:?}"
    );
    Ok(())
}

/// One run of the consumer binary.
struct Run<'a> {
    bin: &'a std::path::Path,
    topic: &'a str,
    group: &'a str,
    keyspace: &'a str,
    max_in_flight: usize,
    batching: &'a Batching,
}

/// The consumer binary catching up the topic from the start, as a fresh group: rows/s,
/// CPU µs per row (its own and Cassandra's) and peak RSS, from its first record to its last
/// row written. Connecting and joining the group come before the first record, so they are
/// not counted.
async fn consume(args: &Args, run: &Run<'_>, cassandra_cpu: &CassandraCpu) -> Result<Measured> {
    let addr = process::free_addr()?;
    let mut command = Command::new(run.bin);
    command
        .args(["--topic", run.topic])
        .args(["--dlq-topic", &format!("{}.dlq", run.topic)])
        .args(["--group-id", run.group, "--keyspace", run.keyspace])
        .args(["--max-in-flight", &run.max_in_flight.to_string()])
        .args(["--batch-max-rows", &run.batching.max_rows.to_string()])
        .args(["--batch-max-bytes", &run.batching.max_bytes.to_string()])
        .args([
            "--http-addr",
            &addr.to_string(),
            "--progress-interval",
            "60s",
        ])
        .env("RUST_LOG", "warn");
    // Every setting the bench and its bare loops run with, flags included.
    args.services.pass_to_consumer(command.as_std_mut());
    let mut child = Watched::spawn(command)?;
    let target = args.work.records as u64;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, f64, f64)> = None;
    let (elapsed, cpu, cassandra, requests) = loop {
        if let Some(status) = child.exited()? {
            bail!("the consumer exited during the bench: {status}");
        }
        let text = bed::scrape(&client, addr).await;
        if first.is_none() && bed::sample_sum(&text, "consumer_records_consumed_total") > 0 {
            first = Some((
                Instant::now(),
                child.now().1,
                cassandra_cpu.seconds().await?,
            ));
        }
        if bed::sample_sum(&text, "consumer_rows_written_total") >= target {
            let (since, cpu, cassandra) =
                first.context("rows written before any record was consumed")?;
            break (
                since.elapsed(),
                child.now().1 - cpu,
                cassandra_cpu.seconds().await? - cassandra,
                bed::sample_sum(&text, "consumer_write_requests_total"),
            );
        }
        ensure!(
            Instant::now() < deadline,
            "the consumer did not write {target} rows in 600s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.stop().await?;
    let finished = child.wait(Duration::from_secs(60)).await?;
    ensure!(finished.success, "the consumer failed: {}", finished.stdout);
    Ok(Measured {
        rate: target as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu * 1e6 / target as f64,
        cassandra_us: cassandra * 1e6 / target as f64,
        rss: Some(finished.peak_rss_mib),
        rows_per_request: Some(target as f64 / requests.max(1) as f64),
    })
}

/// Cassandra's CPU seconds so far, summed over its nodes, from their exporters'
/// process_cpu_seconds_total (the JVM's own count).
struct CassandraCpu {
    urls: Vec<String>,
    client: reqwest::Client,
}

impl CassandraCpu {
    /// Checks every URL answers with the figure now, not after a run.
    async fn new(urls: &[String]) -> Result<CassandraCpu> {
        let cpu = CassandraCpu {
            urls: urls.iter().filter(|u| !u.is_empty()).cloned().collect(),
            client: reqwest::Client::new(),
        };
        cpu.seconds().await?;
        Ok(cpu)
    }

    fn measured(&self) -> bool {
        !self.urls.is_empty()
    }

    fn describe(&self) -> String {
        if self.measured() {
            self.urls.join(", ")
        } else {
            "nowhere (--cassandra-metrics is empty)".to_string()
        }
    }

    async fn seconds(&self) -> Result<f64> {
        let mut total = 0.0;
        for url in &self.urls {
            let fix = "set --cassandra-metrics (BENCH_CASSANDRA_METRICS) to the URLs of \
                       Cassandra's JMX exporter (port 7073 of each node), or to \"\" not to \
                       measure Cassandra's CPU";
            let text = self
                .client
                .get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .with_context(|| format!("reading Cassandra's CPU from {url}: {fix}"))?
                .text()
                .await?;
            ensure!(
                text.lines()
                    .any(|l| l.starts_with("process_cpu_seconds_total")),
                "{url} has no process_cpu_seconds_total: is it Cassandra's JMX exporter? {fix}"
            );
            total += bed::sample_total(&text, "process_cpu_seconds_total");
        }
        Ok(total)
    }
}

/// The driver alone, batching as the consumer's writer does: rows taken as slots free up (at
/// most `max_in_flight` rows written at once, the consumer's back-pressure), grouped by their
/// replicas within `batching`'s limits, each group one request through the consumer's own
/// sink (its schema, statement and batch settings). Returns rows/s and this process's CPU µs
/// per row.
pub async fn batched_inserts(
    cassandra: &CassandraArgs,
    users: &[domain::User],
    max_in_flight: usize,
    batching: &Batching,
) -> Result<(f64, f64)> {
    let sink = Sink::connect(cassandra).await?;
    let rows = timed_rows(users)?;
    let cpu = process::own_cpu_seconds();
    let started = Instant::now();
    let (mut next, mut free) = (0, max_in_flight);
    let mut in_flight = FuturesUnordered::new();
    loop {
        if free > 0 && next < rows.len() {
            let ready = &rows[next..rows.len().min(next + free)];
            (next, free) = (next + ready.len(), free - ready.len());
            let cluster = sink.cluster();
            for group in group(
                ready,
                batching,
                |row| Some(*row),
                |row| sink.replicas(&cluster, row),
            ) {
                let sink = &sink;
                in_flight.push(async move {
                    match group.as_slice() {
                        [row] => sink.write(row).await,
                        rows => sink.write_batch(rows).await,
                    }
                    .map(|()| group.len())
                });
            }
        }
        match in_flight.next().await {
            Some(written) => free += written.map_err(|f| anyhow::anyhow!("{}", f.message))?,
            None => break,
        }
    }
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (process::own_cpu_seconds() - cpu) * 1e6 / rows.len() as f64;
    Ok((rate, cpu_us))
}

/// Each user's row at its own write time, bound as the consumer binds it.
fn timed_rows(users: &[domain::User]) -> Result<Vec<TimedRow>> {
    Ok(users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            domain::to_row(u.clone(), 0).map(|row| TimedRow {
                row,
                write_time: i as i64,
            })
        })
        .collect::<Result<_, _>>()?)
}

/// scylla alone: the same rows, the same prepared INSERT, `max_in_flight` at once, through a
/// session and a statement set up as the consumer sets up its own (`cassandra`'s settings,
/// the consumer's keyspace and its replication): what the driver costs as the pipeline
/// drives it. `bench replicas` measures its bare loop with it too.
pub async fn bare_inserts(
    cassandra: &CassandraArgs,
    keyspace: &str,
    users: &[domain::User],
    max_in_flight: usize,
) -> Result<(f64, f64)> {
    let cassandra = CassandraArgs {
        keyspace: keyspace.to_string(),
        ..cassandra.clone()
    };
    let session = cassandra.connect().await?;
    for statement in schema_statements(keyspace, &cassandra.replication) {
        session.query_unpaged(statement, ()).await?;
    }
    session.await_schema_agreement().await?;
    let mut insert = session.prepare(UserRow::insert_cql(keyspace)).await?;
    cassandra.configure_insert(&mut insert);
    insert_loop(&session, &insert, users, max_in_flight).await
}

/// The bare loop both benches compare against: the rows of `users` through a
/// prepared INSERT, `max_in_flight` at once, as fast as Cassandra takes them.
/// Returns rows/s and this process's CPU µs per row while it ran.
pub async fn insert_loop(
    session: &scylla::client::session::Session,
    insert: &scylla::statement::prepared::PreparedStatement,
    users: &[domain::User],
    max_in_flight: usize,
) -> Result<(f64, f64)> {
    let rows = timed_rows(users)?;
    let cpu = process::own_cpu_seconds();
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for row in &rows {
        if in_flight.len() >= max_in_flight {
            in_flight.next().await.transpose()?;
        }
        in_flight.push(session.execute_unpaged(insert, row));
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (process::own_cpu_seconds() - cpu) * 1e6 / rows.len() as f64;
    Ok((rate, cpu_us))
}

/// What every record costs a consumer of this topic before its row is written, each part
/// measured alone: reading it from Kafka, and registry-framed bytes -> row as the poll loop
/// does it once the writer schema is known (`Decoder::known_row`).
struct PerRecord {
    /// CPU µs per record of a bare librdkafka read loop, payloads copied out as the pipeline
    /// copies them.
    read_us: f64,
    /// CPU µs per record of decoding and transforming.
    decode_us: f64,
}

async fn per_record_cost(args: &Args, topic: &str, group: &str) -> Result<PerRecord> {
    let records = args.work.records.min(50_000);
    let (messages, read_us) = {
        let consumer: rdkafka::consumer::BaseConsumer = args
            .services
            .kafka
            .client_config(&[], &[])?
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .create()?;
        rdkafka::consumer::Consumer::subscribe(&consumer, &[topic])?;
        let mut out = Vec::with_capacity(records);
        // From the first record on: joining the group is not a record's cost.
        let mut cpu = None;
        while out.len() < records {
            if let Some(m) = consumer.poll(Duration::from_secs(5)) {
                cpu.get_or_insert_with(process::own_cpu_seconds);
                out.push(rdkafka::Message::payload(&m?).unwrap_or_default().to_vec());
            }
        }
        let cpu = cpu.unwrap_or_else(process::own_cpu_seconds);
        let read_us = (process::own_cpu_seconds() - cpu) * 1e6 / records as f64;
        (out, read_us)
    };
    let decoder = consumer::decode::Decoder::new(
        args.services.registry.settings()?,
        args.services.registry.client()?,
        consumer::decode::DecodeSettings {
            subject: format!("{topic}-value"),
            unknown_schema_retry: Duration::ZERO,
        },
    );
    // The first record fetches the writer schema from the registry: not part of the cost.
    decoder
        .to_row(messages.first().map(Vec::as_slice), 0)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let cpu = process::own_cpu_seconds();
    let started = Instant::now();
    for payload in &messages {
        decoder
            .known_row(Some(payload), 0)
            .ok_or_else(|| anyhow::anyhow!("a record of {topic} does not decode"))?;
    }
    let decode_us = (process::own_cpu_seconds() - cpu) * 1e6 / records as f64;
    println!(
        "consumer bench: alone, per record: Kafka read {read_us:.1} µs CPU; decode + transform \
         {:.0} rows/s, {decode_us:.1} µs CPU",
        records as f64 / started.elapsed().as_secs_f64()
    );
    Ok(PerRecord { read_us, decode_us })
}
