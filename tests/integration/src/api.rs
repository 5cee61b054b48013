//! A local stand-in for https://randomuser.me/api/1.4/ (the one dependency the
//! tests cannot reach). It serves API-shaped pages built from the project's
//! fixtures, with fresh `login.uuid`s, and can be scripted to fail the way the
//! real API does: 429 with `Retry-After`, 5xx, `{"error": ...}`, `{"results": []}`,
//! slow answers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::services::repo_root;

/// One scripted answer, used instead of a generated page.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers and body.
    Raw(u16, Vec<(String, String)>, String),
    /// Wait this long before answering with a generated page (for timeouts).
    Slow(Duration),
}

impl Reply {
    pub fn status(code: u16, body: &str) -> Reply {
        Reply::Raw(code, vec![], body.to_string())
    }

    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        Reply::Raw(
            429,
            vec![("Retry-After".into(), retry_after_secs.to_string())],
            fixture("rate_limited.json"),
        )
    }
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Reply>,
    /// After this many generated pages, answer every request with this reply.
    fail_after: Option<(usize, Reply)>,
    pages_served: usize,
    requests: usize,
    served: Vec<Value>,
    /// Once this many users are served, page requests wait for `release`.
    hold_after: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    released: Arc<tokio::sync::Notify>,
}

pub fn fixture(name: &str) -> String {
    let path = repo_root().join("tests/fixtures/randomuser").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn templates() -> Vec<Value> {
    let page: Value = serde_json::from_str(&fixture("quirks.json")).expect("quirks.json");
    page["results"].as_array().expect("results").clone()
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let api = FakeApi {
            addr,
            state: state.clone(),
            released: Arc::default(),
        };
        let server = api.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone().answer(stream));
            }
        });
        api
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/1.4/", self.addr)
    }

    /// Answers the next requests with `replies`, in order, before going back to pages.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().expect("lock").script.extend(replies);
    }

    /// After `pages` good pages, answer every request with `reply`.
    pub fn fail_after(&self, pages: usize, reply: Reply) {
        self.state.lock().expect("lock").fail_after = Some((pages, reply));
    }

    /// Once `users` users are served, holds every further page request until [`release`]:
    /// a producer of more than `users` is then certainly still running, with more to
    /// publish, however slow the machine (a fault test's "mid-run" is no race).
    ///
    /// [`release`]: FakeApi::release
    pub fn hold_after(&self, users: usize) {
        self.state.lock().expect("lock").hold_after = Some(users);
    }

    /// Answers the held requests, and all after them.
    pub fn release(&self) {
        self.state.lock().expect("lock").hold_after = None;
        self.released.notify_waiters();
    }

    /// Every user served so far, as the JSON the API sent (credentials included).
    pub fn served(&self) -> Vec<Value> {
        self.state.lock().expect("lock").served.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().expect("lock").requests
    }

    async fn answer(self, mut stream: tokio::net::TcpStream) {
        let mut buf = vec![0u8; 8192];
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let results: usize = query(&target, "results")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);

        let reply = {
            let mut s = self.state.lock().expect("lock");
            s.requests += 1;
            match s.script.pop_front() {
                Some(r) => Some(r),
                None => match &s.fail_after {
                    Some((pages, r)) if s.pages_served >= *pages => Some(r.clone()),
                    _ => None,
                },
            }
        };
        let (status, headers, body) = match reply {
            Some(Reply::Raw(status, headers, body)) => (status, headers, body),
            Some(Reply::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                (200, vec![], self.page(results))
            }
            None => {
                self.wait_while_held().await;
                (200, vec![], self.page(results))
            }
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
    }

    async fn wait_while_held(&self) {
        loop {
            // Registered before the check, so a `release` between the two is not missed.
            let released = self.released.notified();
            let held = {
                let s = self.state.lock().expect("lock");
                s.hold_after.is_some_and(|n| s.served.len() >= n)
            };
            if !held {
                return;
            }
            released.await;
        }
    }

    /// A page of `n` users cycling through the fixture's quirks, each with a fresh uuid.
    fn page(&self, n: usize) -> String {
        let mut s = self.state.lock().expect("lock");
        let users = fresh_users(s.served.len(), n);
        s.served.extend(users.iter().cloned());
        s.pages_served += 1;
        json!({"results": users, "info": {"seed": "fake", "results": n, "page": s.pages_served, "version": "1.4"}}).to_string()
    }
}

fn query<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// `n` users as the API sends them, cycling through the fixture's quirks from the `from`-th,
/// each with a fresh uuid.
fn fresh_users(from: usize, n: usize) -> Vec<Value> {
    let templates = templates();
    (0..n)
        .map(|i| {
            let mut user = templates[(from + i) % templates.len()].clone();
            let uuid = uuid::Uuid::new_v4().to_string();
            user["login"]["username"] = json!(format!("user_{}", &uuid[..8]));
            user["login"]["uuid"] = json!(uuid);
            user
        })
        .collect()
}

/// `n` rows, as the consumer makes them of what the API sends (the fixture's quirks, fresh
/// uuids), each at its own write time.
pub fn rows(n: usize) -> Vec<domain::row::TimedRow> {
    let page = json!({"results": fresh_users(0, n), "info": {"seed": "fake", "results": n, "page": 1, "version": "1.4"}});
    domain::ApiPage::parse(page.to_string().as_bytes())
        .expect("the fixture's users parse")
        .users
        .into_iter()
        .zip(0..)
        .map(|(user, write_time)| domain::row::TimedRow {
            row: domain::to_row(user, 0).expect("the fixture's users transform"),
            write_time,
        })
        .collect()
}
