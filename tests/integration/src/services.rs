use std::path::PathBuf;

use clap::Parser;
use common::cassandra::CassandraArgs;
use common::kafka::KafkaArgs;
use rdkafka::ClientConfig;

/// The binaries' own connection flags, read from the same environment
/// variables they read: a test's clients connect exactly as the binaries do
/// (SASL, TLS, credentials included on a secured bed).
#[derive(Debug, Parser)]
struct Connection {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    cassandra: CassandraArgs,
}

fn connection() -> Connection {
    Connection::try_parse_from(["tests"]).unwrap_or_else(|e| panic!("connection settings: {e}"))
}

/// Addresses of the real services, from the same env vars the binaries read.
/// A missing variable is an error, never a skip: run `eval "$(tests/stack env)"`.
#[derive(Debug, Clone)]
pub struct Services {
    pub kafka: String,
    pub registry: String,
    pub cassandra: String,
}

impl Services {
    pub fn from_env() -> Services {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: start the services with `tests/stack up` and `eval \"$(tests/stack env)\"`, or point it at your own")
            })
        };
        Services {
            kafka: var("KAFKA_BOOTSTRAP_SERVERS"),
            registry: var("SCHEMA_REGISTRY_URL"),
            cassandra: var("CASSANDRA_CONTACT_POINTS"),
        }
    }

    /// Kafka client settings as the binaries build them (no guarded keys).
    pub fn kafka_config(&self) -> ClientConfig {
        let mut args = connection().kafka;
        args.bootstrap_servers = self.kafka.clone();
        args.client_config(&[], &[])
            .unwrap_or_else(|e| panic!("Kafka settings: {e:#}"))
    }

    /// A Cassandra session as the consumer opens it.
    pub async fn cassandra_session(&self) -> scylla::client::session::Session {
        self.connect_cassandra(connection().cassandra).await
    }

    /// A session as another role (e.g. a secured bed's superuser, to change the
    /// pipeline role's permissions), otherwise connected as the binaries are.
    pub async fn cassandra_session_as(
        &self,
        user: &str,
        password: &str,
    ) -> scylla::client::session::Session {
        let mut args = connection().cassandra;
        args.username = Some(user.to_string());
        args.password = Some(common::secret::Secret::new(password));
        self.connect_cassandra(args).await
    }

    async fn connect_cassandra(&self, mut args: CassandraArgs) -> scylla::client::session::Session {
        args.contact_points = self.cassandra.split(',').map(str::to_string).collect();
        args.connect()
            .await
            .unwrap_or_else(|e| panic!("Cassandra at {}: {e:#}", self.cassandra))
    }
}

/// The repository root (tests read fixtures and call `tests/stack`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
