//! Support for the end-to-end tests: where the services are, a local stand-in
//! for the Random User API, and small helpers that read back what the pipeline
//! wrote. Kafka, the Schema Registry and Cassandra are always the real ones
//! (`tests/stack up`, or a `docker compose up` pointed at by the env vars).

pub mod api;
pub mod bins;
pub mod kafka;
pub mod pipeline;
pub mod registry;
pub mod services;

pub use services::Services;

/// A name unique to this test run, for topics, groups and keyspaces.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..12)
            .unwrap_or("x")
    )
}
