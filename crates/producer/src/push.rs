//! A run's outcome, pushed to a Prometheus Pushgateway when it ends.
//!
//! A producer run is a batch job: it ends before Prometheus would scrape it, which is
//! the case the Pushgateway exists for. The group is the job alone (`/metrics/job/producer`),
//! so the Pushgateway holds the last run; Prometheus keeps the history. A successful run
//! replaces the group (PUT); a failed one only overwrites the metrics it sends (POST), so
//! the last success's timestamp survives it and an alert can say how long ago that was.
//! No process metrics: the process is gone once pushed, and the Pushgateway's own
//! `process_*` would clash with them.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
        // The text format's own type: the Pushgateway reads OpenMetrics gauges with its text
        // parser, and rejects the OpenMetrics type on push.
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

/// A run's outcome as OpenMetrics text (gauges only, which the Pushgateway's text parser
/// reads alike); a run that failed before publishing has no summary and counts zeros.
fn render(result: &anyhow::Result<Summary>, now: f64) -> String {
    common::metrics::render(&registry(result, now))
}

/// The registry of a run's outcome, and the build that ran it.
fn registry(result: &anyhow::Result<Summary>, now: f64) -> Registry {
    let (summary, success) = match result {
        Ok(summary) => (Some(summary), true),
        Err(e) => (e.downcast_ref::<RunError>().map(|r| &r.summary), false),
    };
    let count = |f: fn(&Summary) -> u64| summary.map_or(0, f) as f64;
    let mut gauges = vec![
        (
            "producer_last_run_fetched_users",
            "Users fetched from the API by the last run",
            count(|s| s.fetched),
        ),
        (
            "producer_last_run_published_users",
            "Users the last run published (acknowledged by Kafka)",
            count(|s| s.published),
        ),
        (
            "producer_last_run_rejected_users",
            "API records the last run rejected as invalid",
            count(|s| s.rejected),
        ),
        (
            "producer_last_run_failed_users",
            "Users whose delivery failed in the last run",
            count(|s| s.failed),
        ),
        (
            "producer_last_run_duration_seconds",
            "How long the last run took",
            summary.map_or(0.0, |s| s.seconds),
        ),
        (
            "producer_last_run_success",
            "1 if the last run delivered every accepted user, 0 if it failed",
            success as u8 as f64,
        ),
        (
            "producer_last_run_timestamp_seconds",
            "When the last run ended (Unix time)",
            now,
        ),
    ];
    if success {
        gauges.push((
            "producer_last_success_timestamp_seconds",
            "When the last successful run ended (Unix time)",
            now,
        ));
    }
    let mut registry = Registry::default();
    for (name, help, value) in gauges {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    }
    common::metrics::build_info(
        &mut registry,
        "producer",
        env!("CARGO_PKG_VERSION"),
        option_env!("BUILD_REVISION"),
    );
    registry
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
            text.contains("producer_last_run_published_users 97.0\n"),
            "{text}"
        );
        assert!(text.contains("producer_last_run_rejected_users 3.0\n"));
        assert!(text.contains("producer_last_run_success 1.0\n"));
        assert!(text.contains("producer_last_success_timestamp_seconds 1700000000.0\n"));
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
        assert!(text.contains("producer_last_run_success 0.0\n"));
        assert!(text.contains("producer_last_run_failed_users 5.0\n"));
        assert!(!text.contains("producer_last_success_timestamp_seconds"));
        let early: anyhow::Result<Summary> = Err(anyhow::anyhow!("bad settings"));
        assert!(render(&early, 0.0).contains("producer_last_run_published_users 0.0\n"));
    }

    /// Every name the alert rules, the dashboard and the docs query, and the reference in
    /// docs/metrics.md, against the registry.
    #[test]
    fn every_metric_name_is_pushed_and_in_the_metrics_reference() {
        let text = render(&Ok(summary()), 1.0);
        for name in [
            "producer_last_run_fetched_users ",
            "producer_last_run_published_users ",
            "producer_last_run_rejected_users ",
            "producer_last_run_failed_users ",
            "producer_last_run_duration_seconds ",
            "producer_last_run_success ",
            "producer_last_run_timestamp_seconds ",
            "producer_last_success_timestamp_seconds ",
            "producer_build_info{version=",
        ] {
            assert!(
                text.contains(&format!("\n{name}")),
                "{name} missing: {text}"
            );
        }
        assert!(!text.contains("process_"), "{text}");
        let families = common::metrics::describe(&text);
        let page = common::generated::page(env!("CARGO_MANIFEST_DIR"), "docs/metrics.md");
        let table = common::metrics::reference_table(&families);
        if let Err(e) = common::generated::check(&page, "producer", &table) {
            panic!("{e}");
        }
    }

    #[test]
    fn logs_never_show_the_password() {
        let url: reqwest::Url = "http://ops:hunter2@pushgateway:9091/".parse().unwrap();
        assert_eq!(shown(&url), "http://ops:***@pushgateway:9091/");
    }
}
