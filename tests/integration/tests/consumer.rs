//! The consumer against real Kafka, registry and Cassandra: every published
//! user becomes exactly one correct row, whatever happens to the consumer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use domain::{to_row, UserRow};
use integration::kafka::{committed, create_topic, header, produce_raw, read_topic};
use integration::pipeline::{Lane, LIMIT};
use integration::{bins, Services};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Rows must equal the transform of what was published; `produced_at` is the
/// Kafka timestamp, which the test only bounds.
fn assert_rows_match(rows: &[UserRow], users: &[domain::User], since_ms: i64) {
    let expected: HashMap<uuid::Uuid, UserRow> = users
        .iter()
        .map(|u| {
            let row = to_row(u.clone(), 0).expect("transform");
            (row.id, row)
        })
        .collect();
    assert_eq!(rows.len(), users.len(), "one row per user");
    for row in rows {
        let mut want = expected
            .get(&row.id)
            .unwrap_or_else(|| panic!("unexpected row {}", row.id))
            .clone();
        assert!(
            row.produced_at.0 >= since_ms,
            "produced_at {} is the Kafka timestamp",
            row.produced_at.0
        );
        want.produced_at = row.produced_at;
        assert_eq!(row, &want);
    }
}

#[tokio::test]
async fn every_published_user_becomes_one_correct_row_and_replays_change_nothing() {
    let s = Services::from_env();
    let lane = Lane::new("rows");
    let since = chrono::Utc::now().timestamp_millis() - 1000;
    let users = lane.publish(&s, 400).await;

    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        (
            out.summary("consumed"),
            out.summary("written"),
            out.summary("dead_lettered")
        ),
        (400, 400, 0),
        "{out}"
    );
    let rows = lane.rows(&s).await;
    assert_rows_match(&rows, &users, since);

    // Quirks, column by column.
    let by_nat = |nat: &str| {
        rows.iter()
            .find(|r| r.nationality == nat)
            .expect(nat)
            .clone()
    };
    assert_eq!(
        by_nat("DE").post_code,
        "53721",
        "integer postcode stored as text"
    );
    assert_eq!(by_nat("NO").post_code, "0150", "leading zero kept");
    assert_eq!(
        by_nat("NZ").first_name,
        "Ruby",
        "null id.value still makes a row"
    );
    assert_eq!(by_nat("IR").first_name, "نگار");
    assert_eq!(
        by_nat("RS").address,
        "3380 Косовска, Ужице, Златибор, Serbia"
    );

    // Reset the group to the beginning and consume everything again.
    reset_group(&s, &lane);
    let out = lane.consume(&s, &[]).await;
    assert_eq!(out.summary("written"), 400, "replayed: {out}");
    assert_eq!(
        lane.rows(&s).await,
        rows,
        "a replay overwrites rows with the same values"
    );
}

fn reset_group(s: &Services, lane: &Lane) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .set("group.id", &lane.group)
        .create()
        .expect("admin consumer");
    let metadata = consumer
        .fetch_metadata(Some(&lane.topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(&lane.topic, p.id(), Offset::Offset(0))
            .expect("add");
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("commit offsets 0");
}

#[tokio::test]
async fn a_consumer_killed_mid_run_loses_nothing_on_restart() {
    let s = Services::from_env();
    let lane = Lane::new("sigkill");
    let users = lane.publish(&s, 3000).await;

    let mut child = lane
        .consumer(&s, &["--max-in-flight", "1"])
        .spawn()
        .expect("spawn consumer");
    // Kill once rows are written and some offsets committed (auto-commit, every second).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if lane.count(&s).await >= 300 && committed(&s, &lane.group, &lane.topic) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rows and commits in 120s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.expect("SIGKILL");
    child.wait().await.expect("reaped");
    let committed_at_kill = committed(&s, &lane.group, &lane.topic);
    let rows_at_kill = lane.count(&s).await;
    assert!(
        rows_at_kill < 3000,
        "killed before the end ({rows_at_kill} rows)"
    );
    assert!(
        committed_at_kill <= rows_at_kill,
        "an offset ({committed_at_kill}) was committed before its row ({rows_at_kill} rows)"
    );

    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        out.summary("consumed") as i64,
        3000 - committed_at_kill,
        "resumed exactly at the committed offsets: {out}"
    );
    let rows = lane.rows(&s).await;
    assert_rows_match(&rows, &users, 0);
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_and_the_stream_moves_on() {
    let s = Services::from_env();
    let lane = Lane::new("poison");
    let users = lane.publish(&s, 50).await;
    let sample = read_topic(&s, &lane.topic, 1, Duration::from_secs(10));
    let (schema_id, _) =
        domain::wire::unframe(sample[0].payload().expect("payload")).expect("framed");

    // A real User datum under the real schema id, but with a latitude no row can hold.
    let mut bad = users[0].clone();
    bad.login.uuid = "00000000-0000-4000-8000-0000000000aa".into();
    bad.location.coordinates.latitude = f64::NAN;
    let nan = domain::wire::frame(schema_id, &domain::avro::to_datum(&bad).expect("datum"));

    let garbage: &[u8] = b"{\"not\": \"avro\"}";
    let unknown_id = &domain::wire::frame(0x7fff_ff01, &[2, 4, 6])[..];
    produce_raw(
        &s,
        &lane.topic,
        &[(b"g", garbage), (b"u", unknown_id), (b"n", &nan)],
    );
    let more = lane.publish(&s, 50).await;

    // The unknown id is asked again for this long before it is poison (30 s by default).
    let out = lane.consume(&s, &["--unknown-schema-retry", "1s"]).await;
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (100, 3),
        "{out}"
    );
    let rows = lane.rows(&s).await;
    assert_rows_match(&rows, &[users, more].concat(), 0);

    let dead = read_topic(&s, &lane.dlq, 3, Duration::from_secs(20));
    assert_eq!(dead.len(), 3);
    let by_key: HashMap<Vec<u8>, &rdkafka::message::OwnedMessage> = dead
        .iter()
        .map(|m| (m.key().expect("key").to_vec(), m))
        .collect();
    let g = by_key[&b"g".to_vec()];
    assert_eq!(g.payload(), Some(garbage), "original bytes kept");
    assert_eq!(header(g, "dlq.error.kind"), "framing");
    assert_eq!(header(g, "dlq.error.class"), "poison");
    let when = chrono::DateTime::parse_from_rfc3339(&header(g, "dlq.time")).expect("dlq.time");
    assert!(
        (chrono::Utc::now() - when.to_utc()).num_minutes().abs() < 10,
        "{when}"
    );
    assert!(header(g, "dlq.error").contains("not Confluent wire format"));
    assert_eq!(header(g, "dlq.source.topic"), lane.topic);
    assert!(header(g, "dlq.source.offset").parse::<i64>().is_ok());
    assert!(header(g, "dlq.source.partition").parse::<i32>().is_ok());
    let u = by_key[&b"u".to_vec()];
    assert_eq!(header(u, "dlq.error.kind"), "schema");
    assert_eq!(header(u, "dlq.error.class"), "poison");
    assert!(
        header(u, "dlq.error").contains("schema id 2147483393"),
        "{}",
        header(u, "dlq.error")
    );
    let n = by_key[&b"n".to_vec()];
    assert_eq!(header(n, "dlq.error.kind"), "transform");
    assert!(header(n, "dlq.error").contains("latitude"));
}

#[tokio::test]
async fn health_and_metrics_report_the_run_and_sigterm_stops_it_cleanly() {
    let s = Services::from_env();
    let lane = Lane::new("health");
    lane.publish(&s, 20).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = lane.consumer(&s, &[]);
    cmd.args(["--http-addr", &addr]);
    let child = cmd.spawn().expect("spawn");

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let text = match client.get(format!("http://{addr}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains("consumer_rows_written_total 20") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed 20 rows:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metrics.contains("consumer_write_latency_seconds_count 20"),
        "{metrics}"
    );
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let mut check = bins::command("consumer", &s);
    check.args(["--healthcheck", "--http-addr", &addr]);
    assert!(
        bins::run(check, LIMIT).await.success,
        "--healthcheck passes against a ready consumer"
    );

    // SIGTERM (what Compose sends): finish, commit, exit 0.
    bins::terminate(&child);
    let out = bins::finish(child, LIMIT).await;
    assert!(out.success, "{out}");
    assert!(out.stderr.contains("SIGTERM received"), "{out}");
    assert_eq!(out.summary("written"), 20);
    let mut check = bins::command("consumer", &s);
    check.args(["--healthcheck", "--http-addr", &addr]);
    assert!(
        !bins::run(check, LIMIT).await.success,
        "--healthcheck fails with no consumer"
    );
}

#[tokio::test]
async fn the_dead_letter_topic_replays_through_the_consumer_once_the_cause_is_fixed() {
    let s = Services::from_env();
    let lane = Lane::new("replay");
    let users = lane.publish(&s, 30).await;
    // What a consumer of an earlier release left on the DLQ when its registry
    // URL was wrong: good records, with their keys and bytes kept, and one that
    // really is poison.
    let good = read_topic(&s, &lane.topic, 30, Duration::from_secs(20));
    assert_eq!(good.len(), 30);
    let mut dead: Vec<(&[u8], &[u8])> = good
        .iter()
        .map(|m| (m.key().expect("key"), m.payload().expect("payload")))
        .collect();
    dead.push((b"junk", b"not avro at all"));
    create_topic(&s, &lane.dlq, 3).await;
    produce_raw(&s, &lane.dlq, &dead);

    // The documented replay: the consumer reads the DLQ as its topic, in a
    // group of its own, with a DLQ of its own for what is still poison.
    let replay_dlq = format!("{}.replay", lane.dlq);
    let mut cmd = bins::command("consumer", &s);
    cmd.args(["--topic", &lane.dlq, "--dlq-topic", &replay_dlq])
        .args(["--group-id", &format!("{}_replay", lane.group)])
        .args(["--keyspace", &lane.keyspace, "--exit-when-idle", "5s"])
        .env("CONSUMER_HTTP_ADDR", "127.0.0.1:0");
    let out = bins::run(cmd, LIMIT).await;
    assert!(out.success, "{out}");
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (30, 1),
        "{out}"
    );
    assert_rows_match(&lane.rows(&s).await, &users, 0);
    let still_poison = read_topic(&s, &replay_dlq, 1, Duration::from_secs(20));
    assert_eq!(still_poison.len(), 1);
    assert_eq!(still_poison[0].key(), Some(&b"junk"[..]));
    assert_eq!(header(&still_poison[0], "dlq.source.topic"), lane.dlq);
}
