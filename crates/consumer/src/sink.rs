//! Cassandra: connect, apply `schemas/cassandra.cql` (`schema`), and write rows
//! with a prepared, idempotent INSERT. Each failure is classed
//! by its CQL error code: a node that is down, busy or short of replicas is
//! retried; a request Cassandra refuses outright is the deployment's to fix.

use anyhow::Result;
use common::fault::{Class, Fault};
use domain::row::UserRow;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;

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
        let contact_points = args.cassandra.contact_points();
        let session = args.cassandra.connect().await?;
        let mut insert = crate::schema::apply(&session, args, &contact_points).await?;
        args.cassandra.configure_insert(&mut insert);
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

/// The class of a failed Cassandra request, by the CQL error it carries.
pub fn class_of(e: &ExecutionError) -> Class {
    match e {
        ExecutionError::LastAttemptError(attempt) => attempt_class(attempt),
        ExecutionError::PrepareError(PrepareError::AllAttemptsFailed { first_attempt }) => {
            attempt_class(first_attempt)
        }
        // The row's values do not fit the table's columns.
        ExecutionError::BadQuery(_) => Class::Fatal,
        _ => Class::Retry,
    }
}

fn attempt_class(e: &RequestAttemptError) -> Class {
    match e {
        RequestAttemptError::DbError(db, _) => db_class(db),
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_) => Class::Fatal,
        _ => Class::Retry,
    }
}

/// Refusals that no retry can change, against trouble that passes (too few
/// replicas up, timeouts, overload, a node starting).
pub fn db_class(e: &DbError) -> Class {
    match e {
        DbError::SyntaxError
        | DbError::Invalid
        | DbError::AlreadyExists { .. }
        | DbError::FunctionFailure { .. }
        | DbError::AuthenticationError
        | DbError::Unauthorized
        | DbError::ConfigError
        | DbError::ProtocolError => Class::Fatal,
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::statement::Consistency;

    #[test]
    fn refusals_are_fatal_and_missing_replicas_are_retried() {
        for fatal in [
            DbError::Invalid,
            DbError::Unauthorized,
            DbError::SyntaxError,
            DbError::ConfigError,
            DbError::AuthenticationError,
        ] {
            assert_eq!(db_class(&fatal), Class::Fatal, "{fatal:?}");
        }
        let unavailable = DbError::Unavailable {
            consistency: Consistency::Quorum,
            required: 2,
            alive: 1,
        };
        for transient in [
            unavailable,
            DbError::Overloaded,
            DbError::IsBootstrapping,
            DbError::ServerError,
        ] {
            assert_eq!(db_class(&transient), Class::Retry, "{transient:?}");
        }
        let timeout = ExecutionError::RequestTimeout(std::time::Duration::from_secs(1));
        assert_eq!(class_of(&timeout), Class::Retry);
        let refused = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid,
            "unconfigured table".into(),
        ));
        assert_eq!(class_of(&refused), Class::Fatal);
    }
}
