//! librdkafka properties given by the user: `--kafka-config key=value`
//! (repeated, like kcat's `-X`; several in one value or in `KAFKA_CONFIG`, `;`-separated,
//! a `;` inside a value written `\;`) and a properties file (`key=value` lines, `#`
//! comments, like a Java client's `client.properties`). Values of keys that
//! hold secrets never print.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
}

/// Whether `key`'s value is a secret (passwords, private keys, tokens).
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || key == "ssl.key.pem"
        || key == "sasl.oauthbearer.config"
        || key.contains("jaas")
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_secret(&self.key) {
            write!(f, "{}=***", self.key)
        } else {
            write!(f, "{}={}", self.key, self.value)
        }
    }
}

impl FromStr for Property {
    type Err = String;

    fn from_str(s: &str) -> Result<Property, String> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Property {
                key: key.trim().to_string(),
                value: value.trim().to_string(),
            }),
            // The text may hold a secret: name the shape, not the value.
            _ => Err("expected key=value, e.g. socket.timeout.ms=10000".to_string()),
        }
    }
}

/// The properties of one `--kafka-config` value (or `KAFKA_CONFIG`): `key=value` entries
/// separated by `;`. A password may hold a `;`, so `\;` is a `;` in a value and `\\` a
/// backslash; any other backslash is kept as it is (a Windows path needs no escaping).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<Property>);

impl FromStr for Properties {
    type Err = String;

    fn from_str(s: &str) -> Result<Properties, String> {
        let mut entries = vec![String::new()];
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('\\', Some(&next @ (';' | '\\'))) => {
                    chars.next();
                    entries.last_mut().expect("one entry").push(next);
                }
                (';', _) => entries.push(String::new()),
                (c, _) => entries.last_mut().expect("one entry").push(c),
            }
        }
        let count = entries.len();
        entries
            .iter()
            .enumerate()
            // `a=1;` and `a=1;;b=2` are a slip, not an entry.
            .filter(|(_, e)| !e.trim().is_empty())
            .map(|(n, e)| {
                e.parse().map_err(|why| {
                    if count == 1 {
                        why
                    } else {
                        // Which entry, never its text: a password cut at an unescaped `;` is
                        // one of them.
                        format!(
                            "entry {} of {count} (counting by `;`): {why}; a `;` inside a value \
                             is written \\;",
                            n + 1
                        )
                    }
                })
            })
            .collect::<Result<_, _>>()
            .map(Properties)
    }
}

impl Properties {
    /// `props` as one `KAFKA_CONFIG` value, escaped so that it parses back to them.
    pub fn join<'a>(props: impl IntoIterator<Item = &'a Property>) -> String {
        let escape = |s: &str| s.replace('\\', r"\\").replace(';', r"\;");
        props
            .into_iter()
            .map(|p| format!("{}={}", escape(&p.key), escape(&p.value)))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Reads a properties file: `key=value` per line, blank lines and `#`/`!` comments skipped.
pub fn read_file(path: &Path) -> Result<Vec<Property>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read KAFKA_CONFIG_FILE {}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("KAFKA_CONFIG_FILE {}: {e}", path.display()))
}

fn parse(text: &str) -> Result<Vec<Property>> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .map(|(n, line)| line.parse().map_err(|e| anyhow!("line {n}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_secret_values_never_print() {
        let props = parse(
            "# comment\n\nsecurity.protocol = SASL_SSL\nsasl.password=s3cr=t\n! also a comment\n",
        )
        .expect("parse");
        assert_eq!(props.len(), 2);
        assert_eq!(props[1].value, "s3cr=t", "only the first = splits");
        assert_eq!(
            format!("{props:?}"),
            "[security.protocol=SASL_SSL, sasl.password=***]"
        );
        let err = parse("sasl.password hunter2")
            .expect_err("no =")
            .to_string();
        assert!(err.contains("line 1") && !err.contains("hunter2"), "{err}");
        assert!(is_secret("ssl.key.password") && !is_secret("ssl.ca.location"));
    }

    fn entries(s: &str) -> Vec<(String, String)> {
        let props: Properties = s.parse().expect("parses");
        props.0.into_iter().map(|p| (p.key, p.value)).collect()
    }

    #[test]
    fn a_semicolon_in_a_value_survives_when_escaped() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            entries(r"sasl.password=pa\;ss;linger.ms=5"),
            [pair("sasl.password", "pa;ss"), pair("linger.ms", "5")]
        );
        assert_eq!(
            entries(r"ssl.key.password=ends\\;ssl.ca.location=C:\certs\ca.pem;"),
            [
                pair("ssl.key.password", r"ends\"),
                pair("ssl.ca.location", r"C:\certs\ca.pem")
            ],
            "an escaped backslash ends the value; other backslashes are kept"
        );
        assert_eq!(entries("a=1;;b=2"), [pair("a", "1"), pair("b", "2")]);
        assert!(entries("").is_empty());
        let props: Properties = r"sasl.password=a\;b\\;ssl.ca.location=C:\x"
            .parse()
            .unwrap();
        assert_eq!(
            Properties::join(&props.0).parse::<Properties>().unwrap(),
            props,
            "join is what parses back"
        );
    }

    #[test]
    fn an_unescaped_semicolon_in_a_password_is_refused_without_quoting_it() {
        let err = "linger.ms=5;sasl.password=hun;ter2"
            .parse::<Properties>()
            .expect_err("`ter2` is not key=value");
        assert!(
            err.starts_with("entry 3 of 3") && err.contains(r"\;") && !err.contains("ter2"),
            "{err}"
        );
        let err = "sasl.password".parse::<Properties>().expect_err("no =");
        assert!(err.starts_with("expected key=value"), "{err}");
    }
}
