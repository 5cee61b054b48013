//! The start-up schema step: create the keyspace and table of `schemas/cassandra.cql`
//! (IF NOT EXISTS), wait until the nodes agree on them, and prepare the INSERT.
//!
//! Replicas start together and race: each runs the same DDL through a different
//! coordinator, and a node that has not yet heard of a keyspace created a moment ago
//! through another one answers `Invalid` ("keyspace does not exist") to the CREATE
//! TABLE or the INSERT's PREPARE. That is a race, not a configuration fault: once the
//! CREATE KEYSPACE has succeeded in this attempt the keyspace exists, and only a node
//! that disagrees can say otherwise, so the step is retried until
//! `--cassandra-connect-timeout`. What stops at once: a CREATE KEYSPACE that is refused
//! (no permission to create a missing keyspace, bad replication), and any refusal no
//! retry can change (`Unauthorized`, a syntax error).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use common::backoff::Backoff;
use common::cassandra::CassandraArgs;
use common::fault::cassandra::{class_of, db_error};
use common::fault::Class;
use domain::row::{schema_statements, UserRow, TABLE};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError};
use scylla::statement::prepared::PreparedStatement;

/// What the schema step needs: the keyspace, how to replicate it if it has to be created,
/// and how long to keep trying.
#[derive(Debug, Clone)]
pub struct SchemaSettings {
    pub keyspace: String,
    /// A CQL replication map, e.g. `{'class': 'SimpleStrategy', 'replication_factor': 1}`.
    pub replication: String,
    pub connect_timeout: Duration,
}

impl From<&CassandraArgs> for SchemaSettings {
    fn from(cassandra: &CassandraArgs) -> Self {
        SchemaSettings {
            keyspace: cassandra.keyspace.clone(),
            replication: cassandra.replication.clone(),
            connect_timeout: cassandra.connect_timeout,
        }
    }
}

/// Where an attempt of the schema step stopped.
#[derive(Debug)]
enum Stop {
    /// A DDL statement or the PREPARE failed (`statement` names it for the error). `after_keyspace`: the CREATE KEYSPACE had
    /// already succeeded in this attempt.
    Refused {
        statement: String,
        error: Box<ExecutionError>,
        after_keyspace: bool,
    },
    /// The nodes did not agree on the schema (yet).
    Disagreeing(String),
}

impl Stop {
    /// A peer's concurrent DDL or a node that has not caught up: worth another attempt.
    fn is_race(&self) -> bool {
        match self {
            Stop::Disagreeing(_) => true,
            Stop::Refused {
                error,
                after_keyspace,
                ..
            } => match db_error(error) {
                // Another replica created it between our check and our CREATE.
                Some(DbError::AlreadyExists { .. }) => true,
                // The keyspace exists (we just created it, or saw it): the node that
                // says it doesn't has not heard of it yet.
                Some(DbError::Invalid) => *after_keyspace,
                _ => class_of(error) == Class::Retry,
            },
        }
    }
}

/// Applies the schema and prepares the INSERT, retrying races with peers (and a
/// cluster still settling) until the connect timeout; a refusal stops at once.
pub async fn apply(
    session: &Session,
    settings: &SchemaSettings,
    contact_points: &str,
) -> Result<PreparedStatement> {
    let keyspace = &settings.keyspace;
    let deadline = Instant::now() + settings.connect_timeout;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
    loop {
        let stop = match attempt(session, settings).await {
            Ok(insert) => return Ok(insert),
            Err(stop) => stop,
        };
        let racing = stop.is_race();
        if !racing || Instant::now() >= deadline {
            let waited = if racing {
                format!(" (still failing after {:?})", settings.connect_timeout)
            } else {
                String::new()
            };
            match stop {
                Stop::Disagreeing(e) => bail!(
                    "Cassandra at {contact_points}: the nodes did not agree on keyspace \
                     {keyspace}'s schema within {:?}: {e}. Are all nodes up and gossiping \
                     (nodetool describecluster)?",
                    settings.connect_timeout
                ),
                Stop::Refused {
                    statement, error, ..
                } => bail!(
                    "Cassandra at {contact_points} refused {statement}{waited}: {error}. {}",
                    fix_for(&error, keyspace)
                ),
            }
        }
        // Per attempt at debug: N replicas racing would otherwise log N lines a round.
        tracing::debug!(
            ?stop,
            "Cassandra schema step raced a peer or a settling cluster; retrying"
        );
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One pass: each DDL statement, then schema agreement, then the PREPARE.
async fn attempt(session: &Session, settings: &SchemaSettings) -> Result<PreparedStatement, Stop> {
    let mut after_keyspace = false;
    for statement in schema_statements(&settings.keyspace, &settings.replication) {
        if let Err(error) = session.query_unpaged(statement.as_str(), ()).await {
            return Err(Stop::Refused {
                statement: format!("`{statement}` from schemas/cassandra.cql"),
                error: Box::new(error),
                after_keyspace,
            });
        }
        // An IF NOT EXISTS that found the object changes no schema, so the driver does
        // not wait for agreement by itself: a peer's DDL may not have reached every node.
        session
            .await_schema_agreement()
            .await
            .map_err(|e| Stop::Disagreeing(e.to_string()))?;
        after_keyspace = true;
    }
    let insert = UserRow::insert_cql(&settings.keyspace);
    match session.prepare(insert.as_str()).await {
        Ok(prepared) => Ok(prepared),
        Err(error) => {
            // A table that exists without our columns is the deployment's to fix, now;
            // a table the node does not know yet is a race.
            let mismatch = !missing_columns(session, &settings.keyspace)
                .await
                .is_empty();
            Err(Stop::Refused {
                statement: format!("the INSERT into {}.{TABLE}", settings.keyspace),
                error: Box::new(ExecutionError::PrepareError(error)),
                after_keyspace: after_keyspace && !mismatch,
            })
        }
    }
}

/// The INSERT's columns an existing `created_users` lacks (none if the table is
/// not there, or cannot be read).
async fn missing_columns(session: &Session, keyspace: &str) -> Vec<&'static str> {
    let query = "SELECT column_name FROM system_schema.columns \
                 WHERE keyspace_name = ? AND table_name = ?";
    let Ok(result) = session.query_unpaged(query, (keyspace, TABLE)).await else {
        return Vec::new();
    };
    let Ok(rows) = result.into_rows_result() else {
        return Vec::new();
    };
    let Ok(rows) = rows.rows::<(String,)>() else {
        return Vec::new();
    };
    let columns: Vec<String> = rows.filter_map(|r| r.ok().map(|(c,)| c)).collect();
    if columns.is_empty() {
        return Vec::new();
    }
    UserRow::COLUMNS
        .into_iter()
        .filter(|c| !columns.iter().any(|have| have == c))
        .collect()
}

/// What to do about a refused schema statement.
fn fix_for(e: &ExecutionError, keyspace: &str) -> String {
    match db_error(e) {
        Some(DbError::Unauthorized) => format!(
            "The role may not create keyspace {keyspace} or its table: create them once with \
             schemas/cassandra.cql as an administrator, or grant the role CREATE on it \
             (CASSANDRA_USERNAME)."
        ),
        Some(DbError::Invalid) if matches!(e, ExecutionError::PrepareError(_)) => format!(
            "The table {keyspace}.created_users must have the columns of schemas/cassandra.cql: \
             drop or alter it, or set CASSANDRA_KEYSPACE to a keyspace this consumer may create."
        ),
        _ => "Check CASSANDRA_KEYSPACE and CASSANDRA_REPLICATION.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::errors::{PrepareError, RequestAttemptError};

    fn refused(db: DbError, after_keyspace: bool) -> Stop {
        Stop::Refused {
            statement: "CREATE TABLE IF NOT EXISTS ks.created_users (...)".into(),
            error: Box::new(ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(db, "said".into()),
            )),
            after_keyspace,
        }
    }

    #[test]
    fn a_missing_keyspace_after_creating_it_is_a_race() {
        assert!(refused(DbError::Invalid, true).is_race());
        let prepare = Stop::Refused {
            statement: "INSERT".into(),
            error: Box::new(ExecutionError::PrepareError(
                PrepareError::AllAttemptsFailed {
                    first_attempt: RequestAttemptError::DbError(DbError::Invalid, "said".into()),
                },
            )),
            after_keyspace: true,
        };
        assert!(prepare.is_race());
    }

    #[test]
    fn a_refused_keyspace_is_not_a_race() {
        // CREATE KEYSPACE itself invalid (bad replication map): the setting is wrong.
        assert!(!refused(DbError::Invalid, false).is_race());
        assert!(!refused(DbError::Unauthorized, true).is_race());
        assert!(!refused(DbError::SyntaxError, true).is_race());
    }

    #[test]
    fn peers_creating_the_same_table_and_disagreeing_nodes_are_races() {
        let exists = DbError::AlreadyExists {
            keyspace: "ks".into(),
            table: "created_users".into(),
        };
        assert!(refused(exists, true).is_race());
        assert!(refused(DbError::Overloaded, false).is_race());
        assert!(Stop::Disagreeing("versions differ".into()).is_race());
    }
}
