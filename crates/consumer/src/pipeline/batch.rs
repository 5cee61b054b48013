//! Rows written together: what the poll loop hands the writer at once is grouped by the
//! nodes that own each row (its replica set) into unlogged batches, so that those nodes get
//! one request for several rows instead of one each (the driver sends a batch to a replica
//! of its first row). Nothing waits for a batch to fill: a batch is whatever is ready now,
//! so a row arriving alone is written alone, at once.
//!
//! A batch keeps every guarantee of a row: each of its records holds its slot until the
//! batch is written; a batch that fails transiently is retried as a whole (its rows are
//! idempotent); and when Cassandra refuses it, or a partition of its rows moves, its rows
//! go on one by one, each with its own verdict, so a poison row is dead-lettered by itself.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use common::fault::Class;
use domain::row::TimedRow;

use super::in_flight::Slot;
use super::work::Work;
use super::writer::{since_produced, GaveUp, Writer};

/// How many rows, and how many bytes of them, a batch holds at most. `max_rows` 1: no
/// batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// What the writer does with records that arrived together.
// A job lives only until the writer starts it: boxing the record would cost an allocation
// per record for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Job {
    /// One record: decoded already or not, written, dead-lettered or given up alone.
    One(Slot, Work),
    /// Rows that share their replicas, written in one batch.
    Batch(Vec<(Slot, Work)>),
}

/// Groups `taken` into jobs: decoded rows with the same `replicas` into batches within the
/// limits, everything else (a record still to decode, a row alone in its group) on its own.
pub fn jobs<K: Eq + Hash>(
    taken: impl Iterator<Item = (Slot, Work)>,
    limits: &Batching,
    replicas: impl Fn(&TimedRow) -> K,
) -> Vec<Job> {
    group(taken, limits, |(_, work)| work.row.as_ref(), replicas)
        .into_iter()
        .map(job)
        .collect()
}

/// Groups `items` for writing: those with a row (`row_of`) and the same `replicas`, within the
/// limits and in arrival order; every other item alone. The writer's jobs, and the bench's
/// bare batching loop, which must batch exactly as the writer does.
pub fn group<T, K: Eq + Hash>(
    items: impl IntoIterator<Item = T>,
    limits: &Batching,
    row_of: impl Fn(&T) -> Option<&TimedRow>,
    replicas: impl Fn(&TimedRow) -> K,
) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut groups: HashMap<K, (Vec<T>, usize)> = HashMap::new();
    for item in items {
        let Some(row) = row_of(&item).filter(|_| limits.max_rows > 1) else {
            out.push(vec![item]);
            continue;
        };
        let bytes = row.row.size();
        let (group, group_bytes) = groups.entry(replicas(row)).or_default();
        if !group.is_empty()
            && (group.len() >= limits.max_rows || *group_bytes + bytes > limits.max_bytes)
        {
            out.push(std::mem::take(group));
            *group_bytes = 0;
        }
        group.push(item);
        *group_bytes += bytes;
    }
    out.extend(groups.into_values().map(|(group, _)| group));
    out
}

fn job(mut group: Vec<(Slot, Work)>) -> Job {
    if group.len() == 1 {
        let (slot, work) = group.pop().expect("one");
        Job::One(slot, work)
    } else {
        Job::Batch(group)
    }
}

impl Writer {
    /// Writes `items` (decoded rows) in one batch, retrying it while it fails transiently;
    /// frees their slots once it is written. Refused, or once a partition of its rows is no
    /// longer ours, its rows go on one by one.
    pub(super) async fn process_batch(&self, items: Vec<(Slot, Work)>) {
        let mut backoff = self.backoff.clone();
        let slots: Vec<Slot> = items.iter().map(|(slot, _)| *slot).collect();
        loop {
            let rows: Vec<&TimedRow> = items.iter().filter_map(|(_, w)| w.row.as_ref()).collect();
            let begun = Instant::now();
            let fault = match Box::pin(self.sink.write_batch(&rows)).await {
                Ok(()) => {
                    self.metrics.write_request();
                    let took = begun.elapsed();
                    for (row, slot) in rows.iter().zip(&slots) {
                        self.metrics.written(took, since_produced(row));
                        self.in_flight.finish(*slot);
                    }
                    return;
                }
                // A refusal (poison, fatal, or one that may pass): each row finds out alone.
                Err(f) if f.class != Class::Retry || f.lasting.is_some() => {
                    tracing::warn!(
                        "Cassandra refused a batch of {} rows ({}): writing them one by one, \
                         so that only a row it refuses is dead-lettered",
                        rows.len(),
                        f.message
                    );
                    break;
                }
                Err(f) => f,
            };
            let current = || slots.iter().all(|s| self.in_flight.is_current(*s));
            match self
                .wait_to_retry("cassandra", &mut backoff, &fault, current)
                .await
            {
                Ok(()) => {}
                Err(GaveUp::Fatal(fault)) => {
                    slots.iter().for_each(|s| self.in_flight.abandon(*s));
                    self.halt.raise(fault);
                    return;
                }
                Err(GaveUp::Dropped) if self.halt.stopping() => {
                    slots.iter().for_each(|s| self.in_flight.abandon(*s));
                    return;
                }
                // A partition moved: its rows are let go, the others written alone.
                Err(GaveUp::Dropped) => break,
            }
        }
        let alone = items
            .into_iter()
            .map(|(slot, work)| self.process(slot, work));
        futures::future::join_all(alone).await;
    }
}

#[cfg(test)]
mod tests;
