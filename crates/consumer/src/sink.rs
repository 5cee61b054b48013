//! Cassandra: connect, apply `schemas/cassandra.cql` (`schema`), and write rows with a
//! prepared, idempotent INSERT, one at a time or several in an unlogged batch to the nodes
//! that own all of them. Each failure comes with its class (`common::fault::cassandra`, by
//! its CQL error code).

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use anyhow::Result;
use common::cassandra::CassandraArgs;
use common::fault::cassandra::write_verdict;
use common::fault::{Class, Fault};
use domain::row::{TimedRow, TABLE};
use scylla::client::session::Session;
use scylla::cluster::ClusterState;
use scylla::errors::ExecutionError;
use scylla::routing::partitioner::{Murmur3Partitioner, Partitioner};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;

use crate::schema::SchemaSettings;

pub struct Sink {
    session: Session,
    insert: PreparedStatement,
    /// An empty unlogged batch set up as the INSERT is (consistency, idempotent).
    batch: Batch,
    contact_points: String,
    keyspace: String,
    /// When a row was last written, in µs since `epoch` (0: none yet): whether other rows
    /// pass tells a row Cassandra refuses from a Cassandra that refuses every row.
    written_us: AtomicU64,
    epoch: Instant,
}

/// The driver's session and statements say nothing useful here (and the batch has no Debug).
impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("contact_points", &self.contact_points)
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
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
        let mut batch = Batch::new(BatchType::Unlogged);
        cassandra.configure_batch(&mut batch);
        Ok(Sink {
            session,
            insert,
            batch,
            contact_points,
            keyspace: cassandra.keyspace.clone(),
            written_us: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Writes one row at its own write time (its record's: of two versions of a user the
    /// later record wins, whichever is written last, so a replay or a fenced replica's late
    /// write cannot undo a newer one). A failure comes with its class: the caller retries a
    /// transient one (the offset must not move past an unwritten row) and stops on a fatal one.
    pub async fn write(&self, row: &TimedRow) -> Result<(), Fault> {
        let result = self.session.execute_unpaged(&self.insert, row).await;
        self.outcome(result.map(|_| ()), || format!("writing row {}", row.row.id))
    }

    /// Writes `rows` in one unlogged batch, each at its own write time. The driver sends it
    /// to a replica of its first row, so rows that share their replicas ([`Sink::replicas`])
    /// cost those nodes one request instead of one each. Fails as a whole: the caller retries
    /// it, or writes its rows one by one to find the one Cassandra refuses.
    pub async fn write_batch(&self, rows: &[&TimedRow]) -> Result<(), Fault> {
        let mut batch = self.batch.clone();
        for _ in rows {
            batch.append_statement(self.insert.clone());
        }
        let result = self.session.batch(&batch, rows).await;
        self.outcome(result.map(|_| ()), || {
            format!(
                "writing a batch of {} rows (the first {})",
                rows.len(),
                rows[0].row.id
            )
        })
    }

    /// The cluster as the driver sees it now: what [`Sink::replicas`] reads.
    pub fn cluster(&self) -> std::sync::Arc<ClusterState> {
        self.session.get_cluster_state()
    }

    /// The nodes that hold `row` (their host ids, sorted): rows with the same replicas can
    /// share a batch. The table's key is the `id` alone, whose Murmur3 token is the hash of
    /// its 16 bytes (Cassandra's default partitioner, which the driver's routing assumes too).
    pub fn replicas(&self, cluster: &ClusterState, row: &TimedRow) -> Vec<uuid::Uuid> {
        let token = Murmur3Partitioner.hash_one(row.row.id.as_bytes());
        let mut hosts: Vec<uuid::Uuid> = cluster
            .get_token_endpoints(&self.keyspace, TABLE, token)
            .iter()
            .map(|(node, _)| node.host_id)
            .collect();
        hosts.sort_unstable();
        hosts
    }

    /// What a write's result means: the time of the last success, or the failure's class
    /// (`what` says what was being written, for the message).
    fn outcome(
        &self,
        result: Result<(), ExecutionError>,
        what: impl FnOnce() -> String,
    ) -> Result<(), Fault> {
        result
            .map(|()| {
                // Never 0, which means "none yet".
                let now = self.epoch.elapsed().as_micros() as u64 + 1;
                self.written_us.fetch_max(now, Relaxed);
            })
            .map_err(|e| self.fault(&e, what()))
    }

    fn fault(&self, e: &ExecutionError, what: impl Display) -> Fault {
        let (class, lasting) = write_verdict(e);
        let fix = if class == Class::Fatal {
            " Cassandra refuses this write for good: check the table (schemas/cassandra.cql), \
             CASSANDRA_KEYSPACE and the role's permissions."
        } else {
            ""
        };
        let fault = Fault::new(
            class,
            "cassandra",
            format!("{what} to Cassandra at {}: {e}.{fix}", self.contact_points),
        );
        match lasting {
            Some(lasting) => fault.lasting(lasting),
            None => fault,
        }
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
