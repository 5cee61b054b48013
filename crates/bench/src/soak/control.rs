//! The soak's hold on the bed: the fault in progress and its undo, run when the fault ends,
//! and by `Drop` if the soak ends any other way (an error, Ctrl-C), so the bed is always left
//! whole.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use bed::Stack;

/// The faults the soak can put on the bed (`--faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// kill -9 a consumer replica, start it again.
    Replica,
    /// `tests/stack stop kafka-N` (clean shutdown), then start.
    KafkaStop,
    /// `tests/stack kill kafka-N` (SIGKILL), then start.
    KafkaKill,
    CassandraStop,
    CassandraKill,
    /// `tests/stack partition kafka-N cassandra-N`: host N black-holed, then healed.
    Partition,
}

pub(super) struct Bed {
    stack: Stack,
    pending: Option<Vec<String>>,
}

impl Bed {
    pub(super) fn new(stack: Option<PathBuf>) -> Result<Bed> {
        let stack = match stack {
            Some(path) => Stack::at(path),
            None => Stack::find().map_err(|e| anyhow!("{e} (pass --stack)"))?,
        };
        ensure!(
            stack.path().exists(),
            "{} not found (pass --stack)",
            stack.path().display()
        );
        Ok(Bed {
            stack,
            pending: None,
        })
    }

    pub(super) async fn check_up(&self) -> Result<()> {
        self.stack.check_up().await
    }

    /// The kinds this bed's script can do: `partition` needs `tests/stack partition`.
    pub(super) async fn supported(&self, kinds: &[Kind]) -> Vec<Kind> {
        let partitions = self.stack.can("partition").await;
        if !partitions && kinds.contains(&Kind::Partition) {
            println!("soak: tests/stack has no `partition` command: no black-holed hosts this run");
        }
        kinds
            .iter()
            .copied()
            .filter(|k| partitions || *k != Kind::Partition)
            .collect()
    }

    /// Runs `fault`, remembering `undo` first: a fault that half-happened is undone too.
    pub(super) async fn fault(&mut self, fault: &[&str], undo: &[&str]) -> Result<()> {
        self.pending = Some(undo.iter().map(|s| s.to_string()).collect());
        self.stack.run(fault).await?;
        Ok(())
    }

    pub(super) async fn undo(&mut self) -> Result<Duration> {
        let Some(undo) = self.pending.clone() else {
            return Ok(Duration::ZERO);
        };
        let args: Vec<&str> = undo.iter().map(String::as_str).collect();
        let took = self.stack.run(&args).await?;
        self.pending = None;
        Ok(took)
    }

    /// The end of the soak, whatever happened: the pending undo, if any.
    pub(super) async fn heal(&mut self) -> Result<()> {
        if let Some(undo) = &self.pending {
            println!("soak: healing the bed: tests/stack {}", undo.join(" "));
        }
        self.undo().await.map(|_| ())
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(undo) = self.pending.take() {
            eprintln!(
                "soak: healing the bed on the way out: tests/stack {}",
                undo.join(" ")
            );
            let args: Vec<&str> = undo.iter().map(String::as_str).collect();
            if let Err(e) = self.stack.run_blocking(&args) {
                eprintln!("soak: {e:#}; run it by hand");
            }
        }
    }
}
