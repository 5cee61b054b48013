//! Random User API → Avro (Schema Registry) → Kafka.
//!
//! `source` fetches pages, `frame` encodes them as Kafka records where they were
//! parsed, `publish` registers the schema and delivers, `run` drives them and keeps
//! the books that decide the exit code; `push` reports a run's outcome to a Pushgateway.

pub mod cli;
pub mod frame;
pub mod publish;
pub mod push;
pub mod run;
pub mod source;

pub use cli::Args;
pub use run::{run, Summary};
