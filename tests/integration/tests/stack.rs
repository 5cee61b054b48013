//! The test bed is real: each service answers with the data we gave it.

use std::time::Duration;

use integration::{unique, Services};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, SrSettings};
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

#[tokio::test]
async fn kafka_round_trips_a_message_and_keeps_the_group_offset() {
    let s = Services::from_env();
    let topic = unique("stack_kafka");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .create()
        .expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic")[0]
        .clone()
        .expect("topic created");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("hello bed"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");

    let group = unique("stack_group");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30s")
        .expect("message");
    assert_eq!(message.payload(), Some(&b"hello bed"[..]));
    assert_eq!(message.key(), Some(&b"k"[..]));
    consumer
        .commit_message(&message, CommitMode::Sync)
        .expect("commit");

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        committed
            .find_partition(&topic, 0)
            .expect("partition")
            .offset(),
        Offset::Offset(1)
    );
}

#[tokio::test]
async fn registry_registers_a_schema_and_serves_it_by_id() {
    let s = Services::from_env();
    let topic = unique("stack_registry");
    let schema = r#"{"type":"record","name":"Probe","namespace":"test","fields":[{"name":"n","type":"long"}]}"#;
    let settings = SrSettings::new(s.registry.clone());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        SuppliedSchema::new(Some("test.Probe".into()), SchemaType::Avro, schema.into()),
    );
    let encoder = AvroEncoder::new(settings.clone());
    let bytes = encoder
        .encode(vec![("n", apache_avro::types::Value::Long(42))], strategy)
        .await
        .expect("encode registers the schema");
    let (id, _) = domain::wire::unframe(&bytes).expect("Confluent framing");

    let fetched = get_schema_by_id(id, &settings).await.expect("schema by id");
    let fetched: serde_json::Value = serde_json::from_str(&fetched.schema).expect("json");
    assert_eq!(fetched["name"], "Probe");

    let decoded = AvroDecoder::new(settings)
        .decode(Some(&bytes))
        .await
        .expect("decode");
    assert_eq!(
        decoded.value,
        apache_avro::types::Value::Record(vec![("n".into(), apache_avro::types::Value::Long(42))])
    );
}

#[tokio::test]
async fn cassandra_writes_then_reads_a_row() {
    let s = Services::from_env();
    let session = s.cassandra_session().await;
    let ks = unique("stack_ks");
    session
        .query_unpaged(
            format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
            (),
        )
        .await
        .expect("keyspace");
    session
        .query_unpaged(
            format!("CREATE TABLE {ks}.t (id int PRIMARY KEY, v text)"),
            (),
        )
        .await
        .expect("table");
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.t (id, v) VALUES (?, ?)"),
            (7, "seven"),
        )
        .await
        .expect("insert");
    let rows = session
        .query_unpaged(format!("SELECT v FROM {ks}.t WHERE id = 7"), ())
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows");
    let (v,): (String,) = rows.single_row().expect("one row");
    assert_eq!(v, "seven");
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
        .await
        .expect("drop");
}
