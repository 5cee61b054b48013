//! The dead-letter topic: the original bytes, key, timestamp and headers,
//! plus headers that say what was wrong, its class, where the record came
//! from and when it was dead-lettered. A DLQ record is a normal record of the
//! main topic's format: the consumer can read the DLQ directly to replay it.

use std::time::Duration;

use common::kafka::AlarmContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use common::fault::Fault;

pub const HEADER_ERROR: &str = "dlq.error";
pub const HEADER_KIND: &str = "dlq.error.kind";
pub const HEADER_CLASS: &str = "dlq.error.class";
pub const HEADER_TIME: &str = "dlq.time";
pub const HEADER_TOPIC: &str = "dlq.source.topic";
pub const HEADER_PARTITION: &str = "dlq.source.partition";
pub const HEADER_OFFSET: &str = "dlq.source.offset";

#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer<AlarmContext>,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    pub fn new(producer: FutureProducer<AlarmContext>, topic: &str) -> Self {
        DeadLetters {
            producer,
            topic: topic.to_string(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes `message` to the DLQ and waits for the broker's acknowledgement.
    pub async fn send(&self, message: &OwnedMessage, poison: &Fault) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for (key, value) in [
            (HEADER_ERROR, poison.message.as_str()),
            (HEADER_KIND, poison.kind),
            (HEADER_CLASS, poison.class.as_str()),
            (HEADER_TIME, now.as_str()),
            (HEADER_TOPIC, message.topic()),
            (HEADER_PARTITION, partition.as_str()),
            (HEADER_OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        if let Some(ts) = message.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}
