//! One host black-holed (`tests/stack partition kafka-N cassandra-N`: its packets dropped, not
//! refused, so connections hang instead of failing fast) under a steady stream and three
//! replicas writing at QUORUM, for 30 s plus the time Kafka's own failover makes nothing
//! readable (acks=all: 3-18 s, which no client can shorten): the replicas keep writing at
//! (nearly) the published rate with the two other hosts, without flooding their logs, and
//! once the host is back every record is exactly one row, nothing dead-lettered. (Own test binary: it cuts shared nodes.)
//! Host 2 or 3 (127.0.0.3 or .4), never 1: 127.0.0.2 also hosts ZooKeeper and the registry.
//! The group's name is chosen so that its coordinator is the cut broker: the hardest case
//! (every replica's heartbeats and commits go to the silent host), and the one a fresh-clone
//! CI run failed on (every replica's session expired and the group lost its partitions) while
//! the consumer's session timeout was 10 s.

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_tests::{
    cassandra_healthy, dead_lettered, kafka_healthy, stack, stack_async, start_stream, stop_stream,
    wait_each_writes, wait_for, wait_partitions_shared, Replica,
};
use integration::pipeline::Lane;
use integration::Services;

/// Users per second the producer publishes: half of what three debug-built replicas write on
/// two cores shared with the whole bed, so a dip shows as a dip and not as the machine's limit.
const RATE: u64 = 150;
/// How long the replicas may take to keep up with the stream before the cut.
const STEADY: Duration = Duration::from_secs(75);
/// Keeping up: no more than a second of stream published and not yet written.
const STEADY_BACKLOG: u64 = RATE;
/// How long the host stays cut while Kafka serves records (see the fault below).
const PARTITION: Duration = Duration::from_secs(30);
/// Longer than this without a record readable after the cut, and the cluster failed to move
/// the cut broker's partitions at all: the bed's fault, reported as such.
const KAFKA_FAILOVER: Duration = Duration::from_secs(90);
/// Brokers whose host may be cut (broker N and Cassandra node N share host N).
const CUTTABLE: [i32; 2] = [2, 3];
/// The share of the published rate the replicas must keep writing while the host is gone.
const MIN_SHARE: f64 = 0.8;
/// Log lines a replica may write during the partition (a summary now and then, not a line
/// per retried write).
const MAX_LOG_LINES: usize = 20;

/// Heals the host however the test ends: the bed is shared and must never stay cut.
struct Partition {
    members: [String; 2],
}

impl Partition {
    async fn start(host: i32) -> Partition {
        let members = [format!("kafka-{host}"), format!("cassandra-{host}")];
        stack_async(&["partition", &members[0], &members[1]]).await;
        Partition { members }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        stack(&["heal", &self.members[0], &self.members[1]]);
    }
}

fn lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Rows written by all replicas so far, or None if one did not answer /metrics (the next
/// sample counts its rows).
async fn rows_written(replicas: &[Replica]) -> Option<u64> {
    let mut n = 0;
    for r in replicas {
        let body = r.metrics().await;
        if !body.contains("consumer_rows_written_total") {
            return None;
        }
        n += cluster_tests::metric(&body, "consumer_rows_written_total");
    }
    Some(n)
}

/// The same, waiting until every replica answers.
async fn rows_written_now(replicas: &[Replica]) -> u64 {
    wait_for(
        "every replica answers /metrics",
        Duration::from_secs(30),
        || async {
            rows_written(replicas)
                .await
                .ok_or_else(|| "a replica did not".to_string())
        },
    )
    .await
}

// Several threads: the fake API serves the producer from this process, and must not wait
// behind the test's own blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_host_slows_neither_writes_nor_floods_the_logs() {
    let s = Services::from_env();
    let mut lane = Lane::new("blackhole");
    let (group, host) = group_coordinated_by(&s, &lane.group).await;
    lane.group = group;
    // Progress lines at the default interval: they count against the log budget too.
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::spawn_with(&lane, &s, "QUORUM", &["--progress-interval", "10s"]))
        .collect();
    wait_partitions_shared(&replicas).await;
    let (_api, mut producer) = start_stream(&lane, &s, RATE).await;
    wait_each_writes(&replicas).await;
    // Steady before the cut: on a bed started a minute before (cold JVMs, a new table) the
    // replicas first write a fraction of the stream and time out. A fresh-clone CI run cut
    // there, 5 s after the first rows, and measured that warm-up rather than the fault
    // (every write timing out before the host was even cut).
    wait_for(
        &format!("the replicas keep up with the stream (at most {STEADY_BACKLOG} records behind)"),
        STEADY,
        || async {
            let published = topic_end(&s, &lane.topic).await.max(0) as u64;
            let written = rows_written_now(&replicas).await;
            let behind = published.saturating_sub(written);
            if behind <= STEADY_BACKLOG {
                Ok(())
            } else {
                Err(format!(
                    "{written} rows written of {published} records published"
                ))
            }
        },
    )
    .await;
    assert!(
        producer.try_wait().expect("producer state").is_none(),
        "the producer is still publishing when the host is cut"
    );

    // The fault: the coordinator's host cut, then back. Rows written and records published
    // in the same window. With acks=all, no record of any partition the cut broker replicates
    // is readable (nor acknowledged to the producer) until the cluster drops it from the
    // in-sync replicas: its ZooKeeper session timeout, then the controller's election of new
    // leaders, which took 5 s on a quiet bed and about 18 s in a loaded CI run. No client can
    // shorten that, and the consumers then have a burst to catch up; so the host stays cut
    // for PARTITION of Kafka serving records, plus however long Kafka served none, and the
    // consumers are measured over the whole of it.
    let published0 = topic_end(&s, &lane.topic).await;
    let rows0 = rows_written_now(&replicas).await;
    let logs0: Vec<usize> = replicas.iter().map(|r| lines(&r.log)).collect();
    let readable = HighWatermarks::watch(&s, &lane.topic);
    let t0 = Instant::now();
    let cut = Partition::start(host).await;
    // Rows and readable records per sample through the partition: where a dip is, and
    // whether Kafka or the consumers made it (printed below).
    let (mut rows_per_sample, mut readable_per_sample) = (Vec::new(), Vec::new());
    let (mut last_rows, mut last_readable) = (rows0, readable.now());
    let mut kafka_silent = Duration::ZERO;
    let mut unanswered = 0;
    while t0.elapsed() + Duration::from_secs(1) < PARTITION + kafka_silent {
        assert!(
            kafka_silent < KAFKA_FAILOVER,
            "Kafka made no record readable for {kafka_silent:?} after host {host} was cut: \
             the cluster did not move the cut broker's partitions (see .stack/logs/kafka-*.log)"
        );
        let sample = Instant::now();
        tokio::time::sleep_until((sample + Duration::from_secs(1)).into()).await;
        let Some(rows) = rows_written(&replicas).await else {
            unanswered += 1;
            continue;
        };
        let visible = readable.now();
        if visible == last_readable {
            kafka_silent += sample.elapsed();
        }
        rows_per_sample.push(rows.saturating_sub(last_rows));
        readable_per_sample.push(visible.saturating_sub(last_readable));
        (last_rows, last_readable) = (rows, visible);
    }
    drop(readable);
    tokio::time::sleep((PARTITION + kafka_silent).saturating_sub(t0.elapsed())).await;
    let rows1 = rows_written_now(&replicas).await;
    let published1 = topic_end(&s, &lane.topic).await;
    let window = t0.elapsed();
    let logs1: Vec<usize> = replicas.iter().map(|r| lines(&r.log)).collect();
    drop(cut);

    let rate = (rows1 - rows0) as f64 / window.as_secs_f64();
    let published = (published1 - published0) as f64 / window.as_secs_f64();
    let logged: Vec<usize> = logs1.iter().zip(&logs0).map(|(b, a)| b - a).collect();
    eprintln!(
        "host {host} (the group's coordinator) cut for {window:.1?}, of which Kafka made no record \
         readable for {kafka_silent:.1?}: {} rows written, {rate:.0} rows/s; {} records published, \
         {published:.0}/s (the producer's target: {RATE}/s); written/published {:.0} %; per ~1 s \
         sample, rows written {rows_per_sample:?}, records made readable {readable_per_sample:?} \
         ({unanswered} samples not answered); log lines per replica {logged:?}",
        rows1 - rows0,
        published1 - published0,
        100.0 * rate / published.max(1.0)
    );
    let running: Vec<bool> = replicas.iter_mut().map(Replica::running).collect();
    assert!(
        running.iter().all(|r| *r),
        "every replica rides out the partition: {running:?}\n{}",
        replicas
            .iter()
            .map(Replica::log_tail)
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(
        rate >= MIN_SHARE * published,
        "writes kept up with the stream while a host was gone: {rate:.0} rows/s < {:.0} % of \
         {published:.0} published/s\n{}",
        100.0 * MIN_SHARE,
        replicas
            .iter()
            .map(Replica::log_tail)
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    for (r, n) in replicas.iter().zip(&logged) {
        assert!(
            *n < MAX_LOG_LINES,
            "replica {} wrote {n} log lines during the partition (< {MAX_LOG_LINES}): {}",
            r.addr,
            r.log_tail()
        );
    }

    // The stream ends here: the producer flushes what it accepted and reports it.
    stop_stream(producer, &s, &lane, "the whole partition").await;
    assert_eq!(dead_lettered(&s, &lane), 0, "nothing dead-lettered");
    for r in &mut replicas {
        assert!(r.running(), "no replica crashed: {}", r.log_tail());
    }

    // The host is back: the cluster is whole again for the next test.
    wait_for(
        "all brokers back, every partition fully in sync",
        Duration::from_secs(120),
        || async { kafka_healthy(&s, &lane.topic) },
    )
    .await;
    wait_for(
        "all Cassandra nodes answer a read at ALL",
        Duration::from_secs(120),
        || cassandra_healthy(&s, &lane.keyspace),
    )
    .await;
}

/// `base` with a suffix that makes one of the CUTTABLE brokers the group's coordinator, and
/// that broker. Which brokers lead `__consumer_offsets` depends on earlier faults; the bed
/// hands leadership back to the preferred brokers within seconds, so one of the two leads a
/// partition of it unless both are down.
async fn group_coordinated_by(services: &Services, base: &str) -> (String, i32) {
    wait_for(
        &format!("a group name that broker {CUTTABLE:?} coordinates"),
        Duration::from_secs(90),
        || {
            let (services, base) = (services.clone(), base.to_string());
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut seen = Vec::new();
                    // 3 partitions of __consumer_offsets on the bed: a few names find each leader
                    for n in 0..32 {
                        let group = format!("{base}_{n}");
                        match cluster_tests::coordinator(&services, &group)? {
                            b if CUTTABLE.contains(&b) => return Ok((group, b)),
                            b => seen.push(b),
                        }
                    }
                    Err(format!("coordinators of 32 names: {seen:?}"))
                })
                .await
                .expect("coordinator lookup")
            }
        },
    )
    .await
}

/// Records in the topic so far (the sum of its partitions' end offsets), off the runtime.
async fn topic_end(services: &Services, topic: &str) -> i64 {
    let (services, topic) = (services.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || integration::kafka::record_count(&services, &topic))
        .await
        .expect("record count")
}

/// The topic's high watermark (what consumers may read) sampled every 200 ms on a thread of
/// its own: a partition whose leader is cut answers nothing until it moves, and the sampler
/// keeps its last value meanwhile instead of holding up the test's loop.
struct HighWatermarks {
    latest: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HighWatermarks {
    fn watch(services: &Services, topic: &str) -> HighWatermarks {
        use std::sync::atomic::Ordering::Relaxed;
        let latest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client: rdkafka::consumer::BaseConsumer = services
            .kafka_config()
            .create()
            .expect("a watermark client");
        let partitions = integration::kafka::partitions(&client, topic);
        let (topic, out, done) = (topic.to_string(), latest.clone(), stop.clone());
        let mut highs = vec![0i64; partitions.len()];
        let sample = move |highs: &mut Vec<i64>| {
            for (high, p) in highs.iter_mut().zip(&partitions) {
                if let Ok((_, h)) = rdkafka::consumer::Consumer::fetch_watermarks(
                    &client,
                    &topic,
                    *p,
                    Duration::from_millis(300),
                ) {
                    *high = h;
                }
            }
            out.store(highs.iter().sum::<i64>().max(0) as u64, Relaxed);
        };
        sample(&mut highs);
        std::thread::spawn(move || {
            while !done.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                sample(&mut highs);
            }
        });
        HighWatermarks { latest, stop }
    }

    fn now(&self) -> u64 {
        self.latest.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for HighWatermarks {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
