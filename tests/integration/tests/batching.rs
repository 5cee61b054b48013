//! Rows that arrive together share requests: with `--batch-max-rows 16`, a consumer whose
//! poll loop hands the writer several decoded rows at once writes them in batches (fewer
//! requests than rows, every user one row); with the default, 1, each row on its own.
//! Counted by the consumer's own `/metrics`.

use std::time::{Duration, Instant};

use integration::bins;
use integration::pipeline::Lane;
use integration::Services;

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
async fn rows_ready_together_share_requests_when_batching_and_go_one_by_one_by_default() {
    let s = Services::from_env();
    let (rows, requests) = rows_and_requests(&s, "batching", &["--batch-max-rows", "16"]).await;
    eprintln!("batched: {rows} rows in {requests} requests");
    assert_eq!(rows, USERS);
    assert!(
        requests * 2 <= rows,
        "rows ready together share requests: {rows} rows in {requests} requests"
    );
    let alone = rows_and_requests(&s, "batching_off", &[]).await;
    assert_eq!(alone, (USERS, USERS), "one request per row");
}
