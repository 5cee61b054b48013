//! The bed's Prometheus, Alertmanager and Pushgateway (`tests/stack up --monitoring`), as the
//! monitoring tests see them: targets registered through file_sd, PromQL queries, the alerts
//! Alertmanager holds, what its receivers were sent ([`receiver`]), and the real binaries run
//! the way Compose runs them.

pub mod disk;
pub mod receiver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration::pipeline::Lane;
use integration::Services;
use serde_json::Value;

/// Addresses of the bed's monitoring services, from `tests/stack env`.
#[derive(Debug, Clone)]
pub struct Monitoring {
    pub prometheus: String,
    pub alertmanager: String,
    pub pushgateway: String,
    targets: PathBuf,
    http: reqwest::Client,
}

/// One alert as Alertmanager holds it.
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub labels: Value,
    /// `active`, `suppressed` (inhibited or silenced: not notified) or `unprocessed`.
    pub state: String,
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.name, self.labels, self.state)
    }
}

impl Monitoring {
    /// A missing variable is an error, never a skip.
    pub fn from_env() -> Monitoring {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: `tests/stack up --monitoring` and `eval \"$(tests/stack env)\"`")
            })
        };
        Monitoring {
            prometheus: var("PROMETHEUS_URL"),
            alertmanager: var("ALERTMANAGER_URL"),
            pushgateway: var("PUSHGATEWAY_URL"),
            targets: var("PROMETHEUS_TARGETS_DIR").into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// Makes Prometheus scrape `addr` as a `consumer` target (a file_sd file, read within
    /// seconds), as Compose's DNS discovery finds each replica. Removed again on drop.
    pub fn scrape(&self, name: &str, addr: &str) -> Target {
        let path = self.targets.join(format!("{name}.json"));
        let body = serde_json::json!([{ "targets": [addr] }]).to_string();
        // Written whole and renamed: Prometheus never reads half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body).expect("write target file");
        std::fs::rename(&tmp, &path).expect("rename target file");
        Target { path }
    }

    /// An instant PromQL query's result vector; a query error fails the test.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let answer: Value = self
            .http
            .get(format!("{}api/v1/query", self.prometheus))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("Prometheus at {}: {e}", self.prometheus))
            .json()
            .await
            .expect("Prometheus answers JSON");
        assert_eq!(answer["status"], "success", "query {expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Alerts Alertmanager holds now (active or not yet processed; resolved ones are gone).
    pub async fn alerts(&self) -> Vec<Alert> {
        let answer: Value = self
            .http
            .get(format!("{}api/v2/alerts", self.alertmanager))
            .send()
            .await
            .unwrap_or_else(|e| panic!("Alertmanager at {}: {e}", self.alertmanager))
            .json()
            .await
            .expect("Alertmanager answers JSON");
        answer
            .as_array()
            .expect("a list of alerts")
            .iter()
            .map(|a| Alert {
                name: a["labels"]["alertname"].as_str().unwrap_or("?").to_string(),
                labels: a["labels"].clone(),
                state: a["status"]["state"].as_str().unwrap_or("?").to_string(),
            })
            .collect()
    }

    /// Whether Prometheus itself has an alert of that name (and label) firing: its `ALERTS`
    /// series, whatever Alertmanager does with it.
    pub async fn firing(&self, name: &str, label: Option<(&str, &str)>) -> bool {
        let matcher = label.map_or(String::new(), |(k, v)| format!(",{k}=\"{v}\""));
        !self
            .query(&format!(
                "ALERTS{{alertstate=\"firing\",alertname=\"{name}\"{matcher}}}"
            ))
            .await
            .is_empty()
    }

    /// Polls Alertmanager until `done` holds for its alerts; returns how long that took.
    pub async fn wait_for_alerts(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Alert]) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let alerts = self.alerts().await;
            if done(&alerts) {
                let took = started.elapsed();
                println!("{what}: after {:.0}s", took.as_secs_f64());
                return took;
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; Alertmanager holds: {}",
                list(&alerts)
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// A consumer replica of its own lane (a new topic with `partitions`), scraped by
    /// Prometheus and seen ready there. The target goes with the replica.
    pub async fn watched_replica(
        &self,
        services: &Services,
        name: &str,
        partitions: i32,
        extra: &[&str],
    ) -> Replica {
        let lane = Lane::new(name);
        integration::kafka::create_topic(services, &lane.topic, partitions).await;
        self.another_replica(services, &lane, name, extra).await
    }

    /// A producer run of `count` users from `api` to `topic` that pushes its outcome to the
    /// bed's Pushgateway; its output, within `limit`.
    pub async fn producer_run(
        &self,
        services: &Services,
        api: &integration::api::FakeApi,
        topic: &str,
        count: u64,
        limit: Duration,
    ) -> integration::bins::Output {
        let mut run = integration::bins::command("producer", services);
        run.args(["--api-url", &api.url(), "--topic", topic])
            .args(["--count", &count.to_string()])
            .args(["--pushgateway-url", &self.pushgateway]);
        integration::bins::run(run, limit).await
    }

    /// One more replica of `lane` (its own group's member), scraped as `name` and seen ready.
    pub async fn another_replica(
        &self,
        services: &Services,
        lane: &Lane,
        name: &str,
        extra: &[&str],
    ) -> Replica {
        let mut replica = Replica::spawn(lane, services, extra);
        replica.target = Some(self.scrape(name, &replica.addr));
        let ready = format!("consumer_ready{{instance=\"{}\"}} == 1", replica.addr);
        self.wait_for_series(
            &format!("Prometheus sees consumer {name} ready"),
            &ready,
            Duration::from_secs(180),
        )
        .await;
        replica
    }

    /// Polls a PromQL query until it returns a series.
    pub async fn wait_for_series(&self, what: &str, expr: &str, limit: Duration) {
        let started = Instant::now();
        while self.query(expr).await.is_empty() {
            assert!(
                started.elapsed() < limit,
                "{what}: `{expr}` returned nothing for {limit:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!("{what}: after {:.0}s", started.elapsed().as_secs_f64());
    }

    /// Every panel of the Grafana dashboard, queried as Grafana would over the last `minutes`,
    /// drawn into `target/monitoring/<into>/` (tests/monitoring/dashboard.py evaluate). Returns
    /// whether every panel returned series, and the report: a line per panel with the last
    /// value of each series as Grafana shows it ("ok  Dependencies per replica: ...; last:
    /// 127.0.0.1:9401 cassandra=down, ..."; six series at most). `vars` set the dashboard's
    /// variables (e.g. `instance`: one replica's panels).
    pub fn dashboard(&self, into: &str, minutes: u64, vars: &[(&str, &str)]) -> (bool, String) {
        let python = std::env::var("MONITORING_PYTHON").unwrap_or_else(|_| {
            panic!("MONITORING_PYTHON is not set: tests/monitoring/run sets it (tests/stack monitoring-venv)")
        });
        let root = integration::services::repo_root();
        let out = std::process::Command::new(python)
            .arg(root.join("tests/monitoring/dashboard.py"))
            .args(["evaluate", "--prometheus", &self.prometheus, "--out"])
            .arg(root.join("target/monitoring").join(into))
            .args(["--range-minutes", &minutes.to_string()])
            .args(
                vars.iter()
                    .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")]),
            )
            .output()
            .expect("run tests/monitoring/dashboard.py");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), report)
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

pub fn has(alerts: &[Alert], name: &str, label: Option<(&str, &str)>) -> bool {
    alerts
        .iter()
        .any(|a| a.name == name && label.is_none_or(|(k, v)| a.labels[k].as_str() == Some(v)))
}

/// A file_sd target file; Prometheus stops scraping the target when it is gone.
#[derive(Debug)]
pub struct Target {
    path: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A consumer replica of `lane`, as Compose runs one: its own /metrics address, its output in
/// a file (a pipe nobody reads while it runs would stall it once full).
#[derive(Debug)]
pub struct Replica {
    pub lane: Lane,
    pub child: tokio::process::Child,
    pub addr: String,
    pub log: PathBuf,
    /// Its file_sd entry while Prometheus should scrape it.
    target: Option<Target>,
}

impl Replica {
    pub fn spawn(lane: &Lane, services: &Services, extra: &[&str]) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("{}-consumer.log", lane.topic));
        let file = std::fs::File::create(&log).expect("consumer log file");
        let child = lane
            .consumer(services, extra)
            .args(["--http-addr", &addr])
            .stdout(file.try_clone().expect("consumer log file"))
            .stderr(file)
            .spawn()
            .expect("spawn consumer");
        Replica {
            lane: lane.clone(),
            child,
            addr,
            log,
            target: None,
        }
    }

    /// Killed, and no longer a target: as a replica that exits under Compose, whose DNS stops
    /// naming it.
    pub async fn exit(&mut self) {
        self.child.kill().await.expect("kill consumer");
        self.target = None;
    }

    /// The last lines it logged, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A bed service stopped for a fault (`tests/stack stop`), started again by [`Stopped::start`] or,
/// if the test fails first, when dropped: the bed is shared.
#[derive(Debug)]
pub struct Stopped {
    service: &'static str,
    started: bool,
}

impl Stopped {
    pub fn stop(service: &'static str) -> Stopped {
        integration::bins::stack(&["stop", service]);
        Stopped {
            service,
            started: false,
        }
    }

    pub fn start(mut self) {
        self.started = true;
        integration::bins::stack(&["start", self.service]);
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        // No panic here (the test may be unwinding already): say so and go on.
        let status =
            std::process::Command::new(integration::services::repo_root().join("tests/stack"))
                .args(["start", self.service])
                .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "tests/stack start {} failed ({status:?}): start it by hand",
                self.service
            );
        }
    }
}
