//! Settings handed on to a process a bench starts (the consumers and producers it runs), so
//! that it connects as the bench does whether a setting came from a flag or from the
//! environment. Secrets go in the child's environment, never on a command line that `ps`
//! shows. Only the benches start the binaries with their own settings: this lives here, not
//! beside the settings in `common`.

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use common::cassandra::CassandraArgs;
use common::kafka::KafkaArgs;
use common::registry::RegistryArgs;

/// Settings that a child process reads from the same flags and variables as this one.
pub trait PassTo {
    fn pass_to(&self, child: &mut Command);
}

impl PassTo for KafkaArgs {
    /// Not the topic: each caller names its own. The password and the `--kafka-config`
    /// properties (which may hold secrets) go in the environment.
    fn pass_to(&self, child: &mut Command) {
        let config = common::kafka::Properties::join(self.config.iter().flat_map(|p| &p.0));
        ChildArgs::new(child)
            .flag("--bootstrap-servers", &self.bootstrap_servers)
            .flag("--topic-partitions", self.partitions.to_string())
            .flag("--topic-replication", self.replication.to_string())
            .flag(
                "--topic-min-insync-replicas",
                self.min_insync_replicas.to_string(),
            )
            .duration("--kafka-connect-timeout", self.connect_timeout)
            .optional("--kafka-security-protocol", self.security_protocol.as_ref())
            .optional("--kafka-sasl-mechanism", self.sasl_mechanism.as_ref())
            .optional("--kafka-sasl-username", self.sasl_username.as_ref())
            .optional("--kafka-ssl-ca-location", self.ssl_ca_location.as_ref())
            .optional("--kafka-config-file", self.config_file.as_ref())
            .secret(
                "KAFKA_SASL_PASSWORD",
                self.sasl_password.as_ref().map(|p| p.expose()),
            )
            .secret(
                "KAFKA_CONFIG",
                (!config.is_empty()).then_some(config.as_str()),
            );
    }
}

impl PassTo for RegistryArgs {
    /// The basic-auth user info goes in the environment.
    fn pass_to(&self, child: &mut Command) {
        let user_info = self
            .basic_auth
            .as_ref()
            .map(|u| format!("{}:{}", u.user, u.password.expose()));
        ChildArgs::new(child)
            .flag("--schema-registry-url", &self.url)
            .duration("--schema-registry-timeout", self.timeout)
            .duration("--schema-registry-connect-timeout", self.connect_timeout)
            .optional(
                "--schema-registry-ssl-ca-location",
                self.ssl_ca_location.as_ref(),
            )
            .secret("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", user_info.as_deref());
    }
}

impl PassTo for CassandraArgs {
    /// Not the keyspace: each caller names its own. The password goes in the environment.
    fn pass_to(&self, child: &mut Command) {
        ChildArgs::new(child)
            .flag("--cassandra-contact-points", self.contact_points())
            .flag("--cassandra-replication", &self.replication)
            .duration("--cassandra-connect-timeout", self.connect_timeout)
            .duration("--write-timeout", self.write_timeout)
            .duration("--cassandra-speculative-delay", self.speculative_delay)
            .flag("--consistency", self.consistency.cql_name())
            .flag(
                "--cassandra-ssl-verify-hostname",
                self.ssl_verify_hostname.to_string(),
            )
            .optional("--cassandra-username", self.username.as_ref())
            .optional("--cassandra-local-dc", self.local_dc.as_ref())
            .optional("--cassandra-ssl-ca-location", self.ssl_ca_location.as_ref())
            .optional(
                "--cassandra-ssl-cert-location",
                self.ssl_cert_location.as_ref(),
            )
            .optional(
                "--cassandra-ssl-key-location",
                self.ssl_key_location.as_ref(),
            )
            .secret(
                "CASSANDRA_PASSWORD",
                self.password.as_ref().map(|p| p.expose()),
            );
    }
}

struct ChildArgs<'a> {
    child: &'a mut Command,
}

impl<'a> ChildArgs<'a> {
    fn new(child: &'a mut Command) -> ChildArgs<'a> {
        ChildArgs { child }
    }

    fn flag(&mut self, name: &str, value: impl Into<OsString>) -> &mut Self {
        self.child.arg(name).arg(value.into());
        self
    }

    /// A duration as the flags read it (humantime).
    fn duration(&mut self, name: &str, value: Duration) -> &mut Self {
        self.flag(name, humantime::format_duration(value).to_string())
    }

    /// A flag that has no default: passed only if it was given.
    fn optional<V: Into<OsString>>(&mut self, name: &str, value: Option<V>) -> &mut Self {
        if let Some(value) = value {
            self.flag(name, value);
        }
        self
    }

    /// A secret, in the variable the child reads it from. Unset, it stays unset: the child's
    /// inherited environment has none either, or this process would have read it.
    fn secret(&mut self, variable: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.child.env(variable, value);
        }
        self
    }
}

#[cfg(test)]
mod tests;
