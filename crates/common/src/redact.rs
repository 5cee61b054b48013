//! Credentials embedded in URLs (`https://user:password@host`, e.g. a registry or an API behind
//! basic auth) kept out of what people read: the password becomes `***` wherever a URL is shown
//! in a message, and once more on the way out ([`Stderr`], for every log line; [`crate::cli`]
//! for the final error), so a message that quotes a URL from a library's error is covered too.
//! The URLs themselves keep their credentials: the HTTP client sends them as basic auth.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io::Write;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// `text` with the password of every `scheme://user:password@` in it replaced by `***`.
pub fn url_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends where the path, query or fragment starts, or the URL ends in the
        // surrounding text; its user info ends at its last `@` (a password may hold an `@`).
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '>' | ')') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority
            .rfind('@')
            .and_then(|at| Some((at, authority[..at].find(':')?)))
        {
            Some((at, colon)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Whether `text` holds a URL with a password.
pub fn has_url_password(text: &str) -> bool {
    matches!(url_passwords(text), Cow::Owned(_))
}

/// A clap value parser for a URL that may carry a password: clap's own error quotes the value
/// whole; this one shows it with the password redacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlParser;

impl TypedValueParser for UrlParser {
    type Value = reqwest::Url;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<reqwest::Url, clap::Error> {
        let text = value.to_string_lossy();
        text.parse().map_err(|e| {
            let setting = arg.map_or_else(|| "a setting".to_string(), crate::secret::setting_name);
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("{setting} is not a URL ({e}): {}\n", url_passwords(&text)),
            )
            .with_cmd(cmd)
        })
    }
}

/// stderr for the log subscriber, with URL passwords redacted: the formatter hands over each
/// event whole, so a URL is never split between two writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(url_passwords(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted_wherever_a_url_is_quoted() {
        let cases = [
            (
                "schema registry at https://alice:hunter2@reg:8081/apis did not answer",
                "schema registry at https://alice:***@reg:8081/apis did not answer",
            ),
            // A password with an `@` in it; user only (no password); query and end of text.
            ("http://u:p@ss@h", "http://u:***@h"),
            (
                "http://token@h/x and (https://a:b@c?q=1)",
                "http://token@h/x and (https://a:***@c?q=1)",
            ),
            ("\"http://a:b@c\"", "\"http://a:***@c\""),
            ("no urls, user:pass@host", "no urls, user:pass@host"),
        ];
        for (text, shown) in cases {
            assert_eq!(url_passwords(text), shown, "{text}");
        }
        assert!(matches!(url_passwords("http://h:80/"), Cow::Borrowed(_)));
        assert!(has_url_password("https://a:b@c") && !has_url_password("https://a@c"));
    }
}
