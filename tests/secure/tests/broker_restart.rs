//! The SASL_SSL broker restarted under a running consumer. A broker that is starting accepts
//! connections before it answers them, and librdkafka gives a handshake that timed out the
//! code of a refused credential: only one that lasts `AUTH_GRACE` with no answer from the
//! cluster is fatal, so the consumer rides the restart out and loses nothing.

use std::process::Stdio;

use integration::bins::{self, stack};
use integration::kafka::committed;
use integration::pipeline::{Lane, LIMIT};
use secure_tests::{free_addr, until_metrics, Secure};

fn written(metrics: &str) -> u64 {
    bed::sample_sum(metrics, "consumer_rows_written_total")
}

#[tokio::test]
async fn a_broker_restart_is_ridden_out_with_nothing_lost() {
    let s = Secure::from_env();
    let lane = Lane::new("secure_broker_restart");
    s.publish(&lane, 20).await;
    let addr = free_addr();
    // Its output in a file: a pipe nobody reads while the broker is away could fill up.
    let log = std::env::temp_dir().join(format!("{}-consumer.log", lane.topic));
    let mut consumer = s.consumer(&lane, &["--http-addr", &addr]);
    consumer
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("consumer log file"));
    let mut consumer = consumer.spawn().expect("spawn consumer");
    until_metrics(&addr, "20 rows written", |m| written(m) == 20).await;

    stack(&["restart", "secure-kafka"]);
    s.publish(&lane, 20).await;
    until_metrics(&addr, "40 rows written", |m| written(m) == 40).await;

    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        consumer.try_wait().expect("consumer state").is_none(),
        "the consumer rode the restart out:\n{said}"
    );
    // Whether a handshake was cut short depends on the moment: say so, assert the outcome.
    eprintln!(
        "handshakes cut short during the restart: {}",
        said.matches("handshake cut short").count()
    );
    bins::terminate(&consumer);
    let out = bins::finish(consumer, LIMIT).await;
    assert!(out.success, "a clean stop: {out}");
    assert_eq!(committed(&s.services, &lane.group, &lane.topic), 40);
}
