//! Cassandra: connect, apply `schemas/cassandra.cql` (`schema`), and write rows
//! with a prepared, idempotent INSERT. Each failure comes with its class
//! (`common::fault::cassandra`, by its CQL error code).

use anyhow::Result;
use common::cassandra::CassandraArgs;
use common::fault::cassandra::class_of;
use common::fault::{Class, Fault};
use domain::row::UserRow;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;

use crate::schema::SchemaSettings;

#[derive(Debug)]
pub struct Sink {
    session: Session,
    insert: PreparedStatement,
    contact_points: String,
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
        })
    }

    /// Writes one row. A failure comes with its class: the caller retries a
    /// transient one (the offset must not move past an unwritten row) and
    /// stops on a fatal one.
    pub async fn write(&self, row: &UserRow) -> Result<(), Fault> {
        self.session
            .execute_unpaged(&self.insert, row)
            .await
            .map(|_| ())
            .map_err(|e| {
                let class = class_of(&e);
                let fix = if class == Class::Fatal {
                    " Cassandra refuses this write for good: check the table (schemas/cassandra.cql), \
                     CASSANDRA_KEYSPACE and the role's permissions."
                } else {
                    ""
                };
                Fault::new(
                    class,
                    "cassandra",
                    format!(
                        "writing row {} to Cassandra at {}: {e}.{fix}",
                        row.id, self.contact_points
                    ),
                )
            })
    }

    /// A real query, for the readiness endpoint.
    pub async fn ping(&self) -> bool {
        // A read: idempotent, so a silent node is routed around as for writes.
        let mut probe = Statement::new("SELECT release_version FROM system.local");
        probe.set_is_idempotent(true);
        self.session.query_unpaged(probe, ()).await.is_ok()
    }
}
