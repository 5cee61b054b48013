//! The data of the pipeline, in the order it flows:
//!
//! 1. [`api`]: a page of the Random User API as it arrives, quirks and all.
//! 2. [`user`]: the record we publish to Kafka (credentials dropped, types fixed).
//! 3. [`avro`]: that record's Avro schema (`schemas/user.avsc`) and datum encoding;
//!    [`wire`]: the Confluent framing around the datum, as it travels in Kafka.
//! 4. [`transform`] + [`row`]: the Cassandra row the consumer writes (`schemas/cassandra.cql`).

pub mod api;
pub mod avro;
pub mod row;
pub mod text;
pub mod transform;
pub mod user;
pub mod wire;

#[cfg(test)]
mod fixtures;

pub use api::{ApiPage, PageError, RawUser, Rejected};
pub use row::{Timestamp, UserRow};
pub use text::Text;
pub use transform::{to_row, TransformError};
pub use user::User;
