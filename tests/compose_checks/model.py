"""What the checks read: the project as compose-go resolves it (load_spec), the file as written,
the .env values, and lookups into a project's services."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failure by the checks that need it
    yaml = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPEC_SRC = os.path.join(ROOT, "tests", "compose.d")
SPEC_BIN = os.path.join(ROOT, ".stack", "compose-check", "compose-spec-check")

# The monitoring profile's name.
MONITORING = "monitoring"
# How a service of the profile says so in docker-compose.yml: one line, which the profile's model
# drops from a copy of the file (see load_profile_model).
PROFILE_LINE = re.compile(r"(?m)^[ \t]+profiles:[ \t]*\[[ \t]*%s[ \t]*\][ \t]*(?:#.*)?\n" % MONITORING)


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


def services_of(m):
    return (m["project"] or {}).get("services") or {}


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


def airflow_services(services):
    return {n: s for n, s in services.items()
            if "airflow" in image_name(s) or "airflow" in str((s.get("build") or {}).get("dockerfile", ""))}


def consumer_services(services):
    return {n: s for n, s in services.items()
            if n == "consumer" or ((s.get("build") or {}).get("target") == "consumer")}
