//! Kafka → transform → Cassandra, at-least-once with idempotent rows.
//!
//! `pipeline` runs the loop in rooms (poll, writer, rebalance, watcher);
//! `decode` turns a record into a row (or poison; `unknown_ids`: how long a schema id the
//! registry does not know is waited for), `schema` readies the table,
//! `sink` writes rows, `dlq` parks poison, and `offsets` decides what may be
//! committed. `metrics` and `http` make it observable; `await_run` tells when a
//! producer run's records are all written.

pub mod await_run;
pub mod cli;
pub mod decode;
pub mod dlq;
pub mod http;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod schema;
pub mod sink;
mod unknown_ids;

pub use cli::Args;
pub use pipeline::{run, Summary};
