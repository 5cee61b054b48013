use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use common::cassandra::CassandraArgs;
use common::kafka::KafkaArgs;
use common::logging::LogArgs;
use common::registry::RegistryArgs;

/// Reads the Avro users the producer publishes, turns each into a row and
/// writes it to Cassandra (table `<keyspace>.created_users`, keyed by
/// `login.uuid`). At-least-once: an offset is committed only after its row,
/// and every earlier row of its partition, is written. Records that cannot
/// become rows go to the dead-letter topic with the reason.
#[derive(Debug, Clone, Parser)]
#[command(name = "consumer", version)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Consumer group; its committed offsets are where a restart resumes.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "cassandra-writer")]
    pub group_id: String,

    /// Static group membership (KIP-345): this replica's lasting name in the group, e.g.
    /// `writer-{hostname}` (`{hostname}` becomes the host's name, which a container keeps
    /// across restarts). A replica restarted within the session (45 s) takes its partitions
    /// back at once, with no rebalance; one stopped for good keeps them until the session
    /// expires. Each replica needs its own. Unset: dynamic membership.
    #[arg(long, env = "KAFKA_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,

    /// Dead-letter topic for records that cannot become rows (created if missing).
    #[arg(long, env = "KAFKA_DLQ_TOPIC", default_value = "users_created.dlq")]
    pub dlq_topic: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub cassandra: CassandraArgs,

    /// Rows written concurrently.
    #[arg(long, env = "CONSUMER_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight: u32,

    /// Most rows written in one request: rows ready at the same moment that live on the same
    /// replicas go to them in one unlogged batch (nothing waits for a batch to fill: a row
    /// arriving alone goes alone, at once). Keep it at or under Cassandra's
    /// unlogged_batch_across_partitions_warn_threshold (10 by default), or it logs a warning
    /// for every batch. 1 writes every row on its own.
    #[arg(long, env = "CASSANDRA_BATCH_MAX_ROWS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_max_rows: u32,

    /// Most bytes of rows in one batch, counted as Cassandra counts them (a row of the API's
    /// is about 700): Cassandra logs a warning for every batch above its
    /// batch_size_warn_threshold (5 KiB by default) and refuses one above
    /// batch_size_fail_threshold (50 KiB); keep this at or under the first.
    #[arg(long, env = "CASSANDRA_BATCH_MAX_BYTES", default_value_t = 5120, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_max_bytes: u32,

    /// First delay before retrying a transient failure (a write, a registry lookup, a dead
    /// letter); doubles (with jitter) up to --retry-max-backoff. A transient failure is retried
    /// until it passes: offsets never move past an unwritten row.
    #[arg(long, env = "CONSUMER_RETRY_BACKOFF", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,

    /// Longest delay between two retries of a write.
    #[arg(long, env = "CONSUMER_RETRY_MAX_BACKOFF", default_value = "10s", value_parser = humantime::parse_duration)]
    pub retry_max_backoff: Duration,

    /// How long a write that Cassandra refuses with a code that may pass is retried: a
    /// permission a restarting node cannot check yet, a table a node has not heard of, a
    /// server error. The row is dead-lettered sooner if it alone is refused (a guardrail);
    /// when every write is refused this long, the consumer stops with the error.
    #[arg(long, env = "CONSUMER_REFUSED_WRITE_RETRY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub refused_write_retry: Duration,

    /// How long a schema id the registry does not know is asked again (its records retried,
    /// counted from the first that named it) before its records are dead-lettered: a registry
    /// may learn a schema a moment after its first records arrive.
    #[arg(long, env = "CONSUMER_UNKNOWN_SCHEMA_RETRY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub unknown_schema_retry: Duration,

    /// Exit 0 after this long with no new record and nothing in flight (batch runs, tests).
    /// Counted from the first partition assignment, so a slow group join is not idleness.
    #[arg(long, env = "CONSUMER_EXIT_WHEN_IDLE", value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,

    /// Address of the HTTP server for /healthz (ready when Kafka, the registry and Cassandra
    /// answer; down after 3 failed probes in a row, 5 s apart) and /metrics (Prometheus).
    #[arg(long, env = "CONSUMER_HTTP_ADDR", default_value = "0.0.0.0:9400")]
    pub http_addr: SocketAddr,

    /// Check /healthz of a consumer running on --http-addr and exit 0 if it is ready (for
    /// container healthchecks: the runtime image has no curl).
    #[arg(long, env = "CONSUMER_HEALTHCHECK")]
    pub healthcheck: bool,

    /// Time between progress lines.
    #[arg(long, env = "CONSUMER_PROGRESS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Args {
    /// `--group-instance-id` with `{hostname}` replaced by this host's name.
    pub fn group_instance_id(&self) -> anyhow::Result<Option<String>> {
        let Some(id) = &self.group_instance_id else {
            return Ok(None);
        };
        if !id.contains("{hostname}") {
            return Ok(Some(id.clone()));
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "KAFKA_GROUP_INSTANCE_ID ({id}) names {{hostname}}, but this host has no \
                     name (neither HOSTNAME nor /etc/hostname): give each replica its own \
                     id instead"
                )
            })?;
        Ok(Some(id.replace("{hostname}", &host)))
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Wait until the consumer group (--group-id) has written one producer run's users to
    /// Cassandra: exit 0 once it has committed past every record of the run and none was
    /// dead-lettered; 1 if the group stalls (with why: no consumer running, or one that is
    /// stuck) or records of the run were dead-lettered (how many, and the first reason).
    /// The consumer's Kafka settings apply; give them before `await-run` or as env vars.
    AwaitRun(AwaitArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AwaitArgs {
    /// Where the run's records landed: the JSON line `producer --landed-file` wrote.
    #[arg(long, env = "CONSUMER_AWAIT_LANDED")]
    pub landed: String,

    /// Fail when the group commits nothing more of the run's records for this long.
    #[arg(long, env = "CONSUMER_AWAIT_STALL_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn configuration_reference_matches_the_flags() {
        let crate_dir = env!("CARGO_MANIFEST_DIR");
        if let Err(e) = common::cli::reference::check(crate_dir, super::Args::command(), "consumer")
        {
            panic!("{e}");
        }
    }
}
