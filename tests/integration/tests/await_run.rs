//! `consumer await-run`, what the DAG's second task runs: green only once the consumer group
//! has written every record of a producer run; red, with the cause, when no consumer runs
//! or when records of the run were dead-lettered.

use std::time::Duration;

use common::landed::Landed;
use integration::api::FakeApi;
use integration::bins::{self, Output};
use integration::kafka::{read_topic, record_count};
use integration::pipeline::{Lane, LIMIT};
use integration::Services;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

/// The producer binary publishing `count` users to the lane's topic at `rate`/s (0: no cap),
/// reporting where they landed; not yet awaited.
async fn start_producer(
    s: &Services,
    lane: &Lane,
    count: u64,
    rate: u64,
) -> (FakeApi, tokio::process::Child, std::path::PathBuf) {
    let api = FakeApi::start().await;
    let landed = std::env::temp_dir().join(format!("{}.landed.json", lane.topic));
    let mut cmd = bins::command("producer", s);
    cmd.args(["--api-url", &api.url(), "--topic", &lane.topic])
        .args(["--count", &count.to_string(), "--rate", &rate.to_string()])
        .arg("--landed-file")
        .arg(&landed);
    (api, cmd.spawn().expect("spawn producer"), landed)
}

async fn publish(s: &Services, lane: &Lane, count: u64) -> Landed {
    let (_api, producer, path) = start_producer(s, lane, count, 0).await;
    landed(bins::finish(producer, LIMIT).await, &path, count)
}

fn landed(out: Output, path: &std::path::Path, count: u64) -> Landed {
    assert!(out.success, "producer failed: {out}");
    let text = std::fs::read_to_string(path).expect("landed file");
    let landed = Landed::parse(&text).expect("the landed file parses");
    assert_eq!(landed.published, count, "{landed:?}");
    landed
}

fn await_run(s: &Services, lane: &Lane, landed: &Landed, stall: &str) -> tokio::process::Command {
    let mut cmd = bins::command("consumer", s);
    cmd.args(["--group-id", &lane.group, "--dlq-topic", &lane.dlq])
        .args(["--progress-interval", "1s", "await-run"])
        .args(["--landed", &landed.to_json(), "--stall-timeout", stall]);
    cmd
}

#[tokio::test]
async fn a_run_is_done_once_the_group_has_written_all_its_users() {
    let s = Services::from_env();
    let lane = Lane::new("awaitok");
    let landed = publish(&s, &lane, 100).await;
    assert_eq!(
        landed.offsets(),
        100,
        "a fresh topic: the run's spans are its records"
    );

    // Waiting before any consumer runs, through its start and until everything is committed.
    let waiting = await_run(&s, &lane, &landed, "120s")
        .spawn()
        .expect("spawn await-run");
    let consumed = lane.consume(&s, &[]).await;
    assert_eq!(consumed.summary("written"), 100, "{consumed}");
    let out = bins::finish(waiting, LIMIT).await;
    assert!(out.success, "{out}");
    assert!(
        out.stdout
            .contains("summary: 100 users written to Cassandra in"),
        "{out}"
    );
    assert!(
        out.stderr.contains("waiting for group"),
        "progress lines: {out}"
    );
}

#[tokio::test]
async fn with_no_consumer_running_the_wait_fails_saying_the_group_is_not_consuming() {
    let s = Services::from_env();
    let lane = Lane::new("awaitnone");
    let landed = publish(&s, &lane, 20).await;
    let out = bins::run(await_run(&s, &lane, &landed, "3s"), LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr
            .contains(&format!("consumer group '{}' is not consuming", lane.group))
            && out.stderr.contains("no members")
            && out.stderr.contains("0 of 20 offsets of this run committed"),
        "{out}"
    );
}

#[tokio::test]
async fn records_of_the_run_dead_lettered_fail_the_wait_with_their_count_and_reason() {
    let s = Services::from_env();
    let lane = Lane::new("awaitpoison");
    // A slow run, and a hostile record in every partition while it publishes: those that
    // fall between the run's first and last record of their partition are the run's.
    let (_api, producer, path) = start_producer(&s, &lane, 150, 100).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while record_count(&s, &lane.topic) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the producer published nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kafka: BaseProducer = s.kafka_config().create().expect("producer");
    for partition in 0..3 {
        kafka
            .send(
                BaseRecord::to(&lane.topic)
                    .partition(partition)
                    .key(b"hostile".as_slice())
                    .payload(b"{\"not\": \"avro\"}".as_slice()),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    kafka.flush(Duration::from_secs(30)).expect("flush");
    let landed = landed(bins::finish(producer, LIMIT).await, &path, 150);

    let hostile = read_topic(&s, &lane.topic, 153, Duration::from_secs(30))
        .into_iter()
        .filter(|m| m.key() == Some(b"hostile".as_slice()))
        .filter(|m| {
            landed
                .span(m.partition())
                .is_some_and(|p| p.contains(m.offset()))
        })
        .count();
    assert!(hostile >= 1, "no hostile record inside the run: {landed:?}");

    let consumed = lane.consume(&s, &[]).await;
    assert_eq!(consumed.summary("dead_lettered"), 3, "{consumed}");
    let out = bins::run(await_run(&s, &lane, &landed, "60s"), LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "{hostile} of 150 records of this run were dead-lettered to {}; the first: framing:",
            lane.dlq
        )),
        "{out}"
    );
}
