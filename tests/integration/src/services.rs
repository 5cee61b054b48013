use std::path::PathBuf;

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

    pub async fn cassandra_session(&self) -> scylla::client::session::Session {
        scylla::client::session_builder::SessionBuilder::new()
            .known_nodes(self.cassandra.split(','))
            .build()
            .await
            .unwrap_or_else(|e| panic!("Cassandra at {}: {e}", self.cassandra))
    }
}

/// The repository root (tests read fixtures and call `tests/stack`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
