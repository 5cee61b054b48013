//! Counters and readiness, written by the pipeline and read by `/metrics`,
//! `/healthz`, progress lines and the summary. Each event method both logs and
//! counts, so logs and metrics cannot drift apart. The metrics live in a
//! `prometheus-client` registry, which renders them; what changes per row is an atomic
//! add (no lock, no label lookup), the rest is set when it changes or at a scrape.

mod dependency;
mod histogram;
mod labelled;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::fault::Fault;
use common::metrics::Label;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use crate::offsets::Unwritten;
pub use dependency::{Dependency, DOWN_AFTER};
use histogram::Histogram;
pub use histogram::BUCKETS;
use labelled::Labelled;

/// The poison kinds a record can be dead-lettered for (`Fault::kind` of a
/// poison fault), and the dependencies a step retries against. Their counters
/// are rendered at 0 from the start.
pub const POISON_KINDS: [&str; 4] = ["framing", "schema", "avro", "transform"];
pub const RETRIED: [&str; 3] = ["registry", "cassandra", "dlq"];
/// How this consumer's assignment changed: partitions given, given back (revoked), or taken
/// away when its group session expired (lost).
pub const REBALANCES: [&str; 3] = ["assigned", "revoked", "lost"];

/// A per-partition gauge family.
type PerPartition<N = i64, A = std::sync::atomic::AtomicI64> = Family<Label<i32>, Gauge<N, A>>;

#[derive(Debug)]
pub struct Metrics {
    families: Registry,
    consumed: Counter,
    written: Counter,
    /// Requests that wrote rows: one per row written alone, one per batch.
    write_requests: Counter,
    /// Poison records whose dead letter the DLQ refused for good: at most a marker was parked.
    dead_letters_refused: Counter,
    /// The sums of the labelled families below, for the progress lines and the summary.
    dead_lettered: AtomicU64,
    retries: AtomicU64,
    dead_lettered_by_kind: Labelled<{ POISON_KINDS.len() }>,
    retries_by_dependency: Labelled<{ RETRIED.len() }>,
    rebalances: Labelled<{ REBALANCES.len() }>,
    /// Records behind the end of the assigned partitions; -1 until first measured.
    lag: Gauge,
    partition_lag: PerPartition,
    /// Per assigned partition: the Kafka timestamp (ms) of its oldest record not yet written,
    /// `None` when caught up; a partition not in it has no known age yet. Locked after
    /// `assigned`, never before.
    unwritten_since: Mutex<BTreeMap<i32, Option<i64>>>,
    lag_seconds: Gauge<f64, AtomicU64>,
    partition_lag_seconds: PerPartition<f64, AtomicU64>,
    committed: PerPartition,
    pub kafka: Dependency,
    pub registry: Dependency,
    pub cassandra: Dependency,
    ready_gauge: Gauge,
    dependency_up: Family<Label<&'static str>, Gauge>,
    /// Partitions the group gave this consumer, for /metrics and progress lines.
    assigned: Mutex<BTreeSet<i32>>,
    assigned_count: Gauge,
    partition_assigned: PerPartition,
    write_latency: Histogram,
    end_to_end: Histogram,
}

/// The counts a progress line or the summary reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub consumed: u64,
    pub written: u64,
    pub dead_lettered: u64,
    pub dead_letters_refused: u64,
    pub retries: u64,
    pub lag: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            families: Registry::default(),
            consumed: Counter::default(),
            written: Counter::default(),
            write_requests: Counter::default(),
            dead_letters_refused: Counter::default(),
            dead_lettered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_lettered_by_kind: Labelled::new("kind", POISON_KINDS),
            retries_by_dependency: Labelled::new("dependency", RETRIED),
            rebalances: Labelled::new("kind", REBALANCES),
            lag: Gauge::default(),
            partition_lag: PerPartition::default(),
            unwritten_since: Mutex::new(BTreeMap::new()),
            lag_seconds: Gauge::default(),
            partition_lag_seconds: PerPartition::default(),
            committed: PerPartition::default(),
            kafka: Dependency::default(),
            registry: Dependency::default(),
            cassandra: Dependency::default(),
            ready_gauge: Gauge::default(),
            dependency_up: Family::default(),
            assigned: Mutex::new(BTreeSet::new()),
            assigned_count: Gauge::default(),
            partition_assigned: PerPartition::default(),
            write_latency: Histogram::default(),
            end_to_end: Histogram::default(),
        };
        m.lag.set(-1);
        m.register();
        m
    }

    /// Every family, in the order /metrics and docs/metrics.md show them.
    fn register(&mut self) {
        let r = &mut self.families;
        r.register(
            "consumer_records_consumed",
            "Records received from Kafka",
            self.consumed.clone(),
        );
        r.register(
            "consumer_rows_written",
            "Rows written to Cassandra",
            self.written.clone(),
        );
        r.register(
            "consumer_write_requests",
            "Requests that wrote rows to Cassandra: one per row written alone, one per batch of rows (rows written / requests: the rows per request)",
            self.write_requests.clone(),
        );
        r.register(
            "consumer_dead_letters_refused",
            "Poison records whose dead letter the dead-letter topic refused for good (too large, invalid): a marker without their bytes went instead (counted as dead-lettered) unless it was refused too; their offsets committed",
            self.dead_letters_refused.clone(),
        );
        r.register(
            "consumer_records_dead_lettered",
            "Records sent to the dead-letter topic, by why they could not be processed",
            self.dead_lettered_by_kind.family(),
        );
        r.register(
            "consumer_retries",
            "Failed steps that were retried, by the dependency that failed (dlq: publishing a dead letter to Kafka)",
            self.retries_by_dependency.family(),
        );
        r.register(
            "consumer_rebalances",
            "Changes of this consumer's assignment: partitions assigned, revoked, or lost (its group session expired)",
            self.rebalances.family(),
        );
        r.register(
            "consumer_lag_records",
            "Records behind the end of the assigned partitions (-1 until first measured)",
            self.lag.clone(),
        );
        r.register(
            "consumer_partition_lag_records",
            "Records behind the end, per assigned partition",
            self.partition_lag.clone(),
        );
        r.register(
            "consumer_lag_seconds",
            "Age of the oldest record in Kafka not yet written to Cassandra, over the assigned partitions (0 when caught up)",
            self.lag_seconds.clone(),
        );
        r.register(
            "consumer_partition_lag_seconds",
            "Age of the oldest record of the partition not yet written to Cassandra (0 when caught up); an over-estimate while the backlog is not fetched yet",
            self.partition_lag_seconds.clone(),
        );
        r.register(
            "consumer_partition_committed_offset",
            "The offset this consumer last committed, per assigned partition (the next record to read)",
            self.committed.clone(),
        );
        r.register(
            "consumer_assigned_partitions",
            "Partitions of the topic assigned to this consumer",
            self.assigned_count.clone(),
        );
        r.register(
            "consumer_partition_assigned",
            "1 for each partition assigned to this consumer",
            self.partition_assigned.clone(),
        );
        r.register(
            "consumer_ready",
            "1 when Kafka, the registry and Cassandra all answer (as /healthz)",
            self.ready_gauge.clone(),
        );
        r.register(
            "consumer_dependency_up",
            "1 when the dependency answers its probe",
            self.dependency_up.clone(),
        );
        r.register(
            "consumer_write_latency_seconds",
            "Time to write one row, retries excluded",
            self.write_latency.clone(),
        );
        r.register(
            "consumer_end_to_end_latency_seconds",
            "From the Kafka record's timestamp (producer) to its row written",
            self.end_to_end.clone(),
        );
        common::metrics::build_info(
            r,
            "consumer",
            env!("CARGO_PKG_VERSION"),
            option_env!("BUILD_REVISION"),
        );
        common::metrics::process(r);
    }

    pub fn consumed(&self) {
        self.consumed.inc();
    }

    /// A row written: `latency` of the write itself, `since_produced` from
    /// the Kafka record's timestamp (what users feel end to end).
    /// One request wrote rows (each then counted by [`Metrics::written`]).
    pub fn write_request(&self) {
        self.write_requests.inc();
    }

    pub fn written(&self, latency: Duration, since_produced: Duration) {
        self.written.inc();
        self.write_latency.observe(latency);
        self.end_to_end.observe(since_produced);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            consumed: self.consumed.get(),
            written: self.written.get(),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dead_letters_refused: self.dead_letters_refused.get(),
            retries: self.retries.load(Relaxed),
            lag: self.lag.get(),
        }
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

    /// A poison record whose dead letter the DLQ refused for good (`refusal` says why and what
    /// to change), `marked` when a marker took its place: its offset moves on without its
    /// bytes, so it is an error that names where it still is.
    pub fn dead_letter_refused(
        &self,
        (topic, partition, offset): (&str, i32, i64),
        poison: &Fault,
        refusal: &str,
        marked: bool,
    ) {
        self.dead_letters_refused.inc();
        let (reason, _) = crate::dlq::cut_reason(&poison.message);
        let marker = if marked {
            "A marker without its bytes (dlq.value.dropped) is in the dead-letter topic instead"
        } else {
            "Its marker (no bytes, only where it is and why) was refused too"
        };
        tracing::error!(
            topic,
            partition,
            offset,
            kind = poison.kind,
            "record {topic}/{partition}@{offset} skipped: it is poison ({reason}) and {refusal}. \
             {marker}. It is still in {topic} at that offset until retention removes it"
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
        self.rebalances.add("assigned");
        let mut assigned = self.partitions_mut();
        for p in partitions {
            assigned.insert(*p);
            self.partition_assigned
                .get_or_create(&[("partition", *p)])
                .set(1);
        }
        self.assigned_count.set(assigned.len() as i64);
    }

    /// Partitions given back to the group, or `lost` with the group session.
    pub fn revoke(&self, partitions: &[i32], lost: bool) {
        self.rebalances.add(if lost { "lost" } else { "revoked" });
        let mut assigned = self.partitions_mut();
        let mut unwritten = lock(&self.unwritten_since);
        for p in partitions {
            assigned.remove(p);
            unwritten.remove(p);
            let label = [("partition", *p)];
            for family in [
                &self.partition_assigned,
                &self.partition_lag,
                &self.committed,
            ] {
                family.remove(&label);
            }
            self.partition_lag_seconds.remove(&label);
        }
        self.assigned_count.set(assigned.len() as i64);
    }

    /// Offsets the group coordinator accepted (the next record to read, per partition). One
    /// of a partition no longer assigned (a late commit) is not shown.
    pub fn committed(&self, offsets: &[(i32, i64)]) {
        let assigned = self.partitions_mut();
        for (partition, offset) in offsets {
            if assigned.contains(partition) {
                self.committed
                    .get_or_create(&[("partition", *partition)])
                    .set(*offset);
            }
        }
    }

    /// Records behind the high watermark, per assigned partition that has a position (their
    /// sum is `consumer_lag_records`), and what is known of each partition's oldest record
    /// not yet written. A partition is caught up when it has no record behind and none in
    /// flight.
    pub fn measured_lag(
        &self,
        per_partition: BTreeMap<i32, i64>,
        unwritten: BTreeMap<i32, Unwritten>,
    ) {
        self.lag.set(per_partition.values().sum());
        let assigned = self.partitions_mut();
        let mut since = lock(&self.unwritten_since);
        since.clear();
        for (partition, lag) in per_partition.iter().filter(|(p, _)| assigned.contains(p)) {
            self.partition_lag
                .get_or_create(&[("partition", *partition)])
                .set(*lag);
        }
        for partition in assigned.iter() {
            let position = per_partition.get(partition);
            let behind = position.is_some_and(|lag| *lag > 0);
            let oldest = match (unwritten.get(partition), position) {
                (Some(Unwritten::InFlight(produced_ms)), _) => Some(Some(*produced_ms)),
                (Some(Unwritten::AfterNewest(produced_ms)), _) if behind => {
                    Some(Some(*produced_ms))
                }
                // No position yet, or behind with nothing taken from it yet: no age known.
                (_, None) => None,
                (None, _) if behind => None,
                _ => Some(None),
            };
            if let Some(oldest) = oldest {
                since.insert(*partition, oldest);
            }
        }
        // Assigned but without a position yet: no lag in records to show.
        for partition in assigned.iter() {
            if !per_partition.contains_key(partition) {
                self.partition_lag.remove(&[("partition", *partition)]);
            }
        }
    }

    fn partitions_mut(&self) -> MutexGuard<'_, BTreeSet<i32>> {
        lock(&self.assigned)
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

    /// The registry as OpenMetrics text (see [`common::metrics::CONTENT_TYPE`]), after the
    /// values that are read rather than counted (readiness, the lag's age) are brought up to now.
    pub fn render(&self) -> String {
        self.ready_gauge.set(self.ready() as i64);
        for (name, dependency) in self.dependencies() {
            self.dependency_up
                .get_or_create(&[("dependency", name)])
                .set(dependency.is_up() as i64);
        }
        self.render_at(chrono::Utc::now().timestamp_millis())
    }

    /// [`Metrics::render`] as of `now_ms` (ms since the epoch).
    pub(crate) fn render_at(&self, now_ms: i64) -> String {
        self.age_lag(now_ms);
        common::metrics::render(&self.families)
    }

    /// The lag in seconds as of `now_ms`.
    fn age_lag(&self, now_ms: i64) {
        // Locks in the order every other method takes them: `assigned`, then `unwritten_since`.
        let assigned = self.partitions_mut();
        let since = lock(&self.unwritten_since);
        let mut max = 0.0f64;
        for partition in assigned.iter() {
            let label = [("partition", *partition)];
            match since.get(partition) {
                Some(oldest) => {
                    let age = oldest.map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
                    max = max.max(age);
                    self.partition_lag_seconds.get_or_create(&label).set(age);
                }
                None => {
                    self.partition_lag_seconds.remove(&label);
                }
            }
        }
        self.lag_seconds.set(max);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the metrics; the data is still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
