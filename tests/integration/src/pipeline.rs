//! Steps shared by the consumer tests: publish users with the real producer,
//! run the real consumer, read the rows back.

use std::time::Duration;

use domain::{ApiPage, User, UserRow};
use serde_json::json;

use crate::api::FakeApi;
use crate::bins::{self, Output};
use crate::Services;

pub const LIMIT: Duration = Duration::from_secs(300);

/// One test's private topic, DLQ, group and keyspace.
#[derive(Debug, Clone)]
pub struct Lane {
    pub topic: String,
    pub dlq: String,
    pub group: String,
    pub keyspace: String,
}

impl Lane {
    pub fn new(name: &str) -> Lane {
        let topic = crate::unique(name);
        Lane {
            dlq: format!("{topic}.dlq"),
            group: format!("{topic}_writer"),
            keyspace: format!("ks_{topic}"),
            topic,
        }
    }

    /// Publishes `count` users through the producer binary; returns them as parsed.
    pub async fn publish(&self, services: &Services, count: usize) -> Vec<User> {
        let api = FakeApi::start().await;
        let mut cmd = bins::command("producer", services);
        cmd.args([
            "--api-url",
            &api.url(),
            "--topic",
            &self.topic,
            "--count",
            &count.to_string(),
        ]);
        let out = bins::run(cmd, LIMIT).await;
        assert!(out.success, "producer failed: {out}");
        assert_eq!(out.summary("published"), count as u64);
        ApiPage::parse(json!({ "results": api.served() }).to_string().as_bytes())
            .expect("served users parse")
            .users
    }

    pub fn consumer(&self, services: &Services, extra: &[&str]) -> tokio::process::Command {
        let mut cmd = bins::command("consumer", services);
        cmd.args([
            "--topic",
            &self.topic,
            "--dlq-topic",
            &self.dlq,
            "--group-id",
            &self.group,
        ])
        .args(["--keyspace", &self.keyspace])
        .env("CONSUMER_HTTP_ADDR", "127.0.0.1:0")
        // From the environment, so that `extra` may set its own.
        .env("CONSUMER_PROGRESS_INTERVAL", "2s")
        .args(["--retry-backoff", "50ms", "--retry-max-backoff", "1s"])
        .args(extra);
        cmd
    }

    /// Runs the consumer until it has been idle for a few seconds.
    pub async fn consume(&self, services: &Services, extra: &[&str]) -> Output {
        let out = bins::run(
            self.consumer(services, &[&["--exit-when-idle", "5s"], extra].concat()),
            LIMIT,
        )
        .await;
        assert!(out.success, "consumer failed: {out}");
        out
    }

    pub async fn rows(&self, services: &Services) -> Vec<UserRow> {
        let session = services.cassandra_session().await;
        let result = session
            .query_unpaged(UserRow::select_cql(&self.keyspace), ())
            .await
            .expect("select rows")
            .into_rows_result()
            .expect("rows result");
        let mut rows: Vec<UserRow> = result
            .rows::<UserRow>()
            .expect("typed rows")
            .map(|r| r.expect("row"))
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    pub async fn count(&self, services: &Services) -> i64 {
        let session = services.cassandra_session().await;
        // Before the consumer created the table there is nothing to count; any
        // other failure is a failure of the test, not zero rows.
        let tables = session
            .query_unpaged(
                "SELECT table_name FROM system_schema.tables \
                 WHERE keyspace_name = ? AND table_name = 'created_users'",
                (&self.keyspace,),
            )
            .await
            .expect("look up the table")
            .into_rows_result()
            .expect("table rows");
        if tables.rows_num() == 0 {
            return 0;
        }
        // A table just created is listed a moment before every node serves it:
        // give it a few seconds, then report what Cassandra says.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let result = loop {
            match session
                .query_unpaged(
                    format!("SELECT COUNT(*) FROM {}.created_users", self.keyspace),
                    (),
                )
                .await
            {
                Ok(result) => break result,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("count not answered yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("counting rows of {}: {e}", self.keyspace),
            }
        };
        result
            .into_rows_result()
            .expect("count result")
            .single_row::<(i64,)>()
            .expect("one count")
            .0
    }
}
