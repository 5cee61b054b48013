//! A topic's own settings, as the brokers report them (DescribeConfigs).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::ClientContext;

/// The largest record batch a topic accepts (the broker's `message.max.bytes` unless the
/// topic sets its own).
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";

/// `topic`'s `key` setting: its value, and whether the topic sets it itself (rather than
/// inheriting the broker's). `None` when the brokers would not say (no DescribeConfigs
/// permission, an old broker): a caller can do without it, so the reason is only logged.
pub async fn setting<C: ClientContext + 'static>(
    admin: &AdminClient<C>,
    topic: &str,
    key: &str,
    timeout: Duration,
) -> Option<(String, bool)> {
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await;
    let resource = match described.map(|mut all| all.pop()) {
        Ok(Some(Ok(resource))) => resource,
        Ok(Some(Err(code))) => {
            tracing::warn!(topic, "could not read the topic's {key}: {code}");
            return None;
        }
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(topic, "could not read the topic's {key}: {e}");
            return None;
        }
    };
    let entry = resource.get(key)?;
    Some((
        entry.value.clone()?,
        entry.source == ConfigSource::DynamicTopic,
    ))
}
