"""consumer-env, producer-env, pushgateway-env: every variable a service sets is one its binaries
read, as `<binary> --help` lists them."""
import os
import re
import subprocess

from .model import ROOT, airflow_services, env_of
from .monitoring import PUSHGATEWAY_ENV

# Variables that are not the binaries' own settings: Airflow's configuration and its image's
# entrypoint (AIRFLOW_*, AIRFLOW__*, _AIRFLOW_*, _PIP_*), the tracing filter every Rust binary
# reads through tracing-subscriber (RUST_LOG), and the DAG's paths to the binaries (PRODUCER_BIN,
# CONSUMER_BIN).
IGNORED_PREFIXES = ("AIRFLOW_", "_AIRFLOW", "_PIP", "RUST_LOG", "PRODUCER_BIN", "CONSUMER_BIN")

ENV_RE = re.compile(r"\[env:\s*([A-Za-z_][A-Za-z0-9_]*)[=\]]")  # `NAME]` when hide_env_values


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
