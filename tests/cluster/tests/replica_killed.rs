//! A consumer replica SIGKILLed mid-run: the group gives its partitions to the other two
//! (their /metrics show all six), and every record still becomes exactly one row.

use std::time::Duration;

use cluster_tests::{
    dead_lettered, held_and_written, partitions_of, start_producer, wait_all_written, wait_for,
    Replica, PARTITIONS,
};
use integration::bins;
use integration::pipeline::Lane;
use integration::Services;

const COUNT: u64 = 20_000;

// Several threads: the fake API serves the producer from this process (see blackhole.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_partitions_move_to_the_others_and_nothing_is_lost() {
    let s = Services::from_env();
    let lane = Lane::new("replicakill");
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::spawn(&lane, &s, "QUORUM"))
        .collect();
    let (_api, mut producer) = start_producer(&lane, &s, COUNT, 2000).await;

    let victim_partitions = wait_for(
        "each replica holds 2 partitions and writes",
        Duration::from_secs(120),
        || async {
            let (held, written) = held_and_written(&replicas).await;
            if held.iter().all(|p| p.len() == PARTITIONS / 3) && written[0] > 0 {
                Ok(held[0].clone())
            } else {
                let idle: Vec<String> = replicas
                    .iter()
                    .zip(&held)
                    .filter(|(_, p)| p.is_empty())
                    .map(|(r, _)| r.log_tail())
                    .collect();
                Err(format!(
                    "partitions {held:?}, rows {written:?}; replicas without partitions: {}",
                    idle.join("\n")
                ))
            }
        },
    )
    .await;
    assert!(
        producer.try_wait().expect("producer state").is_none(),
        "the producer is still publishing when the replica dies"
    );

    // SIGKILL: no revoke, no last commit; its uncommitted records are redelivered.
    let mut victim = replicas.remove(0);
    victim.child.start_kill().expect("kill replica");
    victim.child.wait().await.expect("reap replica");

    let taken = wait_for(
        "the two survivors hold all six partitions",
        Duration::from_secs(120),
        || async {
            let mut held = Vec::new();
            for r in &replicas {
                held.push(partitions_of(&r.metrics().await));
            }
            let mut all: Vec<i32> = held.concat();
            all.sort();
            if all == (0..PARTITIONS as i32).collect::<Vec<_>>() {
                Ok(held)
            } else {
                Err(format!("survivors hold {held:?}"))
            }
        },
    )
    .await;
    eprintln!("the killed replica held {victim_partitions:?}; now {taken:?}");

    let out = bins::finish(producer, Duration::from_secs(300)).await;
    assert!(out.success, "{out}");
    assert_eq!(out.summary("published"), COUNT, "{out}");

    wait_all_written(&s, &lane, COUNT).await;
    assert_eq!(dead_lettered(&s, &lane), 0);
    for mut r in replicas {
        assert!(r.running(), "the survivors keep running");
    }
}
