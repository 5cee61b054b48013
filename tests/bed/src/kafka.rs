//! What Kafka says of the bed: a topic's partitions and end offsets, the offsets a group
//! committed on it, and whether every broker is back with every replica in sync. The free
//! functions block, as librdkafka's calls do; [`Kafka`] runs them off the async runtime.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::topology::HOSTS;

/// The partitions of `topic`, in order (none while it does not exist).
pub fn partitions(client: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let md = client.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    parts.sort();
    Ok(parts)
}

/// End offset of each partition of `topic`, in partition order (empty if none): what was
/// published to it.
pub fn end_offsets(client: &BaseConsumer, topic: &str) -> Result<Vec<i64>> {
    partitions(client, topic)?
        .into_iter()
        .map(|p| Ok(client.fetch_watermarks(topic, p, Duration::from_secs(5))?.1))
        .collect()
}

/// Offsets `group` committed on `topic`, in partition order (-1: none yet). Equal to
/// [`end_offsets`] when the group has committed everything published.
pub fn committed(config: &ClientConfig, group: &str, topic: &str) -> Result<Vec<i64>> {
    let c: BaseConsumer = config.clone().set("group.id", group).create()?;
    let parts = partitions(&c, topic)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition(topic, *p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(parts
        .iter()
        .map(|p| {
            committed
                .find_partition(topic, *p)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(-1)
        })
        .collect())
}

/// Ok when every broker is in the metadata and every partition of `topics` has a replica
/// in sync on each: a broker that is up but still catching up counts as lost, since one
/// more loss would then leave a partition below its quorum.
pub fn in_sync(client: &BaseConsumer, topics: &[&str]) -> Result<()> {
    let md = client.fetch_metadata(None, Duration::from_secs(5))?;
    let brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    ensure!(
        brokers.len() == HOSTS,
        "brokers in the metadata: {brokers:?}"
    );
    for t in md.topics().iter().filter(|t| topics.contains(&t.name())) {
        for p in t.partitions() {
            ensure!(
                p.isr().len() == HOSTS,
                "{}-{} in-sync replicas {:?}",
                t.name(),
                p.id(),
                p.isr()
            );
        }
    }
    Ok(())
}

/// A long-lived client of the bed's brokers, asked from async code.
#[derive(Clone)]
pub struct Kafka {
    config: ClientConfig,
    client: Arc<BaseConsumer>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    pub fn new(bootstrap: &str) -> Result<Kafka> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("enable.auto.commit", "false")
            // librdkafka logs every lost connection; the bed loses many on purpose.
            .set("log_level", "0");
        let client = config
            .clone()
            .set("group.id", "bed_observer")
            .create()
            .context("Kafka client")?;
        Ok(Kafka {
            config,
            client: Arc::new(client),
        })
    }

    /// The settings the client was made with (no group), for other clients of the same
    /// brokers (an admin client that removes what a run made).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || f(&client)).await?
    }

    pub async fn end_offsets(&self, topic: &str) -> Result<Vec<i64>> {
        let topic = topic.to_string();
        self.blocking(move |c| end_offsets(c, &topic)).await
    }

    pub async fn committed(&self, group: &str, topic: &str) -> Result<Vec<i64>> {
        let (config, group, topic) = (self.config.clone(), group.to_string(), topic.to_string());
        tokio::task::spawn_blocking(move || committed(&config, &group, &topic)).await?
    }

    pub async fn in_sync(&self, topics: &[String]) -> Result<()> {
        let topics = topics.to_vec();
        self.blocking(move |c| {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            in_sync(c, &topics)
        })
        .await
    }
}
