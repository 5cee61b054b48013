//! The dead-letter topic: the original bytes, key, timestamp and headers,
//! plus headers that say what was wrong, its class, where the record came
//! from and when it was dead-lettered. A DLQ record is a normal record of the
//! main topic's format: the consumer can read the DLQ directly to replay it.
//! Unless it does not fit: a value or reason too large for the DLQ is cut (`fit`), with
//! headers that say so and give the original size.

mod fit;

use std::time::Duration;

use anyhow::Result;
use common::kafka::{AlarmContext, KafkaArgs};
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
/// `true` when the value was cut to fit the DLQ; its size before is in `dlq.value.original.size`.
pub const HEADER_VALUE_TRUNCATED: &str = "dlq.value.truncated";
pub const HEADER_VALUE_SIZE: &str = "dlq.value.original.size";
/// The same for the reason (`dlq.error`), cut to 4 KiB.
pub const HEADER_ERROR_TRUNCATED: &str = "dlq.error.truncated";
pub const HEADER_ERROR_SIZE: &str = "dlq.error.original.size";
/// `true` on a marker: the DLQ refused the dead letter itself, so this one carries no value,
/// key or headers of the record, only where it is (`dlq.source.*`) and why (`dlq.error`).
pub const HEADER_VALUE_DROPPED: &str = "dlq.value.dropped";
/// On a marker: why the DLQ refused the whole dead letter, and what to change.
pub const HEADER_REFUSED: &str = "dlq.refused";

/// librdkafka's `message.max.bytes` unless set.
const PRODUCER_MAX_BYTES: usize = 1_000_000;

/// A poison record's reason as a dead letter carries it: at most 4 KiB, and its size in
/// bytes when it was cut.
pub fn cut_reason(reason: &str) -> (&str, Option<usize>) {
    fit::cut_text(reason, fit::REASON_LIMIT)
}

#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer<AlarmContext>,
    topic: String,
    /// The largest dead letter the producer and the topic both take, in bytes.
    limit: usize,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    /// The DLQ `topic` and its producer. Dead letters are cut to the smaller of the topic's
    /// `max.message.bytes` (`topic_limit`, when the brokers said) and the producer's
    /// `message.max.bytes` (librdkafka's default unless KAFKA_CONFIG sets it).
    pub fn create(kafka: &KafkaArgs, topic: &str, topic_limit: Option<usize>) -> Result<Self> {
        let mut config = kafka.client_config(&[], &common::kafka::producer_guarantees())?;
        let producer_limit = config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(PRODUCER_MAX_BYTES);
        let limit = topic_limit.map_or(producer_limit, |t| t.min(producer_limit));
        // The broker checks a whole batch against the topic's limit: a batch over it would
        // refuse every dead letter in it, not just a large one.
        if config.get("batch.size").is_none() {
            config.set("batch.size", limit.min(PRODUCER_MAX_BYTES).to_string());
        }
        // Its context routes librdkafka's warnings into the Kafka storm like the consumer's.
        let producer = config
            .create_with_context(AlarmContext::default())
            .map_err(|e| common::kafka::creation_error(e, "creating the dead-letter producer"))?;
        tracing::info!(
            topic,
            limit,
            "dead letters are cut to fit the dead-letter topic's max.message.bytes and the \
             producer's message.max.bytes, the smaller of the two"
        );
        Ok(DeadLetters {
            producer,
            topic: topic.to_string(),
            limit,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// What to change when the DLQ refused a dead letter for good (`e`), for the log line.
    pub fn refusal(&self, e: &KafkaError) -> String {
        let fix = match e.rdkafka_error_code() {
            Some(rdkafka::types::RDKafkaErrorCode::InvalidRecord) => format!(
                "check the rules of {} (a compacted topic refuses records without a key: \
                 give the DLQ cleanup.policy=delete)",
                self.topic
            ),
            Some(rdkafka::types::RDKafkaErrorCode::InvalidTimestamp) => format!(
                "the record's timestamp is outside what {} accepts: raise its \
                 message.timestamp.difference.max.ms or use message.timestamp.type=LogAppendTime",
                self.topic
            ),
            _ => format!(
                "dead letters are cut to {} bytes, so its key and headers alone are too large: \
                 raise max.message.bytes of {} and the consumer's message.max.bytes \
                 (KAFKA_CONFIG)",
                self.limit, self.topic
            ),
        };
        format!(
            "the dead-letter topic {} refused it ({e}); {fix}",
            self.topic
        )
    }

    /// Publishes `message` to the DLQ, cut to fit, and waits for the broker's
    /// acknowledgement.
    pub async fn send(&self, message: &OwnedMessage, poison: &Fault) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new();
        let mut header_bytes = 0;
        if let Some(original) = message.headers() {
            for h in original.iter() {
                header_bytes += fit::header_bytes(h.key, h.value);
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let provenance = Provenance::of(message, poison);
        let mut ours = provenance.headers();
        header_bytes += ours
            .iter()
            .map(|(k, v)| fit::header_bytes(k, Some(v.as_bytes())))
            .sum::<usize>();
        let room = fit::value_room(
            self.limit,
            message.key().map_or(0, <[u8]>::len),
            header_bytes,
        );
        let (payload, value_size) = match message.payload() {
            Some(value) => {
                let (cut, size) = fit::cut_bytes(value, room);
                (Some(cut), size.map(|n| n.to_string()))
            }
            None => (None, None),
        };
        if let Some(size) = &value_size {
            ours.extend([
                (HEADER_VALUE_TRUNCATED, "true"),
                (HEADER_VALUE_SIZE, size.as_str()),
            ]);
        }
        let mut record = self.record(headers, ours);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(ts) = message.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        self.deliver(record).await
    }

    /// What is left to send when the DLQ refused `message`'s dead letter for good (`refusal`,
    /// from [`refusal`](Self::refusal)): a marker with neither its value, its key nor its headers
    /// (any of which may be what was refused), keyed by where the record is (so that a compacted
    /// DLQ takes it) and stamped now (so that a timestamp rule does). `consumer await-run` and
    /// anyone reading the DLQ then still see that the record was poison, why, and where it is.
    pub async fn send_marker(
        &self,
        message: &OwnedMessage,
        poison: &Fault,
        refusal: &str,
    ) -> Result<(), KafkaError> {
        let provenance = Provenance::of(message, poison);
        let mut ours = provenance.headers();
        ours.extend([
            (HEADER_VALUE_DROPPED, "true"),
            (HEADER_REFUSED, cut_reason(refusal).0),
        ]);
        let key = format!(
            "{}/{}@{}",
            message.topic(),
            provenance.partition,
            provenance.offset
        );
        let record = self.record(OwnedHeaders::new(), ours).key(key.as_bytes());
        self.deliver(record).await
    }

    fn record<'a>(
        &'a self,
        mut headers: OwnedHeaders,
        ours: Vec<(&'a str, &'a str)>,
    ) -> FutureRecord<'a, [u8], [u8]> {
        for (key, value) in ours {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        FutureRecord::to(&self.topic).headers(headers)
    }

    async fn deliver(&self, record: FutureRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

/// What every dead letter says of its record, marker or not: why it is poison (the reason cut
/// to 4 KiB), where it was and when it was dead-lettered. Owns the texts the headers borrow.
struct Provenance<'a> {
    message: &'a OwnedMessage,
    poison: &'a Fault,
    reason: &'a str,
    reason_size: Option<String>,
    partition: String,
    offset: String,
    now: String,
}

impl<'a> Provenance<'a> {
    fn of(message: &'a OwnedMessage, poison: &'a Fault) -> Self {
        let (reason, reason_size) = cut_reason(&poison.message);
        Provenance {
            message,
            poison,
            reason,
            reason_size: reason_size.map(|n| n.to_string()),
            partition: message.partition().to_string(),
            offset: message.offset().to_string(),
            now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        let mut ours = vec![
            (HEADER_ERROR, self.reason),
            (HEADER_KIND, self.poison.kind),
            (HEADER_CLASS, self.poison.class.as_str()),
            (HEADER_TIME, self.now.as_str()),
            (HEADER_TOPIC, self.message.topic()),
            (HEADER_PARTITION, self.partition.as_str()),
            (HEADER_OFFSET, self.offset.as_str()),
        ];
        if let Some(size) = &self.reason_size {
            ours.extend([
                (HEADER_ERROR_TRUNCATED, "true"),
                (HEADER_ERROR_SIZE, size.as_str()),
            ]);
        }
        ours
    }
}
