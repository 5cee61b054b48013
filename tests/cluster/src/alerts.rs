//! The cluster bed's own Prometheus (`prometheus-c`, the repository's rule files, no
//! Alertmanager) as a test sees it: the alerts it evaluates, pending or firing.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One alert as Prometheus evaluates it (`/api/v1/alerts`).
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub labels: Value,
    pub annotations: Value,
    /// `pending` (its `for` not yet over) or `firing`
    pub state: String,
}

impl Alert {
    pub fn firing(&self) -> bool {
        self.state == "firing"
    }

    /// The label's value, "" when it has none.
    pub fn label(&self, key: &str) -> &str {
        self.labels[key].as_str().unwrap_or("")
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.name, self.labels, self.state)
    }
}

/// The bed's Prometheus, from `tests/stack env` (PROMETHEUS_URL).
#[derive(Debug, Clone)]
pub struct Prometheus {
    pub url: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// A missing variable is an error, never a skip.
    pub fn from_env() -> Prometheus {
        let url = std::env::var("PROMETHEUS_URL").unwrap_or_else(|_| {
            panic!("PROMETHEUS_URL is not set: `tests/stack up --cluster` and `eval \"$(tests/stack --cluster env)\"`")
        });
        Prometheus {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let answer: Value = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Prometheus at {}: {e}", self.url))
            .json()
            .await
            .expect("Prometheus answers JSON");
        assert_eq!(answer["status"], "success", "{path} {query:?}: {answer}");
        answer
    }

    /// An instant query's result vector.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        self.get("api/v1/query", &[("query", expr)]).await["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every alert pending or firing now.
    pub async fn alerts(&self) -> Vec<Alert> {
        self.get("api/v1/alerts", &[]).await["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| Alert {
                name: a["labels"]["alertname"].as_str().unwrap_or("?").to_string(),
                labels: a["labels"].clone(),
                annotations: a["annotations"].clone(),
                state: a["state"].as_str().unwrap_or("?").to_string(),
            })
            .collect()
    }

    /// Polls the alerts until `done` holds for them; returns them and how long that took.
    pub async fn wait_for_alerts(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Alert]) -> bool,
    ) -> (Vec<Alert>, Duration) {
        let started = Instant::now();
        loop {
            let alerts = self.alerts().await;
            if done(&alerts) {
                let took = started.elapsed();
                eprintln!("{what}: after {:.0}s", took.as_secs_f64());
                return (alerts, took);
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; Prometheus has: {}",
                list(&alerts)
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Polls an instant query until `done` holds for its result.
    pub async fn wait_for_query(
        &self,
        what: &str,
        expr: &str,
        limit: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) {
        let started = Instant::now();
        loop {
            let result = self.query(expr).await;
            if done(&result) {
                eprintln!("{what}: after {:.0}s", started.elapsed().as_secs_f64());
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{what}: `{expr}` not within {limit:?}; last: {result:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

pub fn list(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "none".into();
    }
    alerts
        .iter()
        .map(Alert::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The alert named `name` (with `label` = value, if given) is firing.
pub fn firing(alerts: &[Alert], name: &str, label: Option<(&str, &str)>) -> bool {
    alerts
        .iter()
        .any(|a| a.name == name && a.firing() && label.is_none_or(|(k, v)| a.label(k) == v))
}
