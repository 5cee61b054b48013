//! `/healthz` and `/metrics` on a port of their own. Two fixed GET routes do
//! not need a web framework; anything else is a 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("could not listen on {addr} for /healthz and /metrics; is another process using it? Set CONSUMER_HTTP_ADDR")
    })
}

pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let mut content_type = "text/plain; charset=utf-8";
            let (status, body) = match path {
                "/healthz" if metrics.ready() => ("200 OK", "ready\n".to_string()),
                "/healthz" => (
                    "503 Service Unavailable",
                    format!(
                        "not ready:{}\n",
                        metrics
                            .dependencies()
                            .iter()
                            .map(|(name, d)| format!(" {name}={}", up(d.is_up())))
                            .collect::<String>()
                    ),
                ),
                "/metrics" => {
                    content_type = common::metrics::CONTENT_TYPE;
                    ("200 OK", metrics.render())
                }
                _ => ("404 Not Found", "try /healthz or /metrics\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

fn up(ok: bool) -> &'static str {
    if ok {
        "up"
    } else {
        "down"
    }
}

/// `consumer --healthcheck`: asks a running consumer whether it is ready.
pub async fn check(addr: SocketAddr) -> Result<()> {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let url = format!("http://{host}:{}/healthz", addr.port());
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("no consumer answered at {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url}: {status}: {}", body.trim());
    }
    Ok(())
}
