//! What a run did: a progress line every `--progress-interval`, and the summary at its end.

use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// What a run did, for the summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub consumed: u64,
    pub written: u64,
    pub dead_lettered: u64,
    /// Poison the DLQ refused for good: skipped (its offset moved on), see the error log.
    pub dead_letters_refused: u64,
    pub retried: u64,
    pub seconds: f64,
}

impl Summary {
    pub fn of(metrics: &Metrics, started: Instant) -> Summary {
        let counts = metrics.counts();
        Summary {
            consumed: counts.consumed,
            written: counts.written,
            dead_lettered: counts.dead_lettered,
            dead_letters_refused: counts.dead_letters_refused,
            retried: counts.retries,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "consumed={} written={} dead_lettered={} dead_letters_refused={} retried={} \
             seconds={:.1} rows_per_s={:.0}",
            self.consumed,
            self.written,
            self.dead_lettered,
            self.dead_letters_refused,
            self.retried,
            self.seconds,
            self.written as f64 / self.seconds.max(1e-9)
        )
    }
}

#[derive(Debug)]
pub struct Progress {
    every: Duration,
    last: Instant,
    last_written: u64,
}

impl Progress {
    pub fn new(every: Duration) -> Self {
        Progress {
            every,
            last: Instant::now(),
            last_written: 0,
        }
    }

    pub fn maybe_log(
        &mut self,
        metrics: &Metrics,
        in_flight: usize,
        partitions: impl FnOnce() -> Vec<i32>,
    ) {
        if self.last.elapsed() < self.every {
            return;
        }
        let counts = metrics.counts();
        let written = counts.written;
        let rate = (written - self.last_written) as f64 / self.last.elapsed().as_secs_f64();
        (self.last, self.last_written) = (Instant::now(), written);
        tracing::info!(
            consumed = counts.consumed,
            written,
            dead_lettered = counts.dead_lettered,
            retries = counts.retries,
            in_flight,
            lag = counts.lag,
            rows_per_s = rate.round(),
            partitions = ?partitions(),
            "progress"
        );
    }
}
