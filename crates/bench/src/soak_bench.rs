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

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::PagingState;
use scylla::statement::unprepared::Statement;
use scylla::statement::Consistency;
use tokio::process::{Child, Command};

use crate::leftovers::Leftovers;
use crate::process::{self, Watched};

const PARTITIONS: i32 = 6;
const REPLICATION: &str = "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}";
/// The end-to-end histogram of the consumer (Kafka record timestamp -> row written).
const END_TO_END: &str = "consumer_end_to_end_latency_seconds";

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

/// A range of durations, "30s..60s" (or one duration, "45s").
#[derive(Debug, Clone, Copy)]
pub struct Span(Duration, Duration);

impl Span {
    fn parse(text: &str) -> Result<Span, String> {
        let (lo, hi) = text.split_once("..").unwrap_or((text, text));
        let parse = |s: &str| humantime::parse_duration(s.trim()).map_err(|e| format!("{s}: {e}"));
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(format!("{text}: the first bound is above the second"));
        }
        Ok(Span(lo, hi))
    }

    fn pick(&self, rng: &mut StdRng) -> Duration {
        let ms = rng.random_range(self.0.as_millis() as u64..=self.1.as_millis() as u64);
        Duration::from_millis(ms)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lo, hi) = (
            humantime::format_duration(self.0),
            humantime::format_duration(self.1),
        );
        write!(f, "{lo}..{hi}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// kill -9 a consumer replica, start it again.
    Replica,
    /// `tests/stack stop kafka-N` (clean shutdown), then start.
    KafkaStop,
    /// `tests/stack kill kafka-N` (SIGKILL), then start.
    KafkaKill,
    CassandraStop,
    CassandraKill,
    /// `tests/stack partition kafka-N cassandra-N`: host N black-holed, then healed.
    Partition,
}

/// One fault, drawn from the kinds and targets.
#[derive(Debug, Clone)]
enum Fault {
    Replica(usize),
    /// `tests/stack <verb> <member>`: verb "stop" or "kill".
    Member(&'static str, String),
    /// The broker and the Cassandra node of host N (1..3).
    Partition(u8),
}

impl Fault {
    fn draw(kinds: &[Kind], replicas: usize, rng: &mut StdRng) -> Fault {
        // Members 1..3 (hosts 127.0.0.2-4); ZooKeeper and the registry are never touched.
        let n = rng.random_range(1..=3u8);
        match kinds[rng.random_range(0..kinds.len())] {
            Kind::Replica => Fault::Replica(rng.random_range(0..replicas)),
            Kind::KafkaStop => Fault::Member("stop", format!("kafka-{n}")),
            Kind::KafkaKill => Fault::Member("kill", format!("kafka-{n}")),
            Kind::CassandraStop => Fault::Member("stop", format!("cassandra-{n}")),
            Kind::CassandraKill => Fault::Member("kill", format!("cassandra-{n}")),
            Kind::Partition => Fault::Partition(n),
        }
    }

    fn describe(&self) -> String {
        match self {
            Fault::Replica(i) => format!("kill -9 replica {}", i + 1),
            Fault::Member(verb, member) => format!("tests/stack {verb} {member}"),
            Fault::Partition(n) => format!("tests/stack partition kafka-{n} cassandra-{n}"),
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

    let mut fleet = Fleet::new(&args, consumer_bin, &names, &log_dir)?;
    for i in 0..args.replicas {
        fleet.spawn(i)?;
    }
    for slot in &fleet.slots {
        process::wait_assigned(slot.addr, Duration::from_secs(180)).await?;
    }
    println!("soak: {} replica(s) hold partitions", args.replicas);

    let api = crate::users::serve(crate::users::Pages::Fresh).await?;
    let producer = Watched::spawn(producer_command(
        &args,
        &producer_bin,
        api,
        &names,
        &log_dir,
    )?)?;
    let start = Instant::now();
    let monitor = Monitor::start(&fleet, kafka.clone(), &names.topic, start);

    let chaos = chaos(
        &args, &kinds, &mut rng, &mut bed, &mut fleet, &kafka, &session, &names, start, producer,
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
    let settled = settle(&args, &session, &kafka, &names, published, start).await;
    let minutes = monitor.stop();
    let stopped = fleet.stop_all().await;

    print_table(&minutes, args.replicas);
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
    flatness(&mut verdict, &minutes, args.duration, args.max_growth);
    // A failed soak keeps its topic and keyspace: with the logs, they are what to look at.
    if verdict.failed.is_empty() {
        names
            .leftovers()
            .remove(&kafka.config, Some(&session))
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

fn producer_command(
    args: &Args,
    bin: &Path,
    api: SocketAddr,
    names: &Names,
    log_dir: &Path,
) -> Result<Command> {
    let log = std::fs::File::create(log_dir.join("producer.log"))?;
    let mut cmd = Command::new(bin);
    cmd.args(["--api-url", &format!("http://{api}/api/")])
        .args(["--topic", &names.topic])
        .args(["--bootstrap-servers", &args.bootstrap_servers])
        .args(["--schema-registry-url", &args.schema_registry_url])
        .args(["--rate", &args.rate.to_string()])
        .args(["--duration", &format!("{}s", args.duration.as_secs())])
        // Small pages keep the stream steady at a low rate.
        .args(["--batch-size", "50"])
        .args(topic_flags())
        .args(["--progress-interval", "10s"])
        // Its logs (retries while a broker is down) go to a file: this output is the soak's.
        .stderr(log);
    Ok(cmd)
}

fn topic_flags() -> [String; 6] {
    [
        "--topic-partitions".into(),
        PARTITIONS.to_string(),
        "--topic-replication".into(),
        "3".into(),
        "--topic-min-insync-replicas".into(),
        "2".into(),
    ]
}

/// The fault loop, while the producer runs: a fault at a random moment, undone, the bed
/// whole again, the next. Returns the producer's end and the number of faults done.
#[allow(clippy::too_many_arguments)]
async fn chaos(
    args: &Args,
    kinds: &[Kind],
    rng: &mut StdRng,
    bed: &mut Bed,
    fleet: &mut Fleet,
    kafka: &Kafka,
    session: &Session,
    names: &Names,
    start: Instant,
    mut producer: Watched,
) -> Result<(process::Finished, usize)> {
    let end = start + args.duration;
    let mut next = start + args.fault_every.pick(rng);
    let mut faults = 0;
    while producer.exited()?.is_none() {
        fleet.restart_crashed(start)?;
        if Instant::now() >= next && Instant::now() < end {
            let began = Instant::now();
            faults += 1;
            let fault = Fault::draw(kinds, fleet.slots.len(), rng);
            inflict(args, rng, bed, fleet, &fault, faults, start).await?;
            wait_whole(args, kafka, session, names, start).await?;
            // From the fault's start, as drawn; never before the bed is whole again.
            next = (began + args.fault_every.pick(rng)).max(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let produced = producer.wait(Duration::from_secs(60)).await?;
    Ok((produced, faults))
}

/// Does `fault` and undoes it, printing both.
async fn inflict(
    args: &Args,
    rng: &mut StdRng,
    bed: &mut Bed,
    fleet: &mut Fleet,
    fault: &Fault,
    number: usize,
    start: Instant,
) -> Result<()> {
    let hold = match fault {
        Fault::Partition(_) => args.outage.pick(rng),
        _ => args.downtime.pick(rng),
    };
    println!(
        "soak: {} fault {number}: {} for {:.0}s",
        stamp_now(start),
        fault.describe(),
        hold.as_secs_f64()
    );
    match fault {
        Fault::Replica(i) => {
            let pid = fleet.kill(*i).await?;
            println!(
                "soak: {} fault {number}: replica {} (pid {pid}) killed",
                stamp_now(start),
                i + 1
            );
            tokio::time::sleep(hold).await;
            let pid = fleet.spawn(*i)?;
            println!(
                "soak: {} undo {number}: replica {} started again (pid {pid})",
                stamp_now(start),
                i + 1
            );
        }
        Fault::Member(verb, member) => {
            bed.fault(&[verb, member], &["start", member]).await?;
            tokio::time::sleep(hold).await;
            let took = bed.undo().await?;
            println!(
                "soak: {} undo {number}: tests/stack start {member}: ready after {:.0}s",
                stamp_now(start),
                took.as_secs_f64()
            );
        }
        Fault::Partition(n) => {
            let (k, c) = (format!("kafka-{n}"), format!("cassandra-{n}"));
            bed.fault(&["partition", &k, &c], &["heal", &k, &c]).await?;
            tokio::time::sleep(hold).await;
            bed.undo().await?;
            println!(
                "soak: {} undo {number}: tests/stack heal {k} {c}",
                stamp_now(start)
            );
        }
    }
    Ok(())
}

/// Waits until the bed is whole: every partition of the run's topics (and the group's offsets
/// topic) with all 3 replicas in sync, and every Cassandra node answering a read at ALL.
async fn wait_whole(
    args: &Args,
    kafka: &Kafka,
    session: &Session,
    names: &Names,
    start: Instant,
) -> Result<()> {
    let began = Instant::now();
    let topics = [
        names.topic.clone(),
        names.dlq.clone(),
        "__consumer_offsets".into(),
    ];
    loop {
        let whole = match kafka.in_sync(&topics).await {
            Ok(()) => read_at_all(session, &names.keyspace).await,
            Err(e) => Err(e),
        };
        match whole {
            Ok(()) => break,
            Err(_) if began.elapsed() < args.heal_timeout => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            Err(e) => bail!(
                "the bed was not whole {} after a fault was undone: {e:#}",
                humantime::format_duration(args.heal_timeout)
            ),
        }
    }
    println!(
        "soak: {} whole again after {:.0}s (all replicas in sync, every node answers)",
        stamp_now(start),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn read_at_all(session: &Session, keyspace: &str) -> Result<()> {
    let mut statement = Statement::new(format!("SELECT id FROM {keyspace}.created_users LIMIT 1"));
    // RF 3 on 3 nodes: every node is a replica, so each must answer.
    statement.set_consistency(Consistency::All);
    statement.set_request_timeout(Some(Duration::from_secs(5)));
    session
        .query_unpaged(statement, ())
        .await
        .context("read at ALL")?;
    Ok(())
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

// ------------------------------------------------------------------------------------ the bed

/// The bed's control script, and the undo of the fault in progress: run when the fault ends,
/// and by `Drop` if the soak ends any other way (an error, Ctrl-C), so the bed is always left
/// whole.
struct Bed {
    stack: PathBuf,
    pending: Option<Vec<String>>,
}

impl Bed {
    fn new(stack: Option<PathBuf>) -> Result<Bed> {
        let stack = match stack {
            Some(path) => path,
            None => repo_root()?.join("tests/stack"),
        };
        ensure!(
            stack.exists(),
            "{} not found (pass --stack)",
            stack.display()
        );
        Ok(Bed {
            stack,
            pending: None,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.stack);
        cmd.args(args)
            .env("STACK_TOPOLOGY", "cluster")
            .stdin(Stdio::null())
            .kill_on_drop(false);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Result<Duration> {
        let began = Instant::now();
        let out = self.command(args).output().await?;
        ensure!(
            out.status.success(),
            "tests/stack {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(began.elapsed())
    }

    async fn check_up(&self) -> Result<()> {
        self.run(&["status"]).await.context(
            "the cluster bed is not up: `STACK_TOPOLOGY=cluster tests/stack up`, then \
             `eval \"$(tests/stack --cluster env)\"`",
        )?;
        Ok(())
    }

    /// The kinds this bed's script can do: `partition` needs `tests/stack partition`.
    async fn supported(&self, kinds: &[Kind]) -> Vec<Kind> {
        let help = self
            .command(&["--help"])
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let partitions = help.contains("partition");
        if !partitions && kinds.contains(&Kind::Partition) {
            println!("soak: tests/stack has no `partition` command: no black-holed hosts this run");
        }
        kinds
            .iter()
            .copied()
            .filter(|k| partitions || *k != Kind::Partition)
            .collect()
    }

    /// Runs `fault`, remembering `undo` first: a fault that half-happened is undone too.
    async fn fault(&mut self, fault: &[&str], undo: &[&str]) -> Result<()> {
        self.pending = Some(undo.iter().map(|s| s.to_string()).collect());
        self.run(fault).await?;
        Ok(())
    }

    async fn undo(&mut self) -> Result<Duration> {
        let Some(undo) = self.pending.clone() else {
            return Ok(Duration::ZERO);
        };
        let args: Vec<&str> = undo.iter().map(String::as_str).collect();
        let took = self.run(&args).await?;
        self.pending = None;
        Ok(took)
    }

    /// The end of the soak, whatever happened: the pending undo, if any.
    async fn heal(&mut self) -> Result<()> {
        if let Some(undo) = &self.pending {
            println!("soak: healing the bed: tests/stack {}", undo.join(" "));
        }
        self.undo().await.map(|_| ())
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(undo) = self.pending.take() {
            eprintln!(
                "soak: healing the bed on the way out: tests/stack {}",
                undo.join(" ")
            );
            let status = std::process::Command::new(&self.stack)
                .args(&undo)
                .env("STACK_TOPOLOGY", "cluster")
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!(
                    "soak: tests/stack {} failed: {status:?}; run it by hand",
                    undo.join(" ")
                );
            }
        }
    }
}

/// The repository: this crate's source tree when it is still there, else the nearest
/// directory above the working directory that has tests/stack.
fn repo_root() -> Result<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("tests/stack").exists() {
        return Ok(built.canonicalize()?);
    }
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|d| d.join("tests/stack").exists())
        .map(Path::to_path_buf)
        .context("no tests/stack above the working directory (pass --stack)")
}

// ------------------------------------------------------------------------------- replicas

/// The consumer replicas: one slot each, keeping its /metrics address and log file across
/// restarts, so a minute's figures follow the slot, whichever process fills it.
struct Fleet {
    bin: PathBuf,
    flags: Vec<String>,
    slots: Vec<Slot>,
    /// Each slot's live pid, for the monitor's /proc reads.
    pids: Arc<Vec<AtomicU32>>,
    /// Replicas that exited without being killed (each restarted): a failed check.
    crashes: Vec<String>,
}

struct Slot {
    addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Fleet {
    fn new(args: &Args, bin: PathBuf, names: &Names, log_dir: &Path) -> Result<Fleet> {
        let mut flags: Vec<String> = [
            "--bootstrap-servers",
            args.bootstrap_servers.as_str(),
            "--schema-registry-url",
            args.schema_registry_url.as_str(),
            "--cassandra-contact-points",
            args.cassandra_contact_points.as_str(),
            "--topic",
            names.topic.as_str(),
            "--dlq-topic",
            names.dlq.as_str(),
            "--group-id",
            names.group.as_str(),
            "--keyspace",
            names.keyspace.as_str(),
            "--cassandra-replication",
            REPLICATION,
            "--consistency",
            "QUORUM",
            "--progress-interval",
            "10s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.extend(topic_flags());
        let slots = (0..args.replicas)
            .map(|i| {
                Ok(Slot {
                    addr: process::free_addr()?,
                    log: log_dir.join(format!("replica-{}.log", i + 1)),
                    child: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pids = Arc::new((0..args.replicas).map(|_| AtomicU32::new(0)).collect());
        Ok(Fleet {
            bin,
            flags,
            slots,
            pids,
            crashes: Vec::new(),
        })
    }

    /// Starts slot `i`'s process; its output is appended to the slot's log file (a file, not
    /// a pipe: nobody reads a pipe while it runs, and a full one stalls the replica).
    fn spawn(&mut self, i: usize) -> Result<u32> {
        let slot = &mut self.slots[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)?;
        let child = Command::new(&self.bin)
            .args(&self.flags)
            .args(["--http-addr", &slot.addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let pid = child.id().context("pid")?;
        self.pids[i].store(pid, Relaxed);
        slot.child = Some(child);
        Ok(pid)
    }

    /// kill -9 slot `i`'s process and reap it.
    async fn kill(&mut self, i: usize) -> Result<u32> {
        let mut child = self.slots[i].child.take().context("replica not running")?;
        let pid = child.id().unwrap_or(0);
        self.pids[i].store(0, Relaxed);
        child.kill().await?;
        Ok(pid)
    }

    /// A replica that exited on its own is a finding; it is started again (as an orchestrator
    /// would) so the soak goes on.
    fn restart_crashed(&mut self, start: Instant) -> Result<()> {
        for i in 0..self.slots.len() {
            let Some(child) = self.slots[i].child.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait()? {
                let what = format!(
                    "replica {} exited on its own at {} ({status}; log {})",
                    i + 1,
                    stamp_now(start),
                    self.slots[i].log.display()
                );
                println!("soak: {what}; starting it again");
                self.crashes.push(what);
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// SIGTERM to every replica: each finishes in-flight work, commits and exits 0.
    async fn stop_all(&mut self) -> Result<()> {
        let mut failed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(mut child) = slot.child.take() else {
                continue;
            };
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                other => failed.push(format!("replica {}: {other:?}", i + 1)),
            }
        }
        ensure!(failed.is_empty(), "{}", failed.join("; "));
        Ok(())
    }
}

// -------------------------------------------------------------------------------- monitor

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
struct Minute {
    minute: u64,
    rows_per_s: f64,
    published: Option<i64>,
    p99: String,
    rss_mib: Vec<Option<f64>>,
    fds: Vec<Option<usize>>,
}

/// Scrapes every replica each second (so a restart loses at most a second of counts) and
/// prints a line each minute.
struct Monitor {
    task: tokio::task::JoinHandle<()>,
    minutes: Arc<Mutex<Vec<Minute>>>,
}

impl Monitor {
    fn start(fleet: &Fleet, kafka: Kafka, topic: &str, start: Instant) -> Monitor {
        let addrs: Vec<SocketAddr> = fleet.slots.iter().map(|s| s.addr).collect();
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
                    let body = process::scrape(&client, *addr).await;
                    if body.is_empty() {
                        continue; // down or restarting: counted at its next answer
                    }
                    let buckets = process::buckets(&body, END_TO_END);
                    if bounds.is_empty() {
                        bounds = buckets.iter().map(|b| b.0.clone()).collect();
                    }
                    let now = Scrape {
                        written: process::metric(&body, "consumer_rows_written_total"),
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

    fn stop(self) -> Vec<Minute> {
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

fn print_table(minutes: &[Minute], replicas: usize) {
    println!("soak: figures (RSS and fds per replica 1..{replicas}):");
    for m in minutes {
        println!("soak:   {}", minute_line(m));
    }
}

// ---------------------------------------------------------------------------------- Kafka

/// A plain rdkafka client for offsets and metadata; its blocking calls run off the runtime.
#[derive(Clone)]
struct Kafka {
    config: ClientConfig,
    client: Arc<BaseConsumer>,
}

impl Kafka {
    fn new(bootstrap: &str) -> Result<Kafka> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("enable.auto.commit", "false")
            // librdkafka logs every lost connection; a soak loses many on purpose.
            .set("log_level", "0");
        let client = config
            .clone()
            .set("group.id", "soak_observer")
            .create()
            .context("Kafka client")?;
        Ok(Kafka {
            config,
            client: Arc::new(client),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || f(&client)).await?
    }

    /// The partitions of `topic` (none while it does not exist).
    fn partitions(client: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
        let md = client.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        Ok(md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect())
    }

    /// End offset of each partition of `topic`, in partition order (empty if none).
    async fn end_offsets(&self, topic: &str) -> Result<Vec<i64>> {
        let topic = topic.to_string();
        self.blocking(move |c| {
            let mut parts = Kafka::partitions(c, &topic)?;
            parts.sort();
            parts
                .into_iter()
                .map(|p| Ok(c.fetch_watermarks(&topic, p, Duration::from_secs(5))?.1))
                .collect()
        })
        .await
    }

    /// Offsets `group` committed on `topic`, in partition order (-1: none yet).
    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<i64>> {
        let (group, topic) = (group.to_string(), topic.to_string());
        let mut config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = config.set("group.id", &group).create()?;
            let mut parts = Kafka::partitions(&c, &topic)?;
            parts.sort();
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in &parts {
                tpl.add_partition(&topic, *p);
            }
            let committed = c.committed_offsets(tpl, Duration::from_secs(10))?;
            Ok(parts
                .iter()
                .map(|p| {
                    committed
                        .find_partition(&topic, *p)
                        .and_then(|e| e.offset().to_raw())
                        .unwrap_or(-1)
                })
                .collect())
        })
        .await?
    }

    /// Ok when every broker is in the metadata and every partition of `topics` has all 3
    /// replicas in sync.
    async fn in_sync(&self, topics: &[String]) -> Result<()> {
        let topics = topics.to_vec();
        self.blocking(move |c| {
            let md = c.fetch_metadata(None, Duration::from_secs(5))?;
            ensure!(
                md.brokers().len() == 3,
                "{} brokers in the metadata",
                md.brokers().len()
            );
            for t in md
                .topics()
                .iter()
                .filter(|t| topics.iter().any(|n| n == t.name()))
            {
                for p in t.partitions() {
                    ensure!(
                        p.isr().len() == 3,
                        "{}-{} in-sync replicas {:?}",
                        t.name(),
                        p.id(),
                        p.isr()
                    );
                }
            }
            Ok(())
        })
        .await
    }
}

// ------------------------------------------------------------------------------ the end

/// The last state of the wait for the pipeline to catch up.
#[derive(Debug, Default)]
struct Settled {
    rows: u64,
    ids: u64,
    end: Vec<i64>,
    committed: Vec<i64>,
    dead_letters: i64,
    error: Option<String>,
    took: Duration,
}

impl Settled {
    fn done(&self, published: u64) -> bool {
        self.error.is_none()
            && self.rows == published
            && self.ids == published
            && self.end.iter().sum::<i64>() == published as i64
            && self.committed == self.end
    }

    fn judge(&self, verdict: &mut Verdict, published: u64) {
        if let Some(e) = &self.error {
            verdict.check("read back", false, e.clone());
        }
        verdict.check(
            "every user one row at QUORUM",
            self.rows == published && self.ids == published,
            format!(
                "{} rows, {} distinct ids, {published} published",
                self.rows, self.ids
            ),
        );
        verdict.check(
            "topic holds what was published",
            self.end.iter().sum::<i64>() == published as i64,
            format!(
                "end offsets sum {}, published {published}",
                self.end.iter().sum::<i64>()
            ),
        );
        verdict.check(
            "no dead letters",
            self.dead_letters == 0,
            format!("{} on the DLQ", self.dead_letters),
        );
        verdict.check(
            "offsets committed",
            self.committed == self.end && !self.end.is_empty(),
            format!("committed {:?}, end {:?}", self.committed, self.end),
        );
    }
}

/// Polls until every published user is one row at QUORUM and the group committed every
/// offset, or `--settle` passes; returns the last state either way.
async fn settle(
    args: &Args,
    session: &Session,
    kafka: &Kafka,
    names: &Names,
    published: u64,
    start: Instant,
) -> Settled {
    let began = Instant::now();
    loop {
        let mut state = observe(session, kafka, names)
            .await
            .unwrap_or_else(|e| Settled {
                error: Some(format!("{e:#}")),
                ..Settled::default()
            });
        state.took = began.elapsed();
        if state.done(published) || began.elapsed() > args.settle {
            println!(
                "soak: {} settled in {:.0}s: {} rows, {} distinct ids, committed {} of {}",
                stamp_now(start),
                state.took.as_secs_f64(),
                state.rows,
                state.ids,
                state.committed.iter().map(|c| c.max(&0)).sum::<i64>(),
                state.end.iter().sum::<i64>()
            );
            return state;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn observe(session: &Session, kafka: &Kafka, names: &Names) -> Result<Settled> {
    let (rows, ids) = rows_at_quorum(session, &names.keyspace).await?;
    let end = kafka.end_offsets(&names.topic).await?;
    let committed = kafka.committed(&names.group, &names.topic).await?;
    let dead_letters = kafka.end_offsets(&names.dlq).await?.iter().sum();
    Ok(Settled {
        rows,
        ids,
        end,
        committed,
        dead_letters,
        ..Settled::default()
    })
}

/// (rows, distinct ids) of the run's table, read at QUORUM page by page.
async fn rows_at_quorum(session: &Session, keyspace: &str) -> Result<(u64, u64)> {
    let mut statement = Statement::new(format!("SELECT id FROM {keyspace}.created_users"));
    statement.set_consistency(Consistency::Quorum);
    statement.set_page_size(5000);
    let mut ids = std::collections::HashSet::new();
    let mut rows = 0;
    let mut paging = PagingState::start();
    loop {
        let (result, next) = session
            .query_single_page(statement.clone(), (), paging)
            .await
            .context("SELECT at QUORUM")?;
        for row in result.into_rows_result()?.rows::<(uuid::Uuid,)>()? {
            ids.insert(row?.0);
            rows += 1;
        }
        match next.into_paging_control_flow() {
            std::ops::ControlFlow::Break(()) => break,
            std::ops::ControlFlow::Continue(state) => paging = state,
        }
    }
    Ok((rows, ids.len() as u64))
}

/// RSS and open files per replica, the last minute of the run over the second (the first is
/// start-up: connections, caches, the JIT of the other side). A replica restarted in between
/// starts lower, so it can hide a leak but never fake one.
fn flatness(verdict: &mut Verdict, minutes: &[Minute], duration: Duration, max: f64) {
    let during: Vec<&Minute> = minutes
        .iter()
        .filter(|m| m.minute * 60 <= duration.as_secs())
        .collect();
    let (Some(first), Some(last)) = (during.get(1).or(during.first()), during.last()) else {
        verdict.check("RSS flat", false, "no minute figures".into());
        return;
    };
    let rss = growth(&first.rss_mib, &last.rss_mib);
    let fds = growth(
        &first
            .fds
            .iter()
            .map(|f| f.map(|f| f as f64))
            .collect::<Vec<_>>(),
        &last
            .fds
            .iter()
            .map(|f| f.map(|f| f as f64))
            .collect::<Vec<_>>(),
    );
    for (what, ratios) in [("RSS flat", rss), ("open files flat", fds)] {
        let worst = ratios.iter().flatten().copied().fold(0.0, f64::max);
        let mut detail = String::new();
        for (i, r) in ratios.iter().enumerate() {
            let _ = write!(
                detail,
                "replica {}: {} ",
                i + 1,
                r.map_or("-".into(), |r| format!("x{r:.2}"))
            );
        }
        let _ = write!(
            detail,
            "(minute {} -> {}, limit x{max:.2})",
            first.minute, last.minute
        );
        verdict.check(
            what,
            worst <= max && ratios.iter().any(Option::is_some),
            detail,
        );
    }
}

fn growth(from: &[Option<f64>], to: &[Option<f64>]) -> Vec<Option<f64>> {
    from.iter()
        .zip(to)
        .map(|(a, b)| Some(b.as_ref()? / a.filter(|a| *a > 0.0)?))
        .collect()
}

/// The checks, printed as they are made; a failed one names itself in the exit error.
#[derive(Default)]
struct Verdict {
    failed: Vec<&'static str>,
}

impl Verdict {
    fn check(&mut self, name: &'static str, ok: bool, detail: String) {
        println!(
            "soak: {} {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            self.failed.push(name);
        }
    }

    fn finish(self) -> Result<()> {
        ensure!(
            self.failed.is_empty(),
            "soak failed: {}",
            self.failed.join(", ")
        );
        println!("soak: PASSED");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_reads_two_durations_or_one() {
        let s = Span::parse("30s..60s").unwrap();
        assert_eq!(
            (s.0, s.1),
            (Duration::from_secs(30), Duration::from_secs(60))
        );
        let s = Span::parse("45s").unwrap();
        assert_eq!(
            (s.0, s.1),
            (Duration::from_secs(45), Duration::from_secs(45))
        );
        assert!(Span::parse("60s..30s").is_err());
        let mut rng = StdRng::seed_from_u64(1);
        let d = Span::parse("20s..30s").unwrap().pick(&mut rng);
        assert!(d >= Duration::from_secs(20) && d <= Duration::from_secs(30));
    }

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
