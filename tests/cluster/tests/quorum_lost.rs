//! Two of three Cassandra replicas gone under a consumer writing at QUORUM: every write is
//! unavailable, which is retryable: the consumer retries (no DLQ, no exit), the committed
//! offsets stay where the written rows are, and the rows appear once a node returns.

use std::time::Duration;

use cluster_tests::{
    cassandra_healthy, dead_lettered, metric, publish, rows_at_quorum, stack_async, wait_for,
    Replica,
};
use integration::kafka::committed;
use integration::pipeline::Lane;
use integration::Services;

// Several threads: the fake API serves the producer from this process (see blackhole.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_two_of_three_replicas_holds_writes_and_offsets_until_one_returns() {
    let s = Services::from_env();
    let lane = Lane::new("quorumlost");
    let mut replica = Replica::spawn(&lane, &s, "QUORUM");
    publish(&lane, &s, 200).await;
    wait_for(
        "the first 200 written and committed",
        Duration::from_secs(120),
        || async {
            let (rows, _) = rows_at_quorum(&s, &lane.keyspace).await?;
            let offsets = committed(&s, &lane.group, &lane.topic);
            if rows == 200 && offsets == 200 {
                Ok(())
            } else {
                Err(format!("{rows} rows, {offsets} committed"))
            }
        },
    )
    .await;

    tokio::join!(
        stack_async(&["stop", "cassandra-2"]),
        stack_async(&["stop", "cassandra-3"])
    );
    let before = replica.metric("consumer_retries_total").await;
    publish(&lane, &s, 100).await;

    // Unavailable at QUORUM: retried again and again, nothing written, nothing committed.
    wait_for(
        "writes retried while the quorum is gone",
        Duration::from_secs(120),
        || async {
            let m = replica.metrics().await;
            let retries = metric(&m, "consumer_retries_total");
            if retries >= before + 20 {
                Ok(())
            } else {
                Err(format!("retries {before} -> {retries}"))
            }
        },
    )
    .await;
    let m = replica.metrics().await;
    assert_eq!(metric(&m, "consumer_rows_written_total"), 200, "{m}");
    assert_eq!(metric(&m, "consumer_records_dead_lettered_total"), 0, "{m}");
    assert_eq!(committed(&s, &lane.group, &lane.topic), 200, "offsets hold");
    assert_eq!(dead_lettered(&s, &lane), 0);
    assert!(replica.running(), "no exit, no crash loop");

    // One node back: a quorum again; the 100 are written and committed.
    stack_async(&["start", "cassandra-2"]).await;
    wait_for(
        "the held records written once a quorum is back",
        Duration::from_secs(180),
        || async {
            let (rows, ids) = rows_at_quorum(&s, &lane.keyspace).await?;
            let offsets = committed(&s, &lane.group, &lane.topic);
            if rows == 300 && ids == 300 && offsets == 300 {
                Ok(())
            } else {
                Err(format!("{rows} rows, {ids} ids, {offsets} committed"))
            }
        },
    )
    .await;
    assert_eq!(dead_lettered(&s, &lane), 0);
    assert!(replica.running());

    stack_async(&["start", "cassandra-3"]).await;
    wait_for(
        "all Cassandra nodes answer a read at ALL",
        Duration::from_secs(120),
        || cassandra_healthy(&s, &lane.keyspace),
    )
    .await;
}
