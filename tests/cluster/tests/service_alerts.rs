//! A broker and a Cassandra node stopped together fire their own alerts in the bed's
//! Prometheus (prometheus-c: the repository's rule files, scraping every member's own
//! metrics), and all resolve once both are back. Beyond `up == 0` (KafkaBrokerDown,
//! CassandraNodeDown), the survivors say it themselves: the controller counts a broker fewer
//! (KafkaBrokerMissing), the brokers leading the stopped one's partitions report them
//! under-replicated, and the other nodes' gossip holds a node down (CassandraPeerDown). Nothing
//! worse fires: with replication 3 and min.insync.replicas 2 no partition is offline or below
//! its minimum, and ZooKeeper, the controller and the registry stay. (Own test binary: it stops
//! shared nodes.)

use std::time::Duration;

use cluster_tests::alerts::{firing, list, Alert, Prometheus};
use cluster_tests::{stack_async, PARTITIONS};
use integration::Services;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// The members stopped, and their exporters' addresses (instance labels).
const BROKER: &str = "kafka-3";
const BROKER_INSTANCE: &str = "127.0.0.4:7072";
const NODE: &str = "cassandra-3";
const NODE_INSTANCE: &str = "127.0.0.4:7073";

/// The alerts of services.rules.yml this fault must not fire.
const WORSE: [&str; 5] = [
    "KafkaOfflinePartitions",
    "KafkaUnderMinIsrPartitions",
    "KafkaNoActiveController",
    "ZooKeeperDown",
    "RegistryDown",
];

/// Every alert of services.rules.yml this test watches. Not CassandraDroppingMutations: it
/// reports load, not topology (mutations a node could not apply in time, over 5 minutes), and
/// this test writes nothing; the tests before it on the shared bed do (replica_restarted streams
/// 500 users/s into three JVMs on two cores), and it was seen firing, rightly, for their drops
/// when this test began.
const SERVICE_ALERTS: [&str; 10] = [
    "KafkaBrokerDown",
    "KafkaBrokerMissing",
    "KafkaUnderReplicatedPartitions",
    "CassandraNodeDown",
    "CassandraPeerDown",
    "KafkaOfflinePartitions",
    "KafkaUnderMinIsrPartitions",
    "KafkaNoActiveController",
    "ZooKeeperDown",
    "RegistryDown",
];

fn of_services(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| SERVICE_ALERTS.contains(&a.name.as_str()))
        .collect()
}

// Several threads: stopping a Cassandra node takes seconds on a blocking task beside the polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_broker_and_cassandra_node_fire_their_own_alerts_and_resolve() {
    let s = Services::from_env();
    let prometheus = Prometheus::from_env();

    // A topic on every broker, so that the stopped one leaves partitions one replica short
    // (on a fresh bed no other topic may exist yet).
    let topic = format!("service-alerts-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = s.kafka_config().create().expect("admin client");
    for result in admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS as i32,
                TopicReplication::Fixed(3),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topic")
    {
        result.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }

    // Healthy first: every member's own metrics are read, and none of these alerts is active.
    let members = r#"up{job=~"zookeeper|kafka|cassandra|registry|node"} == 1"#;
    prometheus
        .wait_for_query(
            "Prometheus reads all 9 members (ZooKeeper, 3 brokers, 3 nodes, registry, node exporter)",
            members,
            Duration::from_secs(120),
            |r| r.len() == 9,
        )
        .await;
    prometheus
        .wait_for_alerts(
            "no alert of the services before the fault",
            Duration::from_secs(120),
            |alerts| of_services(alerts).is_empty(),
        )
        .await;

    tokio::join!(stack_async(&["stop", BROKER]), stack_async(&["stop", NODE]));
    let (alerts, took) = prometheus
        .wait_for_alerts(
            "each stopped member's own alerts fire",
            Duration::from_secs(240),
            |a| {
                firing(a, "KafkaBrokerDown", Some(("instance", BROKER_INSTANCE)))
                    && firing(a, "KafkaBrokerMissing", None)
                    && firing(a, "KafkaUnderReplicatedPartitions", None)
                    && firing(a, "CassandraNodeDown", Some(("instance", NODE_INSTANCE)))
                    && firing(a, "CassandraPeerDown", None)
            },
        )
        .await;
    eprintln!(
        "fired {:.0}s after the stops: {}",
        took.as_secs_f64(),
        list(&alerts)
    );
    for a in of_services(&alerts) {
        assert!(
            !WORSE.contains(&a.name.as_str()),
            "one broker and one node of three lost: nothing worse than that may be active, got {a}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                a.annotations[key].as_str().is_some_and(|v| !v.is_empty()),
                "{a} has no {key}: {}",
                a.annotations
            );
        }
    }
    // Only the survivors report the under-replicated partitions they now lead.
    for a in alerts
        .iter()
        .filter(|a| a.name == "KafkaUnderReplicatedPartitions")
    {
        assert_ne!(a.label("instance"), BROKER_INSTANCE, "{a}");
    }

    tokio::join!(
        stack_async(&["start", BROKER]),
        stack_async(&["start", NODE])
    );
    prometheus
        .wait_for_alerts(
            "every alert of the services resolved once both are back",
            Duration::from_secs(180),
            |alerts| of_services(alerts).is_empty(),
        )
        .await;
    admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .expect("delete topic");
}
