//! Cassandra request errors, classed by the CQL error code they carry: a node that is down,
//! busy or short of replicas is retried; a request Cassandra refuses outright is the
//! deployment's to fix.

use scylla::errors::{
    ConnectionError, ConnectionPoolError, ConnectionSetupRequestError,
    ConnectionSetupRequestErrorKind, DbError, ExecutionError, MetadataError, NewSessionError,
    PrepareError, RequestAttemptError,
};

use super::http::is_tls_trust_failure;
use super::{Class, Fault, Lasting};

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

/// The class of a failed write of a row at run time, when the table was checked at start-up:
/// unlike there, a refusal now may be a node's passing state or this row's own. Returns the
/// class and, for a bounded retry, what the failure is once it lasts.
///
/// - `Unauthorized`, `AuthenticationError`: a restarting node answers so until it has read its
///   auth tables; lasting, the role really lost its rights: fatal.
/// - `Invalid`: a guardrail refusing this row's value, or "unconfigured table" from a node
///   that missed the schema change. Poison once the cluster agrees on one schema holding the
///   table; fatal if that does not come.
/// - `WriteFailure`, `ServerError`, `FunctionFailure` and codes this build does not know: a
///   replica failing on this row, or on every row. Poison if other rows are written
///   meanwhile, fatal if none is.
/// - Syntax, protocol and configuration errors: our request is wrong for this cluster: fatal.
pub fn write_verdict(e: &ExecutionError) -> (Class, Option<Lasting>) {
    let Some(db) = db_error(e) else {
        return (class_of(e), None);
    };
    match db {
        DbError::Unauthorized | DbError::AuthenticationError => {
            (Class::Retry, Some(Lasting::Fatal))
        }
        DbError::SyntaxError
        | DbError::AlreadyExists { .. }
        | DbError::ConfigError
        | DbError::ProtocolError => (Class::Fatal, None),
        DbError::Unavailable { .. }
        | DbError::Overloaded
        | DbError::IsBootstrapping
        | DbError::ReadTimeout { .. }
        | DbError::WriteTimeout { .. }
        | DbError::TruncateError
        | DbError::Unprepared { .. }
        | DbError::RateLimitReached { .. } => (Class::Retry, None),
        DbError::Invalid => (Class::Retry, Some(Lasting::RecordIfSchemaSettled)),
        _ => (Class::Retry, Some(Lasting::RecordIfOthersPass)),
    }
}

/// The CQL error a failed request carries, if it carries one.
pub fn db_error(e: &ExecutionError) -> Option<&DbError> {
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _))
        | ExecutionError::PrepareError(PrepareError::AllAttemptsFailed {
            first_attempt: RequestAttemptError::DbError(db, _),
        }) => Some(db),
        _ => None,
    }
}

/// The class of a failed session, from the connection error the driver kept: refused or
/// missing credentials and an untrusted certificate are the deployment's; anything else
/// (a node not up yet) passes.
pub fn session_fault(e: &NewSessionError, at: &str, username: &str) -> Fault {
    let connection = match e {
        NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
            ConnectionPoolError::Broken {
                last_connection_error,
            },
        )) => Some(last_connection_error),
        _ => None,
    };
    let setup = match connection {
        Some(ConnectionError::ConnectionSetupRequestError(ConnectionSetupRequestError {
            error,
            ..
        })) => Some(error),
        _ => None,
    };
    match (connection, setup) {
        (_, Some(ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, said))) => {
            Fault::fatal(
                "cassandra",
                format!(
                    "Cassandra at {at} refused the credentials of user {:?}: {said}. Check \
                     CASSANDRA_USERNAME and CASSANDRA_PASSWORD.",
                    username
                ),
            )
        }
        (_, Some(ConnectionSetupRequestErrorKind::MissingAuthentication)) => Fault::fatal(
            "cassandra",
            format!(
                "Cassandra at {at} requires a login: set CASSANDRA_USERNAME and \
                 CASSANDRA_PASSWORD."
            ),
        ),
        (Some(ConnectionError::IoError(io)), _) if is_tls_trust_failure(io.as_ref()) => {
            Fault::fatal(
                "cassandra",
                format!(
                    "the TLS certificate of Cassandra at {at} is not trusted: {io}. Point \
                     CASSANDRA_SSL_CA_LOCATION at the CA that signed it (a certificate that \
                     names another host: CASSANDRA_SSL_VERIFY_HOSTNAME)."
                ),
            )
        }
        _ => Fault::retry("cassandra", e.to_string()),
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
        assert_eq!(db_error(&refused), Some(&DbError::Invalid));
    }

    #[test]
    fn at_run_time_a_refusal_is_retried_for_a_while_before_it_is_blamed() {
        let write = |db: DbError| {
            write_verdict(&ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(db, "said".into()),
            ))
        };
        assert_eq!(
            write(DbError::Invalid),
            (Class::Retry, Some(Lasting::RecordIfSchemaSettled))
        );
        assert_eq!(
            write(DbError::ServerError),
            (Class::Retry, Some(Lasting::RecordIfOthersPass))
        );
        assert_eq!(
            write(DbError::Unauthorized),
            (Class::Retry, Some(Lasting::Fatal))
        );
        assert_eq!(write(DbError::Overloaded), (Class::Retry, None));
        assert_eq!(write(DbError::SyntaxError), (Class::Fatal, None));
        let timeout = ExecutionError::RequestTimeout(std::time::Duration::from_secs(1));
        assert_eq!(write_verdict(&timeout), (Class::Retry, None));
    }
}
