//! What both binaries share on the command line: a check that runs on their clap
//! definitions, so `--help`, the docs and Compose cannot drift apart, and how a run ends.

use clap::Command;

/// Panics if `command` is inconsistent (clap's own checks) or if `readme`
/// lacks one of its environment variables, written as `` `NAME` ``.
pub fn assert_documented(command: Command, readme: &str) {
    command.clone().debug_assert();
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(
                readme.contains(&format!("`{env}`")),
                "docs/configuration.md does not document {env}"
            );
        }
    }
}

/// How a binary's run ends: the summary line (log and stdout) and exit 0, or the error
/// with its causes (log and stderr) and exit 1. `what` names the run in the log.
pub fn exit(what: &str, result: anyhow::Result<impl std::fmt::Display>) -> std::process::ExitCode {
    match result {
        Ok(summary) => {
            tracing::info!("summary: {summary}");
            println!("summary: {summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{what} failed: {e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
