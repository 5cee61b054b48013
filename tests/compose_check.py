#!/usr/bin/env python3
"""Static checks of docker-compose.yml, .env and docker/ against the binaries and the laptop they run on.

  python3 tests/compose_check.py [--compose docker-compose.yml] [--producer-bin PATH] [--consumer-bin PATH]
                                 [--no-self-test]

Binaries: --producer-bin / --consumer-bin, else $PRODUCER_BIN / $CONSUMER_BIN, else
target/release/<name>, else target/debug/<name> (build them first: cargo build -p producer -p consumer).

Checks, one result line each, then `compose: N passed, M failed` (exit 1 if any failed):
  spec          compose-go (the loader `docker compose` v2 uses: the Compose Specification's JSON
                schema, interpolation from .env, consistency) accepts the file; tests/compose.d/ is
                built once into .stack/compose-check/ (Go >= 1.21 and the Go module proxy)
  config        `docker-compose -f <file> config -q` (compose 1.29, or `docker compose`) accepts it
  consumer-env  every variable set on the consumer service is one `consumer --help` lists ([env: NAME])
  producer-env  the same for the Airflow services, whose tasks run the producer and `consumer
                await-run`: each variable is one `producer --help` or `consumer --help` lists
  airflow-await the DAG's second task watches what the consumer service does: the Airflow services'
                KAFKA_TOPIC and KAFKA_DLQ_TOPIC are the consumer service's, and the DAG's
                `consumer_group` default (dags/random_user_pipeline.py) is its KAFKA_GROUP_ID
  readiness     every long-running service has a healthcheck; every depends_on has a condition;
                every one-shot service is awaited with service_completed_successfully (so that
                `docker compose up -d --wait` accepts its exit 0)
  builder-stage the builder stage of docker/rust.Dockerfile and docker/airflow.Dockerfile is identical
  heap          every JVM service (Confluent images, Cassandra) sets its heap explicitly, with -Xmx
                (MAX_HEAP_SIZE + HEAP_NEWSIZE for Cassandra) at most 75% of its mem_limit
  memory        every service has a mem_limit; the long-running ones add up to <= 6 GiB
  light-probes  no healthcheck starts a JVM (kafka-topics, nodetool, cub, java, ...)
  control-center the broker runs Confluent's metrics reporter (cp-server), and every replication
                factor / replica count of the broker's, Control Center's and the registry's
                internal topics is 1 (one broker)
  airflow-secrets every Airflow service sets AIRFLOW__API__SECRET_KEY, AIRFLOW__API_AUTH__JWT_SECRET
                and AIRFLOW__API_AUTH__JWT_ISSUER from .env (${AIRFLOW_SECRET_KEY},
                ${AIRFLOW_JWT_SECRET}, ${AIRFLOW_JWT_ISSUER}, never literals), all to the same
                values, and .env's AIRFLOW_JWT_SECRET has at least 64 bytes (HS512)
  consumer-scale the consumer can run as N replicas (`up --scale consumer=3`): no container_name,
                no hostname, no fixed host port; its metrics port is exposed on the network
  arch          no architecture-specific literal in docker/ (tests/images.d/arch_literals.py) and
                no `platform:` pin in the Compose file
  pushgateway-env the Airflow services set PRODUCER_PUSHGATEWAY_URL and `producer --help` lists it
                (the producer itself reads it, not only `consumer await-run`)

The monitoring profile (`docker compose --profile monitoring`: Prometheus, Alertmanager, Pushgateway,
Grafana) is checked as the project that profile makes, with the profile's services enabled:
monitoring-spec, monitoring-config (`config -q` with `--profile monitoring`), monitoring-readiness,
monitoring-heap, monitoring-light-probes as above, and
  monitoring-memory the long-running limits with the profile add up to <= 7 GiB
  monitoring    Prometheus, Alertmanager, the Pushgateway and Grafana are in the profile; every
                published port is on 127.0.0.1; every bind-mounted file or directory exists; the
                Prometheus config they mount scrapes the consumer service by DNS on its
                CONSUMER_HTTP_ADDR port and the Pushgateway service with honor_labels, alerts to the
                Alertmanager service, and its rule_files globs match files; the Airflow services'
                PRODUCER_PUSHGATEWAY_URL is the Pushgateway service; Grafana's provisioned data
                source is the Prometheus service and its dashboard provider reads a mounted
                directory that holds a dashboard
  self-test     each check above (but config and the env checks) FAILS on a deliberately broken copy
                of the files and passes on an unbroken copy (so that a green run means something)

The security override docker-compose.secure.yml (when present) is checked merged onto the main file, as
`docker compose -f docker-compose.yml -f docker-compose.secure.yml --env-file .env --env-file
.env.secure.example` loads it: secure-spec, secure-config, secure-consumer-env, secure-producer-env,
secure-readiness, secure-heap, secure-memory, secure-light-probes as above, and
  secrets        no secret (a variable named *PASSWORD*, *SECRET*, *USER_INFO*, *JAAS_CONFIG*) is a literal
                in either file: each is interpolated (${...}); every secret the override interpolates is
                in .env.secure.example with a `change-me` placeholder and not in the committed .env;
                every service of the override waits (transitively) for the one-shot `secrets-check`,
                whose script names each of those secrets; .env.secure is git-ignored
  secure-self-test  `secrets` fails on broken copies (a literal password, a service that does not wait
                for secrets-check, a secret missing from the example or from the check)

Needs PyYAML (Debian: apt-get install -y python3-yaml), Go >= 1.21 for `spec` (the toolchain that
tests/compose.d/go.mod names is fetched through the Go module proxy when the local one is older)
and docker-compose for `config` (Debian: apt-get install -y docker-compose).
"""
import argparse
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failure below
    yaml = None

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "images.d"))
import arch_literals  # noqa: E402  (shared with tests/images)

# Variables that are not the binaries' own settings: Airflow's configuration and its image's
# entrypoint (AIRFLOW_*, AIRFLOW__*, _AIRFLOW_*, _PIP_*), the tracing filter every Rust binary
# reads through tracing-subscriber (RUST_LOG), and the DAG's paths to the binaries (PRODUCER_BIN,
# CONSUMER_BIN).
IGNORED_PREFIXES = ("AIRFLOW_", "_AIRFLOW", "_PIP", "RUST_LOG", "PRODUCER_BIN", "CONSUMER_BIN")
DAG_FILE = os.path.join(ROOT, "dags", "random_user_pipeline.py")

ENV_RE = re.compile(r"\[env:\s*([A-Za-z_][A-Za-z0-9_]*)[=\]]")  # `NAME]` when hide_env_values

AIRFLOW_DOCKERFILE = "docker/airflow.Dockerfile"
RUST_DOCKERFILE = "docker/rust.Dockerfile"
BUILDER_START = "# ---- builder"
BUILDER_END = "# ---- end of builder"

SPEC_SRC = os.path.join(ROOT, "tests", "compose.d")
SPEC_BIN = os.path.join(ROOT, ".stack", "compose-check", "compose-spec-check")

GIB = 1024 ** 3
MEMORY_BUDGET = 6 * GIB       # what the long-running services' mem_limits may add up to
MONITORING_MEMORY_BUDGET = 7 * GIB   # the same with `--profile monitoring`
HEAP_SHARE = 0.75             # a JVM's heap leaves at least a quarter of its limit to the rest

# Heap variable of each JVM image (image name without registry and tag).
HEAP_VARS = {
    "confluentinc/cp-zookeeper": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-kafka": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-server": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-enterprise-kafka": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-kafka-connect": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-server-connect": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-schema-registry": ["SCHEMA_REGISTRY_HEAP_OPTS"],
    "confluentinc/cp-enterprise-control-center": ["CONTROL_CENTER_HEAP_OPTS"],
    "confluentinc/cp-ksqldb-server": ["KSQL_HEAP_OPTS"],
    "cassandra": ["MAX_HEAP_SIZE", "HEAP_NEWSIZE"],
}
# Images that run a JVM but are missing above: a new one must be added with its heap variable.
JVM_HINT = re.compile(r"confluentinc/|kafka|zookeeper|cassandra|elasticsearch|opensearch|flink|spark|"
                      r"openjdk|temurin|eclipse-temurin|java", re.I)
BROKER_IMAGES = ("confluentinc/cp-server", "confluentinc/cp-kafka", "confluentinc/cp-enterprise-kafka")
CONTROL_CENTER_IMAGE = "confluentinc/cp-enterprise-control-center"
METRICS_REPORTER = "io.confluent.metrics.reporter.ConfluentMetricsReporter"
# Commands that start a JVM (Kafka/Confluent CLI tools, Cassandra's nodetool, Confluent's cub).
JVM_CLI = re.compile(r"(?<![\w/-])(?:\S*/)?(kafka-[a-z-]+|zookeeper-[a-z-]+|schema-registry-[a-z-]+|"
                     r"nodetool|cub|java|jcmd|jps|jstat|ksql)(?![\w-])")
SINGLE_BROKER_RF = re.compile(r"(REPLICATION_FACTOR|_REPLICAS|_REPLICATION)$")
# Airflow settings that all its components must share, and the .env names they come from.
AIRFLOW_SECRETS = {
    "AIRFLOW__API__SECRET_KEY": "AIRFLOW_SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW_JWT_SECRET",
    "AIRFLOW__API_AUTH__JWT_ISSUER": "AIRFLOW_JWT_ISSUER",
}
JWT_SECRET_MIN_BYTES = 64
# The security override, its example env file and its guard.
SECURE_COMPOSE = "docker-compose.secure.yml"
SECURE_ENV_EXAMPLE = ".env.secure.example"
SECRETS_CHECK = "secrets-check"
# Environment keys whose values are secrets (paths to files holding one are not).
SECRET_KEY = re.compile(r"PASSWORD|SECRET|USER_INFO|JAAS_CONFIG")
NOT_A_SECRET_KEY = re.compile(r"(_FILE|_LOCATION|_PATH|_SOURCE)$")
INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
# The monitoring profile: its name, the images it must run, and how the Airflow tasks reach it.
MONITORING = "monitoring"
MONITORING_IMAGES = {"prom/prometheus": "Prometheus", "prom/alertmanager": "Alertmanager",
                     "prom/pushgateway": "the Pushgateway", "grafana/grafana-oss": "Grafana"}
PUSHGATEWAY_ENV = "PRODUCER_PUSHGATEWAY_URL"
# How a service of the profile says so in docker-compose.yml: one line, which the profile's model
# drops from a copy of the file (see load_profile_model).
PROFILE_LINE = re.compile(r"(?m)^[ \t]+profiles:[ \t]*\[[ \t]*%s[ \t]*\][ \t]*(?:#.*)?\n" % MONITORING)

results = []  # (name, ok, message)


def record(name, problems, info=""):
    results.append((name, not problems, problems))
    if problems:
        print("FAIL %s" % name)
        for p in problems:
            print("     - %s" % p)
    else:
        print("ok   %s%s" % (name, (": " + info) if info else ""))


def find_bin(name, explicit):
    candidates = [explicit, os.environ.get(name.upper() + "_BIN"),
                  os.path.join(ROOT, "target", "release", name),
                  os.path.join(ROOT, "target", "debug", name)]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def env_names_from_help(binary):
    """Names clap prints as `[env: NAME=...]` in `<binary> --help`."""
    # A minimal environment: values of the pipeline's variables must not change what --help prints.
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    out = subprocess.run([binary, "--help"], env=clean, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    if out.returncode != 0:
        head = " | ".join(l.strip() for l in out.stdout.splitlines() if l.strip())[:400]
        raise RuntimeError("`%s --help` exited %d: %s" % (binary, out.returncode, head))
    names = set(ENV_RE.findall(out.stdout))
    if not names:
        raise RuntimeError("`%s --help` lists no [env: NAME] at all" % binary)
    return names


def service_env(svc, compose_dir):
    """Variable names a service sets: `environment` (map or list) and any `env_file`."""
    names = []
    env = svc.get("environment") or {}
    if isinstance(env, dict):
        names.extend(env.keys())
    else:
        names.extend(item.split("=", 1)[0] for item in env)
    env_files = svc.get("env_file") or []
    if isinstance(env_files, (str, dict)):
        env_files = [env_files]
    for f in env_files:
        path = f["path"] if isinstance(f, dict) else f
        with open(os.path.join(compose_dir, path)) as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    names.append(line.split("=", 1)[0].strip())
    return names


def dockerfile_of(svc):
    build = svc.get("build")
    if isinstance(build, dict):
        return os.path.normpath(build.get("dockerfile") or "Dockerfile"), build.get("target")
    return None, None


def check_env(services, compose_dir, which, binary_name, binary, also=()):
    """`also`: more (name, path) binaries the services run; a variable any of them lists is fine."""
    problems = []
    if not services:
        return ["no service found that runs the %s" % binary_name]
    known = set()
    for name, path in [(binary_name, binary)] + list(also):
        if path is None:
            return ["%s binary not found: build it (cargo build -p %s) or pass --%s-bin / set %s_BIN"
                    % (name, name, name, name.upper())]
        try:
            known |= env_names_from_help(path)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            return [str(e)]
    binary_name = " --help` or `".join([binary_name] + [n for n, _ in also])
    for name in services:
        try:
            names = service_env(services[name], compose_dir)
        except OSError as e:
            problems.append("service %s: cannot read env_file: %s" % (name, e))
            continue
        for var in names:
            if var.startswith(IGNORED_PREFIXES):
                continue
            if var not in known:
                problems.append("service `%s` sets %s, which `%s --help` does not list "
                                "(the %s never reads it)" % (name, var, binary_name, which))
    return problems


def check_readiness(services):
    problems = []
    awaited_completion = set()
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append("service `%s`: depends_on is a list; give each dependency a condition" % name)
            continue
        for dep, spec in deps.items():
            cond = (spec or {}).get("condition")
            if cond not in ("service_healthy", "service_completed_successfully"):
                problems.append("service `%s`: depends_on %s has condition %r (want service_healthy "
                                "or service_completed_successfully)" % (name, dep, cond))
            if cond == "service_completed_successfully":
                awaited_completion.add(dep)
            if dep not in services:
                problems.append("service `%s`: depends_on unknown service %s" % (name, dep))
    for name, svc in services.items():
        restart_no = svc.get("restart") in (None, False, "no")
        if restart_no and name in awaited_completion:
            continue  # one-shot, awaited by a dependant: its "ready" is "exited 0"
        hc = svc.get("healthcheck") or {}
        if hc and not hc.get("disable") and hc.get("test"):
            continue
        if restart_no:
            problems.append("service `%s` has no healthcheck and, if it is one-shot, no service waits "
                            "for it with service_completed_successfully" % name)
        else:
            problems.append("service `%s` has no healthcheck" % name)
    return problems


def builder_stage(path):
    with open(path) as fh:
        lines = fh.read().splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith(BUILDER_START))
        end = next(i for i, l in enumerate(lines) if l.startswith(BUILDER_END))
    except StopIteration:
        return None
    return lines[start:end + 1]


def check_builder():
    stages = {}
    for rel in (RUST_DOCKERFILE, AIRFLOW_DOCKERFILE):
        stage = builder_stage(os.path.join(ROOT, rel))
        if stage is None:
            return ["%s: no '%s ... %s' block" % (rel, BUILDER_START, BUILDER_END)]
        stages[rel] = stage
    a, b = stages[RUST_DOCKERFILE], stages[AIRFLOW_DOCKERFILE]
    # cargo loads the whole workspace even for `-p producer -p consumer`: a member whose manifest
    # the builder does not copy fails the image build ("failed to load manifest").
    members = re.search(r"^members\s*=\s*\[([^\]]*)\]", open(os.path.join(ROOT, "Cargo.toml")).read(), re.M)
    copied = {l.split()[1] for l in a if l.startswith("COPY ")}
    missing = [m for m in re.findall(r'"([^"]+)"', members.group(1) if members else "")
               if m + "/Cargo.toml" not in copied]
    if missing:
        return ["%s: the builder stage does not copy the manifest of workspace member(s) %s (COPY "
                "<member>/Cargo.toml, and a stub src/lib.rs in the RUN after it)"
                % (RUST_DOCKERFILE, ", ".join(missing))]
    if a != b:
        for i, (x, y) in enumerate(zip(a + [""] * len(b), b + [""] * len(a))):
            if x != y:
                return ["builder stages differ at line %d of the block:\n       %s: %s\n       %s: %s"
                        % (i + 1, RUST_DOCKERFILE, x, AIRFLOW_DOCKERFILE, y)]
    return []


def check_config(compose, env_file=None, profiles=()):
    """compose: a file or a list of files merged in order; env_file: instead of the .env beside it;
    profiles: activated as with `--profile` (docker-compose >= 1.28)."""
    files = [compose] if isinstance(compose, str) else list(compose)
    args = ([a for p in profiles for a in ("--profile", p)] + [a for f in files for a in ("-f", f)]
            + (["--env-file", env_file] if env_file else []))
    if shutil.which("docker-compose"):
        cmd = ["docker-compose"] + args + ["config", "-q"]
    elif shutil.which("docker"):
        cmd = ["docker", "compose"] + args + ["config", "-q"]
    else:
        return ["neither docker-compose nor docker found (Debian: apt-get install -y docker-compose)"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=120)
    print("     $ %s -> exit %d%s" % (" ".join(cmd), out.returncode,
                                       (": " + out.stdout.strip()) if out.stdout.strip() else ""))
    if out.returncode != 0:
        return ["`%s` exited %d: %s" % (" ".join(cmd), out.returncode, out.stdout.strip())]
    return []


# ------------------------------------------------------------------ the Compose Specification
def spec_checker():
    """Path of the compose-go checker, built from tests/compose.d/ when missing or stale."""
    sources = [os.path.join(SPEC_SRC, f) for f in ("main.go", "go.mod", "go.sum")]
    if os.path.exists(SPEC_BIN) and all(os.path.getmtime(SPEC_BIN) >= os.path.getmtime(f) for f in sources):
        return SPEC_BIN
    go = shutil.which("go") or next((g for g in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
                                     if os.access(g, os.X_OK)), None)
    if not go:
        raise RuntimeError("no `go` found: the spec check needs Go >= 1.21 (https://go.dev/doc/install, "
                           "or Debian bookworm-backports golang-1.2x); it fetches compose-go through "
                           "the Go module proxy")
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "auto")   # an older local Go fetches the one go.mod names
    env["GOFLAGS"] = "-mod=readonly"
    os.makedirs(os.path.dirname(SPEC_BIN), exist_ok=True)
    t0 = time.time()
    out = subprocess.run([go, "build", "-o", SPEC_BIN + ".tmp", "."], cwd=SPEC_SRC, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError("building tests/compose.d failed (exit %d): %s"
                           % (out.returncode, out.stdout.strip()[-1500:]))
    os.replace(SPEC_BIN + ".tmp", SPEC_BIN)
    print("     built %s in %.1fs" % (os.path.relpath(SPEC_BIN, ROOT), time.time() - t0))
    return SPEC_BIN


def load_spec(compose, env_files=()):
    """(project as `docker compose config --format json` prints it, None) or (None, error).
    compose: a file, or a list of files merged in order; env_files: instead of the .env beside it."""
    try:
        binary = spec_checker()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    files = [compose] if isinstance(compose, str) else list(compose)
    args = [a for f in env_files for a in ("--env-file", f)] + files
    out = subprocess.run([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=120)
    if out.returncode != 0:
        return None, out.stderr.strip() or "exit %d" % out.returncode
    return json.loads(out.stdout), None


def read_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.rstrip("\n"))
            if m:
                v = m.group(2).strip()
                if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                    v = v[1:-1]
                env[m.group(1)] = v
    return env


def load_model(compose, env_file, docker_dir):
    """What the checks look at: the resolved project (compose-go), the file as written (PyYAML,
    anchors and merges resolved, ${...} not), the .env values and the docker/ directory."""
    project, err = load_spec(compose)
    raw = None
    if yaml is not None:
        with open(compose) as fh:
            raw = yaml.safe_load(fh)
    return {"project": project, "spec_error": err, "raw": raw,
            "env": read_env_file(env_file) if os.path.exists(env_file) else {},
            "docker_dir": docker_dir}


def load_profile_model(compose, env_file, docker_dir, profile=MONITORING):
    """The model of the project that `docker compose --profile <profile>` runs. The compose-go
    checker (tests/compose.d) activates no profile, so it would drop the profile's services; this
    loads instead a copy of the file without their `profiles: [<profile>]` lines (one per service,
    as docker-compose.yml writes them; any other spelling is reported), beside a copy of the .env. `raw` stays the
    file as written and `compose_dir` its directory, which bind mounts are relative to."""
    with open(compose) as fh:
        text = fh.read()
    stripped, dropped = PROFILE_LINE.subn("", text)
    raw = yaml.safe_load(text) if yaml is not None else None
    problems = []
    if raw is not None:
        members = sorted(n for n, s in (raw.get("services") or {}).items()
                         if profile in ((s or {}).get("profiles") or []))
        others = sorted(n for n, s in (raw.get("services") or {}).items()
                        if ((s or {}).get("profiles") or []) not in ([], [profile]))
        if others:
            problems.append("services %s have other profiles than [%s]: this check knows only that one"
                            % (", ".join(others), profile))
        if dropped != len(members):
            problems.append("%d services are in profile %s but %d lines read `profiles: [%s]`: write "
                            "each service's profile on one such line" % (len(members), profile, dropped, profile))
    work = tempfile.mkdtemp(prefix="compose-profile-")
    try:
        path = os.path.join(work, os.path.basename(compose))
        with open(path, "w") as fh:
            fh.write(stripped)
        env_copy = os.path.join(work, ".env")
        if os.path.exists(env_file):
            shutil.copyfile(env_file, env_copy)
        m = load_model(path, env_copy, docker_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if problems and m["project"] is not None:
        m["project"], m["spec_error"] = None, "; ".join(problems)
    m["raw"], m["compose_dir"] = raw, os.path.dirname(os.path.abspath(compose))
    return m


def image_name(svc):
    """confluentinc/cp-server from docker.io/confluentinc/cp-server:7.9.1."""
    ref = str(svc.get("image") or "")
    ref = ref.split("@")[0]
    if ":" in ref.rsplit("/", 1)[-1]:
        ref = ref.rsplit(":", 1)[0]
    if ref.startswith("docker.io/"):
        ref = ref[len("docker.io/"):]
    if ref.startswith("library/"):
        ref = ref[len("library/"):]
    return ref


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def one_shots(services):
    """Services that run once and are awaited with service_completed_successfully."""
    awaited = set()
    for svc in services.values():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                if (spec or {}).get("condition") == "service_completed_successfully":
                    awaited.add(dep)
    return {n for n in awaited if n in services and services[n].get("restart") in (None, False, "no", "")}


def mem_limit(svc):
    v = svc.get("mem_limit")
    if v is None:
        v = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
    return to_bytes(v) if v is not None else None


def to_bytes(v):
    """512m, 1g, 1G, 536870912 -> bytes (Compose's and the JVM's size units)."""
    if isinstance(v, (int, float)):
        return int(v)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(v), re.I)
    if not m:
        return None
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def mib(n):
    return "%d MiB" % (n // (1024 * 1024))


def services_of(m):
    return (m["project"] or {}).get("services") or {}


def airflow_services(services):
    return {n: s for n, s in services.items()
            if "airflow" in image_name(s) or "airflow" in str((s.get("build") or {}).get("dockerfile", ""))}


def consumer_services(services):
    return {n: s for n, s in services.items()
            if n == "consumer" or ((s.get("build") or {}).get("target") == "consumer")}


# ------------------------------------------------------------------------------ the new checks
def check_spec(m):
    if m["project"] is None:
        return ["compose-go rejects the file: %s" % m["spec_error"]]
    return []


def check_heap(m):
    problems = []
    for name, svc in sorted(services_of(m).items()):
        img = image_name(svc)
        env = env_of(svc)
        limit = mem_limit(svc)
        if img not in HEAP_VARS:
            if JVM_HINT.search(img):
                problems.append("service `%s`: image %s looks like a JVM whose heap variable this check "
                                "does not know: add it to HEAP_VARS" % (name, img))
            continue
        missing = [v for v in HEAP_VARS[img] if not env.get(v)]
        if missing:
            problems.append("service `%s` (%s) sets no %s: its JVM sizes its heap from the host's memory"
                            % (name, img, " / ".join(missing)))
            continue
        if img == "cassandra":
            heap = to_bytes(env["MAX_HEAP_SIZE"])
        else:
            xmx = re.findall(r"-Xmx(\d+[kKmMgG]?)", env[HEAP_VARS[img][0]])
            heap = to_bytes(xmx[-1]) if xmx else None
            if heap is None:
                problems.append("service `%s`: %s=%r has no -Xmx" % (name, HEAP_VARS[img][0], env[HEAP_VARS[img][0]]))
                continue
        if limit is None:
            continue  # reported by `memory`
        if heap is None or heap > HEAP_SHARE * limit:
            problems.append("service `%s`: heap %s is more than %d%% of its mem_limit %s (metaspace, threads, "
                            "off-heap buffers need the rest)" % (name, heap and mib(heap), HEAP_SHARE * 100, mib(limit)))
    return problems


def memory_table(m):
    services = services_of(m)
    once = one_shots(services)
    rows = [(n, mem_limit(s), n in once) for n, s in sorted(services.items())]
    return rows


def check_memory(m, budget=MEMORY_BUDGET):
    rows = memory_table(m)
    problems = ["service `%s` has no mem_limit" % n for n, lim, _ in rows if lim is None]
    total = sum(lim or 0 for _, lim, once in rows if not once)
    if total > budget:
        problems.append("the long-running services' mem_limits add up to %s, over the %s budget"
                        % (mib(total), mib(budget)))
    return problems


def memory_info(m, budget=MEMORY_BUDGET):
    rows = memory_table(m)
    total = sum(lim or 0 for _, lim, once in rows if not once)
    once = sum(lim or 0 for _, lim, o in rows if o)
    return "long-running %s of %s (%s), one-shots %s" % (
        mib(total), mib(budget),
        ", ".join("%s %s" % (n, mib(lim or 0)) for n, lim, o in rows if not o), mib(once))


def check_light_probes(m):
    problems = []
    for name, svc in sorted(services_of(m).items()):
        test = (svc.get("healthcheck") or {}).get("test") or []
        text = " ".join(test) if isinstance(test, list) else str(test)
        hit = JVM_CLI.search(text)
        if hit and "_HEAP_OPTS=" not in text:
            problems.append("service `%s`: healthcheck runs `%s`, a JVM (and inherits the service's heap "
                            "settings) on every probe; probe with bash /dev/tcp, curl or a small "
                            "*_HEAP_OPTS=-Xmx64m" % (name, hit.group(1)))
    return problems


def check_control_center(m):
    problems = []
    services = services_of(m)
    once = one_shots(services)
    brokers = {n: s for n, s in services.items() if image_name(s) in BROKER_IMAGES and n not in once}
    centers = {n: s for n, s in services.items() if image_name(s) == CONTROL_CENTER_IMAGE}
    if not centers:
        return []
    if not brokers:
        return ["Control Center runs but no broker service (%s) was found" % ", ".join(BROKER_IMAGES)]
    for name, svc in sorted(brokers.items()):
        env = env_of(svc)
        if image_name(svc) != "confluentinc/cp-server":
            problems.append("broker `%s` runs %s, which has no Confluent metrics reporter: Control Center's "
                            "broker and topic throughput panels stay empty (use confluentinc/cp-server)"
                            % (name, image_name(svc)))
        if METRICS_REPORTER not in env.get("KAFKA_METRIC_REPORTERS", ""):
            problems.append("broker `%s`: KAFKA_METRIC_REPORTERS does not name %s" % (name, METRICS_REPORTER))
        for var in ("CONFLUENT_METRICS_REPORTER_BOOTSTRAP_SERVERS", "CONFLUENT_METRICS_REPORTER_TOPIC_REPLICAS",
                    "KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_CONFLUENT_BALANCER_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
            if not env.get(var):
                problems.append("broker `%s` does not set %s" % (name, var))
    for name, svc in sorted(centers.items()):
        env = env_of(svc)
        for var in ("CONTROL_CENTER_BOOTSTRAP_SERVERS", "CONTROL_CENTER_SCHEMA_REGISTRY_URL",
                    "CONTROL_CENTER_REPLICATION_FACTOR"):
            if not env.get(var):
                problems.append("control center `%s` does not set %s" % (name, var))
    if len(brokers) == 1:
        for name, svc in sorted(services.items()):
            for var, val in sorted(env_of(svc).items()):
                if SINGLE_BROKER_RF.search(var) and val.strip() != "1":
                    problems.append("service `%s`: %s=%s, but there is one broker (an internal topic with "
                                    "more replicas is never created)" % (name, var, val))
    return problems


def dag_consumer_group_default(path=DAG_FILE):
    """The default of the DAG's `consumer_group` param, read from its source (no Airflow needed)."""
    with open(path) as f:
        m = re.search(r'"consumer_group":\s*Param\(\s*"([^"]*)"', f.read())
    return m.group(1) if m else None


def check_airflow_await(services, dag_group=None):
    """`consumer await-run` in the DAG's second task must watch the consumer service's topic, dead
    letters and group, or a run would wait for (or miss) the wrong thing."""
    problems = []
    consumers, airflow = consumer_services(services), airflow_services(services)
    if not consumers or not airflow:
        return ["no consumer service or no Airflow service found"]
    consumer = env_of(next(iter(consumers.values())))
    # unset = the binaries' defaults (`consumer --help`)
    defaults = {"KAFKA_TOPIC": "users_created", "KAFKA_DLQ_TOPIC": "users_created.dlq",
                "KAFKA_GROUP_ID": "cassandra-writer"}
    want = {k: consumer.get(k, v) for k, v in defaults.items()}
    for name in sorted(airflow):
        env = env_of(airflow[name])
        for var in ("KAFKA_TOPIC", "KAFKA_DLQ_TOPIC"):
            got = env.get(var, defaults[var])
            if got != want[var]:
                problems.append("Airflow service `%s` has %s=%s, the consumer service %s: await_cassandra "
                                "would watch another topic than the consumer writes" % (name, var, got, want[var]))
    group = dag_group if dag_group is not None else dag_consumer_group_default()
    if group is None:
        problems.append("no `consumer_group` Param default found in %s" % os.path.relpath(DAG_FILE, ROOT))
    elif group != want["KAFKA_GROUP_ID"]:
        problems.append("the DAG's consumer_group default is %r, the consumer service's KAFKA_GROUP_ID %r: "
                        "a run with the form's defaults would wait for a group nobody is in"
                        % (group, want["KAFKA_GROUP_ID"]))
    return problems


def check_airflow_secrets(m):
    problems = []
    services = services_of(m)
    airflow = airflow_services(services)
    if not airflow:
        return ["no Airflow service found"]
    raw_services = (m["raw"] or {}).get("services") or {}
    for name in sorted(airflow):
        raw_env = env_of(raw_services.get(name) or {})
        for var, env_name in AIRFLOW_SECRETS.items():
            v = raw_env.get(var)
            if v is None:
                problems.append("Airflow service `%s` does not set %s" % (name, var))
            elif not re.fullmatch(r"\$\{%s(?:[:]?[-?][^}]*)?\}" % re.escape(env_name), v.strip()):
                problems.append("Airflow service `%s`: %s is %r in the Compose file; it must come from .env "
                                "as ${%s}" % (name, var, v if len(v) < 12 else v[:8] + "...", env_name))
    for var in AIRFLOW_SECRETS:
        values = {env_of(s).get(var) for s in airflow.values()}
        if len(values) > 1:
            problems.append("%s differs between the Airflow services: they must all share one" % var)
    env = m["env"]
    for env_name in AIRFLOW_SECRETS.values():
        if not env.get(env_name):
            problems.append(".env sets no %s" % env_name)
    jwt = env.get("AIRFLOW_JWT_SECRET", "")
    if jwt and len(jwt.encode()) < JWT_SECRET_MIN_BYTES:
        problems.append(".env: AIRFLOW_JWT_SECRET has %d bytes; HS512 wants at least %d"
                        % (len(jwt.encode()), JWT_SECRET_MIN_BYTES))
    return problems


def check_consumer_scale(m):
    problems = []
    consumers = consumer_services(services_of(m))
    if not consumers:
        return ["no consumer service found"]
    for name, svc in sorted(consumers.items()):
        if svc.get("container_name"):
            problems.append("service `%s` has container_name %r: a second replica cannot be created"
                            % (name, svc["container_name"]))
        if svc.get("hostname"):
            problems.append("service `%s` has a fixed hostname %r: every replica would share it"
                            % (name, svc["hostname"]))
        for port in svc.get("ports") or []:
            published = port.get("published") if isinstance(port, dict) else str(port).rsplit(":", 1)[0]
            if published not in (None, "", "0"):
                problems.append("service `%s` publishes host port %s: a second replica fails with "
                                "'port is already allocated' (publish no host port or an ephemeral one, "
                                "e.g. \"127.0.0.1::9400\")" % (name, published))
        addr = env_of(svc).get("CONSUMER_HTTP_ADDR", "0.0.0.0:9400")
        port = addr.rsplit(":", 1)[-1]
        exposed = {str(p).split("/")[0] for p in svc.get("expose") or []}
        if port not in exposed:
            problems.append("service `%s`: its /metrics port %s (CONSUMER_HTTP_ADDR) is not in `expose`"
                            % (name, port))
    return problems


def check_arch(m):
    problems = ["%s:%d: architecture-specific literal: %s" % (p, n, l.strip()[:120])
                for p, n, l in arch_literals.scan(m["docker_dir"])]
    for name, svc in sorted(services_of(m).items()):
        if svc.get("platform"):
            problems.append("service `%s` pins platform %s: laptops of the other architecture run it "
                            "emulated, or not at all" % (name, svc["platform"]))
    return problems


# --------------------------------------------------------------------- the monitoring profile
def bind_mounts(raw_svc, compose_dir):
    """[(path on the host, path in the container)] of a service's bind mounts, as written."""
    mounts = []
    for v in (raw_svc or {}).get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type") == "bind":
                mounts.append((v.get("source", ""), v.get("target", "")))
        else:
            parts = str(v).split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                mounts.append((parts[0], parts[1]))
    return [(os.path.normpath(os.path.join(compose_dir, os.path.expanduser(src))), dst) for src, dst in mounts]


def host_path(raw_svc, compose_dir, container_path):
    """Where a path inside the container comes from on the host, through the longest bind mount
    that holds it; None when no bind mount does."""
    best = None
    for src, dst in bind_mounts(raw_svc, compose_dir):
        dst = dst.rstrip("/")
        if container_path == dst or container_path.startswith(dst + "/"):
            if best is None or len(dst) > len(best[1]):
                best = (src, dst)
    return None if best is None else best[0] + container_path[len(best[1]):]


def container_port(svc, default):
    ports = [p.get("target") for p in svc.get("ports") or [] if isinstance(p, dict)]
    return int(ports[0]) if ports else default


def flag(svc, name, default):
    """Value of `--name=value` in a service's command."""
    for arg in svc.get("command") or []:
        if str(arg).startswith(name + "="):
            return str(arg).split("=", 1)[1]
    return default


def read_yaml(path):
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def check_monitoring(m):
    """The profile's services, their ports and mounts, and how Prometheus, the Airflow tasks and
    Grafana find one another. m: load_profile_model's."""
    if yaml is None:
        return ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"]
    problems = []
    services, compose_dir = services_of(m), m["compose_dir"]
    raw_services = (m["raw"] or {}).get("services") or {}
    members = {n for n, s in raw_services.items() if MONITORING in ((s or {}).get("profiles") or [])}
    role = {}
    for n in sorted(members):
        img = image_name(services.get(n) or {})
        if img in MONITORING_IMAGES:
            role[img] = n
    for img, what in sorted(MONITORING_IMAGES.items()):
        if img not in role:
            problems.append("no service of profile %s runs %s (%s)" % (MONITORING, what, img))
    for n in sorted(members):
        for p in (services.get(n) or {}).get("ports") or []:
            if p.get("published") not in (None, "", "0") and p.get("host_ip") != "127.0.0.1":
                problems.append("service `%s` publishes port %s on %s: bind it to 127.0.0.1"
                                % (n, p.get("published"), p.get("host_ip") or "all interfaces"))
        for src, dst in bind_mounts(raw_services.get(n), compose_dir):
            if not os.path.exists(src):
                problems.append("service `%s` mounts %s at %s, which does not exist"
                                % (n, os.path.relpath(src, compose_dir), dst))
    if problems:
        return problems
    prom_name, push_name = role["prom/prometheus"], role["prom/pushgateway"]
    am_name, grafana_name = role["prom/alertmanager"], role["grafana/grafana-oss"]
    prom = services[prom_name]
    prom_port, push_port = container_port(prom, 9090), container_port(services[push_name], 9091)
    am_port = container_port(services[am_name], 9093)

    # Prometheus: the file it loads, as mounted from the repository.
    cfg_in = flag(prom, "--config.file", "/etc/prometheus/prometheus.yml")
    cfg = host_path(raw_services[prom_name], compose_dir, cfg_in)
    if cfg is None or not os.path.isfile(cfg):
        return ["service `%s` loads %s, which no bind mount provides" % (prom_name, cfg_in)]
    try:
        conf = read_yaml(cfg)
    except (OSError, yaml.YAMLError) as e:
        return ["%s: %s" % (os.path.relpath(cfg, compose_dir), e)]
    where = os.path.relpath(cfg, compose_dir)
    consumers = consumer_services(services)
    scrapes = conf.get("scrape_configs") or []
    for cname, csvc in sorted(consumers.items()):
        port = int(env_of(csvc).get("CONSUMER_HTTP_ADDR", "0.0.0.0:9400").rsplit(":", 1)[-1])
        found = [d for sc in scrapes for d in sc.get("dns_sd_configs") or [] if cname in (d.get("names") or [])]
        if not found:
            problems.append("%s: no dns_sd_configs names the `%s` service (every replica, found by Compose's "
                            "DNS)" % (where, cname))
        for d in found:
            if d.get("type", "SRV") != "A" or int(d.get("port") or 0) != port:
                problems.append("%s: Prometheus looks `%s` up as type %s, port %s; want type A, port %d "
                                "(its CONSUMER_HTTP_ADDR)" % (where, cname, d.get("type", "SRV"), d.get("port"), port))
    push = [sc for sc in scrapes
            if "%s:%d" % (push_name, push_port) in [t for st in sc.get("static_configs") or []
                                                     for t in st.get("targets") or []]]
    if not push:
        problems.append("%s: no job scrapes %s:%d" % (where, push_name, push_port))
    elif not all(sc.get("honor_labels") for sc in push):
        problems.append("%s: the Pushgateway's job lacks honor_labels: true (pushed job=\"producer\" would "
                        "become exported_job)" % where)
    am_targets = [t for a in (conf.get("alerting") or {}).get("alertmanagers") or []
                  for st in a.get("static_configs") or [] for t in st.get("targets") or []]
    if "%s:%d" % (am_name, am_port) not in am_targets:
        problems.append("%s: alerts do not go to %s:%d (targets: %s)" % (where, am_name, am_port, am_targets))
    rule_files = conf.get("rule_files") or []
    if not rule_files:
        problems.append("%s: no rule_files" % where)
    for pattern in rule_files:
        inside = pattern if pattern.startswith("/") else os.path.join(os.path.dirname(cfg_in), pattern)
        on_host = host_path(raw_services[prom_name], compose_dir, inside)
        if on_host is None or not glob.glob(on_host):
            problems.append("%s: rule_files %s matches no file in the container" % (where, pattern))

    # The producer's push, from the Airflow tasks.
    want = "http://%s:%d" % (push_name, push_port)
    for n, svc in sorted(airflow_services(services).items()):
        got = env_of(svc).get(PUSHGATEWAY_ENV)
        if (got or "").rstrip("/") != want:
            problems.append("Airflow service `%s` has %s=%s, not the Pushgateway service (%s)"
                            % (n, PUSHGATEWAY_ENV, got, want))

    # Grafana: its data source is this Prometheus, its dashboards are where its provider looks.
    graf_raw = raw_services[grafana_name]
    prov = host_path(graf_raw, compose_dir, "/etc/grafana/provisioning")
    if prov is None:
        return problems + ["service `%s` mounts no /etc/grafana/provisioning" % grafana_name]
    urls = []
    for f in sorted(glob.glob(os.path.join(prov, "datasources", "*.y*ml"))):
        urls += [d.get("url", "") for d in read_yaml(f).get("datasources") or []
                 if d.get("type") == "prometheus"]
    if not urls:
        problems.append("Grafana provisions no Prometheus data source (%s/datasources/)"
                        % os.path.relpath(prov, compose_dir))
    for url in urls:
        u = urllib.parse.urlsplit(url)
        if (u.hostname, u.port) != (prom_name, prom_port):
            problems.append("Grafana's Prometheus data source is %s, not the `%s` service (http://%s:%d)"
                            % (url, prom_name, prom_name, prom_port))
    paths = []
    for f in sorted(glob.glob(os.path.join(prov, "dashboards", "*.y*ml"))):
        paths += [(p.get("options") or {}).get("path", "") for p in read_yaml(f).get("providers") or []]
    if not paths:
        problems.append("Grafana provisions no dashboard provider (%s/dashboards/)"
                        % os.path.relpath(prov, compose_dir))
    for path in paths:
        on_host = host_path(graf_raw, compose_dir, path)
        if on_host is None or not glob.glob(os.path.join(on_host, "*.json")):
            problems.append("Grafana's dashboard provider reads %s, where no mount puts a dashboard" % path)
    return problems


def check_pushgateway_env(services, producer_bin):
    """The Airflow tasks' producer pushes its run's outcome: the variable must be the producer's."""
    airflow = airflow_services(services)
    missing = sorted(n for n, s in airflow.items() if not env_of(s).get(PUSHGATEWAY_ENV))
    if not airflow or missing:
        return ["Airflow services %s do not set %s" % (", ".join(missing) or "(none found)", PUSHGATEWAY_ENV)]
    if producer_bin is None:
        return ["producer binary not found: build it (cargo build -p producer) or pass --producer-bin / "
                "set PRODUCER_BIN"]
    try:
        names = env_names_from_help(producer_bin)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return [str(e)]
    if PUSHGATEWAY_ENV not in names:
        return ["`producer --help` does not list %s: the Airflow tasks' producer would never push"
                % PUSHGATEWAY_ENV]
    return []


def check_profile(compose, env_file):
    """The checks of the project with the monitoring profile; returns its model."""
    t0 = time.time()
    m = load_profile_model(compose, env_file, os.path.join(ROOT, "docker"))
    record("monitoring-spec", check_spec(m), "compose-go accepts %s with profile %s (%.1fs)"
           % (os.path.relpath(compose, ROOT), MONITORING, time.time() - t0))
    record("monitoring-config", check_config(compose, profiles=[MONITORING]))
    if m["project"] is None:
        return m
    record("monitoring-readiness", check_readiness(services_of(m)))
    record("monitoring-heap", check_heap(m))
    record("monitoring-memory", check_memory(m, MONITORING_MEMORY_BUDGET),
           memory_info(m, MONITORING_MEMORY_BUDGET))
    record("monitoring-light-probes", check_light_probes(m))
    record("monitoring", check_monitoring(m))
    return m


# ------------------------------------------------------------------------ the security override
def load_secure(compose, env_file):
    """The override merged onto the main file with .env and the example secrets, as a model like
    load_model's, plus what `secrets` looks at."""
    compose_dir = os.path.dirname(compose)
    secure = os.path.join(compose_dir, SECURE_COMPOSE)
    example = os.path.join(compose_dir, SECURE_ENV_EXAMPLE)
    project, err = load_spec([compose, secure], [env_file, example])
    raws = {}
    if yaml is not None:
        for f in (compose, secure):
            with open(f) as fh:
                raws[os.path.basename(f)] = yaml.safe_load(fh)
    try:
        with open(os.path.join(compose_dir, ".gitignore")) as fh:
            gitignore = [l.strip() for l in fh]
    except OSError:
        gitignore = []
    return {"project": project, "spec_error": err, "raw": raws.get(os.path.basename(compose)),
            "raws": raws, "secure_name": os.path.basename(secure),
            "env": read_env_file(env_file) if os.path.exists(env_file) else {},
            "example": read_env_file(example) if os.path.exists(example) else None,
            "gitignore": gitignore, "docker_dir": os.path.join(ROOT, "docker")}


def _is_secret_key(key):
    return bool(SECRET_KEY.search(key)) and not NOT_A_SECRET_KEY.search(key)


def check_secrets(m):
    problems = []
    secret_vars = set()
    for fname, raw in sorted(m["raws"].items()):
        for name, svc in sorted(((raw or {}).get("services") or {}).items()):
            for key, value in env_of(svc or {}).items():
                if not _is_secret_key(key):
                    continue
                refs = INTERPOLATED.findall(value)
                if not refs and value.strip():
                    problems.append("%s: service `%s` sets %s to a literal; take it from the environment "
                                    "(${NAME:?...})" % (fname, name, key))
                if fname == m["secure_name"]:
                    secret_vars.update(r for r in refs if _is_secret_key(r))
    example = m["example"]
    if example is None:
        problems.append("%s is missing" % SECURE_ENV_EXAMPLE)
        example = {}
    for var in sorted(secret_vars):
        if var not in example:
            problems.append("%s does not list %s" % (SECURE_ENV_EXAMPLE, var))
        elif "change-me" not in example[var].lower():
            problems.append("%s: %s is not a `change-me` placeholder" % (SECURE_ENV_EXAMPLE, var))
        if m["env"].get(var):
            problems.append(".env sets %s: the demo file must not satisfy the secure override" % var)
    services = services_of(m)
    guard = services.get(SECRETS_CHECK)
    if guard is None:
        problems.append("no `%s` service" % SECRETS_CHECK)
    else:
        script = " ".join(str(x) for x in (guard.get("command") or []) + (guard.get("entrypoint") or []))
        for var in sorted(secret_vars):
            if var not in script:
                problems.append("`%s` does not check %s" % (SECRETS_CHECK, var))
        if guard.get("restart") not in (None, False, "no"):
            problems.append("`%s` must be a one-shot (restart: \"no\")" % SECRETS_CHECK)

        def reaches(name, seen=()):
            deps = services.get(name, {}).get("depends_on") or {}
            return SECRETS_CHECK in deps or any(reaches(d, seen + (name,)) for d in deps if d not in seen)
        for name in sorted(services):
            if name != SECRETS_CHECK and not reaches(name):
                problems.append("service `%s` starts without waiting for `%s`" % (name, SECRETS_CHECK))
    if ".env.secure" not in m["gitignore"]:
        problems.append(".gitignore does not list .env.secure")
    return problems


def secure_self_test(m):
    """`secrets` must fail on each broken copy of the merged model."""
    problems = []
    sec = m["secure_name"]

    def raw_svc(c, n):
        return c["raws"][sec]["services"][n]

    cases = [
        ("a literal Kafka password on the consumer",
         lambda c: raw_svc(c, "consumer")["environment"].update(KAFKA_SASL_PASSWORD="hunter2hunter2hunter2")),
        ("postgres not waiting for secrets-check",
         lambda c: c["project"]["services"]["postgres"].pop("depends_on")),
        ("a secret missing from the example", lambda c: c["example"].pop("TLS_KEYSTORE_PASSWORD")),
        ("a real-looking value in the example", lambda c: c["example"].update(KAFKA_ADMIN_PASSWORD="Xy7pQ2vLm9Rt4Kd8")),
        ("secrets-check forgets a secret",
         lambda c: c["project"]["services"][SECRETS_CHECK].update(command=["exit 0"])),
        (".env.secure not git-ignored", lambda c: c.update(gitignore=[])),
    ]
    if check_secrets(m):
        return ["`secrets` fails on the unbroken copy"]
    for what, mutate in cases:
        c = copy.deepcopy(m)
        mutate(c)
        if not check_secrets(c):
            problems.append("`secrets` passes on a broken copy: %s" % what)
    print("     %d broken copies, each caught" % len(cases) if not problems else "     self-test problems")
    return problems


def check_secure(compose, env_file, args):
    """The override's checks, recorded like the main file's."""
    t0 = time.time()
    m = load_secure(compose, env_file)
    record("secure-spec", check_spec(m), "compose-go accepts -f %s -f %s (%.1fs)"
           % (os.path.basename(compose), SECURE_COMPOSE, time.time() - t0))
    combined = tempfile.NamedTemporaryFile("w", suffix=".env", delete=False)
    try:
        for f in (env_file, os.path.join(os.path.dirname(compose), SECURE_ENV_EXAMPLE)):
            if os.path.exists(f):
                combined.write(open(f).read() + "\n")
        combined.close()
        record("secure-config", check_config([compose, os.path.join(os.path.dirname(compose), SECURE_COMPOSE)],
                                             combined.name))
    finally:
        os.unlink(combined.name)
    if m["project"] is None:
        return
    services = services_of(m)
    compose_dir = os.path.dirname(compose)
    record("secure-consumer-env", check_env(consumer_services(services), compose_dir, "consumer", "consumer",
                                            find_bin("consumer", args.consumer_bin)))
    record("secure-producer-env", check_env(airflow_services(services), compose_dir, "producer or consumer",
                                            "producer", find_bin("producer", args.producer_bin),
                                            also=[("consumer", find_bin("consumer", args.consumer_bin))]))
    record("secure-readiness", check_readiness(services))
    record("secure-heap", check_heap(m))
    record("secure-memory", check_memory(m), memory_info(m))
    record("secure-light-probes", check_light_probes(m))
    if yaml is None:
        record("secrets", ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"])
        return
    record("secrets", check_secrets(m))
    if not args.no_self_test:
        record("secure-self-test", secure_self_test(m))


# --------------------------------------------------------------------------------- self-test
def self_test(compose, env_file):
    """Each check must fail on a deliberately broken copy, and pass on the unbroken copy."""
    problems = []
    work = tempfile.mkdtemp(prefix="compose-check-")
    try:
        text = open(compose).read()
        env_text = open(env_file).read() if os.path.exists(env_file) else ""
        shutil.copytree(os.path.join(ROOT, "docker"), os.path.join(work, "docker"))

        def model(compose_text=text, env=env_text):
            d = tempfile.mkdtemp(dir=work)
            with open(os.path.join(d, "docker-compose.yml"), "w") as f:
                f.write(compose_text)
            with open(os.path.join(d, ".env"), "w") as f:
                f.write(env)
            return load_model(os.path.join(d, "docker-compose.yml"), os.path.join(d, ".env"),
                              os.path.join(work, "docker"))

        base = model()
        if base["project"] is None:
            return ["the unbroken copy does not load: %s" % base["spec_error"]]
        services = services_of(base)
        once = one_shots(services)
        broker = next(n for n, s in sorted(services.items()) if image_name(s) in BROKER_IMAGES and n not in once)
        center = next(n for n, s in services.items() if image_name(s) == CONTROL_CENTER_IMAGE)
        cassandra = next(n for n, s in services.items() if image_name(s) == "cassandra")
        consumer = next(iter(consumer_services(services)))
        airflow = sorted(airflow_services(services))[0]
        checks = {"spec": check_spec, "heap": check_heap, "memory": check_memory,
                  "light-probes": check_light_probes, "control-center": check_control_center,
                  "airflow-secrets": check_airflow_secrets, "consumer-scale": check_consumer_scale,
                  "arch": check_arch, "readiness": lambda m: check_readiness(services_of(m)),
                  "airflow-await": lambda m: check_airflow_await(services_of(m)),
                  "airflow-await-dag": lambda m: check_airflow_await(services_of(m), dag_group="writers")}
        for name, fn in checks.items():
            if name != "airflow-await-dag" and fn(base):
                problems.append("`%s` fails on the unbroken copy" % name)

        def svc(m, n):
            return m["project"]["services"][n]

        def env(m, n):
            return svc(m, n)["environment"]

        def raw_env(m, n):
            return m["raw"]["services"][n]["environment"]

        def arch_dir(m):
            d = tempfile.mkdtemp(dir=work)
            shutil.copytree(m["docker_dir"], os.path.join(d, "docker"))
            with open(os.path.join(d, "docker", "rust.Dockerfile"), "a") as f:
                f.write("RUN cp -L /lib64/ld-linux-x86-64.so.2 /rootfs/lib64/\n")
            m["docker_dir"] = os.path.join(d, "docker")

        tests = [
            ("heap", "broker without KAFKA_HEAP_OPTS", lambda m: env(m, broker).pop("KAFKA_HEAP_OPTS")),
            ("heap", "Control Center without CONTROL_CENTER_HEAP_OPTS", lambda m: env(m, center).pop("CONTROL_CENTER_HEAP_OPTS")),
            ("heap", "Cassandra without HEAP_NEWSIZE", lambda m: env(m, cassandra).pop("HEAP_NEWSIZE")),
            ("heap", "broker heap as large as its limit", lambda m: env(m, broker).update(KAFKA_HEAP_OPTS="-Xms1g -Xmx1g")),
            ("memory", "consumer without mem_limit", lambda m: svc(m, consumer).pop("mem_limit")),
            ("memory", "Control Center limit 3 GiB (over budget)", lambda m: svc(m, center).update(mem_limit=3 * GIB)),
            ("light-probes", "broker probed with kafka-topics",
             lambda m: svc(m, broker)["healthcheck"].update(test=["CMD", "kafka-topics", "--bootstrap-server", "localhost:9092", "--list"])),
            ("light-probes", "Cassandra probed with nodetool",
             lambda m: svc(m, cassandra)["healthcheck"].update(test=["CMD-SHELL", "nodetool status | grep -q UN"])),
            ("control-center", "broker on cp-kafka", lambda m: svc(m, broker).update(image="confluentinc/cp-kafka:7.9.1")),
            ("control-center", "no metrics reporter", lambda m: env(m, broker).pop("KAFKA_METRIC_REPORTERS")),
            ("control-center", "license topic with 3 replicas",
             lambda m: env(m, broker).update(KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR="3")),
            ("airflow-secrets", "JWT secret as a literal in the Compose file",
             lambda m: raw_env(m, airflow).update(AIRFLOW__API_AUTH__JWT_SECRET="x" * 80)),
            ("airflow-secrets", "no issuer on one service", lambda m: raw_env(m, airflow).pop("AIRFLOW__API_AUTH__JWT_ISSUER")),
            ("airflow-secrets", "secret_key differs on one service", lambda m: env(m, airflow).update(AIRFLOW__API__SECRET_KEY="other")),
            ("airflow-secrets", "JWT secret of 40 bytes in .env", lambda m: m["env"].update(AIRFLOW_JWT_SECRET="s" * 40)),
            ("consumer-scale", "consumer with container_name", lambda m: svc(m, consumer).update(container_name="consumer")),
            ("consumer-scale", "consumer on fixed host port 9400",
             lambda m: svc(m, consumer).update(ports=[{"target": 9400, "published": "9400", "host_ip": "127.0.0.1"}])),
            ("consumer-scale", "consumer metrics port not exposed", lambda m: svc(m, consumer).pop("expose", None)),
            ("arch", "x86-64 loader path in a Dockerfile", arch_dir),
            ("arch", "platform pin", lambda m: svc(m, consumer).update(platform="linux/amd64")),
            ("readiness", "Cassandra without healthcheck", lambda m: svc(m, cassandra).pop("healthcheck")),
            ("airflow-await", "Airflow's dead-letter topic not the consumer's",
             lambda m: env(m, airflow).update(KAFKA_DLQ_TOPIC="other.dlq")),
            ("airflow-await", "consumer in another group than the DAG's default",
             lambda m: env(m, consumer).update(KAFKA_GROUP_ID="writers")),
            ("airflow-await-dag", "DAG's consumer_group default not the consumer's group", lambda m: None),
        ]
        for check, what, mutate in tests:
            m = copy.deepcopy(base)
            mutate(m)
            if not checks[check](m):
                problems.append("`%s` passes on a broken copy: %s" % (check, what))
        # The spec check on broken files (compose-go itself must reject them).
        spec_cases = [
            ("unknown key mem_limitt", re.sub(r"(?m)^(    mem_limit):", r"\1t:", text, count=1), env_text),
            ("bad depends_on condition", text.replace("condition: service_healthy", "condition: service_happy", 1), env_text),
            ("required variable missing from .env",
             text, re.sub(r"(?m)^AIRFLOW_JWT_ISSUER=.*\n", "", env_text)),
        ]
        for what, broken, broken_env in spec_cases:
            if broken == text and broken_env == env_text:
                problems.append("self-test could not break the copy for: %s (update the self-test)" % what)
                continue
            if not check_spec(model(broken, broken_env)):
                problems.append("`spec` passes on a broken copy: %s" % what)

        # The monitoring profile's checks, on the project that the profile makes. Its model reads
        # bind-mounted files (Prometheus' and Grafana's configuration) beside the Compose file.
        def profile_model(compose_text=text):
            d = tempfile.mkdtemp(dir=work)
            os.symlink(os.path.join(work, "docker"), os.path.join(d, "docker"))
            with open(os.path.join(d, "docker-compose.yml"), "w") as f:
                f.write(compose_text)
            with open(os.path.join(d, ".env"), "w") as f:
                f.write(env_text)
            return load_profile_model(os.path.join(d, "docker-compose.yml"), os.path.join(d, ".env"),
                                      os.path.join(work, "docker"))

        mon = profile_model()
        mon_tests = []
        if mon["project"] is None:
            problems.append("the unbroken copy does not load with profile %s: %s" % (MONITORING, mon["spec_error"]))
        else:
            role = {image_name(s): n for n, s in services_of(mon).items()}
            prom, push, graf = role["prom/prometheus"], role["prom/pushgateway"], role["grafana/grafana-oss"]
            mon_checks = {"monitoring": check_monitoring,
                          "monitoring-memory": lambda m: check_memory(m, MONITORING_MEMORY_BUDGET),
                          "monitoring-readiness": lambda m: check_readiness(services_of(m))}
            for name, fn in mon_checks.items():
                if fn(mon):
                    problems.append("`%s` fails on the unbroken copy" % name)

            def raw_svc(m, n):
                return m["raw"]["services"][n]

            def dashboards_elsewhere(m):
                vols = raw_svc(m, graf)["volumes"]
                raw_svc(m, graf)["volumes"] = [v if "provisioning" in v else re.sub(r":/[^:]+", ":/srv/elsewhere", v, count=1)
                                               for v in vols]

            mon_tests = [
                ("monitoring", "Prometheus published on all interfaces",
                 lambda m: svc(m, prom)["ports"][0].update(host_ip="0.0.0.0")),
                ("monitoring", "Airflow pushing to the host's Pushgateway",
                 lambda m: env(m, airflow).update(PRODUCER_PUSHGATEWAY_URL="http://localhost:9091")),
                ("monitoring", "consumer metrics on a port Prometheus does not scrape",
                 lambda m: env(m, consumer).update(CONSUMER_HTTP_ADDR="0.0.0.0:9500")),
                ("monitoring", "a mount of a directory that does not exist",
                 lambda m: raw_svc(m, graf)["volumes"].append("./docker/monitoring/grafana/nowhere:/etc/nowhere:ro")),
                ("monitoring", "Grafana's dashboards mounted where its provider does not read", dashboards_elsewhere),
                ("monitoring", "the Pushgateway outside the profile", lambda m: raw_svc(m, push).pop("profiles")),
                ("monitoring-memory", "Grafana limit 1 GiB (over the profile's budget)",
                 lambda m: svc(m, graf).update(mem_limit=GIB)),
                ("monitoring-readiness", "Pushgateway without healthcheck", lambda m: svc(m, push).pop("healthcheck")),
            ]
            for check, what, mutate in mon_tests:
                m = copy.deepcopy(mon)
                mutate(m)
                if not mon_checks[check](m):
                    problems.append("`%s` passes on a broken copy: %s" % (check, what))
            spelled = re.sub(r"(?m)^(\s+)profiles: \[%s\]$" % MONITORING, r"\1profiles:\n\1  - %s" % MONITORING,
                             text, count=1)
            mon_tests.append(("monitoring-spec", "a profile written as a block list", None))
            if spelled == text:
                problems.append("self-test could not break the copy for: a profile written as a block list")
            elif not check_spec(profile_model(spelled)):
                problems.append("`monitoring-spec` passes on a broken copy: a profile written as a block list")
        print("     %d broken copies, each caught" % (len(tests) + len(spec_cases) + len(mon_tests))
              if not problems else "     self-test problems: %d" % len(problems))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compose", default=os.path.join(ROOT, "docker-compose.yml"))
    ap.add_argument("--producer-bin")
    ap.add_argument("--consumer-bin")
    ap.add_argument("--no-self-test", action="store_true")
    args = ap.parse_args()

    compose = os.path.abspath(args.compose)
    compose_dir = os.path.dirname(compose)
    env_file = os.path.join(compose_dir, ".env")
    t0 = time.time()

    m = load_model(compose, env_file, os.path.join(ROOT, "docker"))
    record("spec", check_spec(m), "compose-go accepts %s (%.1fs)" % (os.path.relpath(compose, ROOT),
                                                                    time.time() - t0))
    record("config", check_config(compose))

    if m["project"] is not None:
        services = services_of(m)
    elif yaml is None:
        record("parse", ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"])
        services = {}
    else:
        services = (m["raw"] or {}).get("services") or {}

    consumers = consumer_services(services)
    airflow = airflow_services(services)
    record("consumer-env", check_env(consumers, compose_dir, "consumer", "consumer",
                                     find_bin("consumer", args.consumer_bin)))
    record("producer-env", check_env(airflow, compose_dir, "producer or consumer", "producer",
                                     find_bin("producer", args.producer_bin),
                                     also=[("consumer", find_bin("consumer", args.consumer_bin))]))
    record("pushgateway-env", check_pushgateway_env(airflow, find_bin("producer", args.producer_bin)))
    record("airflow-await", check_airflow_await(services))
    record("readiness", check_readiness(services))
    record("builder-stage", check_builder())
    if m["project"] is not None:
        record("heap", check_heap(m))
        record("memory", check_memory(m), memory_info(m))
        record("light-probes", check_light_probes(m))
        record("control-center", check_control_center(m))
        if yaml is None:
            record("airflow-secrets", ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"])
        else:
            record("airflow-secrets", check_airflow_secrets(m))
        record("consumer-scale", check_consumer_scale(m))
    record("arch", check_arch(m))
    check_profile(compose, env_file)
    if os.path.exists(os.path.join(compose_dir, SECURE_COMPOSE)):
        check_secure(compose, env_file, args)
    if not args.no_self_test and m["project"] is not None and yaml is not None:
        t1 = time.time()
        problems = self_test(compose, env_file)
        record("self-test", problems, "%.1fs" % (time.time() - t1))

    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print("compose: %d passed, %d failed (%.1fs)" % (passed, failed, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
