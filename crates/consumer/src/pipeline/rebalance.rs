//! The group's rebalances. On revoke: finish what is in flight for the revoked partitions
//! (up to a grace), store their offsets and commit, so the next owner starts where we
//! stopped. On a lost assignment (the session expired): neither, as the partitions may
//! already be someone else's. Also where offsets reach the Kafka client, what this
//! consumer owns now, and pausing and resuming it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kafka::{Alarm, Alarmed};
use common::storm::Storm;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::in_flight::InFlight;
use crate::metrics::Metrics;

/// How long a revoke or a shutdown waits for in-flight rows before giving up
/// on them (they are then re-delivered to whoever owns the partition next).
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

pub type KafkaConsumer = StreamConsumer<Rebalancing>;

/// The consumer's context: rebalance hooks, the commit callback, and librdkafka's errors
/// and log lines routed into ours.
#[derive(Debug)]
pub struct Rebalancing {
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
    drain_grace: Duration,
    /// Set when the run ends: a revoke then neither waits for rows nor blocks in place.
    closing: AtomicBool,
    /// Set once the group gave us partitions; idleness only counts from then.
    ever_assigned: AtomicBool,
    /// Fetching is paused (writes stalled).
    paused: AtomicBool,
    /// A revoke is waiting for its partitions' rows in flight.
    draining: AtomicBool,
    assignment: Mutex<BTreeSet<i32>>,
    alarm: Alarm,
}

impl Rebalancing {
    pub fn new(in_flight: Arc<InFlight>, metrics: Arc<Metrics>, drain_grace: Duration) -> Self {
        Rebalancing {
            in_flight,
            metrics,
            drain_grace,
            closing: AtomicBool::new(false),
            ever_assigned: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            assignment: Mutex::new(BTreeSet::new()),
            alarm: Alarm::default(),
        }
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> Vec<i32> {
        self.assignment_mut().iter().copied().collect()
    }

    pub fn ever_assigned(&self) -> bool {
        self.ever_assigned.load(Relaxed)
    }

    #[cfg(test)]
    pub fn paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    #[cfg(test)]
    pub fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// The run is ending: the revoke of the final close must not wait nor block in place.
    pub fn close(&self) {
        self.closing.store(true, Relaxed);
    }

    fn assignment_mut(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        self.assignment.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let closing = self.closing.load(Relaxed);
        let lost = consumer.assignment_lost();
        if lost {
            tracing::warn!(
                ?partitions,
                "partitions lost (the group session expired); rows not yet committed will be \
                 re-delivered to their next owner"
            );
        } else {
            if !closing {
                self.draining.store(true, Relaxed);
                let left = tokio::task::block_in_place(|| {
                    self.in_flight
                        .wait_drained(Some(&partitions), self.drain_grace)
                });
                self.draining.store(false, Relaxed);
                if left > 0 {
                    tracing::warn!(
                        left,
                        "partitions revoked with rows still in flight; they will be re-delivered"
                    );
                }
            }
            if let Some(topic) = tpl.elements().first().map(|e| e.topic().to_string()) {
                store_offsets(consumer, &topic, &self.in_flight);
            }
            // A synchronous commit waits on the coordinator (up to its request timeout when
            // the coordinator is silent): not on a runtime thread that /metrics and the
            // progress lines need. Closing, nothing else is left to starve, and the revoke
            // may run where block_in_place is not allowed.
            if closing {
                commit(consumer, "revoke");
            } else {
                tokio::task::block_in_place(|| commit(consumer, "revoke"));
            }
        }
        // librdkafka keeps a partition's pause across its revoke: one revoked while paused and
        // assigned to us again after fetching resumed would never be fetched again.
        if self.paused.load(Relaxed) {
            if let Err(e) = consumer.resume(tpl) {
                tracing::warn!(?partitions, "could not resume revoked partitions: {e}");
            }
        }
        self.in_flight.forget(&partitions);
        let mut assignment = self.assignment_mut();
        for p in &partitions {
            assignment.remove(p);
        }
        drop(assignment);
        self.metrics.revoke(&partitions, lost);
        tracing::info!(?partitions, "partitions revoked");
    }
}

impl ClientContext for Rebalancing {
    fn error(&self, error: KafkaError, reason: &str) {
        self.alarm.report(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        common::kafka::alarm::log(level, facility, message);
    }
}

impl Alarmed for Rebalancing {
    fn alarm(&self) -> &Alarm {
        &self.alarm
    }
}

impl ConsumerContext for Rebalancing {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.revoke(consumer, tpl);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions assigned");
            // Fetching is paused because writes stall: a partition assigned now must wait
            // with the others, or it would fill memory with records no slot can take.
            if self.paused.load(Relaxed) {
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(
                        ?partitions,
                        "could not pause newly assigned partitions: {e}"
                    );
                }
            }
            self.assignment_mut().extend(&partitions);
            self.metrics.assign(&partitions);
            self.ever_assigned.store(true, Relaxed);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.alarm.reached();
                let committed: Vec<(i32, i64)> = offsets
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(offset) if e.error().is_ok() => {
                            Some((e.partition(), offset))
                        }
                        _ => None,
                    })
                    .collect();
                self.metrics.committed(&committed);
            }
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => Storm::global().warn(
                "kafka",
                &format!("offset commit failed (will be retried with the next one): {e}"),
            ),
        }
    }
}

/// Hands the offsets that moved to the Kafka client, which commits them with
/// its next (auto or explicit) commit. Batched per tick rather than per row.
/// Only local calls: asking librdkafka for the subscription or the assignment
/// waits on its main thread, which a runtime thread must not do every tick.
pub fn store_offsets<C: Consumer<Rebalancing>>(consumer: &C, topic: &str, in_flight: &InFlight) {
    let moved = in_flight.take_moved();
    if moved.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in moved {
        let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        // A partition was revoked meanwhile; its next owner re-reads those rows.
        tracing::debug!("offsets not stored: {e}");
    }
}

pub fn commit<C: Consumer<Rebalancing>>(consumer: &C, why: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!("committing offsets on {why} failed: {e}"),
    }
}

/// Pauses or resumes every assigned partition. Returns whether it took effect.
pub fn set_paused(consumer: &KafkaConsumer, topic: &str, pause: bool) -> bool {
    let mut tpl = TopicPartitionList::new();
    for partition in consumer.context().assignment() {
        tpl.add_partition(topic, partition);
    }
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match result {
        Ok(()) => {
            consumer.context().paused.store(pause, Relaxed);
            tracing::debug!(
                pause,
                "fetching {}",
                if pause { "paused" } else { "resumed" }
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                "could not {} partitions: {e}",
                if pause { "pause" } else { "resume" }
            );
            false
        }
    }
}
