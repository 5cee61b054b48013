#!/usr/bin/env python3
"""Static checks of docker-compose.yml against the binaries it runs.

  python3 tests/compose_check.py [--compose docker-compose.yml] [--producer-bin PATH] [--consumer-bin PATH]

Binaries: --producer-bin / --consumer-bin, else $PRODUCER_BIN / $CONSUMER_BIN, else
target/release/<name>, else target/debug/<name> (build them first: cargo build -p producer -p consumer).

Checks, one result line each, then `compose: N passed, M failed` (exit 1 if any failed):
  config        `docker-compose -f <file> config -q` (or `docker compose`) accepts the file
  consumer-env  every variable set on the consumer service is one `consumer --help` lists ([env: NAME])
  producer-env  the same for the Airflow services (their tasks run the producer) and `producer --help`
  readiness     every long-running service has a healthcheck; every depends_on has a condition;
                every one-shot service is awaited with service_completed_successfully (so that
                `docker compose up -d --wait` accepts its exit 0)
  builder-stage the builder stage of docker/rust.Dockerfile and docker/airflow.Dockerfile is identical

Needs PyYAML (Debian: apt-get install -y python3-yaml) and docker-compose for `config`
(Debian: apt-get install -y docker-compose). Otherwise Python 3 standard library only.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failure below
    yaml = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Variables that are not the binaries' own settings: Airflow's configuration and its image's
# entrypoint (AIRFLOW_*, AIRFLOW__*, _AIRFLOW_*, _PIP_*), the tracing filter every Rust binary
# reads through tracing-subscriber (RUST_LOG), and the DAG's path to the producer (PRODUCER_BIN).
IGNORED_PREFIXES = ("AIRFLOW_", "_AIRFLOW", "_PIP", "RUST_LOG", "PRODUCER_BIN")

ENV_RE = re.compile(r"\[env:\s*([A-Za-z_][A-Za-z0-9_]*)[=\]]")  # `NAME]` when hide_env_values

AIRFLOW_DOCKERFILE = "docker/airflow.Dockerfile"
RUST_DOCKERFILE = "docker/rust.Dockerfile"
BUILDER_START = "# ---- builder"
BUILDER_END = "# ---- end of builder"

results = []  # (name, ok, message)


def record(name, problems):
    results.append((name, not problems, problems))
    if problems:
        print("FAIL %s" % name)
        for p in problems:
            print("     - %s" % p)
    else:
        print("ok   %s" % name)


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


def check_env(services, compose_dir, which, binary_name, binary):
    problems = []
    if not services:
        return ["no service found that runs the %s" % binary_name]
    if binary is None:
        return ["%s binary not found: build it (cargo build -p %s) or pass --%s-bin / set %s_BIN"
                % (binary_name, binary_name, binary_name, binary_name.upper())]
    try:
        known = env_names_from_help(binary)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return [str(e)]
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
    if a != b:
        for i, (x, y) in enumerate(zip(a + [""] * len(b), b + [""] * len(a))):
            if x != y:
                return ["builder stages differ at line %d of the block:\n       %s: %s\n       %s: %s"
                        % (i + 1, RUST_DOCKERFILE, x, AIRFLOW_DOCKERFILE, y)]
    return []


def check_config(compose):
    if shutil.which("docker-compose"):
        cmd = ["docker-compose", "-f", compose, "config", "-q"]
    elif shutil.which("docker"):
        cmd = ["docker", "compose", "-f", compose, "config", "-q"]
    else:
        return ["neither docker-compose nor docker found (Debian: apt-get install -y docker-compose)"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=120)
    print("     $ %s -> exit %d%s" % (" ".join(cmd), out.returncode,
                                       (": " + out.stdout.strip()) if out.stdout.strip() else ""))
    if out.returncode != 0:
        return ["`%s` exited %d: %s" % (" ".join(cmd), out.returncode, out.stdout.strip())]
    return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compose", default=os.path.join(ROOT, "docker-compose.yml"))
    ap.add_argument("--producer-bin")
    ap.add_argument("--consumer-bin")
    args = ap.parse_args()

    compose = os.path.abspath(args.compose)
    compose_dir = os.path.dirname(compose)

    record("config", check_config(compose))

    if yaml is None:
        record("parse", ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"])
    else:
        try:
            with open(compose) as fh:
                doc = yaml.safe_load(fh)  # resolves the x-airflow-common anchors and `<<` merges
        except (OSError, yaml.YAMLError) as e:
            record("parse", ["cannot read %s: %s" % (compose, e)])
            doc = None
        services = (doc or {}).get("services") or {}

        consumers, airflow = {}, {}
        for name, svc in services.items():
            dockerfile, target = dockerfile_of(svc)
            image = str(svc.get("image", ""))
            if dockerfile == os.path.normpath(RUST_DOCKERFILE) and target == "consumer" or name == "consumer":
                consumers[name] = svc
            if dockerfile == os.path.normpath(AIRFLOW_DOCKERFILE) or image.startswith("apache/airflow"):
                airflow[name] = svc

        record("consumer-env", check_env(consumers, compose_dir, "consumer", "consumer",
                                         find_bin("consumer", args.consumer_bin)))
        record("producer-env", check_env(airflow, compose_dir, "producer", "producer",
                                         find_bin("producer", args.producer_bin)))
        record("readiness", check_readiness(services))
    record("builder-stage", check_builder())

    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print("compose: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
