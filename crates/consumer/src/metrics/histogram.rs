//! The latency histograms. `prometheus-client`'s own histogram takes a write lock per
//! observation; these count every row on counters all writing tasks share, so each
//! observation is one atomic add in the one bucket it falls in (the cumulative counts are
//! summed when rendered, by the library's encoder), plus one for the sum.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of the buckets: milliseconds for a healthy write, up to ten
/// minutes so that a backlog's p99 (records written minutes after they were produced) shows
/// as what it is rather than as "above 10 s". 20 and 50 ms are the end-to-end p99 goals
/// (docs/benchmarks.md): whether they are met is read off a bucket, not interpolated.
pub const BUCKETS: [f64; 19] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// One slot per bound, and a last one above every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let slot = BUCKETS.partition_point(|bound| *bound < secs);
        self.0.buckets[slot].fetch_add(1, Relaxed);
        self.0.sum_us.fetch_add(value.as_micros() as u64, Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder makes the counts cumulative; f64::MAX is its +Inf bucket.
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(self.0.buckets.iter().map(|count| count.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_us.load(Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
