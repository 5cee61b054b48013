//! Each alert fires on the fault it is for and resolves when the fault is gone, seen in the
//! bed's real Alertmanager: Cassandra stopped under a writing consumer (ConsumerNotWriting,
//! ConsumerRetrying{dependency="cassandra"}, ConsumerNotReady), a replica that hangs meanwhile
//! (ConsumerDown), a poison record (DeadLetters{kind="framing"}), a producer run that fails
//! (ProducerRunFailed). ConsumerLagGrowing needs 20 minutes of growth: its promtool unit tests
//! cover it. Alone in its binary: it stops Cassandra.

use std::time::Duration;

use integration::api::{FakeApi, Reply};
use integration::bins::{self, stack};
use integration::kafka::produce_raw;
use integration::Services;
use monitoring_tests::{has, Monitoring};

const FIRE_WITHIN: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_on_their_fault_and_resolve_after_it() {
    let s = Services::from_env();
    let m = Monitoring::from_env();
    let mut replica = m
        .watched_replica(&s, "alerted", 3, &["--write-timeout", "2s"])
        .await;
    let lane = replica.lane.clone();

    // A steady stream for the whole test, so that lag grows while Cassandra is away.
    let api = FakeApi::start().await;
    let mut producer = bins::command("producer", &s);
    producer
        .args(["--api-url", &api.url(), "--topic", &lane.topic])
        .args(["--duration", "15m", "--rate", "20", "--batch-size", "20"]);
    let log = std::env::temp_dir().join(format!("{}-producer.log", lane.topic));
    let file = std::fs::File::create(&log).expect("producer log file");
    producer
        .stdout(file.try_clone().expect("producer log file"))
        .stderr(file);
    let stream = producer.spawn().expect("spawn producer");
    m.wait_for_series(
        "rows written",
        "sum(rate(consumer_rows_written_total[1m])) > 0",
        Duration::from_secs(120),
    )
    .await;

    // A second replica, of its own group, that hangs (SIGSTOP: the process is there, its
    // /metrics does not answer) for as long as Cassandra is away: ConsumerDown, in the same
    // minutes as the outage's alerts.
    let mut hung = m.watched_replica(&s, "hung", 1, &[]).await;
    let pid = hung.child.id().expect("pid").to_string();

    // Cassandra away: nothing written while records wait, every write retried, the writing
    // replica not ready.
    stack(&["stop", "cassandra"]);
    signal("-STOP", &pid);
    let outage = m
        .wait_for_alerts(
            "ConsumerNotWriting, ConsumerRetrying{cassandra}, ConsumerNotReady and ConsumerDown fire",
            FIRE_WITHIN,
            |a| {
                has(a, "ConsumerNotWriting", None)
                    && has(a, "ConsumerRetrying", Some(("dependency", "cassandra")))
                    && has(a, "ConsumerNotReady", Some(("instance", &replica.addr)))
                    && has(a, "ConsumerDown", Some(("instance", &hung.addr)))
            },
        )
        .await;
    stack(&["start", "cassandra"]);
    signal("-CONT", &pid);
    m.wait_for_alerts(
        "they resolve once Cassandra is back and the replica answers",
        FIRE_WITHIN,
        |a| {
            !has(a, "ConsumerNotWriting", None)
                && !has(a, "ConsumerRetrying", None)
                && !has(a, "ConsumerNotReady", None)
                && !has(a, "ConsumerDown", None)
        },
    )
    .await;
    println!(
        "Cassandra outage seen by Alertmanager after {:.0}s",
        outage.as_secs_f64()
    );

    // One record that is not Confluent wire format: dead-lettered, and the alert says why.
    produce_raw(&s, &lane.topic, &[(b"poison", b"not avro")]);
    m.wait_for_alerts("DeadLetters{kind=framing} fires", FIRE_WITHIN, |a| {
        has(a, "DeadLetters", Some(("kind", "framing")))
    })
    .await;

    // A producer run that fails (the API answers 500, no retries): its push says so.
    let broken = FakeApi::start().await;
    broken.fail_after(0, Reply::status(500, "{\"error\": \"down\"}"));
    let mut failing = bins::command("producer", &s);
    failing
        .args(["--api-url", &broken.url(), "--topic", &lane.topic])
        .args(["--count", "10", "--max-retries", "0"])
        .args(["--pushgateway-url", &m.pushgateway]);
    let out = bins::run(failing, Duration::from_secs(60)).await;
    assert!(
        !out.success,
        "the run against a failing API must fail: {out}"
    );
    m.wait_for_alerts("ProducerRunFailed fires", FIRE_WITHIN, |a| {
        has(a, "ProducerRunFailed", None)
    })
    .await;
    // The next good run clears it (and leaves the bed clean for the next test).
    let mut good = bins::command("producer", &s);
    good.args([
        "--api-url",
        &api.url(),
        "--topic",
        &lane.topic,
        "--count",
        "10",
    ])
    .args(["--pushgateway-url", &m.pushgateway]);
    let out = bins::run(good, Duration::from_secs(60)).await;
    assert!(out.success, "{out}");
    m.wait_for_alerts(
        "ProducerRunFailed resolves after a good run",
        FIRE_WITHIN,
        |a| !has(a, "ProducerRunFailed", None),
    )
    .await;

    drop(stream);
    replica.child.kill().await.expect("stop consumer");
    hung.child.kill().await.expect("stop the second consumer");
    println!("consumer log tail:\n{}", replica.log_tail());
}

/// Sends a signal to a process (SIGSTOP/SIGCONT: a hung process, not a stopped one).
fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}
