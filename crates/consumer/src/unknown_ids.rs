//! Schema ids the registry did not know when a record named them, and since when. A registry
//! may learn a schema a moment after its first records arrive (a lagging follower, a schema
//! registered late, a registry being restored), so an unknown id is waited for, from the
//! first record that named it, before its records count as poison. Only the time is kept,
//! never the verdict: every record asks the registry again, so an id registered later is read
//! at once. At most [`CAPACITY`] ids are kept; past that the one unknown longest is forgotten
//! (its next record waits again), so a stream of made-up ids cannot grow the map.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct UnknownIds {
    wait: Duration,
    since: HashMap<u32, Instant>,
}

/// What to do with a record whose schema id the registry does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ask again later: the id has been unknown for less than the wait.
    Wait,
    /// The id has been unknown for the whole wait: the record is poison.
    GiveUp,
}

impl UnknownIds {
    pub fn new(wait: Duration) -> Self {
        UnknownIds {
            wait,
            since: HashMap::new(),
        }
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The registry answered at `now` that it does not know `id`.
    pub fn unknown(&mut self, id: u32, now: Instant) -> Verdict {
        if self.since.len() >= CAPACITY && !self.since.contains_key(&id) {
            if let Some(oldest) = self
                .since
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| *id)
            {
                self.since.remove(&oldest);
            }
        }
        let since = *self.since.entry(id).or_insert(now);
        if now.saturating_duration_since(since) < self.wait {
            Verdict::Wait
        } else {
            Verdict::GiveUp
        }
    }

    /// The registry knows `id` now.
    pub fn known(&mut self, id: u32) {
        self.since.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_id_is_waited_for_from_its_first_record_then_given_up() {
        let mut ids = UnknownIds::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(ids.unknown(23, t0), Verdict::Wait);
        // A later record of the same id waits only what is left of the id's wait.
        assert_eq!(ids.unknown(23, t0 + Duration::from_secs(29)), Verdict::Wait);
        assert_eq!(
            ids.unknown(23, t0 + Duration::from_secs(30)),
            Verdict::GiveUp
        );
        assert_eq!(ids.unknown(24, t0 + Duration::from_secs(30)), Verdict::Wait);
        // Registered: forgotten, so if it ever goes missing again it is waited for again.
        ids.known(23);
        assert_eq!(ids.unknown(23, t0 + Duration::from_secs(60)), Verdict::Wait);
    }

    #[test]
    fn no_wait_means_poison_at_once() {
        let mut ids = UnknownIds::new(Duration::ZERO);
        assert_eq!(ids.unknown(1, Instant::now()), Verdict::GiveUp);
    }

    #[test]
    fn made_up_ids_do_not_grow_the_map_past_its_capacity() {
        let mut ids = UnknownIds::new(Duration::from_secs(30));
        let t0 = Instant::now();
        for id in 0..(CAPACITY as u32 * 4) {
            ids.unknown(id, t0 + Duration::from_millis(id as u64));
        }
        assert_eq!(ids.since.len(), CAPACITY);
        // The oldest went first; the newest are still counted from their first record.
        assert!(!ids.since.contains_key(&0));
        assert!(ids.since.contains_key(&(CAPACITY as u32 * 4 - 1)));
    }
}
