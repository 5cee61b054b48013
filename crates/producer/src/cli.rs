use std::time::Duration;

use clap::Parser;
use common::kafka::KafkaArgs;
use common::logging::LogArgs;
use common::registry::RegistryArgs;

/// Pulls users from the Random User API and publishes each one to Kafka as
/// Avro registered in the Schema Registry (subject `<topic>-value`), keyed by
/// `login.uuid`. Exits 0 only when every accepted user was delivered.
#[derive(Debug, Clone, Parser)]
#[command(name = "producer", version)]
pub struct Args {
    /// Number of users to fetch. With --duration too, stops at whichever comes first.
    #[arg(long, env = "PRODUCER_COUNT", required_unless_present = "duration")]
    pub count: Option<u64>,

    /// Keep fetching until this much time has passed, e.g. 60s or 5m.
    #[arg(long, env = "PRODUCER_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Users per API request (the API allows at most 5000).
    #[arg(long, env = "PRODUCER_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub batch_size: u32,

    /// Cap on users published per second (0: no cap).
    #[arg(long, env = "PRODUCER_RATE", default_value_t = 0.0)]
    pub rate: f64,

    /// Random User API endpoint (version pinned).
    #[arg(
        long,
        env = "RANDOMUSER_API_URL",
        default_value = "https://randomuser.me/api/1.4/"
    )]
    pub api_url: String,

    /// Seed passed to the API: the same seed gives the same users, page by page.
    #[arg(long, env = "RANDOMUSER_SEED")]
    pub seed: Option<String>,

    /// Nationalities passed to the API, comma-separated (e.g. gb,de,no).
    #[arg(long, env = "RANDOMUSER_NAT")]
    pub nat: Option<String>,

    /// Timeout of one API request.
    #[arg(long, env = "RANDOMUSER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub api_timeout: Duration,

    /// Retries of a failed API request (429, 5xx, timeout, refused, error body) before giving up.
    #[arg(long, env = "RANDOMUSER_MAX_RETRIES", default_value_t = 5)]
    pub max_retries: u32,

    /// First retry delay; doubles per retry (with jitter) up to --retry-max-backoff.
    #[arg(long, env = "RANDOMUSER_RETRY_BACKOFF", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,

    /// Longest delay between two retries, also the cap on a server's Retry-After.
    #[arg(long, env = "RANDOMUSER_RETRY_MAX_BACKOFF", default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_max_backoff: Duration,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
    #[arg(long, env = "KAFKA_COMPRESSION", default_value = "lz4")]
    pub compression: String,

    /// How long one record may wait for delivery (librdkafka message.timeout.ms).
    #[arg(long, env = "KAFKA_DELIVERY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub delivery_timeout: Duration,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Seconds between progress lines on long runs.
    #[arg(long, env = "PRODUCER_PROGRESS_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    /// After a successful run, write where its records landed to this file: one line of JSON,
    /// the topic and each partition's first and end offset (what `consumer await-run` waits for).
    #[arg(long, env = "PRODUCER_LANDED_FILE")]
    pub landed_file: Option<std::path::PathBuf>,

    /// When the run ends, push its outcome (users published, rejected, failed; success) to
    /// this Prometheus Pushgateway, e.g. http://pushgateway:9091. A failed push is a warning.
    #[arg(long, env = "PRODUCER_PUSHGATEWAY_URL", value_parser = common::redact::UrlParser)]
    pub pushgateway_url: Option<reqwest::Url>,

    #[command(flatten)]
    pub log: LogArgs,
}

impl Args {
    /// The API source's settings: the only part of the command line it needs.
    pub fn api_settings(&self) -> crate::source::ApiSettings {
        crate::source::ApiSettings {
            url: self.api_url.clone(),
            timeout: self.api_timeout,
            seed: self.seed.clone(),
            nat: self.nat.clone(),
            max_retries: self.max_retries,
            retry_backoff: self.retry_backoff,
            retry_max_backoff: self.retry_max_backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn configuration_reference_matches_the_flags() {
        let crate_dir = env!("CARGO_MANIFEST_DIR");
        if let Err(e) = common::cli::reference::check(crate_dir, super::Args::command(), "producer")
        {
            panic!("{e}");
        }
    }
}
