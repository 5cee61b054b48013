//! The consumer replicas of the soak: started, killed, restarted when they exit on their own,
//! and stopped at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bed::topology::{REPLICATION, TOPIC_FLAGS};
use tokio::process::{Child, Command};

use super::{stamp_now, Names};
use crate::process;

/// What the fleet needs of the soak's flags: where the bed is, for each replica's command line,
/// and how many replicas to run.
#[derive(Debug, Clone)]
pub(super) struct FleetSettings {
    pub(super) bootstrap_servers: String,
    pub(super) schema_registry_url: String,
    pub(super) cassandra_contact_points: String,
    pub(super) replicas: usize,
}

/// The consumer replicas: one slot each, keeping its /metrics address and log file across
/// restarts, so a minute's figures follow the slot, whichever process fills it.
pub(super) struct Fleet {
    bin: PathBuf,
    flags: Vec<String>,
    slots: Vec<Slot>,
    /// Each slot's live pid, for the monitor's /proc reads.
    pub(super) pids: Arc<Vec<AtomicU32>>,
    /// Replicas that exited without being killed (each restarted): a failed check.
    pub(super) crashes: Vec<String>,
}

struct Slot {
    addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Fleet {
    pub(super) fn new(
        settings: &FleetSettings,
        bin: PathBuf,
        names: &Names,
        log_dir: &Path,
    ) -> Result<Fleet> {
        let mut flags: Vec<String> = [
            "--bootstrap-servers",
            settings.bootstrap_servers.as_str(),
            "--schema-registry-url",
            settings.schema_registry_url.as_str(),
            "--cassandra-contact-points",
            settings.cassandra_contact_points.as_str(),
            "--topic",
            names.topic.as_str(),
            "--dlq-topic",
            names.dlq.as_str(),
            "--group-id",
            names.group.as_str(),
            "--keyspace",
            names.keyspace.as_str(),
            "--cassandra-replication",
            REPLICATION,
            "--consistency",
            "QUORUM",
            "--progress-interval",
            "10s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.extend(TOPIC_FLAGS.map(String::from));
        let slots = (0..settings.replicas)
            .map(|i| {
                Ok(Slot {
                    addr: process::free_addr()?,
                    log: log_dir.join(format!("replica-{}.log", i + 1)),
                    child: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pids = Arc::new((0..settings.replicas).map(|_| AtomicU32::new(0)).collect());
        Ok(Fleet {
            bin,
            flags,
            slots,
            pids,
            crashes: Vec::new(),
        })
    }

    pub(super) fn replicas(&self) -> usize {
        self.slots.len()
    }

    /// Each slot's /metrics address, in slot order.
    pub(super) fn addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// Starts slot `i`'s process; its output is appended to the slot's log file (a file, not
    /// a pipe: nobody reads a pipe while it runs, and a full one stalls the replica).
    pub(super) fn spawn(&mut self, i: usize) -> Result<u32> {
        let slot = &mut self.slots[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)?;
        let child = Command::new(&self.bin)
            .args(&self.flags)
            .args(["--http-addr", &slot.addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let pid = child.id().context("pid")?;
        self.pids[i].store(pid, Relaxed);
        slot.child = Some(child);
        Ok(pid)
    }

    /// kill -9 slot `i`'s process and reap it.
    pub(super) async fn kill(&mut self, i: usize) -> Result<u32> {
        let mut child = self.slots[i].child.take().context("replica not running")?;
        let pid = child.id().unwrap_or(0);
        self.pids[i].store(0, Relaxed);
        child.kill().await?;
        Ok(pid)
    }

    /// A replica that exited on its own is a finding; it is started again (as an orchestrator
    /// would) so the soak goes on.
    pub(super) fn restart_crashed(&mut self, start: Instant) -> Result<()> {
        for i in 0..self.slots.len() {
            let Some(child) = self.slots[i].child.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait()? {
                let what = format!(
                    "replica {} exited on its own at {} ({status}; log {})",
                    i + 1,
                    stamp_now(start),
                    self.slots[i].log.display()
                );
                println!("soak: {what}; starting it again");
                self.crashes.push(what);
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// SIGTERM to every replica: each finishes in-flight work, commits and exits 0.
    pub(super) async fn stop_all(&mut self) -> Result<()> {
        let mut failed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(mut child) = slot.child.take() else {
                continue;
            };
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                other => failed.push(format!("replica {}: {other:?}", i + 1)),
            }
        }
        ensure!(failed.is_empty(), "{}", failed.join("; "));
        Ok(())
    }
}
