//! Helpers for the secure bed's tests (tests/secure/tests/*.rs): the bed's
//! settings, read from the same variables the binaries read (`eval "$(tests/stack
//! env --secure)"`), the binaries run with them, clients that read back what a run
//! wrote (Kafka over SASL_SSL, Cassandra with a role over TLS), and the search for
//! secrets in everything a run left behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::api::FakeApi;
use integration::bins;
use integration::pipeline::{Lane, LIMIT};
use integration::Services;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use scylla::client::session::Session;

/// Every setting of the secure bed a binary needs besides the addresses.
pub const SETTINGS: [&str; 10] = [
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
    "SCHEMA_REGISTRY_SSL_CA_LOCATION",
    "CASSANDRA_USERNAME",
    "CASSANDRA_PASSWORD",
    "CASSANDRA_SSL_CA_LOCATION",
];

/// The secure bed, as `tests/stack env --secure` describes it.
#[derive(Clone)]
pub struct Secure {
    pub services: Services,
    settings: Vec<(&'static str, String)>,
}

/// Names only: the values include passwords.
impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("services", &self.services)
            .field(
                "settings",
                &self.settings.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Secure {
    /// A missing variable is an error, never a skip.
    pub fn from_env() -> Secure {
        let settings = SETTINGS
            .iter()
            .map(|name| {
                let value = std::env::var(name).unwrap_or_else(|_| {
                    panic!("{name} is not set: run `tests/stack up --secure` and `eval \"$(tests/stack env --secure)\"` (tests/secure/run does)")
                });
                (*name, value)
            })
            .collect();
        Secure {
            services: Services::from_env(),
            settings,
        }
    }

    pub fn get(&self, name: &str) -> &str {
        self.settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} is not a secure setting"))
    }

    /// The bed's passwords: none may appear in any output of any run.
    pub fn secrets(&self) -> Vec<String> {
        let user_info = self.get("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO");
        let registry = user_info.split_once(':').map(|(_, p)| p).unwrap_or("");
        [
            self.get("KAFKA_SASL_PASSWORD"),
            registry,
            self.get("CASSANDRA_PASSWORD"),
        ]
        .into_iter()
        .inspect(|p| assert!(p.len() >= 8, "a bed password is suspiciously short"))
        .map(str::to_string)
        .collect()
    }

    /// Sets the secure settings on a command of `integration::bins` (which
    /// clears the caller's KAFKA_* and CASSANDRA_* variables).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for (k, v) in &self.settings {
            cmd.env(k, v);
        }
        cmd.env("SCHEMA_REGISTRY_URL", &self.services.registry);
    }

    pub fn command(&self, name: &str) -> tokio::process::Command {
        let mut cmd = bins::command(name, &self.services);
        self.apply(&mut cmd);
        cmd
    }

    /// The producer publishing `count` users from `api` to the lane's topic.
    pub fn producer(&self, lane: &Lane, api: &FakeApi, count: usize) -> tokio::process::Command {
        let mut cmd = self.command("producer");
        cmd.args(["--api-url", &api.url(), "--topic", &lane.topic])
            .args(["--count", &count.to_string()]);
        cmd
    }

    /// The consumer of the lane (its topic, DLQ, group and keyspace).
    pub fn consumer(&self, lane: &Lane, extra: &[&str]) -> tokio::process::Command {
        let mut cmd = lane.consumer(&self.services, extra);
        self.apply(&mut cmd);
        cmd
    }

    /// Publishes `count` users with the right settings; returns the run.
    pub async fn publish(&self, lane: &Lane, count: usize) -> bins::Output {
        let api = FakeApi::start().await;
        let out = bins::run(self.producer(lane, &api, count), LIMIT).await;
        assert!(out.success, "producer failed: {out}");
        assert_eq!(out.summary("published"), count as u64);
        out
    }

    /// A librdkafka client of the bed (SASL_SSL as `pipeline`).
    pub fn kafka(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.services.kafka)
            .set("security.protocol", self.get("KAFKA_SECURITY_PROTOCOL"))
            .set("sasl.mechanism", self.get("KAFKA_SASL_MECHANISM"))
            .set("sasl.username", self.get("KAFKA_SASL_USERNAME"))
            .set("sasl.password", self.get("KAFKA_SASL_PASSWORD"))
            .set("ssl.ca.location", self.get("KAFKA_SSL_CA_LOCATION"));
        config
    }

    fn metadata_client(&self, group: &str) -> BaseConsumer {
        self.kafka()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("metadata consumer")
    }

    fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
        consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("topic metadata")
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect()
    }

    /// Records on `topic` (sum of its partitions' high watermarks; 0 if it does not exist).
    pub fn record_count(&self, topic: &str) -> i64 {
        let consumer = self.metadata_client(&integration::unique("counter"));
        Self::partitions(&consumer, topic)
            .into_iter()
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .sum()
    }

    /// Offsets `group` committed on `topic`, summed over partitions.
    pub fn committed(&self, group: &str, topic: &str) -> i64 {
        let consumer = self.metadata_client(group);
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in Self::partitions(&consumer, topic) {
            tpl.add_partition(topic, p);
        }
        consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets")
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0))
            .sum()
    }

    /// Every record of `topic` until `expected` arrived or nothing new came for `quiet`.
    pub fn read_topic(&self, topic: &str, expected: usize, quiet: Duration) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = self
            .kafka()
            .set("group.id", integration::unique("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut out = Vec::new();
        let mut last = Instant::now();
        while out.len() < expected && last.elapsed() < quiet {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                out.push(m.expect("read record").detach());
                last = Instant::now();
            }
        }
        out
    }

    /// Puts raw bytes on `topic` (a poison record for the DLQ).
    pub fn produce_raw(&self, topic: &str, records: &[(&[u8], &[u8])]) {
        let producer: BaseProducer = self.kafka().create().expect("producer");
        for (key, payload) in records {
            producer
                .send(BaseRecord::to(topic).key(*key).payload(*payload))
                .map_err(|(e, _)| e)
                .expect("enqueue");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    }

    /// A Cassandra session as the app role, over TLS, trusting the bed's CA.
    pub async fn session(&self) -> Session {
        let ca = self.get("CASSANDRA_SSL_CA_LOCATION");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
            roots.add(cert.expect("CA certificate")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        scylla::client::session_builder::SessionBuilder::new()
            .known_nodes(self.services.cassandra.split(','))
            .user(
                self.get("CASSANDRA_USERNAME"),
                self.get("CASSANDRA_PASSWORD"),
            )
            .tls_context(Some(Arc::new(tls)))
            .build()
            .await
            .unwrap_or_else(|e| panic!("Cassandra at {}: {e}", self.services.cassandra))
    }

    /// Rows of the lane's table; 0 if the consumer never created it.
    pub async fn row_count(&self, keyspace: &str) -> i64 {
        let session = self.session().await;
        let tables = session
            .query_unpaged(
                "SELECT table_name FROM system_schema.tables \
                 WHERE keyspace_name = ? AND table_name = 'created_users'",
                (keyspace,),
            )
            .await
            .expect("look up the table")
            .into_rows_result()
            .expect("table rows");
        if tables.rows_num() == 0 {
            return 0;
        }
        session
            .query_unpaged(format!("SELECT COUNT(*) FROM {keyspace}.created_users"), ())
            .await
            .expect("count rows")
            .into_rows_result()
            .expect("count result")
            .single_row::<(i64,)>()
            .expect("one count")
            .0
    }
}

/// A CA nobody trusts: fresh, made with openssl in a temporary directory.
/// Returns the path of its certificate.
pub fn foreign_ca() -> PathBuf {
    let dir = std::env::temp_dir().join(integration::unique("foreign_ca"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=a CA the bed does not know"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl could not make a CA");
    std::fs::remove_file(dir.join("ca.key")).expect("remove the CA's key");
    dir.join("ca.pem")
}

/// Panics if any of `secrets` occurs in `text` (what: where the text comes from).
pub fn assert_no_secret(what: &str, text: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(text);
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret ({} characters) appears in {what}",
            secret.len()
        );
    }
}
