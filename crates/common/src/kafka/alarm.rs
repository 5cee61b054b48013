//! An alarm that remembers the first Kafka error no retry can fix (refused
//! credentials, a TLS failure, missing permissions: `fault::kafka` classes them), so
//! start-up and the run stop at once with the setting to fix instead of waiting out a
//! timeout; and librdkafka's log lines routed into ours.

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::fault::kafka::code_class;
use crate::fault::Class;
use crate::storm::Storm;

/// The first fatal error librdkafka reported to a client, if any.
#[derive(Debug, Default)]
pub struct Alarm {
    first: Mutex<Option<(RDKafkaErrorCode, String)>>,
}

impl Alarm {
    /// Notes `error` if it is fatal; returns whether it was.
    pub fn observe(&self, error: &KafkaError, reason: &str) -> bool {
        let Some(code) = error.rdkafka_error_code() else {
            return false;
        };
        if code_class(code) != Class::Fatal {
            return false;
        }
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| (code, reason.to_string()));
        true
    }

    /// What a client context does with an error librdkafka reports: log it,
    /// at error level when it is fatal (and noted).
    pub fn report(&self, error: &KafkaError, reason: &str) {
        if self.observe(error, reason) {
            tracing::error!("Kafka: {error}: {reason}");
        } else {
            // A broker that is gone makes every client report it, again and again.
            Storm::global().warn("kafka", &format!("Kafka: {error}: {reason}"));
        }
    }

    /// The fatal error, as a message naming the settings to check.
    pub fn fatal(&self, bootstrap_servers: &str) -> Option<String> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        let (code, reason) = first.as_ref()?;
        let fix = match code {
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
                "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
            }
            RDKafkaErrorCode::SSL => {
                "check KAFKA_SSL_CA_LOCATION (the CA that signed the brokers' certificates) and \
                 KAFKA_SECURITY_PROTOCOL"
            }
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed => {
                "grant the user (KAFKA_SASL_USERNAME) the ACLs on the topic and group"
            }
            _ => "check the Kafka settings (KAFKA_CONFIG, KAFKA_CONFIG_FILE)",
        };
        Some(format!(
            "Kafka at {bootstrap_servers} refused this client: {reason} ({code}); {fix}."
        ))
    }
}

/// A client context that raises the [`Alarm`] (admin clients, producers).
#[derive(Debug, Default)]
pub struct AlarmContext {
    pub alarm: Alarm,
}

/// Contexts that carry an [`Alarm`].
pub trait Alarmed {
    fn alarm(&self) -> &Alarm;
}

impl Alarmed for AlarmContext {
    fn alarm(&self) -> &Alarm {
        &self.alarm
    }
}

impl ClientContext for AlarmContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.alarm.report(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(level, facility, message);
    }
}

/// librdkafka's own log lines: its warnings (a request timed out, a connection
/// lost) come once per broker and request while a broker is unreachable, so they
/// join the Kafka storm; errors stay errors; the rest is debug detail.
pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    use RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        L::Warning => Storm::global().warn("kafka", &format!("librdkafka: {facility} {message}")),
        L::Notice | L::Info | L::Debug => {
            tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
    }
}

impl ConsumerContext for AlarmContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_keeps_the_first_fatal_error_with_its_fix() {
        let alarm = Alarm::default();
        assert!(!alarm.observe(
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "down"
        ));
        assert_eq!(alarm.fatal("b:9092"), None);
        assert!(alarm.observe(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL failed"
        ));
        assert!(alarm.observe(&KafkaError::Global(RDKafkaErrorCode::SSL), "later"));
        let message = alarm.fatal("b:9092").expect("fatal");
        assert!(
            message.contains("SASL failed") && message.contains("KAFKA_SASL_PASSWORD"),
            "{message}"
        );
    }
}
