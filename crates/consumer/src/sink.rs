//! Cassandra: connect, create the keyspace and table from `schemas/cassandra.cql`,
//! and write rows with a prepared, idempotent INSERT. Each failure is classed
//! by its CQL error code: a node that is down, busy or short of replicas is
//! retried; a request Cassandra refuses outright is the deployment's to fix.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::backoff::Backoff;
use common::fault::{Class, Fault};
use domain::row::{schema_statements, UserRow};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;

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
        apply_schema(&session, args, &contact_points).await?;
        let mut insert = match session
            .prepare(UserRow::insert_cql(&args.cassandra.keyspace))
            .await
        {
            Ok(insert) => insert,
            Err(e) => bail!(
                "Cassandra at {contact_points} refused the INSERT into {}.created_users: {e}. \
                 The table must have the columns of schemas/cassandra.cql: drop or alter it, or \
                 set CASSANDRA_KEYSPACE to a keyspace this consumer may create.",
                args.cassandra.keyspace
            ),
        };
        insert.set_is_idempotent(true);
        insert.set_consistency(args.cassandra.write_consistency());
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
        self.session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .is_ok()
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

/// Creates the keyspace and table (IF NOT EXISTS) and waits until every node agrees on
/// them. Replicas starting together race to create them through different nodes: a
/// transient failure, or the table appearing under our feet (`AlreadyExists`), is retried
/// until the connect timeout; a refusal (permissions, bad replication) stops at once.
async fn apply_schema(session: &Session, args: &Args, contact_points: &str) -> Result<()> {
    let keyspace = &args.cassandra.keyspace;
    let deadline = Instant::now() + args.cassandra.connect_timeout;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
    loop {
        let retrying = match first_refusal(session, args).await {
            // Schema changes reach every node before the INSERT is prepared against them.
            None => match session.await_schema_agreement().await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).context(format!(
                        "Cassandra at {contact_points}: the nodes did not agree on keyspace \
                         {keyspace}'s schema within {:?}",
                        args.cassandra.connect_timeout
                    ))
                }
                Err(e) => format!("Cassandra's nodes do not agree on the schema yet: {e}"),
            },
            Some((statement, e)) => {
                let racing = matches!(
                    &e,
                    ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                        DbError::AlreadyExists { .. },
                        _
                    ))
                );
                if !(racing || class_of(&e) == Class::Retry) || Instant::now() >= deadline {
                    bail!(
                        "Cassandra at {contact_points} refused `{statement}` from \
                         schemas/cassandra.cql: {e}. {}",
                        fix_for(&e, keyspace)
                    );
                }
                format!("applying schemas/cassandra.cql failed: {e}")
            }
        };
        tracing::warn!("{retrying}; retrying");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Runs the schema statements in order; the first that fails, with its error.
async fn first_refusal(session: &Session, args: &Args) -> Option<(String, ExecutionError)> {
    for statement in schema_statements(&args.cassandra.keyspace, &args.cassandra.replication) {
        if let Err(e) = session.query_unpaged(statement.as_str(), ()).await {
            return Some((statement, e));
        }
    }
    None
}

/// What to do about a refused schema statement.
fn fix_for(e: &ExecutionError, keyspace: &str) -> String {
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Unauthorized,
            _,
        )) => {
            format!(
                "The role may not create keyspace {keyspace} or its table: create them once with \
                 schemas/cassandra.cql as an administrator, or grant the role CREATE on it \
                 (CASSANDRA_USERNAME)."
            )
        }
        _ => "Check CASSANDRA_KEYSPACE and CASSANDRA_REPLICATION.".to_string(),
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
