//! Avro encoding through the Schema Registry and delivery to Kafka, with every
//! delivery report awaited and counted.

use std::error::Error as _;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use common::backoff::Backoff;
use common::fault::Class;
use common::registry::{describe, lookup_class, status_of_code, Registry};
use domain::User;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

/// Deliveries awaited at once before enqueueing more; bounds memory on long runs.
const MAX_PENDING: usize = 50_000;

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
    producer: FutureProducer,
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    registry_url: String,
    topic: String,
    /// The id the registry gave schemas/user.avsc ([`Publisher::register_schema`]).
    schema_id: Option<u32>,
    /// One record's framed value, reused for the next (librdkafka copies it).
    payload: Vec<u8>,
    pending: FuturesUnordered<DeliveryFuture>,
    stats: Delivered,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("stats", &self.stats)
            .finish()
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
    pub fn new(
        producer: FutureProducer,
        registry: SrSettings,
        registry_url: &str,
        topic: &str,
    ) -> Self {
        Publisher {
            producer,
            encoder: AvroEncoder::new(registry),
            strategy: value_strategy(topic),
            registry_url: registry_url.to_string(),
            topic: topic.to_string(),
            schema_id: None,
            payload: Vec::new(),
            pending: FuturesUnordered::new(),
            stats: Delivered::default(),
        }
    }

    pub fn stats(&self) -> &Delivered {
        &self.stats
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
                Ok(schema) => {
                    self.schema_id = Some(schema.id);
                    return Ok(schema.id);
                }
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

    /// Encodes `user` with the registered schema, in the registry's wire format (magic byte 0,
    /// the schema id, the Avro datum), and hands it to Kafka, keyed by `login.uuid`.
    pub async fn publish(&mut self, user: &User) -> Result<()> {
        let Some(schema_id) = self.schema_id else {
            bail!("publishing before the schema is registered (register_schema)");
        };
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        payload.push(0);
        payload.extend_from_slice(&schema_id.to_be_bytes());
        let published = match domain::avro::write_datum(user, &mut payload) {
            Ok(_) => {
                self.publish_encoded(user.login.uuid.as_bytes(), &payload)
                    .await
            }
            Err(e) => {
                self.stats.unencodable += 1;
                self.note_failure(format!(
                    "could not encode user {} as Avro: {e}",
                    user.login.uuid
                ));
                Ok(())
            }
        };
        self.payload = payload;
        published
    }

    /// Hands already-framed bytes to Kafka. Waits for room when the client's
    /// queue is full instead of dropping the record.
    pub async fn publish_encoded(&mut self, key: &[u8], payload: &[u8]) -> Result<()> {
        loop {
            let record = FutureRecord::to(&self.topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.stats.enqueued += 1;
                    self.pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if !self.await_one().await {
                        // Nothing of ours is pending: let librdkafka drain its queue.
                        self.producer.poll(Duration::from_millis(100));
                    }
                }
                Err((e, _)) => {
                    return Err(anyhow!(
                        "Kafka refused a record for topic {}: {e}",
                        self.topic
                    ))
                }
            }
        }
        while self.pending.len() >= MAX_PENDING {
            self.await_one().await;
        }
        self.reap_ready();
        Ok(())
    }

    /// Flushes the client and awaits every outstanding delivery report.
    pub async fn finish(mut self, timeout: Duration) -> Result<Delivered> {
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
        while self.await_one().await {}
        Ok(self.stats)
    }

    fn reap_ready(&mut self) {
        while let Some(Some(result)) = self.pending.next().now_or_never() {
            self.count(result);
        }
    }

    async fn await_one(&mut self) -> bool {
        match self.pending.next().await {
            Some(result) => {
                self.count(result);
                true
            }
            None => false,
        }
    }

    fn count(&mut self, result: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>) {
        match result {
            Ok(Ok(delivery)) => {
                self.stats.delivered += 1;
                self.stats.spans.add(delivery.partition, delivery.offset);
            }
            Ok(Err((e, _))) => {
                self.stats.undelivered += 1;
                self.note_failure(format!(
                    "Kafka did not acknowledge a record on topic {}: {e}",
                    self.topic
                ))
            }
            Err(_) => {
                self.stats.undelivered += 1;
                self.note_failure(
                    "the Kafka client dropped a record before reporting its delivery".into(),
                )
            }
        }
    }

    /// Logs the first failure in full (later ones are counted, not logged).
    fn note_failure(&mut self, reason: String) {
        if self.stats.first_error.is_none() {
            tracing::error!("{reason}");
        }
        self.stats.first_error.get_or_insert(reason);
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
         one without a default; see docs/schema-and-dead-letters.md, \"Evolving the schema\"), or \
         publish to a new topic (KAFKA_TOPIC).",
        registry.url()
    )
}
