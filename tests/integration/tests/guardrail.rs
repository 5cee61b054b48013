//! A row Cassandra refuses for its own values is poison, not a reason to stop: it is
//! dead-lettered with Cassandra's words and its partition moves on.
//!
//! The bed's Cassandra refuses a write over `max_mutation_size` (512 KiB,
//! `tests/stack.d/cassandra/cassandra.yaml`) at the coordinator with `Invalid`, the code a
//! guardrail answers with. A guardrail itself (`column_value_size_fail_threshold`) cannot fire
//! here: guardrails pass superusers by, and a bed without authentication treats every client
//! as one.

use std::collections::HashSet;
use std::time::Duration;

use integration::api::{fixture, FakeApi, Reply};
use integration::kafka::{committed, create_topic, header, read_topic, record_count};
use integration::pipeline::{Lane, LIMIT};
use integration::{bins, Services};

use rdkafka::Message;
use serde_json::json;

/// Over the bed's 512 KiB, under the producer's 1 000 000 bytes per record.
const HOSTILE: usize = 600 * 1024;

/// The node's own limit, so a bed started before it was set fails here, saying why.
async fn assert_the_node_refuses_the_hostile_size(s: &Services) {
    let (limit,) = s
        .cassandra_session()
        .await
        .query_unpaged(
            "SELECT value FROM system_views.settings WHERE name = 'max_mutation_size'",
            (),
        )
        .await
        .expect("read the node's settings")
        .into_rows_result()
        .expect("settings rows")
        .single_row::<(String,)>()
        .expect("max_mutation_size");
    assert_eq!(
        limit, "512KiB",
        "Cassandra at {} was not started with the bed's max_mutation_size \
         (tests/stack.d/cassandra/cassandra.yaml): restart it with `tests/stack restart cassandra`",
        s.cassandra
    );
}

/// Publishes, through the real producer, one user whose street name is `HOSTILE` bytes
/// long: nothing before Cassandra has a reason to refuse it. Returns its uuid.
async fn publish_hostile(s: &Services, lane: &Lane) -> String {
    let page: serde_json::Value = serde_json::from_str(&fixture("quirks.json")).expect("quirks");
    let mut user = page["results"][0].clone();
    let uuid = uuid::Uuid::new_v4().to_string();
    user["login"]["uuid"] = json!(uuid);
    user["login"]["username"] = json!("hostile");
    user["location"]["street"]["name"] = json!("x".repeat(HOSTILE));
    let api = FakeApi::start().await;
    api.script([Reply::Raw(
        200,
        vec![],
        json!({"results": [user], "info": {"seed": "hostile", "results": 1, "page": 1, "version": "1.4"}})
            .to_string(),
    )]);
    let mut cmd = bins::command("producer", s);
    cmd.args([
        "--api-url",
        &api.url(),
        "--topic",
        &lane.topic,
        "--count",
        "1",
    ]);
    let out = bins::run(cmd, LIMIT).await;
    assert!(out.success, "producer failed: {out}");
    assert_eq!(out.summary("published"), 1, "{out}");
    uuid
}

/// `before` good users, the hostile one, 30 good users after it, on one partition (the good
/// users behind the hostile one wait for it, unless it moves on), consumed with `extra`
/// flags: the good users are rows, the hostile one a dead letter with Cassandra's words, and
/// the committed offset reaches the end. Returns the consumer's output.
async fn refused_row_moves_on(name: &str, before: usize, extra: &[&str]) -> bins::Output {
    let s = Services::from_env();
    assert_the_node_refuses_the_hostile_size(&s).await;
    let lane = Lane::new(name);
    create_topic(&s, &lane.topic, 1).await;
    let before = lane.publish(&s, before).await;
    let hostile = publish_hostile(&s, &lane).await;
    let after = lane.publish(&s, 30).await;
    let end = record_count(&s, &lane.topic);
    let good_count = (before.len() + after.len()) as u64;
    assert_eq!(end, good_count as i64 + 1);

    let out = lane.consume(&s, extra).await;
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (good_count, 1),
        "{out}"
    );
    let good: HashSet<String> = before
        .iter()
        .chain(&after)
        .map(|u| u.login.uuid.clone())
        .collect();
    let rows: HashSet<String> = lane
        .rows(&s)
        .await
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(rows, good, "every good user a row, the hostile one none");
    assert_eq!(
        committed(&s, &lane.group, &lane.topic),
        end,
        "the committed offset reaches the end"
    );

    let dead = read_topic(&s, &lane.dlq, 1, Duration::from_secs(20));
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(letter.key(), Some(hostile.as_bytes()));
    assert!(letter.payload().is_some_and(|v| v.len() > HOSTILE));
    let reason = header(letter, "dlq.error");
    eprintln!("dead letter's reason: {reason}");
    assert_eq!(header(letter, "dlq.error.kind"), "cassandra");
    assert_eq!(header(letter, "dlq.error.class"), "poison");
    for part in [
        "Cassandra refuses this row",
        &hostile,
        "Rejected an oversized mutation",
    ] {
        assert!(reason.contains(part), "{part:?} in {reason}");
    }
    out
}

#[tokio::test]
async fn a_row_cassandra_refuses_for_its_size_is_dead_lettered_and_its_partition_moves_on() {
    // At the default batch limits, a row over CASSANDRA_BATCH_MAX_BYTES goes alone.
    refused_row_moves_on("refusedrow", 30, &[]).await;
}

/// The same row inside a batch (a byte limit that lets it in): Cassandra refuses the whole
/// batch, its rows are written one by one, and only the hostile one is dead-lettered.
#[tokio::test]
async fn a_row_cassandra_refuses_inside_a_batch_is_dead_lettered_alone() {
    // 24 users before it: the first fetch holds them all and the hostile record (well under
    // librdkafka's 1 MiB per partition), so it is the 5th row of the third batch of 10.
    let out = refused_row_moves_on(
        "refusedbatch",
        24,
        &["--batch-max-rows", "10", "--batch-max-bytes", "4194304"],
    )
    .await;
    assert!(
        out.stderr.contains("Cassandra refused a batch of 10 rows"),
        "the hostile row was not written inside a batch:\n{out}"
    );
}
