//! docs/configuration.md's tables, written from the binaries' clap definitions: each flag
//! with its variable, default and `--help` text. A unit test of each binary compares the
//! page with them ([`crate::generated`]), so the page and `--help` cannot disagree.

use clap::{Arg, Command};

/// The reference of `command` and of its subcommands: a table of flags each, under a heading
/// with the subcommand's name and what it does. `name` is how a user types the command.
pub fn markdown(command: &Command, name: &str) -> String {
    // Built, so clap has filled in what it derives (e.g. a flag's `false` default).
    let mut command = command.clone();
    command.build();
    written(&command, name)
}

/// Checks `command` (clap's own consistency checks too) against its part `name` of
/// docs/configuration.md; `crate_dir` is the calling crate's, two levels below the root.
pub fn check(crate_dir: &str, command: Command, name: &str) -> Result<(), String> {
    command.clone().debug_assert();
    let page = crate::generated::page(crate_dir, "docs/configuration.md");
    crate::generated::check(&page, name, &markdown(&command, name))
}

fn written(command: &Command, name: &str) -> String {
    let mut out = table(command);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{name} {}", sub.get_name());
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| one_line(&a.to_string()))
            .unwrap_or_default();
        out.push_str(&format!("\n#### `{name}`\n\n{about}\n\n"));
        out.push_str(&written(sub, &name));
    }
    out
}

fn table(command: &Command) -> String {
    let args: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    if args.is_empty() {
        return String::new();
    }
    let mut out = String::from("| flag | env var | default | what |\n|---|---|---|---|\n");
    for arg in args {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            flag(arg),
            arg.get_env()
                .map(|e| format!("`{}`", e.to_string_lossy()))
                .unwrap_or_else(|| "—".into()),
            default(arg),
            what(arg)
        ));
    }
    out
}

fn flag(arg: &Arg) -> String {
    let mut names: Vec<String> = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("`-{short}`"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("`--{long}`"));
    }
    if names.is_empty() {
        names.push(format!("`<{}>`", arg.get_id()));
    }
    names.join(", ")
}

fn default(arg: &Arg) -> String {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if values.is_empty() {
        if arg.is_required_set() {
            "(required)".into()
        } else {
            "—".into()
        }
    } else {
        format!("`{}`", values.join(","))
    }
}

fn what(arg: &Arg) -> String {
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| one_line(&h.to_string()))
        .unwrap_or_default();
    let choices: Vec<String> = if arg.get_action().takes_values() {
        arg.get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect()
    } else {
        Vec::new()
    };
    if choices.is_empty() {
        help
    } else {
        format!("{help} (one of {})", choices.join(", "))
    }
}

/// Paragraphs and line breaks as spaces, and `|` escaped: one table cell.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    #[test]
    fn a_flag_becomes_a_row_with_its_variable_default_and_help() {
        let command = Command::new("t")
            .arg(
                Arg::new("rate")
                    .long("rate")
                    .env("T_RATE")
                    .default_value("0")
                    .help("Cap on users per second.\n\n0: none | no cap"),
            )
            .arg(
                Arg::new("quiet")
                    .short('q')
                    .long("quiet")
                    .action(ArgAction::SetTrue),
            )
            .subcommand(
                Command::new("run")
                    .about("Runs it")
                    .arg(Arg::new("x").long("x").required(true)),
            );
        let md = super::markdown(&command, "t");
        assert!(
            md.contains(
                "| `--rate` | `T_RATE` | `0` | Cap on users per second. 0: none \\| no cap |"
            ),
            "{md}"
        );
        assert!(md.contains("| `-q`, `--quiet` | — | `false` |"), "{md}");
        assert!(md.contains("#### `t run`\n\nRuns it\n\n| flag"), "{md}");
        assert!(md.contains("| `--x` | — | (required) |"), "{md}");
    }
}
