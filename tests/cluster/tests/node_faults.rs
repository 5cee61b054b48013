//! A broker killed and a Cassandra node stopped while the producer publishes and three
//! consumer replicas write: nothing is lost, nothing doubled, nothing dead-lettered, and the
//! cluster is whole again once the nodes return. (Own test binary: it stops shared nodes.)

use std::time::Duration;

use cluster_tests::{
    cassandra_healthy, dead_lettered, kafka_healthy, rows_at_quorum, spawn_producer, stack_async,
    wait_all_written, wait_for, wait_partitions_shared, Replica,
};
use integration::api::FakeApi;
use integration::bins;
use integration::pipeline::Lane;
use integration::Services;

const COUNT: u64 = 20_000;

// Several threads: the fake API serves the producer from this process (see blackhole.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_and_a_stopped_cassandra_node_lose_and_double_nothing() {
    let s = Services::from_env();
    let lane = Lane::new("nodefaults");
    let replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::spawn(&lane, &s, "QUORUM"))
        .collect();
    wait_partitions_shared(&replicas).await;

    // The faults strike mid-run by construction: the API holds the producer's second half
    // until they are under way. (A run that started with the replicas once ended, at its
    // exact rate, before a slow machine had the replicas up.)
    let api = FakeApi::start().await;
    api.hold_after(COUNT as usize / 2);
    let mut producer = spawn_producer(&api, &lane, &s, COUNT, 2000);
    wait_for("rows written", Duration::from_secs(120), || async {
        let mut written = 0;
        for r in &replicas {
            written += r.metric("consumer_rows_written_total").await;
        }
        if written >= 1000 {
            Ok(())
        } else {
            Err(format!("{written} rows"))
        }
    })
    .await;

    // Mid-run: a broker dies without a word, a Cassandra node goes away.
    assert!(
        producer.try_wait().expect("producer state").is_none(),
        "the producer is still publishing when the faults start"
    );
    let kill_then_release = async {
        stack_async(&["kill", "kafka-2"]).await;
        // The second half is published with the broker dead and its partitions not yet moved.
        api.release();
    };
    tokio::join!(kill_then_release, stack_async(&["stop", "cassandra-3"]));

    let out = bins::finish(producer, Duration::from_secs(300)).await;
    assert!(
        out.success,
        "the producer rides out the broker's death: {out}"
    );
    assert_eq!(out.summary("published"), COUNT, "{out}");
    assert_eq!(out.summary("failed"), 0, "{out}");

    // Every record one row, read at QUORUM with one node still down.
    wait_all_written(&s, &lane, COUNT).await;
    assert_eq!(dead_lettered(&s, &lane), 0, "nothing dead-lettered");
    let retries: u64 = {
        let mut n = 0;
        for r in &replicas {
            n += r.metric("consumer_retries_total").await;
        }
        n
    };
    eprintln!("retries across the replicas during the faults: {retries}");

    // The nodes return and the cluster is whole again.
    stack_async(&["start", "kafka-2"]).await;
    stack_async(&["start", "cassandra-3"]).await;
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
    // A range scan at QUORUM just after a node came back (its hints replaying) can outlast
    // the client's 10 s on a cold bed: a slow read is retried, a wrong count is not.
    let (rows, ids) = wait_for(
        "the lane's rows read back at QUORUM",
        Duration::from_secs(120),
        || rows_at_quorum(&s, &lane.keyspace),
    )
    .await;
    assert_eq!((rows, ids), (COUNT, COUNT));
    for mut r in replicas {
        assert!(r.running(), "no replica crashed");
    }
}
