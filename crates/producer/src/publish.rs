//! The schema registered in the Schema Registry, and framed records delivered to
//! Kafka, with every delivery report awaited and counted.

use std::error::Error as _;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use common::backoff::Backoff;
use common::fault::registry::{describe, lookup_class, status_of_code};
use common::fault::Class;
use common::registry::Registry;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use tokio::sync::Notify;

/// Deliveries awaited at once before enqueueing more; bounds memory on long runs.
const MAX_PENDING: u64 = 50_000;

/// Once at that bound (or the client's queue is full), the publisher waits for this many
/// reports before it sends again. Waiting for one at a time traded a wake-up per record
/// between the publisher and the client's thread whenever the broker fell behind, and
/// more than doubled the CPU per record.
const REFILL: u64 = MAX_PENDING / 8;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Records that could not be encoded, so were never handed to Kafka.
    pub unencodable: u64,
    /// Records handed to the Kafka client.
    pub enqueued: u64,
    /// Records the broker acknowledged (acks=all).
    pub delivered: u64,
    /// Enqueued records whose delivery failed.
    pub undelivered: u64,
    pub first_error: Option<String>,
    /// Where the acknowledged records are: offsets per partition.
    pub spans: common::landed::Spans,
}

impl Delivered {
    /// Every record that is not on the topic: not encoded, refused, or (if
    /// the books are closed before every report came back) unaccounted for.
    pub fn failed(&self) -> u64 {
        let unreported = self
            .enqueued
            .saturating_sub(self.delivered + self.undelivered);
        self.unencodable + self.undelivered + unreported
    }
}

pub struct Publisher {
    producer: ThreadedProducer<Reports>,
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    registry_url: String,
    topic: String,
    unencodable: u64,
    /// Why the first user that could not be encoded could not be.
    first_unencodable: Option<String>,
    enqueued: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("enqueued", &self.enqueued)
            .finish()
    }
}

/// Delivery reports, counted as librdkafka's polling thread hands them over. A
/// future and a channel per record (what `FutureProducer` gives) cost an allocation,
/// a wake-up and a poll per record; counting in the callback costs an uncontended lock.
struct Reports {
    books: Mutex<Reported>,
    /// Reports so far (what `books` counts), read without the lock on every send.
    count: AtomicU64,
    /// The count a waiting publisher needs ([`Publisher::wait_reported`]); `u64::MAX`
    /// when none waits, so the callback signals only the report that ends a wait.
    wake_at: AtomicU64,
    reported: Notify,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            books: Mutex::default(),
            count: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            reported: Notify::new(),
        }
    }
}

/// What the delivery reports said so far.
#[derive(Debug, Default)]
struct Reported {
    delivered: u64,
    undelivered: u64,
    first_error: Option<String>,
    spans: common::landed::Spans,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(message) => {
                books.delivered += 1;
                books.spans.add(message.partition(), message.offset());
            }
            Err((e, message)) => {
                books.undelivered += 1;
                if books.first_error.is_none() {
                    let reason = format!(
                        "Kafka did not acknowledge a record on topic {}: {e}",
                        message.topic()
                    );
                    // The first failure in full; later ones are counted, not logged.
                    tracing::error!("{reason}");
                    books.first_error = Some(reason);
                }
            }
        }
        drop(books);
        let count = self.count.fetch_add(1, SeqCst) + 1;
        if count >= self.wake_at.load(SeqCst) {
            self.reported.notify_one();
        }
    }
}

/// The checked-in schema as registered under TopicNameStrategy (`<topic>-value`).
pub fn value_strategy(topic: &str) -> SubjectNameStrategy {
    SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.to_string(),
        false,
        SuppliedSchema::new(
            Some(domain::avro::FULL_NAME.to_string()),
            SchemaType::Avro,
            domain::avro::SCHEMA_JSON.to_string(),
        ),
    )
}

impl Publisher {
    /// A publisher whose Kafka producer is made from `config`; `registry_url` is the registry's
    /// as messages show it (`RegistryArgs::shown_url`).
    pub fn new(
        config: &ClientConfig,
        registry: SrSettings,
        registry_url: &str,
        topic: &str,
    ) -> KafkaResult<Self> {
        Ok(Publisher {
            producer: ThreadedProducer::from_config_and_context(config, Reports::default())?,
            encoder: AvroEncoder::new(registry),
            strategy: value_strategy(topic),
            registry_url: registry_url.to_string(),
            topic: topic.to_string(),
            unencodable: 0,
            first_unencodable: None,
            enqueued: 0,
        })
    }

    /// Records handed to the Kafka client so far.
    pub fn enqueued(&self) -> u64 {
        self.enqueued
    }

    /// The books so far: what was handed over, and what the reports said of it.
    pub fn stats(&self) -> Delivered {
        let books = self.books();
        Delivered {
            unencodable: self.unencodable,
            enqueued: self.enqueued,
            delivered: books.delivered,
            undelivered: books.undelivered,
            first_error: self
                .first_unencodable
                .clone()
                .or_else(|| books.first_error.clone()),
            spans: books.spans.clone(),
        }
    }

    fn reports(&self) -> &Reports {
        self.producer.context()
    }

    fn books(&self) -> MutexGuard<'_, Reported> {
        self.reports()
            .books
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the schema (or finds it registered) and returns its id,
    /// retrying a registry that is down or failing until `timeout`. A schema
    /// the registry refuses stops the run before anything is published.
    pub async fn register_schema(&mut self, registry: &Registry, timeout: Duration) -> Result<u32> {
        let subject = format!("{}-value", self.topic);
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let e = match self
                .encoder
                .get_schema_and_id(&subject, self.strategy.clone())
                .await
            {
                Ok(schema) => return Ok(schema.id),
                Err(e) => e,
            };
            match error_code(&e).map(status_of_code) {
                Some(409) => bail!("{}", incompatible(registry, &subject).await),
                Some(422) => bail!(
                    "the schema registry at {} finds schemas/user.avsc invalid for subject \
                     {subject}: {}. Fix the schema file.",
                    self.registry_url,
                    describe(&e)
                ),
                _ => {}
            }
            match lookup_class(&e) {
                Some(Class::Retry) if Instant::now() < deadline => {
                    tracing::warn!(registry = %self.registry_url, "schema registry not ready, retrying: {}", describe(&e));
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Some(Class::Retry) => bail!(
                    "the schema registry at {} did not answer within {timeout:?}: {}. Is it up, \
                     and is SCHEMA_REGISTRY_URL its base URL (for Apicurio: .../apis/ccompat/v7)?",
                    self.registry_url,
                    describe(&e)
                ),
                // Ask again to name the status and the setting to fix.
                _ => match registry.get(&format!("/subjects/{subject}/versions")).await {
                    Ok(answer) if answer.status >= 400 => {
                        bail!(
                            "{}",
                            registry.refusal(&answer, &format!("registering {subject}"))
                        )
                    }
                    _ => bail!(
                        "the schema registry at {} refused to register schemas/user.avsc for \
                         subject {subject}: {}. Check SCHEMA_REGISTRY_URL and the registry's log.",
                        self.registry_url,
                        describe(&e)
                    ),
                },
            }
        }
    }

    /// Counts a user that could not be encoded ([`crate::frame`]), so was never handed
    /// to Kafka; the first one's reason is logged and kept.
    pub fn not_encodable(&mut self, reason: &str) {
        self.unencodable += 1;
        if self.first_unencodable.is_none() {
            tracing::error!("{reason}");
            self.first_unencodable = Some(reason.to_string());
        }
    }

    /// Hands already-framed bytes to Kafka. Waits for room when the client's
    /// queue is full instead of dropping the record.
    pub async fn publish_encoded(&mut self, key: &[u8], payload: &[u8]) -> Result<()> {
        loop {
            let record = BaseRecord::to(&self.topic).key(key).payload(payload);
            match self.producer.send(record) {
                Ok(()) => {
                    self.enqueued += 1;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let reported = self.reported();
                    self.wait_reported((reported + REFILL).min(self.enqueued))
                        .await;
                }
                Err((e, _)) => {
                    return Err(anyhow!(
                        "Kafka refused a record for topic {}: {e}",
                        self.topic
                    ))
                }
            }
        }
        if self.enqueued - self.reported() >= MAX_PENDING {
            self.wait_reported(self.enqueued - MAX_PENDING + REFILL)
                .await;
        }
        Ok(())
    }

    /// Flushes the client and awaits every outstanding delivery report.
    pub async fn finish(self, timeout: Duration) -> Result<Delivered> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .context("flush task")?
            .map_err(|e| anyhow!("flushing the Kafka producer failed: {e}"))
            .or_else(|e| {
                // Reports below still tell which records were lost; keep going to count them.
                tracing::error!("{e:#}");
                Ok::<_, anyhow::Error>(())
            })?;
        // The last report may still be in its callback.
        self.settle().await;
        Ok(self.stats())
    }

    /// Returns once every record handed over so far has its delivery report. librdkafka
    /// reports every record it accepted, delivered or not: message.timeout.ms bounds this.
    pub async fn settle(&self) {
        self.wait_reported(self.enqueued).await;
    }

    fn reported(&self) -> u64 {
        self.reports().count.load(SeqCst)
    }

    /// Returns once `count` records have their reports, woken by the report that makes
    /// it so. The callback reads `wake_at` after counting and this reads the count after
    /// setting it, so one of them sees the other and no signal is lost.
    async fn wait_reported(&self, count: u64) {
        let reports = self.reports();
        loop {
            let reported = reports.reported.notified();
            reports.wake_at.store(count, SeqCst);
            if reports.count.load(SeqCst) >= count {
                break;
            }
            reported.await;
        }
        reports.wake_at.store(u64::MAX, SeqCst);
    }
}

fn error_code(e: &SRCError) -> Option<u32> {
    e.source()
        .and_then(|s| s.downcast_ref::<RawError>())
        .map(|raw| raw.error_code)
}

/// Why the registry finds our schema incompatible with the subject's latest
/// version, in its own words, and what to do.
async fn incompatible(registry: &Registry, subject: &str) -> String {
    let body = serde_json::json!({ "schema": domain::avro::SCHEMA_JSON });
    let path = format!("/compatibility/subjects/{subject}/versions/latest?verbose=true");
    let reasons = match registry.post(&path, &body).await {
        Ok(answer) => match answer.body.get("messages").and_then(|m| m.as_array()) {
            Some(messages) if !messages.is_empty() => messages
                .iter()
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("; "),
            // Confluent lists reasons with ?verbose=true; not every registry does.
            _ => format!("no reasons given ({})", answer.body),
        },
        Err(f) => f.message,
    };
    format!(
        "schemas/user.avsc is incompatible with the latest version of subject {subject} in the \
         schema registry at {}, so nothing was published. The registry says: {reasons}. Evolve \
         the schema compatibly (add fields with defaults, never change a field's type or remove \
         one without a default; see docs/schema-evolution.md), or \
         publish to a new topic (KAFKA_TOPIC).",
        registry.url()
    )
}
