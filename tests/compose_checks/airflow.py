"""airflow-await and airflow-secrets: the Airflow services watch what the consumer service does,
and share their secrets, all from .env."""
import os
import re

from .model import ROOT, airflow_services, consumer_services, env_of, services_of

DAG_FILE = os.path.join(ROOT, "dags", "random_user_pipeline.py")
# Airflow settings that all its components must share, and the .env names they come from.
AIRFLOW_SECRETS = {
    "AIRFLOW__API__SECRET_KEY": "AIRFLOW_SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW_JWT_SECRET",
    "AIRFLOW__API_AUTH__JWT_ISSUER": "AIRFLOW_JWT_ISSUER",
}
JWT_SECRET_MIN_BYTES = 64


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
