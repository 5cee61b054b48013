//! Every failure has a class, and the class alone decides what happens next.
//!
//! The split is by who is at fault: the moment (a service is down, busy or
//! slow), the record (its bytes can never become a row), or the deployment (a
//! wrong URL, refused credentials, a table that does not match). Classes are
//! decided from status codes and error codes, never from message text: each
//! dependency's in its own file here, side by side (the table of codes and
//! classes: docs/guarantees.md, "Codes and their classes").

#[cfg(feature = "cassandra")]
pub mod cassandra;
pub mod http;
pub mod kafka;
pub mod registry;

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Transient: the same step may succeed later (a service unreachable, a
    /// 5xx, a timeout, too few replicas). Back off and retry; nothing is
    /// dropped or dead-lettered, and the process recovers by itself.
    Retry,
    /// This record can never be processed, whoever retries it: dead-letter it
    /// with the reason, then move on.
    Poison,
    /// Configuration or permission: stop taking records, commit only what is
    /// written, exit non-zero with the setting to fix.
    Fatal,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Retry => "retry",
            Class::Poison => "poison",
            Class::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// For a failure that is retried for a bounded time only: what it is once it lasted that
/// long. A code that can mean "the moment" or "the deployment" or "this record" (a node that
/// cannot read its auth tables yet, a table a node has not heard of, a value a guardrail
/// refuses) is told apart by what happens around it, not by its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lasting {
    /// The deployment's: fatal.
    Fatal,
    /// This record's (poison) if other records pass meanwhile; the deployment's (fatal) if
    /// none does.
    RecordIfOthersPass,
    /// This record's (poison) once the store agrees on its schema and the target is in it
    /// (a value refused, not a table a node has not heard of yet); else the deployment's.
    RecordIfSchemaSettled,
}

/// A classed failure: what happened, in words that name the input and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    pub class: Class,
    /// A short, stable tag for logs, metrics and DLQ headers, e.g. `schema`, `cassandra`.
    pub kind: &'static str,
    pub message: String,
    /// Set on a [`Class::Retry`] that is retried for a bounded time only.
    pub lasting: Option<Lasting>,
}

impl Fault {
    pub fn new(class: Class, kind: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            class,
            kind,
            message: message.into(),
            lasting: None,
        }
    }

    /// This transient fault, retried only for a bounded time, after which it is `lasting`.
    pub fn lasting(mut self, lasting: Lasting) -> Fault {
        self.lasting = Some(lasting);
        self
    }

    pub fn retry(kind: &'static str, message: impl Into<String>) -> Fault {
        Fault::new(Class::Retry, kind, message)
    }

    pub fn poison(kind: &'static str, message: impl Into<String>) -> Fault {
        Fault::new(Class::Poison, kind, message)
    }

    pub fn fatal(kind: &'static str, message: impl Into<String>) -> Fault {
        Fault::new(Class::Fatal, kind, message)
    }
}
