//! The consume loop: poll Kafka, hand each record to the writer task, which
//! decodes, transforms and writes it (retrying until it is durable or
//! dead-lettered) concurrently with the others in flight, and store each
//! partition's offset only once every earlier record of that partition is done.
//!
//! Failures act by class (`common::fault`): transient ones are retried with
//! backoff (fetching pauses when nothing finishes; the group keeps us); poison
//! goes to the dead-letter topic and the partition moves on; a fatal one stops
//! the run: nothing new is taken, what is in flight finishes, only offsets of
//! rows that are written get committed, and the run ends with the fault.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use common::backoff::Backoff;
use common::fault::{Class, Fault};
use common::kafka::{Alarm, AlarmContext, Alarmed, Guarded};
use common::registry::Registry;
use common::storm::Storm;
use domain::UserRow;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::cli::Args;
use crate::decode::Decoder;
use crate::dlq::DeadLetters;
use crate::metrics::Metrics;
use crate::offsets::SharedTracker;
use crate::sink::Sink;

/// How long a revoke or a shutdown waits for in-flight rows before giving up
/// on them (they are then re-delivered to whoever owns the partition next).
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// With every write slot taken and none finishing for this long, fetching is
/// paused (and polling goes on) until half the slots are free again.
const STALLED: Duration = Duration::from_secs(2);

/// What a run did, for the summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub consumed: u64,
    pub written: u64,
    pub dead_lettered: u64,
    pub retried: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "consumed={} written={} dead_lettered={} retried={} seconds={:.1} rows_per_s={:.0}",
            self.consumed,
            self.written,
            self.dead_lettered,
            self.retried,
            self.seconds,
            self.written as f64 / self.seconds.max(1e-9)
        )
    }
}

/// Rebalance hooks: on revoke, finish what is in flight for the revoked
/// partitions and commit, so the next owner starts where we stopped.
struct PipelineContext {
    tracker: Arc<SharedTracker>,
    metrics: Arc<Metrics>,
    closing: AtomicBool,
    /// Set once the group gave us partitions; idleness only counts from then.
    assigned: AtomicBool,
    alarm: Alarm,
}

impl ClientContext for PipelineContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.alarm.report(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        common::kafka::errors::log(level, facility, message);
    }
}

impl Alarmed for PipelineContext {
    fn alarm(&self) -> &Alarm {
        &self.alarm
    }
}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        // Lost (the session expired): the partitions may already be someone else's and no
        // commit can succeed, so neither wait for the writes in flight nor try one.
        if consumer.assignment_lost() {
            tracing::warn!(
                ?partitions,
                "partitions lost (the group session expired); rows not yet committed will be \
                 re-delivered to their next owner"
            );
        } else {
            if !self.closing.load(Relaxed) {
                let left = tokio::task::block_in_place(|| {
                    self.tracker.wait_drained(Some(&partitions), DRAIN_GRACE)
                });
                if left > 0 {
                    tracing::warn!(
                        left,
                        "partitions revoked with rows still in flight; they will be re-delivered"
                    );
                }
            }
            if let Some(topic) = tpl.elements().first().map(|e| e.topic().to_string()) {
                store_offsets(consumer, &topic, &self.tracker);
            }
            // A synchronous commit waits on the coordinator (up to its request timeout when
            // the coordinator is silent): not on a runtime thread that /metrics and the
            // progress lines need. Closing, nothing else is left to starve, and the revoke
            // may run where block_in_place is not allowed.
            if self.closing.load(Relaxed) {
                commit(consumer, "revoke");
            } else {
                tokio::task::block_in_place(|| commit(consumer, "revoke"));
            }
        }
        self.tracker.forget(&partitions);
        self.metrics.revoke(&partitions);
        tracing::info!(?partitions, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions assigned");
            self.metrics.assign(&partitions);
            self.assigned.store(true, Relaxed);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => Storm::global().warn(
                "kafka",
                &format!("offset commit failed (will be retried with the next one): {e}"),
            ),
        }
    }
}

/// Hands the offsets that moved to the Kafka client, which commits them with
/// its next (auto or explicit) commit. Batched per tick rather than per row.
/// Only local calls: asking librdkafka for the subscription or the assignment
/// waits on its main thread, which a runtime thread must not do every tick.
fn store_offsets<C: Consumer<PipelineContext>>(consumer: &C, topic: &str, tracker: &SharedTracker) {
    let moved = tracker.take_moved();
    if moved.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in moved {
        let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        // A partition was revoked meanwhile; its next owner re-reads those rows.
        tracing::debug!("offsets not stored: {e}");
    }
}

fn commit<C: Consumer<PipelineContext>>(consumer: &C, why: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!("committing offsets on {why} failed: {e}"),
    }
}

type KafkaConsumer = StreamConsumer<PipelineContext>;

/// In flight at which a full poll loop takes records again (see `Shared::room_again`).
fn room_again(max_in_flight: usize) -> usize {
    max_in_flight.saturating_sub((max_in_flight / 8).max(1))
}

/// Everything the writer needs.
struct Shared {
    consumer: Arc<KafkaConsumer>,
    tracker: Arc<SharedTracker>,
    decoder: Decoder,
    sink: Sink,
    dlq: DeadLetters,
    metrics: Arc<Metrics>,
    topic: String,
    backoff: Backoff,
    registry: Registry,
    subject: String,
    /// Signalled when a record is done and at most `room_again` are left in flight.
    finished: tokio::sync::Notify,
    /// With every write slot taken, the poll loop takes records again once in flight drops
    /// to this, an eighth of the slots below the limit: woken for every finished row, it and
    /// the writer traded a wake-up (often a sleeping thread's) per record when catching up.
    room_again: usize,
    /// When a record last finished, in ms since `epoch`: an atomic, as every row sets it.
    finished_ms: AtomicU64,
    epoch: Instant,
    /// The first fatal fault, and the signal that stops the run.
    fatal: std::sync::OnceLock<Fault>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn since_finished(&self) -> Duration {
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.finished_ms.load(Relaxed)))
    }

    fn mark_finished(&self) {
        self.finished_ms
            .store(self.epoch.elapsed().as_millis() as u64, Relaxed);
    }

    /// Stops the run for `fault` (the first one wins; later ones are its echoes).
    fn raise(&self, fault: Fault) {
        if self.fatal.set(fault).is_ok() {
            if let Some(f) = self.fatal.get() {
                tracing::error!(kind = f.kind, "fatal: {}; stopping", f.message);
            }
        }
        self.stopping.send_replace(true);
    }

    /// Waits out a transient failure before the next attempt, unless the run
    /// is stopping for a fatal fault, which is then returned.
    async fn retry_after(
        &self,
        what: &'static str,
        backoff: &mut Backoff,
        fault: &Fault,
    ) -> Result<(), Fault> {
        self.metrics
            .retry(what, backoff.attempts() + 1, &fault.message);
        let mut stopping = self.stopping.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
        match self.fatal.get() {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }
}

pub async fn run(
    args: Args,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = &'static str>,
) -> Result<Summary> {
    let started = Instant::now();
    args.kafka
        .ensure_topics(&[&args.kafka.topic, &args.dlq_topic])
        .await?;
    metrics.kafka.observe(true);
    let registry = args.registry.connect(&args.kafka.topic).await?;
    let subject = format!("{}-value", args.kafka.topic);
    metrics.registry.observe(true);
    let sink = Sink::connect(&args).await?;
    metrics.cassandra.observe(true);
    tracing::info!(keyspace = %args.cassandra.keyspace, "Cassandra schema applied");

    let tracker = Arc::new(SharedTracker::default());
    let context = PipelineContext {
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        closing: AtomicBool::new(false),
        assigned: AtomicBool::new(false),
        alarm: Alarm::default(),
    };
    let consumer: KafkaConsumer = args
        .kafka
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
                // librdkafka prefetches up to 64 MB by default; 8 MB (~20 000 users) keeps
                // every write slot fed and the consumer's memory small (peak RSS catching up
                // 200 000 records: 116 MiB before, about 45 MiB with it).
                ("queued.max.messages.kbytes", "8192"),
                // Once that queue is full, librdkafka waits this long before fetching again
                // (default 1 s). Catching up, 8 MB lasts about 0.5 s: at 1 s every other
                // second went unfetched, capping the consumer at about 22 000 rows/s.
                ("fetch.queue.backoff.ms", "50"),
            ],
            &[
                Guarded::new(
                    "group.id",
                    &args.group_id,
                    "set it with --group-id (KAFKA_GROUP_ID)",
                ),
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
            ],
        )?
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&args.kafka.topic])
        .with_context(|| format!("subscribing to {}", args.kafka.topic))?;
    let consumer = Arc::new(consumer);
    // Its context routes librdkafka's warnings into the Kafka storm like the consumer's.
    let dlq_producer: FutureProducer<AlarmContext> = args
        .kafka
        .client_config(&[], &common::kafka::producer_guarantees())?
        .create_with_context(AlarmContext::default())
        .context("creating the dead-letter producer")?;

    let shared = Arc::new(Shared {
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        decoder: Decoder::new(args.registry.settings()?, registry.clone()),
        sink,
        dlq: DeadLetters::new(dlq_producer, &args.dlq_topic),
        metrics: metrics.clone(),
        topic: args.kafka.topic.clone(),
        backoff: Backoff::new(args.retry_backoff, args.retry_max_backoff),
        registry,
        subject,
        finished: tokio::sync::Notify::new(),
        room_again: room_again(args.max_in_flight as usize),
        finished_ms: AtomicU64::new(0),
        epoch: Instant::now(),
        fatal: std::sync::OnceLock::new(),
        stopping: tokio::sync::watch::channel(false).0,
    });
    let mut stopping = shared.stopping.subscribe();
    let watcher = tokio::spawn(watch_dependencies(shared.clone()));
    // Unbounded: the in-flight limit below bounds it.
    let (to_writer, records) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(write(shared.clone(), records));
    tracing::info!(topic = %args.kafka.topic, group = %args.group_id, "consuming");

    let max_in_flight = args.max_in_flight as usize;
    let mut paused = false;
    let mut full = false;
    let mut last_record = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut progress = Progress::new(args.progress_interval);
    tokio::pin!(stop);
    loop {
        let in_flight = tracker.in_flight();
        full = in_flight >= max_in_flight || (full && in_flight > shared.room_again);
        tokio::select! {
            signal = &mut stop => {
                tracing::info!("{signal} received: finishing in-flight rows");
                break;
            }
            _ = stopping.wait_for(|stop| *stop) => break,
            // While paused we keep polling: the group must keep seeing us.
            received = consumer.recv(), if !full || paused => {
                let work = match received {
                    Ok(m) => Work::of(&shared.decoder, &m),
                    Err(e) if common::kafka::error_class(&e) == Class::Fatal => {
                        shared.raise(Fault::fatal("kafka", format!(
                            "Kafka refused the consumer: {e}. Check the credentials and the ACLs \
                             of group {} on topic {} (KAFKA_GROUP_ID, KAFKA_TOPIC).",
                            args.group_id, args.kafka.topic
                        )));
                        continue;
                    }
                    Err(e) => {
                        Storm::global().warn("kafka", &format!("Kafka: {e}"));
                        continue;
                    }
                };
                last_record = Instant::now();
                metrics.consumed();
                tracker.begin(work.partition(), work.offset());
                // The writer task outlives this loop: it cannot have gone.
                let _ = to_writer.send(work);
            }
            _ = shared.finished.notified(), if full && !paused => {}
            _ = tick.tick() => {
                if let Some(message) = consumer.context().alarm.fatal(&args.kafka.bootstrap_servers) {
                    shared.raise(Fault::fatal("kafka", message));
                }
                store_offsets(consumer.as_ref(), &args.kafka.topic, &tracker);
                let in_flight = tracker.in_flight();
                // Full and nothing finishing: Cassandra is slow or gone. Pause
                // fetching so polling can go on without taking more records.
                if !paused && in_flight >= max_in_flight && shared.since_finished() > STALLED {
                    paused = set_paused(&consumer, &args.kafka.topic, &metrics, true);
                } else if paused && in_flight <= max_in_flight / 2 {
                    paused = !set_paused(&consumer, &args.kafka.topic, &metrics, false);
                }
                // Idle means: partitions assigned, nothing in flight, nothing new.
                // A group still waiting for a dead member to time out is not idle.
                if in_flight > 0 || !consumer.context().assigned.load(Relaxed) {
                    last_record = Instant::now();
                }
                if args.exit_when_idle.is_some_and(|idle| last_record.elapsed() >= idle) {
                    tracing::info!("nothing new for {:?}: exiting", args.exit_when_idle.unwrap_or_default());
                    break;
                }
                progress.maybe_log(&metrics, in_flight);
            }
        }
    }

    let drained = {
        let tracker = tracker.clone();
        tokio::task::spawn_blocking(move || tracker.wait_drained(None, DRAIN_GRACE)).await?
    };
    if drained > 0 {
        tracing::warn!(
            left = drained,
            "rows still in flight at exit; they will be re-delivered on restart"
        );
    }
    store_offsets(consumer.as_ref(), &args.kafka.topic, &tracker);
    commit(consumer.as_ref(), "exit");
    consumer.context().closing.store(true, Relaxed);
    watcher.abort();
    // Rows still in flight after the grace are not committed; they are re-delivered.
    writer.abort();
    let summary = Summary {
        consumed: metrics.consumed.load(Relaxed),
        written: metrics.written.load(Relaxed),
        dead_lettered: metrics.dead_lettered.load(Relaxed),
        retried: metrics.retries.load(Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    };
    match shared.fatal.get() {
        Some(fault) => Err(anyhow!(
            "{}\nsummary: {summary} (offsets committed only up to rows written)",
            fault.message
        )),
        None => Ok(summary),
    }
}

/// The writer: every record in flight is a future in one `FuturesUnordered`,
/// polled by this one task, rather than a task of its own (a task per row cost
/// an allocation and a trip through the scheduler each). A task apart from the
/// poll loop, because a revoke waits for these rows inside that loop's `recv`.
async fn write(shared: Arc<Shared>, mut records: UnboundedReceiver<Work>) {
    let mut writing = FuturesUnordered::new();
    let mut batch = Vec::with_capacity(64);
    loop {
        tokio::select! {
            // Finishing rows first frees their slots before taking more.
            biased;
            Some(()) = writing.next(), if !writing.is_empty() => {}
            taken = records.recv_many(&mut batch, 64) => {
                if taken == 0 {
                    break;
                }
                writing.extend(batch.drain(..).map(|work| process(&shared, work)));
            }
        }
    }
    while writing.next().await.is_some() {}
}

/// What the poll loop hands the writer for one record.
// `Row` is nearly every record: boxing it would allocate per row to shrink the rare `Record`.
#[allow(clippy::large_enum_variant)]
enum Work {
    /// Decoded on the poll loop, straight from librdkafka's buffer: its writer schema was
    /// known (every record but the first of each schema id).
    Row {
        partition: i32,
        offset: i64,
        produced_ms: i64,
        row: UserRow,
    },
    /// A copy of the record, for the writer to decode (asking the registry first) or to
    /// dead-letter: the first of a schema id, or one that does not decode.
    Record(OwnedMessage),
}

impl Work {
    fn of(decoder: &Decoder, message: &BorrowedMessage<'_>) -> Work {
        let produced_ms = produced_ms(message);
        match decoder.known_row(message.payload(), produced_ms) {
            Some(row) => Work::Row {
                partition: message.partition(),
                offset: message.offset(),
                produced_ms,
                row,
            },
            None => Work::Record(message.detach()),
        }
    }

    fn partition(&self) -> i32 {
        match self {
            Work::Row { partition, .. } => *partition,
            Work::Record(message) => message.partition(),
        }
    }

    fn offset(&self) -> i64 {
        match self {
            Work::Row { offset, .. } => *offset,
            Work::Record(message) => message.offset(),
        }
    }
}

/// When a record was produced: its Kafka timestamp, in ms since the epoch.
fn produced_ms(message: &impl Message) -> i64 {
    message
        .timestamp()
        .to_millis()
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
}

/// One record, start to finish: written, dead-lettered, or (on a fatal
/// fault) abandoned, so that its offset is never committed by this run.
async fn process(shared: &Shared, work: Work) {
    let (partition, offset) = (work.partition(), work.offset());
    let done = match work {
        Work::Row {
            produced_ms, row, ..
        } => write_row(shared, &row, produced_ms, &mut shared.backoff.clone()).await,
        // Boxed: rare, and its registry lookup would otherwise make every record's future
        // (copied whole into the writer's set) that much bigger.
        Work::Record(message) => Box::pin(handle(shared, &message)).await,
    };
    let left = match done {
        Ok(()) => shared.tracker.finish(partition, offset),
        Err(fault) => {
            let left = shared.tracker.abandon(partition, offset);
            shared.raise(fault);
            left
        }
    };
    shared.mark_finished();
    if left <= shared.room_again {
        shared.finished.notify_one();
    }
}

/// Writes `row`, retrying transient failures for as long as they last. Returns only a
/// fatal fault.
async fn write_row(
    shared: &Shared,
    row: &UserRow,
    produced_ms: i64,
    backoff: &mut Backoff,
) -> Result<(), Fault> {
    loop {
        let begun = Instant::now();
        // Boxed: the driver's request future is several KB, and inline it would make every
        // record's future that size, copied whole into the writer's set.
        match Box::pin(shared.sink.write(row)).await {
            Ok(()) => {
                let produced =
                    std::time::UNIX_EPOCH + Duration::from_millis(produced_ms.max(0) as u64);
                let since_produced = std::time::SystemTime::now()
                    .duration_since(produced)
                    .unwrap_or_default();
                shared.metrics.written(begun.elapsed(), since_produced);
                return Ok(());
            }
            Err(f) if f.class == Class::Retry => {
                shared.retry_after("cassandra", backoff, &f).await?
            }
            Err(f) => return Err(f),
        }
    }
}

/// Decodes `message` (asking the registry for its writer schema) and writes it, or
/// dead-letters it if it is poison, retrying transient failures for as long as they last.
/// Returns only a fatal fault.
async fn handle(shared: &Shared, message: &OwnedMessage) -> Result<(), Fault> {
    let produced_ms = produced_ms(message);
    let mut backoff = shared.backoff.clone();
    let decoded = loop {
        match shared.decoder.to_row(message.payload(), produced_ms).await {
            Ok(row) => break Ok(row),
            Err(f) if f.class == Class::Poison => break Err(f),
            Err(f) if f.class == Class::Retry => {
                shared.retry_after("registry", &mut backoff, &f).await?
            }
            Err(f) => return Err(f),
        }
    };
    backoff.reset();
    match decoded {
        Ok(row) => write_row(shared, &row, produced_ms, &mut backoff).await,
        Err(poison) => loop {
            match shared.dlq.send(message, &poison).await {
                Ok(()) => {
                    shared
                        .metrics
                        .dead_lettered(&poison, message.partition(), message.offset());
                    return Ok(());
                }
                Err(e) => {
                    let class = common::kafka::error_class(&e);
                    let fault = Fault::new(
                        class,
                        "dlq",
                        format!(
                            "could not write to the dead-letter topic {}: {e}{}",
                            shared.dlq.topic(),
                            if class == Class::Fatal {
                                ". Check that the consumer may write to it (KAFKA_DLQ_TOPIC)"
                            } else {
                                ""
                            }
                        ),
                    );
                    if class == Class::Fatal {
                        return Err(fault);
                    }
                    shared.retry_after("dlq", &mut backoff, &fault).await?
                }
            }
        },
    }
}

/// Pauses or resumes every assigned partition. Returns whether it took effect.
fn set_paused(consumer: &KafkaConsumer, topic: &str, metrics: &Metrics, pause: bool) -> bool {
    let mut tpl = TopicPartitionList::new();
    for partition in metrics.assigned() {
        tpl.add_partition(topic, partition);
    }
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match result {
        Ok(()) => {
            tracing::debug!(
                pause,
                "fetching {}",
                if pause { "paused" } else { "resumed" }
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                "could not {} partitions: {e}",
                if pause { "pause" } else { "resume" }
            );
            false
        }
    }
}

/// Every few seconds: do Kafka, the registry and Cassandra answer, and how far behind are we?
async fn watch_dependencies(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        shared.metrics.cassandra.observe(shared.sink.ping().await);
        shared
            .metrics
            .registry
            .observe(shared.registry.ping(&shared.subject).await);
        let probe = shared.clone();
        let lag = tokio::task::spawn_blocking(move || lag(&probe.consumer, &probe.topic)).await;
        match lag {
            Ok(Ok(lag)) => {
                shared.metrics.kafka.observe(true);
                shared.metrics.measured_lag(lag);
            }
            Ok(Err(e)) => {
                shared.metrics.kafka.observe(false);
                Storm::global().warn("kafka", &format!("Kafka not answering: {e}"));
            }
            Err(_) => {}
        }
    }
}

/// Records behind the high watermark per assigned partition.
fn lag(consumer: &KafkaConsumer, topic: &str) -> KafkaResult<BTreeMap<i32, i64>> {
    // Answers even with nothing assigned, so readiness also means "broker reachable".
    consumer.fetch_metadata(Some(topic), Duration::from_secs(2))?;
    let mut lag = BTreeMap::new();
    for element in consumer.position()?.elements() {
        // A partition we have not read from yet has no position: it does not count yet.
        if let Offset::Offset(position) = element.offset() {
            let (_, high) =
                consumer.fetch_watermarks(topic, element.partition(), Duration::from_secs(2))?;
            lag.insert(element.partition(), (high - position).max(0));
        }
    }
    Ok(lag)
}

struct Progress {
    every: Duration,
    last: Instant,
    last_written: u64,
}

impl Progress {
    fn new(every: Duration) -> Self {
        Progress {
            every,
            last: Instant::now(),
            last_written: 0,
        }
    }

    fn maybe_log(&mut self, metrics: &Metrics, in_flight: usize) {
        if self.last.elapsed() < self.every {
            return;
        }
        let written = metrics.written.load(Relaxed);
        let rate = (written - self.last_written) as f64 / self.last.elapsed().as_secs_f64();
        (self.last, self.last_written) = (Instant::now(), written);
        tracing::info!(
            consumed = metrics.consumed.load(Relaxed),
            written,
            dead_lettered = metrics.dead_lettered.load(Relaxed),
            retries = metrics.retries.load(Relaxed),
            in_flight,
            lag = metrics.lag.load(Relaxed),
            rows_per_s = rate.round(),
            partitions = ?metrics.assigned(),
            "progress"
        );
    }
}
