"""What the Airflow tests drive: the bed's Airflow REST API, a local Random User API, the real
consumer, Kafka's own command-line tools, Cassandra. Python standard library only (the browser part
is in conftest.py)."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "stack.d"))
import cql  # noqa: E402  (tests/stack.d/cql.py: the bed's CQL client)
import install  # noqa: E402  (tests/stack.d/install.py: the JDK the bed runs Kafka on)
from services import kafka as stack_kafka  # noqa: E402  (the bed's Kafka jars)

DAG_ID = "random_user_to_kafka"
PRODUCE = "produce_users"      # runs the producer; its XCom is where the run's records landed
AWAIT = "await_cassandra"      # runs `consumer await-run`: green once the users are in Cassandra
TASK_ID = PRODUCE
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

    def task(self, run_id, task_id=PRODUCE):
        return self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s" % (DAG_ID, self.q(run_id), task_id))

    def tries(self, run_id, task_id=PRODUCE):
        """Every try of the task: the current one and those before it (state and try number)."""
        body = self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s/tries" % (DAG_ID, self.q(run_id), task_id))
        return body["task_instances"]

    def log(self, run_id, try_number, task_id=PRODUCE):
        """The task log of one try as text, one line per event."""
        body = self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s/logs/%d?full_content=true"
                        % (DAG_ID, self.q(run_id), task_id, try_number))
        content = body.get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)

    def task_log(self, run_id, task_id):
        """The log of the task's current try ("" when it never ran, e.g. upstream_failed)."""
        try_number = self.task(run_id, task_id).get("try_number") or 0
        return self.log(run_id, try_number, task_id) if try_number else ""

    def xcom(self, run_id, task_id=PRODUCE):
        """The task's return value (BashOperator: the last line of its output), as a string."""
        body = self.get("/api/v2/dags/%s/dagRuns/%s/taskInstances/%s/xcomEntries/return_value"
                        % (DAG_ID, self.q(run_id), task_id))
        value = body.get("value")
        return value if isinstance(value, str) else json.dumps(value)

    def report(self, run_id):
        """Both tasks' states and log tails: the message of a failed assertion on a run."""
        out = []
        for task_id in (PRODUCE, AWAIT):
            ti = self.task(run_id, task_id)
            out.append("--- %s: %s ---\n%s" % (task_id, ti.get("state"), self.task_log(run_id, task_id)[-3000:]))
        return "run %s:\n%s" % (run_id, "\n".join(out))

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

    def _control(self, what, results, **q):
        url = self.url.split("/api/", 1)[0] + "/_control/%s?%s" % (what, urllib.parse.urlencode(dict(q, results=results)))
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read().decode())

    def hold(self, results, serve):
        """Answer `serve` more requests for `results` users, then hold the next ones (at most 25 s
        each, see fake_api.py) until release(results)."""
        self._control("hold", results, serve=serve)

    def held(self, results):
        """How many requests for `results` users are waiting right now."""
        return self._control("held", results)["held"]

    def release(self, results):
        self._control("release", results)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def consumer_bin():
    consumer = os.environ.get("CONSUMER_BIN") or os.path.join(ROOT, "target", "debug", "consumer")
    assert os.access(consumer, os.X_OK), "%s missing: cargo build --workspace" % consumer
    return consumer


def consumer_env():
    """The bed's connection settings only: nothing of this shell's CONSUMER_*/KAFKA_* leaks in."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("CONSUMER_", "KAFKA_", "CASSANDRA_", "PRODUCER_", "RANDOMUSER_"))}
    e.update(KAFKA_BOOTSTRAP_SERVERS=env("KAFKA_BOOTSTRAP_SERVERS"), SCHEMA_REGISTRY_URL=env("SCHEMA_REGISTRY_URL"),
             CASSANDRA_CONTACT_POINTS=env("CASSANDRA_CONTACT_POINTS"), RUST_LOG="info,librdkafka=warn,rdkafka=warn")
    return e


def consume(topic, timeout=180):
    """The real consumer binary on `topic` (its own group, keyspace and DLQ) until idle; returns the
    number of rows it wrote to Cassandra, counted there."""
    keyspace = "ks_" + topic
    r = subprocess.run([consumer_bin(), "--topic", topic, "--dlq-topic", topic + ".dlq", "--group-id", "g_" + topic,
                        "--keyspace", keyspace, "--http-addr", "127.0.0.1:0",
                        "--exit-when-idle", "5s", "--progress-interval", "2s"],
                       env=consumer_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert r.returncode == 0, "consumer failed (exit %d):\n%s" % (r.returncode, clip(r.stdout))
    return rows(keyspace)


def rows(keyspace):
    """Rows in `keyspace`.created_users, counted in Cassandra."""
    host, port = env("CASSANDRA_CONTACT_POINTS").split(",")[0].rsplit(":", 1)
    return len(cql.query(host, int(port), "SELECT id FROM %s.created_users" % keyspace, timeout=30))


class Consumer:
    """The real consumer binary running in the background, as Compose's consumer service: group
    `group` on `topic`, rows to keyspace ks_<topic>, dead letters to `dlq`. A context manager:
    stopped with SIGTERM (a clean shutdown) on exit. Its output goes to target/airflow-ui/."""

    def __init__(self, topic, group, dlq):
        self.topic, self.group, self.dlq, self.keyspace = topic, group, dlq, "ks_" + topic
        self.log_path = os.path.join(ARTIFACTS, "consumer-%s.log" % group)
        self.proc = None

    def __enter__(self):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([consumer_bin(), "--topic", self.topic, "--dlq-topic", self.dlq,
                                      "--group-id", self.group, "--keyspace", self.keyspace,
                                      "--http-addr", "127.0.0.1:0", "--progress-interval", "2s"],
                                     env=consumer_env(), stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def report(self):
        state = "running" if self.proc.poll() is None else "exited %s" % self.proc.returncode
        return "consumer (group %s, %s), %s:\n%s" % (self.group, state, self.log_path, clip(self.output()))

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        return False


class Kafka:
    """Kafka's own command-line tools (the bed's jars, one JVM per call): what the pipeline's
    binaries would never do, such as writing bytes that are not Avro."""

    def __init__(self):
        self.bootstrap = env("KAFKA_BOOTSTRAP_SERVERS")

    def tool(self, cls, args, stdin=None, timeout=120):
        argv = [install.JAVA, "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-Dlog4j.configuration=file:" + os.path.join(ROOT, "tests", "stack.d", "kafka", "log4j-tools.properties"),
                "-cp", stack_kafka.classpath(), cls] + list(args)
        r = subprocess.run(argv, input=stdin, env=stack_kafka.java_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        assert r.returncode == 0, "%s %s failed (exit %d):\n%s%s" % (cls, " ".join(args), r.returncode,
                                                                     r.stdout, r.stderr[-3000:])
        return r.stdout

    def create_topic(self, topic, partitions):
        self.tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", self.bootstrap, "--create",
                                                          "--topic", topic, "--partitions", str(partitions),
                                                          "--replication-factor", "1"])

    def end_offsets(self, topic):
        """{partition: offset one past the last record}."""
        out = self.tool("org.apache.kafka.tools.GetOffsetShell", ["--bootstrap-server", self.bootstrap,
                                                                  "--topic", topic, "--time", "-1"])
        return {int(p): int(o) for p, o in re.findall(r"^%s:(\d+):(\d+)$" % re.escape(topic), out, re.M)}

    def produce_raw(self, topic, line):
        """One record whose value is `line` (no key), acknowledged by every in-sync replica."""
        self.tool("kafka.tools.ConsoleProducer", ["--bootstrap-server", self.bootstrap, "--topic", topic,
                                                  "--producer-property", "acks=all"], stdin=line + "\n")


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
