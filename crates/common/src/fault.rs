//! Every failure has a class, and the class alone decides what happens next.
//!
//! The split is by who is at fault: the moment (a service is down, busy or
//! slow), the record (its bytes can never become a row), or the deployment (a
//! wrong URL, refused credentials, a table that does not match). Classes are
//! decided from status codes and error codes, never from message text.

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

/// A classed failure: what happened, in words that name the input and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    pub class: Class,
    /// A short, stable tag for logs, metrics and DLQ headers, e.g. `schema`, `cassandra`.
    pub kind: &'static str,
    pub message: String,
}

impl Fault {
    pub fn new(class: Class, kind: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            class,
            kind,
            message: message.into(),
        }
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

/// The class of an HTTP answer from a service we depend on (a registry, an
/// API): its trouble is transient when it says so (408, 429, 5xx); any other
/// refusal is about how we call it, which a retry cannot change.
pub fn http_status_class(status: u16) -> Class {
    match status {
        408 | 429 | 500..=599 => Class::Retry,
        _ => Class::Fatal,
    }
}

/// Whether a TLS handshake failed because a certificate is not trusted (or
/// not valid for the host): a retry cannot fix trust, a setting can.
pub fn is_tls_trust_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(mut e) = cause {
        // io::Error hides the error it wraps from `source()` (and hyper wraps
        // one io::Error in another): look inside, as deep as they go.
        while let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            e = inner;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            );
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_classes() {
        for transient in [408, 429, 500, 502, 503, 504] {
            assert_eq!(http_status_class(transient), Class::Retry, "{transient}");
        }
        for refused in [400, 401, 403, 404, 405, 409, 422] {
            assert_eq!(http_status_class(refused), Class::Fatal, "{refused}");
        }
    }

    #[test]
    fn an_untrusted_certificate_is_found_in_the_cause_chain() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connect failed")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        // As hyper-rustls reports it: an io::Error in an io::Error around the rustls error.
        let untrusted = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_tls_trust_failure(&Wrapper(untrusted)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_trust_failure(&Wrapper(refused)));
    }
}
