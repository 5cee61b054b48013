"""What the Airflow tests drive: the bed's Airflow REST API, a local Random User API, the real
consumer, Cassandra. Python standard library only (the browser part is in conftest.py)."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "stack.d"))
import cql  # noqa: E402  (tests/stack.d/cql.py: the bed's CQL client)

DAG_ID = "random_user_to_kafka"
TASK_ID = "produce_users"
ARTIFACTS = os.environ.get("AIRFLOW_TEST_ARTIFACTS") or os.path.join(ROOT, "target", "airflow-ui")


def env(name):
    value = os.environ.get(name)
    assert value, "%s is not set: run the tests with tests/airflow/run (it evals `tests/stack env`)" % name
    return value


def stack(*args, extra_env=None, timeout=600):
    """`tests/stack <args>`; fails the test with its output if it fails."""
    r = subprocess.run([os.path.join(ROOT, "tests", "stack")] + list(args), cwd=ROOT,
                       env=dict(os.environ, **(extra_env or {})), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert r.returncode == 0, "tests/stack %s failed:\n%s" % (" ".join(args), r.stdout)
    return r.stdout


def poll(what, check, timeout, interval=1.0):
    """check() until it returns something truthy; fails naming `what` and the last value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("%s: not within %ds (last: %r)" % (what, timeout, last))


def unique(prefix):
    return "%s_%d_%d" % (prefix, int(time.time() * 1000) % 10**10, os.getpid())


class AirflowApi:
    """Airflow 3's REST API v2 with a JWT from POST /auth/token (simple auth manager)."""

    def __init__(self, url, username, password):
        self.url = url.rstrip("/")
        status, body = self.request("POST", "/auth/token", {"username": username, "password": password},
                                    auth=False)
        assert status in (200, 201), "POST /auth/token: %s %s" % (status, body)
        self.token = body["access_token"]

    def request(self, method, path, body=None, auth=True, accept="application/json"):
        headers = {"Content-Type": "application/json", "Accept": accept}
        if auth:
            headers["Authorization"] = "Bearer " + self.token
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, "GET %s: %s %s" % (path, status, body)
        return body

    @staticmethod
    def q(run_id):
        return urllib.parse.quote(run_id, safe="")

    def trigger(self, conf, run_id=None):
        body = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        status, body = self.request("POST", "/api/v2/dags/%s/dagRuns" % DAG_ID, body)
        assert status == 200, "trigger: %s %s" % (status, body)
        return body["dag_run_id"]

    def run(self, run_id):
        return self.get("/api/v2/dags/%s/dagRuns/%s" % (DAG_ID, self.q(run_id)))

    def wait_run(self, run_id, timeout=240):
        """The run's final state (success or failed)."""
        return poll("dag run %s to finish" % run_id,
                    lambda: (lambda s: s if s in ("success", "failed") else None)(self.run(run_id)["state"]),
                    timeout, interval=2)

    def task(self, run_id):
        return self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s" % (DAG_ID, self.q(run_id), TASK_ID))

    def tries(self, run_id):
        """Every try of the task: the current one and those before it (state and try number)."""
        body = self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s/tries" % (DAG_ID, self.q(run_id), TASK_ID))
        return body["task_instances"]

    def log(self, run_id, try_number):
        """The task log of one try as text, one line per event."""
        body = self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s/logs/%d?full_content=true"
                        % (DAG_ID, self.q(run_id), TASK_ID, try_number))
        content = body.get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)

    def dag_params(self):
        status, body = self.request("GET", "/api/v2/dags/%s/details" % DAG_ID)
        return body.get("params") or {} if status == 200 else {}


class FakeApi:
    """tests/images.d/fake_api.py: API-shaped pages from the project's fixtures, fresh uuids each."""

    def __init__(self, log_path):
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        port_file = log_path + ".port"
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "images.d", "fake_api.py"),
                                      "--port-file", port_file], stdout=self.log, stderr=self.log)
        port = poll("fake API to listen", lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                    30, interval=0.1)
        self.url = "http://127.0.0.1:%s/api/1.4/" % port

    def requests(self):
        with open(self.log_path) as f:
            return [l for l in f if "GET " in l]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def consume(topic, timeout=180):
    """The real consumer binary on `topic` (its own group, keyspace and DLQ) until idle; returns the
    number of rows it wrote to Cassandra, counted there."""
    consumer = os.environ.get("CONSUMER_BIN") or os.path.join(ROOT, "target", "debug", "consumer")
    assert os.access(consumer, os.X_OK), "%s missing: cargo build --workspace" % consumer
    keyspace = "ks_" + topic
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("CONSUMER_", "KAFKA_", "CASSANDRA_", "PRODUCER_", "RANDOMUSER_"))}
    e.update(KAFKA_BOOTSTRAP_SERVERS=env("KAFKA_BOOTSTRAP_SERVERS"), SCHEMA_REGISTRY_URL=env("SCHEMA_REGISTRY_URL"),
             CASSANDRA_CONTACT_POINTS=env("CASSANDRA_CONTACT_POINTS"), RUST_LOG="info,librdkafka=warn,rdkafka=warn")
    r = subprocess.run([consumer, "--topic", topic, "--dlq-topic", topic + ".dlq", "--group-id", "g_" + topic,
                        "--keyspace", keyspace, "--http-addr", "127.0.0.1:0",
                        "--exit-when-idle", "5s", "--progress-interval", "2s"],
                       env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert r.returncode == 0, "consumer failed (exit %d):\n%s" % (r.returncode, clip(r.stdout))
    host, port = env("CASSANDRA_CONTACT_POINTS").split(",")[0].rsplit(":", 1)
    rows = cql.query(host, int(port), "SELECT id FROM %s.created_users" % keyspace, timeout=30)
    return len(rows)


def clip(text, n=2000):
    """Head and tail of a long output: a panic's message is at the top, its backtrace below."""
    return text if len(text) <= 2 * n else text[:n] + "\n[...]\n" + text[-n:]


def summary(log, key):
    """key=value from the producer's `summary:` line in a task log."""
    lines = [l for l in log.splitlines() if "summary:" in l]
    assert lines, "no `summary:` line in the task log:\n" + log[-3000:]
    for kv in lines[-1].split():
        if kv.startswith(key + "="):
            return int(kv.split("=", 1)[1].rstrip(",;"))
    raise AssertionError("no %s= in %r" % (key, lines[-1]))
