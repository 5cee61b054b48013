//! The cluster bed's shape, which every topic and keyspace made on it follows: replicated on
//! all three hosts with a quorum of two, so one lost member (a broker, a node, a host) loses
//! and blocks nothing, and a second one is a fault of the bed, not of the pipeline.

/// Hosts of the bed (127.0.0.2-4): brokers kafka-1..3, Cassandra nodes cassandra-1..3.
pub const HOSTS: usize = 3;

/// The bed's datacenter (SimpleSnitch's name for it, what system.local reports).
pub const DATACENTER: &str = "datacenter1";

/// Partitions of a topic on the bed: one, two or three consumer replicas share them evenly.
pub const PARTITIONS: usize = 6;

/// A keyspace's replication: every node a replica (written out, not formatted from
/// DATACENTER, so that it can be a constant; a test keeps the two together).
pub const REPLICATION: &str = "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}";

/// The flags both binaries take to create a topic the bed's way: PARTITIONS partitions, on
/// every broker, acknowledged by two.
pub const TOPIC_FLAGS: [&str; 6] = [
    "--topic-partitions",
    "6",
    "--topic-replication",
    "3",
    "--topic-min-insync-replicas",
    "2",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_describe_one_bed() {
        assert_eq!(TOPIC_FLAGS[1], PARTITIONS.to_string());
        assert_eq!(TOPIC_FLAGS[3], HOSTS.to_string());
        assert_eq!(
            REPLICATION,
            format!("{{'class': 'NetworkTopologyStrategy', '{DATACENTER}': {HOSTS}}}")
        );
    }
}
