//! What both binaries share on the command line: how it is read (`--help` without URL
//! passwords), the configuration reference written from their clap definitions (so `--help`
//! and the docs cannot drift apart), and how a run ends.

use clap::Command;

pub mod reference;

/// Reads the command line as `T`. `--help` prints each variable's value beside its flag; a
/// variable whose value holds a URL with a password is shown by name only.
pub fn parse<T: clap::Parser>() -> T {
    let mut command = hide_url_passwords(T::command());
    let matches = command.clone().get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// `command` with the values of its variables that hold a URL password hidden from `--help`.
pub fn hide_url_passwords(command: Command) -> Command {
    command
        .mut_args(|arg| {
            let shows_password = !arg.is_hide_env_values_set()
                && arg
                    .get_env()
                    .and_then(std::env::var_os)
                    .is_some_and(|v| crate::redact::has_url_password(&v.to_string_lossy()));
            if shows_password {
                arg.hide_env_values(true)
            } else {
                arg
            }
        })
        .mut_subcommands(hide_url_passwords)
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
            // Not through the log's writer: a URL a library's error quotes is redacted here too.
            eprintln!("error: {}", crate::redact::url_passwords(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    #[test]
    fn help_shows_no_url_password_from_the_environment() {
        // Only this test reads these variables.
        std::env::set_var("COMMON_CLI_TEST_URL", "https://alice:hunter2@registry:8081");
        std::env::set_var("COMMON_CLI_TEST_PLAIN", "https://registry:8081");
        let command = || {
            Command::new("t")
                .arg(Arg::new("url").long("url").env("COMMON_CLI_TEST_URL"))
                .arg(Arg::new("plain").long("plain").env("COMMON_CLI_TEST_PLAIN"))
                .subcommand(
                    Command::new("sub").arg(Arg::new("u").long("u").env("COMMON_CLI_TEST_URL")),
                )
        };
        assert!(
            command().render_help().to_string().contains("hunter2"),
            "clap shows it"
        );
        let mut hidden = super::hide_url_passwords(command());
        let help = hidden.render_help().to_string();
        assert!(
            !help.contains("hunter2")
                && help.contains("[env: COMMON_CLI_TEST_URL]")
                && help.contains("[env: COMMON_CLI_TEST_PLAIN=https://registry:8081]"),
            "{help}"
        );
        let sub = hidden
            .find_subcommand_mut("sub")
            .expect("sub")
            .render_help()
            .to_string();
        assert!(!sub.contains("hunter2"), "{sub}");
        let matches = hidden.get_matches_from(["t"]);
        assert_eq!(
            matches.get_one::<String>("url").map(String::as_str),
            Some("https://alice:hunter2@registry:8081"),
            "the value itself is unchanged"
        );
    }
}
