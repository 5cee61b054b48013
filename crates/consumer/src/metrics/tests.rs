//! What /metrics shows for what the pipeline reports.

use super::*;

#[test]
fn render_has_counters_and_a_cumulative_histogram() {
    let m = Metrics::new();
    m.consumed();
    m.written(Duration::from_millis(3), Duration::from_millis(40));
    m.written(Duration::from_millis(30), Duration::from_millis(400));
    let text = m.render();
    assert!(text.contains("consumer_records_consumed_total 1"));
    assert!(text.contains("consumer_rows_written_total 2"));
    assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.005\"} 1"));
    assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.05\"} 2"));
    assert!(text.contains("consumer_write_latency_seconds_count 2"));
    assert!(text.contains("consumer_end_to_end_latency_seconds_bucket{le=\"0.05\"} 1"));
    assert!(text.contains("consumer_end_to_end_latency_seconds_count 2"));
    assert!(text.contains("consumer_lag_records -1"));
    // A value on a bound counts in that bucket (le); one above every bound only in +Inf.
    m.written(Duration::from_millis(1), Duration::from_secs(700));
    let text = m.render();
    assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.001\"} 1"));
    assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.002\"} 1"));
    assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.005\"} 2"));
    assert!(text.contains("consumer_end_to_end_latency_seconds_bucket{le=\"600.0\"} 2"));
    assert!(text.contains("consumer_end_to_end_latency_seconds_bucket{le=\"+Inf\"} 3"));
    assert!(text.contains("consumer_end_to_end_latency_seconds_count 3"));
    assert!(text.contains("consumer_assigned_partitions 0"));
    m.assign(&[2, 0]);
    m.revoke(&[2], false);
    let text = m.render();
    assert!(text.contains("consumer_assigned_partitions 1"), "{text}");
    assert!(text.contains("consumer_partition_assigned{partition=\"0\"} 1"));
}

#[test]
fn labelled_counters_start_at_zero_and_sum_back() {
    let m = Metrics::new();
    let text = m.render();
    for kind in POISON_KINDS {
        assert!(text.contains(&format!(
            "consumer_records_dead_lettered_total{{kind=\"{kind}\"}} 0"
        )));
    }
    for dependency in RETRIED {
        assert!(text.contains(&format!(
            "consumer_retries_total{{dependency=\"{dependency}\"}} 0"
        )));
    }
    assert!(text.contains("consumer_ready 0"));
    m.dead_lettered(&Fault::poison("transform", "no uuid"), 0, 7);
    m.dead_lettered(&Fault::poison("framing", "tombstone"), 0, 8);
    m.retry("cassandra", 1, "timeout");
    m.retry("cassandra", 2, "timeout");
    m.retry("registry", 1, "refused");
    m.assign(&[0, 2]);
    m.measured_lag([(0, 5), (2, 7)].into(), BTreeMap::new());
    m.revoke(&[2], false);
    let text = m.render();
    assert!(text.contains("consumer_records_dead_lettered_total{kind=\"transform\"} 1"));
    assert!(text.contains("consumer_records_dead_lettered_total{kind=\"framing\"} 1"));
    assert!(text.contains("consumer_retries_total{dependency=\"cassandra\"} 2"));
    assert!(text.contains("consumer_retries_total{dependency=\"registry\"} 1"));
    // Each event under its own label and nowhere else: the families sum back to them.
    for zero in [
        "kind=\"schema\"} 0",
        "kind=\"avro\"} 0",
        "dependency=\"dlq\"} 0",
    ] {
        assert!(text.contains(zero), "{zero}: {text}");
    }
    assert!(!text.contains("=\"other\"}"), "{text}");
    assert!(text.contains("\nconsumer_rows_written_total 0\n"));
    assert!(text.contains("\nconsumer_dead_letters_refused_total 0\n"));
    m.dead_letter_refused(
        ("users", 1, 9),
        &Fault::poison("framing", "x".repeat(100_000)),
        "the dead-letter topic refused it",
        false,
    );
    let text = m.render();
    assert!(text.contains("\nconsumer_dead_letters_refused_total 1\n"));
    assert!(text.contains("consumer_records_dead_lettered_total{kind=\"framing\"} 1"));
    assert!(text.contains("\nconsumer_lag_records 12\n"), "{text}");
    assert!(text.contains("consumer_partition_lag_records{partition=\"0\"} 5"));
    assert!(
        !text.contains("consumer_partition_lag_records{partition=\"2\"}"),
        "{text}"
    );
}

#[test]
fn ready_needs_every_dependency_and_one_failed_probe_does_not_flap_it() {
    let m = Metrics::new();
    m.kafka.observe(true);
    m.registry.observe(true);
    assert!(!m.ready(), "Cassandra not yet seen");
    m.cassandra.observe(true);
    assert!(m.ready());
    // Retries and writes do not move readiness; only probes do.
    m.retry("cassandra", 1, "timeout");
    assert!(m.ready());
    for _ in 1..DOWN_AFTER {
        m.cassandra.observe(false);
        assert!(
            m.ready(),
            "down only after {DOWN_AFTER} failed probes in a row"
        );
    }
    m.cassandra.observe(false);
    assert!(!m.ready());
    assert!(m
        .render()
        .contains("consumer_dependency_up{dependency=\"cassandra\"} 0"));
    m.cassandra.observe(true);
    assert!(m.ready());
}

/// Every family the alert rules, the dashboard, the docs and the tests query, by the name
/// they query it by.
#[test]
fn every_metric_name_is_rendered() {
    let m = Metrics::new();
    m.assign(&[0]);
    m.committed(&[(0, 3)]);
    m.measured_lag([(0, 1)].into(), [(0, Unwritten::InFlight(0))].into());
    let text = m.render();
    let names = [
        "consumer_records_consumed_total ",
        "consumer_rows_written_total ",
        "consumer_write_requests_total ",
        "consumer_dead_letters_refused_total ",
        "consumer_records_dead_lettered_total{kind=",
        "consumer_retries_total{dependency=",
        "consumer_rebalances_total{kind=",
        "consumer_lag_records ",
        "consumer_partition_lag_records{partition=",
        "consumer_lag_seconds ",
        "consumer_partition_lag_seconds{partition=",
        "consumer_partition_committed_offset{partition=",
        "consumer_assigned_partitions ",
        "consumer_partition_assigned{partition=",
        "consumer_ready ",
        "consumer_dependency_up{dependency=",
        "consumer_write_latency_seconds_bucket{le=",
        "consumer_write_latency_seconds_sum ",
        "consumer_write_latency_seconds_count ",
        "consumer_end_to_end_latency_seconds_bucket{le=",
        "consumer_end_to_end_latency_seconds_sum ",
        "consumer_end_to_end_latency_seconds_count ",
        "consumer_build_info{version=",
        "process_start_time_seconds ",
    ];
    for name in names {
        assert!(
            text.contains(&format!("\n{name}")),
            "{name} missing: {text}"
        );
    }
    #[cfg(target_os = "linux")]
    for name in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(
            text.contains(&format!("\n{name}")),
            "{name} missing: {text}"
        );
    }
    // Counters keep their type under the name Prometheus stores their samples by.
    assert!(text.contains("# TYPE consumer_rows_written counter\n"));
    assert!(text.contains("# TYPE consumer_end_to_end_latency_seconds histogram\n"));
}

#[test]
fn latency_buckets_reach_ten_minutes() {
    let m = Metrics::new();
    m.written(Duration::from_millis(2), Duration::from_secs(45));
    m.written(Duration::from_millis(2), Duration::from_secs(250));
    let text = m.render();
    for (bound, count) in [
        ("10.0", 0),
        ("30.0", 0),
        ("60.0", 1),
        ("120.0", 1),
        ("300.0", 2),
        ("600.0", 2),
    ] {
        let line =
            format!("consumer_end_to_end_latency_seconds_bucket{{le=\"{bound}\"}} {count}\n");
        assert!(text.contains(&line), "{line}: {text}");
    }
    assert!(
        text.contains("consumer_end_to_end_latency_seconds_sum 295.0\n"),
        "{text}"
    );
}

/// The age of the oldest record not yet written: exact for one in flight, bounded by the
/// newest record taken when the backlog is not fetched, 0 when caught up, unknown (no
/// series) when nothing was taken from a partition that is behind.
#[test]
fn lag_in_seconds_is_the_age_of_the_oldest_unwritten_record() {
    let m = Metrics::new();
    m.assign(&[0, 1, 2, 3, 4]);
    let now_ms = 1_700_000_000_000;
    m.measured_lag(
        [(0, 0), (1, 0), (2, 40), (3, 9)].into(),
        [
            (0, Unwritten::AfterNewest(now_ms - 500_000)),
            (1, Unwritten::InFlight(now_ms - 130_500)),
            (2, Unwritten::AfterNewest(now_ms - 20_000)),
        ]
        .into(),
    );
    let text = m.render_at(now_ms);
    for line in [
        "consumer_partition_lag_seconds{partition=\"0\"} 0.0\n",
        "consumer_partition_lag_seconds{partition=\"1\"} 130.5\n",
        "consumer_partition_lag_seconds{partition=\"2\"} 20.0\n",
        "consumer_lag_seconds 130.5\n",
        "consumer_lag_records 49\n",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(
        !text.contains("consumer_partition_lag_seconds{partition=\"3\"}"),
        "{text}"
    );
    // Nothing measured for it: no position, no lag of either kind.
    assert!(!text.contains("{partition=\"4\"} 0.0"), "{text}");
    // It keeps ageing between measurements while nothing is written.
    let later = m.render_at(now_ms + 60_000);
    assert!(later.contains("consumer_lag_seconds 190.5\n"), "{later}");
    // Written since: caught up.
    m.measured_lag(
        [(0, 0), (1, 0), (2, 0), (3, 0)].into(),
        [(1, Unwritten::AfterNewest(now_ms))].into(),
    );
    let text = m.render_at(now_ms + 61_000);
    assert!(text.contains("\nconsumer_lag_seconds 0.0\n"), "{text}");
    m.revoke(&[1], false);
    let text = m.render_at(now_ms + 61_000);
    assert!(!text.contains("{partition=\"1\"}"), "{text}");
}

#[test]
fn rebalances_and_committed_offsets_follow_the_assignment() {
    let m = Metrics::new();
    let text = m.render();
    for kind in REBALANCES {
        assert!(
            text.contains(&format!("consumer_rebalances_total{{kind=\"{kind}\"}} 0\n")),
            "{text}"
        );
    }
    m.assign(&[0, 1]);
    m.committed(&[(0, 42), (5, 9)]);
    let text = m.render();
    assert!(text.contains("consumer_rebalances_total{kind=\"assigned\"} 1\n"));
    assert!(text.contains("consumer_partition_committed_offset{partition=\"0\"} 42\n"));
    assert!(
        !text.contains("consumer_partition_committed_offset{partition=\"5\"}"),
        "not ours"
    );
    m.revoke(&[0], false);
    m.revoke(&[1], true);
    let text = m.render();
    assert!(text.contains("consumer_rebalances_total{kind=\"revoked\"} 1\n"));
    assert!(text.contains("consumer_rebalances_total{kind=\"lost\"} 1\n"));
    assert!(
        !text.contains("consumer_partition_committed_offset{"),
        "{text}"
    );
    assert!(text.contains("\nconsumer_assigned_partitions 0\n"));
}

/// docs/metrics.md lists what the registry holds (the process metrics, which differ by
/// system, are described in prose there).
#[test]
fn docs_metrics_reference_matches_the_registry() {
    let m = Metrics::new();
    // One partition with every per-partition series, so their label shows.
    m.assign(&[0]);
    m.committed(&[(0, 3)]);
    m.measured_lag([(0, 1)].into(), [(0, Unwritten::InFlight(0))].into());
    let families: Vec<_> = common::metrics::describe(&m.render())
        .into_iter()
        .filter(|f| !f.name.starts_with("process_"))
        .collect();
    let page = common::generated::page(env!("CARGO_MANIFEST_DIR"), "docs/metrics.md");
    let table = common::metrics::reference_table(&families);
    if let Err(e) = common::generated::check(&page, "consumer", &table) {
        panic!("{e}");
    }
}
