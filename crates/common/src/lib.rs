//! Plumbing shared by the producer and the consumer, written once: logging,
//! shutdown signals, retry with backoff and its log summaries (`storm`), failure classes, secrets, and the
//! Kafka, Schema Registry and Cassandra connection flags and clients.

pub mod backoff;
pub mod cassandra;
pub mod cli;
pub mod fault;
pub mod kafka;
pub mod logging;
pub mod registry;
pub mod secret;
pub mod shutdown;
pub mod storm;
