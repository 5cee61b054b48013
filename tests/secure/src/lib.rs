//! Helpers for the secure bed's tests (tests/secure/tests/*.rs): the bed's
//! settings, read from the same variables the binaries read (`eval "$(tests/stack
//! env --secure)"`), the binaries run with them, and the search for secrets in
//! everything a run left behind. Reading back what a run wrote goes through the
//! `integration` helpers, whose clients connect with the same variables (SASL_SSL,
//! a Cassandra role over TLS).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration::api::FakeApi;
use integration::bins;
use integration::pipeline::{Lane, LIMIT};
use integration::Services;

/// Every setting of the secure bed a binary needs besides the addresses.
pub const SETTINGS: [&str; 10] = [
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
    "SCHEMA_REGISTRY_SSL_CA_LOCATION",
    "CASSANDRA_USERNAME",
    "CASSANDRA_PASSWORD",
    "CASSANDRA_SSL_CA_LOCATION",
];

/// The secure bed, as `tests/stack env --secure` describes it.
#[derive(Clone)]
pub struct Secure {
    pub services: Services,
    settings: Vec<(&'static str, String)>,
}

/// Names only: the values include passwords.
impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("services", &self.services)
            .field(
                "settings",
                &self.settings.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Secure {
    /// A missing variable is an error, never a skip.
    pub fn from_env() -> Secure {
        let settings = SETTINGS
            .iter()
            .map(|name| {
                let value = std::env::var(name).unwrap_or_else(|_| {
                    panic!("{name} is not set: run `tests/stack up --secure` and `eval \"$(tests/stack env --secure)\"` (tests/secure/run does)")
                });
                (*name, value)
            })
            .collect();
        Secure {
            services: Services::from_env(),
            settings,
        }
    }

    pub fn get(&self, name: &str) -> &str {
        self.settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} is not a secure setting"))
    }

    /// The bed's passwords: none may appear in any output of any run.
    pub fn secrets(&self) -> Vec<String> {
        let user_info = self.get("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO");
        let registry = user_info.split_once(':').map(|(_, p)| p).unwrap_or("");
        [
            self.get("KAFKA_SASL_PASSWORD"),
            registry,
            self.get("CASSANDRA_PASSWORD"),
        ]
        .into_iter()
        .inspect(|p| assert!(p.len() >= 8, "a bed password is suspiciously short"))
        .map(str::to_string)
        .collect()
    }

    /// Sets the secure settings on a command of `integration::bins` (which
    /// clears the caller's KAFKA_* and CASSANDRA_* variables).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for (k, v) in &self.settings {
            cmd.env(k, v);
        }
        cmd.env("SCHEMA_REGISTRY_URL", &self.services.registry);
    }

    pub fn command(&self, name: &str) -> tokio::process::Command {
        let mut cmd = bins::command(name, &self.services);
        self.apply(&mut cmd);
        cmd
    }

    /// The producer publishing `count` users from `api` to the lane's topic.
    pub fn producer(&self, lane: &Lane, api: &FakeApi, count: usize) -> tokio::process::Command {
        let mut cmd = self.command("producer");
        cmd.args(["--api-url", &api.url(), "--topic", &lane.topic])
            .args(["--count", &count.to_string()]);
        cmd
    }

    /// The consumer of the lane (its topic, DLQ, group and keyspace).
    pub fn consumer(&self, lane: &Lane, extra: &[&str]) -> tokio::process::Command {
        let mut cmd = lane.consumer(&self.services, extra);
        self.apply(&mut cmd);
        cmd
    }

    /// Publishes `count` users with the right settings; returns the run.
    pub async fn publish(&self, lane: &Lane, count: usize) -> bins::Output {
        let api = FakeApi::start().await;
        let out = bins::run(self.producer(lane, &api, count), LIMIT).await;
        assert!(out.success, "producer failed: {out}");
        assert_eq!(out.summary("published"), count as u64);
        out
    }
}

/// A free local address for a binary's `--http-addr`.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("addr").to_string()
}

/// Polls a consumer's /metrics at `addr` until `done` holds for it (within 120 s); returns
/// that text.
pub async fn until_metrics(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = bed::scrape(&client, addr).await;
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 120 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A CA nobody trusts: fresh, made with openssl in a temporary directory.
/// Returns the path of its certificate.
pub fn foreign_ca() -> PathBuf {
    let dir = std::env::temp_dir().join(integration::unique("foreign_ca"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=a CA the bed does not know"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl could not make a CA");
    std::fs::remove_file(dir.join("ca.key")).expect("remove the CA's key");
    dir.join("ca.pem")
}

/// Panics if any of `secrets` occurs in `text` (what: where the text comes from).
pub fn assert_no_secret(what: &str, text: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(text);
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret ({} characters) appears in {what}",
            secret.len()
        );
    }
}
