//! The consumer's own Kafka behaviour, hermetic: the real poll loop and rebalance hooks
//! against librdkafka's mock cluster (a real broker protocol in-process, no services). The
//! tests play the writer: they take the records the loop hands over and decide when each is
//! done, so a rebalance or a stall can be placed in the middle of the writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::in_flight::Slot;
use super::*;

const TOPIC: &str = "users";
const GROUP: &str = "writers";
/// Bound on every wait for the mock cluster. A group join takes a few seconds, but a member
/// the coordinator forgot (a lost assignment) rejoins only after its old session ends and a
/// full rebalance: up to about a minute on a loaded 2-core machine, which 60 s cut short.
const PATIENCE: Duration = Duration::from_secs(180);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
}

struct Cluster {
    mock: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl Cluster {
    fn new(partitions: i32) -> Cluster {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic(TOPIC, partitions, 1).expect("topic");
        let bootstrap = mock.bootstrap_servers();
        Cluster { mock, bootstrap }
    }

    /// Writes `count` records to each of `partitions`, offsets 0..count.
    fn produce(&self, partitions: &[i32], count: usize) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("producer");
        for &partition in partitions {
            for n in 0..count {
                let payload = format!("record {n}");
                producer
                    .send(
                        BaseRecord::<(), _>::to(TOPIC)
                            .partition(partition)
                            .payload(&payload),
                    )
                    .expect("enqueued");
            }
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }

    /// The group's committed offset of each of `partitions` (None: nothing committed).
    fn committed(&self, partitions: &[i32]) -> Vec<Option<i64>> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", GROUP)
            .create()
            .expect("offset reader");
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition(TOPIC, p);
        }
        let committed = reader
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        partitions
            .iter()
            .map(
                |&p| match committed.find_partition(TOPIC, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect()
    }
}

/// A consumer replica as `run` builds it (the same client settings, the same poll loop and
/// rebalance hooks), with the test as its writer.
struct Replica {
    consumer: Arc<KafkaConsumer>,
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
    works: mpsc::UnboundedReceiver<Vec<(Slot, Work)>>,
    /// Records handed over in a burst and not yet taken by the test.
    pending: std::collections::VecDeque<(Slot, Work)>,
    stop: Option<oneshot::Sender<()>>,
    polling: tokio::task::JoinHandle<()>,
}

impl Replica {
    fn start(cluster: &Cluster, max_in_flight: usize, drain_grace: Duration) -> Replica {
        let kafka = Cli::parse_from([
            "test",
            "--bootstrap-servers",
            &cluster.bootstrap,
            "--topic",
            TOPIC,
            // The mock coordinator waits up to a session for members to rejoin: short ones
            // keep each rebalance to seconds. Everything else is as `run` sets it.
            "--kafka-config",
            "session.timeout.ms=15000;heartbeat.interval.ms=500",
        ])
        .kafka;
        let in_flight = Arc::new(InFlight::new(max_in_flight));
        let metrics = Arc::new(Metrics::new());
        let context = Rebalancing::new(in_flight.clone(), metrics.clone(), drain_grace);
        let consumer = Arc::new(subscribe(&kafka, &member(), context).expect("subscribed"));
        let (to_writer, works) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let polling = tokio::spawn({
            let (consumer, in_flight, metrics) =
                (consumer.clone(), in_flight.clone(), metrics.clone());
            async move {
                let settings = PollSettings {
                    topic: TOPIC.into(),
                    group_id: GROUP.into(),
                    bootstrap_servers: kafka.bootstrap_servers.clone(),
                    exit_when_idle: None,
                    progress_interval: Duration::from_secs(3600),
                };
                let halt = Halt::default();
                Poll {
                    consumer: &consumer,
                    settings: &settings,
                    in_flight: &in_flight,
                    halt: &halt,
                    metrics: &metrics,
                    to_writer,
                }
                .run(
                    |m| Work {
                        message: m.detach(),
                        row: None,
                    },
                    async {
                        let _ = stopped.await;
                        "stop"
                    },
                )
                .await;
                finish(&consumer, TOPIC, &in_flight)
                    .await
                    .expect("finished");
            }
        });
        Replica {
            consumer,
            in_flight,
            metrics,
            works,
            pending: Default::default(),
            stop: Some(stop),
            polling,
        }
    }

    /// The next `n` records handed to the writer.
    async fn take(&mut self, n: usize) -> Vec<Slot> {
        let mut taken = Vec::new();
        while taken.len() < n {
            if self.pending.is_empty() {
                let burst = tokio::time::timeout(PATIENCE, self.works.recv())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("only {} of {n} records handed over: {taken:?}", taken.len())
                    })
                    .expect("the poll loop is running");
                self.pending.extend(burst);
            }
            let (slot, work) = self.pending.pop_front().expect("a burst is never empty");
            assert_eq!(
                (slot.partition, slot.offset),
                (work.partition(), work.offset())
            );
            taken.push(slot);
        }
        taken
    }

    /// /metrics as the watcher would leave it now (lag measured), rendered `later` than now.
    async fn metrics_in(&self, later: Duration) -> String {
        let consumer = self.consumer.clone();
        let records = tokio::task::spawn_blocking(move || watcher::lag(&consumer, TOPIC))
            .await
            .expect("joined")
            .expect("lag measured");
        self.metrics
            .measured_lag(records, self.in_flight.unwritten());
        self.metrics
            .render_at(chrono::Utc::now().timestamp_millis() + later.as_millis() as i64)
    }

    fn write(&self, records: &[Slot]) {
        for &slot in records {
            self.in_flight.finish(slot);
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.polling.await.expect("the poll loop ends");
        close(self.consumer).await;
    }
}

fn member() -> Member {
    Member {
        group_id: GROUP.into(),
        instance_id: None,
    }
}

/// The value of the sample `series` (name and labels as rendered) in a /metrics text; NaN
/// when it is not there.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// (partition, offset) of each slot.
fn at(slots: &[Slot]) -> Vec<(i32, i64)> {
    slots.iter().map(|s| (s.partition, s.offset)).collect()
}

/// Waits (checking every 20 ms, at most [`PATIENCE`]) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_waits_for_the_rows_in_flight_then_commits_them() {
    let cluster = Cluster::new(2);
    cluster.produce(&[0, 1], 5);
    let mut a = Replica::start(&cluster, 100, PATIENCE);
    let taken = a.take(10).await;

    // A second replica joins: one partition moves, while all its rows are still in flight.
    let b = Replica::start(&cluster, 100, PATIENCE);
    until("the revoke waits for its rows", || {
        a.consumer.context().draining()
    })
    .await;
    assert!(
        b.consumer.context().assignment().is_empty(),
        "the partition moved before its rows were written"
    );
    a.write(&taken);
    until("the new replica owns a partition", || {
        b.consumer.context().assignment().len() == 1
    })
    .await;
    let moved = b.consumer.context().assignment()[0];
    assert_eq!(
        cluster.committed(&[moved]),
        vec![Some(5)],
        "the revoke commits the rows written while it waited"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_unwritten_when_the_grace_ends_are_redelivered_to_the_next_owner() {
    let cluster = Cluster::new(2);
    cluster.produce(&[0, 1], 5);
    let mut a = Replica::start(&cluster, 100, Duration::from_millis(500));
    let taken = a.take(10).await;
    // Offsets 0 and 1 of each partition written; 2, 3 and 4 still in flight.
    a.write(
        &taken
            .iter()
            .copied()
            .filter(|s| s.offset < 2)
            .collect::<Vec<_>>(),
    );
    // Committed (every second) before the next replica joins: should the coordinator drop
    // the first replica while the group rebalances (the mock may, on a loaded machine), the
    // next owner still starts from what was written, and the claim below is the same.
    until("the written rows are committed", || {
        cluster.committed(&[0, 1]) == vec![Some(2), Some(2)]
    })
    .await;

    let mut b = Replica::start(&cluster, 100, PATIENCE);
    let redelivered = b.take(3).await;
    let moved = redelivered[0].partition;
    assert_eq!(
        at(&redelivered),
        vec![(moved, 2), (moved, 3), (moved, 4)],
        "the next owner starts at the first row not written, and not before"
    );
    // Written now, so that neither replica's exit waits for them.
    a.write(&taken);
    b.write(&redelivered);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_writes_pause_fetching_and_resume_it_without_losing_a_record() {
    let cluster = Cluster::new(1);
    cluster.produce(&[0], 12);
    let mut a = Replica::start(&cluster, 4, PATIENCE);
    let first = a.take(4).await;
    until("fetching pauses", || a.consumer.context().paused()).await;
    assert!(
        a.works.is_empty() && a.pending.is_empty(),
        "no record taken beyond the write slots"
    );
    // As while Cassandra is away: the oldest record in flight ages, and its age is the lag
    // in seconds. Read 130 s from now, it is past the 2-minute alert threshold.
    let text = a.metrics_in(Duration::from_secs(130)).await;
    let age = sample(&text, "consumer_lag_seconds");
    assert!(
        (130.0..130.0 + PATIENCE.as_secs_f64()).contains(&age),
        "{text}"
    );
    assert_eq!(
        sample(&text, "consumer_partition_lag_seconds{partition=\"0\"}"),
        age
    );
    assert_eq!(sample(&text, "consumer_lag_records"), 8.0, "{text}");

    a.write(&first);
    until("fetching resumes", || !a.consumer.context().paused()).await;
    let mut rest = Vec::new();
    while rest.len() < 8 {
        let more = a.take(1).await;
        a.write(&more);
        rest.extend(more);
    }
    assert_eq!(
        at(&first.into_iter().chain(rest).collect::<Vec<_>>()),
        (0..12).map(|o| (0, o)).collect::<Vec<_>>(),
        "every record once, in order"
    );
    // Caught up: no lag of either kind, the commit seen by the commit callback.
    let text = a.metrics_in(Duration::from_secs(130)).await;
    assert_eq!(sample(&text, "consumer_lag_seconds"), 0.0, "{text}");
    assert_eq!(sample(&text, "consumer_lag_records"), 0.0, "{text}");
    assert_eq!(
        sample(&text, "consumer_rebalances_total{kind=\"assigned\"}"),
        1.0,
        "{text}"
    );
    until("the commit is shown", || {
        sample(
            &a.metrics.render(),
            "consumer_partition_committed_offset{partition=\"0\"}",
        ) == 12.0
    })
    .await;
    a.stop().await;
    assert_eq!(cluster.committed(&[0]), vec![Some(12)], "committed at exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_assignment_neither_waits_nor_commits() {
    let cluster = Cluster::new(1);
    cluster.produce(&[0], 5);
    // A revoke that waited would outlast the test: a lost one must not wait at all.
    let mut a = Replica::start(&cluster, 100, Duration::from_secs(3600));
    // Taken, none written yet (a written row's offset would be auto-committed).
    a.take(5).await;

    // The coordinator forgets the member (as when its session expired): the assignment is lost.
    cluster.mock.request_errors(
        RDKafkaApiKey::Heartbeat,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID; 3],
    );
    // Re-joined, the consumer reads the partition again from the last commit: none was made
    // on the lost revoke, so it starts over at the first record.
    let again = a.take(5).await;
    assert_eq!(
        at(&again),
        (0..5).map(|o| (0, o)).collect::<Vec<_>>(),
        "re-delivered from the start"
    );
    assert_eq!(
        cluster.committed(&[0]),
        vec![None],
        "nothing committed on a lost assignment"
    );
    a.write(&again);
    a.stop().await;
}

/// A replica (4 write slots) paused with every slot taken, and a second one that took one of
/// its two partitions and wrote all 20 of its records. Returns them, the moved partition and
/// the first replica's 4 records (those of the moved partition are now orphans).
async fn paused_while_a_partition_moves(cluster: &Cluster) -> (Replica, Replica, i32, Vec<Slot>) {
    cluster.produce(&[0, 1], 20);
    // A short grace: the revoke gives up on its rows in flight, which stay counted.
    let mut a = Replica::start(cluster, 4, Duration::from_millis(500));
    let held = a.take(4).await;
    until("fetching pauses", || a.consumer.context().paused()).await;

    let mut b = Replica::start(cluster, 100, PATIENCE);
    let taken = b.take(20).await;
    let moved = taken[0].partition;
    b.write(&taken);
    assert_eq!(a.consumer.context().assignment(), vec![1 - moved]);
    assert!(
        a.in_flight.count() <= 4,
        "the revoke admitted no more records"
    );
    (a, b, moved, held)
}

/// Takes and writes records until `last` of `partition` was among them.
async fn write_until(replica: &mut Replica, partition: i32, last: i64) {
    loop {
        let taken = replica.take(1).await;
        replica.write(&taken);
        if (taken[0].partition, taken[0].offset) == (partition, last) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_assigned_while_fetching_is_paused_waits_with_the_others() {
    let cluster = Cluster::new(2);
    let (mut a, b, moved, held) = paused_while_a_partition_moves(&cluster).await;

    // The second replica leaves: its partition comes back while the first is still paused.
    b.stop().await;
    until("the partition is back", || {
        a.consumer.context().assignment().len() == 2
    })
    .await;
    cluster.produce(&[moved], 5);
    assert!(
        tokio::time::timeout(Duration::from_secs(3), a.works.recv())
            .await
            .is_err(),
        "a record was taken while every slot is held"
    );
    assert!(a.in_flight.count() <= 4);

    // The held rows are written: fetching resumes, the returned partition's too.
    a.write(&held);
    write_until(&mut a, moved, 24).await;
    a.stop().await;
    assert_eq!(cluster.committed(&[moved]), vec![Some(25)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_revoked_while_paused_is_fetched_when_it_comes_back() {
    let cluster = Cluster::new(2);
    let (mut a, b, moved, held) = paused_while_a_partition_moves(&cluster).await;

    // The first replica resumes with one partition and finishes it.
    a.write(&held);
    write_until(&mut a, 1 - moved, 19).await;
    assert!(!a.consumer.context().paused());

    // The second replica leaves: the partition it took comes back to a replica that is not
    // paused, and must be fetched (librdkafka kept its pause from before the revoke).
    b.stop().await;
    cluster.produce(&[moved], 5);
    write_until(&mut a, moved, 24).await;
    a.stop().await;
}
