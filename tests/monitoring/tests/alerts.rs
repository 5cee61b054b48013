//! Each alert fires on a real fault, reaches the tests' receiver (through the bed's Alertmanager,
//! with Compose's routes and inhibit rules), and resolves after the fault. The faults are grouped
//! so that several alerts share one window:
//!
//! 1. no dependency down: Alertmanager stopped for a minute (AlertmanagerUnreachable, delivered
//!    once it is back), a record naming a schema the registry does not know holds a partition
//!    (ConsumerLagging once it is two minutes old, then resolved when it is dead-lettered),
//!    records published five minutes late (ConsumerLatencyHigh), a burst of poison
//!    (DeadLetters{framing}) with one record whose dead letter is refused (DeadLettersRefused),
//!    a replica exits (ConsumerReplicasMissing), a producer run fails
//!    (ProducerRunFailed);
//! 2. Cassandra stopped under a writing replica, a second replica hung (SIGSTOP) and the
//!    Pushgateway stopped, together: only the root causes notify (ConsumerDependencyDown
//!    {cassandra}, ConsumerDown, MonitoringTargetDown{pushgateway}, ProducerStale); what the
//!    outage causes (ConsumerNotWriting, ConsumerNotReady, ConsumerRetrying{cassandra},
//!    ConsumerLagging) and the node's own CassandraNodeDown fire in Prometheus but Alertmanager suppresses it, and the receiver never
//!    gets it. The restarted Pushgateway has forgotten the failed run: ProducerRunFailed and
//!    ProducerStale must still fire;
//! 3. a good producer run resolves those; then every replica exits: ConsumerAbsent notifies within
//!    3 minutes, and resolves with a new replica.
//!
//! During the outage the dashboard is drawn into target/monitoring/outage/ and must show the
//! writing replica's Cassandra down.
//!
//! DeadLetters and DeadLettersRefused resolve 10 minutes after the last one, AlertmanagerNotificationsFailing needs 10
//! minutes of failed notifications: their promtool unit tests cover those. Alone in its binary:
//! it stops Alertmanager, Cassandra and the Pushgateway.

use std::time::{Duration, Instant};

use apache_avro::Schema;
use integration::api::{FakeApi, Reply};
use integration::bins;
use integration::kafka::{produce_at, produce_raw, produce_raw_with};
use integration::registry::{framed, register};
use integration::Services;
use monitoring_tests::disk::DiskWatch;
use monitoring_tests::receiver::{got, list as received, Notified, Receiver};
use monitoring_tests::{has, list, Monitoring, Stopped};

const FIRE_WITHIN: Duration = Duration::from_secs(240);
/// The caused alerts the inhibit rules silence while a dependency is down.
const CAUSED: [&str; 6] = [
    "CassandraNodeDown",
    "ConsumerNotReady",
    "ConsumerNotWriting",
    "ConsumerRetrying",
    "ConsumerLagging",
    "ConsumerLatencyHigh",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_on_their_fault_notify_and_resolve() {
    let s = Services::from_env();
    let m = Monitoring::from_env();
    // The image builds beside this test fill the machine's disk: a disk alert `df` confirms is
    // the machine's, not one of this test's.
    let disk = DiskWatch::start();
    let receiver = Receiver::start().await;
    // The writing replica waits 3 minutes for a schema the registry does not know before it
    // dead-letters the record (phase 1's lag).
    let mut writer = m
        .watched_replica(
            &s,
            "alerted",
            3,
            &["--write-timeout", "2s", "--unknown-schema-retry", "180s"],
        )
        .await;
    let lane = writer.lane.clone();
    let mut second = m.watched_replica(&s, "second", 1, &[]).await;
    let second_lane = second.lane.clone();

    // A steady stream for the whole test: 20 users/s.
    let api = FakeApi::start().await;
    let mut producer = bins::command("producer", &s);
    producer
        .args(["--api-url", &api.url(), "--topic", &lane.topic])
        .args(["--duration", "20m", "--rate", "20", "--batch-size", "20"]);
    let log = std::env::temp_dir().join(format!("{}-producer.log", lane.topic));
    let file = std::fs::File::create(&log).expect("producer log file");
    producer
        .stdout(file.try_clone().expect("producer log file"))
        .stderr(file);
    let stream = producer.spawn().expect("spawn producer");
    m.wait_for_series(
        "rows written",
        "sum(rate(consumer_rows_written_total[1m])) > 0",
        Duration::from_secs(120),
    )
    .await;
    // A clean slate: a good run pushed (ProducerStale then fires 3 minutes later, in the second
    // window), and none of the alerts this test expects left from an earlier test (DeadLetters
    // lasts 10 minutes): a notification counted here is this test's. Their resolutions must have
    // reached a receiver too: Alertmanager does not notify again an alert it last notified as
    // firing (its notification log) when it fires again; tests/monitoring/run runs healthy.rs,
    // whose receiver gets them, first.
    let out = m
        .producer_run(&s, &api, &lane.topic, 10, Duration::from_secs(60))
        .await;
    assert!(out.success, "{out}");
    m.wait_for_alerts(
        "none of this test's alerts left from before",
        Duration::from_secs(660),
        |a| {
            a.iter().all(|a| {
                ["Watchdog", "ConsumerAbsent"].contains(&a.name.as_str())
                    || disk.confirms(&a.labels)
            })
        },
    )
    .await;

    // ---- 1. Faults with every dependency up.
    let phase1 = Instant::now();
    // Alertmanager away while the faults start: Prometheus' sends fail.
    let alertmanager = Stopped::stop("alertmanager");
    // A record framed with a schema id the registry does not have.
    produce_raw(
        &s,
        &lane.topic,
        &[(b"unknown-schema", &domain::wire::frame(999_999, b"\x02"))],
    );
    // 200 valid users whose Kafka timestamps are 5 minutes old: written at once, late.
    let template = lane.publish(&s, 1).await.remove(0);
    let v1: serde_json::Value = serde_json::from_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    let id = register(&s, &format!("{}-value", lane.topic), &v1).await;
    let schema = Schema::parse(&v1).expect("user.avsc parses");
    let five_minutes_ago = chrono::Utc::now().timestamp_millis() - 300_000;
    let late: Vec<(String, Vec<u8>)> = (0..200)
        .map(|_| {
            let mut user = template.clone();
            user.login.uuid = uuid::Uuid::new_v4().to_string();
            let value = framed(
                id,
                &schema,
                apache_avro::to_value(&user).expect("user as Avro"),
            );
            (user.login.uuid, value)
        })
        .collect();
    let late: Vec<(&[u8], &[u8], i64)> = late
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_slice(), five_minutes_ago))
        .collect();
    produce_at(&s, &lane.topic, &late);
    // 50 records that are not Confluent wire format.
    let poison = vec![(&b"poison"[..], &b"not avro"[..]); 50];
    produce_raw(&s, &lane.topic, &poison);
    // Poison whose key alone is over the dead-letter producer's 1 000 000 bytes: its dead
    // letter is refused for good (DeadLettersRefused), a marker goes instead.
    let huge_key = vec![b'k'; 1_040_000];
    produce_raw_with(
        &s,
        &lane.topic,
        &[(&huge_key, b"not avro")],
        &[("message.max.bytes", "2000000")],
    );
    // One of the two replicas the bed expects exits.
    second.exit().await;
    // A producer run that fails (the API answers 500, no retries) and pushes so.
    let broken = FakeApi::start().await;
    broken.fail_after(0, Reply::status(500, "{\"error\": \"down\"}"));
    let mut failing = bins::command("producer", &s);
    failing
        .args(["--api-url", &broken.url(), "--topic", &lane.topic])
        .args(["--count", "10", "--max-retries", "0"])
        .args(["--pushgateway-url", &m.pushgateway]);
    let out = bins::run(failing, Duration::from_secs(60)).await;
    assert!(
        !out.success,
        "the run against a failing API must fail: {out}"
    );
    m.wait_for_series(
        "AlertmanagerUnreachable fires in Prometheus",
        "ALERTS{alertname=\"AlertmanagerUnreachable\",alertstate=\"firing\"}",
        FIRE_WITHIN,
    )
    .await;
    // Back: Prometheus delivers what fired meanwhile, AlertmanagerUnreachable included.
    alertmanager.start();

    receiver
        .wait_for(
            "ConsumerLagging, ConsumerLatencyHigh, DeadLetters{framing}, DeadLettersRefused, ConsumerReplicasMissing, ProducerRunFailed and AlertmanagerUnreachable notified",
            FIRE_WITHIN,
            |n| {
                let n = since(n, phase1);
                let n = n.as_slice();
                sent(n, "page", "ConsumerLagging", None)
                    && sent(n, "ticket", "ConsumerLatencyHigh", None)
                    && sent(n, "ticket", "DeadLetters", Some(("kind", "framing")))
                    && sent(n, "ticket", "DeadLettersRefused", None)
                    && sent(n, "ticket", "ConsumerReplicasMissing", None)
                    && sent(n, "ticket", "ProducerRunFailed", None)
                    && sent(n, "page", "AlertmanagerUnreachable", None)
            },
        )
        .await;
    // Dead-lettered after its 3 minutes, the record no longer holds the partition.
    receiver
        .wait_for("ConsumerLagging resolved", FIRE_WITHIN, |n| {
            got(n, "resolved", "ConsumerLagging", None)
        })
        .await;
    println!(
        "phase 1 (no dependency down) took {:.0}s",
        phase1.elapsed().as_secs_f64()
    );

    // ---- 2. Cassandra, a hung replica and the Pushgateway, at once.
    let mut hung = m
        .another_replica(&s, &second_lane, "second-again", &[])
        .await;
    let pid = hung.child.id().expect("pid").to_string();
    // The root causes this window must notify are not active yet (a slow replica start reports
    // Cassandra down for a while): their notification here is this window's.
    m.wait_for_alerts(
        "no ConsumerDependencyDown, ConsumerDown or MonitoringTargetDown from before",
        FIRE_WITHIN,
        |a| {
            [
                "ConsumerDependencyDown",
                "ConsumerDown",
                "MonitoringTargetDown",
            ]
            .iter()
            .all(|name| !has(a, name, None))
        },
    )
    .await;
    let outage = Instant::now();
    let cassandra = Stopped::stop("cassandra");
    let pushgateway = Stopped::stop("pushgateway");
    signal("-STOP", &pid);
    receiver
        .wait_for(
            "ConsumerDependencyDown{cassandra}, ConsumerDown, MonitoringTargetDown{pushgateway} and ProducerStale notified",
            FIRE_WITHIN,
            |n| {
                let n = since(n, outage);
                sent(&n, "page", "ConsumerDependencyDown", Some(("dependency", "cassandra")))
                    && sent(&n, "page", "ConsumerDown", Some(("instance", &hung.addr)))
                    && sent(&n, "ticket", "MonitoringTargetDown", Some(("job", "pushgateway")))
                    // 3 minutes after the first run: this window or the end of the first
                    && sent(&since(&receiver.notified(), phase1), "ticket", "ProducerStale", None)
            },
        )
        .await;
    // What the outage causes fires in Prometheus, and Alertmanager holds it suppressed.
    let caused = [
        ("ConsumerNotWriting", None),
        ("ConsumerNotReady", Some(("instance", writer.addr.as_str()))),
        ("ConsumerRetrying", Some(("dependency", "cassandra"))),
        ("ConsumerLagging", None),
        // the node's own alert: the consumer's page names the outage
        ("CassandraNodeDown", None),
    ];
    let started = Instant::now();
    loop {
        let mut missing = vec![];
        let held = m.alerts().await;
        for (name, label) in caused {
            let suppressed = held.iter().any(|a| {
                a.name == name
                    && a.state == "suppressed"
                    && label.is_none_or(|(k, v)| a.labels[k].as_str() == Some(v))
            });
            if !m.firing(name, label).await || !suppressed {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < FIRE_WITHIN,
            "not firing in Prometheus and suppressed in Alertmanager: {missing:?}; Alertmanager holds: {}",
            list(&held)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "the outage's caused alerts fire and are suppressed: after {:.0}s",
        outage.elapsed().as_secs_f64()
    );
    // What on-call sees on the dashboard now, from the first window on (docs/monitoring.md
    // shows it, the writing replica's panels): panels of what stopped (Cassandra's latency)
    // may be empty, its dependencies must show Cassandra down.
    let (_, report) = m.dashboard(
        "outage",
        phase1.elapsed().as_secs() / 60 + 1,
        &[("instance", writer.addr.as_str())],
    );
    let down = format!("{} cassandra=down", writer.addr);
    assert!(
        report
            .lines()
            .any(|l| l.contains("Dependencies per replica:") && l.contains(&down)),
        "the dashboard does not show {down}:\n{report}"
    );
    assert!(
        has(&m.alerts().await, "ProducerRunFailed", None),
        "ProducerRunFailed resolved with the Pushgateway away"
    );
    no_caused_notification(&receiver, outage);

    cassandra.start();
    signal("-CONT", &pid);
    pushgateway.start();
    // The restarted Pushgateway has forgotten the failed run (in memory on the bed): once
    // Prometheus has scraped it so, the failed run and the staleness must still fire.
    m.wait_for_series(
        "Prometheus scraped the restarted, empty Pushgateway",
        "up{job=\"pushgateway\"} == 1 and on() absent(producer_last_run_timestamp_seconds)",
        Duration::from_secs(60),
    )
    .await;
    // Watchdog's ALERTS sample carries its group's evaluation time (ProducerRunFailed's group).
    let scraped = chrono::Utc::now().timestamp();
    m.wait_for_series(
        "the rules evaluated after that",
        &format!("timestamp(ALERTS{{alertname=\"Watchdog\"}}) > {scraped}"),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        m.firing("ProducerRunFailed", None).await,
        "ProducerRunFailed resolved when the Pushgateway restarted"
    );
    assert!(
        m.firing("ProducerStale", None).await,
        "ProducerStale resolved when the Pushgateway restarted"
    );
    m.wait_for_alerts(
        "ConsumerDown, MonitoringTargetDown, ConsumerNotWriting, ConsumerNotReady, ConsumerLagging, ConsumerReplicasMissing, CassandraNodeDown resolve",
        FIRE_WITHIN,
        |a| {
            [
                "CassandraNodeDown",
                "ConsumerDown",
                "MonitoringTargetDown",
                "ConsumerNotWriting",
                "ConsumerNotReady",
                "ConsumerLagging",
                "ConsumerReplicasMissing",
            ]
                .iter()
                .all(|name| !has(a, name, None))
        },
    )
    .await;

    // ---- 3. A good run resolves the producer's alerts; then every replica exits.
    let out = m
        .producer_run(&s, &api, &lane.topic, 10, Duration::from_secs(60))
        .await;
    assert!(out.success, "{out}");
    drop(stream);
    writer.exit().await;
    hung.exit().await;
    let gone = Instant::now();
    let absent = receiver
        .wait_for("ConsumerAbsent notified", Duration::from_secs(180), |n| {
            sent(&since(n, gone), "page", "ConsumerAbsent", None)
        })
        .await;
    println!(
        "every replica gone: ConsumerAbsent notified after {:.0}s",
        absent.as_secs_f64()
    );
    let mut back = m.another_replica(&s, &lane, "back", &[]).await;
    m.wait_for_alerts(
        "ConsumerAbsent, ProducerRunFailed, ProducerStale, ConsumerRetrying, ConsumerDependencyDown, AlertmanagerUnreachable resolve",
        FIRE_WITHIN,
        |a| {
            [
                "ConsumerAbsent",
                "ProducerRunFailed",
                "ProducerStale",
                "ConsumerRetrying",
                "ConsumerDependencyDown",
                "AlertmanagerUnreachable",
            ]
                .iter()
                .all(|name| !has(a, name, None))
        },
    )
    .await;
    receiver
        .wait_for(
            "the root causes' resolution notified",
            Duration::from_secs(60),
            |n| {
                let n = since(n, outage);
                got(
                    &n,
                    "resolved",
                    "ConsumerDependencyDown",
                    Some(("dependency", "cassandra")),
                ) && got(&n, "resolved", "ConsumerAbsent", None)
            },
        )
        .await;
    // From the outage to its end, the receiver got none of what the outage caused.
    no_caused_notification(&receiver, outage);
    assert!(
        got(&receiver.notified(), "firing", "Watchdog", None),
        "Watchdog never reached its receiver: {}",
        received(&receiver.notified())
    );
    back.exit().await;
    println!("consumer log tail:\n{}", writer.log_tail());
}

/// Received firing by `receiver`, with the runbook link every alert carries.
fn sent(n: &[Notified], receiver: &str, name: &str, label: Option<(&str, &str)>) -> bool {
    n.iter().any(|n| {
        n.is("firing", name, label)
            && n.receiver == receiver
            && n.annotations["runbook_url"]
                .as_str()
                .is_some_and(|u| u.starts_with("http") && u.contains("/alerts.md#"))
    })
}

fn since(n: &[Notified], at: Instant) -> Vec<Notified> {
    n.iter().filter(|n| n.at >= at).cloned().collect()
}

fn no_caused_notification(receiver: &Receiver, since: Instant) {
    let leaked: Vec<Notified> = receiver
        .since(since)
        .into_iter()
        .filter(|n| n.status == "firing" && CAUSED.contains(&n.name.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "notified although a dependency was down: {}",
        received(&leaked)
    );
}

/// Sends a signal to a process (SIGSTOP/SIGCONT: a hung process, not a stopped one).
fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}
