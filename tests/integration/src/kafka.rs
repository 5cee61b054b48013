//! Reading back what the pipeline put on a topic, with a plain rdkafka consumer.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::Services;

/// Every record of `topic` (all partitions) until `expected` arrived or
/// nothing new came for `quiet`.
pub fn read_topic(
    services: &Services,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka)
        .set("group.id", crate::unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while out.len() < expected || last.elapsed() < Duration::from_millis(500) {
        if last.elapsed() > quiet {
            break;
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.expect("read record").detach());
            last = Instant::now();
        }
    }
    out
}

/// Puts raw bytes on `topic` (for poison-record tests).
pub fn produce_raw(services: &Services, topic: &str, records: &[(&[u8], &[u8])]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &services.kafka)
        .create()
        .expect("producer");
    for (key, payload) in records {
        producer
            .send(BaseRecord::to(topic).key(*key).payload(*payload))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}
