//! Schema Registry errors: a Confluent `error_code` (or the HTTP client's error) that
//! `schema_registry_converter` keeps as the source of its own, classed.

use std::error::Error as _;

use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;

use super::http::{http_status_class, is_tls_trust_failure};
use super::Class;

/// Confluent error code: no schema with this id.
pub const SCHEMA_NOT_FOUND: u32 = 40403;
/// Confluent error code: no such subject.
pub const SUBJECT_NOT_FOUND: u32 = 40401;

/// The class of a converter error when its source tells it, `None` when only
/// the registry's status can.
pub fn lookup_class(e: &SRCError) -> Option<Class> {
    let source = e.source();
    if let Some(http) = source.and_then(|s| s.downcast_ref::<reqwest::Error>()) {
        if is_tls_trust_failure(http) {
            return Some(Class::Fatal);
        }
        // 200 with a body that is not a schema: the URL points at something else.
        if http.is_decode() {
            return Some(Class::Fatal);
        }
        return Some(Class::Retry);
    }
    if e.retriable {
        return Some(Class::Retry);
    }
    let raw = source.and_then(|s| s.downcast_ref::<RawError>())?;
    match raw.error_code {
        SCHEMA_NOT_FOUND => Some(Class::Poison),
        0 => None,
        code => Some(http_status_class(status_of_code(code))),
    }
}

/// Confluent error codes are the HTTP status, or the status followed by two digits (40403).
pub fn status_of_code(code: u32) -> u16 {
    let status = if code >= 10_000 { code / 100 } else { code };
    u16::try_from(status).unwrap_or(500)
}

/// The converter's error with its cause.
pub fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(cause) => format!("{} ({cause})", e.error),
        None => e.error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u32) -> SRCError {
        let raw: RawError = serde_json::from_value(
            serde_json::json!({"error_code": code, "message": "from the registry"}),
        )
        .expect("RawError");
        SRCError::non_retryable_with_cause(raw, "HTTP request to schema registry failed")
    }

    #[test]
    fn an_unknown_schema_id_is_the_records_fault_everything_else_is_not() {
        assert_eq!(lookup_class(&answered(40403)), Some(Class::Poison));
        // Wrong path, unknown subject, refused credentials, forbidden: the deployment's.
        for code in [404, 40401, 401, 40101, 403, 40301, 422, 42201] {
            assert_eq!(lookup_class(&answered(code)), Some(Class::Fatal), "{code}");
        }
        // The registry's own trouble: retry.
        for code in [500, 50001, 50002, 50003, 503, 504] {
            assert_eq!(lookup_class(&answered(code)), Some(Class::Retry), "{code}");
        }
        // An error body the converter could not read: only the status can tell.
        assert_eq!(lookup_class(&answered(0)), None);
        let flagged = SRCError::new("HTTP 503", None, true);
        assert_eq!(lookup_class(&flagged), Some(Class::Retry));
    }

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(status_of_code(40403), 404);
        assert_eq!(status_of_code(50001), 500);
        assert_eq!(status_of_code(401), 401);
    }
}
