"""The security override docker-compose.secure.yml, merged onto the main file: the checks of the
project it makes, `secrets`, and secure-self-test."""
import copy
import os
import re
import tempfile
import time

from .environment import check_env, find_bin
from .loaders import check_config, check_spec
from .model import (ROOT, airflow_services, consumer_services, env_of, load_spec, read_env_file,
                    services_of, yaml)
from .report import record
from .resources import check_heap, check_light_probes, check_memory, memory_info
from .services import check_readiness

# The security override, its example env file and its guard.
SECURE_COMPOSE = "docker-compose.secure.yml"
SECURE_ENV_EXAMPLE = ".env.secure.example"
SECRETS_CHECK = "secrets-check"
# Environment keys whose values are secrets (paths to files holding one are not).
SECRET_KEY = re.compile(r"PASSWORD|SECRET|USER_INFO|JAAS_CONFIG")
NOT_A_SECRET_KEY = re.compile(r"(_FILE|_LOCATION|_PATH|_SOURCE)$")
INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


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
