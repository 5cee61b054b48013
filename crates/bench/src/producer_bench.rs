use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::kafka::KafkaArgs;
use common::registry::RegistryArgs;
use domain::ApiPage;
use producer::publish::Publisher;
use producer::run::{publish_pages, Pace};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    work: crate::Workload,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn producer(kafka: &KafkaArgs) -> Result<FutureProducer> {
    // The producer binary's settings (crates/producer/src/run.rs).
    Ok(kafka
        .client_config(
            &[("compression.type", "lz4"), ("linger.ms", "20")],
            &common::kafka::producer_guarantees(),
        )?
        .create()?)
}

pub async fn run(args: Args) -> Result<()> {
    let pages = crate::users::pages(args.work.records, 5000);
    println!(
        "producer bench: {} users in {} pages, rss {:.0} MiB",
        args.work.records,
        pages.len(),
        crate::rss_mib()
    );
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let probe_topic = format!("bench_probe_{stamp}");
    args.kafka.ensure_topics(&[&probe_topic]).await?;
    stage_costs(&args, &pages, &probe_topic).await?;

    // The bare loop's input: the same users, already framed, as the registry would frame them.
    let mut registrar = Publisher::new(
        producer(&args.kafka)?,
        args.registry.settings()?,
        &args.registry.url,
        &probe_topic,
    );
    let schema_id = registrar
        .register_schema(&args.registry.client()?, Duration::from_secs(30))
        .await?;
    let mut framed = Vec::with_capacity(args.work.records);
    for body in &pages {
        for user in ApiPage::parse(body)?.users {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(&schema_id.to_be_bytes());
            bytes.extend(domain::avro::to_datum(&user)?);
            framed.push((user.login.uuid.into_bytes(), bytes));
        }
    }

    // The broker's speed drifts (segment rolls, page cache): alternate the two, average the rounds.
    let (mut full, mut bare) = (0.0, 0.0);
    for round in 1..=args.work.rounds {
        let full_topic = format!("bench_full_{stamp}_{round}");
        let bare_topic = format!("bench_bare_{stamp}_{round}");
        args.kafka
            .ensure_topics(&[&full_topic, &bare_topic])
            .await?;
        let f = full_path(&args, &pages, &full_topic).await?;
        let b = bare_publish(&producer(&args.kafka)?, &bare_topic, &framed).await?;
        println!("producer bench: round {round}: pipeline {f:.0} users/s, bare {b:.0} users/s, ratio {:.2}, rss {:.0} MiB", f / b, crate::rss_mib());
        (full, bare) = (
            full + f / args.work.rounds as f64,
            bare + b / args.work.rounds as f64,
        );
    }
    crate::report("producer users/s", full, bare, "users/s");
    Ok(())
}

/// The producer's own loop: pages parsed ahead on another thread, each user
/// encoded through the registry and published here, every delivery awaited.
async fn full_path(args: &Args, pages: &[Vec<u8>], topic: &str) -> Result<f64> {
    let mut publisher = Publisher::new(
        producer(&args.kafka)?,
        args.registry.settings()?,
        &args.registry.url,
        topic,
    );
    publisher
        .register_schema(&args.registry.client()?, Duration::from_secs(30))
        .await?;
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let bodies = pages.to_vec();
    std::thread::spawn(move || {
        for body in bodies {
            if tx
                .blocking_send(ApiPage::parse(&body).map_err(|e| e.to_string()))
                .is_err()
            {
                break;
            }
        }
    });
    let pace = Pace {
        rate: 0.0,
        progress_interval: Duration::from_secs(3600),
    };
    let (_, failure) = publish_pages(&mut publisher, rx, pace, std::future::pending()).await;
    ensure!(failure.is_none(), "full run stopped: {failure:?}");
    let delivered = publisher.finish(Duration::from_secs(120)).await?;
    ensure!(
        delivered.delivered as usize == args.work.records && delivered.failed() == 0,
        "full run lost records: {delivered:?}"
    );
    Ok(delivered.delivered as f64 / started.elapsed().as_secs_f64())
}

/// rdkafka alone: enqueue every record, wait for room when the queue is full,
/// then await every delivery report. Returns records/s.
async fn bare_publish(
    producer: &FutureProducer,
    topic: &str,
    records: &[(Vec<u8>, Vec<u8>)],
) -> Result<f64> {
    let started = Instant::now();
    let mut reports = Vec::with_capacity(records.len());
    for (key, payload) in records {
        loop {
            match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
                Ok(report) => {
                    reports.push(report);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    let delivered = futures::future::join_all(reports)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(_))))
        .count();
    ensure!(
        delivered == records.len(),
        "bare run lost records: {delivered} of {}",
        records.len()
    );
    Ok(delivered as f64 / started.elapsed().as_secs_f64())
}

/// Where the full path's time goes: parsing alone, then encoding alone.
async fn stage_costs(args: &Args, pages: &[Vec<u8>], topic: &str) -> Result<()> {
    let started = Instant::now();
    let users: Vec<domain::User> = pages
        .iter()
        .map(|p| ApiPage::parse(p).map(|p| p.users))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let parse = users.len() as f64 / started.elapsed().as_secs_f64();
    let encoder =
        schema_registry_converter::async_impl::avro::AvroEncoder::new(args.registry.settings()?);
    // Register once with the schema, then encode as the publisher does (subject only).
    encoder
        .encode_struct(&users[0], &producer::publish::value_strategy(topic))
        .await?;
    let strategy =
        schema_registry_converter::schema_registry_common::SubjectNameStrategy::TopicNameStrategy(
            topic.to_string(),
            false,
        );
    let started = Instant::now();
    for user in &users {
        encoder.encode_struct(user, &strategy).await?;
    }
    let encode = users.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "producer bench: stages alone: parse {parse:.0} users/s, Avro encode {encode:.0} users/s"
    );
    Ok(())
}
