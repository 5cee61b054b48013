//! Secrets at the edges, on the real binaries: a setting that fails is named in the output, and
//! the secret it holds, or that sits beside it, never is.

use std::time::Duration;

use integration::api::FakeApi;
use integration::bins::{self, Output};
use integration::{unique, Services};

const LIMIT: Duration = Duration::from_secs(120);

/// A secret no message could contain by chance.
const SECRET: &str = "Sekr1tTail";

fn assert_named_not_leaked(out: &Output, named: &[&str]) {
    assert!(!out.success, "the bad setting fails the run: {out}");
    for name in named {
        assert!(out.stderr.contains(name), "`{name}` not named: {out}");
    }
    assert!(
        !out.stderr.contains(SECRET) && !out.stdout.contains(SECRET),
        "the secret leaked: {out}"
    );
}

#[tokio::test]
async fn a_failing_setting_is_named_and_its_secret_never_shown() {
    let s = Services::from_env();
    let api = FakeApi::start().await;
    let producer = |api_url: &str| {
        let mut cmd = bins::command("producer", &s);
        cmd.args(["--api-url", api_url, "--topic", &unique("secrets")])
            .args(["--count", "5"]);
        cmd
    };

    // Registry basic auth without its `:`: refused before anything starts.
    let mut cmd = producer(&api.url());
    cmd.env(
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        format!("alice-{SECRET}"),
    );
    let out = bins::run(cmd, LIMIT).await;
    assert_named_not_leaked(
        &out,
        &[
            "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
            "expected user:password",
        ],
    );

    // A password with an unescaped `;`: its tail is not key=value.
    let mut cmd = bins::command("consumer", &s);
    cmd.env(
        "KAFKA_CONFIG",
        format!("linger.ms=5;sasl.password=pa;{SECRET}"),
    );
    let out = bins::run(cmd, LIMIT).await;
    assert_named_not_leaked(&out, &["KAFKA_CONFIG", "entry 3 of 3", r"\;"]);

    // Escaped, the `;` survives; under a mistyped key librdkafka refuses the property, which is
    // named without its value.
    let mut cmd = producer(&api.url());
    cmd.env("KAFKA_CONFIG", format!(r"sasl.pasword=pa\;{SECRET}"));
    let out = bins::run(cmd, LIMIT).await;
    assert_named_not_leaked(&out, &["the Kafka property sasl.pasword was refused"]);

    // Credentials in the registry's URL, when the registry does not answer.
    let mut cmd = bins::command("consumer", &s);
    cmd.env(
        "SCHEMA_REGISTRY_URL",
        format!("http://alice:{SECRET}@127.0.0.1:9/x"),
    )
    .args(["--schema-registry-connect-timeout", "1s"])
    .args([
        "--group-id",
        &unique("secrets"),
        "--topic",
        &unique("secrets"),
    ]);
    let out = bins::run(cmd, LIMIT).await;
    assert_named_not_leaked(&out, &["schema registry at http://alice:***@127.0.0.1:9/x"]);

    // Credentials in the API's URL, when the API does not answer.
    let mut cmd = producer(&format!("http://bob:{SECRET}@127.0.0.1:9/api/1.4/"));
    cmd.args(["--max-retries", "0"]);
    let out = bins::run(cmd, LIMIT).await;
    assert_named_not_leaked(
        &out,
        &["could not connect to http://bob:***@127.0.0.1:9/api/1.4/"],
    );

    // `--help` shows each variable's value, but not one with a URL password.
    for name in ["producer", "consumer"] {
        let mut cmd = bins::command(name, &s);
        cmd.env(
            "SCHEMA_REGISTRY_URL",
            format!("https://alice:{SECRET}@registry:8081"),
        )
        .arg("--help");
        let out = bins::run(cmd, LIMIT).await;
        assert!(out.success, "{out}");
        assert!(
            out.stdout.contains("[env: SCHEMA_REGISTRY_URL]")
                && out.stdout.contains("[env: KAFKA_BOOTSTRAP_SERVERS=")
                && !out.stdout.contains(SECRET),
            "{name} --help: {out}"
        );
    }
}
