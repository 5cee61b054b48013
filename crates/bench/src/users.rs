//! A local source of API-shaped pages: the project's quirk fixtures, repeated
//! with fresh uuids, serialised as the API would send them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Result;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const QUIRKS: &str = include_str!("../../../tests/fixtures/randomuser/quirks.json");

/// `count` users as JSON page bodies of at most `page_size` users.
pub fn pages(count: usize, page_size: usize) -> Vec<Vec<u8>> {
    let page: Value = serde_json::from_str(QUIRKS).expect("quirks fixture");
    let templates = page["results"].as_array().expect("results").clone();
    let mut pages = Vec::new();
    let mut made = 0;
    while made < count {
        let n = page_size.min(count - made);
        let users: Vec<Value> = (made..made + n)
            .map(|i| {
                let mut u = templates[i % templates.len()].clone();
                u["login"]["uuid"] = json!(uuid::Uuid::new_v4().to_string());
                u
            })
            .collect();
        pages.push(json!({"results": users, "info": {"seed": "bench", "results": n, "page": pages.len() + 1, "version": "1.4"}}).to_string().into_bytes());
        made += n;
    }
    pages
}

/// What the local API answers.
#[derive(Debug, Clone)]
pub enum Pages {
    /// Made per request, every user new: each becomes its own row.
    Fresh,
    /// Ready-made bodies served in turn, whatever size is asked: serving costs nothing, so
    /// a bench of the producer measures the producer, not this server.
    Cycle(Arc<Vec<Vec<u8>>>),
}

/// Serves `GET /api/?results=N` as the Random User API would, on a loopback port.
pub async fn serve(pages: Pages) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let turn = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (pages, turn) = (pages.clone(), turn.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let results = request
                    .split_whitespace()
                    .nth(1)
                    .and_then(|target| target.split("results=").nth(1))
                    .and_then(|v| v.split('&').next())
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(1);
                let body = match &pages {
                    Pages::Fresh => self::pages(results, results.max(1))
                        .pop()
                        .unwrap_or_default(),
                    Pages::Cycle(bodies) => {
                        bodies[turn.fetch_add(1, Relaxed) % bodies.len()].clone()
                    }
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    Ok(addr)
}
