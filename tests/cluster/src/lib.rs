//! Helpers for the cluster bed's tests (tests/cluster/tests/*.rs): consumer replicas with
//! their own /metrics, a producer running in the background, and the bed's own helpers
//! (`bed`: its shape, its control script, rows at QUORUM, health) bound to the tests'
//! `Services`, failing the test where they fail. Run by tests/cluster/run (`tests/stack up
//! --cluster`, its env, these tests, `down`). The bed's Prometheus and its alerts: `alerts`.

pub mod alerts;

use std::future::Future;
use std::time::{Duration, Instant};

use integration::api::FakeApi;
use integration::bins;
use integration::pipeline::Lane;
use integration::Services;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::policies::load_balancing::{NodeIdentifier, SingleTargetLoadBalancingPolicy};
use scylla::statement::unprepared::Statement;
use tokio::process::Child;

pub use bed::topology::{PARTITIONS, TOPIC_FLAGS};

/// The consumer's keyspace (replicated the bed's way) and write consistency.
pub fn consumer_flags(consistency: &str) -> Vec<String> {
    let mut flags: Vec<String> = TOPIC_FLAGS.iter().map(|s| s.to_string()).collect();
    flags.extend([
        "--cassandra-replication".into(),
        bed::topology::REPLICATION.into(),
        "--consistency".into(),
        consistency.into(),
    ]);
    flags
}

/// `tests/stack <args>` on the cluster bed; its output in the test's.
pub fn stack(args: &[&str]) {
    bed::Stack::find()
        .and_then(|stack| stack.run_blocking(args))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The same, off the async runtime (stopping a Cassandra node takes seconds).
pub async fn stack_async(args: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        stack(&args)
    })
    .await
    .expect("tests/stack task");
}

/// Polls `check` until it returns Some, failing the test after `limit` with `what` and the
/// last state it described.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; last: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One consumer process of the group, with its own /metrics address. Its output goes to a
/// file, not a pipe: nobody reads a replica's pipe while it runs, and a full one would stall
/// the replica on its next log line.
#[derive(Debug)]
pub struct Replica {
    pub child: Child,
    pub addr: String,
    pub log: std::path::PathBuf,
}

impl Replica {
    pub fn spawn(lane: &Lane, services: &Services, consistency: &str) -> Replica {
        Replica::spawn_with(lane, services, consistency, &[])
    }

    /// The same, with more consumer flags.
    pub fn spawn_with(
        lane: &Lane,
        services: &Services,
        consistency: &str,
        extra: &[&str],
    ) -> Replica {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let addr = format!("127.0.0.1:{port}");
        let flags = consumer_flags(consistency);
        let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        flags.extend(extra);
        let mut cmd = lane.consumer(services, &flags);
        cmd.args(["--http-addr", &addr]);
        let log = std::env::temp_dir().join(format!("{}-replica-{port}.log", lane.topic));
        let file = std::fs::File::create(&log).expect("replica log file");
        cmd.stdout(file.try_clone().expect("replica log file"))
            .stderr(file);
        let child = cmd.spawn().expect("spawn consumer");
        Replica { child, addr, log }
    }

    /// The last lines the replica logged, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{} (last lines of {}):\n{}",
            self.addr,
            self.log.display(),
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    /// The /metrics text, or "" while it does not answer (within 30 s: a replica that never
    /// answers must fail the test, not hang it; on two saturated cores a scrape can take
    /// seconds).
    pub async fn metrics(&self) -> String {
        // One client for every scrape: a client per call loads the TLS roots each time,
        // CPU the sampling loops take from the replicas they measure. No idle connections:
        // tests in one binary run on runtimes of their own.
        static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        let client = CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client")
        });
        tokio::time::timeout(Duration::from_secs(30), bed::scrape(client, &self.addr))
            .await
            .unwrap_or_default()
    }

    pub async fn metric(&self, name: &str) -> u64 {
        metric(&self.metrics().await, name)
    }

    /// The partitions this replica says it holds (consumer_partition_assigned lines).
    pub async fn partitions(&self) -> Vec<i32> {
        partitions_of(&self.metrics().await)
    }

    /// Still running (not exited, not crashed)?
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait consumer").is_none()
    }
}

/// Each replica's partitions and rows written so far, from its /metrics.
pub async fn held_and_written(replicas: &[Replica]) -> (Vec<Vec<i32>>, Vec<u64>) {
    let mut held = Vec::new();
    let mut written = Vec::new();
    for r in replicas {
        let m = r.metrics().await;
        held.push(partitions_of(&m));
        written.push(metric(&m, "consumer_rows_written_total"));
    }
    (held, written)
}

/// Waits until `replicas` share the six partitions evenly (the group settled); returns what
/// each holds. Replicas left without partitions show their log tails on a timeout.
pub async fn wait_partitions_shared(replicas: &[Replica]) -> Vec<Vec<i32>> {
    let each = PARTITIONS / replicas.len();
    wait_for(
        &format!("{} replicas holding {each} partitions each", replicas.len()),
        Duration::from_secs(120),
        || async {
            let (held, _) = held_and_written(replicas).await;
            if held.iter().all(|p| p.len() == each) {
                return Ok(held);
            }
            let idle: Vec<String> = replicas
                .iter()
                .zip(&held)
                .filter(|(_, p)| p.is_empty())
                .map(|(r, _)| r.log_tail())
                .collect();
            Err(format!(
                "partitions {held:?}; replicas without partitions: {}",
                idle.join("\n")
            ))
        },
    )
    .await
}

/// Waits until every one of `replicas` has written a row.
pub async fn wait_each_writes(replicas: &[Replica]) {
    wait_for("each replica writes", Duration::from_secs(120), || async {
        let (_, written) = held_and_written(replicas).await;
        if written.iter().all(|w| *w > 0) {
            Ok(())
        } else {
            Err(format!("rows {written:?}"))
        }
    })
    .await;
}

pub use bed::sample_sum as metric;

pub fn partitions_of(body: &str) -> Vec<i32> {
    let mut out: Vec<i32> = body
        .lines()
        .filter_map(|l| l.strip_prefix("consumer_partition_assigned{partition=\""))
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect();
    out.sort();
    out
}

/// The producer binary publishing `count` users at `rate`/s from a local fake API, in the
/// background; the topic replicated as TOPIC_FLAGS say.
pub async fn start_producer(
    lane: &Lane,
    services: &Services,
    count: u64,
    rate: u64,
) -> (FakeApi, Child) {
    let api = FakeApi::start().await;
    let producer = spawn_producer(&api, lane, services, count, rate);
    (api, producer)
}

/// The producer streaming at `rate`/s with no set end, until [`stop_stream`]: a stream that
/// is still flowing when a fault or a join comes, however long start-up took (one with a set
/// count could end before it).
pub async fn start_stream(lane: &Lane, services: &Services, rate: u64) -> (FakeApi, Child) {
    start_producer(lane, services, rate * 3600, rate).await
}

/// Ends a [`start_stream`] stream (SIGTERM) that must have flowed through `what`: the
/// producer stopped only because told, failed nothing, and every user it reports published
/// is exactly one row with its offset committed.
pub async fn stop_stream(mut producer: Child, services: &Services, lane: &Lane, what: &str) {
    assert!(
        producer.try_wait().expect("producer state").is_none(),
        "the stream flowed through {what}"
    );
    bins::terminate(&producer);
    let out = bins::finish(producer, Duration::from_secs(300)).await;
    assert!(
        out.stderr.contains("interrupted by SIGTERM"),
        "the producer rode out {what} and stopped only when told: {out}"
    );
    assert_eq!(out.summary("failed"), 0, "{out}");
    wait_all_written(services, lane, out.summary("published")).await;
}

/// The producer binary publishing `count` users at `rate`/s from `api` (which the caller may
/// have told to hold a part back).
pub fn spawn_producer(
    api: &FakeApi,
    lane: &Lane,
    services: &Services,
    count: u64,
    rate: u64,
) -> Child {
    let mut cmd = bins::command("producer", services);
    cmd.args(["--api-url", &api.url(), "--topic", &lane.topic])
        .args(["--count", &count.to_string(), "--rate", &rate.to_string()])
        .args(TOPIC_FLAGS)
        .args(["--progress-interval", "2s"]);
    cmd.spawn().expect("spawn producer")
}

/// (rows, distinct ids) of the lane's table, read at QUORUM.
pub async fn rows_at_quorum(services: &Services, keyspace: &str) -> Result<(u64, u64), String> {
    let session = services.cassandra_session().await;
    bed::cassandra::rows_at_quorum(&session, keyspace)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// The id of the lane's `created_users` as each node's own schema holds it (asked of every
/// node in turn), with the node's address.
pub async fn table_ids(
    services: &Services,
    keyspace: &str,
) -> Result<Vec<(String, uuid::Uuid)>, String> {
    let session = services.cassandra_session().await;
    let mut ids = Vec::new();
    for node in session.get_cluster_state().get_nodes_info() {
        let mut statement = Statement::new(
            "SELECT id FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
        );
        statement.set_execution_profile_handle(Some(
            ExecutionProfile::builder()
                .load_balancing_policy(SingleTargetLoadBalancingPolicy::new(
                    NodeIdentifier::Node(node.clone()),
                    None,
                ))
                .build()
                .into_handle(),
        ));
        let (id,) = session
            .query_unpaged(statement, (keyspace, domain::row::TABLE))
            .await
            .map_err(|e| format!("system_schema.tables on {}: {e}", node.address))?
            .into_rows_result()
            .map_err(|e| format!("rows: {e}"))?
            .single_row::<(uuid::Uuid,)>()
            .map_err(|e| {
                format!(
                    "{} has no table {keyspace}.{}: {e}",
                    node.address,
                    domain::row::TABLE
                )
            })?;
        ids.push((node.address.to_string(), id));
    }
    Ok(ids)
}

/// Kafka is whole again: every broker in the metadata and every partition of `topic` with
/// all three replicas in sync.
pub fn kafka_healthy(services: &Services, topic: &str) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka)
        .create()
        .map_err(|e| e.to_string())?;
    bed::kafka::in_sync(&consumer, &[topic]).map_err(|e| format!("{e:#}"))
}

/// Cassandra is whole again: every node answers a read of the lane's table.
pub async fn cassandra_healthy(services: &Services, keyspace: &str) -> Result<(), String> {
    let session = services.cassandra_session().await;
    bed::cassandra::answers_at_all(&session, keyspace, None)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// The broker that coordinates `group`: the leader of the group's partition of
/// `__consumer_offsets`, which Kafka picks by the Java hash of the group id modulo that topic's
/// partitions. Asks for a committed offset first, so that the topic exists (the first
/// FindCoordinator creates it).
pub fn coordinator(services: &Services, group: &str) -> Result<i32, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka)
        .set("group.id", group)
        .create()
        .map_err(|e| e.to_string())?;
    let mut probe = rdkafka::TopicPartitionList::new();
    probe.add_partition("coordinator-probe", 0);
    consumer
        .committed_offsets(probe, Duration::from_secs(10))
        .map_err(|e| format!("offset fetch for {group}: {e}"))?;
    let md = consumer
        .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(5))
        .map_err(|e| format!("metadata: {e}"))?;
    let partitions = md
        .topics()
        .first()
        .map(|t| t.partitions())
        .filter(|p| !p.is_empty())
        .ok_or("__consumer_offsets has no partitions yet")?;
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    // Kafka's Utils.abs: |n|, and 0 for i32::MIN
    let index = hash.checked_abs().unwrap_or(0) as usize % partitions.len();
    let p = partitions
        .iter()
        .find(|p| p.id() == index as i32)
        .ok_or_else(|| format!("__consumer_offsets-{index} missing from the metadata"))?;
    match p.leader() {
        leader if leader >= 0 => Ok(leader),
        _ => Err(format!("__consumer_offsets-{index} has no leader")),
    }
}

/// Waits until every one of `count` records is exactly one row (read at
/// QUORUM) and every offset is committed.
pub async fn wait_all_written(services: &Services, lane: &Lane, count: u64) {
    wait_for(
        "every record one row, all offsets committed",
        Duration::from_secs(180),
        || async {
            let (rows, ids) = rows_at_quorum(services, &lane.keyspace).await?;
            let (end, committed) = offsets(services, lane)?;
            let published = end.iter().sum::<i64>() == count as i64;
            if rows == count && ids == count && published && committed == end {
                Ok(())
            } else {
                Err(format!(
                    "{rows} rows, {ids} distinct ids, committed {committed:?} of {end:?}"
                ))
            }
        },
    )
    .await;
}

/// The end offsets of the lane's topic and the offsets its group committed, per partition.
fn offsets(services: &Services, lane: &Lane) -> Result<(Vec<i64>, Vec<i64>), String> {
    let config = services.kafka_config();
    let client: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let end = bed::kafka::end_offsets(&client, &lane.topic).map_err(|e| format!("{e:#}"))?;
    let committed =
        bed::kafka::committed(&config, &lane.group, &lane.topic).map_err(|e| format!("{e:#}"))?;
    Ok((end, committed))
}

/// The DLQ of a lane holds nothing (a topic not created yet counts as empty).
pub fn dead_lettered(services: &Services, lane: &Lane) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka)
        .create()
        .expect("metadata client");
    let md = consumer
        .fetch_metadata(Some(&lane.dlq), Duration::from_secs(10))
        .expect("DLQ metadata");
    if md.topics().iter().all(|t| t.partitions().is_empty()) {
        return 0;
    }
    integration::kafka::record_count(services, &lane.dlq)
}

/// Publishes `count` users to the lane's topic (created replicated, TOPIC_FLAGS) and waits
/// for the producer to succeed.
pub async fn publish(lane: &Lane, services: &Services, count: u64) {
    let (_api, producer) = start_producer(lane, services, count, 100_000).await;
    let out = bins::finish(producer, Duration::from_secs(300)).await;
    assert!(out.success, "producer failed: {out}");
    assert_eq!(out.summary("published"), count, "{out}");
}
