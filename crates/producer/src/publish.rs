//! Avro encoding through the Schema Registry and delivery to Kafka, with every
//! delivery report awaited and counted.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use common::backoff::Backoff;
use domain::User;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

/// Deliveries awaited at once before enqueueing more; bounds memory on long runs.
const MAX_PENDING: usize = 50_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Records handed to the Kafka client.
    pub enqueued: u64,
    /// Records the broker acknowledged (acks=all).
    pub delivered: u64,
    /// Records that could not be encoded or delivered.
    pub failed: u64,
    pub first_error: Option<String>,
}

pub struct Publisher {
    producer: FutureProducer,
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    registry_url: String,
    topic: String,
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
            pending: FuturesUnordered::new(),
            stats: Delivered::default(),
        }
    }

    pub fn stats(&self) -> &Delivered {
        &self.stats
    }

    /// Registers the schema (or finds it registered) and returns its id,
    /// retrying an unreachable registry until `timeout`.
    pub async fn register_schema(&mut self, timeout: Duration) -> Result<u32> {
        let subject = format!("{}-value", self.topic);
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.encoder.get_schema_and_id(&subject, self.strategy.clone()).await {
                Ok(schema) => {
                    // The encoder now caches the registered schema under the subject; a
                    // strategy without the schema text spares a 5 KB clone per record.
                    self.strategy = SubjectNameStrategy::TopicNameStrategy(self.topic.clone(), false);
                    return Ok(schema.id);
                }
                Err(e) if e.retriable && Instant::now() < deadline => {
                    tracing::warn!(registry = %self.registry_url, "schema registry not ready, retrying: {}", describe(&e));
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) if e.retriable => bail!(
                    "the schema registry at {} did not answer within {timeout:?}: {}. Is it up, \
                     and is SCHEMA_REGISTRY_URL its base URL (for Apicurio: .../apis/ccompat/v7)?",
                    self.registry_url,
                    describe(&e)
                ),
                Err(e) => bail!(
                    "the schema registry at {} rejected schemas/user.avsc for subject {subject}: {}. \
                     A 409 means it is incompatible with the subject's latest version under the \
                     subject's compatibility rule; a 422 that the registry finds it invalid.",
                    self.registry_url,
                    describe(&e)
                ),
            }
        }
    }

    /// Encodes `user` and hands it to Kafka, keyed by `login.uuid`.
    pub async fn publish(&mut self, user: &User) -> Result<()> {
        match self.encoder.encode_struct(user, &self.strategy).await {
            Ok(payload) => {
                self.publish_encoded(user.login.uuid.as_bytes(), &payload)
                    .await
            }
            Err(e) => {
                self.fail(format!(
                    "could not encode user {} as Avro: {}",
                    user.login.uuid,
                    describe(&e)
                ));
                Ok(())
            }
        }
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
            Ok(Ok(_)) => self.stats.delivered += 1,
            Ok(Err((e, _))) => self.fail(format!(
                "Kafka did not acknowledge a record on topic {}: {e}",
                self.topic
            )),
            Err(_) => {
                self.fail("the Kafka client dropped a record before reporting its delivery".into())
            }
        }
    }

    fn fail(&mut self, reason: String) {
        if self.stats.failed == 0 {
            tracing::error!("{reason}");
        }
        self.stats.failed += 1;
        self.stats.first_error.get_or_insert(reason);
    }
}

fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(cause) => format!("{} ({cause})", e.error),
        None => e.error.clone(),
    }
}
