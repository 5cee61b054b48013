//! What the poll loop hands the writer for one record: its row when it could be decoded on
//! the spot, else a copy of the record.

use domain::UserRow;
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::Message;

use crate::decode::Decoder;

// `Row` is nearly every record: boxing it would allocate per row to shrink the rare `Record`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Work {
    /// Decoded on the poll loop, straight from librdkafka's buffer: its writer schema was
    /// known (every record but the first of each schema id).
    Row {
        partition: i32,
        offset: i64,
        produced_ms: i64,
        row: UserRow,
    },
    /// A copy of the record, for the writer to decode (asking the registry first) or to
    /// dead-letter: the first of a schema id, or one that does not decode.
    Record(OwnedMessage),
}

impl Work {
    pub fn of(decoder: &Decoder, message: &BorrowedMessage<'_>) -> Work {
        let produced_ms = produced_ms(message);
        match decoder.known_row(message.payload(), produced_ms) {
            Some(row) => Work::Row {
                partition: message.partition(),
                offset: message.offset(),
                produced_ms,
                row,
            },
            None => Work::Record(message.detach()),
        }
    }

    pub fn partition(&self) -> i32 {
        match self {
            Work::Row { partition, .. } => *partition,
            Work::Record(message) => message.partition(),
        }
    }

    pub fn offset(&self) -> i64 {
        match self {
            Work::Row { offset, .. } => *offset,
            Work::Record(message) => message.offset(),
        }
    }
}

/// When a record was produced: its Kafka timestamp, in ms since the epoch.
pub fn produced_ms(message: &impl Message) -> i64 {
    message
        .timestamp()
        .to_millis()
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
}
