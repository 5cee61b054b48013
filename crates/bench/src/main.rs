//! `cargo run --release -p bench -- producer|consumer|latency|replicas|soak`: measures a pipeline
//! stage and, in the same run, the bare client loop underneath it (the
//! machine's own limit), then prints both and their ratio.
//!
//! Needs the real services (`tests/stack up`, `eval "$(tests/stack env)"`).

mod child;
mod consumer_bench;
mod figures;
mod latency_bench;
mod leftovers;
mod process;
mod producer_bench;
mod replicas_bench;
mod services;
mod soak;
mod users;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Pipeline throughput next to the bare client loops"
)]
struct Cli {
    #[command(subcommand)]
    stage: Stage,
}

#[derive(Debug, Subcommand)]
enum Stage {
    /// JSON page parse -> Avro (registry) -> Kafka, vs rdkafka publishing the same pre-encoded bytes.
    Producer(producer_bench::Args),
    /// Kafka -> decode -> transform -> Cassandra, vs a bare scylla loop inserting the same rows.
    // Boxed, as Latency and Replicas: each carries every Cassandra setting of the consumer,
    // the others a few fields.
    Consumer(Box<consumer_bench::Args>),
    /// The producer and consumer binaries at a steady rate: end-to-end latency, peak RSS, CPU.
    Latency(Box<latency_bench::Args>),
    /// 1, 2, 3 consumer processes in one group on the cluster bed, vs the bare scylla loop at
    /// the same consistency.
    Replicas(Box<replicas_bench::Args>),
    /// Chaos soak on the cluster bed: producer + consumer replicas for minutes while brokers,
    /// Cassandra nodes, hosts and replicas fail one at a time; then every row, commit and DLQ
    /// checked, RSS and open files flat.
    Soak(soak::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().stage {
        Stage::Producer(args) => producer_bench::run(args).await,
        Stage::Consumer(args) => consumer_bench::run(*args).await,
        Stage::Latency(args) => latency_bench::run(*args).await,
        Stage::Replicas(args) => replicas_bench::run(*args).await,
        Stage::Soak(args) => soak::run(args).await,
    }
}

/// How much each bench does; shared by both stages.
#[derive(Debug, clap::Args)]
pub struct Workload {
    /// Records per run (users published, or rows written).
    #[arg(long, env = "BENCH_RECORDS", default_value_t = 200_000)]
    pub records: usize,
    /// Rounds of every side (the pipeline and its bare loops), in turned-around order; the
    /// figures are their means.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 3)]
    pub rounds: usize,
}

/// Resident set size of this process, from /proc (Linux).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn configuration_reference_matches_the_flags() {
        let crate_dir = env!("CARGO_MANIFEST_DIR");
        if let Err(e) = common::cli::reference::check(crate_dir, super::Cli::command(), "bench") {
            panic!("{e}");
        }
    }
}
