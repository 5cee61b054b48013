//! The Random User API as a source of pages, with retries for its transient
//! failures (429, 5xx, timeouts, refused connections, error bodies).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::backoff::Backoff;
use common::fault::http::{http_status_class, is_tls_trust_failure, root_cause};
use common::fault::Class;
use domain::{ApiPage, PageError, Text};
use reqwest::StatusCode;

/// Where the API is and how patiently to ask it (from `--api-*`, `--seed`, `--nat` and the
/// retry flags).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub url: String,
    pub timeout: Duration,
    pub seed: Option<String>,
    pub nat: Option<String>,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    pub retry_max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct ApiSource {
    client: reqwest::Client,
    url: String,
    /// `url` as messages show it: a password in it is `***`.
    shown: String,
    seed: Option<String>,
    nat: Option<String>,
    max_retries: u32,
    backoff: Backoff,
    max_backoff: Duration,
}

/// One failed attempt, and whether another may succeed.
enum Attempt {
    Retry(String, Option<Duration>),
    Fatal(String),
}

impl ApiSource {
    pub fn new(settings: &ApiSettings) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!(
                "user-pipeline-producer/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiSource {
            client,
            url: settings.url.clone(),
            shown: common::redact::url_passwords(&settings.url).into_owned(),
            seed: settings.seed.clone(),
            nat: settings.nat.clone(),
            max_retries: settings.max_retries,
            backoff: Backoff::new(settings.retry_backoff, settings.retry_max_backoff),
            max_backoff: settings.retry_max_backoff,
        })
    }

    /// Fetches page `page` (1-based) of `results` users and hands it to `then` on the
    /// thread that parsed it, its text borrowed from the response. With a seed, pages are distinct and reproducible; without
    /// one, every page is fresh random users.
    pub async fn fetch<T, F>(&self, results: u32, page: u64, then: F) -> Result<T>
    where
        F: FnOnce(ApiPage<Text<'_>>) -> T + Clone + Send + 'static,
        T: Send + 'static,
    {
        let mut backoff = self.backoff.clone();
        loop {
            let (reason, retry_after) = match self.attempt(results, page, then.clone()).await {
                Ok(page) => return Ok(page),
                Err(Attempt::Fatal(reason)) => bail!("{reason}"),
                Err(Attempt::Retry(reason, retry_after)) => (reason, retry_after),
            };
            if backoff.attempts() >= self.max_retries {
                bail!(
                    "the Random User API at {} failed {} times; last: {reason}. It may be \
                     rate-limiting or down: try again later, lower --batch-size or --rate, or \
                     raise --max-retries.",
                    self.shown,
                    backoff.attempts() + 1,
                );
            }
            // A server's Retry-After wins over our own schedule, within our cap.
            let ours = backoff.next_delay();
            let delay = retry_after.map_or(ours, |after| after.min(self.max_backoff));
            tracing::warn!(
                attempt = backoff.attempts(),
                max_retries = self.max_retries,
                delay_ms = delay.as_millis() as u64,
                "API request failed, retrying: {reason}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T, F>(&self, results: u32, page: u64, then: F) -> Result<T, Attempt>
    where
        F: FnOnce(ApiPage<Text<'_>>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut query: Vec<(&str, String)> = vec![("results", results.to_string())];
        if let Some(seed) = &self.seed {
            query.push(("seed", seed.clone()));
            query.push(("page", page.to_string()));
        }
        if let Some(nat) = &self.nat {
            query.push(("nat", nat.clone()));
        }
        let response = self
            .client
            .get(&self.url)
            .query(&query)
            .send()
            .await
            .map_err(|e| {
                if is_tls_trust_failure(&e) {
                    // Retrying cannot fix trust; say what would.
                    Attempt::Fatal(format!(
                        "the TLS certificate of {} is not trusted: {}. Behind a private CA, \
                         add it to the system store or point SSL_CERT_FILE at a bundle with it.",
                        self.shown,
                        root_cause(&e)
                    ))
                } else {
                    Attempt::Retry(describe(&self.shown, &e), None)
                }
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| Attempt::Retry(describe(&self.shown, &e), None))?;
        let said = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();

        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Retry(
                format!("HTTP 429 (rate limited): {}", said()),
                retry_after,
            ));
        }
        if !status.is_success() && http_status_class(status.as_u16()) == Class::Retry {
            return Err(Attempt::Retry(
                format!("HTTP {status}: {}", said()),
                retry_after,
            ));
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(format!(
                "the Random User API at {} refused the request with HTTP {status}: {}. Check \
                 --api-url and --nat.",
                self.shown,
                said()
            )));
        }
        // A 5000-user page takes milliseconds to parse: keep it off the async workers.
        let parsed = tokio::task::spawn_blocking(move || ApiPage::parse_borrowed(&body).map(then))
            .await
            .map_err(|e| Attempt::Fatal(format!("parsing the page panicked: {e}")))?;
        match parsed {
            Ok(done) => Ok(done),
            // The live API sometimes answers 200 with an error or nothing while overloaded.
            Err(e @ (PageError::Api(_) | PageError::Empty | PageError::Malformed(_))) => {
                Err(Attempt::Retry(e.to_string(), None))
            }
            Err(e @ PageError::AllRejected { .. }) => Err(Attempt::Fatal(e.to_string())),
        }
    }
}

fn describe(url: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("request to {url} timed out (--api-timeout)")
    } else if e.is_connect() {
        format!("could not connect to {url}: {}", root_cause(e))
    } else {
        format!("request to {url} failed: {}", root_cause(e))
    }
}
