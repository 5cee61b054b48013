//! The tests' Alertmanager webhook receiver: an HTTP server on `ALERT_RECEIVER_ADDR`, where the
//! bed's Alertmanager posts each receiver's notifications (`/page`, `/ticket`, `/watchdog`: a
//! `webhook_configs` entry tests/stack.d/services/alertmanager.py adds to Compose's receivers).
//! It keeps every alert of every notification, so a test asserts on what was really sent, not
//! on what Alertmanager holds.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// One alert of one notification.
#[derive(Debug, Clone)]
pub struct Notified {
    /// The Alertmanager receiver it was sent to (`page`, `ticket`, `watchdog`).
    pub receiver: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub name: String,
    pub labels: Value,
    pub annotations: Value,
    /// When it arrived here.
    pub at: Instant,
}

impl Notified {
    pub fn is(&self, status: &str, name: &str, label: Option<(&str, &str)>) -> bool {
        self.status == status
            && self.name == name
            && label.is_none_or(|(k, v)| self.labels[k].as_str() == Some(v))
    }
}

impl std::fmt::Display for Notified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} to {} {}",
            self.status, self.name, self.receiver, self.labels
        )
    }
}

#[derive(Debug)]
pub struct Receiver {
    notified: Arc<Mutex<Vec<Notified>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `ALERT_RECEIVER_ADDR` (`tests/stack env`); a missing variable or a port in use
    /// fails the test.
    pub async fn start() -> Receiver {
        let addr = std::env::var("ALERT_RECEIVER_ADDR").unwrap_or_else(|_| {
            panic!("ALERT_RECEIVER_ADDR is not set: `eval \"$(tests/stack env)\"` with the monitoring group up")
        });
        let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
            panic!("the alert receiver cannot listen on {addr}: {e} (another monitoring test running?)")
        });
        let notified = Arc::new(Mutex::new(Vec::new()));
        let kept = notified.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| receive(req, kept.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { notified, server }
    }

    /// Everything received so far, oldest first.
    pub fn notified(&self) -> Vec<Notified> {
        self.notified.lock().expect("receiver lock").clone()
    }

    /// Received at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Notified> {
        self.notified()
            .into_iter()
            .filter(|n| n.at >= since)
            .collect()
    }

    /// Polls what was received until `done` holds for it; returns how long that took.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Notified]) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            if done(&self.notified()) {
                let took = started.elapsed();
                println!("{what}: after {:.0}s", took.as_secs_f64());
                return took;
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; received: {}",
                list(&self.notified())
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn list(notified: &[Notified]) -> String {
    if notified.is_empty() {
        return "nothing".into();
    }
    notified
        .iter()
        .map(Notified::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `notified` holds an alert of that status, name and label.
pub fn got(notified: &[Notified], status: &str, name: &str, label: Option<(&str, &str)>) -> bool {
    notified.iter().any(|n| n.is(status, name, label))
}

/// One POST of Alertmanager's webhook JSON: each of its alerts is kept. Anything else is a 400,
/// which Alertmanager would log as a failed notification.
async fn receive(
    req: Request<Incoming>,
    kept: Arc<Mutex<Vec<Notified>>>,
) -> Result<Response<String>, Infallible> {
    let receiver = req.uri().path().trim_start_matches('/').to_string();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(answer(StatusCode::BAD_REQUEST, format!("body: {e}"))),
    };
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => return Ok(answer(StatusCode::BAD_REQUEST, format!("not JSON: {e}"))),
    };
    let Some(alerts) = message["alerts"].as_array() else {
        return Ok(answer(StatusCode::BAD_REQUEST, "no alerts[]".into()));
    };
    let at = Instant::now();
    let mut kept = kept.lock().expect("receiver lock");
    for alert in alerts {
        let n = Notified {
            receiver: receiver.clone(),
            status: alert["status"].as_str().unwrap_or("?").to_string(),
            name: alert["labels"]["alertname"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            labels: alert["labels"].clone(),
            annotations: alert["annotations"].clone(),
            at,
        };
        println!("receiver: {n}");
        kept.push(n);
    }
    Ok(answer(StatusCode::OK, String::new()))
}

fn answer(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}
