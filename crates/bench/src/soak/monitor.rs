//! What the replicas deliver and cost while the soak runs: their /metrics scraped each
//! second, a line printed each minute (rows/s, published, p99 end to end, RSS, open files).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bed::Kafka;

use super::fleet::Fleet;
use crate::process;

/// The end-to-end histogram of the consumer (Kafka record timestamp -> row written).
const END_TO_END: &str = "consumer_end_to_end_latency_seconds";

/// Counters summed over the replicas since the start, across restarts: a restarted replica's
/// counters begin at 0 again, and a drop is read as that (Prometheus's `rate` does the same).
#[derive(Debug, Default, Clone)]
struct Totals {
    written: u64,
    /// Cumulative end-to-end buckets, +Inf last.
    buckets: Vec<u64>,
}

/// One replica's last scrape, raw.
#[derive(Debug, Default, Clone)]
struct Scrape {
    written: u64,
    buckets: Vec<u64>,
}

impl Totals {
    fn add(&mut self, before: &Scrape, now: &Scrape) {
        let restarted = now.written < before.written
            || now.buckets.last() < before.buckets.last()
            || now.buckets.len() != before.buckets.len();
        let base = if restarted {
            Scrape::default()
        } else {
            before.clone()
        };
        self.written += now.written.saturating_sub(base.written);
        self.buckets.resize(now.buckets.len(), 0);
        for (i, b) in now.buckets.iter().enumerate() {
            self.buckets[i] += b.saturating_sub(base.buckets.get(i).copied().unwrap_or(0));
        }
    }
}

/// One minute's figures.
#[derive(Debug, Clone)]
pub(super) struct Minute {
    pub(super) minute: u64,
    rows_per_s: f64,
    published: Option<i64>,
    p99: String,
    pub(super) rss_mib: Vec<Option<f64>>,
    pub(super) fds: Vec<Option<usize>>,
}

/// Scrapes every replica each second (so a restart loses at most a second of counts) and
/// prints a line each minute.
pub(super) struct Monitor {
    task: tokio::task::JoinHandle<()>,
    minutes: Arc<Mutex<Vec<Minute>>>,
}

impl Monitor {
    pub(super) fn start(fleet: &Fleet, kafka: Kafka, topic: &str, start: Instant) -> Monitor {
        let addrs: Vec<SocketAddr> = fleet.addrs();
        let pids = fleet.pids.clone();
        let minutes = Arc::new(Mutex::new(Vec::new()));
        let out = minutes.clone();
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default();
            let mut last = vec![Scrape::default(); addrs.len()];
            let mut totals = Totals::default();
            let mut at_minute = Totals::default();
            let mut bounds: Vec<String> = Vec::new();
            let mut minute = 1;
            loop {
                for (i, addr) in addrs.iter().enumerate() {
                    let body = bed::scrape(&client, addr).await;
                    if body.is_empty() {
                        continue; // down or restarting: counted at its next answer
                    }
                    let buckets = process::buckets(&body, END_TO_END);
                    if bounds.is_empty() {
                        bounds = buckets.iter().map(|b| b.0.clone()).collect();
                    }
                    let now = Scrape {
                        written: bed::sample_sum(&body, "consumer_rows_written_total"),
                        buckets: buckets.iter().map(|b| b.1).collect(),
                    };
                    totals.add(&last[i], &now);
                    last[i] = now;
                }
                if start.elapsed() >= Duration::from_secs(60 * minute) {
                    let published = kafka.end_offsets(&topic).await.ok().map(|o| o.iter().sum());
                    let m = Minute {
                        minute,
                        rows_per_s: (totals.written - at_minute.written) as f64 / 60.0,
                        published,
                        p99: p99(&bounds, &at_minute.buckets, &totals.buckets),
                        rss_mib: pids
                            .iter()
                            .map(|p| process::rss_mib(p.load(Relaxed)))
                            .collect(),
                        fds: pids
                            .iter()
                            .map(|p| process::open_fds(p.load(Relaxed)))
                            .collect(),
                    };
                    println!("soak: {}", minute_line(&m));
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                    at_minute = totals.clone();
                    minute += 1;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Monitor { task, minutes }
    }

    pub(super) fn stop(self) -> Vec<Minute> {
        self.task.abort();
        self.minutes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The p99 of the observations between two cumulative snapshots, as Prometheus's
/// `histogram_quantile` reads buckets: the upper bound of the bucket it falls in.
fn p99(bounds: &[String], before: &[u64], now: &[u64]) -> String {
    let delta: Vec<u64> = now
        .iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .collect();
    let Some(&total) = delta.last().filter(|t| **t > 0) else {
        return "-".into();
    };
    let i = delta
        .iter()
        .position(|&c| c as f64 >= 0.99 * total as f64)
        .unwrap_or(delta.len() - 1);
    match bounds.get(i).map(String::as_str) {
        Some("+Inf") | None => format!("> {} s", bounds.iter().rev().nth(1).map_or("?", |b| b)),
        Some(b) => {
            let ms = b.parse::<f64>().unwrap_or(f64::NAN) * 1000.0;
            format!("<= {ms:.0} ms")
        }
    }
}

fn minute_line(m: &Minute) -> String {
    let rss: Vec<String> = m
        .rss_mib
        .iter()
        .map(|r| r.map_or("-".into(), |r| format!("{r:.0}")))
        .collect();
    let fds: Vec<String> = m
        .fds
        .iter()
        .map(|f| f.map_or("-".into(), |f| f.to_string()))
        .collect();
    format!(
        "minute {:>3} | {:>6.1} rows/s | published {:>8} | p99 e2e {:>10} | RSS MiB {} | fds {}",
        m.minute,
        m.rows_per_s,
        m.published.map_or("?".into(), |p| p.to_string()),
        m.p99,
        rss.join("/"),
        fds.join("/")
    )
}

pub(super) fn print_table(minutes: &[Minute], replicas: usize) {
    println!("soak: figures (RSS and fds per replica 1..{replicas}):");
    for m in minutes {
        println!("soak:   {}", minute_line(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_survive_a_restarted_replica() {
        let mut t = Totals::default();
        let s1 = Scrape {
            written: 10,
            buckets: vec![5, 10],
        };
        t.add(&Scrape::default(), &s1);
        let s2 = Scrape {
            written: 15,
            buckets: vec![8, 15],
        };
        t.add(&s1, &s2);
        // Restarted: counters from 0 again; all of it is new.
        let s3 = Scrape {
            written: 4,
            buckets: vec![4, 4],
        };
        t.add(&s2, &s3);
        assert_eq!(t.written, 19);
        assert_eq!(t.buckets, vec![12, 19]);
    }

    #[test]
    fn p99_is_the_bound_of_the_bucket_it_falls_in() {
        let bounds: Vec<String> = ["0.01", "0.05", "+Inf"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(p99(&bounds, &[0, 0, 0], &[90, 100, 100]), "<= 50 ms");
        assert_eq!(p99(&bounds, &[90, 100, 100], &[190, 200, 200]), "<= 10 ms");
        assert_eq!(p99(&bounds, &[0, 0, 0], &[0, 0, 100]), "> 0.05 s");
        assert_eq!(p99(&bounds, &[5, 5, 5], &[5, 5, 5]), "-");
    }
}
