//! Consumer replicas on a cluster: rows/s with 1, 2, 3, ... consumer processes in one group
//! on one topic, next to the bare scylla INSERT loop at the same consistency and replication,
//! in the same run. Meant for the cluster bed (`tests/stack up --cluster`), where the topic
//! has 6 partitions and RF 3 and the keyspace RF 3 (pass `--topic-partitions 6
//! --topic-replication 3`).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use domain::row::schema_statements;
use domain::ApiPage;
use scylla::client::session::Session;
use tokio::process::Command;

use crate::leftovers::Leftovers;
use crate::process::Watched;
use crate::services::Services;

#[derive(Debug, clap::Args)]
// The cluster bed has three Cassandra nodes: the keyspaces are RF 3 unless told otherwise.
#[command(mut_arg("cassandra_replication", |a| a.default_value(CLUSTER_REPLICATION)))]
pub struct Args {
    #[command(flatten)]
    work: crate::Workload,
    /// Replica counts to measure, in this order.
    #[arg(
        long,
        env = "BENCH_REPLICAS",
        value_delimiter = ',',
        default_value = "1,2,3"
    )]
    replicas: Vec<usize>,
    /// Concurrent writes per consumer process, and of the bare loop.
    #[arg(long, env = "CONSUMER_MAX_IN_FLIGHT", default_value_t = 256)]
    max_in_flight: usize,
    /// The brokers, the registry and Cassandra, for the bench's own clients and for every
    /// binary it starts.
    #[command(flatten)]
    services: Services,
}

const CLUSTER_REPLICATION: &str = "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}";

pub async fn run(args: Args) -> Result<()> {
    let consumer_bin = crate::process::binary("consumer", None)?;
    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = format!("bench_replicas_{stamp}");
    let mut leftovers = Leftovers::default();
    leftovers.topic(&topic);
    leftovers.topic(&format!("{topic}.dlq"));
    let users: Vec<domain::User> = crate::users::pages(args.work.records, 5000)
        .iter()
        .map(|p| ApiPage::parse(p).map(|p| p.users))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    crate::consumer_bench::load(&args.services, &topic, &users).await?;
    let consistency = args.services.cassandra.consistency.cql_name();
    println!(
        "replicas bench: {} records on {topic} ({} partitions, RF {}), writes at {consistency}, keyspaces {}",
        users.len(),
        args.services.kafka.partitions,
        args.services.kafka.replication,
        args.services.cassandra.replication
    );
    let session = args.services.cassandra.connect().await?;

    // Cassandra's JIT and memtables warm up on the first writes: keep that out of the figures.
    let warm = users.len().min(20_000);
    let warm_keyspace = format!("bench_warm_{stamp}");
    leftovers.keyspace(&warm_keyspace);
    bare_inserts(&args, &warm_keyspace, &users[..warm]).await?;

    let mut pipeline = vec![0.0; args.replicas.len()];
    let mut bare = 0.0;
    let rounds = args.work.rounds as f64;
    for round in 1..=args.work.rounds {
        for (i, &n) in args.replicas.iter().enumerate() {
            let keyspace = format!("bench_{stamp}_{round}_{n}");
            let group = format!("{topic}_writer_{round}_{n}");
            leftovers.keyspace(&keyspace);
            leftovers.group(&group);
            let rate =
                replicas(&args, &consumer_bin, &session, &topic, &group, &keyspace, n).await?;
            println!("replicas bench: round {round}: {n} replica(s): {rate:.0} rows/s");
            pipeline[i] += rate / rounds;
        }
        let bare_keyspace = format!("bench_bare_{stamp}_{round}");
        leftovers.keyspace(&bare_keyspace);
        let b = bare_inserts(&args, &bare_keyspace, &users).await?;
        println!("replicas bench: round {round}: bare scylla loop: {b:.0} rows/s");
        bare += b / rounds;
    }

    leftovers
        .remove(
            &args.services.kafka.client_config(&[], &[])?,
            Some(&session),
        )
        .await;

    println!(
        "replicas bench: means over {} round(s), writes at {consistency}:",
        args.work.rounds
    );
    let one = pipeline.first().copied().unwrap_or(1.0);
    for (&n, rate) in args.replicas.iter().zip(&pipeline) {
        println!(
            "replicas rows/s: {n} replica(s) {rate:>9.0} rows/s   x{:.2} of {} replica(s)   ratio to bare {:.2}",
            rate / one,
            args.replicas[0],
            rate / bare
        );
    }
    println!(
        "replicas rows/s: bare scylla loop {bare:>6.0} rows/s ({} in flight, one process)",
        args.max_in_flight
    );
    Ok(())
}

/// `n` consumer processes in one group; rows/s once the group is stable (every replica holds
/// partitions) until the last row, summed over the replicas' /metrics.
async fn replicas(
    args: &Args,
    bin: &std::path::Path,
    session: &Session,
    topic: &str,
    group: &str,
    keyspace: &str,
    n: usize,
) -> Result<f64> {
    // Created once up front: n processes racing to create one keyspace is not what we measure.
    create_schema(session, keyspace, &args.services.cassandra.replication).await?;
    let mut children: Vec<(Watched, std::net::SocketAddr)> = Vec::new();
    for _ in 0..n {
        let addr = crate::process::free_addr()?;
        let mut command = Command::new(bin);
        command
            .args([
                "--topic",
                topic,
                "--dlq-topic",
                &format!("{topic}.dlq"),
                "--group-id",
                group,
            ])
            .args(["--keyspace", keyspace])
            .args(["--max-in-flight", &args.max_in_flight.to_string()])
            .args([
                "--http-addr",
                &addr.to_string(),
                "--progress-interval",
                "5s",
            ])
            .env("RUST_LOG", "warn");
        // Every setting the bench and its bare loop run with, flags included.
        args.services.pass_to_consumer(command.as_std_mut());
        let child =
            Watched::spawn(command).with_context(|| format!("starting {}", bin.display()))?;
        children.push((child, addr));
    }
    let target = args.work.records as u64;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut stable: Option<(Instant, u64)> = None;
    loop {
        let (mut written, mut holding) = (0, 0);
        for (child, addr) in &mut children {
            if let Some(status) = child.exited()? {
                bail!("a consumer replica exited during the bench: {status}");
            }
            let text = bed::scrape(&client, addr).await;
            written += bed::sample_sum(&text, "consumer_rows_written_total");
            holding += (bed::sample_sum(&text, "consumer_assigned_partitions") > 0) as usize;
        }
        if stable.is_none() && holding == n {
            stable = Some((Instant::now(), written));
        }
        if written >= target {
            let (since, at) = stable.with_context(|| {
                format!(
                    "all {target} rows were written before each of the {n} replicas held \
                     partitions: nothing to measure. Give the bench more rows (--records, \
                     BENCH_RECORDS)"
                )
            })?;
            let rate = (target - at) as f64 / since.elapsed().as_secs_f64();
            println!(
                "replicas bench: {n} replica(s) wrote {target} rows ({at} before the group was stable) in {:.1}s",
                since.elapsed().as_secs_f64()
            );
            // Stopped, not killed: each leaves the group, which the bench then removes.
            for (child, _) in &children {
                child.stop().await?;
            }
            for (child, _) in children {
                let finished = child.wait(Duration::from_secs(60)).await?;
                ensure!(finished.success, "a consumer replica failed to stop");
            }
            return Ok(rate);
        }
        ensure!(
            Instant::now() < deadline,
            "{n} replica(s): {written} of {target} rows after 600s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_schema(session: &Session, keyspace: &str, replication: &str) -> Result<()> {
    for statement in schema_statements(keyspace, replication) {
        session.query_unpaged(statement, ()).await?;
    }
    session.await_schema_agreement().await?;
    Ok(())
}

/// scylla alone: the same rows through the consumer bench's bare loop, set up from the
/// consumers' own Cassandra settings, as many in flight as one consumer process: what the
/// driver does on its own as the consumers drive it.
async fn bare_inserts(args: &Args, keyspace: &str, users: &[domain::User]) -> Result<f64> {
    crate::consumer_bench::bare_inserts(
        &args.services.cassandra,
        keyspace,
        users,
        args.max_in_flight,
    )
    .await
    .map(|(rate, _cpu)| rate)
}
