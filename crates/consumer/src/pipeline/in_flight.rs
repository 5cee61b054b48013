//! The write slots: which records are in flight (and so which offsets may be committed), when
//! the last one finished, and when a full poll loop may take records again. Shared by the poll
//! loop (takes a slot), the writer (frees it) and the rebalance callback (waits for them).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::offsets::SharedTracker;
pub use crate::offsets::{Slot, Unwritten};

/// With every write slot taken and none finishing for this long, fetching is
/// paused (and polling goes on) until half the slots are free again.
const STALLED: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct InFlight {
    offsets: SharedTracker,
    max: usize,
    /// With every slot taken, the poll loop takes records again once in flight drops to
    /// this, an eighth of the slots below the limit: woken for every finished row, it and
    /// the writer traded a wake-up (often a sleeping thread's) per record when catching up.
    room_again: usize,
    /// Signalled when a record is done and at most `room_again` are left in flight.
    finished: Notify,
    /// When a record last finished, in ms since `epoch`: an atomic, as every row sets it.
    finished_ms: AtomicU64,
    epoch: Instant,
    /// Signalled when partitions are revoked or lost: their records' retries stop.
    revoked: Notify,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        InFlight {
            offsets: SharedTracker::default(),
            max,
            room_again: max.saturating_sub((max / 8).max(1)),
            finished: Notify::new(),
            finished_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            revoked: Notify::new(),
        }
    }

    /// A record taken (produced at `produced_ms`, its Kafka timestamp): it holds a slot, and
    /// its offset is not committable until it is finished.
    pub fn begin(&self, partition: i32, offset: i64, produced_ms: i64) -> Slot {
        self.offsets.begin(partition, offset, produced_ms)
    }

    /// Per partition, the oldest record not yet written (for the lag in seconds).
    pub fn unwritten(&self) -> std::collections::BTreeMap<i32, Unwritten> {
        self.offsets.unwritten()
    }

    /// A record written or dead-lettered: its slot is free, its offset committable.
    pub fn finish(&self, slot: Slot) {
        let left = self.offsets.finish(slot);
        self.freed(left);
    }

    /// A record given up on (a fatal fault, a stop, its partition revoked): its slot is
    /// free, and its offset is never committed by this run.
    pub fn abandon(&self, slot: Slot) {
        let left = self.offsets.abandon(slot);
        self.freed(left);
    }

    /// Whether the slot's partition is still ours as when the record was taken. A record
    /// of a partition revoked or lost since is re-delivered to the next owner: retrying it
    /// here only holds memory.
    pub fn is_current(&self, slot: Slot) -> bool {
        self.offsets.is_current(slot)
    }

    /// Resolves at the next revoke or lost assignment (enable it before checking
    /// [`InFlight::is_current`], so that none is missed in between).
    pub fn revoked(&self) -> Notified<'_> {
        self.revoked.notified()
    }

    fn freed(&self, left: usize) {
        self.finished_ms
            .store(self.epoch.elapsed().as_millis() as u64, Relaxed);
        if left <= self.room_again {
            self.finished.notify_one();
        }
    }

    pub fn count(&self) -> usize {
        self.offsets.in_flight()
    }

    /// Whether the poll loop must wait for room: every slot taken, or (`was_full`) not yet
    /// down to `room_again`.
    pub fn is_full(&self, was_full: bool) -> bool {
        let n = self.count();
        n >= self.max || (was_full && n > self.room_again)
    }

    /// Resolves once a record finished with room again (see [`InFlight::is_full`]).
    pub async fn room(&self) {
        self.finished.notified().await
    }

    /// Every slot taken and none freed for a while: the writes are stalled (Cassandra slow
    /// or gone), and fetching should pause.
    pub fn stalled(&self) -> bool {
        let since_finished = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.finished_ms.load(Relaxed)));
        self.count() >= self.max && since_finished > STALLED
    }

    /// Half the slots free again: fetching may resume.
    pub fn may_resume(&self) -> bool {
        self.count() <= self.max / 2
    }

    /// Partitions whose committable offset moved since the last call, with that offset.
    pub fn take_moved(&self) -> Vec<(i32, i64)> {
        self.offsets.take_moved()
    }

    /// Blocks until nothing of `partitions` (all, if `None`) is in flight, or `timeout`
    /// passes. Returns how many records were still in flight.
    pub fn wait_drained(&self, partitions: Option<&[i32]>, timeout: Duration) -> usize {
        self.offsets.wait_drained(partitions, timeout)
    }

    /// Drops what is known of `partitions` (after they are revoked or lost). Their records
    /// still in flight stay counted until the writer lets them go, which it does at their
    /// next retry: woken now.
    pub fn forget(&self, partitions: &[i32]) {
        self.offsets.forget(partitions);
        self.revoked.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_until_an_eighth_of_the_slots_is_free_again() {
        let slots = InFlight::new(16);
        let taken: Vec<Slot> = (0..16).map(|offset| slots.begin(0, offset, 0)).collect();
        assert!(slots.is_full(false));
        slots.finish(taken[0]);
        assert!(!slots.is_full(false), "a slot is free");
        assert!(slots.is_full(true), "but not yet room again");
        slots.finish(taken[1]);
        assert!(!slots.is_full(true), "two of 16 free: room again");
    }

    #[test]
    fn resumes_at_half_and_an_abandoned_record_frees_its_slot() {
        let slots = InFlight::new(4);
        let taken: Vec<Slot> = (0..4).map(|offset| slots.begin(3, offset, 0)).collect();
        assert!(!slots.may_resume());
        slots.abandon(taken[0]);
        slots.finish(taken[1]);
        assert!(slots.may_resume());
        slots.finish(taken[2]);
        slots.finish(taken[3]);
        assert_eq!(slots.count(), 0);
        assert_eq!(
            slots.take_moved(),
            vec![],
            "nothing passes the abandoned offset 0"
        );
    }

    #[test]
    fn a_revoke_keeps_its_records_counted_until_the_writer_lets_them_go() {
        let slots = InFlight::new(2);
        let taken: Vec<Slot> = (0..2).map(|offset| slots.begin(0, offset, 0)).collect();
        slots.forget(&[0]);
        assert!(
            slots.is_full(false),
            "the revoked records still hold their slots"
        );
        assert!(!slots.is_current(taken[0]));
        slots.abandon(taken[0]);
        slots.abandon(taken[1]);
        assert_eq!(slots.count(), 0);
    }
}
