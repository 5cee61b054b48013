//! The poll loop: take records from Kafka while there are write slots, hand them to the
//! writer (what is ready at once, together), store the offsets that moved, and pause fetching while the writes stall (polling
//! goes on, so the group keeps us). It ends on a signal, a fatal fault, or idleness.

use std::time::{Duration, Instant};

use common::fault::{Class, Fault};
use common::kafka::Alarmed;
use common::storm::Storm;
use futures::FutureExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use tokio::sync::mpsc::UnboundedSender;

use super::halt::Halt;
use super::in_flight::{InFlight, Slot};
use super::progress::Progress;
use super::rebalance::{set_paused, store_offsets, KafkaConsumer};
use super::work::Work;
use crate::metrics::Metrics;

/// What the poll loop needs to know of the run's settings.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub topic: String,
    pub group_id: String,
    /// For the message of a fatal Kafka fault.
    pub bootstrap_servers: String,
    /// Exit after this long with no new record and nothing in flight.
    pub exit_when_idle: Option<Duration>,
    pub progress_interval: Duration,
}

/// How often offsets are stored, stalls checked and progress logged.
const TICK: Duration = Duration::from_millis(200);

pub struct Poll<'a> {
    pub consumer: &'a KafkaConsumer,
    pub settings: &'a PollSettings,
    pub in_flight: &'a InFlight,
    pub halt: &'a Halt,
    pub metrics: &'a Metrics,
    pub to_writer: UnboundedSender<Vec<(Slot, Work)>>,
}

impl Poll<'_> {
    /// Polls until `stop` resolves, a fault is raised, or the consumer is idle for
    /// `exit_when_idle`. `intake` makes each record the writer's work.
    pub async fn run(
        self,
        intake: impl Fn(&BorrowedMessage<'_>) -> Work,
        stop: impl std::future::Future<Output = &'static str>,
    ) {
        let Poll {
            consumer,
            settings,
            in_flight,
            halt,
            metrics,
            to_writer,
        } = self;
        let mut paused = false;
        let mut full = false;
        let mut last_record = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        let mut progress = Progress::new(settings.progress_interval);
        let mut stopping = halt.watch();
        tokio::pin!(stop);
        loop {
            full = in_flight.is_full(full);
            tokio::select! {
                signal = &mut stop => {
                    tracing::info!("{signal} received: finishing the rows being written");
                    // Rows waiting to be retried are given up at once (re-delivered after a
                    // restart) rather than holding the stop for the drain's grace.
                    halt.stop();
                    break;
                }
                _ = stopping.wait_for(|stop| *stop) => break,
                // While paused we keep polling: the group must keep seeing us.
                received = consumer.recv(), if !full || paused => {
                    // With it, every record already fetched while slots remain: handed over
                    // together, so that rows that arrived together are written together.
                    let mut burst = Vec::new();
                    let mut next = Some(received);
                    while let Some(received) = next.take() {
                        let work = match received {
                            Ok(m) => intake(&m),
                            Err(e) if common::fault::kafka::error_class(&e) == Class::Fatal => {
                                halt.raise(Fault::fatal("kafka", format!(
                                    "Kafka refused the consumer: {e}. Check the credentials and the ACLs \
                                     of group {} on topic {} (KAFKA_GROUP_ID, KAFKA_TOPIC).",
                                    settings.group_id, settings.topic
                                )));
                                break;
                            }
                            Err(e) => {
                                Storm::global().warn("kafka", &format!("Kafka: {e}"));
                                break;
                            }
                        };
                        last_record = Instant::now();
                        consumer.context().alarm().reached();
                        metrics.consumed();
                        let slot = in_flight.begin(work.partition(), work.offset(), work.produced_ms());
                        burst.push((slot, work));
                        if !in_flight.is_full(false) {
                            next = consumer.recv().now_or_never();
                        }
                    }
                    if !burst.is_empty() {
                        // The writer outlives this loop: it cannot have gone. Unbounded, as
                        // every record sent holds a slot: the slots bound it.
                        let _ = to_writer.send(burst);
                    }
                }
                _ = in_flight.room(), if full && !paused => {}
                _ = tick.tick() => {
                    if let Some(message) = consumer.context().alarm().fatal(&settings.bootstrap_servers) {
                        halt.raise(Fault::fatal("kafka", message));
                    }
                    store_offsets(consumer, &settings.topic, in_flight);
                    // Every slot taken and nothing finishing: Cassandra is slow or gone.
                    // Pause fetching so polling can go on without taking more records.
                    if !paused && in_flight.stalled() {
                        paused = set_paused(consumer, &settings.topic, true);
                    } else if paused && in_flight.may_resume() {
                        paused = !set_paused(consumer, &settings.topic, false);
                    }
                    // Idle means: partitions assigned, nothing in flight, nothing new.
                    // A group still waiting for a dead member to time out is not idle.
                    let count = in_flight.count();
                    if count > 0 || !consumer.context().ever_assigned() {
                        last_record = Instant::now();
                    }
                    if let Some(idle) = settings.exit_when_idle {
                        if last_record.elapsed() >= idle {
                            tracing::info!("nothing new for {idle:?}: exiting");
                            break;
                        }
                    }
                    progress.maybe_log(metrics, count, || consumer.context().assignment());
                }
            }
        }
    }
}
