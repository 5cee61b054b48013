//! The pipeline on the secure bed (`tests/stack up --secure`: Kafka SASL_SSL with
//! SCRAM, the registry behind HTTPS and basic auth, Cassandra with
//! PasswordAuthenticator and client TLS). With the right settings everything
//! works; each wrong one stops a binary at once, with a message naming the
//! setting, and writes nothing anywhere; no secret reaches a log line (also at
//! debug level), `/metrics`, a dead letter or `--help`.

use std::time::{Duration, Instant};

use integration::api::FakeApi;
use integration::bins::{self, Output};
use integration::kafka::{committed, produce_raw, read_topic, record_count};
use integration::pipeline::{Lane, LIMIT};
use rdkafka::message::{Headers, Message};
use secure_tests::{assert_no_secret, foreign_ca, free_addr, until_metrics, Secure};

/// How long a binary may take to give up on a wrong credential or CA: seconds,
/// not a connect timeout (a refusal is an answer: nothing to wait for).
const FAST: Duration = Duration::from_secs(20);
/// A refused SASL credential: librdkafka gives it the code of any failed handshake, so it
/// stops a binary only once it stood its grace unanswered, then as fast as FAST.
const SASL_REFUSED: Duration = FAST.saturating_add(common::kafka::alarm::AUTH_GRACE);
/// A plaintext client against a TLS port may see only a closed connection, like
/// a service still starting: it may wait out its connect timeout (set to 10 s in
/// those cases), but no longer.
const CONNECT_TIMEOUT: &str = "10s";
const BOUNDED: Duration = Duration::from_secs(20);

fn wrong() -> String {
    format!("wrong-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn the_pipeline_runs_with_credentials_and_tls_everywhere_and_prints_no_secret() {
    let s = Secure::from_env();
    let secrets = s.secrets();
    let lane = Lane::new("secure_pipeline");

    let api = FakeApi::start().await;
    let mut producer = s.producer(&lane, &api, 50);
    producer.env("RUST_LOG", "debug");
    let out = bins::run(producer, LIMIT).await;
    assert!(out.success, "producer failed: {out}");
    assert_eq!(out.summary("published"), 50);
    assert_no_secret(
        "the producer's output (RUST_LOG=debug)",
        out.to_string().as_bytes(),
        &secrets,
    );
    // one poison record, so that the run writes a dead letter too
    produce_raw(&s.services, &lane.topic, &[(b"poison", b"not avro at all")]);

    let addr = free_addr();
    let mut consumer = s.consumer(&lane, &["--exit-when-idle", "5s", "--http-addr", &addr]);
    consumer.env("RUST_LOG", "debug");
    let child = consumer.spawn().expect("spawn consumer");
    let metrics = until_metrics(&addr, "50 rows written", |m| {
        bed::sample_sum(m, "consumer_rows_written_total") == 50
    })
    .await;
    let out = bins::finish(child, LIMIT).await;
    assert!(out.success, "consumer failed: {out}");
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (50, 1)
    );
    assert_no_secret(
        "the consumer's output (RUST_LOG=debug)",
        out.to_string().as_bytes(),
        &secrets,
    );
    assert_no_secret("/metrics", metrics.as_bytes(), &secrets);

    assert_eq!(lane.count(&s.services).await, 50, "every user is a row");
    let dead = read_topic(&s.services, &lane.dlq, 1, Duration::from_secs(15));
    assert_eq!(dead.len(), 1, "the poison record is dead-lettered");
    for m in &dead {
        let headers = m.headers().expect("a dead letter carries headers");
        assert!(headers.count() > 0);
        for h in headers.iter() {
            assert_no_secret(&format!("DLQ header {}", h.key), h.key.as_bytes(), &secrets);
            assert_no_secret(
                &format!("DLQ header {}", h.key),
                h.value.unwrap_or_default(),
                &secrets,
            );
        }
        assert_no_secret("a DLQ payload", m.payload().unwrap_or_default(), &secrets);
    }
    assert_eq!(
        committed(&s.services, &lane.group, &lane.topic),
        51,
        "all offsets committed"
    );
}

/// A wrong setting, tried on a lane that holds 20 published users.
struct Case {
    name: &'static str,
    /// variables changed from the bed's settings
    set: Vec<(&'static str, String)>,
    /// variables removed (the binary falls back to its default)
    unset: &'static [&'static str],
    /// the setting the error must name
    names: &'static str,
    /// the producer meets the same service (Kafka, the registry); the consumer always does
    producer_too: bool,
    /// how long a binary may take to give up
    bound: Duration,
}

impl Case {
    fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env("RUST_LOG", "debug");
        for k in self.unset {
            cmd.env_remove(k);
        }
        for (k, v) in &self.set {
            cmd.env(k, v);
        }
    }

    /// Exit non-zero within FAST, an error line naming the setting, no secret printed.
    fn check(&self, who: &str, out: &Output, took: Duration, secrets: &[String]) {
        eprintln!("{}: {who} stopped in {took:.1?}", self.name);
        assert!(!out.success, "{}: {who} succeeded: {out}", self.name);
        assert!(
            took < self.bound,
            "{}: {who} took {took:?} to give up (bound {:?}): {out}",
            self.name,
            self.bound
        );
        let naming: Vec<&str> = out
            .stderr
            .lines()
            .chain(out.stdout.lines())
            .filter(|l| l.contains(self.names))
            .collect();
        assert!(
            !naming.is_empty(),
            "{}: {who}'s error does not name {}: {out}",
            self.name,
            self.names
        );
        assert_no_secret(
            &format!("{}: {who}'s output", self.name),
            out.to_string().as_bytes(),
            secrets,
        );
    }

    async fn run(self) {
        let s = Secure::from_env();
        let mut secrets = s.secrets();
        // the wrong values are secrets too: a typo'd password is nearly a password
        secrets.extend(
            self.set
                .iter()
                .filter(|(k, _)| k.contains("PASSWORD") || k.contains("USER_INFO"))
                .map(|(_, v)| v.clone()),
        );
        let lane = Lane::new(self.name);
        s.publish(&lane, 20).await;

        let mut consumer = s.consumer(&lane, &["--exit-when-idle", "5s"]);
        self.apply(&mut consumer);
        let t0 = Instant::now();
        let out = bins::run(consumer, LIMIT).await;
        self.check("consumer", &out, t0.elapsed(), &secrets);

        if self.producer_too {
            let api = FakeApi::start().await;
            let mut producer = s.producer(&lane, &api, 10);
            self.apply(&mut producer);
            let t0 = Instant::now();
            let out = bins::run(producer, LIMIT).await;
            self.check("producer", &out, t0.elapsed(), &secrets);
        }

        assert_eq!(
            record_count(&s.services, &lane.topic),
            20,
            "{}: nothing published",
            self.name
        );
        assert_eq!(
            record_count(&s.services, &lane.dlq),
            0,
            "{}: nothing dead-lettered",
            self.name
        );
        assert_eq!(
            committed(&s.services, &lane.group, &lane.topic),
            0,
            "{}: no offset committed",
            self.name
        );
        assert_eq!(
            lane.count(&s.services).await,
            0,
            "{}: no row written",
            self.name
        );
    }
}

#[tokio::test]
async fn a_wrong_kafka_password_stops_both_binaries_once_its_grace_is_over() {
    Case {
        name: "wrong_kafka_password",
        set: vec![("KAFKA_SASL_PASSWORD", wrong())],
        unset: &[],
        names: "KAFKA_SASL_PASSWORD",
        producer_too: true,
        bound: SASL_REFUSED,
    }
    .run()
    .await;
}

#[tokio::test]
async fn a_wrong_registry_password_stops_both_binaries_at_once() {
    Case {
        name: "wrong_registry_password",
        set: vec![(
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
            format!("pipeline:{}", wrong()),
        )],
        unset: &[],
        names: "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        producer_too: true,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn no_registry_credentials_stop_both_binaries_at_once() {
    Case {
        name: "no_registry_credentials",
        set: vec![],
        unset: &["SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"],
        names: "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        producer_too: true,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn a_wrong_cassandra_password_stops_the_consumer_at_once() {
    Case {
        name: "wrong_cassandra_password",
        set: vec![("CASSANDRA_PASSWORD", wrong())],
        unset: &[],
        names: "CASSANDRA_PASSWORD",
        producer_too: false,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn an_untrusted_kafka_ca_stops_both_binaries_at_once() {
    Case {
        name: "untrusted_kafka_ca",
        set: vec![("KAFKA_SSL_CA_LOCATION", foreign_ca().display().to_string())],
        unset: &[],
        names: "KAFKA_SSL_CA_LOCATION",
        producer_too: true,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn an_untrusted_registry_ca_stops_both_binaries_at_once() {
    Case {
        name: "untrusted_registry_ca",
        set: vec![(
            "SCHEMA_REGISTRY_SSL_CA_LOCATION",
            foreign_ca().display().to_string(),
        )],
        unset: &[],
        names: "SCHEMA_REGISTRY_SSL_CA_LOCATION",
        producer_too: true,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn an_untrusted_cassandra_ca_stops_the_consumer_at_once() {
    Case {
        name: "untrusted_cassandra_ca",
        set: vec![(
            "CASSANDRA_SSL_CA_LOCATION",
            foreign_ca().display().to_string(),
        )],
        unset: &[],
        names: "CASSANDRA_SSL_CA_LOCATION",
        producer_too: false,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn a_plaintext_kafka_client_against_the_tls_listener_fails_clearly() {
    Case {
        name: "plaintext_kafka",
        set: vec![("KAFKA_CONNECT_TIMEOUT", CONNECT_TIMEOUT.into())],
        unset: &[
            "KAFKA_SECURITY_PROTOCOL",
            "KAFKA_SASL_MECHANISM",
            "KAFKA_SASL_USERNAME",
            "KAFKA_SASL_PASSWORD",
            "KAFKA_SSL_CA_LOCATION",
        ],
        names: "KAFKA_SECURITY_PROTOCOL",
        producer_too: true,
        bound: BOUNDED,
    }
    .run()
    .await;
}

#[tokio::test]
async fn a_plain_http_registry_url_against_the_https_port_fails_clearly() {
    let s = Secure::from_env();
    Case {
        name: "plain_http_registry",
        set: vec![(
            "SCHEMA_REGISTRY_URL",
            s.services.registry.replacen("https://", "http://", 1),
        )],
        unset: &[],
        names: "SCHEMA_REGISTRY_URL",
        producer_too: true,
        bound: FAST,
    }
    .run()
    .await;
}

#[tokio::test]
async fn a_cassandra_client_without_tls_against_the_tls_port_fails_clearly() {
    Case {
        name: "plaintext_cassandra",
        set: vec![("CASSANDRA_CONNECT_TIMEOUT", CONNECT_TIMEOUT.into())],
        unset: &["CASSANDRA_SSL_CA_LOCATION"],
        names: "CASSANDRA_SSL_CA_LOCATION",
        producer_too: false,
        bound: BOUNDED,
    }
    .run()
    .await;
}

#[tokio::test]
async fn help_shows_no_secret_from_the_environment() {
    let s = Secure::from_env();
    let secrets = s.secrets();
    for name in ["producer", "consumer"] {
        let mut cmd = s.command(name);
        cmd.arg("--help");
        let out = bins::run(cmd, Duration::from_secs(30)).await;
        assert!(out.success, "{name} --help: {out}");
        assert!(
            out.stdout.contains("KAFKA_SASL_PASSWORD"),
            "{name} --help lists the variable: {out}"
        );
        assert_no_secret(
            &format!("{name} --help"),
            out.to_string().as_bytes(),
            &secrets,
        );
    }
}
