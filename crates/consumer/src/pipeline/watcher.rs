//! Every few seconds: do Kafka, the registry and Cassandra answer (for `/healthz`), and how
//! far behind is this consumer, in records and in seconds (for `/metrics` and the progress
//! lines)?

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::kafka::Alarmed;
use common::registry::Registry;
use common::storm::Storm;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use rdkafka::Offset;

use super::in_flight::InFlight;
use super::rebalance::KafkaConsumer;
use crate::metrics::Metrics;
use crate::sink::Sink;

pub struct Watcher {
    pub consumer: Arc<KafkaConsumer>,
    pub topic: String,
    pub sink: Arc<Sink>,
    pub registry: Registry,
    /// The subject the registry probe reads.
    pub subject: String,
    pub metrics: Arc<Metrics>,
    /// Where the records not yet written are, for the lag in seconds.
    pub in_flight: Arc<InFlight>,
}

impl Watcher {
    pub async fn run(self) {
        let me = Arc::new(self);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            me.metrics.cassandra.observe(me.sink.ping().await);
            me.metrics
                .registry
                .observe(me.registry.ping(&me.subject).await);
            // Blocking calls into librdkafka: off the runtime's threads.
            let probe = me.clone();
            let lag = tokio::task::spawn_blocking(move || lag(&probe.consumer, &probe.topic)).await;
            match lag {
                Ok(Ok(lag)) => {
                    // An answer from the cluster even when no record comes: clears a SASL doubt.
                    me.consumer.context().alarm().reached();
                    me.metrics.kafka.observe(true);
                    me.metrics.measured_lag(lag, me.in_flight.unwritten());
                }
                Ok(Err(e)) => {
                    me.metrics.kafka.observe(false);
                    Storm::global().warn("kafka", &format!("Kafka not answering: {e}"));
                }
                Err(_) => {}
            }
        }
    }
}

/// Records behind the high watermark per assigned partition.
pub(super) fn lag(consumer: &KafkaConsumer, topic: &str) -> KafkaResult<BTreeMap<i32, i64>> {
    // Answers even with nothing assigned, so readiness also means "broker reachable".
    consumer.fetch_metadata(Some(topic), Duration::from_secs(2))?;
    let mut lag = BTreeMap::new();
    for element in consumer.position()?.elements() {
        // A partition we have not read from yet has no position: it does not count yet.
        if let Offset::Offset(position) = element.offset() {
            let (_, high) =
                consumer.fetch_watermarks(topic, element.partition(), Duration::from_secs(2))?;
            lag.insert(element.partition(), (high - position).max(0));
        }
    }
    Ok(lag)
}
