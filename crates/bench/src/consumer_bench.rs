use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use common::kafka::KafkaArgs;
use common::registry::RegistryArgs;
use consumer::metrics::Metrics;
use domain::row::schema_statements;
use domain::{ApiPage, UserRow};
use futures::stream::{FuturesUnordered, StreamExt};
use producer::publish::Publisher;
use rdkafka::producer::{FutureProducer, Producer};
use scylla::client::session_builder::SessionBuilder;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    work: crate::Workload,
    /// Concurrent writes, for the consumer and the bare loop alike.
    #[arg(long, env = "CONSUMER_MAX_IN_FLIGHT", default_value_t = 256)]
    max_in_flight: usize,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[arg(
        long,
        env = "CASSANDRA_CONTACT_POINTS",
        default_value = "localhost:9042"
    )]
    cassandra_contact_points: String,
}

pub async fn run(args: Args) -> Result<()> {
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = format!("bench_consumer_{stamp}");
    let users: Vec<domain::User> = crate::users::pages(args.work.records, 5000)
        .iter()
        .map(|p| ApiPage::parse(p).map(|p| p.users))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    load(&args.kafka, &args.registry, &topic, &users).await?;
    decode_cost(&args, &topic).await?;
    println!(
        "consumer bench: {} records on {topic}, rss {:.0} MiB",
        users.len(),
        crate::rss_mib()
    );

    // Cassandra's JIT and memtables warm up on the first writes: keep that out of both figures.
    let warm = users.len().min(20_000);
    bare_inserts(&args, &format!("bench_warm_{stamp}"), &users[..warm]).await?;
    // Cassandra's speed drifts (flushes, compaction, GC): alternate the two, average the rounds.
    let (mut pipeline, mut bare) = (0.0, 0.0);
    for round in 1..=args.work.rounds {
        let p = consume(
            &args,
            &topic,
            &format!("{topic}_writer_{round}"),
            &format!("bench_{stamp}_{round}"),
        )
        .await?;
        let b = bare_inserts(&args, &format!("bench_bare_{stamp}_{round}"), &users).await?;
        println!("consumer bench: round {round}: pipeline {p:.0} rows/s, bare {b:.0} rows/s, ratio {:.2}", p / b);
        (pipeline, bare) = (
            pipeline + p / args.work.rounds as f64,
            bare + b / args.work.rounds as f64,
        );
    }
    crate::report("consumer rows/s", pipeline, bare, "rows/s");
    Ok(())
}

/// Puts the users on the topic as the producer would (registry-framed Avro); the topic is
/// created as `kafka`'s partitions/replication flags say.
pub async fn load(
    kafka: &KafkaArgs,
    registry: &RegistryArgs,
    topic: &str,
    users: &[domain::User],
) -> Result<()> {
    kafka.ensure_topics(&[topic]).await?;
    let producer: FutureProducer = kafka
        .client_config(&[], &[])?
        .set("linger.ms", "20")
        .create()?;
    let mut publisher =
        Publisher::new(producer.clone(), registry.settings()?, &registry.url, topic);
    publisher
        .register_schema(&registry.client()?, Duration::from_secs(30))
        .await?;
    for user in users {
        publisher.publish(user).await?;
    }
    let delivered = publisher.finish(Duration::from_secs(120)).await?;
    ensure!(
        delivered.delivered as usize == users.len(),
        "load lost records: {delivered:?}"
    );
    producer.flush(Duration::from_secs(10))?;
    Ok(())
}

/// The real consumer, in-process; rows/s from its first record to its last row.
async fn consume(args: &Args, topic: &str, group: &str, keyspace: &str) -> Result<f64> {
    let consumer_args = consumer::Args::parse_from([
        "consumer",
        "--bootstrap-servers",
        &args.kafka.bootstrap_servers,
        "--schema-registry-url",
        &args.registry.url,
        "--cassandra-contact-points",
        &args.cassandra_contact_points,
        "--topic",
        topic,
        "--dlq-topic",
        &format!("{topic}.dlq"),
        "--group-id",
        group,
        "--keyspace",
        keyspace,
        "--max-in-flight",
        &args.max_in_flight.to_string(),
        "--exit-when-idle",
        "3s",
        "--http-addr",
        "127.0.0.1:0",
        "--progress-interval",
        "5s",
    ]);
    let metrics = Arc::new(Metrics::new());
    let target = args.work.records as u64;
    let watcher = tokio::spawn({
        let metrics = metrics.clone();
        async move {
            let (mut first, mut rss) = (None, Vec::new());
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut last_sample = Instant::now();
            loop {
                tick.tick().await;
                if first.is_none() && metrics.consumed.load(Relaxed) > 0 {
                    first = Some(Instant::now());
                }
                if last_sample.elapsed() >= Duration::from_secs(2) {
                    rss.push(crate::rss_mib());
                    last_sample = Instant::now();
                }
                if metrics.written.load(Relaxed) >= target {
                    return (first.unwrap_or_else(Instant::now).elapsed(), rss);
                }
            }
        }
    });
    let summary = consumer::run(consumer_args, metrics, std::future::pending()).await?;
    ensure!(
        summary.written == target,
        "consumer wrote {} of {target}",
        summary.written
    );
    let (elapsed, rss) = watcher.await?;
    let rss: Vec<String> = rss.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "consumer bench: consumer wrote {target} rows in {:.1}s; rss every 2s (MiB): {}",
        elapsed.as_secs_f64(),
        rss.join(" ")
    );
    Ok(target as f64 / elapsed.as_secs_f64())
}

/// scylla alone: the same rows, the same prepared INSERT, the same concurrency.
async fn bare_inserts(args: &Args, keyspace: &str, users: &[domain::User]) -> Result<f64> {
    let session = SessionBuilder::new()
        .known_nodes(args.cassandra_contact_points.split(','))
        .build()
        .await
        .context("connecting to Cassandra")?;
    for statement in schema_statements(
        keyspace,
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    ) {
        session.query_unpaged(statement, ()).await?;
    }
    session.await_schema_agreement().await?;
    let insert = session.prepare(UserRow::insert_cql(keyspace)).await?;
    insert_loop(
        &session,
        &insert,
        users,
        args.max_in_flight,
        "consumer bench",
    )
    .await
}

/// The bare loop both benches compare against: the rows of `users` through a
/// prepared INSERT, `max_in_flight` at once, as fast as Cassandra takes them.
/// Returns rows/s.
pub async fn insert_loop(
    session: &scylla::client::session::Session,
    insert: &scylla::statement::prepared::PreparedStatement,
    users: &[domain::User],
    max_in_flight: usize,
    label: &str,
) -> Result<f64> {
    let rows: Vec<UserRow> = users
        .iter()
        .map(|u| domain::to_row(u, 0))
        .collect::<Result<_, _>>()?;
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
    let elapsed = started.elapsed();
    println!(
        "{label}: bare scylla loop wrote {} rows in {:.1}s",
        rows.len(),
        elapsed.as_secs_f64()
    );
    Ok(rows.len() as f64 / elapsed.as_secs_f64())
}

/// The consumer's per-record CPU work alone: registry-framed bytes -> row.
async fn decode_cost(args: &Args, topic: &str) -> Result<()> {
    let records = args.work.records.min(50_000);
    let messages = {
        let consumer: rdkafka::consumer::BaseConsumer = args
            .kafka
            .client_config(&[], &[])?
            .set("group.id", format!("{topic}_probe"))
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
    let decoder =
        consumer::decode::Decoder::new(args.registry.settings()?, args.registry.client()?);
    let started = Instant::now();
    for payload in &messages {
        decoder
            .to_row(Some(payload), 0)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    println!(
        "consumer bench: decode + transform alone: {:.0} rows/s",
        records as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
