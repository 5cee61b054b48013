//! The producer against real Kafka and a real registry, with the API served
//! locally: what it publishes, and how it fails.

use std::collections::HashMap;
use std::time::Duration;

use domain::ApiPage;
use integration::api::{fixture, FakeApi, Reply};
use integration::kafka::{read_topic, record_count};
use integration::registry::register;
use integration::{bins, unique, Services};
use rdkafka::Message;
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, SrSettings};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

/// A producer command aimed at `api`, publishing to a fresh topic.
fn producer(s: &Services, api: &FakeApi, topic: &str, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = bins::command("producer", s);
    cmd.args([
        "--api-url",
        &api.url(),
        "--topic",
        topic,
        "--retry-backoff",
        "50ms",
        "--retry-max-backoff",
        "200ms",
    ])
    .args(extra);
    cmd
}

#[tokio::test]
async fn publishes_every_user_keyed_by_uuid_in_confluent_avro() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    let topic = unique("users");
    let out = bins::run(
        producer(
            &s,
            &api,
            &topic,
            &["--count", "1200", "--batch-size", "500"],
        ),
        LIMIT,
    )
    .await;
    assert!(out.success, "{out}");
    assert_eq!(out.summary("published"), 1200, "{out}");
    assert_eq!(out.summary("failed"), 0);
    assert_eq!(api.requests(), 3, "pages of 500, 500, 200");

    let served = api.served();
    let expected: HashMap<String, domain::User> =
        ApiPage::parse(json!({"results": served}).to_string().as_bytes())
            .expect("served users parse")
            .users
            .into_iter()
            .map(|u| (u.login.uuid.clone(), u))
            .collect();
    let messages = read_topic(&s, &topic, 1200, Duration::from_secs(30));
    assert_eq!(messages.len(), 1200);

    let settings = SrSettings::new(s.registry.clone());
    let mut schema_ids = std::collections::HashSet::new();
    for m in &messages {
        let key = std::str::from_utf8(m.key().expect("key")).expect("utf-8 key");
        let payload = m.payload().expect("payload");
        let (schema_id, datum) = domain::wire::unframe(payload).expect("Confluent framing");
        schema_ids.insert(schema_id);
        assert!(
            !payload.windows(7).any(|w| w == b"hunter2"),
            "password leaked into the record"
        );
        let writer = apache_avro::Schema::parse_str(&get_cached_schema(&settings, payload).await)
            .expect("registered schema parses");
        let user = domain::avro::from_datum(&writer, datum).expect("datum decodes");
        assert_eq!(user.login.uuid, key, "key is login.uuid");
        assert_eq!(
            Some(&user),
            expected.get(key),
            "record equals what was served"
        );
    }
    assert_eq!(schema_ids.len(), 1, "one schema id for the whole run");

    // Quirks survive the trip: integer postcode as text, null id.value.
    let de = served.iter().find(|u| u["nat"] == "DE").expect("a DE user");
    let de_uuid = de["login"]["uuid"].as_str().expect("uuid");
    assert_eq!(expected[de_uuid].location.postcode, "53721");
    let nz = served.iter().find(|u| u["nat"] == "NZ").expect("a NZ user");
    assert_eq!(
        expected[nz["login"]["uuid"].as_str().expect("uuid")]
            .id
            .value,
        None
    );
}

async fn get_cached_schema(settings: &SrSettings, payload: &[u8]) -> String {
    static CACHE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let (id, _) = domain::wire::unframe(payload).expect("Confluent framing");
    CACHE
        .get_or_init(|| async move {
            get_schema_by_id(id, settings)
                .await
                .expect("schema id resolves in the registry")
                .schema
        })
        .await
        .clone()
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    api.script([
        Reply::rate_limited(1),
        Reply::status(503, "upstream down"),
        Reply::status(200, &fixture("error.json")),
    ]);
    let topic = unique("retry");
    let out = bins::run(producer(&s, &api, &topic, &["--count", "10"]), LIMIT).await;
    assert!(out.success, "{out}");
    assert_eq!(out.summary("published"), 10);
    assert_eq!(api.requests(), 4);
    assert!(out.stderr.contains("HTTP 429"), "{out}");
    assert_eq!(
        read_topic(&s, &topic, 10, Duration::from_secs(20)).len(),
        10
    );
}

#[tokio::test]
async fn an_api_that_keeps_failing_is_an_error_naming_it() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    api.fail_after(0, Reply::status(500, "boom"));
    let out = bins::run(
        producer(
            &s,
            &api,
            &unique("down"),
            &["--count", "10", "--max-retries", "2"],
        ),
        LIMIT,
    )
    .await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains(&api.url()) && out.stderr.contains("failed 3 times"),
        "{out}"
    );
    assert_eq!(api.requests(), 3);
}

#[tokio::test]
async fn empty_results_and_error_bodies_are_failures_not_success() {
    let s = Services::from_env();
    for body in [fixture("empty.json"), fixture("error.json")] {
        let api = FakeApi::start().await;
        api.fail_after(0, Reply::status(200, &body));
        let out = bins::run(
            producer(
                &s,
                &api,
                &unique("empty"),
                &["--count", "5", "--max-retries", "1"],
            ),
            LIMIT,
        )
        .await;
        assert!(!out.success, "{out}");
        assert_eq!(out.summary("published"), 0);
        assert!(
            out.stderr.contains("no results") || out.stderr.contains("Uh oh"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn connection_refused_and_timeouts_are_retried_then_reported() {
    let s = Services::from_env();
    let out = bins::run(
        {
            let mut cmd = bins::command("producer", &s);
            cmd.args([
                "--api-url",
                "http://127.0.0.1:9/api/1.4/",
                "--topic",
                &unique("refused"),
                "--count",
                "5",
            ])
            .args(["--max-retries", "1", "--retry-backoff", "10ms"]);
            cmd
        },
        LIMIT,
    )
    .await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr
            .contains("could not connect to http://127.0.0.1:9/api/1.4/"),
        "{out}"
    );

    let api = FakeApi::start().await;
    api.script([Reply::Slow(Duration::from_secs(3))]);
    let topic = unique("slow");
    let out = bins::run(
        producer(
            &s,
            &api,
            &topic,
            &["--count", "5", "--api-timeout", "500ms"],
        ),
        LIMIT,
    )
    .await;
    assert!(out.success, "a timed-out request is retried: {out}");
    assert!(out.stderr.contains("timed out"), "{out}");
    assert_eq!(out.summary("published"), 5);
}

#[tokio::test]
async fn bad_records_are_rejected_and_the_rest_published() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    api.script([Reply::status(200, &fixture("some_rejected.json"))]);
    let topic = unique("rejects");
    let out = bins::run(producer(&s, &api, &topic, &["--count", "5"]), LIMIT).await;
    assert!(out.success, "{out}");
    assert_eq!(
        (out.summary("published"), out.summary("rejected")),
        (2, 3),
        "{out}"
    );
    assert!(out.stderr.contains("missing field `email`"), "{out}");
    assert_eq!(read_topic(&s, &topic, 2, Duration::from_secs(20)).len(), 2);

    let api = FakeApi::start().await;
    api.fail_after(0, Reply::status(200, &fixture("all_rejected.json")));
    let out = bins::run(
        producer(&s, &api, &unique("allbad"), &["--count", "3"]),
        LIMIT,
    )
    .await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr
            .contains("all 3 records of the page were rejected"),
        "{out}"
    );
}

#[tokio::test]
async fn a_later_failed_page_does_not_lose_earlier_users() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    api.fail_after(2, Reply::status(503, "gone"));
    let topic = unique("partial");
    let out = bins::run(
        producer(
            &s,
            &api,
            &topic,
            &[
                "--count",
                "300",
                "--batch-size",
                "100",
                "--max-retries",
                "1",
            ],
        ),
        LIMIT,
    )
    .await;
    assert!(!out.success, "{out}");
    assert_eq!(out.summary("published"), 200, "{out}");
    assert_eq!(
        read_topic(&s, &topic, 200, Duration::from_secs(20)).len(),
        200
    );
}

#[tokio::test]
async fn unreachable_registry_and_kafka_fail_fast_naming_the_address() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    let mut cmd = producer(
        &s,
        &api,
        &unique("noreg"),
        &["--count", "5", "--schema-registry-connect-timeout", "2s"],
    );
    cmd.env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:9/apis/ccompat/v7");
    let out = bins::run(cmd, LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr
            .contains("schema registry at http://127.0.0.1:9/apis/ccompat/v7"),
        "{out}"
    );
    assert_eq!(api.requests(), 0, "no API call before the registry answers");

    let mut cmd = producer(
        &s,
        &api,
        &unique("nokafka"),
        &["--count", "5", "--kafka-connect-timeout", "3s"],
    );
    cmd.env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9");
    let out = bins::run(cmd, LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains("Kafka at 127.0.0.1:9 did not answer"),
        "{out}"
    );
}

/// A `User` that shares no field with schemas/user.avsc: incompatible with it.
fn incompatible() -> serde_json::Value {
    json!({"type": "record", "name": "User", "namespace": "io.userpipeline.v1",
           "fields": [{"name": "must_have", "type": "string"}]})
}

#[tokio::test]
async fn a_registry_that_rejects_the_schema_fails_the_run() {
    let s = Services::from_env();
    let topic = unique("conflict");
    // Someone registered an incompatible schema under our subject first.
    register(&s, &format!("{topic}-value"), &incompatible()).await;

    let api = FakeApi::start().await;
    let out = bins::run(producer(&s, &api, &topic, &["--count", "5"]), LIMIT).await;
    assert!(!out.success, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "schemas/user.avsc is incompatible with the latest version of subject {topic}-value"
        )) && out.stderr.contains("so nothing was published")
            && out.stderr.contains("docs/schema-evolution.md"),
        "{out}"
    );
    assert_eq!(api.requests(), 0);
    assert_eq!(record_count(&s, &topic), 0, "nothing published");
}

#[tokio::test]
async fn duration_streams_until_the_time_is_up_at_the_capped_rate() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    let topic = unique("stream");
    let begun = std::time::Instant::now();
    let out = bins::run(
        producer(
            &s,
            &api,
            &topic,
            &["--duration", "3s", "--rate", "100", "--batch-size", "50"],
        ),
        LIMIT,
    )
    .await;
    assert!(out.success, "{out}");
    let published = out.summary("published");
    assert!(
        begun.elapsed() >= Duration::from_secs(3),
        "ran for the whole duration"
    );
    // The cap holds however fast or slow the machine is: at most 100/s over the
    // run's own time, plus the one page fetched just before the deadline.
    let seconds: f64 = out
        .stdout
        .lines()
        .rfind(|l| l.contains("summary:"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("seconds="))
        })
        .and_then(|v| v.parse().ok())
        .expect("seconds= in the summary");
    assert!(seconds >= 3.0, "stopped before --duration: {out}");
    assert!(
        published >= 1 && published as f64 <= 100.0 * seconds + 50.0,
        "published {published} in {seconds}s at --rate 100: {out}"
    );
    assert_eq!(
        read_topic(&s, &topic, published as usize, Duration::from_secs(20)).len() as u64,
        published
    );
}

#[tokio::test]
async fn sigterm_mid_page_stops_promptly_and_the_landed_file_names_what_reached_kafka() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    let topic = unique("sigterm");
    let landed_path = std::env::temp_dir().join(format!("{topic}.landed.json"));
    // One page of 5 000 users at 200/s: 25 s to publish it, so any stop is mid-page.
    let child = producer(
        &s,
        &api,
        &topic,
        &["--count", "5000", "--batch-size", "5000", "--rate", "200"],
    )
    .arg("--landed-file")
    .arg(&landed_path)
    .spawn()
    .expect("spawn producer");

    // Publishing has begun (so the producer listens for signals) once records are on the topic.
    let deadline = std::time::Instant::now() + LIMIT;
    while record_count(&s, &topic) < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "no records on {topic}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let signalled = std::time::Instant::now();
    bins::terminate(&child);
    let out = bins::finish(child, LIMIT).await;
    let took = signalled.elapsed();

    assert_eq!(out.code, Some(143), "SIGTERM's exit code: {out}");
    assert!(
        took < Duration::from_secs(10),
        "stopped {took:?} after SIGTERM, not mid-page: {out}"
    );
    assert!(out.stderr.contains("interrupted by SIGTERM"), "{out}");
    let landed = common::landed::Landed::parse(
        &std::fs::read_to_string(&landed_path).expect("a landed file on an interrupted run"),
    )
    .expect("the landed file parses");
    let published = out.summary("published");
    assert!(
        published > 0 && published < 5000,
        "published {published} of 5000: {out}"
    );
    assert_eq!(landed.published, published, "{landed:?}");
    // The run was the topic's only writer: its spans are the topic's records, exactly.
    let on_topic: Vec<(i32, i64, i64)> = integration::kafka::watermarks(&s, &topic);
    let spans: Vec<(i32, i64, i64)> = landed
        .partitions
        .iter()
        .map(|p| (p.partition, p.first, p.end))
        .collect();
    assert_eq!(
        spans, on_topic,
        "landed spans against the topic's watermarks"
    );
    assert_eq!(landed.offsets(), published as i64);
    let _ = std::fs::remove_file(&landed_path);
}
