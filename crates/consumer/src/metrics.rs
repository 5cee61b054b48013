//! Counters and readiness, written by the pipeline and read by `/metrics`,
//! `/healthz`, progress lines and the summary. Each event method both logs and
//! counts, so logs and metrics cannot drift apart.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use common::fault::Fault;

/// The poison kinds a record can be dead-lettered for (`Fault::kind` of a
/// poison fault), and the dependencies a step retries against. Their counters
/// are rendered at 0 from the start, so an alert on `increase()` sees the
/// first event (Prometheus counts no increase into a series' first sample).
pub const POISON_KINDS: [&str; 4] = ["framing", "schema", "avro", "transform"];
pub const RETRIED: [&str; 3] = ["registry", "cassandra", "dlq"];

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub consumed: AtomicU64,
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Poison records the DLQ refused for good: skipped, neither rows nor dead letters.
    pub dead_letters_refused: AtomicU64,
    pub retries: AtomicU64,
    dead_lettered_by_kind: Labelled<{ POISON_KINDS.len() }>,
    retries_by_dependency: Labelled<{ RETRIED.len() }>,
    /// Records behind the end of the assigned partitions; -1 until first measured.
    pub lag: AtomicI64,
    /// The same per assigned partition, from the last measurement.
    partition_lag: std::sync::Mutex<std::collections::BTreeMap<i32, i64>>,
    pub kafka: Dependency,
    pub registry: Dependency,
    pub cassandra: Dependency,
    /// Partitions the group gave this consumer, for /metrics and progress lines.
    assigned: std::sync::Mutex<std::collections::BTreeSet<i32>>,
    write_latency: Histogram,
    end_to_end: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            dead_lettered_by_kind: Labelled::new(POISON_KINDS),
            retries_by_dependency: Labelled::new(RETRIED),
            ..Metrics::default()
        };
        m.lag.store(-1, Relaxed);
        m
    }

    pub fn consumed(&self) {
        self.consumed.fetch_add(1, Relaxed);
    }

    /// A row written: `latency` of the write itself, `since_produced` from
    /// the Kafka record's timestamp (what users feel end to end).
    pub fn written(&self, latency: Duration, since_produced: Duration) {
        self.written.fetch_add(1, Relaxed);
        self.write_latency.observe(latency);
        self.end_to_end.observe(since_produced);
    }

    pub fn dead_lettered(&self, poison: &Fault, partition: i32, offset: i64) {
        self.dead_lettered.fetch_add(1, Relaxed);
        self.dead_lettered_by_kind.add(poison.kind);
        tracing::warn!(
            partition,
            offset,
            kind = poison.kind,
            "record dead-lettered: {}",
            poison.message
        );
    }

    /// A poison record that the DLQ refused for good (`refusal` says why and what to change):
    /// its offset moves on without it, so it is an error that names where it still is.
    pub fn dead_letter_refused(
        &self,
        (topic, partition, offset): (&str, i32, i64),
        poison: &Fault,
        refusal: &str,
    ) {
        self.dead_letters_refused.fetch_add(1, Relaxed);
        let (reason, _) = crate::dlq::cut_reason(&poison.message);
        tracing::error!(
            topic,
            partition,
            offset,
            kind = poison.kind,
            "record {topic}/{partition}@{offset} skipped: it is poison ({reason}) and {refusal}. \
             It is still in {topic} at that offset until retention removes it"
        );
    }

    /// A step that failed and will be retried. The first retry of a record joins
    /// its dependency's storm (one line, then a count every few seconds); later
    /// ones are debug detail, so an outage does not flood the log.
    pub fn retry(&self, what: &'static str, attempt: u32, error: &str) {
        self.retries.fetch_add(1, Relaxed);
        self.retries_by_dependency.add(what);
        if attempt <= 1 {
            common::storm::Storm::global().warn(what, &format!("retrying: {error}"));
        } else {
            tracing::debug!(what, attempt, "retrying: {error}");
        }
    }

    pub fn assign(&self, partitions: &[i32]) {
        self.partitions_mut().extend(partitions);
    }

    pub fn revoke(&self, partitions: &[i32]) {
        let mut assigned = self.partitions_mut();
        let mut lag = self.partition_lag_mut();
        for p in partitions {
            assigned.remove(p);
            lag.remove(p);
        }
    }

    /// Records behind the high watermark, per assigned partition that has a
    /// position; their sum is `lag`.
    pub fn measured_lag(&self, per_partition: std::collections::BTreeMap<i32, i64>) {
        self.lag.store(per_partition.values().sum(), Relaxed);
        *self.partition_lag_mut() = per_partition;
    }

    fn partition_lag_mut(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<i32, i64>> {
        self.partition_lag.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn assigned(&self) -> Vec<i32> {
        self.partitions_mut().iter().copied().collect()
    }

    fn partitions_mut(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<i32>> {
        self.assigned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready when Kafka, the registry and Cassandra all answer.
    pub fn ready(&self) -> bool {
        self.dependencies().iter().all(|(_, d)| d.is_up())
    }

    pub fn dependencies(&self) -> [(&'static str, &Dependency); 3] {
        [
            ("kafka", &self.kafka),
            ("registry", &self.registry),
            ("cassandra", &self.cassandra),
        ]
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "consumer_records_consumed_total",
                "Records received from Kafka.",
                &self.consumed,
            ),
            (
                "consumer_rows_written_total",
                "Rows written to Cassandra.",
                &self.written,
            ),
            (
                "consumer_dead_letters_refused_total",
                "Poison records the dead-letter topic refused for good (too large, invalid): skipped, their offsets committed.",
                &self.dead_letters_refused,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        self.dead_lettered_by_kind.render(
            &mut out,
            "consumer_records_dead_lettered_total",
            "Records sent to the dead-letter topic, by why they could not be processed.",
            "kind",
        );
        self.retries_by_dependency.render(
            &mut out,
            "consumer_retries_total",
            "Failed steps that were retried, by the dependency that failed (dlq: publishing a dead letter to Kafka).",
            "dependency",
        );
        let _ = writeln!(
            out,
            "# HELP consumer_lag_records Records behind the end of the assigned partitions.\n# TYPE consumer_lag_records gauge\nconsumer_lag_records {}",
            self.lag.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP consumer_partition_lag_records Records behind the end, per assigned partition.\n# TYPE consumer_partition_lag_records gauge"
        );
        for (p, lag) in self.partition_lag_mut().iter() {
            let _ = writeln!(
                out,
                "consumer_partition_lag_records{{partition=\"{p}\"}} {lag}"
            );
        }
        let assigned = self.assigned();
        let _ = writeln!(
            out,
            "# HELP consumer_assigned_partitions Partitions of the topic assigned to this consumer.\n# TYPE consumer_assigned_partitions gauge\nconsumer_assigned_partitions {}",
            assigned.len()
        );
        let _ = writeln!(
            out,
            "# HELP consumer_partition_assigned 1 for each partition assigned to this consumer.\n# TYPE consumer_partition_assigned gauge"
        );
        for p in assigned {
            let _ = writeln!(out, "consumer_partition_assigned{{partition=\"{p}\"}} 1");
        }
        let _ = writeln!(
            out,
            "# HELP consumer_ready 1 when Kafka, the registry and Cassandra all answer (as /healthz).\n# TYPE consumer_ready gauge\nconsumer_ready {}",
            self.ready() as u8
        );
        let _ = writeln!(
            out,
            "# HELP consumer_dependency_up 1 when the dependency answers its probe.\n# TYPE consumer_dependency_up gauge"
        );
        for (name, dependency) in self.dependencies() {
            let _ = writeln!(
                out,
                "consumer_dependency_up{{dependency=\"{name}\"}} {}",
                dependency.is_up() as u8
            );
        }
        self.write_latency.render(
            &mut out,
            "consumer_write_latency_seconds",
            "Time to write one row, retries excluded.",
        );
        self.end_to_end.render(
            &mut out,
            "consumer_end_to_end_latency_seconds",
            "From the Kafka record's timestamp (producer) to its row written.",
        );
        out
    }
}

/// A Prometheus histogram with the [`BUCKETS`] bounds. Each observation counts in
/// the one bucket it falls in (the last slot: above every bound); the cumulative
/// counts Prometheus wants are summed when rendered. One atomic add per row instead
/// of one per bucket above it, on counters every writing task shares.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let slot = BUCKETS.partition_point(|bound| *bound < secs);
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(value.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = cumulative + self.buckets[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// One counter per label value of a fixed set; a value outside the set (a
/// kind added without updating the list) counts under `other`.
#[derive(Debug)]
struct Labelled<const N: usize> {
    values: [&'static str; N],
    counts: [AtomicU64; N],
    other: AtomicU64,
}

impl<const N: usize> Default for Labelled<N> {
    fn default() -> Self {
        Labelled::new([""; N])
    }
}

impl<const N: usize> Labelled<N> {
    fn new(values: [&'static str; N]) -> Self {
        Labelled {
            values,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            other: AtomicU64::new(0),
        }
    }

    fn add(&self, value: &str) {
        match self.values.iter().position(|v| *v == value) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.other.fetch_add(1, Relaxed),
        };
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, count) in self.values.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", count.load(Relaxed));
        }
        let other = self.other.load(Relaxed);
        if other > 0 {
            let _ = writeln!(out, "{name}{{{label}=\"other\"}} {other}");
        }
    }
}

/// Probes that fail in a row before a dependency counts as down.
pub const DOWN_AFTER: u32 = 3;

/// Whether a dependency answers, with hysteresis: one slow probe is not an
/// outage, so readiness does not flap; one good answer brings it back.
#[derive(Debug, Default)]
pub struct Dependency {
    up: AtomicBool,
    failures: AtomicU32,
}

impl Dependency {
    pub fn observe(&self, ok: bool) {
        if ok {
            self.failures.store(0, Relaxed);
            self.up.store(true, Relaxed);
        } else if self.failures.fetch_add(1, Relaxed) + 1 >= DOWN_AFTER {
            self.up.store(false, Relaxed);
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
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
        m.written(Duration::from_millis(1), Duration::from_secs(20));
        let text = m.render();
        assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.002\"} 1"));
        assert!(text.contains("consumer_write_latency_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("consumer_end_to_end_latency_seconds_bucket{le=\"10\"} 2"));
        assert!(text.contains("consumer_end_to_end_latency_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("consumer_end_to_end_latency_seconds_count 3"));
        assert!(text.contains("consumer_assigned_partitions 0"));
        m.assign(&[2, 0]);
        m.revoke(&[2]);
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
        m.measured_lag([(0, 5), (2, 7)].into());
        m.revoke(&[2]);
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
        );
        let text = m.render();
        assert!(text.contains("\nconsumer_dead_letters_refused_total 1\n"));
        assert!(text.contains("consumer_records_dead_lettered_total{kind=\"framing\"} 1"));
        assert!(text.contains("\nconsumer_lag_records 12\n"));
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
}
