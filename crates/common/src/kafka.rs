//! Kafka: the connection flags both binaries share, the client settings built
//! from them, the start-up check and topic creation (the class of Kafka errors:
//! `fault::kafka`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::fault::kafka::topic_creation_is_transient;
use crate::secret::Secret;

pub mod alarm;
pub mod properties;
pub mod topic_config;

pub use alarm::{Alarm, AlarmContext, Alarmed};
pub use properties::{Properties, Property};

#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port. From the host with
    /// Compose: localhost:9092; from a container on its network: kafka:29092.
    #[arg(
        value_name = "BOOTSTRAP_SERVERS",
        id = "kafka_bootstrap_servers",
        long = "bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,

    /// Topic the users are published to and consumed from.
    #[arg(
        value_name = "TOPIC",
        id = "kafka_topic",
        long = "topic",
        env = "KAFKA_TOPIC",
        default_value = "users_created"
    )]
    pub topic: String,

    /// Partitions of the topic when it has to be created (an existing topic is left as it is).
    #[arg(
        value_name = "PARTITIONS",
        id = "kafka_partitions",
        long = "topic-partitions",
        env = "KAFKA_TOPIC_PARTITIONS",
        default_value_t = 3
    )]
    pub partitions: i32,

    /// Replication factor of topics this program creates.
    #[arg(
        value_name = "REPLICATION",
        id = "kafka_replication",
        long = "topic-replication",
        env = "KAFKA_TOPIC_REPLICATION",
        default_value_t = 1
    )]
    pub replication: i32,

    /// min.insync.replicas of topics this program creates: how many replicas must have a
    /// record before acks=all reports it delivered. 0 (default): 2 when --topic-replication
    /// is 3 or more (one broker may fail, nothing acknowledged is lost), else 1.
    #[arg(
        value_name = "REPLICAS",
        id = "kafka_topic_min_insync_replicas",
        long = "topic-min-insync-replicas",
        env = "KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
        default_value_t = 0
    )]
    pub min_insync_replicas: i32,

    /// How long to wait for the broker at start-up before giving up.
    #[arg(value_name = "CONNECT_TIMEOUT", id = "kafka_connect_timeout", long = "kafka-connect-timeout", env = "KAFKA_CONNECT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Protocol to the brokers: plaintext, ssl, sasl_plaintext or sasl_ssl (librdkafka's
    /// security.protocol).
    #[arg(
        value_name = "SECURITY_PROTOCOL",
        id = "kafka_security_protocol",
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL"
    )]
    pub security_protocol: Option<String>,

    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(
        value_name = "SASL_MECHANISM",
        id = "kafka_sasl_mechanism",
        long = "kafka-sasl-mechanism",
        env = "KAFKA_SASL_MECHANISM"
    )]
    pub sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(
        value_name = "SASL_USERNAME",
        id = "kafka_sasl_username",
        long = "kafka-sasl-username",
        env = "KAFKA_SASL_USERNAME"
    )]
    pub sasl_username: Option<String>,

    /// SASL password. Never logged; prefer the environment variable to the flag, which other
    /// users of the machine can read in the process list.
    #[arg(
        value_name = "SASL_PASSWORD",
        id = "kafka_sasl_password",
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<Secret>,

    /// PEM file of the CA(s) that signed the brokers' TLS certificates (librdkafka's
    /// ssl.ca.location), when they are not in the system trust store.
    #[arg(
        value_name = "SSL_CA_LOCATION",
        id = "kafka_ssl_ca_location",
        long = "kafka-ssl-ca-location",
        env = "KAFKA_SSL_CA_LOCATION"
    )]
    pub ssl_ca_location: Option<PathBuf>,

    /// A librdkafka properties file (key=value lines, # comments), as Java clients'
    /// client.properties or kcat -F. Applied after the flags above.
    #[arg(
        value_name = "CONFIG_FILE",
        id = "kafka_config_file",
        long = "kafka-config-file",
        env = "KAFKA_CONFIG_FILE"
    )]
    pub config_file: Option<PathBuf>,

    /// Any librdkafka property as key=value; repeat the flag, or separate them with ';' (in
    /// the variable too); a ';' inside a value is written '\;'. Applied last, so it wins,
    /// except for the properties the delivery guarantee depends on, which are refused.
    #[arg(
        value_name = "KEY=VALUE",
        id = "kafka_config",
        short = 'X',
        long = "kafka-config",
        env = "KAFKA_CONFIG",
        hide_env_values = true,
        value_parser = crate::secret::hidden::<Properties>()
    )]
    pub config: Vec<Properties>,
}

/// A librdkafka property a client sets itself because its guarantee depends
/// on it, and why: users may not override it.
#[derive(Debug, Clone)]
pub struct Guarded {
    pub key: &'static str,
    pub value: String,
    pub why: &'static str,
}

impl Guarded {
    pub fn new(key: &'static str, value: impl Into<String>, why: &'static str) -> Guarded {
        Guarded {
            key,
            value: value.into(),
            why,
        }
    }
}

/// What an idempotent, acks=all producer depends on: no record lost or
/// duplicated by a retry.
pub fn producer_guarantees() -> Vec<Guarded> {
    vec![
        Guarded::new(
            "enable.idempotence",
            "true",
            "retries must not duplicate or reorder records",
        ),
        Guarded::new(
            "acks",
            "all",
            "a record counts as delivered only once every in-sync replica has it",
        ),
    ]
}

/// Why a Kafka client could not be made, `doing` what, without the value of the property it
/// names: rdkafka's message quotes it, and it may be a password (or one given under a
/// mistyped key, which no list of secret keys would recognise).
pub fn creation_error(e: KafkaError, doing: &str) -> anyhow::Error {
    match e {
        KafkaError::ClientConfig(_, desc, key, value) => {
            let desc = if value.is_empty() {
                desc
            } else {
                desc.replace(&value, "***")
            };
            anyhow!(
                "{doing}: the Kafka property {key} was refused: {desc} (its value is not shown). \
                 Fix it in KAFKA_CONFIG, KAFKA_CONFIG_FILE or the --kafka-* flags."
            )
        }
        e => anyhow::Error::new(e).context(doing.to_string()),
    }
}

impl KafkaArgs {
    /// The user's properties, in order of precedence (later wins): the named
    /// flags, the properties file, then `--kafka-config`.
    fn user_properties(&self) -> Result<Vec<Property>> {
        let named = [
            ("security.protocol", self.security_protocol.clone()),
            ("sasl.mechanism", self.sasl_mechanism.clone()),
            ("sasl.username", self.sasl_username.clone()),
            (
                "sasl.password",
                self.sasl_password.as_ref().map(|p| p.expose().to_string()),
            ),
            (
                "ssl.ca.location",
                self.ssl_ca_location
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
        ];
        let mut props: Vec<Property> = named
            .into_iter()
            .filter_map(|(key, value)| {
                value.map(|value| Property {
                    key: key.to_string(),
                    value,
                })
            })
            .collect();
        if let Some(path) = &self.config_file {
            props.extend(properties::read_file(path)?);
        }
        props.extend(self.config.iter().flat_map(|p| p.0.iter().cloned()));
        Ok(props)
    }

    /// Client settings: our `defaults`, then the user's properties (which win
    /// over them), then the `guarded` ones this client's guarantee depends on.
    /// A user property that tries to change a guarded one is refused, all of
    /// them listed at once.
    pub fn client_config(
        &self,
        defaults: &[(&str, &str)],
        guarded: &[Guarded],
    ) -> Result<ClientConfig> {
        let props = self.user_properties()?;
        let refused: Vec<String> = props
            .iter()
            .filter_map(|p| {
                guarded.iter().find(|g| g.key == p.key).map(|g| {
                    format!(
                        "{} cannot be set (this client sets {}={}: {})",
                        g.key, g.key, g.value, g.why
                    )
                })
            })
            .collect();
        if !refused.is_empty() {
            bail!(
                "Kafka settings refused: {}. Remove them from KAFKA_CONFIG / KAFKA_CONFIG_FILE.",
                refused.join("; ")
            );
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            // librdkafka's own log lines go through `tracing` via rdkafka's `log` bridge;
            // keep them to real problems.
            .set("log_level", "4")
            // A broker that goes silent (packets dropped, not refused) holds each request
            // for socket.timeout.ms (60 s by default) before the client looks elsewhere;
            // 10 s, and a metadata refresh every 10 s, let partitions follow their new
            // leader soon after the cluster moves them.
            .set("socket.timeout.ms", "10000")
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("topic.metadata.refresh.interval.ms", "10000");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for p in props {
            config.set(p.key, p.value);
        }
        for g in guarded {
            config.set(g.key, &g.value);
        }
        Ok(config)
    }

    /// Waits (bounded by `connect_timeout`) until a broker answers a metadata
    /// request, so an unreachable cluster fails fast with a message that names it.
    /// A probe client is polled meanwhile: librdkafka reports refused
    /// credentials and failed TLS handshakes only to a polled client's error
    /// callback, which raises the alarm and ends the wait at once (a failed SASL
    /// handshake once it stood `alarm::AUTH_GRACE` unanswered).
    pub fn wait_for_broker(&self) -> Result<()> {
        let probe: BaseConsumer<AlarmContext> = self
            .client_config(&[], &[])?
            .create_with_context(AlarmContext::default())
            .map_err(|e| creation_error(e, "creating a Kafka client"))?;
        let deadline = std::time::Instant::now() + self.connect_timeout;
        loop {
            probe.poll(Duration::from_millis(100));
            if let Some(message) = probe.context().alarm().fatal(&self.bootstrap_servers) {
                bail!("{message}");
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let attempt = Duration::from_secs(1).min(left.max(Duration::from_millis(100)));
            match probe.client().fetch_metadata(None, attempt) {
                Ok(_) => return Ok(()),
                Err(e) if left.is_zero() => {
                    // Out of time: an authentication error still in its grace is the best lead.
                    if let Some(message) = probe
                        .context()
                        .alarm()
                        .fatal_or_doubt(&self.bootstrap_servers)
                    {
                        bail!("{message}");
                    }
                    bail!(
                        "Kafka at {} did not answer within {:?} ({e}). Is the broker up, and is {} \
                         an address it advertises to this host (KAFKA_BOOTSTRAP_SERVERS)? If its \
                         listener wants TLS or SASL, set KAFKA_SECURITY_PROTOCOL (now {}).",
                        self.bootstrap_servers,
                        self.connect_timeout,
                        self.bootstrap_servers,
                        self.security_protocol.as_deref().unwrap_or("plaintext")
                    )
                }
                Err(_) => continue,
            }
        }
    }

    /// min.insync.replicas for created topics (see the flag).
    pub fn min_insync_replicas(&self) -> i32 {
        match self.min_insync_replicas {
            0 if self.replication >= 3 => 2,
            0 => 1,
            n => n,
        }
    }

    /// Creates `topics` unless they exist. The pipeline never relies on broker
    /// auto-creation, which is off in production clusters.
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        let admin = self.admin().await?;
        self.create_missing(&admin, topics, &[]).await
    }

    /// The consumer's topics: `source`, then its dead-letter topic `dlq`, created (if
    /// missing) with the source's `max.message.bytes` when the source sets its own, since a
    /// dead letter carries a source record. Returns the DLQ's `max.message.bytes` as the
    /// brokers report it (`None` if they would not say).
    pub async fn ensure_source_and_dead_letter_topics(
        &self,
        source: &str,
        dlq: &str,
    ) -> Result<Option<usize>> {
        let admin = self.admin().await?;
        self.create_missing(&admin, &[source], &[]).await?;
        let limit = topic_config::setting(
            &admin,
            source,
            topic_config::MAX_MESSAGE_BYTES,
            self.connect_timeout,
        )
        .await;
        let copied: Vec<(&str, &str)> = match &limit {
            Some((bytes, true)) => vec![(topic_config::MAX_MESSAGE_BYTES, bytes.as_str())],
            _ => vec![],
        };
        self.create_missing(&admin, &[dlq], &copied).await?;
        let dlq_limit = topic_config::setting(
            &admin,
            dlq,
            topic_config::MAX_MESSAGE_BYTES,
            self.connect_timeout,
        )
        .await;
        Ok(dlq_limit.and_then(|(bytes, _)| bytes.parse().ok()))
    }

    /// An admin client, once a broker answers.
    async fn admin(&self) -> Result<AdminClient<AlarmContext>> {
        tokio::task::block_in_place(|| self.wait_for_broker())?;
        self.client_config(&[], &[])?
            .create_with_context(AlarmContext::default())
            .map_err(|e| creation_error(e, "creating the Kafka admin client"))
    }

    /// Creates those of `topics` that do not exist, each with the `settings` given.
    async fn create_missing(
        &self,
        admin: &AdminClient<AlarmContext>,
        topics: &[&str],
        settings: &[(&str, &str)],
    ) -> Result<()> {
        let min_insync = self.min_insync_replicas().to_string();
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| {
                settings.iter().fold(
                    NewTopic::new(
                        t,
                        self.partitions,
                        TopicReplication::Fixed(self.replication),
                    )
                    .set("min.insync.replicas", &min_insync),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.connect_timeout));
        // Replicas start together: a peer may be creating the same topic, and a cluster
        // still starting answers with a controller moving or a request timing out. Those
        // are retried until the connect timeout; a refusal is reported at once.
        let deadline = std::time::Instant::now() + self.connect_timeout;
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
        loop {
            let results = match admin.create_topics(&new, &options).await {
                Ok(results) => results,
                // The whole request timed out or met a moving controller (a loaded or
                // recovering cluster): the same transience as a topic's own answer.
                Err(e)
                    if e.rdkafka_error_code()
                        .is_some_and(topic_creation_is_transient)
                        && std::time::Instant::now() < deadline =>
                {
                    tracing::debug!("topic creation not settled yet ({e}); retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "creating topics {topics:?} on {}",
                        self.bootstrap_servers
                    )))
                }
            };
            let failed: Vec<(String, RDKafkaErrorCode)> = results
                .into_iter()
                .filter_map(Result::err)
                .filter(|(_, code)| *code != RDKafkaErrorCode::TopicAlreadyExists)
                .collect();
            if failed.is_empty() {
                return Ok(());
            }
            let refused = failed
                .iter()
                .find(|(_, code)| !topic_creation_is_transient(*code));
            let given_up = (std::time::Instant::now() >= deadline).then(|| &failed[0]);
            let Some((topic, code)) = refused.or(given_up) else {
                tracing::debug!(?failed, "topic creation not settled yet; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            };
            bail!(
                "could not create topic {topic} on {}: {code}. Check that the cluster allows \
                 {} partitions with replication factor {} and min.insync.replicas {}{} \
                 (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION, \
                 KAFKA_TOPIC_MIN_INSYNC_REPLICAS), and that this user may create topics.",
                self.bootstrap_servers,
                self.partitions,
                self.replication,
                self.min_insync_replicas(),
                settings
                    .iter()
                    .map(|(key, value)| format!(" and {key} {value}"))
                    .collect::<String>()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: super::KafkaArgs,
    }

    #[test]
    fn a_refused_property_is_named_without_its_value() {
        // A password under a mistyped key, and a value librdkafka quotes when it refuses it.
        for (config, key, secret) in [
            (r"sasl.pasword=hun\;ter2", "sasl.pasword", "ter2"),
            ("linger.ms=hunter2", "linger.ms", "hunter2"),
        ] {
            let cli = Cli::try_parse_from(["cli", "-X", config]).expect("parses");
            let err = format!("{:#}", cli.kafka.wait_for_broker().expect_err("refused"));
            assert!(
                err.contains(&format!("the Kafka property {key} was refused"))
                    && err.contains("KAFKA_CONFIG")
                    && !err.contains(secret),
                "{err}"
            );
        }
    }
}
