//! What the poll loop hands the writer for one record: the record itself (kept for the
//! dead-letter topic, should its row be refused) and its row when it could be decoded on the
//! spot.

use domain::row::TimedRow;
use domain::UserRow;
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::Message;

use crate::decode::Decoder;

#[derive(Debug)]
pub struct Work {
    /// A copy of the record: what a dead letter carries.
    pub message: OwnedMessage,
    /// Decoded on the poll loop, straight from librdkafka's buffer, when its writer schema was
    /// known (the topic's latest, learned at start-up, and every id seen since). None: the
    /// writer decodes it (asking the registry first) or dead-letters it.
    pub row: Option<TimedRow>,
}

impl Work {
    pub fn of(decoder: &Decoder, message: &BorrowedMessage<'_>) -> Work {
        let produced_ms = produced_ms(message);
        Work {
            row: decoder
                .known_row(message.payload(), produced_ms)
                .map(|row| timed(row, produced_ms)),
            message: message.detach(),
        }
    }

    pub fn partition(&self) -> i32 {
        self.message.partition()
    }

    pub fn offset(&self) -> i64 {
        self.message.offset()
    }

    pub fn produced_ms(&self) -> i64 {
        produced_ms(&self.message)
    }
}

/// A record's row at the record's own time (µs since the epoch), its write time.
pub fn timed(row: UserRow, produced_ms: i64) -> TimedRow {
    TimedRow {
        row,
        write_time: produced_ms.saturating_mul(1000),
    }
}

/// When a record was produced: its Kafka timestamp, in ms since the epoch.
pub fn produced_ms(message: &impl Message) -> i64 {
    message
        .timestamp()
        .to_millis()
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
}
