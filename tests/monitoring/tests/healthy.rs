//! A healthy pipeline under Prometheus: producer runs one after another (as a DAG scheduled
//! often would), two consumer replicas of one group writing (the bed expects two), for 5 minutes.
//! No alert but Watchdog may fire, the receiver gets nothing else, and Watchdog reaches its own
//! receiver (a disk alert that `df` confirms is the machine's, not the pipeline's: see
//! [`DiskWatch`]); afterwards every panel of the Grafana dashboard must return series from this
//! Prometheus (its pictures land in target/monitoring/). Runs beside the Airflow tests in
//! tests/run: it touches no shared service, and Prometheus scrapes only the consumers it
//! registers.

use std::time::{Duration, Instant};

use integration::api::FakeApi;
use integration::bins;
use integration::Services;
use monitoring_tests::disk::DiskWatch;
use monitoring_tests::receiver::{list as received, Receiver};
use monitoring_tests::{list, Monitoring};

const HEALTHY_FOR: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_run_fires_no_alert_and_fills_every_panel() {
    let s = Services::from_env();
    let m = Monitoring::from_env();
    let disk = DiskWatch::start();
    let receiver = Receiver::start().await;
    let mut replica = m.watched_replica(&s, "watched", 3, &[]).await;
    let lane = replica.lane.clone();
    let mut second = m.another_replica(&s, &lane, "watched-2", &[]).await;
    let api = FakeApi::start().await;

    // A first run, pushed: the bed's Prometheus may hold an older last success (ProducerStale
    // after 3 minutes) or a failed run from an earlier test.
    let out = m
        .producer_run(&s, &api, &lane.topic, 10, Duration::from_secs(120))
        .await;
    assert!(out.success, "first producer run: {out}");

    // Alerts of an earlier test on this bed may still fire (DeadLetters counts the last 10
    // minutes' dead letters, even of a consumer gone since): the window starts once Alertmanager
    // holds nothing but Watchdog. In tests/run this test comes first, and nothing is left.
    m.wait_for_alerts("no alert left from before", Duration::from_secs(660), |a| {
        a.iter().all(|a| a.name == "Watchdog")
    })
    .await;
    let started = Instant::now();
    let (mut runs, mut published) = (0, out.summary("published") as i64);
    while started.elapsed() < HEALTHY_FOR {
        let mut producer = bins::command("producer", &s);
        producer
            .args(["--api-url", &api.url(), "--topic", &lane.topic])
            .args(["--duration", "20s", "--rate", "25", "--batch-size", "50"])
            .args(["--pushgateway-url", &m.pushgateway]);
        let out = bins::run(producer, Duration::from_secs(120)).await;
        assert!(out.success, "producer run {runs}: {out}");
        runs += 1;
        published += out.summary("published") as i64;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while lane.count(&s).await < published {
        assert!(
            Instant::now() < deadline,
            "{} of {published} rows written; consumer log:\n{}",
            lane.count(&s).await,
            replica.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Whole seconds since the window began, rounded down: the range never reaches back before it.
    let window = started.elapsed().as_secs();
    println!("{runs} producer runs, {published} users published and written in {window}s");

    // Prometheus' own record of its alerts over the window: pending is allowed, firing is not
    // (but Watchdog's, always).
    let fired = m
        .query(&format!(
            "max_over_time(ALERTS{{alertstate=\"firing\",alertname!=\"Watchdog\"}}[{window}s])"
        ))
        .await;
    let fired: Vec<_> = fired
        .into_iter()
        .filter(|a| !disk.confirms(&a["metric"]))
        .collect();
    assert!(fired.is_empty(), "alerts fired on a healthy run: {fired:?}");
    let held = m.alerts().await;
    assert!(
        held.iter()
            .all(|a| a.name == "Watchdog" || disk.confirms(&a.labels)),
        "Alertmanager holds alerts: {}",
        list(&held)
    );
    let sent = receiver.since(started);
    assert!(
        sent.iter()
            .all(|n| n.name == "Watchdog" || n.status == "resolved" || disk.confirms(&n.labels)),
        "notified on a healthy run: {}",
        received(&sent)
    );
    // The alert path end to end: Watchdog, sent to its own receiver (at once, then every 5
    // minutes; Alertmanager retries one it could not deliver before this test listened).
    assert!(
        receiver
            .notified()
            .iter()
            .any(|n| n.is("firing", "Watchdog", None) && n.receiver == "watchdog"),
        "Watchdog never reached the `watchdog` receiver: {}",
        received(&receiver.notified())
    );
    let pushed = m.query("producer_last_run_success == 1").await;
    assert_eq!(pushed.len(), 1, "the last run's push: {pushed:?}");

    // Every panel of the dashboard, queried as Grafana would over the run, drawn into target/.
    let (every_panel, report) = m.dashboard("", window / 60 + 1, &[]);
    println!("{report}");
    assert!(every_panel, "a dashboard panel is empty or fails (above)");

    replica.child.kill().await.expect("stop consumer");
    second.child.kill().await.expect("stop the second consumer");
}
