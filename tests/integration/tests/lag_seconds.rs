//! The lag in seconds, read from a real consumer's /metrics: a record that cannot be written
//! (its schema id unknown to the registry, so it waits in flight as a row would while
//! Cassandra is away) shows its age, past the 2-minute alert threshold, and the lag drops to
//! 0 once it is dealt with. The same /metrics carries the committed offsets, the rebalance
//! count, build info and process metrics, as OpenMetrics text.

use std::time::{Duration, Instant};

use apache_avro::Schema;
use integration::kafka::{produce_at, record_count};
use integration::pipeline::{Lane, LIMIT};
use integration::registry::framed;
use integration::{bins, Services};

/// An id no registry hands out in a test's lifetime.
const UNKNOWN_ID: u32 = 2_000_000_000;
/// How old the stuck record already is when produced.
const AGE_MS: i64 = 125_000;

/// The value of the sample `series` (name and labels as rendered) in a /metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The largest value among the samples of the family `name` that carry labels.
fn max_labelled(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(f64::max)
}

/// Polls the consumer's /metrics until `done` holds for it, up to `within`.
async fn until(
    addr: &str,
    what: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> (String, Option<String>) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let response = client.get(format!("http://{addr}/metrics")).send().await;
        if let Ok(response) = response {
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = response.text().await.unwrap_or_default();
            if done(&text) {
                return (text, content_type);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}:\n{text}"
            );
        } else {
            assert!(Instant::now() < deadline, "{what}: no /metrics at {addr}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_record_stuck_in_flight_shows_its_age_and_the_lag_returns_to_zero() {
    let s = Services::from_env();
    let lane = Lane::new("lagseconds");
    // The producer registers the topic's schema: the registry knows the topic.
    let users = lane.publish(&s, 5).await;
    let schema = Schema::parse_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    let value = apache_avro::to_value(&users[0]).expect("user as Avro value");
    let stuck = framed(UNKNOWN_ID, &schema, value);
    let produced_ms = chrono::Utc::now().timestamp_millis() - AGE_MS;
    produce_at(&s, &lane.topic, &[(b"stuck", &stuck, produced_ms)]);

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = lane.consumer(
        &s,
        &["--unknown-schema-retry", "10s", "--exit-when-idle", "10s"],
    );
    cmd.args(["--http-addr", &addr]);
    let child = cmd.spawn().expect("spawn consumer");

    // Waiting for its schema, the record is in flight: its age is exact, and past 120 s.
    let (text, content_type) = until(
        &addr,
        "the stuck record's age",
        Duration::from_secs(60),
        |t| sample(t, "consumer_lag_seconds").is_some_and(|age| age > 120.0),
    )
    .await;
    let age = sample(&text, "consumer_lag_seconds").unwrap_or_default();
    eprintln!("consumer_lag_seconds {age} with a record produced {AGE_MS} ms ago in flight");
    assert!(
        age < 200.0,
        "the age is the record's, not more: {age}\n{text}"
    );
    let partition_age = max_labelled(&text, "consumer_partition_lag_seconds").unwrap_or_default();
    assert_eq!(partition_age, age, "the max over the partitions:\n{text}");
    assert_eq!(
        content_type.as_deref(),
        Some(common::metrics::CONTENT_TYPE),
        "Prometheus must parse it as OpenMetrics"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        sample(&text, "consumer_rebalances_total{kind=\"assigned\"}").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(text.contains("\nconsumer_build_info{version=\""), "{text}");
    assert!(
        sample(&text, "process_resident_memory_bytes").is_some_and(|b| b > 1e6),
        "{text}"
    );

    // Given up on (dead-lettered) after --unknown-schema-retry: every record is dealt with,
    // and the committed offsets reach the end of the topic.
    let end = record_count(&s, &lane.topic) as f64;
    let (text, _) = until(&addr, "caught up", Duration::from_secs(90), |t| {
        sample(t, "consumer_lag_seconds") == Some(0.0)
            && sample(t, "consumer_lag_records") == Some(0.0)
            && t.lines()
                .filter(|l| l.starts_with("consumer_partition_committed_offset{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
                == end
    })
    .await;
    assert_eq!(
        sample(&text, "consumer_rows_written_total"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "consumer_records_dead_lettered_total{kind=\"schema\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let out = bins::finish(child, LIMIT).await;
    assert!(out.success, "{out}");
}
