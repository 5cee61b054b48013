use std::ffi::OsString;
use std::process::Command;

use clap::Parser;
use common::cassandra::CassandraArgs;
use common::kafka::KafkaArgs;
use common::registry::RegistryArgs;

use super::PassTo;

/// The settings a process started as `child` reads, the variables it is given read as their
/// flags. Panics if one of `secrets` is on its command line.
fn read_as_child<C: Parser>(child: &Command, secrets: &[&str]) -> C {
    let mut args: Vec<OsString> = vec!["child".into()];
    args.extend(child.get_args().map(OsString::from));
    for arg in &args {
        let arg = arg.to_string_lossy();
        assert!(
            !secrets.iter().any(|s| arg.contains(s)),
            "a secret is on the command line: {arg}"
        );
    }
    let command = C::command();
    for (variable, value) in child.get_envs() {
        let reader = command
            .get_arguments()
            .find(|a| a.get_env() == Some(variable))
            .unwrap_or_else(|| panic!("no flag reads {variable:?}"));
        let mut flag = OsString::from(format!("--{}=", reader.get_long().unwrap()));
        flag.push(value.expect("a variable set, not removed"));
        args.push(flag);
    }
    C::try_parse_from(args).unwrap()
}

#[test]
fn a_child_reads_the_kafka_settings_it_is_passed() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }
    let parent = Cli::try_parse_from([
        "parent",
        "--bootstrap-servers=10.0.0.1:9092,10.0.0.2:9092",
        "--topic=the_parents",
        "--topic-partitions=6",
        "--topic-replication=3",
        "--topic-min-insync-replicas=2",
        "--kafka-connect-timeout=5s",
        "--kafka-security-protocol=SASL_SSL",
        "--kafka-sasl-mechanism=SCRAM-SHA-512",
        "--kafka-sasl-username=writer",
        "--kafka-sasl-password=hunter2",
        "--kafka-ssl-ca-location=/etc/ca.pem",
        "--kafka-config-file=/etc/client.properties",
        "-X",
        // A `;` in a password survives the trip through KAFKA_CONFIG.
        r"ssl.key.password=hunter3\;x",
        "-X",
        "linger.ms=5",
    ])
    .unwrap()
    .kafka;
    let mut child = Command::new("consumer");
    parent.pass_to(&mut child);

    let mut read = read_as_child::<Cli>(&child, &["hunter2", "hunter3"]).kafka;
    // Each caller names its own topic.
    assert_eq!(read.topic, "users_created");
    read.topic = parent.topic.clone();
    // Several -X arrive as one KAFKA_CONFIG: the same properties, in the same order.
    let properties = |k: &KafkaArgs| -> Vec<common::kafka::Property> {
        k.config.iter().flat_map(|p| p.0.clone()).collect()
    };
    assert!(properties(&read) == properties(&parent));
    assert_eq!(read.config[0].0[0].value, "hunter3;x");
    read.config = parent.config.clone();
    // Debug hides the secrets: compare them apart.
    assert_eq!(format!("{read:?}"), format!("{parent:?}"));
    assert_eq!(read.sasl_password.unwrap().expose(), "hunter2");
}

#[test]
fn a_child_reads_the_registry_settings_it_is_passed() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        registry: RegistryArgs,
    }
    let parent = Cli::try_parse_from([
        "parent",
        "--schema-registry-url=https://registry.example:8081",
        "--schema-registry-timeout=3s",
        "--schema-registry-connect-timeout=1m",
        "--schema-registry-basic-auth-user-info=writer:hunter2",
        "--schema-registry-ssl-ca-location=/etc/ca.pem",
    ])
    .unwrap()
    .registry;
    let mut child = Command::new("consumer");
    parent.pass_to(&mut child);

    let read = read_as_child::<Cli>(&child, &["hunter2"]).registry;
    // Debug hides the password: compare it apart.
    assert_eq!(format!("{read:?}"), format!("{parent:?}"));
    assert_eq!(read.basic_auth.unwrap().password.expose(), "hunter2");
}

#[test]
fn a_child_reads_the_cassandra_settings_it_is_passed() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cassandra: CassandraArgs,
    }
    let parent = Cli::try_parse_from([
        "parent",
        "--cassandra-contact-points=10.0.0.1:9042,10.0.0.2:9042",
        "--cassandra-username=writer",
        "--cassandra-password=hunter2",
        "--cassandra-replication={'class': 'NetworkTopologyStrategy', 'dc2': 3}",
        "--cassandra-connect-timeout=5s",
        "--write-timeout=3s",
        "--cassandra-speculative-delay=0s",
        "--consistency=one",
        "--cassandra-local-dc=dc2",
        "--cassandra-ssl-ca-location=/etc/ca.pem",
        "--cassandra-ssl-cert-location=/etc/client.pem",
        "--cassandra-ssl-key-location=/etc/client.key",
        "--cassandra-ssl-verify-hostname=false",
    ])
    .unwrap()
    .cassandra;
    let mut child = Command::new("consumer");
    parent.pass_to(&mut child);
    let envs: Vec<_> = child.get_envs().collect();
    assert_eq!(
        envs,
        [("CASSANDRA_PASSWORD".as_ref(), Some("hunter2".as_ref()))]
    );

    let mut read = read_as_child::<Cli>(&child, &["hunter2"]).cassandra;
    assert_eq!(
        read.password.take().map(|p| p.expose().to_string()),
        Some("hunter2".to_string())
    );
    let mut parent = parent;
    parent.password = None;
    assert_eq!(format!("{read:?}"), format!("{parent:?}"));
}
