//! The services a bench's consumers run against, as one set of flags. The bench's own clients
//! (its loader, its bare loop, its clean-up) and every binary it starts connect with the same
//! settings, so a comparison never measures two configurations.

use common::cassandra::CassandraArgs;
use common::kafka::KafkaArgs;
use common::registry::RegistryArgs;

use crate::child::PassTo;

#[derive(Debug, clap::Args)]
// Each round writes to a keyspace of its own, made and dropped by the bench: the flag would do
// nothing.
#[command(mut_arg("cassandra_keyspace", |a| a.hide(true)))]
pub struct Services {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
}

impl Services {
    /// Hands every setting to a consumer the bench starts, flags and environment alike
    /// (secrets in its environment).
    pub fn pass_to_consumer(&self, child: &mut std::process::Command) {
        self.pass_to_producer(child);
        self.cassandra.pass_to(child);
    }

    /// The same for a producer, which never talks to Cassandra.
    pub fn pass_to_producer(&self, child: &mut std::process::Command) {
        self.kafka.pass_to(child);
        self.registry.pass_to(child);
    }
}
