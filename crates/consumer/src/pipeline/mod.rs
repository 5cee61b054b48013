//! The consume loop, in rooms: `poll` takes records from Kafka and hands each to the
//! `writer`, which decodes, transforms and writes it (retrying until it is durable or
//! dead-lettered) concurrently with the others `in_flight`; each partition's offset is
//! stored only once every earlier record of that partition is done, and committed on
//! `rebalance` and at exit. The `watcher` probes the dependencies; `progress` reports.
//!
//! Failures act by class (`common::fault`): transient ones are retried with
//! backoff (fetching pauses when nothing finishes; the group keeps us); poison
//! goes to the dead-letter topic and the partition moves on; a fatal one stops
//! the run (`halt`): nothing new is taken, what is in flight finishes, only offsets of
//! rows that are written get committed, and the run ends with the fault.

pub mod batch;
mod halt;
mod in_flight;
mod poll;
mod progress;
mod rebalance;
mod watcher;
mod work;
mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use common::backoff::Backoff;
use common::kafka::{Guarded, KafkaArgs};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use progress::Summary;

use crate::cli::Args;
use crate::decode::{DecodeSettings, Decoder};
use crate::dlq::DeadLetters;
use crate::metrics::Metrics;
use crate::sink::Sink;
use halt::Halt;
use in_flight::InFlight;
use poll::{Poll, PollSettings};
use rebalance::{store_offsets, KafkaConsumer, Rebalancing, DRAIN_GRACE};
use watcher::Watcher;
use work::Work;
use writer::Writer;

pub async fn run(
    args: Args,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = &'static str>,
) -> Result<Summary> {
    let started = Instant::now();
    let dlq_limit = args
        .kafka
        .ensure_source_and_dead_letter_topics(&args.kafka.topic, &args.dlq_topic)
        .await?;
    metrics.kafka.observe(true);
    let registry = args.registry.connect(&args.kafka.topic).await?;
    metrics.registry.observe(true);
    let sink = Arc::new(Sink::connect(&args.cassandra).await?);
    metrics.cassandra.observe(true);
    tracing::info!(keyspace = %args.cassandra.keyspace, "Cassandra schema applied");

    let in_flight = Arc::new(InFlight::new(args.max_in_flight as usize));
    let halt = Arc::new(Halt::default());
    let member = Member {
        group_id: args.group_id.clone(),
        instance_id: args.group_instance_id()?,
    };
    let consumer: Arc<KafkaConsumer> = Arc::new(subscribe(
        &args.kafka,
        &member,
        Rebalancing::new(in_flight.clone(), metrics.clone(), DRAIN_GRACE),
    )?);
    let dlq = DeadLetters::create(&args.kafka, &args.dlq_topic, dlq_limit)?;
    let decoder = Arc::new(Decoder::new(
        args.registry.settings()?,
        registry.clone(),
        DecodeSettings {
            subject: format!("{}-value", args.kafka.topic),
            unknown_schema_retry: args.unknown_schema_retry,
        },
    ));
    decoder.prime().await;

    let watcher = tokio::spawn(
        Watcher {
            consumer: consumer.clone(),
            topic: args.kafka.topic.clone(),
            sink: sink.clone(),
            registry,
            subject: format!("{}-value", args.kafka.topic),
            metrics: metrics.clone(),
            in_flight: in_flight.clone(),
        }
        .run(),
    );
    // Unbounded: the in-flight limit of the poll loop bounds it.
    let (to_writer, records) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(
        Writer {
            decoder: decoder.clone(),
            sink,
            dlq,
            backoff: Backoff::new(args.retry_backoff, args.retry_max_backoff),
            refusal_retry: args.refused_write_retry,
            in_flight: in_flight.clone(),
            halt: halt.clone(),
            metrics: metrics.clone(),
            batching: batch::Batching {
                max_rows: args.batch_max_rows as usize,
                max_bytes: args.batch_max_bytes as usize,
            },
        }
        .run(records),
    );
    tracing::info!(topic = %args.kafka.topic, group = %args.group_id, "consuming");

    let settings = PollSettings {
        topic: args.kafka.topic.clone(),
        group_id: args.group_id.clone(),
        bootstrap_servers: args.kafka.bootstrap_servers.clone(),
        exit_when_idle: args.exit_when_idle,
        progress_interval: args.progress_interval,
    };
    Poll {
        consumer: &consumer,
        settings: &settings,
        in_flight: &in_flight,
        halt: &halt,
        metrics: &metrics,
        to_writer,
    }
    .run(|message| Work::of(&decoder, message), stop)
    .await;

    finish(&consumer, &settings.topic, &in_flight).await?;
    watcher.abort();
    // The watcher holds the consumer too: gone before the close below, which must be the last.
    let _ = watcher.await;
    // Rows still in flight after the grace are not committed; they are re-delivered.
    writer.abort();
    close(consumer).await;
    let summary = Summary::of(&metrics, started);
    match halt.fault() {
        Some(fault) => Err(anyhow!(
            "{}\nsummary: {summary} (offsets committed only up to rows written)",
            fault.message
        )),
        None => Ok(summary),
    }
}

/// Who the consumer is in its group.
#[derive(Debug, Clone)]
pub struct Member {
    pub group_id: String,
    /// Static membership's name (`group.instance.id`), if any.
    pub instance_id: Option<String>,
}

/// The consumer, subscribed to the topic, with the settings its guarantees rest on.
fn subscribe(kafka: &KafkaArgs, member: &Member, context: Rebalancing) -> Result<KafkaConsumer> {
    let mut guarded = vec![Guarded::new(
        "group.id",
        &member.group_id,
        "set it with --group-id (KAFKA_GROUP_ID)",
    )];
    if let Some(id) = &member.instance_id {
        guarded.push(Guarded::new(
            "group.instance.id",
            id,
            "set it with --group-instance-id (KAFKA_GROUP_INSTANCE_ID)",
        ));
    }
    guarded.extend([
        Guarded::new(
            "enable.auto.offset.store",
            "false",
            "an offset is stored only once its row is written",
        ),
        Guarded::new(
            "enable.auto.commit",
            "true",
            "stored offsets are committed every second and on revoke and exit",
        ),
    ]);
    let consumer: KafkaConsumer = kafka
        .client_config(
            &[
                ("auto.commit.interval.ms", "1000"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                // Kafka's own default, stated because it is a trade-off: a replica killed
                // without leaving the group keeps its partitions this long, but the session
                // must outlast the time the cluster takes to replace a silent group
                // coordinator (its ZooKeeper or KRaft session, 18 s or 9 s by default, then
                // the election and the group's reload). At 10 s a black-holed coordinator
                // expired every replica's session and the whole group lost its partitions.
                ("session.timeout.ms", "45000"),
                // Incremental rebalancing: a replica joining or leaving moves only the
                // partitions that change owner; the others keep being written.
                ("partition.assignment.strategy", "cooperative-sticky"),
                // librdkafka prefetches up to 64 MB per partition by default (the limit is
                // each partition's, whatever its documentation says of the consumer queue). 2 MB
                // (~5 000 users) each keeps every write slot fed and the memory small: at 8 MB,
                // two replicas catching up three partitions each after a Cassandra outage peaked
                // at 77-83 MiB, at 2 MB at 49 MiB (tests/integration/tests/outage_rebalance.rs).
                ("queued.max.messages.kbytes", "2048"),
                // Once that queue is full, librdkafka waits this long before fetching again
                // (default 1 s). Catching up, a full queue lasts a fraction of a second: at 1 s
                // most seconds went unfetched, capping the consumer at about 22 000 rows/s.
                ("fetch.queue.backoff.ms", "50"),
            ],
            &guarded,
        )?
        .create_with_context(context)
        .map_err(|e| common::kafka::creation_error(e, "creating the Kafka consumer"))?;
    consumer
        .subscribe(&[&kafka.topic])
        .with_context(|| format!("subscribing to {}", kafka.topic))?;
    Ok(consumer)
}

/// How long closing the consumer (leaving the group; librdkafka commits in the final revoke)
/// may take before the run ends without it.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Drops the consumer, which closes it: librdkafka's close waits for the group to confirm the
/// leave, with no bound, and a mock coordinator mid-rebalance sometimes never did (a hermetic
/// test hung in it). The offsets of written rows are committed before (`finish`); a close
/// that does not finish in time only means the group notices this member's absence later.
async fn close(consumer: Arc<KafkaConsumer>) {
    let closing = tokio::task::spawn_blocking(move || drop(consumer));
    if tokio::time::timeout(CLOSE_GRACE, closing).await.is_err() {
        tracing::warn!(
            "the group did not confirm this consumer's leave within {CLOSE_GRACE:?}; the offsets \
             of written rows are committed: ending the run anyway"
        );
    }
}

/// The end of a run: wait for the rows in flight (up to the grace), store and commit
/// their offsets, and tell the rebalance hooks that the close's revoke is final.
async fn finish(consumer: &KafkaConsumer, topic: &str, in_flight: &Arc<InFlight>) -> Result<()> {
    let drained = {
        let in_flight = in_flight.clone();
        tokio::task::spawn_blocking(move || in_flight.wait_drained(None, DRAIN_GRACE)).await?
    };
    if drained > 0 {
        tracing::warn!(
            left = drained,
            "rows still in flight at exit; they will be re-delivered on restart"
        );
    }
    store_offsets(consumer, topic, in_flight);
    // Sent, not awaited: a synchronous commit here waits on the group (with no bound), and
    // with a rebalance under way that needs this consumer's poll (which has stopped) it never
    // returned: a hermetic test hung in it. Closing the consumer then waits for this commit
    // and commits again in the final revoke, where librdkafka serves the group itself.
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
        if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
            tracing::warn!("committing offsets at exit failed: {e}");
        }
    }
    consumer.context().close();
    Ok(())
}
