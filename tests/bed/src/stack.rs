//! The bed's control script, `tests/stack`: members stopped, killed and started, hosts cut off
//! and healed. Always the cluster bed's members, whatever the caller's environment says: a
//! fault meant for the cluster bed must never stop the default one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

#[derive(Debug, Clone)]
pub struct Stack {
    path: PathBuf,
}

impl Stack {
    pub fn at(path: PathBuf) -> Stack {
        Stack { path }
    }

    /// This repository's tests/stack: the one beside the source this crate was built from
    /// while that is still there, else the nearest above the working directory (a binary
    /// copied elsewhere and run from a checkout).
    pub fn find() -> Result<Stack> {
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        if built.join("tests/stack").exists() {
            return Ok(Stack::at(built.canonicalize()?.join("tests/stack")));
        }
        let cwd = std::env::current_dir()?;
        cwd.ancestors()
            .find(|d| d.join("tests/stack").exists())
            .map(|d| Stack::at(d.join("tests/stack")))
            .context("no tests/stack above the working directory")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .env("STACK_TOPOLOGY", "cluster")
            .stdin(Stdio::null());
        cmd
    }

    /// `tests/stack <args>` to its end, off the runtime (stopping a Cassandra node takes
    /// seconds); its output is kept for the error if it fails, and is otherwise not the
    /// caller's to print. Returns how long it took.
    pub async fn run(&self, args: &[&str]) -> Result<Duration> {
        let began = Instant::now();
        let out = tokio::process::Command::from(self.command(args))
            .output()
            .await
            .with_context(|| format!("running {}", self.path.display()))?;
        ensure!(
            out.status.success(),
            "tests/stack {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(began.elapsed())
    }

    /// The same, blocking, its output going where the caller's goes: for a `Drop` that heals
    /// the bed (no runtime to wait on there), and for tests, whose log then shows what the
    /// script did.
    pub fn run_blocking(&self, args: &[&str]) -> Result<()> {
        let status = self
            .command(args)
            .status()
            .with_context(|| format!("running {}", self.path.display()))?;
        ensure!(
            status.success(),
            "tests/stack {} failed ({status})",
            args.join(" ")
        );
        Ok(())
    }

    /// Whether the script has a `verb` command: `partition` came later than the others.
    pub async fn can(&self, verb: &str) -> bool {
        let help = tokio::process::Command::from(self.command(&["--help"]))
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        help.contains(verb)
    }

    /// Ok when the cluster bed is up; else how to start it.
    pub async fn check_up(&self) -> Result<()> {
        self.run(&["status"]).await.context(
            "the cluster bed is not up: `STACK_TOPOLOGY=cluster tests/stack up`, then \
             `eval \"$(tests/stack --cluster env)\"`",
        )?;
        Ok(())
    }
}
