//! `consumer await-run`: waits until the consumer group has committed past every record of
//! one producer run (an offset is committed only once its row is written or its record
//! dead-lettered), then counts the run's dead letters. What makes a DAG run green only when
//! its users are in Cassandra. Blocking code: it runs on a thread of its own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::fault::kafka::error_class;
use common::fault::Class;
use common::kafka::{AlarmContext, Alarmed};
use common::landed::Landed;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::cli::{Args, AwaitArgs};
use crate::dlq;

/// How often the group's committed offsets are read.
const POLL: Duration = Duration::from_secs(1);
/// One Kafka request (committed offsets, group list, DLQ metadata).
const REQUEST: Duration = Duration::from_secs(10);

/// What the wait found.
#[derive(Debug)]
pub struct Outcome {
    pub written: u64,
    pub seconds: f64,
}

pub fn run(args: &Args, wait: &AwaitArgs) -> Result<Outcome> {
    let started = Instant::now();
    let landed = Landed::parse(&wait.landed).context("--landed (CONSUMER_AWAIT_LANDED)")?;
    args.kafka.wait_for_broker()?;
    let client: BaseConsumer<AlarmContext> = args
        .kafka
        .client_config(
            &[
                ("group.id", &args.group_id),
                ("enable.auto.commit", "false"),
            ],
            &[],
        )?
        .create_with_context(AlarmContext::default())
        .map_err(|e| common::kafka::creation_error(e, "creating a Kafka client"))?;

    let total = landed.offsets();
    let group = &args.group_id;
    let mut done = -1;
    let mut moved = Instant::now();
    let mut said = Instant::now();
    let mut last_error: Option<String>;
    loop {
        if let Some(fatal) = client
            .context()
            .alarm()
            .fatal(&args.kafka.bootstrap_servers)
        {
            bail!("{fatal}");
        }
        match committed(&client, &landed) {
            Ok(now) => {
                client.context().alarm().reached();
                last_error = None;
                if now > done {
                    done = now;
                    moved = Instant::now();
                }
            }
            Err(e) if error_class(&e) == Class::Fatal => bail!(
                "Kafka refused to show group {group}'s committed offsets: {e}; check the \
                 Kafka credentials and the ACLs on group {group}"
            ),
            Err(e) => last_error = Some(e.to_string()),
        }
        if done >= total {
            break;
        }
        if said.elapsed() >= args.progress_interval {
            said = Instant::now();
            tracing::info!(
                "waiting for group {group}: {} of {total} offsets of this run committed \
                 ({} users published to {}), {:.0} s",
                done.max(0),
                landed.published,
                landed.topic,
                started.elapsed().as_secs_f64()
            );
        }
        if moved.elapsed() >= wait.stall_timeout {
            bail!(stalled(
                &client,
                &args.kafka.bootstrap_servers,
                group,
                wait.stall_timeout,
                &landed,
                done.max(0),
                last_error
            ));
        }
        std::thread::sleep(POLL);
    }

    let dead = dead_letters(&client, &args.dlq_topic, &landed)?;
    if dead.count > 0 {
        bail!(
            "{} of {} records of this run were dead-lettered to {}; the first: {}. The other \
             {} are in Cassandra. Fix the cause, then replay the dead letters \
             (docs/schema-and-dead-letters.md)",
            dead.count,
            landed.published,
            args.dlq_topic,
            dead.first.as_deref().unwrap_or("no reason recorded"),
            landed.published.saturating_sub(dead.count)
        );
    }
    Ok(Outcome {
        written: landed.published,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Offsets of the run the group has committed past, summed over its partitions.
fn committed(
    client: &BaseConsumer<AlarmContext>,
    landed: &Landed,
) -> rdkafka::error::KafkaResult<i64> {
    let mut tpl = TopicPartitionList::new();
    for span in &landed.partitions {
        tpl.add_partition(&landed.topic, span.partition);
    }
    let offsets = client.committed_offsets(tpl, REQUEST)?;
    Ok(offsets
        .elements()
        .iter()
        .filter_map(|e| {
            let span = landed.span(e.partition())?;
            let at = e.offset().to_raw().unwrap_or(-1);
            Some((at - span.first).clamp(0, span.end - span.first))
        })
        .sum())
}

/// Why the group made no progress: no answer from Kafka, no consumer in the group, or
/// consumers that commit nothing (stuck retrying a dependency).
fn stalled(
    client: &BaseConsumer<AlarmContext>,
    bootstrap_servers: &str,
    group: &str,
    stall_timeout: Duration,
    landed: &Landed,
    done: i64,
    last_error: Option<String>,
) -> String {
    let progress = format!(
        "{done} of {} offsets of this run committed, none more in {:?}",
        landed.offsets(),
        stall_timeout
    );
    if let Some(e) = last_error {
        return format!(
            "could not read group {group}'s committed offsets from Kafka at {bootstrap_servers} ({e}); \
             {progress}. Check that Kafka is up and that KAFKA_BOOTSTRAP_SERVERS names it",
        );
    }
    let (state, members) = match client.fetch_group_list(Some(group), REQUEST) {
        Ok(list) => list
            .groups()
            .first()
            .map(|g| (g.state().to_string(), g.members().len()))
            .unwrap_or_else(|| ("Dead".into(), 0)),
        Err(e) => (format!("unknown ({e})"), 0),
    };
    if members == 0 {
        format!(
            "consumer group '{group}' is not consuming: it has no members (state {state}), so \
             no consumer is running on topic {}; {progress}. Start the consumer (Compose: \
             docker compose up -d consumer), or set the DAG's consumer_group \
             (KAFKA_GROUP_ID) to the group it runs in",
            landed.topic
        )
    } else {
        format!(
            "consumer group '{group}' is not consuming: it has {members} member(s) (state \
             {state}) but they committed nothing more of this run; {progress}. The consumer \
             is stuck: its log and consumer_retries_total on /metrics name the dependency \
             it is retrying"
        )
    }
}

#[derive(Debug, Default)]
struct DeadLetters {
    count: u64,
    first: Option<String>,
}

/// The run's records in the dead-letter topic: read from the first record stamped at or after
/// the run's start (a dead letter keeps its record's timestamp) to the end, matched by the
/// source headers the consumer adds.
fn dead_letters(
    client: &BaseConsumer<AlarmContext>,
    dlq_topic: &str,
    landed: &Landed,
) -> Result<DeadLetters> {
    let mut found = DeadLetters::default();
    let metadata = client
        .fetch_metadata(Some(dlq_topic), REQUEST)
        .with_context(|| format!("reading the metadata of {dlq_topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(found);
    }
    let mut by_time = TopicPartitionList::new();
    for p in &partitions {
        by_time.add_partition_offset(dlq_topic, *p, Offset::Offset(landed.started_ms))?;
    }
    let starts = client
        .offsets_for_times(by_time, REQUEST)
        .with_context(|| format!("finding this run's start in {dlq_topic}"))?;
    let mut assign = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for e in starts.elements() {
        let (_, high) = client.fetch_watermarks(dlq_topic, e.partition(), REQUEST)?;
        let start = match e.offset() {
            Offset::Offset(o) => o,
            _ => high,
        };
        if start < high {
            assign.add_partition_offset(dlq_topic, e.partition(), Offset::Offset(start))?;
            ends.insert(e.partition(), high);
        }
    }
    if ends.is_empty() {
        return Ok(found);
    }
    client.assign(&assign)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if Instant::now() > deadline {
            bail!("reading {dlq_topic} for this run's dead letters took over 60 s");
        }
        let Some(message) = client.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.with_context(|| format!("reading {dlq_topic}"))?;
        if message.offset() + 1 >= ends.get(&message.partition()).copied().unwrap_or(0) {
            ends.remove(&message.partition());
        }
        let header = |key: &str| -> Option<String> {
            let headers = message.headers()?;
            headers
                .iter()
                .find(|h| h.key == key)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let from_run = header(dlq::HEADER_TOPIC).as_deref() == Some(landed.topic.as_str())
            && header(dlq::HEADER_PARTITION)
                .and_then(|p| p.parse().ok())
                .and_then(|p| landed.span(p))
                .zip(header(dlq::HEADER_OFFSET).and_then(|o| o.parse().ok()))
                .is_some_and(|(span, offset)| span.contains(offset));
        if from_run {
            found.count += 1;
            found.first.get_or_insert_with(|| {
                // A marker holds no bytes to replay: the record is only in its own topic.
                let marker = match header(dlq::HEADER_VALUE_DROPPED) {
                    Some(_) => format!(
                        " (a marker: the dead-letter topic refused the record itself, which is \
                         only in {} at partition {}, offset {})",
                        landed.topic,
                        header(dlq::HEADER_PARTITION).unwrap_or_default(),
                        header(dlq::HEADER_OFFSET).unwrap_or_default()
                    ),
                    None => String::new(),
                };
                format!(
                    "{}: {}{marker}",
                    header(dlq::HEADER_KIND).unwrap_or_default(),
                    header(dlq::HEADER_ERROR).unwrap_or_default()
                )
            });
        }
    }
    Ok(found)
}
