//! Settings handed on to a process this one starts (the consumers and producers a bench
//! runs), so that it connects as this one does whether a setting came from a flag or from
//! the environment. Secrets go in the child's environment, never on a command line that `ps`
//! shows.

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

#[derive(Debug)]
pub struct ChildArgs<'a> {
    child: &'a mut Command,
}

impl<'a> ChildArgs<'a> {
    pub fn new(child: &'a mut Command) -> ChildArgs<'a> {
        ChildArgs { child }
    }

    pub fn flag(&mut self, name: &str, value: impl Into<OsString>) -> &mut Self {
        self.child.arg(name).arg(value.into());
        self
    }

    /// A duration as the flags read it (humantime).
    pub fn duration(&mut self, name: &str, value: Duration) -> &mut Self {
        self.flag(name, humantime::format_duration(value).to_string())
    }

    /// A flag that has no default: passed only if it was given.
    pub fn optional<V: Into<OsString>>(&mut self, name: &str, value: Option<V>) -> &mut Self {
        if let Some(value) = value {
            self.flag(name, value);
        }
        self
    }

    /// A secret, in the variable the child reads it from. Unset, it stays unset: the child's
    /// inherited environment has none either, or this process would have read it.
    pub fn secret(&mut self, variable: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.child.env(variable, value);
        }
        self
    }
}

/// For tests: the settings a process started as `child` reads, the variables it is given
/// read as their flags. Panics if one of `secrets` is on its command line.
#[cfg(test)]
pub(crate) fn read_as_child<C: clap::Parser>(child: &Command, secrets: &[&str]) -> C {
    let mut args: Vec<OsString> = vec!["child".into()];
    args.extend(child.get_args().map(OsString::from));
    for arg in &args {
        let arg = arg.to_string_lossy();
        assert!(
            !secrets.iter().any(|s| arg.contains(s)),
            "a secret is on the command line: {arg}"
        );
    }
    let command = C::command();
    for (variable, value) in child.get_envs() {
        let reader = command
            .get_arguments()
            .find(|a| a.get_env() == Some(variable))
            .unwrap_or_else(|| panic!("no flag reads {variable:?}"));
        let mut flag = OsString::from(format!("--{}=", reader.get_long().unwrap()));
        flag.push(value.expect("a variable set, not removed"));
        args.push(flag);
    }
    C::try_parse_from(args).unwrap()
}
