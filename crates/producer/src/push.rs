//! A run's outcome, pushed to a Prometheus Pushgateway when it ends.
//!
//! A producer run is a batch job: it ends before Prometheus would scrape it, which is
//! the case the Pushgateway exists for. The group is the job alone (`/metrics/job/producer`),
//! so the Pushgateway holds the last run; Prometheus keeps the history. A successful run
//! replaces the group (PUT); a failed one only overwrites the metrics it sends (POST), so
//! the last success's timestamp survives it and an alert can say how long ago that was.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::run::{RunError, Summary};

/// Pushes the outcome of a run. Never fails the run: the users are in Kafka or not
/// whatever the Pushgateway says, so a push that fails is one warning.
pub async fn outcome(url: &reqwest::Url, result: &anyhow::Result<Summary>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let body = render(result, now);
    let target = match url.join("metrics/job/producer") {
        Ok(target) => target,
        Err(e) => {
            tracing::warn!("not pushing the run's metrics: {e} (check PRODUCER_PUSHGATEWAY_URL)");
            return;
        }
    };
    let client = reqwest::Client::new();
    let request = if result.is_ok() {
        client.put(target)
    } else {
        client.post(target)
    };
    let answer = request
        .timeout(Duration::from_secs(5))
        .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let at = shown(url);
    match answer {
        Ok(_) => tracing::info!(pushgateway = %at, "run's metrics pushed"),
        // The error names the status or the connection failure; without the URL's userinfo.
        Err(e) => tracing::warn!(
            "could not push the run's metrics to the Pushgateway at {at}: {}; the run's outcome \
             is unchanged (check PRODUCER_PUSHGATEWAY_URL, or unset it without a Pushgateway)",
            e.without_url()
        ),
    }
}

/// The Prometheus text of a run's outcome; a run that failed before publishing has no
/// summary and counts zeros.
fn render(result: &anyhow::Result<Summary>, now: f64) -> String {
    let (summary, success) = match result {
        Ok(summary) => (Some(summary), true),
        Err(e) => (e.downcast_ref::<RunError>().map(|r| &r.summary), false),
    };
    let count = |f: fn(&Summary) -> u64| summary.map_or(0, f) as f64;
    let mut gauges = vec![
        (
            "producer_last_run_fetched_users",
            "Users fetched from the API by the last run.",
            count(|s| s.fetched),
        ),
        (
            "producer_last_run_published_users",
            "Users the last run published (acknowledged by Kafka).",
            count(|s| s.published),
        ),
        (
            "producer_last_run_rejected_users",
            "API records the last run rejected as invalid.",
            count(|s| s.rejected),
        ),
        (
            "producer_last_run_failed_users",
            "Users whose delivery failed in the last run.",
            count(|s| s.failed),
        ),
        (
            "producer_last_run_duration_seconds",
            "How long the last run took.",
            summary.map_or(0.0, |s| s.seconds),
        ),
        (
            "producer_last_run_success",
            "1 if the last run delivered every accepted user, 0 if it failed.",
            success as u8 as f64,
        ),
        (
            "producer_last_run_timestamp_seconds",
            "When the last run ended (Unix time).",
            now,
        ),
    ];
    if success {
        gauges.push((
            "producer_last_success_timestamp_seconds",
            "When the last successful run ended (Unix time).",
            now,
        ));
    }
    let mut out = String::new();
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    out
}

/// The URL as logs may show it: its password `***`.
fn shown(url: &reqwest::Url) -> String {
    common::redact::url_passwords(url.as_str()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            fetched: 100,
            published: 97,
            rejected: 3,
            failed: 0,
            seconds: 2.5,
        }
    }

    #[test]
    fn a_success_sets_the_last_success_time() {
        let text = render(&Ok(summary()), 1_700_000_000.0);
        assert!(
            text.contains("producer_last_run_published_users 97\n"),
            "{text}"
        );
        assert!(text.contains("producer_last_run_rejected_users 3\n"));
        assert!(text.contains("producer_last_run_success 1\n"));
        assert!(text.contains("producer_last_success_timestamp_seconds 1700000000\n"));
    }

    #[test]
    fn a_failure_keeps_its_counts_and_not_the_success_time() {
        let failed: anyhow::Result<Summary> = Err(RunError {
            reason: "Kafka refused".into(),
            summary: Summary {
                failed: 5,
                ..summary()
            },
            signal: None,
        }
        .into());
        let text = render(&failed, 1_700_000_000.0);
        assert!(text.contains("producer_last_run_success 0\n"));
        assert!(text.contains("producer_last_run_failed_users 5\n"));
        assert!(!text.contains("producer_last_success_timestamp_seconds"));
        let early: anyhow::Result<Summary> = Err(anyhow::anyhow!("bad settings"));
        assert!(render(&early, 0.0).contains("producer_last_run_published_users 0\n"));
    }

    #[test]
    fn logs_never_show_the_password() {
        let url: reqwest::Url = "http://ops:hunter2@pushgateway:9091/".parse().unwrap();
        assert_eq!(shown(&url), "http://ops:***@pushgateway:9091/");
    }
}
