//! "The bed is whole again" after a fault was undone: every broker back with every replica
//! in sync, every Cassandra node answering. Until then a second fault would be two members
//! lost at once, which RF 3 with a quorum of 2 is not meant to survive.

use std::time::{Duration, Instant};

use anyhow::Result;
use scylla::client::session::Session;

use crate::cassandra::answers_at_all;
use crate::kafka::Kafka;

/// One read at ALL may take this long: a node still starting answers late, and the check is
/// asked again within the second anyway.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// Ok when the bed is whole for `topics` (the run's, and the group's offsets topic) and
/// `keyspace`.
pub async fn check(
    kafka: &Kafka,
    session: &Session,
    topics: &[String],
    keyspace: &str,
) -> Result<()> {
    kafka.in_sync(topics).await?;
    answers_at_all(session, keyspace, Some(READ_LIMIT)).await
}

/// Asks [`check`] every second until the bed is whole, and returns how long that took; after
/// `limit`, the last reason it was not.
pub async fn wait(
    kafka: &Kafka,
    session: &Session,
    topics: &[String],
    keyspace: &str,
    limit: Duration,
) -> Result<Duration> {
    let began = Instant::now();
    loop {
        match check(kafka, session, topics, keyspace).await {
            Ok(()) => return Ok(began.elapsed()),
            Err(_) if began.elapsed() < limit => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(e) => return Err(e),
        }
    }
}
