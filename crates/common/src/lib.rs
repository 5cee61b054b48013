//! Plumbing shared by the producer and the consumer, written once: logging,
//! shutdown signals, retry with backoff, Kafka and Schema Registry set-up.

pub mod backoff;
pub mod cli;
pub mod fault;
pub mod kafka;
pub mod logging;
pub mod registry;
pub mod shutdown;
