//! Rows that arrive together share requests: by default (`--batch-max-rows 10`), a consumer
//! whose poll loop hands the writer several decoded rows at once writes them in batches
//! (fewer requests than rows, every user one row); with `--batch-max-rows 1`, each row on its
//! own. Counted by the consumer's own `/metrics`.

use std::time::{Duration, Instant};

use consumer::pipeline::batch::{group, Batching};
use domain::row::{schema_statements, TimedRow};
use domain::UserRow;
use integration::bins;
use integration::pipeline::Lane;
use integration::Services;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

const USERS: u64 = 300;

/// The consumer's rows written and write requests, once `rows` rows are written.
async fn once_written(client: &reqwest::Client, addr: &str, rows: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = bed::scrape(client, addr).await;
        let written = bed::sample_sum(&text, "consumer_rows_written_total");
        if written >= rows {
            return (
                written,
                bed::sample_sum(&text, "consumer_write_requests_total"),
            );
        }
        assert!(
            Instant::now() < deadline,
            "{written} of {rows} rows written:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running consumer of a new lane with `extra` flags: one user first (the first record of
/// a schema is decoded by the writer, after asking the registry; the poll loop decodes the
/// ones after it), then `USERS` more. Returns the rows written and requests for those.
async fn rows_and_requests(s: &Services, name: &str, extra: &[&str]) -> (u64, u64) {
    let lane = Lane::new(name);
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").to_string()
    };
    let mut cmd = lane.consumer(s, extra);
    cmd.args(["--http-addr", &addr]);
    let child = cmd.spawn().expect("spawn consumer");
    let client = reqwest::Client::new();
    lane.publish(s, 1).await;
    let (_, first) = once_written(&client, &addr, 1).await;
    lane.publish(s, USERS as usize).await;
    let (rows, requests) = once_written(&client, &addr, USERS + 1).await;
    bins::terminate(&child);
    let out = bins::finish(child, Duration::from_secs(60)).await;
    assert!(out.success, "{out}");
    assert_eq!(lane.count(s).await, USERS as i64 + 1, "every user one row");
    (rows - 1, requests - first)
}

#[tokio::test]
async fn rows_ready_together_share_requests_by_default_and_go_one_by_one_with_batches_off() {
    let s = Services::from_env();
    let (rows, requests) = rows_and_requests(&s, "batching", &[]).await;
    eprintln!("batched: {rows} rows in {requests} requests");
    assert_eq!(rows, USERS);
    assert!(
        requests * 2 <= rows,
        "rows ready together share requests: {rows} rows in {requests} requests"
    );
    let alone = rows_and_requests(&s, "batching_off", &["--batch-max-rows", "1"]).await;
    assert_eq!(alone, (USERS, USERS), "one request per row");
}

/// Batches are sized as Cassandra counts them: cut by the writer's grouping at the consumer's
/// defaults (5 120 bytes, Cassandra's `batch_size_warn_threshold`; 10 rows, its
/// `unlogged_batch_across_partitions_warn_threshold`), none draws a warning; and for a batch
/// over the threshold on purpose, Cassandra's own count of its size (in its warning) is
/// covered by the rows' estimate, within 10 %.
#[tokio::test]
async fn batches_cut_at_the_limits_draw_no_warning_from_cassandra() {
    let s = Services::from_env();
    let session = s.cassandra_session().await;
    let keyspace = format!(
        "batch_size_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
    for statement in schema_statements(&keyspace, replication) {
        session
            .query_unpaged(statement, ())
            .await
            .expect("create the table");
    }
    session
        .await_schema_agreement()
        .await
        .expect("schema agreement");
    let insert = session
        .prepare(UserRow::insert_cql(&keyspace))
        .await
        .expect("prepare the INSERT");
    let rows = integration::api::rows(200);
    let limits = Batching {
        max_rows: 10,
        max_bytes: 5120,
    };
    // One node, one replica set: what is measured here is the size.
    let batches = group(rows.iter(), &limits, |row| Some(*row), |_| ());
    let most = batches.iter().map(Vec::len).max().unwrap_or(0);
    eprintln!(
        "{} rows in {} batches of up to {most} rows",
        rows.len(),
        batches.len()
    );
    assert!(most > 1, "the rows were not batched at all");
    for batch in batches {
        let estimate: usize = batch.iter().map(|r| r.row.size()).sum();
        let (n, warnings) = (batch.len(), send(&session, &insert, &batch).await);
        assert!(
            warnings.is_empty(),
            "a batch of {n} rows, {estimate} bytes by the rows' estimate, drew {warnings:?}"
        );
    }

    let over: Vec<&TimedRow> = rows.iter().take(9).collect();
    let estimate: usize = over.iter().map(|r| r.row.size()).sum();
    let warnings = send(&session, &insert, &over).await;
    let counted: usize = warnings
        .iter()
        .find_map(|w| {
            let size = w.split("is of size ").nth(1)?;
            size.split(',').next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no size warning for {estimate} bytes: {warnings:?}"));
    eprintln!("9 rows: {estimate} bytes estimated, {counted} counted by Cassandra");
    assert!(
        estimate >= counted && estimate * 10 <= counted * 11,
        "the rows' estimate, {estimate} bytes, does not cover Cassandra's {counted} within 10 %"
    );
    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), ())
        .await
        .expect("drop the keyspace");
}

/// Writes `rows` in one unlogged batch; Cassandra's warnings about it.
async fn send(session: &Session, insert: &PreparedStatement, rows: &[&TimedRow]) -> Vec<String> {
    let mut batch = Batch::new(BatchType::Unlogged);
    for _ in rows {
        batch.append_statement(insert.clone());
    }
    let result = session.batch(&batch, rows).await.expect("write a batch");
    result.warnings().map(str::to_string).collect()
}
