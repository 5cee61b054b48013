//! Which offsets may be committed. Rows finish out of order (writes run
//! concurrently), so a partition's committable offset is the lowest one still
//! in flight, or one past the highest seen when nothing is in flight.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset handed out.
    next: i64,
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
    /// Threads in [`SharedTracker::wait_drained`]: only then is a finish worth a wake-up
    /// (a condvar's notify is a system call, and every row finishes).
    waiting: usize,
}

impl Tracker {
    pub fn begin(&mut self, partition: i32, offset: i64) {
        // The first offset seen is where this consumer started: nothing to report until past it.
        let p = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Partition {
                stored: offset,
                ..Partition::default()
            });
        p.in_flight.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// Marks `offset` done. Returns the partition's new committable offset (the
    /// next one to consume) when it moved forward.
    pub fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition)?;
        if !p.in_flight.remove(&offset) {
            return None;
        }
        let committable = p
            .in_flight
            .first()
            .copied()
            .unwrap_or(p.next)
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
    pub fn abandon(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            if p.in_flight.remove(&offset) {
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

    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }

    fn in_flight_of(&self, partitions: &[i32]) -> usize {
        partitions
            .iter()
            .filter_map(|p| self.partitions.get(p))
            .map(|p| p.in_flight.len())
            .sum()
    }

    /// Drops what is known of `partitions` (after they are revoked).
    pub fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.partitions.remove(p);
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
    pub fn begin(&self, partition: i32, offset: i64) {
        self.lock().begin(partition, offset);
    }

    /// Marks `offset` done. Returns how many records are still in flight.
    pub fn finish(&self, partition: i32, offset: i64) -> usize {
        let mut tracker = self.lock();
        tracker.finish(partition, offset);
        let left = tracker.in_flight();
        self.wake(tracker);
        left
    }

    /// Gives up on `offset` (see [`Tracker::abandon`]). Returns how many records are still
    /// in flight.
    pub fn abandon(&self, partition: i32, offset: i64) -> usize {
        let mut tracker = self.lock();
        tracker.abandon(partition, offset);
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

    #[test]
    fn out_of_order_completion_commits_only_the_contiguous_prefix() {
        let mut t = Tracker::default();
        for o in 10..14 {
            t.begin(0, o);
        }
        assert_eq!(t.finish(0, 12), None, "10 and 11 are still in flight");
        assert_eq!(t.finish(0, 10), Some(11));
        assert_eq!(t.finish(0, 13), None, "11 still in flight");
        assert_eq!(
            t.finish(0, 11),
            Some(14),
            "all done: resume after the highest"
        );
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn moved_offsets_are_reported_once() {
        let mut t = Tracker::default();
        t.begin(0, 1);
        t.begin(1, 9);
        t.finish(0, 1);
        assert_eq!(t.take_moved(), vec![(0, 2)]);
        assert_eq!(t.take_moved(), vec![]);
        t.finish(1, 9);
        assert_eq!(t.take_moved(), vec![(1, 10)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = Tracker::default();
        t.begin(0, 5);
        t.begin(1, 7);
        assert_eq!(t.finish(1, 7), Some(8));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finish(0, 5), Some(6));
    }

    #[test]
    fn unknown_or_repeated_finishes_change_nothing() {
        let mut t = Tracker::default();
        assert_eq!(t.finish(3, 1), None);
        t.begin(3, 1);
        assert_eq!(t.finish(3, 1), Some(2));
        assert_eq!(t.finish(3, 1), None);
    }

    #[test]
    fn forgotten_partitions_start_afresh() {
        let mut t = Tracker::default();
        t.begin(0, 100);
        t.forget(&[0]);
        assert_eq!(t.in_flight(), 0);
        t.begin(0, 50);
        assert_eq!(t.finish(0, 50), Some(51));
    }

    #[test]
    fn wait_drained_returns_when_the_last_record_finishes() {
        let shared = std::sync::Arc::new(SharedTracker::default());
        shared.begin(0, 1);
        let other = shared.clone();
        let started = Instant::now();
        // Whether the waiter blocks before or after the finish, it must see it
        // and return 0 long before its timeout: a missed wake-up would not.
        let waiter =
            std::thread::spawn(move || other.wait_drained(Some(&[0]), Duration::from_secs(10)));
        shared.finish(0, 1);
        assert_eq!(waiter.join().expect("join"), 0);
        assert!(started.elapsed() < Duration::from_secs(10));
        shared.begin(1, 1);
        assert_eq!(shared.wait_drained(None, Duration::from_millis(20)), 1);
    }

    #[test]
    fn an_abandoned_offset_is_never_passed_and_not_waited_for() {
        let mut t = Tracker::default();
        for o in 10..15 {
            t.begin(0, o);
        }
        assert_eq!(t.finish(0, 10), Some(11));
        t.abandon(0, 12);
        assert_eq!(t.finish(0, 11), Some(12));
        assert_eq!(t.finish(0, 13), None, "13 is past the abandoned 12");
        assert_eq!(t.finish(0, 14), None);
        assert_eq!(t.in_flight(), 0, "the abandoned record is not waited for");
        assert_eq!(t.take_moved(), vec![(0, 12)]);
    }
}
