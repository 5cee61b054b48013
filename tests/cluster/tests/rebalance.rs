//! A replica joining a busy group: with cooperative-sticky rebalancing the two replicas
//! already there give up only the partitions that move to the newcomer (one each) and
//! keep writing the others, instead of every replica dropping every partition. Prints
//! the writers' rows/s before the join and per second through it (the dip), and checks
//! that every record is still exactly one row.

use std::time::{Duration, Instant};

use cluster_tests::{
    dead_lettered, partitions_of, start_stream, stop_stream, wait_each_writes, wait_for,
    wait_partitions_shared, Replica, PARTITIONS,
};
use integration::pipeline::Lane;
use integration::Services;

const RATE: u64 = 300;

// Several threads: the fake API serves the producer from this process (see blackhole.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_replica_takes_only_the_partitions_that_move() {
    let s = Services::from_env();
    let lane = Lane::new("rebalance");
    let mut replicas: Vec<Replica> = (0..2)
        .map(|_| Replica::spawn(&lane, &s, "QUORUM"))
        .collect();
    wait_partitions_shared(&replicas).await;
    // A stream with no set end: the rows/s through the join are those of a live stream however
    // long the newcomer took to start.
    let (_api, producer) = start_stream(&lane, &s, RATE).await;
    wait_each_writes(&replicas).await;

    let before = rows_per_second(&replicas, Duration::from_secs(10)).await;
    // What the two logged so far (their own start-up rebalances) does not count.
    let logged: Vec<usize> = replicas.iter().map(|r| log_of(r).len()).collect();
    let spawned = Instant::now();
    replicas.push(Replica::spawn(&lane, &s, "QUORUM"));
    // Its start-up (Cassandra session and schema) is not the join: on a bed whose nodes were
    // restarted by the test before, it took from 5 s to over 2 min. The join is timed from
    // the moment it is ready to subscribe.
    wait_for(
        "the third replica is ready (Kafka, the registry and Cassandra answered)",
        Duration::from_secs(300),
        || async {
            match replicas[2].metric("consumer_ready").await {
                1 => Ok(()),
                _ => Err(replicas[2].log_tail()),
            }
        },
    )
    .await;
    let started_up = spawned.elapsed();
    let joined = Instant::now();

    // Per second through the join, until every replica holds two partitions.
    let mut through = Vec::new();
    let mut last = written(&replicas[..2]).await;
    loop {
        let second = Instant::now();
        let mut held = Vec::new();
        for r in &replicas {
            held.push(partitions_of(&r.metrics().await));
        }
        let settled = held.iter().all(|p| p.len() == PARTITIONS / 3);
        wait_until(second + Duration::from_secs(1)).await;
        let now = written(&replicas[..2]).await;
        through.push(now.saturating_sub(last));
        last = now;
        if settled && through.len() >= 5 {
            break;
        }
        assert!(
            joined.elapsed() < Duration::from_secs(120),
            "the group did not settle on 2 partitions each within 120 s of the newcomer being ready: \
             {held:?}\n{}",
            replicas[2].log_tail()
        );
    }
    let dip = through.iter().copied().min().unwrap_or(0);
    eprintln!(
        "rows/s of the two writers: {before:.0} before the join; per second through it: \
         {through:?}; lowest {dip} ({:.0} % of before); settled {:.1} s after the newcomer \
         was ready ({:.1} s after it was started)",
        dip as f64 / before.max(1.0) * 100.0,
        joined.elapsed().as_secs_f64(),
        started_up.as_secs_f64()
    );

    // Each of the two gave up exactly the one partition the newcomer took from it.
    for (r, from) in replicas[..2].iter().zip(logged) {
        let revoked = revoked_partitions(&log_of(r)[from..]);
        assert_eq!(
            revoked.len(),
            1,
            "an incremental rebalance revokes only the partition that moves; {} revoked \
             {revoked:?}\n{}",
            r.addr,
            r.log_tail()
        );
    }

    stop_stream(producer, &s, &lane, "the whole join").await;
    assert_eq!(dead_lettered(&s, &lane), 0);
    for mut r in replicas {
        assert!(r.running(), "every replica keeps running: {}", r.log_tail());
    }
}

/// Rows written by `replicas` so far.
async fn written(replicas: &[Replica]) -> u64 {
    let mut total = 0;
    for r in replicas {
        total += r.metric("consumer_rows_written_total").await;
    }
    total
}

/// Rows/s written by `replicas` over `window`.
async fn rows_per_second(replicas: &[Replica], window: Duration) -> f64 {
    let start = written(replicas).await;
    let begun = Instant::now();
    wait_until(begun + window).await;
    written(replicas).await.saturating_sub(start) as f64 / begun.elapsed().as_secs_f64()
}

/// Sleeps until `deadline`: a measurement window, not a synchronisation.
async fn wait_until(deadline: Instant) {
    tokio::time::sleep_until(deadline.into()).await;
}

fn log_of(replica: &Replica) -> String {
    std::fs::read_to_string(&replica.log).unwrap_or_default()
}

/// Every partition a log says was revoked (`partitions revoked partitions=[..]`).
fn revoked_partitions(log: &str) -> Vec<i32> {
    log.lines()
        .filter(|l| l.contains("partitions revoked"))
        .filter_map(|l| l.split("partitions=[").nth(1)?.split(']').next())
        .flat_map(|list| {
            list.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}
