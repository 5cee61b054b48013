//! Secrets (passwords, keys) as a type that cannot be printed: `Debug` and
//! `Display` show `***`, so no log line, error, `--help` default or metric
//! can carry one by accident. The value is read only where it is handed to
//! a client library, through [`Secret::expose`].

use std::fmt;
use std::str::FromStr;

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
            _ => Err("expected user:password".to_string()),
        }
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
}
