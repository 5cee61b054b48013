//! Plumbing shared by the producer and the consumer, written once: logging,
//! how freed memory is kept (`memory`), what every binary's metrics registry holds and how it is rendered (`metrics`), shutdown signals, retry with backoff and its log summaries (`storm`), failure classes, secrets and their redaction in URLs (`redact`), where a
//! run's records landed (`landed`, written by the producer, awaited by the consumer), and the
//! Kafka, Schema Registry and Cassandra connection flags and clients.

pub mod backoff;
#[cfg(feature = "cassandra")]
pub mod cassandra;
pub mod cli;
pub mod fault;
pub mod generated;
pub mod kafka;
pub mod landed;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod redact;
pub mod registry;
pub mod secret;
pub mod shutdown;
pub mod storm;
