//! Errors of the HTTP services we call (a registry, an API): the class of a status, a TLS
//! handshake refused for trust, and the root cause a message should show.

use super::Class;

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

/// The innermost error of a chain: what actually went wrong, for a message.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

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
