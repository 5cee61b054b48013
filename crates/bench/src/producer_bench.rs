use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::kafka::KafkaArgs;
use common::registry::RegistryArgs;
use domain::ApiPage;
use producer::frame::{FramedPage, Records};
use producer::publish::Publisher;
use producer::run::{publish_pages, Pace};
use rdkafka::ClientConfig;
use tokio::process::Command;

use crate::child::PassTo;
use crate::figures::{self, Series};
use crate::leftovers::Leftovers;
use crate::process::{self, Watched};
use crate::users::Pages;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    work: crate::Workload,
    /// Directory of the producer binary (default: beside this one).
    #[arg(long, env = "BENCH_BIN_DIR")]
    bin_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn producer(kafka: &KafkaArgs) -> Result<ClientConfig> {
    // The producer binary's settings (crates/producer/src/run.rs).
    kafka.client_config(
        &[("compression.type", "lz4"), ("linger.ms", "5")],
        &common::kafka::producer_guarantees(),
    )
}

pub async fn run(args: Args) -> Result<()> {
    // The pipeline measured in this process keeps freed memory as the producer binary does.
    common::memory::keep_freed_memory();
    let producer_bin = process::binary("producer", args.bin_dir.as_deref())?;
    // Shared with each round's parsing thread, not copied for it.
    let pages = Arc::new(crate::users::pages(args.work.records, 5000));
    println!(
        "producer bench: {} users in {} pages, {} round(s)",
        args.work.records,
        pages.len(),
        args.work.rounds
    );
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let probe_topic = format!("bench_probe_{stamp}");
    let mut leftovers = Leftovers::default();
    leftovers.topic(&probe_topic);
    args.kafka.ensure_topics(&[&probe_topic]).await?;
    stage_costs(&pages)?;

    // The bare loop's input: the same users, already framed, as the registry would frame them.
    let mut registrar = Publisher::new(
        &producer(&args.kafka)?,
        args.registry.settings()?,
        &args.registry.shown_url(),
        &probe_topic,
    )?;
    let schema_id = registrar
        .register_schema(&args.registry.client()?, Duration::from_secs(30))
        .await?;
    let framed = pages
        .iter()
        .map(|body| {
            Ok(Records::frame(
                &ApiPage::parse_borrowed(body)?.users,
                schema_id,
            ))
        })
        .collect::<Result<Vec<Records>>>()?;
    // The binary asks for pages of its default size (--batch-size 500), as users run it.
    let api_pages = crate::users::pages(args.work.records.min(20_000), 500);
    let api = crate::users::serve(Pages::Cycle(Arc::new(api_pages))).await?;

    let (mut full, mut bare, mut binary) = (Side::default(), Side::default(), Side::default());
    for round in 1..=args.work.rounds {
        // The broker's speed drifts (segment rolls, page cache, GC): the side that goes
        // first alternates between rounds.
        for side in if round % 2 == 1 {
            ["pipeline", "bare"]
        } else {
            ["bare", "pipeline"]
        } {
            let topic = format!("bench_{side}_{stamp}_{round}");
            leftovers.topic(&topic);
            args.kafka.ensure_topics(&[&topic]).await?;
            let publisher = warmed(&args, &topic).await?;
            let cpu = process::own_cpu_seconds();
            let (rate, into) = if side == "pipeline" {
                (full_path(&args, publisher, pages.clone()).await?, &mut full)
            } else {
                (bare_publish(publisher, &framed).await?, &mut bare)
            };
            let cpu_us = (process::own_cpu_seconds() - cpu) * 1e6 / args.work.records as f64;
            println!(
                "producer bench: round {round}: {side:<8} {rate:>7.0} users/s, CPU {cpu_us:>5.1} µs/user (bench process)"
            );
            into.rate.push(rate);
            into.cpu_us.push(cpu_us);
        }
        let topic = format!("bench_bin_{stamp}_{round}");
        leftovers.topic(&topic);
        let (rate, cpu_us, rss) = binary_run(&args, &producer_bin, api, &topic).await?;
        println!(
            "producer bench: round {round}: producer binary, local API: {rate:>7.0} users/s, \
             CPU {cpu_us:>5.1} µs/user, peak RSS {rss:.1} MiB"
        );
        binary.rate.push(rate);
        binary.cpu_us.push(cpu_us);
        binary.rss.push(rss);
    }
    leftovers
        .remove(&args.kafka.client_config(&[], &[])?, None)
        .await;
    println!(
        "producer bench: means over {} round(s) (min–max, ±half the range):",
        args.work.rounds
    );
    // The bare loop only sends pre-encoded bytes: the ratio is what parsing and encoding
    // cost, a figure, not a goal.
    figures::report(
        "producer users/s",
        ("pipeline", &full.rate),
        ("bare", &bare.rate),
        "users/s",
        0,
        "none: send-only",
    );
    println!(
        "producer binary: {} users/s, {} µs CPU/user, peak RSS {} MiB (goal < 64)",
        binary.rate.describe(0),
        binary.cpu_us.describe(1),
        binary.rss.describe(1)
    );
    // The headline: what a user costs (fetched JSON → parsed → Avro → sent), and how many.
    println!(
        "producer CPU/user: {} µs (goal <= 6; sending alone {} µs), {} users/s",
        full.cpu_us.describe(1),
        bare.cpu_us.describe(1),
        full.rate.describe(0)
    );
    Ok(())
}

/// One side's figures over the rounds.
#[derive(Debug, Default)]
struct Side {
    rate: Series,
    cpu_us: Series,
    rss: Series,
}

/// A publisher with one record delivered, so its connections and metadata are in place
/// before a timer starts. Its books count that record.
async fn warmed(args: &Args, topic: &str) -> Result<Publisher> {
    let mut publisher = Publisher::new(
        &producer(&args.kafka)?,
        args.registry.settings()?,
        &args.registry.shown_url(),
        topic,
    )?;
    publisher.publish_encoded(b"warm-up", b"warm-up").await?;
    publisher.settle().await;
    ensure!(
        publisher.stats().delivered == 1,
        "the warm-up record was not delivered: {:?}",
        publisher.stats()
    );
    Ok(publisher)
}

/// The producer's own loop: pages parsed and framed ahead on another thread, each
/// record published here, every delivery awaited.
async fn full_path(args: &Args, mut publisher: Publisher, pages: Arc<Vec<Vec<u8>>>) -> Result<f64> {
    let schema_id = publisher
        .register_schema(&args.registry.client()?, Duration::from_secs(30))
        .await?;
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        for body in pages.iter() {
            let framed = ApiPage::parse_borrowed(body)
                .map(|page| FramedPage::new(page, schema_id))
                .map_err(|e| e.to_string());
            if tx.blocking_send(framed).is_err() {
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
    // And the warm-up record.
    ensure!(
        delivered.delivered as usize == args.work.records + 1 && delivered.failed() == 0,
        "full run lost records: {delivered:?}"
    );
    Ok(args.work.records as f64 / started.elapsed().as_secs_f64())
}

/// rdkafka sending the framed bytes through the publisher's own send path: the same
/// back-pressure (await a delivery when the client's queue is full), the same bound on
/// pending reports, every report awaited. Only parsing and encoding are left out.
async fn bare_publish(mut publisher: Publisher, pages: &[Records]) -> Result<f64> {
    let started = Instant::now();
    for (key, payload) in pages.iter().flat_map(Records::iter) {
        publisher.publish_encoded(key, payload).await?;
    }
    let delivered = publisher.finish(Duration::from_secs(120)).await?;
    let records: usize = pages.iter().map(Records::len).sum();
    // And the warm-up record.
    ensure!(
        delivered.delivered as usize == records + 1 && delivered.failed() == 0,
        "bare run lost records: {delivered:?}"
    );
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

/// The producer binary publishing `--count` users from the local API: users/s from its
/// summary, CPU µs per user and peak RSS of the whole process.
async fn binary_run(
    args: &Args,
    bin: &std::path::Path,
    api: std::net::SocketAddr,
    topic: &str,
) -> Result<(f64, f64, f64)> {
    let mut command = Command::new(bin);
    command
        .args(["--api-url", &format!("http://{api}/api/"), "--topic", topic])
        .args(["--count", &args.work.records.to_string()])
        .args(["--progress-interval", "60s"])
        .env("RUST_LOG", "warn");
    // Every setting the bench's own clients run with, flags included.
    args.kafka.pass_to(command.as_std_mut());
    args.registry.pass_to(command.as_std_mut());
    let finished = Watched::spawn(command)?
        .wait(Duration::from_secs(600))
        .await?;
    ensure!(finished.success, "the producer failed: {}", finished.stdout);
    let published = finished.summary("published").unwrap_or(0.0);
    ensure!(
        published as usize == args.work.records,
        "the producer published {published} of {}",
        args.work.records
    );
    Ok((
        finished.summary("users_per_s").unwrap_or(0.0),
        finished.cpu_seconds * 1e6 / published,
        finished.peak_rss_mib,
    ))
}

/// Where the full path's time goes: parsing alone, then framing (Avro) alone.
fn stage_costs(pages: &[Vec<u8>]) -> Result<()> {
    // Once untimed: the first pass pays the page faults of memory never touched before,
    // and its users are what the framing below encodes.
    let parsed = pages
        .iter()
        .map(|p| ApiPage::parse_borrowed(p))
        .collect::<Result<Vec<_>, _>>()?;
    let users: usize = parsed.iter().map(|p| p.users.len()).sum();
    let started = Instant::now();
    for page in pages {
        drop(ApiPage::parse_borrowed(page)?);
    }
    let parse = users as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for page in &parsed {
        drop(Records::frame(&page.users, 1));
    }
    let frame = users as f64 / started.elapsed().as_secs_f64();
    println!(
        "producer bench: stages alone, one thread: parse {parse:.0} users/s, frame (Avro) {frame:.0} users/s"
    );
    Ok(())
}
