//! Checks both binaries run on their clap definitions, so `--help`, the
//! README and Compose cannot drift apart.

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
