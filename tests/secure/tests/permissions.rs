//! The pipeline's Cassandra role loses its write permission while the consumer runs. A
//! refusal that passes (a node that cannot read its auth tables yet answers `Unauthorized`
//! too) is retried and nothing is lost; one that lasts `--refused-write-retry` stops the
//! consumer, naming the setting and the permission to check, with only the written rows'
//! offsets committed and nothing dead-lettered: the role is at fault, not the records.

use std::time::{Duration, Instant};

use common::fault::cassandra::db_error;
use integration::bins;
use integration::kafka::{committed, record_count};
use integration::pipeline::{Lane, LIMIT};
use scylla::errors::DbError;
use secure_tests::{assert_no_secret, free_addr, until_metrics, Secure};

/// The secure bed's Cassandra superuser (tests/stack.d/services/secure.py), Cassandra's own
/// default: only it may grant and revoke the pipeline role's permissions.
const SUPERUSER: (&str, &str) = ("cassandra", "cassandra");
/// Long enough to see a refusal retried and lift it, short enough for a test.
const REFUSED_WRITE_RETRY: Duration = Duration::from_secs(30);

fn cassandra_retries(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("consumer_retries_total{") && l.contains("\"cassandra\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn a_write_permission_lost_is_retried_while_it_may_pass_and_fatal_once_it_lasts() {
    let s = Secure::from_env();
    let lane = Lane::new("revoked_modify");
    let admin = s
        .services
        .cassandra_session_as(SUPERUSER.0, SUPERUSER.1)
        .await;
    let pipeline = s.services.cassandra_session().await;
    let table = format!("{}.created_users", lane.keyspace);
    // The consumer created the table, so its role holds every permission on it as well.
    let revoke = async || {
        for on in [
            format!("KEYSPACE {}", lane.keyspace),
            format!("TABLE {table}"),
        ] {
            let cql = format!("REVOKE MODIFY ON {on} FROM pipeline");
            admin
                .query_unpaged(cql.clone(), ())
                .await
                .unwrap_or_else(|e| panic!("{cql}: {e}"));
        }
        // Nodes cache a role's permissions for a while (permissions_validity): wait until a
        // write of the same role to the same table is refused. A delete of a key nobody uses
        // needs the same permission and changes no row.
        let probe = format!("DELETE FROM {table} WHERE id = {}", uuid::Uuid::new_v4());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match pipeline.query_unpaged(probe.clone(), ()).await {
                Err(e) if matches!(db_error(&e), Some(DbError::Unauthorized)) => break,
                Err(e) => panic!("{probe}: {e}"),
                Ok(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "MODIFY still allowed 60 s after its revoke"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let grant = async || {
        let cql = format!("GRANT MODIFY ON KEYSPACE {} TO pipeline", lane.keyspace);
        admin
            .query_unpaged(cql.clone(), ())
            .await
            .unwrap_or_else(|e| panic!("{cql}: {e}"));
    };

    s.publish(&lane, 20).await;
    let addr = free_addr();
    let retry = format!("{}s", REFUSED_WRITE_RETRY.as_secs());
    let consumer = s
        .consumer(
            &lane,
            &["--http-addr", &addr, "--refused-write-retry", &retry],
        )
        .spawn()
        .expect("spawn consumer");
    until_metrics(&addr, "20 rows written", |m| {
        bed::sample_sum(m, "consumer_rows_written_total") == 20
    })
    .await;

    // Lost for a moment: refused, retried, written once the permission is back.
    revoke().await;
    s.publish(&lane, 20).await;
    until_metrics(&addr, "the refused writes retried", |m| {
        cassandra_retries(m) > 0
    })
    .await;
    grant().await;
    until_metrics(&addr, "40 rows written", |m| {
        bed::sample_sum(m, "consumer_rows_written_total") == 40
    })
    .await;

    // Lost for good: fatal after the retry, with only the written rows committed.
    revoke().await;
    s.publish(&lane, 20).await;
    let out = bins::finish(consumer, LIMIT).await;
    assert!(!out.success, "the consumer stops: {out}");
    assert!(
        out.stderr.contains("CONSUMER_REFUSED_WRITE_RETRY") && out.stderr.contains("permissions"),
        "the error names the setting and what to check: {out}"
    );
    assert_no_secret(
        "the consumer's output",
        out.to_string().as_bytes(),
        &s.secrets(),
    );
    assert_eq!(lane.count(&s.services).await, 40, "the rows written before");
    assert_eq!(committed(&s.services, &lane.group, &lane.topic), 40);
    assert_eq!(
        record_count(&s.services, &lane.dlq),
        0,
        "no record is blamed"
    );
}
