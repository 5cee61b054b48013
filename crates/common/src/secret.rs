//! Secrets (passwords, keys) as a type that cannot be printed: `Debug` and
//! `Display` show `***`, so no log line, error, `--help` default or metric
//! can carry one by accident. The value is read only where it is handed to
//! a client library, through [`Secret::expose`]. A value that holds a secret is parsed by
//! [`hidden`], whose errors never quote it.

use std::ffi::OsStr;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the client library that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// `user:password`, the Confluent convention for registry basic auth
/// (`basic.auth.user.info`). The password part is a [`Secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***", self.user)
    }
}

impl FromStr for UserInfo {
    type Err = String;

    fn from_str(s: &str) -> Result<UserInfo, String> {
        match s.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(UserInfo {
                user: user.to_string(),
                password: Secret::new(password),
            }),
            // Never echo the value: it is (or contains) the password.
            _ => Err("expected user:password (a user, a colon, then the password)".to_string()),
        }
    }
}

/// A clap value parser for a value that is, or may hold, a secret. clap's own error for a value
/// its parser refuses quotes the value ("invalid value 'alice-hunter2' for ..."); this one names
/// the flag, its variable and the shape expected, never the value.
pub fn hidden<T>() -> Hidden<T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    Hidden(PhantomData)
}

/// See [`hidden`].
pub struct Hidden<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for Hidden<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hidden")
    }
}

impl<T> Clone for Hidden<T> {
    fn clone(&self) -> Self {
        Hidden(PhantomData)
    }
}

impl<T> TypedValueParser for Hidden<T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let refuse = |why: &str| {
            let setting = arg.map_or_else(|| "a setting".to_string(), setting_name);
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!(
                    "{setting} is malformed: {why}. Its value is not shown: it holds a secret.\n"
                ),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("it is not valid UTF-8"))?;
        text.parse().map_err(|why: String| refuse(&why))
    }
}

/// How a setting is named in a message, whichever way it was given: `--flag (ENV_VAR)`.
pub fn setting_name(arg: &clap::Arg) -> String {
    let flag = arg
        .get_long()
        .map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"));
    match arg.get_env() {
        Some(env) => format!("{flag} ({})", env.to_string_lossy()),
        None => flag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
        let info: UserInfo = "alice:pa:ss".parse().expect("user info");
        assert_eq!(
            (info.user.as_str(), info.password.expose()),
            ("alice", "pa:ss")
        );
        assert_eq!(format!("{info:?}"), "alice:***");
        let err = "no-colon-hunter2"
            .parse::<UserInfo>()
            .expect_err("no colon");
        assert!(!err.contains("hunter2"));
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[arg(long, env = "TEST_SECRET_USER_INFO", value_parser = hidden::<UserInfo>())]
        auth: Option<UserInfo>,
    }

    #[test]
    fn a_malformed_secret_is_refused_by_name_and_shape_never_by_value() {
        use clap::Parser;
        let err = Cli::try_parse_from(["cli", "--auth", "alice-hunter2"])
            .expect_err("no colon")
            .to_string();
        assert!(
            err.contains("--auth (TEST_SECRET_USER_INFO) is malformed: expected user:password")
                && !err.contains("hunter2"),
            "{err}"
        );
        let ok = Cli::try_parse_from(["cli", "--auth", "alice:hunter2"]).expect("well formed");
        assert_eq!(ok.auth.expect("auth").password.expose(), "hunter2");
    }
}
