//! Random User API → Avro (Schema Registry) → Kafka.
//!
//! `source` fetches pages, `publish` encodes and delivers, `run` drives both
//! and keeps the books that decide the exit code; `push` reports a run's outcome
//! to a Pushgateway.

pub mod cli;
pub mod publish;
pub mod push;
pub mod run;
pub mod source;

pub use cli::Args;
pub use run::{run, Summary};
