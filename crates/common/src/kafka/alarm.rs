//! An alarm that remembers the first Kafka error no retry can fix (refused
//! credentials, a TLS failure, missing permissions: `fault::kafka` classes them), so
//! start-up and the run stop with the setting to fix instead of waiting out a
//! timeout; and librdkafka's log lines routed into ours.
//!
//! An `Authentication` error is only a doubt (`fault::kafka::fatal_if_lasting`): it
//! sounds the alarm once [`AUTH_GRACE`] has passed with no answer from the cluster
//! ([`Alarm::reached`]) since.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::fault::kafka::{code_class, fatal_if_lasting};
use crate::fault::Class;
use crate::storm::Storm;

/// How long an `Authentication` error may stand with no answer from the cluster before it
/// is taken for a refused credential. A handshake cut short by a restarting broker is
/// followed by an answer within one reconnect (librdkafka backs off at most
/// `reconnect.backoff.max.ms`, 10 s) plus one probe (the consumer's watcher asks for
/// metadata every 5 s), as long as some broker is up. Not longer: a refused credential
/// at start-up is reported after this, and it must stay under the connect timeout (30 s).
pub const AUTH_GRACE: Duration = Duration::from_secs(15);

/// The first fatal error librdkafka reported to a client, if any, and the
/// authentication error not yet answered by a reply from the cluster.
#[derive(Debug, Default)]
pub struct Alarm {
    first: Mutex<Option<Noted>>,
    doubt: Mutex<Option<(Instant, Noted)>>,
    /// Whether `doubt` is set: [`Alarm::reached`] is called per record, so it reads this
    /// and takes the lock only when there is a doubt to drop.
    doubting: AtomicBool,
}

type Noted = (RDKafkaErrorCode, String);

impl Alarm {
    /// Notes `error` if it is fatal, or an authentication error that is fatal if it lasts;
    /// returns whether it was either.
    pub fn observe(&self, error: &KafkaError, reason: &str) -> bool {
        self.observe_at(error, reason, Instant::now())
    }

    fn observe_at(&self, error: &KafkaError, reason: &str, now: Instant) -> bool {
        let Some(code) = error.rdkafka_error_code() else {
            return false;
        };
        let noted = || (code, reason.to_string());
        if fatal_if_lasting(code) {
            // Kept from the first: a refusal repeated on every attempt does not reset its grace.
            let mut doubt = lock(&self.doubt);
            doubt.get_or_insert_with(|| (now, noted()));
            self.doubting.store(true, Ordering::Release);
            return true;
        }
        if code_class(code) != Class::Fatal {
            return false;
        }
        lock(&self.first).get_or_insert_with(noted);
        true
    }

    /// The cluster answered this client (metadata, a record, a commit): an authentication
    /// error before it was not a refused credential.
    pub fn reached(&self) {
        if self.doubting.load(Ordering::Acquire) {
            let mut doubt = lock(&self.doubt);
            *doubt = None;
            // Under the lock, so a doubt noted meanwhile cannot be left unflagged.
            self.doubting.store(false, Ordering::Release);
        }
    }

    /// What a client context does with an error librdkafka reports: log it,
    /// at error level when it is fatal (and noted).
    pub fn report(&self, error: &KafkaError, reason: &str) {
        let doubtful = error.rdkafka_error_code().is_some_and(fatal_if_lasting);
        if doubtful && self.observe(error, reason) {
            tracing::warn!(
                "Kafka: {error}: {reason} (a refused credential, or a handshake cut short by a \
                 broker restarting: fatal if no broker answers within {AUTH_GRACE:?})"
            );
        } else if self.observe(error, reason) {
            tracing::error!("Kafka: {error}: {reason}");
        } else {
            // A broker that is gone makes every client report it, again and again.
            Storm::global().warn("kafka", &format!("Kafka: {error}: {reason}"));
        }
    }

    /// The fatal error, as a message naming the settings to check: one that is fatal at
    /// once, or an authentication error that stood [`AUTH_GRACE`] with no answer since.
    pub fn fatal(&self, bootstrap_servers: &str) -> Option<String> {
        self.fatal_at(bootstrap_servers, Instant::now())
    }

    fn fatal_at(&self, bootstrap_servers: &str, now: Instant) -> Option<String> {
        if let Some(noted) = lock(&self.first).as_ref() {
            return Some(message(bootstrap_servers, noted));
        }
        let doubt = lock(&self.doubt);
        let (since, noted) = doubt.as_ref()?;
        (now.saturating_duration_since(*since) >= AUTH_GRACE)
            .then(|| message(bootstrap_servers, noted))
    }

    /// For a caller out of time (start-up's connect timeout): the fatal error, or else the
    /// authentication error still unanswered, however young: it is the best lead there is.
    pub fn fatal_or_doubt(&self, bootstrap_servers: &str) -> Option<String> {
        self.fatal(bootstrap_servers).or_else(|| {
            let doubt = lock(&self.doubt);
            doubt
                .as_ref()
                .map(|(_, noted)| message(bootstrap_servers, noted))
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn message(bootstrap_servers: &str, (code, reason): &Noted) -> String {
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
    format!("Kafka at {bootstrap_servers} refused this client: {reason} ({code}); {fix}.")
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

    fn auth() -> KafkaError {
        KafkaError::Global(RDKafkaErrorCode::Authentication)
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_alarm_keeps_the_first_fatal_error_with_its_fix() {
        let alarm = Alarm::default();
        assert!(!alarm.observe(
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "down"
        ));
        assert_eq!(alarm.fatal("b:9092"), None);
        assert!(alarm.observe(
            &KafkaError::Global(RDKafkaErrorCode::SaslAuthenticationFailed),
            "SASL failed"
        ));
        assert!(alarm.observe(&KafkaError::Global(RDKafkaErrorCode::SSL), "later"));
        let message = alarm.fatal("b:9092").expect("fatal");
        assert!(
            message.contains("SASL failed") && message.contains("KAFKA_SASL_PASSWORD"),
            "{message}"
        );
    }

    #[test]
    fn an_authentication_error_is_fatal_only_once_it_stood_its_grace_unanswered() {
        let alarm = Alarm::default();
        let t0 = Instant::now();
        assert!(alarm.observe_at(&auth(), "SASL handshake failed", t0));
        assert_eq!(alarm.fatal_at("b:9092", t0 + AUTH_GRACE - MS), None);
        let message = alarm.fatal_at("b:9092", t0 + AUTH_GRACE).expect("fatal");
        for setting in [
            "KAFKA_SASL_USERNAME",
            "KAFKA_SASL_PASSWORD",
            "KAFKA_SASL_MECHANISM",
        ] {
            assert!(message.contains(setting), "{message}");
        }
    }

    #[test]
    fn an_answer_from_the_cluster_clears_an_authentication_error() {
        let alarm = Alarm::default();
        let t0 = Instant::now();
        alarm.observe_at(&auth(), "SASL handshake failed: Local: Timed out", t0);
        alarm.reached();
        assert_eq!(alarm.fatal_at("b:9092", t0 + 10 * AUTH_GRACE), None);
        assert_eq!(alarm.fatal_or_doubt("b:9092"), None);
        // A later one has a grace of its own, from when it came.
        let t1 = t0 + 4 * AUTH_GRACE;
        alarm.observe_at(&auth(), "again", t1);
        assert_eq!(alarm.fatal_at("b:9092", t1 + AUTH_GRACE - MS), None);
        assert!(alarm.fatal_at("b:9092", t1 + AUTH_GRACE).is_some());
    }

    #[test]
    fn a_refusal_repeated_on_every_attempt_keeps_the_first_ones_grace() {
        let alarm = Alarm::default();
        let t0 = Instant::now();
        for n in 0..4 {
            alarm.observe_at(&auth(), "invalid credentials", t0 + n * AUTH_GRACE / 4);
        }
        assert!(alarm.fatal_at("b:9092", t0 + AUTH_GRACE).is_some());
    }

    #[test]
    fn a_caller_out_of_time_is_told_of_an_authentication_error_still_in_its_grace() {
        let alarm = Alarm::default();
        assert_eq!(alarm.fatal_or_doubt("b:9092"), None);
        alarm.observe(&auth(), "invalid credentials");
        assert_eq!(alarm.fatal("b:9092"), None);
        let message = alarm.fatal_or_doubt("b:9092").expect("doubt");
        assert!(message.contains("KAFKA_SASL_PASSWORD"), "{message}");
    }

    #[test]
    fn an_answer_does_not_clear_an_error_that_is_fatal_at_once() {
        let alarm = Alarm::default();
        alarm.observe(
            &KafkaError::Global(RDKafkaErrorCode::TopicAuthorizationFailed),
            "denied",
        );
        alarm.reached();
        assert!(alarm.fatal("b:9092").is_some());
    }
}
