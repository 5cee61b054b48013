//! Retry storms, summarised: when a dependency fails for every row in flight, one
//! WARN line per row floods the log (hundreds a minute) and hides everything else.
//! The first failure of a quiet dependency is logged at once, with its message; the
//! ones after it are counted and logged as one line per dependency per interval.
//! Every occurrence is still logged at debug level, and the counters in `/metrics`
//! are not touched here.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a dependency that keeps failing gets a summary line.
pub const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    opened: Instant,
    /// Occurrences not yet reported in a line.
    count: u64,
    last: String,
}

/// Per-dependency windows of warnings.
#[derive(Debug)]
pub struct Storm {
    interval: Duration,
    windows: Mutex<BTreeMap<&'static str, Window>>,
}

/// What to log now, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The first warning of a quiet dependency: log it as it is.
    First(String),
    /// `count` warnings since the last line, over `seconds`, the last of them `last`.
    Summary {
        count: u64,
        seconds: u64,
        last: String,
    },
}

impl Storm {
    pub fn new(interval: Duration) -> Storm {
        Storm {
            interval,
            windows: Mutex::new(BTreeMap::new()),
        }
    }

    /// The process's storm, shared by every client of every dependency.
    pub fn global() -> &'static Storm {
        static GLOBAL: OnceLock<Storm> = OnceLock::new();
        GLOBAL.get_or_init(|| Storm::new(INTERVAL))
    }

    /// Logs a warning about `dependency`: at once if it was quiet, else summarised.
    pub fn warn(&self, dependency: &'static str, message: &str) {
        tracing::debug!(dependency, "{message}");
        if let Some(line) = self.note(dependency, message, Instant::now()) {
            emit(dependency, &line);
        }
    }

    /// Logs the summaries whose interval is over (call it every second or so, so a
    /// storm's last count is not held back until the next warning).
    pub fn flush(&self) {
        for (dependency, line) in self.due(Instant::now()) {
            emit(dependency, &line);
        }
    }

    fn note(&self, dependency: &'static str, message: &str, now: Instant) -> Option<Line> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get_mut(dependency) {
            None => {
                windows.insert(
                    dependency,
                    Window {
                        opened: now,
                        count: 0,
                        last: String::new(),
                    },
                );
                Some(Line::First(message.to_string()))
            }
            Some(window) => {
                window.count += 1;
                window.last.clear();
                window.last.push_str(message);
                self.close(window, now)
            }
        }
    }

    fn due(&self, now: Instant) -> Vec<(&'static str, Line)> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = Vec::new();
        // A window that stayed empty for a whole interval ends the storm: the next
        // warning is a first one again.
        windows.retain(|dependency, window| {
            if let Some(line) = self.close(window, now) {
                lines.push((*dependency, line));
                true
            } else {
                now.duration_since(window.opened) < self.interval
            }
        });
        lines
    }

    /// The window's summary if its interval is over and it holds warnings; it reopens.
    fn close(&self, window: &mut Window, now: Instant) -> Option<Line> {
        let open_for = now.duration_since(window.opened);
        if open_for < self.interval || window.count == 0 {
            return None;
        }
        let line = Line::Summary {
            count: window.count,
            seconds: open_for.as_secs(),
            last: std::mem::take(&mut window.last),
        };
        window.opened = now;
        window.count = 0;
        Some(line)
    }
}

fn emit(dependency: &'static str, line: &Line) {
    match line {
        Line::First(message) => tracing::warn!(
            dependency,
            "{message} (more of these are summarised every {}s)",
            INTERVAL.as_secs()
        ),
        Line::Summary {
            count,
            seconds,
            last,
        } => tracing::warn!(
            dependency,
            count,
            "{count} more in the last {seconds}s; the last: {last}"
        ),
    }
}

/// Flushes the global storm every second, for as long as the runtime runs.
pub fn spawn_flusher() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            Storm::global().flush();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_one_line_then_one_per_interval() {
        let storm = Storm::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(
            storm.note("cassandra", "timeout 1", t0),
            Some(Line::First("timeout 1".into()))
        );
        for i in 2..=500 {
            let at = t0 + Duration::from_millis(i * 10);
            assert_eq!(storm.note("cassandra", &format!("timeout {i}"), at), None);
        }
        // Another dependency has its own window.
        assert!(matches!(
            storm.note("kafka", "broker down", t0),
            Some(Line::First(_))
        ));
        assert_eq!(storm.due(t0 + Duration::from_secs(9)), vec![]);
        assert_eq!(
            storm.due(t0 + Duration::from_secs(10)),
            vec![(
                "cassandra",
                Line::Summary {
                    count: 499,
                    seconds: 10,
                    last: "timeout 500".into()
                }
            )]
        );
    }

    #[test]
    fn a_quiet_interval_ends_the_storm() {
        let storm = Storm::new(Duration::from_secs(10));
        let t0 = Instant::now();
        storm.note("registry", "503", t0);
        assert_eq!(storm.due(t0 + Duration::from_secs(11)), vec![]);
        assert_eq!(
            storm.note("registry", "503 again", t0 + Duration::from_secs(12)),
            Some(Line::First("503 again".into()))
        );
    }
}
