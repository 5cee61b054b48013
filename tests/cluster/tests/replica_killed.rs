//! A consumer replica SIGKILLed mid-run: the group gives its partitions to the other two
//! (their /metrics show all six), and every record still becomes exactly one row.

use std::time::Duration;

use cluster_tests::{
    dead_lettered, partitions_of, spawn_producer, wait_all_written, wait_for,
    wait_partitions_shared, Replica, PARTITIONS,
};
use integration::api::FakeApi;
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
    let victim_partitions = wait_partitions_shared(&replicas).await.swap_remove(0);

    // The replica dies mid-run by construction: the API holds the producer's second half
    // until it is dead (see node_faults.rs).
    let api = FakeApi::start().await;
    api.hold_after(COUNT as usize / 2);
    let mut producer = spawn_producer(&api, &lane, &s, COUNT, 2000);
    wait_for(
        "the replica to be killed writes",
        Duration::from_secs(120),
        || async {
            let written = replicas[0].metric("consumer_rows_written_total").await;
            if written > 0 {
                Ok(())
            } else {
                Err("no rows yet".to_string())
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
    api.release();

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
