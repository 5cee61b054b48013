//! A consumer's `/metrics` (Prometheus text) as the tests and benches read it back.

use std::fmt::Display;

/// The `/metrics` text of the consumer at `addr` (host:port), or "" while it does not answer:
/// a replica restarting or not up yet is a state to wait out, not an error.
pub async fn scrape(client: &reqwest::Client, addr: impl Display) -> String {
    match client.get(format!("http://{addr}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The sum of every sample of the family `name` in a `/metrics` text (one unlabelled line,
/// or one line per label value). 0 when the family is absent, as a counter not yet
/// incremented anywhere reads; a negative gauge (lag not measured yet) reads 0 too.
pub fn sample_sum(text: &str, name: &str) -> u64 {
    sample_total(text, name).max(0.0) as u64
}

/// [`sample_sum`] unrounded, for a family counted in fractions (CPU seconds); 0 when absent.
pub fn sample_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::sample_sum;

    /// As the consumer renders it: HELP and TYPE lines, labelled families, a family whose
    /// name is a prefix of another's.
    const TEXT: &str = "\
# HELP consumer_rows_written_total Rows written.
# TYPE consumer_rows_written_total counter
consumer_rows_written_total 0
# HELP consumer_records_dead_lettered_total Records sent to the dead-letter topic.
# TYPE consumer_records_dead_lettered_total counter
consumer_records_dead_lettered_total{kind=\"framing\"} 1
consumer_records_dead_lettered_total{kind=\"schema\"} 0
consumer_records_dead_lettered_total{kind=\"transform\"} 1
# HELP consumer_retries_total Failed steps that were retried.
# TYPE consumer_retries_total counter
consumer_retries_total{dependency=\"registry\"} 1
consumer_retries_total{dependency=\"cassandra\"} 2
# HELP consumer_lag_records Records behind the end of the assigned partitions.
# TYPE consumer_lag_records gauge
consumer_lag_records 12
consumer_partition_lag_records{partition=\"0\"} 5
consumer_write_latency_seconds_sum 0.033
";

    #[test]
    fn a_family_sums_its_samples_and_only_its_own() {
        assert_eq!(sample_sum(TEXT, "consumer_records_dead_lettered_total"), 2);
        assert_eq!(sample_sum(TEXT, "consumer_retries_total"), 3);
        assert_eq!(sample_sum(TEXT, "consumer_rows_written_total"), 0);
        assert_eq!(sample_sum(TEXT, "consumer_lag_records"), 12);
        // A family whose name is a prefix of another's is not summed with it.
        assert_eq!(sample_sum(TEXT, "consumer_retries"), 0);
        assert_eq!(sample_sum(TEXT, "consumer_partition_lag"), 0);
    }

    #[test]
    fn absent_and_negative_read_zero() {
        assert_eq!(sample_sum(TEXT, "consumer_records_consumed_total"), 0);
        // Lag before it was first measured.
        assert_eq!(
            sample_sum("consumer_lag_records -1\n", "consumer_lag_records"),
            0
        );
        assert_eq!(sample_sum("", "consumer_rows_written_total"), 0);
    }
}
