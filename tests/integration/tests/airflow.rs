//! The DAG in a real Airflow (the test bed's venv, SQLite, `airflow dags test`):
//! it imports cleanly, its run puts users all the way into Cassandra, and it
//! fails when the producer cannot reach the registry.

use std::path::PathBuf;
use std::time::Duration;

use integration::api::FakeApi;
use integration::bins::{self, Output};
use integration::pipeline::Lane;
use integration::services::repo_root;
use integration::{unique, Services};
use tokio::process::Command;

const LIMIT: Duration = Duration::from_secs(600);

fn airflow(home: &PathBuf, s: &Services, args: &[&str]) -> Command {
    let bin = std::env::var("AIRFLOW_BIN").expect(
        "AIRFLOW_BIN is not set: run `tests/stack airflow-venv` and `eval \"$(tests/stack env)\"`",
    );
    let mut cmd = Command::new(bin);
    bins::with_services(&mut cmd, s);
    cmd.args(args)
        .env("AIRFLOW_HOME", home)
        .env("AIRFLOW__CORE__DAGS_FOLDER", repo_root().join("dags"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("AIRFLOW__CORE__PARALLELISM", "2")
        .env("PRODUCER_BIN", bins::path("producer"));
    cmd
}

/// `airflow dags test random_user_to_kafka -c <conf>`: one run, tasks in-process.
fn dag_test(home: &PathBuf, s: &Services, conf: &str, api: &FakeApi, topic: &str) -> Command {
    let mut cmd = airflow(
        home,
        s,
        &["dags", "test", "random_user_to_kafka", "-c", conf],
    );
    cmd.env("RANDOMUSER_API_URL", api.url())
        .env("KAFKA_TOPIC", topic);
    cmd
}

async fn run(cmd: Command) -> Output {
    bins::run(cmd, LIMIT).await
}

#[tokio::test]
async fn the_dag_imports_runs_the_producer_and_fails_when_the_registry_is_down() {
    let s = Services::from_env();
    let home = std::env::temp_dir().join(unique("airflow_home"));
    std::fs::create_dir_all(&home).expect("AIRFLOW_HOME");

    let out = run(airflow(&home, &s, &["db", "migrate"])).await;
    assert!(out.success, "{out}");
    let out = run(airflow(&home, &s, &["dags", "reserialize"])).await;
    assert!(out.success, "{out}");
    let out = run(airflow(&home, &s, &["dags", "list-import-errors"])).await;
    assert!(out.success, "the DAG folder has import errors: {out}");
    let out = run(airflow(&home, &s, &["dags", "list"])).await;
    assert!(out.stdout.contains("random_user_to_kafka"), "{out}");

    // A triggered run: producer -> Kafka, then the consumer -> Cassandra.
    let api = FakeApi::start().await;
    let lane = Lane::new("airflow");
    let cmd = dag_test(
        &home,
        &s,
        r#"{"count": 250, "batch_size": 100}"#,
        &api,
        &lane.topic,
    );
    let out = run(cmd).await;
    assert!(out.success, "{out}");
    let log = format!("{}{}", out.stdout, out.stderr);
    assert!(
        log.contains("published=250"),
        "the producer's summary is in the task log: {out}"
    );
    assert_eq!(
        api.requests(),
        3,
        "batch_size 100 from the trigger form reached the producer"
    );
    lane.consume(&s, &[]).await;
    assert_eq!(lane.count(&s).await, 250);

    // The same DAG with the registry unreachable: the task, and so the run, fails.
    let mut cmd = dag_test(
        &home,
        &s,
        r#"{"count": 10}"#,
        &api,
        &unique("airflow_noreg"),
    );
    cmd.env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:9/apis/ccompat/v7")
        .env("SCHEMA_REGISTRY_CONNECT_TIMEOUT", "2s");
    let out = run(cmd).await;
    let log = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !out.success,
        "a failed producer must fail the DAG run: {out}"
    );
    assert!(
        log.contains("schema registry at http://127.0.0.1:9/apis/ccompat/v7"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
