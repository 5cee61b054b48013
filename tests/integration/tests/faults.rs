//! Faults of configuration and permission, tried as a user meets them, against
//! the real services: each stops the binary with a message that names the
//! setting, dead-letters nothing and leaves the committed offsets where the
//! written rows are. (Poison records, the record's own fault, are in
//! consumer.rs; schema evolution in evolution.rs.)

use std::time::{Duration, Instant};

use integration::api::FakeApi;
use integration::bins;
use integration::kafka::{committed, record_count};
use integration::pipeline::{Lane, LIMIT};
use integration::Services;

/// The registry's base URL with a path that is not its API.
fn wrong_path(s: &Services) -> String {
    let base = s.registry.trim_end_matches('/');
    match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/not-the-api"),
        None => format!("{base}/not-the-api"),
    }
}

#[tokio::test]
async fn a_wrong_registry_path_stops_both_binaries_and_touches_no_record() {
    let s = Services::from_env();
    let lane = Lane::new("wrongpath");
    lane.publish(&s, 50).await;
    let wrong = wrong_path(&s);

    let mut consumer = lane.consumer(&s, &["--exit-when-idle", "5s"]);
    consumer.env("SCHEMA_REGISTRY_URL", &wrong);
    let out = bins::run(consumer, LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains("HTTP 404") && out.stderr.contains("SCHEMA_REGISTRY_URL"),
        "the error names the status and the setting: {out}"
    );
    assert_eq!(record_count(&s, &lane.dlq), 0, "nothing dead-lettered");
    assert_eq!(
        committed(&s, &lane.group, &lane.topic),
        0,
        "no offset moved"
    );
    assert_eq!(lane.count(&s).await, 0);

    let api = FakeApi::start().await;
    let mut producer = bins::command("producer", &s);
    producer
        .args(["--api-url", &api.url(), "--topic", &lane.topic])
        .args(["--count", "10"])
        .env("SCHEMA_REGISTRY_URL", &wrong);
    let out = bins::run(producer, LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains("HTTP 404") && out.stderr.contains("SCHEMA_REGISTRY_URL"),
        "{out}"
    );
    assert_eq!(
        api.requests(),
        0,
        "no user fetched before the registry check"
    );
    assert_eq!(record_count(&s, &lane.topic), 50, "nothing more published");

    // The same lane with the right URL: every record becomes a row.
    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (50, 0)
    );
}

#[tokio::test]
async fn a_table_whose_columns_do_not_match_is_refused_at_start_up() {
    let s = Services::from_env();
    let lane = Lane::new("badtable");
    lane.publish(&s, 10).await;
    let session = s.cassandra_session().await;
    for cql in [
        format!(
            "CREATE KEYSPACE {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
            lane.keyspace
        ),
        format!(
            "CREATE TABLE {}.created_users (id uuid PRIMARY KEY, name text)",
            lane.keyspace
        ),
    ] {
        session.query_unpaged(cql, ()).await.expect("set up the wrong table");
    }

    let out = bins::run(lane.consumer(&s, &["--exit-when-idle", "5s"]), LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains("refused the INSERT")
            && out.stderr.contains("schemas/cassandra.cql")
            && out.stderr.contains("CASSANDRA_KEYSPACE"),
        "{out}"
    );
    assert_eq!(record_count(&s, &lane.dlq), 0);
    assert_eq!(committed(&s, &lane.group, &lane.topic), 0);
}

#[tokio::test]
async fn cassandra_refusing_writes_mid_run_stops_with_only_written_rows_committed() {
    let s = Services::from_env();
    let lane = Lane::new("refused");
    lane.publish(&s, 40).await;
    // A refusal that may pass (a node that has not heard of the table yet) is retried this
    // long before it is the deployment's fault.
    let child = lane
        .consumer(&s, &["--refused-write-retry", "5s"])
        .spawn()
        .expect("spawn consumer");

    let deadline = Instant::now() + Duration::from_secs(120);
    while !(lane.count(&s).await == 40 && committed(&s, &lane.group, &lane.topic) == 40) {
        assert!(
            Instant::now() < deadline,
            "40 rows not written and committed in 120s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The table goes away under the running consumer: every write is now refused.
    let session = s.cassandra_session().await;
    session
        .query_unpaged(format!("DROP TABLE {}.created_users", lane.keyspace), ())
        .await
        .expect("drop table");
    lane.publish(&s, 20).await;

    let out = bins::finish(child, LIMIT).await;
    assert!(
        !out.success,
        "a refused write is fatal, not retried forever: {out}"
    );
    assert!(
        out.stderr.contains("Cassandra refused writes for 5s")
            && out.stderr.contains("CONSUMER_REFUSED_WRITE_RETRY"),
        "{out}"
    );
    assert_eq!(
        committed(&s, &lane.group, &lane.topic),
        40,
        "offsets stop at the last written row"
    );
    assert_eq!(
        record_count(&s, &lane.dlq),
        0,
        "a fault of ours is not the records'"
    );

    // Fixed (the consumer creates the table again): the 20 are written, nothing else.
    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        (out.summary("consumed"), out.summary("written")),
        (20, 20),
        "{out}"
    );
    assert_eq!(lane.count(&s).await, 20);
    assert_eq!(committed(&s, &lane.group, &lane.topic), 60);
}

#[tokio::test]
async fn exit_when_idle_fires_for_a_consumer_that_gets_no_partition() {
    let s = Services::from_env();
    let lane = Lane::new("idle_extra");
    lane.publish(&s, 5).await;
    // The topic has 3 partitions; 4 consumers leave one without any.
    let children: Vec<_> = (0..4)
        .map(|_| {
            lane.consumer(&s, &["--exit-when-idle", "5s"])
                .spawn()
                .expect("spawn consumer")
        })
        .collect();
    for child in children {
        let out = bins::finish(child, Duration::from_secs(120)).await;
        assert!(out.success, "every replica exits when idle: {out}");
    }
    assert_eq!(lane.count(&s).await, 5);
}
