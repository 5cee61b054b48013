//! Cassandra: connect, apply `schemas/cassandra.cql` (`schema`), and write rows
//! with a prepared, idempotent INSERT. Each failure comes with its class
//! (`common::fault::cassandra`, by its CQL error code).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use anyhow::Result;
use common::cassandra::CassandraArgs;
use common::fault::cassandra::write_verdict;
use common::fault::{Class, Fault};
use domain::row::{UserRow, TABLE};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;

use crate::schema::SchemaSettings;

#[derive(Debug)]
pub struct Sink {
    session: Session,
    insert: PreparedStatement,
    contact_points: String,
    keyspace: String,
    /// When a row was last written, in µs since `epoch` (0: none yet): whether other rows
    /// pass tells a row Cassandra refuses from a Cassandra that refuses every row.
    written_us: AtomicU64,
    epoch: Instant,
}

impl Sink {
    /// Connects (retrying until `--cassandra-connect-timeout`), applies the
    /// schema and prepares the INSERT.
    pub async fn connect(cassandra: &CassandraArgs) -> Result<Sink> {
        let contact_points = cassandra.contact_points();
        let session = cassandra.connect().await?;
        let schema = SchemaSettings::from(cassandra);
        let mut insert = crate::schema::apply(&session, &schema, &contact_points).await?;
        cassandra.configure_insert(&mut insert);
        Ok(Sink {
            session,
            insert,
            contact_points,
            keyspace: cassandra.keyspace.clone(),
            written_us: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Writes one row with the write timestamp `timestamp_us` (µs since the epoch: the
    /// record's own time, so that of two versions of a user the later record wins, whichever
    /// is written last: a replay or a fenced replica's late write cannot undo a newer one).
    /// A failure comes with its class: the caller retries a transient one (the offset must
    /// not move past an unwritten row) and stops on a fatal one.
    pub async fn write(&self, row: &UserRow, timestamp_us: i64) -> Result<(), Fault> {
        // A clone is a few pointers: the timestamp is the statement's, not a bound value.
        let mut insert = self.insert.clone();
        insert.set_timestamp(Some(timestamp_us));
        self.session
            .execute_unpaged(&insert, row)
            .await
            .map(|_| {
                // Never 0, which means "none yet".
                let now = self.epoch.elapsed().as_micros() as u64 + 1;
                self.written_us.fetch_max(now, Relaxed);
            })
            .map_err(|e| {
                let (class, lasting) = write_verdict(&e);
                let fix = if class == Class::Fatal {
                    " Cassandra refuses this write for good: check the table (schemas/cassandra.cql), \
                     CASSANDRA_KEYSPACE and the role's permissions."
                } else {
                    ""
                };
                let fault = Fault::new(
                    class,
                    "cassandra",
                    format!(
                        "writing row {} to Cassandra at {}: {e}.{fix}",
                        row.id, self.contact_points
                    ),
                );
                match lasting {
                    Some(lasting) => fault.lasting(lasting),
                    None => fault,
                }
            })
    }

    /// Whether any row was written after `since`.
    pub fn written_since(&self, since: Instant) -> bool {
        let since_us = since.saturating_duration_since(self.epoch).as_micros() as u64;
        self.written_us.load(Relaxed) > since_us + 1
    }

    /// Whether every node agrees on one schema and the table is in it: then a row refused as
    /// invalid is refused for its own values (a guardrail), not for a table some node has not
    /// heard of yet.
    pub async fn schema_settled(&self) -> bool {
        if !matches!(self.session.check_schema_agreement().await, Ok(Some(_))) {
            return false;
        }
        if self.session.refresh_metadata().await.is_err() {
            return false;
        }
        self.session
            .get_cluster_state()
            .get_keyspace(&self.keyspace)
            .is_some_and(|k| k.tables.contains_key(TABLE))
    }

    /// A real query, for the readiness endpoint.
    pub async fn ping(&self) -> bool {
        // A read: idempotent, so a silent node is routed around as for writes.
        let mut probe = Statement::new("SELECT release_version FROM system.local");
        probe.set_is_idempotent(true);
        self.session.query_unpaged(probe, ()).await.is_ok()
    }
}
