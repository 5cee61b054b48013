//! Cassandra connection flags and the session built from them: contact
//! points, PasswordAuthenticator credentials, client TLS (with an optional
//! client certificate), timeouts and the write consistency level.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::NewSessionError;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::speculative_execution::{
    SimpleSpeculativeExecutionPolicy, SpeculativeExecutionPolicy,
};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use crate::fault::Fault;
use crate::secret::Secret;

mod tls;

#[derive(Debug, Clone, Args)]
pub struct CassandraArgs {
    /// Cassandra nodes, comma-separated host:port. More than one lets the driver start when
    /// one is down; it discovers the rest of the cluster from them.
    #[arg(
        value_name = "CONTACT_POINTS",
        id = "cassandra_contact_points",
        long = "cassandra-contact-points",
        env = "CASSANDRA_CONTACT_POINTS",
        default_value = "localhost:9042",
        value_delimiter = ','
    )]
    pub contact_points: Vec<String>,

    /// User name for Cassandra's PasswordAuthenticator (unset: no authentication).
    #[arg(
        value_name = "USERNAME",
        id = "cassandra_username",
        long = "cassandra-username",
        env = "CASSANDRA_USERNAME",
        requires = "cassandra_password"
    )]
    pub username: Option<String>,

    /// Password for Cassandra's PasswordAuthenticator. Never logged.
    #[arg(
        value_name = "PASSWORD",
        id = "cassandra_password",
        long = "cassandra-password",
        env = "CASSANDRA_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// Keyspace of the `created_users` table (created if missing).
    #[arg(
        value_name = "KEYSPACE",
        id = "cassandra_keyspace",
        long = "keyspace",
        env = "CASSANDRA_KEYSPACE",
        default_value = "user_pipeline"
    )]
    pub keyspace: String,

    /// Replication of the keyspace when it has to be created, as a CQL map.
    #[arg(
        value_name = "REPLICATION",
        id = "cassandra_replication",
        long = "cassandra-replication",
        env = "CASSANDRA_REPLICATION",
        default_value = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )]
    pub replication: String,

    /// How long to wait for Cassandra at start-up before giving up.
    #[arg(value_name = "CONNECT_TIMEOUT", id = "cassandra_connect_timeout", long = "cassandra-connect-timeout", env = "CASSANDRA_CONNECT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Timeout of one write (or query) to Cassandra; a timed-out write is retried.
    #[arg(value_name = "WRITE_TIMEOUT", id = "cassandra_write_timeout", long = "write-timeout", env = "CASSANDRA_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// After this long without an answer, an idempotent write is also sent to the next
    /// replica (speculative execution, up to two more); the first answer wins. A node that
    /// is silent (not down: packets dropped, a long GC pause) then costs this delay instead
    /// of the write timeout. 0s turns it off.
    #[arg(value_name = "DELAY", id = "cassandra_speculative_delay", long = "cassandra-speculative-delay", env = "CASSANDRA_SPECULATIVE_DELAY", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub speculative_delay: Duration,

    /// Consistency level of writes. LOCAL_QUORUM: a row counts as written (and its offset may
    /// be committed) once a majority of its replicas in this datacenter have it, so losing
    /// one node of three loses nothing and blocks nothing.
    #[arg(
        value_name = "LEVEL",
        id = "cassandra_consistency",
        long = "consistency",
        env = "CASSANDRA_CONSISTENCY",
        value_enum,
        ignore_case = true,
        default_value = "LOCAL_QUORUM"
    )]
    pub consistency: WriteConsistency,

    /// Datacenter whose nodes coordinate the writes (the driver's DC-aware load balancing);
    /// unset: any. With it, LOCAL_QUORUM means a quorum in this datacenter.
    #[arg(
        value_name = "DATACENTER",
        id = "cassandra_local_dc",
        long = "cassandra-local-dc",
        env = "CASSANDRA_LOCAL_DC"
    )]
    pub local_dc: Option<String>,

    /// PEM file of the CA(s) that signed the nodes' certificates. Setting it turns on
    /// client TLS; each node's certificate must name the address it is reached at.
    #[arg(
        value_name = "SSL_CA_LOCATION",
        id = "cassandra_ssl_ca_location",
        long = "cassandra-ssl-ca-location",
        env = "CASSANDRA_SSL_CA_LOCATION"
    )]
    pub ssl_ca_location: Option<PathBuf>,

    /// PEM client certificate, for nodes that require one (require_client_auth).
    #[arg(
        value_name = "SSL_CERT_LOCATION",
        id = "cassandra_ssl_cert_location",
        long = "cassandra-ssl-cert-location",
        env = "CASSANDRA_SSL_CERT_LOCATION",
        requires = "cassandra_ssl_key_location"
    )]
    pub ssl_cert_location: Option<PathBuf>,

    /// PEM private key of the client certificate.
    #[arg(
        value_name = "SSL_KEY_LOCATION",
        id = "cassandra_ssl_key_location",
        long = "cassandra-ssl-key-location",
        env = "CASSANDRA_SSL_KEY_LOCATION",
        requires = "cassandra_ssl_cert_location"
    )]
    pub ssl_key_location: Option<PathBuf>,

    /// Check that each node's certificate names the address it is reached at. Turn off
    /// only for nodes whose certificates name something else; the CA is still checked.
    #[arg(value_name = "SSL_VERIFY_HOSTNAME", id = "cassandra_ssl_verify_hostname", 
        long = "cassandra-ssl-verify-hostname",
        env = "CASSANDRA_SSL_VERIFY_HOSTNAME",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub ssl_verify_hostname: bool,
}

impl CassandraArgs {
    /// The driver's consistency level for writes.
    pub fn write_consistency(&self) -> Consistency {
        self.consistency.into()
    }

    pub fn contact_points(&self) -> String {
        self.contact_points.join(",")
    }

    /// Readies the prepared INSERT the way the pipeline sends it: idempotent (rows are keyed,
    /// so speculative execution and retries may send it twice) at the write consistency.
    pub fn configure_insert(&self, insert: &mut PreparedStatement) {
        insert.set_is_idempotent(true);
        insert.set_consistency(self.write_consistency());
    }

    /// The same for a batch of those INSERTs: unlogged (each row is idempotent by itself, so
    /// the batch log's atomicity would buy nothing), idempotent, at the write consistency.
    pub fn configure_batch(&self, batch: &mut scylla::statement::batch::Batch) {
        batch.set_is_idempotent(true);
        batch.set_consistency(self.write_consistency());
    }

    /// A session, retrying nodes that are not up yet until
    /// `--cassandra-connect-timeout`; refused credentials or an untrusted
    /// certificate end it at once, naming the setting to fix.
    pub async fn connect(&self) -> Result<Session> {
        let deadline = std::time::Instant::now() + self.connect_timeout;
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        loop {
            let fault = match self.session().await {
                Ok(session) => return Ok(session),
                Err(SessionError::Settings(e)) => return Err(e),
                Err(SessionError::Driver(e)) => self.session_fault(&e),
            };
            if fault.class == crate::fault::Class::Fatal {
                bail!("{}", fault.message);
            }
            if std::time::Instant::now() >= deadline {
                bail!(
                    "Cassandra at {} did not accept a session within {:?}: {}. Is it up and \
                     listening for CQL there (CASSANDRA_CONTACT_POINTS)? If it wants TLS, set \
                     CASSANDRA_SSL_CA_LOCATION.",
                    self.contact_points(),
                    self.connect_timeout,
                    fault.message
                );
            }
            tracing::warn!(contact_points = %self.contact_points(), "Cassandra not reachable yet, retrying: {}", fault.message);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// The class of a failed session (`fault::cassandra::session_fault`), named for these
    /// settings.
    pub fn session_fault(&self, e: &NewSessionError) -> Fault {
        crate::fault::cassandra::session_fault(
            e,
            &self.contact_points(),
            self.username.as_deref().unwrap_or(""),
        )
    }

    /// One attempt at a session with these settings.
    pub async fn session(&self) -> Result<Session, SessionError> {
        // Token-aware (each write goes to a replica of its row), and DC-aware when a local
        // datacenter is named.
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &self.local_dc {
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        // Only statements marked idempotent (the INSERT) are ever sent twice.
        let speculative = (!self.speculative_delay.is_zero()).then(|| {
            Arc::new(SimpleSpeculativeExecutionPolicy {
                max_retry_count: 2,
                retry_interval: self.speculative_delay,
            }) as Arc<dyn SpeculativeExecutionPolicy>
        });
        let profile = ExecutionProfile::builder()
            .request_timeout(Some(self.write_timeout))
            .consistency(self.write_consistency())
            .load_balancing_policy(policy.build())
            .speculative_execution_policy(speculative)
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&self.contact_points)
            .connection_timeout(Duration::from_secs(5))
            // A connection whose node stops answering is dropped within 20 s (the driver's
            // default: a minute), and the node's requests go to the others at once. Not
            // much less: a node starved of CPU for a few seconds is slow, not gone.
            .keepalive_interval(Duration::from_secs(5))
            .keepalive_timeout(Duration::from_secs(15))
            // The driver reads the cluster's schema at start-up, on every schema change and
            // each minute; by default every table and column of every keyspace, with 30 s per
            // query. Routing needs only our keyspace's replication. A replica starting beside
            // a node still catching up after a restart waited 70 s on those reads, and N
            // replicas reading all of system_schema add load to a cluster already short of it.
            // (CQL folds the unquoted name to lower case; so does system_schema.)
            .keyspaces_to_fetch([self.keyspace.to_lowercase()])
            .fetch_full_schema_metadata(false)
            // The driver times the control connection's reads out 1 s after this (a
            // ScyllaDB-only server-side timeout; setting the client-side one alone below it
            // draws a warning at every start).
            .metadata_request_serverside_timeout(self.write_timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder = builder.user(user, password.expose());
        }
        if let Some(tls) = self.tls().map_err(SessionError::Settings)? {
            builder = builder.tls_context(Some(tls));
        }
        builder.build().await.map_err(SessionError::Driver)
    }
}

/// Why a session could not be had: our settings, or what the driver met.
#[derive(Debug)]
pub enum SessionError {
    Settings(anyhow::Error),
    Driver(NewSessionError),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Settings(e) => write!(f, "{e:#}"),
            SessionError::Driver(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// Write consistency levels, as CQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteConsistency {
    #[value(name = "ANY")]
    Any,
    #[value(name = "ONE")]
    One,
    #[value(name = "TWO")]
    Two,
    #[value(name = "THREE")]
    Three,
    #[value(name = "QUORUM")]
    Quorum,
    #[value(name = "ALL")]
    All,
    #[value(name = "LOCAL_QUORUM")]
    LocalQuorum,
    #[value(name = "EACH_QUORUM")]
    EachQuorum,
    #[value(name = "LOCAL_ONE")]
    LocalOne,
}

impl WriteConsistency {
    /// The level as CQL (and the `--consistency` flag) names it, e.g. `LOCAL_QUORUM`.
    pub fn cql_name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

impl From<WriteConsistency> for Consistency {
    fn from(c: WriteConsistency) -> Consistency {
        match c {
            WriteConsistency::Any => Consistency::Any,
            WriteConsistency::One => Consistency::One,
            WriteConsistency::Two => Consistency::Two,
            WriteConsistency::Three => Consistency::Three,
            WriteConsistency::Quorum => Consistency::Quorum,
            WriteConsistency::All => Consistency::All,
            WriteConsistency::LocalQuorum => Consistency::LocalQuorum,
            WriteConsistency::EachQuorum => Consistency::EachQuorum,
            WriteConsistency::LocalOne => Consistency::LocalOne,
        }
    }
}
