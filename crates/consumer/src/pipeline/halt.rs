//! The run's stop, on a fatal fault or a signal: the first fault is kept (later ones are its
//! echoes), and every room waiting on something (the poll loop, a retry's backoff) is told at
//! once: a stop does not wait out retries.

use std::sync::OnceLock;

use common::fault::Fault;
use tokio::sync::watch;

#[derive(Debug)]
pub struct Halt {
    fatal: OnceLock<Fault>,
    stopping: watch::Sender<bool>,
}

impl Default for Halt {
    fn default() -> Self {
        Halt {
            fatal: OnceLock::new(),
            stopping: watch::channel(false).0,
        }
    }
}

impl Halt {
    /// Stops the run for `fault` (the first one wins).
    pub fn raise(&self, fault: Fault) {
        if self.fatal.set(fault).is_ok() {
            if let Some(f) = self.fatal.get() {
                tracing::error!(kind = f.kind, "fatal: {}; stopping", f.message);
            }
        }
        self.stopping.send_replace(true);
    }

    /// Stops the run without a fault (a signal): rows being written finish, rows waiting to
    /// be retried are given up (they are re-delivered after a restart).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether the run is stopping, for a fault or a signal.
    pub fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The fault the run stops for, once one was raised.
    pub fn fault(&self) -> Option<&Fault> {
        self.fatal.get()
    }

    /// Resolves once the run is stopping (at once if it is).
    pub async fn raised(&self) {
        // The sender lives as long as `self`: the wait cannot fail while we hold it.
        let _ = self.watch().wait_for(|stop| *stop).await;
    }

    /// A receiver of the stop signal, for a loop that waits on it every iteration: made
    /// once, rather than a subscription per record.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_fault_wins_and_wakes_the_waiters() {
        let halt = std::sync::Arc::new(Halt::default());
        let waiter = tokio::spawn({
            let halt = halt.clone();
            async move { halt.raised().await }
        });
        halt.raise(Fault::fatal("cassandra", "first"));
        halt.raise(Fault::fatal("kafka", "echo"));
        waiter.await.expect("the waiter returns");
        assert_eq!(halt.fault().map(|f| f.message.as_str()), Some("first"));
        halt.raised().await;
    }
}
