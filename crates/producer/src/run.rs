use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::producer::FutureProducer;

use crate::cli::Args;
use crate::publish::Publisher;
use crate::source::ApiSource;

/// What a run did; printed as the last line and used for the exit code.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub fetched: u64,
    pub published: u64,
    pub rejected: u64,
    pub failed: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fetched={} published={} rejected={} failed={} seconds={:.1} users_per_s={:.0}",
            self.fetched,
            self.published,
            self.rejected,
            self.failed,
            self.seconds,
            self.published as f64 / self.seconds.max(1e-9)
        )
    }
}

/// Why a run stopped before its goal, when it did.
#[derive(Debug, thiserror::Error)]
#[error("{reason}\nsummary: {summary}")]
pub struct RunError {
    pub reason: String,
    pub summary: Summary,
}

/// Runs the producer to completion. `Ok` only if every accepted user was
/// delivered; on any failure, the records already accepted are still flushed
/// and counted before the error is returned.
pub async fn run(
    args: Args,
    stop: impl std::future::Future<Output = &'static str>,
) -> Result<Summary> {
    let started = Instant::now();
    args.kafka.ensure_topics(&[&args.kafka.topic]).await?;
    let producer: FutureProducer = args
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &args.compression)
        .set("linger.ms", "20")
        .set(
            "message.timeout.ms",
            args.delivery_timeout.as_millis().to_string(),
        )
        .create()
        .context("creating the Kafka producer (check --compression)")?;
    let mut publisher = Publisher::new(
        producer,
        args.registry.settings()?,
        &args.registry.url,
        &args.kafka.topic,
    );
    let schema_id = publisher
        .register_schema(args.registry_connect_timeout)
        .await?;
    tracing::info!(schema_id, subject = %format!("{}-value", args.kafka.topic), "schema registered");

    let source = ApiSource::new(&args)?;
    let deadline = args.duration.map(|d| started + d);
    let mut summary = Summary::default();
    let mut failure: Option<String> = None;
    let mut last_progress = Instant::now();
    let publish_start = Instant::now();
    tokio::pin!(stop);

    let mut page = 0u64;
    loop {
        let remaining = args.count.map(|c| c.saturating_sub(summary.fetched));
        if remaining == Some(0) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        page += 1;
        let size = remaining.map_or(args.batch_size, |r| r.min(args.batch_size as u64) as u32);
        let fetched = tokio::select! {
            signal = &mut stop => { failure = Some(format!("interrupted by {signal}")); break; }
            fetched = source.fetch(size, page) => fetched,
        };
        let mut api_page = match fetched {
            Ok(p) => p,
            Err(e) => {
                failure = Some(format!("{e:#}"));
                break;
            }
        };
        // The API answers with what was asked; should it send more, --count still holds.
        api_page
            .users
            .truncate((size as usize).saturating_sub(api_page.rejected.len()));
        summary.fetched += (api_page.users.len() + api_page.rejected.len()) as u64;
        for r in &api_page.rejected {
            tracing::warn!(
                page,
                index = r.index,
                uuid = r.uuid.as_deref().unwrap_or("?"),
                "record rejected: {}",
                r.reason
            );
        }
        summary.rejected += api_page.rejected.len() as u64;
        for user in &api_page.users {
            if args.rate > 0.0 {
                let due = publish_start
                    + Duration::from_secs_f64(publisher.stats().enqueued as f64 / args.rate);
                tokio::time::sleep_until(due.into()).await;
            }
            if let Err(e) = publisher.publish(user).await {
                failure = Some(format!("{e:#}"));
                break;
            }
        }
        if failure.is_some() {
            break;
        }
        if last_progress.elapsed() >= args.progress_interval {
            last_progress = Instant::now();
            let s = publisher.stats();
            tracing::info!(
                fetched = summary.fetched,
                published = s.delivered,
                rejected = summary.rejected,
                failed = s.failed,
                users_per_s = (s.delivered as f64 / started.elapsed().as_secs_f64()).round(),
                "progress"
            );
        }
    }

    let delivered = publisher.finish(args.delivery_timeout).await?;
    summary.published = delivered.delivered;
    summary.failed =
        delivered.failed + (delivered.enqueued - delivered.delivered - delivered.failed);
    summary.seconds = started.elapsed().as_secs_f64();
    if failure.is_none() {
        failure = delivered
            .first_error
            .map(|e| format!("{} record(s) not delivered; first: {e}", summary.failed));
    }
    match failure {
        None => Ok(summary),
        Some(reason) => Err(RunError { reason, summary }.into()),
    }
}
