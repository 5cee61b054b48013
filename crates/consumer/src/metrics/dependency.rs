//! Whether a dependency answers its probe, as /healthz and `consumer_dependency_up` say.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

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
