//! Which offsets may be committed. Rows finish out of order (writes run
//! concurrently), so a partition's committable offset is the lowest one still
//! in flight, or one past the highest seen when nothing is in flight.
//!
//! A record is held as a [`Slot`]: its partition, offset and the partition's generation (one
//! per assignment). When a partition is revoked or lost, its records still in flight become
//! orphans: no longer waited for nor committed, but still counted (they hold memory and a
//! write until the writer lets them go), so a rebalance cannot admit another window of records
//! on top of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One record in flight. Its generation tells a record of the current assignment of its
/// partition from one taken under an earlier assignment (revoked or lost since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub partition: i32,
    pub offset: i64,
    generation: u64,
}

#[cfg(test)]
impl Slot {
    /// A slot of the first assignment, for tests of what holds slots.
    pub fn of(partition: i32, offset: i64) -> Slot {
        Slot {
            partition,
            offset,
            generation: 0,
        }
    }
}

/// A partition's oldest record not yet written to Cassandra, as far as this consumer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwritten {
    /// In flight: its Kafka timestamp (ms), exact.
    InFlight(i64),
    /// Not fetched yet, if there is one: it comes after the newest record taken, of this
    /// Kafka timestamp (ms), which is the best known bound (an over-estimate of its age).
    AfterNewest(i64),
}

#[derive(Debug, Default)]
struct Partition {
    generation: u64,
    /// Offset -> the record's Kafka timestamp (ms), for the lag in seconds.
    in_flight: BTreeMap<i64, i64>,
    /// One past the highest offset handed out.
    next: i64,
    /// The Kafka timestamp (ms) of the record at `next - 1`.
    newest_ms: i64,
    /// Last offset reported as committable.
    stored: i64,
    /// `stored` moved since the last [`Tracker::take_moved`].
    moved: bool,
    /// Lowest offset given up on without being done (a fatal error stopped
    /// its work): nothing at or past it may be committed by this process.
    abandoned: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Tracker {
    partitions: HashMap<i32, Partition>,
    /// Records of revoked or lost partitions that the writer still holds.
    orphans: usize,
    /// The generation the next newly tracked partition gets.
    generations: u64,
    /// Threads in [`SharedTracker::wait_drained`]: only then is a finish worth a wake-up
    /// (a condvar's notify is a system call, and every row finishes).
    waiting: usize,
}

impl Tracker {
    /// A record taken, produced at `produced_ms` (its Kafka timestamp).
    pub fn begin(&mut self, partition: i32, offset: i64, produced_ms: i64) -> Slot {
        // The first offset seen is where this consumer started: nothing to report until past it.
        let generations = &mut self.generations;
        let p = self.partitions.entry(partition).or_insert_with(|| {
            *generations += 1;
            Partition {
                generation: *generations,
                stored: offset,
                ..Partition::default()
            }
        });
        p.in_flight.insert(offset, produced_ms);
        if offset >= p.next {
            (p.next, p.newest_ms) = (offset + 1, produced_ms);
        }
        Slot {
            partition,
            offset,
            generation: p.generation,
        }
    }

    /// The slot's partition as tracked now, if the slot is of its current assignment;
    /// otherwise the slot is an orphan's, which is released.
    fn current(&mut self, slot: Slot) -> Option<&mut Partition> {
        match self.partitions.get_mut(&slot.partition) {
            Some(p) if p.generation == slot.generation => Some(p),
            _ => {
                self.orphans = self.orphans.saturating_sub(1);
                None
            }
        }
    }

    /// Whether `slot` is of its partition's current assignment (not revoked or lost since).
    pub fn is_current(&self, slot: Slot) -> bool {
        self.partitions.get(&slot.partition).is_some_and(|p| {
            p.generation == slot.generation && p.in_flight.contains_key(&slot.offset)
        })
    }

    /// Marks the slot's record done. Returns the partition's new committable offset (the
    /// next one to consume) when it moved forward.
    pub fn finish(&mut self, slot: Slot) -> Option<i64> {
        let offset = slot.offset;
        let p = self.current(slot)?;
        p.in_flight.remove(&offset)?;
        let committable = p
            .in_flight
            .first_key_value()
            .map_or(p.next, |(offset, _)| *offset)
            .min(p.abandoned.unwrap_or(i64::MAX));
        (committable > p.stored).then(|| {
            p.stored = committable;
            p.moved = true;
            committable
        })
    }

    /// Gives up on `offset` without it being done: it no longer counts as in
    /// flight (so draining does not wait for it), and the partition's
    /// committable offset never passes it, so it is read again after a restart.
    pub fn abandon(&mut self, slot: Slot) {
        let offset = slot.offset;
        if let Some(p) = self.current(slot) {
            if p.in_flight.remove(&offset).is_some() {
                p.abandoned = Some(p.abandoned.map_or(offset, |a| a.min(offset)));
            }
        }
    }

    /// Partitions whose committable offset moved since the last call, with
    /// that offset; for storing them in one call to the Kafka client.
    pub fn take_moved(&mut self) -> Vec<(i32, i64)> {
        let mut moved = Vec::new();
        for (partition, p) in &mut self.partitions {
            if std::mem::take(&mut p.moved) {
                moved.push((*partition, p.stored));
            }
        }
        moved
    }

    /// Per partition of the current assignment that has taken a record: the Kafka timestamp
    /// (ms) of the oldest record not yet done, or `None` when every record taken is done.
    pub fn unwritten(&self) -> BTreeMap<i32, Unwritten> {
        self.partitions
            .iter()
            .map(|(partition, p)| {
                let oldest = match p.in_flight.first_key_value() {
                    Some((_, produced_ms)) => Unwritten::InFlight(*produced_ms),
                    None => Unwritten::AfterNewest(p.newest_ms),
                };
                (*partition, oldest)
            })
            .collect()
    }

    /// Every record held, orphans included.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.in_flight.len())
            .sum::<usize>()
            + self.orphans
    }

    fn in_flight_of(&self, partitions: &[i32]) -> usize {
        partitions
            .iter()
            .filter_map(|p| self.partitions.get(p))
            .map(|p| p.in_flight.len())
            .sum()
    }

    /// Drops what is known of `partitions` (after they are revoked or lost): their records
    /// still in flight become orphans, counted until the writer lets them go.
    pub fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            if let Some(p) = self.partitions.remove(p) {
                self.orphans += p.in_flight.len();
            }
        }
    }
}

/// [`Tracker`] shared between the poll loop, the write tasks and the
/// rebalance callback, which waits on it.
#[derive(Debug, Default)]
pub struct SharedTracker {
    tracker: Mutex<Tracker>,
    changed: Condvar,
}

impl SharedTracker {
    pub fn begin(&self, partition: i32, offset: i64, produced_ms: i64) -> Slot {
        self.lock().begin(partition, offset, produced_ms)
    }

    pub fn unwritten(&self) -> BTreeMap<i32, Unwritten> {
        self.lock().unwritten()
    }

    pub fn is_current(&self, slot: Slot) -> bool {
        self.lock().is_current(slot)
    }

    /// Marks the slot's record done. Returns how many records are still in flight.
    pub fn finish(&self, slot: Slot) -> usize {
        let mut tracker = self.lock();
        tracker.finish(slot);
        let left = tracker.in_flight();
        self.wake(tracker);
        left
    }

    /// Gives up on `offset` (see [`Tracker::abandon`]). Returns how many records are still
    /// in flight.
    pub fn abandon(&self, slot: Slot) -> usize {
        let mut tracker = self.lock();
        tracker.abandon(slot);
        let left = tracker.in_flight();
        self.wake(tracker);
        left
    }

    /// Wakes the waiters, if any, after a change made under `tracker`'s lock (a waiter counts
    /// itself under the same lock, so none can be missed).
    fn wake(&self, tracker: std::sync::MutexGuard<'_, Tracker>) {
        let waiting = tracker.waiting > 0;
        drop(tracker);
        if waiting {
            self.changed.notify_all();
        }
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight()
    }

    pub fn take_moved(&self) -> Vec<(i32, i64)> {
        self.lock().take_moved()
    }

    pub fn forget(&self, partitions: &[i32]) {
        self.lock().forget(partitions);
    }

    /// Blocks until nothing of `partitions` (all, if `None`) is in flight, or
    /// `timeout` passes. Returns how many records were still in flight.
    pub fn wait_drained(&self, partitions: Option<&[i32]>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        guard.waiting += 1;
        let left = loop {
            let left = match partitions {
                Some(ps) => guard.in_flight_of(ps),
                None => guard.in_flight(),
            };
            let now = Instant::now();
            if left == 0 || now >= deadline {
                break left;
            }
            guard = self
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        guard.waiting -= 1;
        left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracker> {
        // A panic elsewhere must not stop offset bookkeeping; the data is still consistent.
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Begins `offsets` of `partition`, returning their slots.
    fn begin(t: &mut Tracker, partition: i32, offsets: std::ops::Range<i64>) -> Vec<Slot> {
        offsets.map(|o| t.begin(partition, o, o * 1000)).collect()
    }

    #[test]
    fn out_of_order_completion_commits_only_the_contiguous_prefix() {
        let mut t = Tracker::default();
        let s = begin(&mut t, 0, 10..14);
        assert_eq!(t.finish(s[2]), None, "10 and 11 are still in flight");
        assert_eq!(t.finish(s[0]), Some(11));
        assert_eq!(t.finish(s[3]), None, "11 still in flight");
        assert_eq!(
            t.finish(s[1]),
            Some(14),
            "all done: resume after the highest"
        );
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn moved_offsets_are_reported_once() {
        let mut t = Tracker::default();
        let a = t.begin(0, 1, 0);
        let b = t.begin(1, 9, 0);
        t.finish(a);
        assert_eq!(t.take_moved(), vec![(0, 2)]);
        assert_eq!(t.take_moved(), vec![]);
        t.finish(b);
        assert_eq!(t.take_moved(), vec![(1, 10)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = Tracker::default();
        let a = t.begin(0, 5, 0);
        let b = t.begin(1, 7, 0);
        assert_eq!(t.finish(b), Some(8));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finish(a), Some(6));
    }

    #[test]
    fn repeated_finishes_change_nothing() {
        let mut t = Tracker::default();
        let a = t.begin(3, 1, 0);
        assert_eq!(t.finish(a), Some(2));
        assert_eq!(t.finish(a), None);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn records_of_a_revoked_partition_are_counted_until_let_go_and_never_committed() {
        let mut t = Tracker::default();
        let old = begin(&mut t, 0, 100..103);
        t.forget(&[0]);
        assert_eq!(t.in_flight(), 3, "the writer still holds them");
        assert!(!t.is_current(old[0]));

        // Assigned again: the same offsets are new records of a new generation.
        let new = t.begin(0, 100, 0);
        assert!(t.is_current(new) && !t.is_current(old[0]));
        assert_eq!(t.in_flight(), 4);
        assert_eq!(t.finish(old[0]), None, "an orphan's finish commits nothing");
        t.abandon(old[1]);
        assert_eq!(t.in_flight(), 2);
        assert_eq!(
            t.finish(new),
            Some(101),
            "the new record is still in flight till now"
        );
        t.finish(old[2]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn wait_drained_returns_when_the_last_record_finishes() {
        let shared = std::sync::Arc::new(SharedTracker::default());
        let slot = shared.begin(0, 1, 0);
        let other = shared.clone();
        let started = Instant::now();
        // Whether the waiter blocks before or after the finish, it must see it
        // and return 0 long before its timeout: a missed wake-up would not.
        let waiter =
            std::thread::spawn(move || other.wait_drained(Some(&[0]), Duration::from_secs(10)));
        shared.finish(slot);
        assert_eq!(waiter.join().expect("join"), 0);
        assert!(started.elapsed() < Duration::from_secs(10));
        shared.begin(1, 1, 0);
        assert_eq!(shared.wait_drained(None, Duration::from_millis(20)), 1);
    }

    #[test]
    fn an_abandoned_offset_is_never_passed_and_not_waited_for() {
        let mut t = Tracker::default();
        let s = begin(&mut t, 0, 10..15);
        assert_eq!(t.finish(s[0]), Some(11));
        t.abandon(s[2]);
        assert_eq!(t.finish(s[1]), Some(12));
        assert_eq!(t.finish(s[3]), None, "13 is past the abandoned 12");
        assert_eq!(t.finish(s[4]), None);
        assert_eq!(t.in_flight(), 0, "the abandoned record is not waited for");
        assert_eq!(t.take_moved(), vec![(0, 12)]);
    }

    /// The lag in seconds reads these: the oldest record in flight, else the newest taken.
    #[test]
    fn unwritten_is_the_oldest_in_flight_then_the_newest_taken() {
        let mut t = Tracker::default();
        // Produced at offset * 1000 ms.
        let s = begin(&mut t, 0, 10..13);
        t.begin(1, 4, 4_000);
        assert_eq!(
            t.unwritten(),
            [
                (0, Unwritten::InFlight(10_000)),
                (1, Unwritten::InFlight(4_000))
            ]
            .into()
        );
        t.finish(s[0]);
        assert_eq!(t.unwritten()[&0], Unwritten::InFlight(11_000));
        // Out of order: the oldest still in flight counts, not the last finished.
        t.finish(s[2]);
        assert_eq!(t.unwritten()[&0], Unwritten::InFlight(11_000));
        t.finish(s[1]);
        assert_eq!(t.unwritten()[&0], Unwritten::AfterNewest(12_000));
        t.forget(&[1]);
        assert!(
            !t.unwritten().contains_key(&1),
            "revoked: not ours to report"
        );
    }
}
