//! Kafka client errors, classed by librdkafka's error code.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::Class;

/// The class of a Kafka client error, by its error code: refused
/// credentials or permissions, and TLS failures, are the deployment's to fix;
/// everything else (a broker restarting, a leader moving, timeouts) passes.
/// `Authentication` is retried here: only [`fatal_if_lasting`] tells what it is.
pub fn error_class(e: &KafkaError) -> Class {
    e.rdkafka_error_code().map_or(Class::Retry, code_class)
}

pub fn code_class(code: RDKafkaErrorCode) -> Class {
    use RDKafkaErrorCode as C;
    match code {
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::SSL
        | C::InvalidConfig
        // librdkafka's "the client cannot go on" (e.g. the idempotent producer's state was lost).
        | C::Fatal => Class::Fatal,
        _ => Class::Retry,
    }
}

/// Codes that are the deployment's fault only if they last (the client's `Alarm` holds
/// them for a grace). librdkafka reports a SaslHandshake request that fails for any reason
/// (timed out, or its connection dropped by a broker restarting) as `Authentication`, the
/// code it also gives a credential the broker refused (`SASL_AUTHENTICATION_FAILED` is
/// translated to it): the code cannot tell them apart, what follows can. A refused
/// credential fails every attempt, so no broker ever answers; a handshake cut short is
/// followed by an answer once the connection is made again.
pub fn fatal_if_lasting(code: RDKafkaErrorCode) -> bool {
    code == RDKafkaErrorCode::Authentication
}

/// Produce answers that refuse the record itself: sent again it is refused again, so a
/// retry can only wedge its partition. Too large for the producer or the topic, a record the
/// topic's rules reject (no key on a compacted topic), a timestamp out of the topic's range.
pub fn record_refused(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::InvalidTimestamp
        )
    )
}

/// Topic-creation answers that a moment later may be different: the controller
/// moving, a request timing out, a broker not registered yet. Everything else (a
/// replication factor the cluster cannot have, a policy, a missing ACL) is a refusal.
pub fn topic_creation_is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::NotController
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_and_permissions_are_fatal_broker_trouble_is_not() {
        let consume = |c| error_class(&KafkaError::MessageConsumption(c));
        assert_eq!(
            consume(RDKafkaErrorCode::TopicAuthorizationFailed),
            Class::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::GroupAuthorizationFailed),
            Class::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::SaslAuthenticationFailed),
            Class::Fatal
        );
        assert_eq!(
            consume(RDKafkaErrorCode::BrokerTransportFailure),
            Class::Retry
        );
        // A refused credential and a handshake cut short share it: the alarm decides.
        assert_eq!(consume(RDKafkaErrorCode::Authentication), Class::Retry);
        assert!(fatal_if_lasting(RDKafkaErrorCode::Authentication));
        assert!(!fatal_if_lasting(
            RDKafkaErrorCode::SaslAuthenticationFailed
        ));
        assert_eq!(
            consume(RDKafkaErrorCode::NotLeaderForPartition),
            Class::Retry
        );
        assert_eq!(consume(RDKafkaErrorCode::AllBrokersDown), Class::Retry);
        assert_eq!(
            error_class(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            )),
            Class::Retry
        );
    }

    #[test]
    fn a_record_too_large_or_invalid_is_refused_for_good_trouble_on_the_way_is_not() {
        let produce = |c| record_refused(&KafkaError::MessageProduction(c));
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidMessageSize,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidTimestamp,
        ] {
            assert!(produce(code), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::QueueFull,
        ] {
            assert!(!produce(code), "{code:?}");
        }
        assert!(!record_refused(&KafkaError::Canceled));
    }
}
