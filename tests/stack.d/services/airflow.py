"""Airflow 3.3 as docker-compose.yml runs it: api-server (UI, REST API, execution API) on :8080,
scheduler with the LocalExecutor, dag-processor, on Postgres; simple auth manager with an admin
user and a passwords file; the API secret key, JWT secret and issuer shared by all three.

The venv (.stack/airflow-venv) comes from `tests/stack airflow-venv`. The DAG's tasks run
target/debug/producer ($PRODUCER_BIN) and `target/debug/consumer await-run` ($CONSUMER_BIN) against
the bed's Kafka and registry; RANDOMUSER_API_URL and
KAFKA_TOPIC come from the environment of the `tests/stack up`/`start` that started the scheduler
(the LocalExecutor's workers are its children)."""
import json
import os
import secrets
import subprocess
import sys
import time

import plumbing
from plumbing import StackError, say
from service import Service

VERSION = "3.3.2"
VENV = os.path.join(plumbing.STACK, "airflow-venv")
CONSTRAINTS = os.path.join(plumbing.CONF_SRC, "airflow", "constraints-airflow-3.3.2-py3.11.txt")
BIN = os.path.join(VENV, "bin", "airflow")
# The Postgres drivers (Compose's image has it built in), pinned at the end of the constraints file.
EXTRA = ["psycopg2-binary", "asyncpg"]
HOME = os.path.join(plumbing.DATA, "airflow")
USERNAME, PASSWORD = "admin", "admin"   # the demo login, as .env's AIRFLOW_ADMIN_USER/PASSWORD


def _secrets():
    """Generated once per bed: Compose reads them from .env, the bed keeps them in its data dir."""
    path = os.path.join(HOME, "stack-secrets.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    s = {"secret_key": secrets.token_urlsafe(32),
         "jwt_secret": secrets.token_urlsafe(64),   # 86 characters: HS512 wants >= 64 bytes
         "jwt_issuer": "user-pipeline-test-bed"}
    plumbing.write(path, json.dumps(s))
    os.chmod(path, 0o600)
    return s


class Airflow(Service):
    """One Airflow component; the three share the settings below."""
    kind = "airflow"
    whole_session = True   # the api-server's workers, the executor's task processes
    stop_grace = 30
    component = None       # the `airflow <component>` subcommand

    def __init__(self, name, host="127.0.0.1", port=None, deps=(), api=None, postgres=None, kafka=None,
                 registry=None):
        super().__init__(name, host, port, deps)
        self.api, self.postgres, self.kafka, self.registry = api or self, postgres, kafka, registry

    def installed(self):
        return os.access(BIN, os.X_OK)

    def install(self):
        if not self.installed():
            raise StackError("%s: no Airflow venv in %s: run `tests/stack airflow-venv`"
                             % (self.name, os.path.relpath(VENV)))
        return False

    def api_url(self):
        return "http://%s:%d" % (self.api.host, self.api.port)

    def airflow_env(self):
        s = _secrets()
        producer = os.environ.get("PRODUCER_BIN") or os.path.join(plumbing.ROOT, "target", "debug", "producer")
        consumer = os.environ.get("CONSUMER_BIN") or os.path.join(plumbing.ROOT, "target", "debug", "consumer")
        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": HOME,
            "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(plumbing.ROOT, "dags"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # as Compose: each LocalExecutor worker is a Python process of ~140 MiB
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": self.api_url() + "/execution/",
            "AIRFLOW__API__SECRET_KEY": s["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
            "AIRFLOW__API_AUTH__JWT_ISSUER": s["jwt_issuer"],
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "%s:admin" % USERNAME,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": os.path.join(HOME, "passwords.json"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": self.host,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": "8974",
            # read by the producer the DAG runs (see `producer --help`)
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.address(),
            "SCHEMA_REGISTRY_URL": self.registry.address(),
            "PRODUCER_BIN": producer,
            "CONSUMER_BIN": consumer,
            "RUST_LOG": os.environ.get("RUST_LOG") or "info",
            # the producer's default is 30s; the failure test keeps the shared registry down for this long
            "SCHEMA_REGISTRY_CONNECT_TIMEOUT": os.environ.get("SCHEMA_REGISTRY_CONNECT_TIMEOUT") or "10s",
        })
        return env

    def command(self):
        os.makedirs(HOME, exist_ok=True)
        return [BIN, self.component] + self.args(), HOME, self.airflow_env()

    def args(self):
        return []

    def health(self):
        status, body = plumbing.http("GET", self.api_url() + "/api/v2/monitor/health")
        return json.loads(body) if status == 200 else {}


class ApiServer(Airflow):
    component = "api-server"

    def __init__(self, name="airflow-api", host="127.0.0.1", port=8080, deps=("postgres",), **kw):
        super().__init__(name, host, port, deps, **kw)

    def address(self):
        return self.api_url()

    def args(self):
        return ["--host", self.host, "--port", str(self.port), "--workers", "1"]

    def before_start(self):
        """The passwords file and the schema, as Compose's airflow-init does."""
        plumbing.write(os.path.join(HOME, "passwords.json"), json.dumps({USERNAME: PASSWORD}))
        t0 = time.time()
        argv, cwd, env = self.command()
        r = subprocess.run([BIN, "db", "migrate"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        with open(plumbing.logfile(self.name), "a") as log:
            log.write(r.stdout)
        if r.returncode != 0:
            raise StackError("airflow db migrate failed:\n" + r.stdout[-3000:])
        say("%-9s db migrate in %.1fs" % (self.name, time.time() - t0))

    def probe(self):
        return self.health().get("metadatabase", {}).get("status") == "healthy"

    def env(self):
        return ["export AIRFLOW_API_URL=%s" % self.api_url(),
                "export AIRFLOW_USERNAME=%s" % USERNAME,
                "export AIRFLOW_PASSWORD=%s" % PASSWORD]


class Scheduler(Airflow):
    component = "scheduler"

    def __init__(self, name="airflow-scheduler", host="127.0.0.1", port=8974, deps=("airflow-api",), **kw):
        super().__init__(name, host, port, deps, **kw)

    def address(self):
        return "http://%s:%d/health" % (self.host, self.port)

    def probe(self):
        status, _ = plumbing.http("GET", "http://%s:%d/health" % (self.host, self.port))
        return status == 200


class DagProcessor(Airflow):
    component = "dag-processor"

    def __init__(self, name="airflow-dag-processor", host="127.0.0.1", port=None, deps=("airflow-api",), **kw):
        super().__init__(name, host, port, deps, **kw)

    def address(self):
        return "(heartbeat in %s/api/v2/monitor/health)" % self.api_url()

    def probe(self):
        return self.health().get("dag_processor", {}).get("status") == "healthy"


def venv_ok():
    py = os.path.join(VENV, "bin", "python")
    if not os.access(py, os.X_OK):
        return False
    r = subprocess.run([py, "-c", "import importlib.metadata as m, psycopg2, asyncpg; "
                        "print(m.version('apache-airflow'), m.version('apache-airflow-providers-standard'))"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.returncode == 0 and r.stdout.split()[:1] == [VERSION]


def make_venv():
    """.stack/airflow-venv: apache-airflow (pinned constraints) and the Postgres driver; idempotent."""
    if venv_ok():
        say("airflow-venv: apache-airflow %s already in %s" % (VERSION, os.path.relpath(VENV)))
        return
    t0 = time.time()
    pip = os.path.join(VENV, "bin", "pip")
    py = os.path.join(VENV, "bin", "python")
    has_airflow = os.access(py, os.X_OK) and subprocess.run(
        [py, "-c", "import importlib.metadata as m; assert m.version('apache-airflow') == %r" % VERSION],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if has_airflow:
        # a venv from before the Postgres driver was added: add it, keep the rest
        say("airflow-venv: adding %s ..." % " ".join(EXTRA))
        r = subprocess.run([pip, "install", "-q", "--disable-pip-version-check"] + EXTRA + ["-c", CONSTRAINTS])
        if r.returncode != 0:
            raise StackError("pip install %s failed (see above)" % " ".join(EXTRA))
    else:
        import shutil
        shutil.rmtree(VENV, ignore_errors=True)
        python = sys.executable or "python3"
        say("airflow-venv: creating %s with %s ..." % (os.path.relpath(VENV), python))
        subprocess.run([python, "-m", "venv", VENV], check=True)
        # apache-airflow-providers-standard: BashOperator/PythonOperator live there in Airflow 3
        r = subprocess.run([pip, "install", "-q", "--disable-pip-version-check",
                            "apache-airflow==%s" % VERSION, "apache-airflow-providers-standard"] + EXTRA
                           + ["-c", CONSTRAINTS])
        if r.returncode != 0:
            raise StackError("pip install apache-airflow failed (see above)")
        say("airflow-venv: installed in %.0fs; checking `airflow version` + `airflow db migrate` (SQLite) ..."
            % (time.time() - t0))
        import tempfile
        with tempfile.TemporaryDirectory(prefix="airflow-home-") as home:
            env = dict(os.environ, AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False",
                       AIRFLOW__CORE__PARALLELISM="2")
            for argv in ([BIN, "version"], [BIN, "db", "migrate"]):
                r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if r.returncode != 0:
                    raise StackError("%s failed:\n%s" % (" ".join(argv[1:]), r.stdout[-3000:]))
                if argv[-1] == "version":
                    say("airflow version: " + r.stdout.strip().splitlines()[-1])
    if not venv_ok():
        raise StackError("airflow venv check failed")
    say("airflow-venv: ready in %.0fs (%s)" % (time.time() - t0, os.path.relpath(VENV)))
