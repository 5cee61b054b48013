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
        .args([
            "--retry-backoff",
            "50ms",
            "--retry-max-backoff",
            "1s",
            "--progress-interval",
            "2s",
        ])
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
        // Before the consumer created the table there is nothing to count.
        let Ok(result) = session
            .query_unpaged(
                format!("SELECT COUNT(*) FROM {}.created_users", self.keyspace),
                (),
            )
            .await
        else {
            return 0;
        };
        result
            .into_rows_result()
            .ok()
            .and_then(|rows| rows.single_row::<(i64,)>().ok())
            .map_or(0, |r| r.0)
    }
}
