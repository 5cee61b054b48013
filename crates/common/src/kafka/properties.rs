//! librdkafka properties given by the user: `--kafka-config key=value`
//! (repeated, like kcat's `-X`) and a properties file (`key=value` lines, `#`
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
}
