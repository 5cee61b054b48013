//! Three consumer replicas started at the same instant on a keyspace that does not exist yet
//! (RF 3, NetworkTopologyStrategy on the 3-node ring), as a deployment rolling out three pods
//! at once does: each creates the keyspace and the table concurrently with the others, and
//! every one of them must come up ready (/healthz answers 200 only once the Cassandra schema
//! is applied) instead of dying on the schema step (e.g. "Keyspace ... doesn't exist" on
//! CREATE TABLE while another replica's CREATE KEYSPACE is still settling on the ring).
//! Every node then holds the table under the one id every replica asked for: two replicas'
//! CREATE TABLE going through different nodes with ids of their own would have made Cassandra
//! drop one of the two tables (and the rows written to it) when the schemas merged.
//! Ten rounds, each on a brand-new lane; nothing is published.

use std::time::{Duration, Instant};

use cluster_tests::{table_ids, Replica};
use integration::pipeline::Lane;
use integration::Services;

const ROUNDS: usize = 10;
const REPLICAS: usize = 3;
/// Topic creation, registry, keyspace and table on a loaded 2-core machine: seconds, not minutes.
const READY_WITHIN: Duration = Duration::from_secs(90);

#[tokio::test]
async fn replicas_started_at_once_on_a_new_keyspace_all_become_ready() {
    let s = Services::from_env();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client");
    for round in 1..=ROUNDS {
        let lane = Lane::new("startrace");
        // Back to back, no waits: the three race on the same CREATE KEYSPACE / CREATE TABLE.
        let mut replicas: Vec<Replica> = (0..REPLICAS)
            .map(|_| Replica::spawn(&lane, &s, "QUORUM"))
            .collect();
        let started = Instant::now();
        let mut outcome = all_ready(&http, &mut replicas, started).await;
        if outcome.is_ok() {
            if let Err(why) = one_table_id(&s, &lane.keyspace).await {
                outcome = Err(why);
            }
        }
        for r in &mut replicas {
            let _ = r.child.start_kill();
            let _ = r.child.wait().await;
        }
        match outcome {
            Ok(took) => eprintln!(
                "round {round}/{ROUNDS} ({}): all {REPLICAS} replicas ready in {took:?}",
                lane.keyspace
            ),
            Err(why) => panic!(
                "round {round}/{ROUNDS} ({}): {why}\n{}",
                lane.keyspace,
                replicas
                    .iter()
                    .map(Replica::log_tail)
                    .collect::<Vec<_>>()
                    .join("\n\n")
            ),
        }
    }
}

/// Every node holds the lane's table under `domain::row::table_id`.
async fn one_table_id(s: &Services, keyspace: &str) -> Result<(), String> {
    let expected = domain::row::table_id(keyspace);
    let ids = table_ids(s, keyspace).await?;
    if ids.len() == 3 && ids.iter().all(|(_, id)| *id == expected) {
        Ok(())
    } else {
        Err(format!(
            "table ids per node {ids:?}, every replica created {expected}"
        ))
    }
}

/// Ok(time to ready) once every replica answers /healthz with 200 and all still run; Err as
/// soon as one has exited (its schema step failed) or after READY_WITHIN.
async fn all_ready(
    http: &reqwest::Client,
    replicas: &mut [Replica],
    started: Instant,
) -> Result<Duration, String> {
    loop {
        let mut states = Vec::new();
        for r in replicas.iter_mut() {
            if let Some(status) = r.child.try_wait().expect("wait consumer") {
                return Err(format!(
                    "replica {} exited ({status}) {:?} after start, before it was ready",
                    r.addr,
                    started.elapsed()
                ));
            }
            let ready = match http.get(format!("http://{}/healthz", r.addr)).send().await {
                Ok(resp) if resp.status().is_success() => "ready".to_string(),
                Ok(resp) => format!(
                    "{} {}",
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default().trim()
                ),
                Err(_) => "no answer".to_string(),
            };
            states.push(ready);
        }
        if states.iter().all(|s| s == "ready") {
            return Ok(started.elapsed());
        }
        if started.elapsed() > READY_WITHIN {
            return Err(format!(
                "not all replicas ready within {READY_WITHIN:?}: {states:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
