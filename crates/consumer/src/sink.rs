//! Cassandra: connect, create the keyspace and table from `schemas/cassandra.cql`,
//! and write rows with a prepared, idempotent INSERT.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::backoff::Backoff;
use domain::row::{schema_statements, UserRow};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use crate::cli::Args;

#[derive(Debug)]
pub struct Sink {
    session: Session,
    insert: PreparedStatement,
    contact_points: String,
}

impl Sink {
    /// Connects (retrying until `--cassandra-connect-timeout`), applies the
    /// schema and prepares the INSERT.
    pub async fn connect(args: &Args) -> Result<Sink> {
        let contact_points = args.cassandra_contact_points.join(",");
        let deadline = Instant::now() + args.cassandra_connect_timeout;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let session = loop {
            match Self::session(args).await {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(%contact_points, "Cassandra not reachable yet, retrying: {e:#}");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => bail!(
                    "Cassandra at {contact_points} did not accept a session within {:?}: {e:#}. \
                     Is it up and listening for CQL there (CASSANDRA_CONTACT_POINTS)? With \
                     PasswordAuthenticator, set CASSANDRA_USERNAME and CASSANDRA_PASSWORD.",
                    args.cassandra_connect_timeout
                ),
            }
        };
        for statement in schema_statements(&args.keyspace, &args.cassandra_replication) {
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .with_context(|| format!("applying schemas/cassandra.cql: {statement}"))?;
        }
        // Schema changes reach every node before the INSERT is prepared against them.
        session
            .await_schema_agreement()
            .await
            .context("waiting for schema agreement")?;
        let mut insert = session
            .prepare(UserRow::insert_cql(&args.keyspace))
            .await
            .context("preparing the INSERT into created_users")?;
        insert.set_is_idempotent(true);
        insert.set_consistency(Consistency::LocalQuorum);
        Ok(Sink {
            session,
            insert,
            contact_points,
        })
    }

    async fn session(args: &Args) -> Result<Session> {
        let profile = ExecutionProfile::builder()
            .request_timeout(Some(args.write_timeout))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&args.cassandra_contact_points)
            .connection_timeout(Duration::from_secs(5))
            .default_execution_profile_handle(profile.into_handle());
        if let (Some(user), Some(password)) = (&args.cassandra_username, &args.cassandra_password) {
            builder = builder.user(user, password);
        }
        Ok(builder.build().await?)
    }

    /// Writes one row. Errors are transient from our point of view: the caller
    /// retries, since the offset must not move past an unwritten row.
    pub async fn write(&self, row: &UserRow) -> Result<()> {
        self.session
            .execute_unpaged(&self.insert, row)
            .await
            .with_context(|| {
                format!(
                    "writing row {} to Cassandra at {}",
                    row.id, self.contact_points
                )
            })?;
        Ok(())
    }

    /// A real query, for the readiness endpoint.
    pub async fn ping(&self) -> bool {
        self.session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .is_ok()
    }
}
