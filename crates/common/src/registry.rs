//! The Schema Registry: its settings, the start-up check both binaries make,
//! and the fault of each way a registry call can fail, with the fix it names
//! (the class itself: `fault::registry`).
//!
//! Encoding and decoding go through `schema_registry_converter`. Its errors
//! keep the registry's Confluent `error_code` (or the HTTP client's error) as
//! their source, which is what failures are classed by. The few calls whose
//! HTTP status itself matters (the start-up check, compatibility reasons, an
//! error answer the converter could not parse) are plain GET/POSTs here.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Args;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;

use crate::backoff::Backoff;
use crate::fault::http::{http_status_class, is_tls_trust_failure, root_cause};
use crate::fault::registry::{describe, lookup_class, SCHEMA_NOT_FOUND, SUBJECT_NOT_FOUND};
use crate::fault::{Class, Fault};
use crate::secret::UserInfo;

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Base URL of the Confluent-compatible Schema Registry (for Apicurio, its
    /// ccompat API, e.g. http://localhost:8081/apis/ccompat/v7).
    #[arg(
        value_name = "URL",
        long = "schema-registry-url",
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://localhost:8081"
    )]
    pub url: String,

    /// Timeout of one request to the Schema Registry.
    #[arg(value_name = "TIMEOUT", id = "schema_registry_timeout", long = "schema-registry-timeout", env = "SCHEMA_REGISTRY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// How long to keep retrying an unreachable (or 5xx) Schema Registry at start-up.
    #[arg(value_name = "CONNECT_TIMEOUT", id = "schema_registry_connect_timeout", long = "schema-registry-connect-timeout", env = "SCHEMA_REGISTRY_CONNECT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Basic auth for the registry as `user:password` (Confluent's `basic.auth.user.info`;
    /// on Confluent Cloud, the API key and secret). Never logged.
    #[arg(
        value_name = "USER:PASSWORD",
        id = "schema_registry_basic_auth_user_info",
        long = "schema-registry-basic-auth-user-info",
        env = "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        hide_env_values = true,
        value_parser = crate::secret::hidden::<UserInfo>()
    )]
    pub basic_auth: Option<UserInfo>,

    /// PEM file of the CA(s) that signed the registry's HTTPS certificate, when it is not in
    /// the system trust store.
    #[arg(
        value_name = "SSL_CA_LOCATION",
        id = "schema_registry_ssl_ca_location",
        long = "schema-registry-ssl-ca-location",
        env = "SCHEMA_REGISTRY_SSL_CA_LOCATION"
    )]
    pub ssl_ca_location: Option<PathBuf>,
}

impl RegistryArgs {
    /// A registry at `url` with the defaults of every other setting.
    pub fn at(url: &str) -> RegistryArgs {
        RegistryArgs {
            url: url.to_string(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            basic_auth: None,
            ssl_ca_location: None,
        }
    }

    fn base(&self) -> String {
        self.url.trim_end_matches('/').to_string()
    }

    /// The registry's URL as messages show it: a password in it is `***`.
    pub fn shown_url(&self) -> String {
        crate::redact::url_passwords(&self.base()).into_owned()
    }

    /// The HTTP client both the converter and our own calls use: same
    /// timeout, same trust.
    fn http(&self) -> Result<reqwest::ClientBuilder> {
        let mut builder = reqwest::Client::builder().timeout(self.timeout);
        if let Some(path) = &self.ssl_ca_location {
            let pem = std::fs::read(path).map_err(|e| {
                anyhow!(
                    "cannot read SCHEMA_REGISTRY_SSL_CA_LOCATION {}: {e}",
                    path.display()
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow!(
                    "SCHEMA_REGISTRY_SSL_CA_LOCATION {} is not a PEM certificate bundle: {e}",
                    path.display()
                )
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(builder)
    }

    /// Settings for `schema_registry_converter`'s encoders and decoders.
    pub fn settings(&self) -> Result<SrSettings> {
        let mut settings = SrSettings::new_builder(self.base());
        settings.set_timeout(self.timeout);
        if let Some(auth) = &self.basic_auth {
            settings.set_basic_authorization(&auth.user, Some(auth.password.expose()));
        }
        settings.build_with(self.http()?).map_err(|e| {
            anyhow!(
                "schema registry URL {:?} is not usable: {e}. Check SCHEMA_REGISTRY_URL.",
                self.shown_url()
            )
        })
    }

    /// The registry client, once the start-up check of `topic`'s value
    /// subject passed (see [`Registry::check`]).
    pub async fn connect(&self, topic: &str) -> Result<Registry> {
        let registry = self.client()?;
        registry
            .check(&format!("{topic}-value"))
            .await
            .map_err(|f| anyhow!("{}", f.message))?;
        Ok(registry)
    }

    pub fn client(&self) -> Result<Registry> {
        let http = self
            .http()?
            .build()
            .map_err(|e| anyhow!("building the schema registry HTTP client: {e}"))?;
        Ok(Registry {
            base: self.base(),
            shown: self.shown_url(),
            http,
            auth: self.basic_auth.clone(),
            connect_timeout: self.connect_timeout,
        })
    }
}

/// Plain HTTP access to the registry, for answers whose status matters.
#[derive(Debug, Clone)]
pub struct Registry {
    base: String,
    /// `base` as messages show it (see [`RegistryArgs::shown_url`]).
    shown: String,
    http: reqwest::Client,
    auth: Option<UserInfo>,
    connect_timeout: Duration,
}

/// A registry's answer: status, Confluent error code (if the body had one), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub error_code: Option<u32>,
    pub body: serde_json::Value,
}

impl Registry {
    /// The registry's URL as messages show it: a password in it is `***`.
    pub fn url(&self) -> &str {
        &self.shown
    }

    async fn call(&self, mut request: reqwest::RequestBuilder) -> Result<Answer, Fault> {
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.user, Some(auth.password.expose()));
        }
        let response = request
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.schemaregistry.v1+json",
            )
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let error_code = body
            .get("error_code")
            .and_then(|c| c.as_u64())
            .map(|c| c as u32);
        Ok(Answer {
            status,
            error_code,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, Fault> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Answer, Fault> {
        self.call(
            self.http
                .post(format!("{}{path}", self.base))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/vnd.schemaregistry.v1+json",
                )
                .body(body.to_string()),
        )
        .await
    }

    fn unreachable(&self, e: &reqwest::Error) -> Fault {
        if is_tls_trust_failure(e) {
            Fault::fatal(
                "registry",
                format!(
                    "the TLS certificate of the schema registry at {} is not trusted: {}. Point \
                     SCHEMA_REGISTRY_SSL_CA_LOCATION at the CA that signed it (or add the CA to \
                     the system store).",
                    self.shown,
                    root_cause(e)
                ),
            )
        } else {
            Fault::retry(
                "registry",
                format!(
                    "the schema registry at {} did not answer: {}",
                    self.shown,
                    root_cause(e)
                ),
            )
        }
    }

    /// Start-up check: the registry answers, it is a Confluent-compatible API
    /// at that path, and it lets us read `subject` (which need not exist yet).
    /// Retries a registry that is down or failing until `--schema-registry-connect-timeout`.
    pub async fn check(&self, subject: &str) -> Result<(), Fault> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let fault = match self.get(&format!("/subjects/{subject}/versions")).await {
                Ok(a) if subject_readable(&a) => return Ok(()),
                Ok(a) => self.refusal(&a, &format!("looking up subject {subject}")),
                Err(f) => f,
            };
            if fault.class != Class::Retry {
                return Err(fault);
            }
            if Instant::now() >= deadline {
                return Err(Fault::fatal(
                    "registry",
                    format!(
                        "{} (for {:?}). Is the registry up, and is SCHEMA_REGISTRY_URL right? \
                         Raise SCHEMA_REGISTRY_CONNECT_TIMEOUT to wait longer.",
                        fault.message, self.connect_timeout
                    ),
                ));
            }
            tracing::warn!("schema registry not ready, retrying: {}", fault.message);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One readiness probe: the registry answers and lets us read `subject`.
    pub async fn ping(&self, subject: &str) -> bool {
        matches!(self.get(&format!("/subjects/{subject}/versions")).await, Ok(a) if subject_readable(&a))
    }

    /// The fault of an answer that is not the one asked for, named by its
    /// status: transient for 5xx, the setting to fix for anything else.
    pub fn refusal(&self, answer: &Answer, doing: &str) -> Fault {
        let Answer { status, body, .. } = answer;
        let said = if body.is_null() {
            String::from("no JSON body")
        } else {
            body.to_string().chars().take(300).collect()
        };
        let class = http_status_class(*status);
        let fix = match status {
            401 => "the registry wants credentials, or refused them: check \
                    SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO (user:password)"
                .to_string(),
            403 => "the registry's user is not allowed this: grant it read (consumer) or \
                    write (producer) access to the subject"
                .to_string(),
            404 => format!(
                "{} does not look like a Confluent-compatible registry API: check \
                 SCHEMA_REGISTRY_URL (its base URL; for Apicurio it ends in /apis/ccompat/v7)",
                self.shown
            ),
            _ if class == Class::Retry => "the registry is failing; retrying".to_string(),
            _ => "check SCHEMA_REGISTRY_URL and the registry's own log".to_string(),
        };
        Fault::new(
            class,
            "registry",
            format!(
                "schema registry at {} answered HTTP {status} {doing} ({said}): {fix}",
                self.shown
            ),
        )
    }

    /// What a failed lookup of schema `id` by the converter means. A schema id the
    /// registry does not know (`40403`) is [`Lookup::Unknown`]: the caller decides how long
    /// to wait for it. A refusal or a wrong URL is ours (fatal); trouble on the way is
    /// transient; a schema the registry has but that cannot read Avro is the record's (poison).
    pub async fn classify_lookup(&self, id: u32, e: &SRCError) -> Lookup {
        let doing = format!("looking up schema id {id}");
        if let Some(class) = lookup_class(e) {
            let message = format!(
                "schema registry at {}: {doing}: {}",
                self.shown,
                describe(e)
            );
            return match class {
                Class::Poison => Lookup::Unknown,
                Class::Fatal => Lookup::Failed(
                    match e.source().and_then(|s| s.downcast_ref::<RawError>()) {
                        // Re-ask to name the status and the fix.
                        Some(_) => match self.get(&format!("/schemas/ids/{id}")).await {
                            Ok(answer) => self.refusal(&answer, &doing),
                            Err(f) => f,
                        },
                        None => Fault::fatal(
                            "registry",
                            format!(
                                "{message}. The answer is not a registry's: check \
                                 SCHEMA_REGISTRY_URL."
                            ),
                        ),
                    },
                ),
                Class::Retry => Lookup::Failed(Fault::retry("registry", message)),
            };
        }
        // The converter could not read the error answer: ask the registry
        // ourselves, and class by the status it gives.
        match self.get(&format!("/schemas/ids/{id}")).await {
            Ok(a) if a.error_code == Some(SCHEMA_NOT_FOUND) => Lookup::Unknown,
            // The registry has it, so what the converter refused is the schema itself.
            Ok(a) if (200..300).contains(&a.status) => Lookup::Failed(Fault::poison(
                "schema",
                format!(
                    "schema id {id} cannot be used to read Avro: {}",
                    describe(e)
                ),
            )),
            Ok(a) => Lookup::Failed(self.refusal(&a, &doing)),
            Err(f) => Lookup::Failed(f),
        }
    }

    /// Whether `subject` has at least one version: a registry that knows none of a topic's
    /// schemas is not the one its producers use.
    pub async fn subject_has_versions(&self, subject: &str) -> Result<bool, Fault> {
        let doing = format!("listing the versions of subject {subject}");
        match self.get(&format!("/subjects/{subject}/versions")).await? {
            a if a.error_code == Some(SUBJECT_NOT_FOUND) => Ok(false),
            a if (200..300).contains(&a.status) && a.body.is_array() => {
                Ok(a.body.as_array().is_some_and(|v| !v.is_empty()))
            }
            a => Err(self.refusal(&a, &doing)),
        }
    }
}

/// What a failed schema lookup means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The registry does not know the id (yet: a lagging follower, a schema registered a
    /// moment after its first records).
    Unknown,
    Failed(Fault),
}

/// A subject's version list, or "no such subject yet": either way a registry
/// API that lets us in.
fn subject_readable(a: &Answer) -> bool {
    ((200..300).contains(&a.status) && a.body.is_array()) || a.error_code == Some(SUBJECT_NOT_FOUND)
}
