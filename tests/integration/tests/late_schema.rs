//! A registry that learns a schema late is not a stream of poison: records framed with a
//! schema id the registry does not know yet wait (for `--unknown-schema-retry`) and become
//! rows once it is registered; an id that never appears is dead-lettered after that wait;
//! and a registry that knows none of the topic's schemas stops the consumer.

use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::Schema;
use domain::User;
use integration::kafka::{committed, create_topic, header, produce_raw, read_topic, record_count};
use integration::pipeline::{Lane, LIMIT};
use integration::registry::{framed, register, schema_exists};
use integration::{bins, unique, Services};
use rdkafka::Message;
use serde_json::json;

/// `schemas/user.avsc` with an optional field of `name` added: a compatible schema that no
/// one registered before (new content gets a new id).
fn with_field(name: &str) -> serde_json::Value {
    let mut schema: serde_json::Value =
        serde_json::from_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": name, "type": ["null", "string"], "default": null}));
    schema
}

/// Records of fresh users (new uuids, the shape of `like`) framed with `id` as written
/// with `schema` (its extra field `field` set).
fn records(like: &[User], id: u32, schema: &Schema, field: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    like.iter()
        .map(|user| {
            let mut user = user.clone();
            user.login.uuid = uuid::Uuid::new_v4().to_string();
            let mut value = apache_avro::to_value(&user).expect("user as Avro value");
            if let Value::Record(fields) = &mut value {
                fields.push((field.into(), Value::Union(0, Box::new(Value::Null))));
            }
            (user.login.uuid.into_bytes(), framed(id, schema, value))
        })
        .collect()
}

/// `consumer_retries_total{dependency="registry"}` in a `/metrics` text.
fn registry_retries(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("consumer_retries_total{dependency=\"registry\"} ")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn borrowed(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect()
}

#[tokio::test]
async fn records_of_a_schema_registered_after_them_become_rows_and_none_is_dead_lettered() {
    let s = Services::from_env();
    // The registry is shared: another client may register a schema of its own between the
    // throwaway that shows the next id and this test's, taking that id. Then try again.
    let mut attempts = 0;
    let (lane, out, late_id) = loop {
        attempts += 1;
        match registered_late(&s).await {
            Some(done) => break done,
            None if attempts < 3 => eprintln!("the predicted schema id was taken; again"),
            None => panic!("another client took the predicted schema id {attempts} times"),
        }
    };
    assert!(out.success, "{out}");
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (40, 0),
        "{out}"
    );
    assert!(out.summary("retried") > 0, "{out}");
    eprintln!(
        "schema id {late_id} registered 10 s late: {}",
        out.stdout.trim()
    );
    assert_eq!(lane.count(&s).await, 40);
    assert_eq!(record_count(&s, &lane.dlq), 0, "nothing dead-lettered");
    assert_eq!(
        committed(&s, &lane.group, &lane.topic),
        record_count(&s, &lane.topic)
    );
}

/// Publishes 20 users, then 20 records framed with the id a new schema will get, runs the
/// consumer, and registers that schema 10 s after the consumer first asked for the id. The
/// lane, the consumer's output and the id; `None` if another client took the id first.
async fn registered_late(s: &Services) -> Option<(Lane, bins::Output, u32)> {
    let lane = Lane::new("lateschema");
    // The producer registers schemas/user.avsc under the topic's subject: the registry knows
    // the topic, it has only not learnt one of its schemas yet.
    let users = lane.publish(s, 20).await;

    // Apicurio's ids are global and sequential: a throwaway schema shows the next one.
    let field = format!("late_{}", unique("f"));
    let late = with_field(&field);
    let throwaway = register(
        s,
        &format!("{}-value", unique("throwaway")),
        &with_field(&unique("t")),
    )
    .await;
    let late_id = throwaway + 1;
    let late_records = records(
        &users,
        late_id,
        &Schema::parse(&late).expect("schema"),
        &field,
    );
    produce_raw(s, &lane.topic, &borrowed(&late_records));

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = lane.consumer(s, &["--exit-when-idle", "5s"]);
    cmd.args(["--http-addr", &addr]);
    // Killed when dropped, if this try is given up.
    let child = cmd.spawn().expect("spawn consumer");

    // The consumer has asked for the unknown id and is waiting for it.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if schema_exists(s, late_id).await {
            return None;
        }
        let text = bed::scrape(&client, &addr).await;
        if registry_retries(&text) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer never retried the unknown schema id {late_id}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The registry learns the schema 10 s later.
    tokio::time::sleep(Duration::from_secs(10)).await;
    if register(s, &format!("{}-value", unique("late")), &late).await != late_id {
        return None;
    }
    Some((lane, bins::finish(child, LIMIT).await, late_id))
}

#[tokio::test]
async fn a_schema_id_the_registry_never_learns_is_dead_lettered_after_the_bounded_wait() {
    let s = Services::from_env();
    let lane = Lane::new("neverschema");
    let users = lane.publish(&s, 10).await;
    let never = 0x7fff_fe01;
    let field = "never";
    let schema = Schema::parse(&with_field(field)).expect("schema");
    let lost = records(&users[..3], never, &schema, field);
    produce_raw(&s, &lane.topic, &borrowed(&lost));
    lane.publish(&s, 10).await;

    let started = Instant::now();
    let out = lane.consume(&s, &["--unknown-schema-retry", "3s"]).await;
    eprintln!("schema id {never} never registered: {}", out.stdout.trim());
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "waited for the id first"
    );
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (20, 3),
        "{out}"
    );
    assert!(
        out.summary("retried") >= 3,
        "each record asked again: {out}"
    );
    let dead = read_topic(&s, &lane.dlq, 3, Duration::from_secs(20));
    assert_eq!(dead.len(), 3);
    for letter in &dead {
        let header = |key: &str| header(letter, key);
        assert_eq!(header("dlq.error.kind"), "schema");
        let reason = header("dlq.error");
        assert!(
            reason.contains(&format!("schema id {never} is not in the registry"))
                && reason.contains("CONSUMER_UNKNOWN_SCHEMA_RETRY"),
            "{reason}"
        );
        assert!(letter.key().is_some());
    }
    assert_eq!(
        committed(&s, &lane.group, &lane.topic),
        record_count(&s, &lane.topic)
    );
}

#[tokio::test]
async fn a_registry_that_knows_none_of_the_topics_schemas_stops_the_consumer_not_poison() {
    let s = Services::from_env();
    let lane = Lane::new("noschema");
    create_topic(&s, &lane.topic, 3).await;
    // Records framed as if by a producer of another registry: nothing registered here.
    let unframed: &[u8] = &domain::wire::frame(0x7fff_fe02, &[2, 4, 6]);
    produce_raw(&s, &lane.topic, &[(b"a", unframed), (b"b", unframed)]);

    let out = bins::run(
        lane.consumer(
            &s,
            &["--unknown-schema-retry", "1s", "--exit-when-idle", "5s"],
        ),
        LIMIT,
    )
    .await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains("knows no schema of subject")
            && out.stderr.contains("SCHEMA_REGISTRY_URL")
            && out
                .stderr
                .contains(&s.registry.trim_end_matches('/').to_string()),
        "{out}"
    );
    assert_eq!(record_count(&s, &lane.dlq), 0, "nothing dead-lettered");
    assert_eq!(committed(&s, &lane.group, &lane.topic), 0);
}
