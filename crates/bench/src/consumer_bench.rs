use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::cassandra::CassandraArgs;
use domain::row::schema_statements;
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
    /// Concurrent writes to sweep, for the consumer (--max-in-flight) and the bare loop alike.
    #[arg(
        long,
        env = "BENCH_IN_FLIGHT",
        value_delimiter = ',',
        default_value = "64,128,256,512"
    )]
    in_flight: Vec<usize>,
    /// Directory of the consumer binary (default: beside this one).
    #[arg(long, env = "BENCH_BIN_DIR")]
    bin_dir: Option<std::path::PathBuf>,
    /// The brokers, the registry and Cassandra, for the bench's own clients and for every
    /// binary it starts.
    #[command(flatten)]
    services: Services,
}

/// One side's figures at one concurrency, over the rounds.
#[derive(Debug, Default)]
struct Side {
    rows_per_s: Series,
    cpu_us_per_row: Series,
    peak_rss_mib: Series,
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
    let users: Vec<domain::User> = crate::users::pages(args.work.records, 5000)
        .iter()
        .map(|p| ApiPage::parse(p).map(|p| p.users))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    load(&args.services, &topic, &users).await?;
    let decode_us = decode_cost(&args, &topic, &probe_group).await?;
    println!(
        "consumer bench: {} records on {topic}; in flight {:?}; {} round(s)",
        users.len(),
        args.in_flight,
        args.work.rounds
    );
    let session = args.services.cassandra.connect().await?;

    // Cassandra's JIT and memtables warm up on the first writes: keep that out of both figures.
    let warm = users.len().min(20_000);
    bare_inserts(
        &args.services.cassandra,
        &warm_keyspace,
        &users[..warm],
        256,
    )
    .await?;

    let mut pipeline: Vec<Side> = args.in_flight.iter().map(|_| Side::default()).collect();
    let mut bare: Vec<Side> = args.in_flight.iter().map(|_| Side::default()).collect();
    for round in 1..=args.work.rounds {
        for (i, &n) in args.in_flight.iter().enumerate() {
            let keyspace = |side: &str| format!("bench_{stamp}_{side}_{round}_{n}");
            // Cassandra's speed drifts (flushes, compaction, GC): the side that goes
            // first alternates between rounds.
            for side in if round % 2 == 1 {
                ["pipeline", "bare"]
            } else {
                ["bare", "pipeline"]
            } {
                let (rate, cpu_us, rss) = if side == "pipeline" {
                    let group = format!("{topic}_writer_{round}_{n}");
                    leftovers.group(&group);
                    let keyspace = keyspace(side);
                    let (rate, cpu_us, rss) =
                        consume(&args, &consumer_bin, &topic, &group, &keyspace, n).await?;
                    pipeline[i].peak_rss_mib.push(rss);
                    (rate, cpu_us, format!(", peak RSS {rss:.0} MiB"))
                } else {
                    // The bench holds every user in memory: its own RSS says nothing.
                    let (rate, cpu_us) =
                        bare_inserts(&args.services.cassandra, &keyspace(side), &users, n).await?;
                    (rate, cpu_us, String::new())
                };
                println!(
                    "consumer bench: round {round}, {n:>3} in flight: {side:<8} {rate:>7.0} rows/s, \
                     CPU {cpu_us:>5.1} µs/row{rss}"
                );
                let into = if side == "pipeline" {
                    &mut pipeline[i]
                } else {
                    &mut bare[i]
                };
                into.rows_per_s.push(rate);
                into.cpu_us_per_row.push(cpu_us);
                session
                    .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", keyspace(side)), ())
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
        println!(
            "consumer bench: {n:>3} in flight: pipeline {} rows/s, {} µs CPU/row, peak RSS {} MiB",
            pipeline[i].rows_per_s.describe(0),
            pipeline[i].cpu_us_per_row.describe(1),
            pipeline[i].peak_rss_mib.describe(0),
        );
        println!(
            "consumer bench: {n:>3} in flight: bare     {} rows/s, {} µs CPU/row (bench process)",
            bare[i].rows_per_s.describe(0),
            bare[i].cpu_us_per_row.describe(1),
        );
    }
    let best = |sides: &[Side]| {
        (0..sides.len())
            .max_by(|&a, &b| {
                sides[a]
                    .rows_per_s
                    .mean()
                    .total_cmp(&sides[b].rows_per_s.mean())
            })
            .unwrap_or(0)
    };
    let (p, b) = (best(&pipeline), best(&bare));
    println!(
        "consumer bench: best: pipeline at {} in flight, bare loop at {} in flight",
        args.in_flight[p], args.in_flight[b]
    );
    figures::report(
        "consumer rows/s",
        &pipeline[p].rows_per_s,
        &bare[b].rows_per_s,
        "rows/s",
        0,
        ">= 0.90",
    );
    println!(
        "consumer peak RSS: {} MiB catching up {} records (goal < 64)",
        pipeline[p].peak_rss_mib.describe(0),
        args.work.records
    );
    // The headline: what a row costs above the driver's own loop, at the same concurrencies.
    figures::report(
        "consumer CPU/row",
        &pipeline[p].cpu_us_per_row,
        &bare[b].cpu_us_per_row,
        "µs",
        1,
        "<= 1.25",
    );
    // About what no consumer of these records goes under on this machine: the driver's own
    // cost plus decoding and transforming each record (measured alone, before the rounds).
    // The gap between this and the pipeline is the Kafka fetch and our own bookkeeping. The
    // floor adds two measurements with their own noise, so a pipeline close to it can come
    // out under it.
    let bare_us = bare[b].cpu_us_per_row.mean();
    let floor = bare_us + decode_us;
    let gap = pipeline[p].cpu_us_per_row.mean() - floor;
    let gap = if gap >= 0.0 {
        format!("{gap:.1} µs above it (the Kafka fetch and the bookkeeping)")
    } else {
        format!(
            "{:.1} µs under it (the floor adds two measurements, each with its spread)",
            -gap
        )
    };
    println!(
        "consumer CPU/row floor: bare loop {bare_us:.1} + decode and transform {decode_us:.1} = \
         {floor:.1} µs, ratio {:.2}; the pipeline's {:.1} µs is {gap}",
        floor / bare_us,
        pipeline[p].cpu_us_per_row.mean(),
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

/// The consumer binary catching up the topic from the start, as a fresh group: rows/s,
/// CPU µs per row and peak RSS, from its first record to its last row written. Connecting
/// and joining the group come before the first record, so they are not counted.
async fn consume(
    args: &Args,
    bin: &std::path::Path,
    topic: &str,
    group: &str,
    keyspace: &str,
    max_in_flight: usize,
) -> Result<(f64, f64, f64)> {
    let addr = process::free_addr()?;
    let mut command = Command::new(bin);
    command
        .args(["--topic", topic, "--dlq-topic", &format!("{topic}.dlq")])
        .args(["--group-id", group, "--keyspace", keyspace])
        .args(["--max-in-flight", &max_in_flight.to_string()])
        .args([
            "--http-addr",
            &addr.to_string(),
            "--progress-interval",
            "60s",
        ])
        .env("RUST_LOG", "warn");
    // Every setting the bench and its bare loop run with, flags included.
    args.services.pass_to_consumer(command.as_std_mut());
    let mut child = Watched::spawn(command)?;
    let target = args.work.records as u64;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, f64)> = None;
    let (elapsed, cpu) = loop {
        if let Some(status) = child.exited()? {
            bail!("the consumer exited during the bench: {status}");
        }
        let text = bed::scrape(&client, addr).await;
        if first.is_none() && bed::sample_sum(&text, "consumer_records_consumed_total") > 0 {
            first = Some((Instant::now(), child.now().1));
        }
        if bed::sample_sum(&text, "consumer_rows_written_total") >= target {
            let (since, cpu) = first.context("rows written before any record was consumed")?;
            break (since.elapsed(), child.now().1 - cpu);
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
    Ok((
        target as f64 / elapsed.as_secs_f64(),
        cpu * 1e6 / target as f64,
        finished.peak_rss_mib,
    ))
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
    // Each row at its own write time, bound as the consumer binds it.
    let rows: Vec<domain::row::TimedRow> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            domain::to_row(u.clone(), 0).map(|row| domain::row::TimedRow {
                row,
                write_time: i as i64,
            })
        })
        .collect::<Result<_, _>>()?;
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

/// The consumer's per-record CPU work alone: registry-framed bytes -> row, as its poll loop
/// does it once the writer schema is known (`Decoder::known_row`). Returns CPU µs per row.
async fn decode_cost(args: &Args, topic: &str, group: &str) -> Result<f64> {
    let records = args.work.records.min(50_000);
    let messages = {
        let consumer: rdkafka::consumer::BaseConsumer = args
            .services
            .kafka
            .client_config(&[], &[])?
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .create()?;
        rdkafka::consumer::Consumer::subscribe(&consumer, &[topic])?;
        let mut out = Vec::new();
        while out.len() < records {
            if let Some(m) = consumer.poll(Duration::from_secs(5)) {
                out.push(rdkafka::Message::payload(&m?).unwrap_or_default().to_vec());
            }
        }
        out
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
    let us_per_row = (process::own_cpu_seconds() - cpu) * 1e6 / records as f64;
    println!(
        "consumer bench: decode + transform alone: {:.0} rows/s, {us_per_row:.1} µs CPU/row",
        records as f64 / started.elapsed().as_secs_f64()
    );
    Ok(us_per_row)
}
