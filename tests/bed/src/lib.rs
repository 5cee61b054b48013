//! The cluster bed (`tests/stack up --cluster`: three hosts, each a broker and a Cassandra
//! node) as the tests and the soak see it, written once: its shape (`topology`), its control
//! script (`stack`), what Kafka (`kafka`) and Cassandra (`cassandra`) say of it, whether it is
//! whole again after a fault (`whole`), and a consumer's `/metrics` read back (`metrics`).
//!
//! Nothing here knows the pipeline's crates: callers pass their own clients and sessions, so
//! the tests and the benches connect as they always did.

pub mod cassandra;
pub mod kafka;
pub mod metrics;
pub mod stack;
pub mod topology;
pub mod whole;

pub use kafka::Kafka;
pub use metrics::{sample_sum, sample_total, scrape};
pub use stack::Stack;
