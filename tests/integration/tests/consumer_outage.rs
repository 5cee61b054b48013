//! Cassandra goes away in the middle of a run and comes back: the consumer
//! waits (no crash, no skipped rows) and finishes the job. Alone in its test
//! binary because it stops a service every other test uses.

use std::time::{Duration, Instant};

use integration::bins::{self, stack};
use integration::pipeline::{Lane, LIMIT};
use integration::Services;

#[tokio::test]
async fn cassandra_stopping_mid_run_delays_rows_but_loses_none() {
    let s = Services::from_env();
    let lane = Lane::new("outage");
    lane.publish(&s, 10_000).await;

    let mut child = lane
        .consumer(
            &s,
            &[
                "--max-in-flight",
                "1",
                "--exit-when-idle",
                "10s",
                "--write-timeout",
                "2s",
            ],
        )
        .spawn()
        .expect("spawn consumer");
    let deadline = Instant::now() + Duration::from_secs(120);
    while lane.count(&s).await < 200 {
        assert!(Instant::now() < deadline, "consumer wrote nothing in 120s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack(&["stop", "cassandra"]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        child.try_wait().expect("poll child").is_none(),
        "consumer must wait for Cassandra, not exit"
    );
    stack(&["start", "cassandra"]);

    let out = bins::finish(child, LIMIT).await;
    assert!(out.success, "{out}");
    assert!(
        out.summary("retried") > 0,
        "writes were retried during the outage: {out}"
    );
    assert_eq!(out.summary("written"), 10_000, "{out}");
    assert_eq!(lane.count(&s).await, 10_000);
}
