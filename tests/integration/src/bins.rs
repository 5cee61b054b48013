//! Runs the real `producer` and `consumer` binaries, as Airflow and Compose do.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::services::{repo_root, Services};

/// Path of a workspace binary: `$PRODUCER_BIN` / `$CONSUMER_BIN`, or target/debug.
pub fn path(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase());
    let path = std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug").join(name));
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace` first (or set {var})",
        path.display()
    );
    path
}

/// A command for `name` with the service addresses set and nothing inherited
/// from the caller's pipeline settings.
pub fn command(name: &str, services: &Services) -> Command {
    let mut cmd = Command::new(path(name));
    with_services(&mut cmd, services);
    cmd
}

/// Sets the service addresses on `cmd` (a binary, or Airflow that runs one),
/// clears inherited pipeline settings and captures its output.
pub fn with_services(cmd: &mut Command, services: &Services) {
    for (key, _) in std::env::vars() {
        if key.starts_with("PRODUCER_")
            || key.starts_with("CONSUMER_")
            || key.starts_with("RANDOMUSER_")
            || key.starts_with("KAFKA_")
            || key.starts_with("CASSANDRA_")
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("KAFKA_BOOTSTRAP_SERVERS", &services.kafka)
        .env("SCHEMA_REGISTRY_URL", &services.registry)
        .env("CASSANDRA_CONTACT_POINTS", &services.cassandra)
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The `key=value` figure of the summary line.
    pub fn summary(&self, key: &str) -> u64 {
        let line = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .rfind(|l| l.contains("summary:"))
            .unwrap_or_else(|| panic!("no summary line in output:\n{self}"));
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in summary {line:?}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs to completion, with a generous bound so a hang fails instead of stalling CI.
pub async fn run(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.spawn().expect("spawn binary");
    finish(child, limit).await
}

/// Sends SIGTERM (what Compose and Airflow send to stop a run) to a running binary.
pub fn terminate(child: &Child) {
    let pid = child.id().expect("the binary is still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
}

pub async fn finish(child: Child, limit: Duration) -> Output {
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("binary still running after {limit:?}"))
        .expect("wait for binary");
    Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `tests/stack <args>`, for the failure tests that stop and start a service.
pub fn stack(args: &[&str]) {
    let status = std::process::Command::new(repo_root().join("tests/stack"))
        .args(args)
        .status()
        .expect("run tests/stack");
    assert!(status.success(), "tests/stack {args:?} failed");
}
