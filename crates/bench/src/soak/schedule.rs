//! The fault schedule: which member fails, when, for how long, and the wait for the bed to be
//! whole again before the next one.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bed::Kafka;
use rand::rngs::StdRng;
use rand::Rng;
use scylla::client::session::Session;

use super::control::{Bed, Kind};
use super::fleet::Fleet;
use super::{stamp_now, Names};
use crate::process::{self, Watched};

/// A range of durations, "30s..60s" (or one duration, "45s").
#[derive(Debug, Clone, Copy)]
pub struct Span(Duration, Duration);

impl Span {
    pub(super) fn parse(text: &str) -> Result<Span, String> {
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

/// What the fault schedule needs of the soak's flags: when faults may happen, how far apart, how
/// long each holds, and how long the bed may take to heal.
#[derive(Debug, Clone)]
pub(super) struct ScheduleSettings {
    /// Faults start only while the producer is meant to be publishing.
    pub(super) duration: Duration,
    pub(super) fault_every: Span,
    pub(super) outage: Span,
    pub(super) downtime: Span,
    pub(super) heal_timeout: Duration,
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

/// The fault loop, while the producer runs: a fault at a random moment, undone, the bed
/// whole again, the next. Returns the producer's end and the number of faults done.
#[allow(clippy::too_many_arguments)]
pub(super) async fn chaos(
    settings: &ScheduleSettings,
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
    let end = start + settings.duration;
    let mut next = start + settings.fault_every.pick(rng);
    let mut faults = 0;
    while producer.exited()?.is_none() {
        fleet.restart_crashed(start)?;
        if Instant::now() >= next && Instant::now() < end {
            let began = Instant::now();
            faults += 1;
            let fault = Fault::draw(kinds, fleet.replicas(), rng);
            inflict(settings, rng, bed, fleet, &fault, faults, start).await?;
            wait_whole(settings, kafka, session, names, start).await?;
            // From the fault's start, as drawn; never before the bed is whole again.
            next = (began + settings.fault_every.pick(rng)).max(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let produced = producer.wait(Duration::from_secs(60)).await?;
    Ok((produced, faults))
}

/// Does `fault` and undoes it, printing both.
async fn inflict(
    settings: &ScheduleSettings,
    rng: &mut StdRng,
    bed: &mut Bed,
    fleet: &mut Fleet,
    fault: &Fault,
    number: usize,
    start: Instant,
) -> Result<()> {
    let hold = match fault {
        Fault::Partition(_) => settings.outage.pick(rng),
        _ => settings.downtime.pick(rng),
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
    settings: &ScheduleSettings,
    kafka: &Kafka,
    session: &Session,
    names: &Names,
    start: Instant,
) -> Result<()> {
    let topics = [
        names.topic.clone(),
        names.dlq.clone(),
        "__consumer_offsets".into(),
    ];
    let took = bed::whole::wait(
        kafka,
        session,
        &topics,
        &names.keyspace,
        settings.heal_timeout,
    )
    .await
    .map_err(|e| {
        anyhow!(
            "the bed was not whole {} after a fault was undone: {e:#}",
            humantime::format_duration(settings.heal_timeout)
        )
    })?;
    println!(
        "soak: {} whole again after {:.0}s (all replicas in sync, every node answers)",
        stamp_now(start),
        took.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

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
}
