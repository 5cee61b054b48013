//! Chaos soak on the cluster bed (`STACK_TOPOLOGY=cluster tests/stack up`): the real producer
//! at a steady rate and N consumer replicas in one group run for a long while, and every
//! 30–60 s one member of the bed (a replica, a broker, a Cassandra node, or a whole host
//! black-holed) fails and comes back. Each minute prints what the pipeline delivered and what
//! the replicas cost; at the end every published user must be exactly one row at QUORUM,
//! nothing dead-lettered, every offset committed, and RSS and open files flat.
//!
//! At most one member is down at a time, and the next fault waits until the last one healed
//! (all in-sync replicas back, every Cassandra node answering): RF 3 with quorum 2 survives
//! one loss, not two, and a broker that is up but not yet in sync counts as lost.

mod control;
mod fleet;
mod monitor;
mod schedule;
mod verdict;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use bed::topology::{PARTITIONS, REPLICATION, TOPIC_FLAGS};
use bed::Kafka;
use rand::rngs::StdRng;
use rand::SeedableRng;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use tokio::process::Command;

use crate::leftovers::Leftovers;
use crate::process::{self, Watched};
use control::{Bed, Kind};
use fleet::{Fleet, FleetSettings};
use monitor::Monitor;
use schedule::{ScheduleSettings, Span};
use verdict::{Verdict, VerdictSettings};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the producer publishes (and faults happen).
    #[arg(long, env = "SOAK_DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Users per second the producer publishes (its --rate).
    #[arg(long, env = "SOAK_RATE", default_value_t = 200.0)]
    rate: f64,
    /// Consumer processes in the group.
    #[arg(long, env = "SOAK_REPLICAS", default_value_t = 3)]
    replicas: usize,
    /// Time from one fault's start to the next, drawn at random in this range ("30s..60s").
    #[arg(long, env = "SOAK_FAULT_EVERY", default_value = "30s..60s", value_parser = Span::parse)]
    fault_every: Span,
    /// How long a black-holed host stays cut off.
    #[arg(long, env = "SOAK_OUTAGE", default_value = "20s..40s", value_parser = Span::parse)]
    outage: Span,
    /// How long a stopped or killed member (or replica) stays down before it is started again.
    #[arg(long, env = "SOAK_DOWNTIME", default_value = "5s..15s", value_parser = Span::parse)]
    downtime: Span,
    /// Faults the run must have done (default: one per minute of --duration).
    #[arg(long, env = "SOAK_MIN_FAULTS")]
    min_faults: Option<usize>,
    /// Which faults to draw from.
    #[arg(
        long,
        env = "SOAK_FAULTS",
        value_enum,
        value_delimiter = ',',
        default_value = "replica,kafka-stop,kafka-kill,cassandra-stop,cassandra-kill,partition"
    )]
    faults: Vec<Kind>,
    /// Seed of the fault schedule (default: from the clock; printed, so a run can be replayed).
    #[arg(long, env = "SOAK_SEED")]
    seed: Option<u64>,
    /// Largest allowed growth of a replica's RSS and open files, last minute over the second.
    #[arg(long, env = "SOAK_MAX_GROWTH", default_value_t = 1.5)]
    max_growth: f64,
    /// After the producer ends: how long the pipeline may take to write and commit everything.
    #[arg(long, env = "SOAK_SETTLE", default_value = "5m", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// How long the bed may take to be whole again after a fault was undone.
    #[arg(long, env = "SOAK_HEAL_TIMEOUT", default_value = "180s", value_parser = humantime::parse_duration)]
    heal_timeout: Duration,
    /// The bed's control script (default: tests/stack of this repository).
    #[arg(long, env = "SOAK_STACK")]
    stack: Option<PathBuf>,
    /// Where the replicas' and the producer's logs go (default: a new directory under /tmp).
    #[arg(long, env = "SOAK_LOG_DIR")]
    log_dir: Option<PathBuf>,
    /// Directory of the producer and consumer binaries (default: beside this one).
    #[arg(long, env = "BENCH_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.2:9092,127.0.0.3:9092,127.0.0.4:9092"
    )]
    bootstrap_servers: String,
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.2:8081/apis/ccompat/v7"
    )]
    schema_registry_url: String,
    #[arg(
        long,
        env = "CASSANDRA_CONTACT_POINTS",
        default_value = "127.0.0.2:9042,127.0.0.3:9042,127.0.0.4:9042"
    )]
    cassandra_contact_points: String,
}

/// Each component's share of the flags: what it uses and nothing else.
impl Args {
    fn fleet_settings(&self) -> FleetSettings {
        FleetSettings {
            bootstrap_servers: self.bootstrap_servers.clone(),
            schema_registry_url: self.schema_registry_url.clone(),
            cassandra_contact_points: self.cassandra_contact_points.clone(),
            replicas: self.replicas,
        }
    }

    fn producer_settings(&self) -> ProducerSettings {
        ProducerSettings {
            bootstrap_servers: self.bootstrap_servers.clone(),
            schema_registry_url: self.schema_registry_url.clone(),
            rate: self.rate,
            duration: self.duration,
        }
    }

    fn schedule_settings(&self) -> ScheduleSettings {
        ScheduleSettings {
            duration: self.duration,
            fault_every: self.fault_every,
            outage: self.outage,
            downtime: self.downtime,
            heal_timeout: self.heal_timeout,
        }
    }

    fn verdict_settings(&self) -> VerdictSettings {
        VerdictSettings {
            settle: self.settle,
            duration: self.duration,
            max_growth: self.max_growth,
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    // Ctrl-C drops the soak, and with it the guard that heals the bed and the replicas
    // (kill_on_drop): an interrupted run leaves the bed as it found it.
    tokio::select! {
        result = soak(args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (the bed was healed)"),
    }
}

async fn soak(args: Args) -> Result<()> {
    ensure!(!args.faults.is_empty(), "--faults names no fault");
    ensure!(args.replicas > 0, "--replicas must be at least 1");
    // Each component's settings, taken from the flags once; none of them sees `Args`.
    let fleet_settings = args.fleet_settings();
    let producer_settings = args.producer_settings();
    let schedule_settings = args.schedule_settings();
    let verdict_settings = args.verdict_settings();
    let producer_bin = process::binary("producer", args.bin_dir.as_deref())?;
    let consumer_bin = process::binary("consumer", args.bin_dir.as_deref())?;
    let mut bed = Bed::new(args.stack.clone())?;
    bed.check_up().await?;
    let kinds = bed.supported(&args.faults).await;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let min_faults = args
        .min_faults
        .unwrap_or((args.duration.as_secs() / 60) as usize);

    let stamp = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let names = Names::new(&stamp);
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("soak_{stamp}")));
    std::fs::create_dir_all(&log_dir)?;
    println!(
        "soak: {} at {}/s, {} replica(s), a fault every {}, faults {:?}, seed {seed} (SOAK_SEED to replay)",
        humantime::format_duration(args.duration),
        args.rate,
        args.replicas,
        args.fault_every,
        kinds
    );
    println!(
        "soak: topic {} ({PARTITIONS} partitions, RF 3, min ISR 2), keyspace {} (RF 3, QUORUM writes), logs in {}",
        names.topic,
        names.keyspace,
        log_dir.display()
    );

    let session = SessionBuilder::new()
        .known_nodes(args.cassandra_contact_points.split(','))
        .build()
        .await
        .context("connecting to Cassandra")?;
    // Created once up front: replicas racing to create one keyspace is not what we soak.
    create_schema(&session, &names.keyspace).await?;
    let kafka = Kafka::new(&args.bootstrap_servers)?;

    let mut fleet = Fleet::new(&fleet_settings, consumer_bin, &names, &log_dir)?;
    for i in 0..args.replicas {
        fleet.spawn(i)?;
    }
    for addr in fleet.addrs() {
        process::wait_assigned(addr, Duration::from_secs(180)).await?;
    }
    println!("soak: {} replica(s) hold partitions", args.replicas);

    let api = crate::users::serve(crate::users::Pages::Fresh).await?;
    let producer = Watched::spawn(producer_command(
        &producer_settings,
        &producer_bin,
        api,
        &names,
        &log_dir,
    )?)?;
    let start = Instant::now();
    let monitor = Monitor::start(&fleet, kafka.clone(), &names.topic, start);

    let chaos = schedule::chaos(
        &schedule_settings,
        &kinds,
        &mut rng,
        &mut bed,
        &mut fleet,
        &kafka,
        &session,
        &names,
        start,
        producer,
    )
    .await;
    // Whatever happened, the bed is whole again before anything is judged.
    bed.heal().await?;
    let (produced, faults) = chaos?;

    let published = match produced.summary("published") {
        Some(n) => n as u64,
        // A failed producer prints its summary on stderr only: what reached the topic is the
        // count to check against.
        None => kafka.end_offsets(&names.topic).await?.iter().sum::<i64>() as u64,
    };
    println!(
        "soak: {} producer ended: published {published}; waiting (at most {}) for every row and commit",
        stamp_now(start),
        humantime::format_duration(args.settle)
    );
    let settled = verdict::settle(
        &verdict_settings,
        &session,
        &kafka,
        &names,
        published,
        start,
    )
    .await;
    let minutes = monitor.stop();
    let stopped = fleet.stop_all().await;

    monitor::print_table(&minutes, args.replicas);
    let mut verdict = Verdict::default();
    verdict.check(
        "producer",
        produced.success,
        format!(
            "exit {}, published {published}",
            if produced.success { "0" } else { "non-zero" }
        ),
    );
    settled.judge(&mut verdict, published);
    verdict.check(
        "faults",
        faults >= min_faults,
        format!("{faults} done, at least {min_faults} required"),
    );
    verdict.check(
        "replicas stayed up",
        fleet.crashes.is_empty(),
        if fleet.crashes.is_empty() {
            "no replica exited on its own".into()
        } else {
            fleet.crashes.join("; ")
        },
    );
    verdict.check(
        "replicas stopped cleanly",
        stopped.is_ok(),
        stopped.map_or_else(|e| format!("{e:#}"), |()| "each exited 0 on SIGTERM".into()),
    );
    verdict::flatness(&mut verdict, &minutes, &verdict_settings);
    // A failed soak keeps its topic and keyspace: with the logs, they are what to look at.
    if verdict.failed.is_empty() {
        names
            .leftovers()
            .remove(kafka.config(), Some(&session))
            .await;
    } else {
        println!(
            "soak: kept topic {} and keyspace {} for inspection, with the logs in {}",
            names.topic,
            names.keyspace,
            log_dir.display()
        );
    }
    verdict.finish()
}

/// Names of one run: fresh every time, so nothing of an earlier run is counted.
struct Names {
    topic: String,
    dlq: String,
    group: String,
    keyspace: String,
}

impl Names {
    fn new(stamp: &str) -> Names {
        let topic = format!("soak_{stamp}");
        Names {
            dlq: format!("{topic}.dlq"),
            group: format!("{topic}_writer"),
            keyspace: topic.clone(),
            topic,
        }
    }

    fn leftovers(&self) -> Leftovers {
        let mut leftovers = Leftovers::default();
        leftovers.topic(&self.topic);
        leftovers.topic(&self.dlq);
        leftovers.group(&self.group);
        leftovers.keyspace(&self.keyspace);
        leftovers
    }
}

/// What the producer's command line needs of the soak's flags.
#[derive(Debug, Clone)]
struct ProducerSettings {
    bootstrap_servers: String,
    schema_registry_url: String,
    rate: f64,
    duration: Duration,
}

fn producer_command(
    settings: &ProducerSettings,
    bin: &Path,
    api: SocketAddr,
    names: &Names,
    log_dir: &Path,
) -> Result<Command> {
    let log = std::fs::File::create(log_dir.join("producer.log"))?;
    let mut cmd = Command::new(bin);
    cmd.args(["--api-url", &format!("http://{api}/api/")])
        .args(["--topic", &names.topic])
        .args(["--bootstrap-servers", &settings.bootstrap_servers])
        .args(["--schema-registry-url", &settings.schema_registry_url])
        .args(["--rate", &settings.rate.to_string()])
        .args(["--duration", &format!("{}s", settings.duration.as_secs())])
        // Small pages keep the stream steady at a low rate.
        .args(["--batch-size", "50"])
        .args(TOPIC_FLAGS)
        .args(["--progress-interval", "10s"])
        // Its logs (retries while a broker is down) go to a file: this output is the soak's.
        .stderr(log);
    Ok(cmd)
}

async fn create_schema(session: &Session, keyspace: &str) -> Result<()> {
    for statement in domain::row::schema_statements(keyspace, REPLICATION) {
        session.query_unpaged(statement, ()).await?;
    }
    session.await_schema_agreement().await?;
    Ok(())
}

/// "+mm:ss (wall clock)" for a line about something that happened now.
fn stamp_now(start: Instant) -> String {
    let s = start.elapsed().as_secs();
    let wall = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    format!(
        "+{:02}:{:02} [{}]",
        s / 60,
        s % 60,
        wall.get(11..19).unwrap_or(&wall)
    )
}
