//! Reading back what the pipeline put on a topic, with a plain rdkafka consumer.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::Services;

/// The value of a record's header `key` (a dead letter's reason, kind, ...);
/// panics naming the header when it is missing.
pub fn header(message: &OwnedMessage, key: &str) -> String {
    message
        .headers()
        .expect("headers")
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| panic!("no {key} header"))
}

/// Every record of `topic` (all partitions) until `expected` arrived or
/// nothing new came for `quiet`.
pub fn read_topic(
    services: &Services,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = services
        .kafka_config()
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
    produce_raw_with(services, topic, records, &[]);
}

/// [`produce_raw`] with producer `settings` (e.g. a larger `message.max.bytes`).
pub fn produce_raw_with(
    services: &Services,
    topic: &str,
    records: &[(&[u8], &[u8])],
    settings: &[(&str, &str)],
) {
    let mut config = services.kafka_config();
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer: BaseProducer = config.create().expect("producer");
    for (key, payload) in records {
        producer
            .send(BaseRecord::to(topic).key(*key).payload(*payload))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Puts (key, value, timestamp in ms) records on `topic`, in order, each with its own
/// Kafka timestamp (as a producer that stamped them when they happened would).
pub fn produce_at(services: &Services, topic: &str, records: &[(&[u8], &[u8], i64)]) {
    let producer: BaseProducer = services.kafka_config().create().expect("producer");
    for (key, payload, timestamp) in records {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(*key)
                    .payload(*payload)
                    .timestamp(*timestamp),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        // One at a time: the order on the partition is the order given.
        producer.flush(Duration::from_secs(30)).expect("flush");
    }
}

fn client(services: &Services, group: &str) -> BaseConsumer {
    services
        .kafka_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("metadata consumer")
}

/// The partition ids of `topic`.
pub fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// Records on `topic` (sum of its partitions' high watermarks): what was
/// published, without waiting for a reader to join a group.
pub fn record_count(services: &Services, topic: &str) -> i64 {
    let consumer = client(services, &crate::unique("counter"));
    partitions(&consumer, topic)
        .into_iter()
        .map(|p| high_watermark(&consumer, topic, p))
        .sum()
}

/// Each partition of `topic` that holds records: its low and high watermarks (the first
/// offset and one past the last).
pub fn watermarks(services: &Services, topic: &str) -> Vec<(i32, i64, i64)> {
    let consumer = client(services, &crate::unique("watermarks"));
    partitions(&consumer, topic)
        .into_iter()
        .map(|p| {
            let (low, high) = asked_again(&format!("the watermarks of {topic}-{p}"), || {
                consumer.fetch_watermarks(topic, p, Duration::from_secs(10))
            });
            (p, low, high)
        })
        .filter(|&(_, low, high)| high > low)
        .collect()
}

/// A partition's high watermark.
fn high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    asked_again(
        &format!("the high watermark of {topic}-{partition}"),
        || consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)),
    )
    .1
}

/// `ask`'s answer, asked again for up to a minute while Kafka answers with an error. On the
/// cluster bed a broker back from a fault takes its partitions (and groups) back within
/// seconds, and until the client's metadata catches up the old leader answers
/// NotLeaderForPartition or NotCoordinator: a moment of the cluster's, not a test's result.
fn asked_again<T>(what: &str, mut ask: impl FnMut() -> rdkafka::error::KafkaResult<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ask() {
            Ok(answer) => return answer,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what}: {e}; asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("{what}, for a minute: {e}"),
        }
    }
}

/// Offsets `group` has committed on `topic`, summed over partitions (a
/// partition without a commit counts 0): how far a restart would resume.
pub fn committed(services: &Services, group: &str, topic: &str) -> i64 {
    let consumer = client(services, group);
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in partitions(&consumer, topic) {
        tpl.add_partition(topic, p);
    }
    asked_again(&format!("the offsets {group} committed"), || {
        consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))
    })
    .elements()
    .iter()
    .map(|e| e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0))
    .sum()
}

/// Creates `topic` (the test bed, like production clusters, does not auto-create).
pub async fn create_topic(services: &Services, topic: &str, partitions: i32) {
    create_topic_with(services, topic, partitions, &[]).await;
}

/// [`create_topic`] with topic `settings` (e.g. its own `max.message.bytes`).
pub async fn create_topic_with(
    services: &Services,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        services.kafka_config().create().expect("admin client");
    let new = settings.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |new, (key, value)| new.set(key, value),
    );
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topic");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// `topic`'s `key` setting as the brokers report it.
pub async fn topic_setting(services: &Services, topic: &str, key: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        services.kafka_config().create().expect("admin client");
    let described = admin
        .describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("describe topic")
        .pop()
        .expect("one topic")
        .unwrap_or_else(|e| panic!("describing {topic}: {e}"));
    described.get(key).and_then(|entry| entry.value.clone())
}
