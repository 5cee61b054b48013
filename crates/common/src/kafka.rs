use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::fault::Class;

#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port. From the host with
    /// Compose: localhost:9092; from a container on its network: kafka:29092.
    #[arg(
        long = "bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,

    /// Topic the users are published to and consumed from.
    #[arg(long = "topic", env = "KAFKA_TOPIC", default_value = "users_created")]
    pub topic: String,

    /// Partitions of the topic when it has to be created (an existing topic is left as it is).
    #[arg(
        long = "topic-partitions",
        env = "KAFKA_TOPIC_PARTITIONS",
        default_value_t = 3
    )]
    pub partitions: i32,

    /// Replication factor of topics this program creates.
    #[arg(
        long = "topic-replication",
        env = "KAFKA_TOPIC_REPLICATION",
        default_value_t = 1
    )]
    pub replication: i32,

    /// How long to wait for the broker at start-up before giving up.
    #[arg(long = "kafka-connect-timeout", env = "KAFKA_CONNECT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

impl KafkaArgs {
    /// Client settings shared by every Kafka client of this program.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            // librdkafka's own log lines go through `tracing` via rdkafka's `log` bridge;
            // keep them to real problems.
            .set("log_level", "4");
        config
    }

    /// Waits (bounded by `connect_timeout`) until a broker answers a metadata
    /// request, so an unreachable cluster fails fast with a message that names it.
    pub fn wait_for_broker<C: ClientContext>(&self, client: &Client<C>) -> Result<()> {
        let deadline = std::time::Instant::now() + self.connect_timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let attempt = Duration::from_secs(5).min(left.max(Duration::from_millis(100)));
            match client.fetch_metadata(None, attempt) {
                Ok(_) => return Ok(()),
                Err(e) if left.is_zero() => bail!(
                    "Kafka at {} did not answer within {:?} ({e}). Is the broker up, and is {} \
                     an address it advertises to this host (KAFKA_BOOTSTRAP_SERVERS)?",
                    self.bootstrap_servers,
                    self.connect_timeout,
                    self.bootstrap_servers
                ),
                Err(_) => continue,
            }
        }
    }

    /// Creates `topics` unless they exist. The pipeline never relies on broker
    /// auto-creation, which is off in production clusters.
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .context("creating the Kafka admin client")?;
        tokio::task::block_in_place(|| self.wait_for_broker(admin.inner()))?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.connect_timeout));
        let results = admin
            .create_topics(&new, &options)
            .await
            .with_context(|| format!("creating topics {topics:?} on {}", self.bootstrap_servers))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => bail!(
                    "could not create topic {topic} on {}: {code}. Check that the broker allows \
                     {} partitions with replication factor {}.",
                    self.bootstrap_servers,
                    self.partitions,
                    self.replication
                ),
            }
        }
        Ok(())
    }
}

/// The class of a Kafka client error, by its error code: refused
/// credentials or permissions, and TLS failures, are the deployment's to fix;
/// everything else (a broker restarting, a leader moving, timeouts) passes.
pub fn error_class(e: &rdkafka::error::KafkaError) -> Class {
    e.rdkafka_error_code().map_or(Class::Retry, code_class)
}

pub fn code_class(code: RDKafkaErrorCode) -> Class {
    use RDKafkaErrorCode as C;
    match code {
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::Authentication
        | C::SSL
        | C::InvalidConfig
        // librdkafka's "the client cannot go on" (e.g. the idempotent producer's state was lost).
        | C::Fatal => Class::Fatal,
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;

    #[test]
    fn refused_credentials_and_permissions_are_fatal_broker_trouble_is_not() {
        let consume = |c| error_class(&KafkaError::MessageConsumption(c));
        assert_eq!(
            consume(RDKafkaErrorCode::TopicAuthorizationFailed),
            Class::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::GroupAuthorizationFailed),
            Class::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::SaslAuthenticationFailed),
            Class::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::BrokerTransportFailure),
            Class::Retry
        );
        assert_eq!(
            consume(RDKafkaErrorCode::NotLeaderForPartition),
            Class::Retry
        );
        assert_eq!(consume(RDKafkaErrorCode::AllBrokersDown), Class::Retry);
        assert_eq!(
            error_class(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            )),
            Class::Retry
        );
    }
}
