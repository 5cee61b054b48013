use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::Args;
use crate::frame::FramedPage;
use crate::publish::{Delivered, Publisher};
use crate::source::ApiSource;
use tokio::sync::mpsc;

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
    /// The signal that stopped it, if one did: the exit code says so
    /// (`common::shutdown::exit_code`).
    pub signal: Option<&'static str>,
}

/// The signal that stopped a run, if one did.
pub fn interrupted_by(result: &Result<Summary>) -> Option<&'static str> {
    result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<RunError>())
        .and_then(|r| r.signal)
}

/// Why publishing stopped before the pages ran out.
#[derive(Debug, Clone, PartialEq)]
pub enum Early {
    /// A signal (SIGTERM, SIGINT) asked the run to stop.
    Signal(&'static str),
    /// A page could not be fetched, or Kafka refused a record.
    Failed(String),
}

/// Runs the producer to completion. `Ok` only if every accepted user was
/// delivered; on any failure or signal, the records already accepted are still flushed
/// and counted, and where the delivered ones landed is written (`--landed-file`), before
/// the error is returned.
pub async fn run(
    args: Args,
    stop: impl std::future::Future<Output = &'static str>,
) -> Result<Summary> {
    let started = Instant::now();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    args.kafka.ensure_topics(&[&args.kafka.topic]).await?;
    let delivery_timeout = args.delivery_timeout.as_millis().to_string();
    let config = args.kafka.client_config(
        &[
            ("compression.type", args.compression.as_str()),
            // A few ms of batching: full batches under load, little added latency.
            ("linger.ms", "5"),
            ("message.timeout.ms", delivery_timeout.as_str()),
        ],
        &common::kafka::producer_guarantees(),
    )?;
    let registry = args.registry.connect(&args.kafka.topic).await?;
    let mut publisher = Publisher::new(
        &config,
        args.registry.settings()?,
        &args.registry.shown_url(),
        &args.kafka.topic,
    )
    .map_err(|e| {
        common::kafka::creation_error(e, "creating the Kafka producer (check --compression)")
    })?;
    let schema_id = publisher
        .register_schema(&registry, args.registry.connect_timeout)
        .await?;
    tracing::info!(schema_id, subject = %format!("{}-value", args.kafka.topic), "schema registered");

    let plan = Plan {
        count: args.count,
        deadline: args.duration.map(|d| started + d),
        batch_size: args.batch_size,
    };
    let pages = spawn_fetcher(ApiSource::new(&args.api_settings())?, plan, schema_id);
    let pace = Pace {
        rate: args.rate,
        progress_interval: args.progress_interval,
    };
    let (mut summary, failure) = publish_pages(&mut publisher, pages, pace, stop).await;

    let delivered = publisher.finish(args.delivery_timeout).await?;
    summary.seconds = started.elapsed().as_secs_f64();
    // Whatever stopped the run, what was delivered is on the topic for good: the landed file
    // names it, so it can be awaited (`consumer await-run`) like a whole run.
    let landed = args.landed_file.as_ref().map(|path| {
        let landed =
            delivered
                .spans
                .clone()
                .into_landed(&args.kafka.topic, delivered.delivered, started_ms);
        std::fs::write(path, landed.to_json() + "\n").with_context(|| {
            format!(
                "{} users were published, but writing where they landed to {} failed \
                 (check PRODUCER_LANDED_FILE)",
                delivered.delivered,
                path.display()
            )
        })
    });
    match (settle(summary, &delivered, failure), landed) {
        (Ok(_), Some(Err(e))) => Err(e),
        (Err(e), Some(Err(not_written))) => {
            tracing::error!("{not_written:#}");
            Err(e)
        }
        (result, _) => result,
    }
}

/// Closes the books: `Ok` only if every accepted user is on the topic. Any
/// record not encoded or not delivered, or an early stop, is an error that
/// still carries the exact counts.
pub fn settle(
    mut summary: Summary,
    delivered: &Delivered,
    early: Option<Early>,
) -> Result<Summary> {
    summary.published = delivered.delivered;
    summary.failed = delivered.failed();
    let signal = match early {
        Some(Early::Signal(signal)) => Some(signal),
        _ => None,
    };
    let failure = early.map(|early| match early {
        Early::Signal(signal) => format!(
            "interrupted by {signal} before the run's goal: the {} users already handed to \
             Kafka were flushed ({} delivered), and --landed-file names where they landed",
            delivered.enqueued, delivered.delivered
        ),
        Early::Failed(reason) => reason,
    });
    let failure = failure.or_else(|| {
        (summary.failed > 0).then(|| {
            format!(
                "{} record(s) not published ({} not encodable, {} not delivered); first: {}",
                summary.failed,
                delivered.unencodable,
                summary.failed - delivered.unencodable,
                delivered.first_error.as_deref().unwrap_or("unknown")
            )
        })
    });
    match failure {
        None => Ok(summary),
        Some(reason) => Err(RunError {
            reason,
            summary,
            signal,
        }
        .into()),
    }
}

/// When to stop fetching.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub count: Option<u64>,
    pub deadline: Option<Instant>,
    pub batch_size: u32,
}

/// A fetched page, framed, or why fetching stopped early.
pub type Fetched = Result<FramedPage, String>;

/// Fetches, parses and frames pages ahead of the publisher, so the API's latency and
/// that work overlap with sending. The channel holds one page: memory stays at about
/// two pages however long the run.
pub fn spawn_fetcher(source: ApiSource, plan: Plan, schema_id: u32) -> mpsc::Receiver<Fetched> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut fetched = 0u64;
        for page in 1u64.. {
            let remaining = plan.count.map(|c| c.saturating_sub(fetched));
            if remaining == Some(0) || plan.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let size = remaining.map_or(plan.batch_size, |r| r.min(plan.batch_size as u64) as u32);
            let frame = move |mut p: domain::ApiPage<domain::Text<'_>>| {
                // The API answers with what was asked; should it send more, --count still holds.
                p.users
                    .truncate((size as usize).saturating_sub(p.rejected.len()));
                FramedPage::new(p, schema_id)
            };
            let result = source
                .fetch(size, page, frame)
                .await
                .map_err(|e| format!("{e:#}"));
            let stop = result.is_err();
            if let Ok(p) = &result {
                fetched += p.fetched() as u64;
            }
            if tx.send(result).await.is_err() || stop {
                break;
            }
        }
    });
    rx
}

/// The paced producer publishes in bursts this far apart (at most: at 1 000 users/s, 10
/// users every 10 ms).
const PACE_TICK: Duration = Duration::from_millis(10);

/// How fast to publish and how often to say so.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Users per second; 0 for no cap.
    pub rate: f64,
    pub progress_interval: Duration,
}

/// Publishes every user of every page until the pages run out, a page fails,
/// Kafka refuses a record or `stop` fires. Returns the counts so far and the
/// reason it stopped early, if it did; deliveries are still to be awaited.
///
/// `stop` is heeded between two records too, not only between pages: a paced page of 5 000
/// users takes 5 s at 1 000/s, longer than a supervisor may wait after its SIGTERM.
pub async fn publish_pages(
    publisher: &mut Publisher,
    mut pages: mpsc::Receiver<Fetched>,
    pace: Pace,
    stop: impl std::future::Future<Output = &'static str>,
) -> (Summary, Option<Early>) {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut last_progress = Instant::now();
    tokio::pin!(stop);
    for page in 1u64.. {
        let next = tokio::select! {
            signal = &mut stop => return (summary, Some(Early::Signal(signal))),
            next = pages.recv() => next,
        };
        let framed = match next {
            None => break,
            Some(Err(reason)) => return (summary, Some(Early::Failed(reason))),
            Some(Ok(p)) => p,
        };
        summary.fetched += framed.fetched() as u64;
        summary.rejected += framed.rejected.len() as u64;
        for r in &framed.rejected {
            let uuid = r.uuid.as_deref().unwrap_or("?");
            tracing::warn!(page, index = r.index, uuid, "record rejected: {}", r.reason);
        }
        for reason in &framed.records.unencodable {
            publisher.not_encodable(reason);
        }
        for (key, value) in framed.records.iter() {
            let send = async {
                if pace.rate > 0.0 {
                    let due =
                        started + Duration::from_secs_f64(publisher.enqueued() as f64 / pace.rate);
                    // A tick's users at once, not one wake per user: a sleep per user woke
                    // this task and librdkafka's broker thread a thousand times a second at
                    // 1 000/s and cost 300-700 µs of CPU per user, against about 20 unpaced.
                    // The rate over any second is unchanged.
                    if due.saturating_duration_since(Instant::now()) >= PACE_TICK {
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                publisher.publish_encoded(key, value).await
            };
            // Dropping `send` at a signal loses nothing: a record is counted once the client
            // has it, and one it does not have yet is simply not sent.
            let sent = tokio::select! {
                biased;
                signal = &mut stop => return (summary, Some(Early::Signal(signal))),
                sent = send => sent,
            };
            if let Err(e) = sent {
                return (summary, Some(Early::Failed(format!("{e:#}"))));
            }
        }
        if last_progress.elapsed() >= pace.progress_interval {
            last_progress = Instant::now();
            let s = publisher.stats();
            tracing::info!(
                fetched = summary.fetched,
                published = s.delivered,
                rejected = summary.rejected,
                failed = s.failed(),
                users_per_s = (s.delivered as f64 / started.elapsed().as_secs_f64()).round(),
                "progress"
            );
        }
    }
    (summary, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_books_count_every_record_not_on_the_topic_and_fail_the_run() {
        let delivered = Delivered {
            unencodable: 2,
            enqueued: 10,
            delivered: 7,
            undelivered: 1,
            first_error: Some("first".into()),
            ..Delivered::default()
        };
        // 2 not encoded + 1 refused + 2 never reported.
        assert_eq!(delivered.failed(), 5);
        let err = settle(Summary::default(), &delivered, None).expect_err("losses fail the run");
        let run = err.downcast_ref::<RunError>().expect("RunError");
        assert_eq!((run.summary.published, run.summary.failed), (7, 5));
        assert_eq!(run.signal, None, "a failure, not an interruption");
        assert!(run
            .reason
            .starts_with("5 record(s) not published (2 not encodable, 3 not delivered)"));

        let clean = Delivered {
            enqueued: 3,
            delivered: 3,
            ..Delivered::default()
        };
        let summary = settle(Summary::default(), &clean, None).expect("all delivered");
        assert_eq!((summary.published, summary.failed), (3, 0));
        let interrupted = settle(Summary::default(), &clean, Some(Early::Signal("SIGTERM")));
        assert_eq!(interrupted_by(&interrupted), Some("SIGTERM"));
        let run = interrupted.expect_err("a stopped run is not a success");
        let run = run.downcast_ref::<RunError>().expect("RunError");
        assert!(
            run.reason.starts_with("interrupted by SIGTERM") && run.summary.published == 3,
            "{run}"
        );
        let failed = settle(
            Summary::default(),
            &clean,
            Some(Early::Failed("gone".into())),
        );
        assert_eq!(interrupted_by(&failed), None);
    }
}
