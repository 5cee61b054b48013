//! The Schema Registry stopped under a running consumer (its own test binary:
//! it stops a service others use). Records whose writer schema the consumer
//! has not fetched yet wait and are retried, none is dead-lettered, readiness
//! says which dependency is down, and the rows appear once the registry is back.

use std::time::{Duration, Instant};

use integration::bins;
use integration::kafka::{produce_raw, record_count};
use integration::pipeline::{Lane, LIMIT};
use integration::registry::{framed, register, with_nickname};
use integration::Services;

/// Polls `url` until its body satisfies `done`; returns the last body.
async fn poll(url: &str, what: &str, done: impl Fn(u16, &str) -> bool) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = match client.get(url).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if done(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_registry_outage_mid_run_delays_records_and_dead_letters_none() {
    let s = Services::from_env();
    let lane = Lane::new("registry_outage");
    let users = lane.publish(&s, 20).await;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = lane.consumer(&s, &[]);
    cmd.args(["--http-addr", &format!("127.0.0.1:{port}")]);
    let mut child = cmd.spawn().expect("spawn consumer");
    poll(&format!("{base}/metrics"), "20 rows written", |_, b| {
        bed::sample_sum(b, "consumer_rows_written_total") == 20
    })
    .await;

    // Records under a schema id the consumer will only look up during the outage: registered
    // while it runs (at start-up it learns the subject's latest schema, which would be this one).
    let subject = format!("{}-value", lane.topic);
    let v1: serde_json::Value = serde_json::from_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    let newer = with_nickname(&v1);
    let newer_id = register(&s, &subject, &newer).await;
    let newer_schema = apache_avro::Schema::parse(&newer).expect("schema");
    let later: Vec<(Vec<u8>, Vec<u8>)> = users
        .iter()
        .take(10)
        .map(|u| {
            let mut u = u.clone();
            u.login.uuid = uuid::Uuid::new_v4().to_string();
            let mut value = apache_avro::to_value(&u).expect("value");
            if let apache_avro::types::Value::Record(fields) = &mut value {
                fields.push((
                    "nickname".into(),
                    apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
                ));
            }
            (
                u.login.uuid.into_bytes(),
                framed(newer_id, &newer_schema, value),
            )
        })
        .collect();

    bins::stack(&["stop", "registry"]);
    let borrowed: Vec<(&[u8], &[u8])> = later
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    produce_raw(&s, &lane.topic, &borrowed);
    let metrics = poll(&format!("{base}/metrics"), "lookups retried", |_, b| {
        bed::sample_sum(b, "consumer_retries_total") >= 10
            && bed::sample_sum(b, "consumer_records_consumed_total") == 30
    })
    .await;
    let health = poll(&format!("{base}/healthz"), "not ready", |status, _| {
        status == 503
    })
    .await;
    let outcome = (
        bed::sample_sum(&metrics, "consumer_rows_written_total"),
        bed::sample_sum(&metrics, "consumer_records_dead_lettered_total"),
        record_count(&s, &lane.dlq),
        health.contains("registry=down") && health.contains("cassandra=up"),
    );
    bins::stack(&["start", "registry"]);
    assert_eq!(
        outcome,
        (20, 0, 0, true),
        "(written, dead-lettered, on the DLQ, registry named in /healthz) during the outage: {health}"
    );

    poll(
        &format!("{base}/metrics"),
        "30 rows written after the outage",
        |_, b| bed::sample_sum(b, "consumer_rows_written_total") == 30,
    )
    .await;
    poll(&format!("{base}/healthz"), "ready again", |status, _| {
        status == 200
    })
    .await;
    sigterm(&mut child);
    let out = bins::finish(child, LIMIT).await;
    assert!(out.success, "{out}");
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (30, 0),
        "{out}"
    );
    assert_eq!(lane.count(&s).await, 30);
    assert_eq!(record_count(&s, &lane.dlq), 0);
}

fn sigterm(child: &mut tokio::process::Child) {
    let pid = child.id().expect("running consumer");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}
