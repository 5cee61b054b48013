//! What a bench made on the services (topics, consumer groups, keyspaces), removed once its
//! rounds are done. A bench pointed at a shared cluster leaves nothing but its figures,
//! and a bed that benches run on again and again does not grow with every run.

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use scylla::client::session::Session;

#[derive(Debug, Default)]
pub struct Leftovers {
    topics: Vec<String>,
    groups: Vec<String>,
    keyspaces: Vec<String>,
}

impl Leftovers {
    /// A topic the bench created, or had a binary create, and its dead-letter topic if any.
    pub fn topic(&mut self, topic: &str) {
        self.topics.push(topic.to_string());
    }

    pub fn group(&mut self, group: &str) {
        self.groups.push(group.to_string());
    }

    pub fn keyspace(&mut self, keyspace: &str) {
        self.keyspaces.push(keyspace.to_string());
    }

    /// Removes everything noted, once the rounds are done. What cannot be removed (a cluster
    /// that refuses deletes, say) is named with the reason and left: the figures still stand.
    /// `kafka` is the bench's client configuration (its security settings included);
    /// `session` is needed only if keyspaces were noted.
    pub async fn remove(self, kafka: &ClientConfig, session: Option<&Session>) {
        let mut left = Vec::new();
        for keyspace in &self.keyspaces {
            let Some(session) = session else {
                left.push(format!("keyspace {keyspace}: no Cassandra session"));
                continue;
            };
            if let Err(e) = session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
                .await
            {
                left.push(format!("keyspace {keyspace}: {e}"));
            }
        }
        if let Err(e) = self.remove_from_kafka(kafka).await {
            left.push(format!("{e:#}"));
        }
        if left.is_empty() {
            println!(
                "bench: removed what it made: {} topic(s), {} consumer group(s), {} keyspace(s)",
                self.topics.len(),
                self.groups.len(),
                self.keyspaces.len()
            );
        } else {
            println!(
                "bench: left on the services (remove by hand, or grant the bench's user \
                 delete rights): {}",
                left.join("; ")
            );
        }
    }

    async fn remove_from_kafka(&self, kafka: &ClientConfig) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            kafka.create().context("creating the Kafka admin client")?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let mut failed = Vec::new();
        // Groups first: a group's committed offsets name the topic.
        let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        if !groups.is_empty() {
            for result in admin.delete_groups(&groups, &options).await? {
                if let Err((group, code)) = result {
                    // A group that never committed does not exist: nothing to remove.
                    if code != rdkafka::types::RDKafkaErrorCode::GroupIdNotFound {
                        failed.push(format!("group {group}: {code}"));
                    }
                }
            }
        }
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        if !topics.is_empty() {
            for result in admin.delete_topics(&topics, &options).await? {
                if let Err((topic, code)) = result {
                    // A dead-letter topic is created only when its consumer starts.
                    if code != rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
                        failed.push(format!("topic {topic}: {code}"));
                    }
                }
            }
        }
        anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
        Ok(())
    }
}
