//! A replica with a static group membership (`--group-instance-id`) SIGKILLed and started
//! again, as Compose's restart policy or a rolling upgrade does: it takes its own partitions
//! back at once, before its session could have expired, and the other replica's partitions
//! never move. With dynamic membership the coordinator keeps the dead member's partitions
//! until its session expires (45 s), so the restarted replica would wait that long.

use std::time::{Duration, Instant};

use cluster_tests::{
    dead_lettered, start_stream, stop_stream, wait_each_writes, wait_for, wait_partitions_shared,
    Replica,
};
use integration::pipeline::Lane;
use integration::Services;

/// The consumer's `session.timeout.ms` (crates/consumer/src/pipeline/mod.rs).
const SESSION: Duration = Duration::from_secs(45);

// Several threads: the fake API serves the producer from this process (see blackhole.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_member_takes_its_partitions_back_before_its_session_expires() {
    let s = Services::from_env();
    let lane = Lane::new("replicarestart");
    let names = [format!("{}-a", lane.topic), format!("{}-b", lane.topic)];
    let member =
        |name: &str| Replica::spawn_with(&lane, &s, "QUORUM", &["--group-instance-id", name]);
    let mut replicas: Vec<Replica> = names.iter().map(|n| member(n)).collect();
    let held = wait_partitions_shared(&replicas).await;
    let (_api, producer) = start_stream(&lane, &s, 500).await;
    wait_each_writes(&replicas).await;

    // SIGKILL: no revoke, no commit, and a static member never sends LeaveGroup anyway.
    let mut victim = replicas.remove(0);
    victim.child.start_kill().expect("kill replica");
    victim.child.wait().await.expect("reap replica");
    let killed = Instant::now();
    let other = replicas.remove(0);
    let other_log = std::fs::read_to_string(&other.log)
        .unwrap_or_default()
        .len();

    let back = member(&names[0]);
    let back_in = wait_for(
        "the restarted replica holds its old partitions and writes",
        SESSION,
        || async {
            let (partitions, written) = (
                back.partitions().await,
                back.metric("consumer_rows_written_total").await,
            );
            if partitions == held[0] && written > 0 {
                Ok(killed.elapsed())
            } else {
                Err(format!(
                    "holds {partitions:?} (had {:?}), {written} rows\n{}",
                    held[0],
                    back.log_tail()
                ))
            }
        },
    )
    .await;
    eprintln!(
        "the restarted replica wrote its own partitions again {:.1} s after the kill \
         (its session: {SESSION:?})",
        back_in.as_secs_f64()
    );
    assert!(
        back_in < SESSION,
        "back before the session could expire: {back_in:?}"
    );

    stop_stream(producer, &s, &lane, "the kill and the restart").await;
    assert_eq!(dead_lettered(&s, &lane), 0);
    // The other replica wrote through it all and nothing of its own ever moved.
    assert_eq!(other.partitions().await, held[1], "{}", other.log_tail());
    let since = std::fs::read_to_string(&other.log).unwrap_or_default();
    assert!(
        !since[other_log..].contains("partitions revoked"),
        "the other replica gave up nothing: {}",
        other.log_tail()
    );
    for mut r in [back, other] {
        assert!(r.running(), "every replica keeps running: {}", r.log_tail());
    }
}
