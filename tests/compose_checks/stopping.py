"""stop-grace: `docker compose stop` gives each service that drains on SIGTERM longer than its
drain, so it finishes cleanly instead of being killed (SIGKILL) in the middle of it.

The drains are read from where the binaries define them, never repeated here: the consumer's
DRAIN_GRACE (crates/consumer/src/pipeline/rebalance.rs: in-flight writes finished, offsets
committed), and the producer's flush, bounded by KAFKA_DELIVERY_TIMEOUT (its default in
crates/producer/src/cli.rs, or the service's own value). The producer runs inside the Airflow
service that runs the DAG's tasks: the scheduler (LocalExecutor)."""
import os
import re

from .model import ROOT, airflow_services, consumer_services, env_of

CONSUMER_DRAIN_SOURCE = os.path.join(ROOT, "crates", "consumer", "src", "pipeline", "rebalance.rs")
PRODUCER_CLI_SOURCE = os.path.join(ROOT, "crates", "producer", "src", "cli.rs")

# What a drain must leave room for beyond its own bound: the commit and leaving the group
# (consumer), the push and the landed file (producer).
MARGIN_SECONDS = 5

UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def seconds(duration):
    """Seconds of a Compose/Go duration ("1m30s", "45s", "500ms") or humantime's ("60s", "2m");
    None if it is not one."""
    if duration is None:
        return None
    if isinstance(duration, (int, float)):
        return float(duration) / 1e9 if duration > 10 ** 6 else float(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", str(duration).strip())
    if not parts or "".join(n + u for n, u in parts) != str(duration).strip().replace(" ", ""):
        return None
    return sum(float(n) * UNITS[u] for n, u in parts)


def consumer_drain_seconds():
    text = open(CONSUMER_DRAIN_SOURCE).read()
    m = re.search(r"const DRAIN_GRACE: Duration = Duration::from_(secs|millis)\((\d+)\)", text)
    if not m:
        raise ValueError("no `const DRAIN_GRACE: Duration = Duration::from_secs(N)` in %s"
                         % os.path.relpath(CONSUMER_DRAIN_SOURCE, ROOT))
    return int(m.group(2)) / (1000.0 if m.group(1) == "millis" else 1.0)


def producer_drain_seconds(svc):
    value = env_of(svc).get("KAFKA_DELIVERY_TIMEOUT")
    if not value:
        text = open(PRODUCER_CLI_SOURCE).read()
        m = re.search(r'env = "KAFKA_DELIVERY_TIMEOUT", default_value = "([^"]+)"', text)
        if not m:
            raise ValueError("no default of KAFKA_DELIVERY_TIMEOUT in %s"
                             % os.path.relpath(PRODUCER_CLI_SOURCE, ROOT))
        value = m.group(1)
    return seconds(value)


def runs_tasks(svc):
    command = svc.get("command") or []
    return "scheduler" in (command if isinstance(command, str) else " ".join(command))


def check_stop_grace(services):
    problems = []
    try:
        drains = [(n, s, consumer_drain_seconds(), "the consumer's drain (DRAIN_GRACE)")
                  for n, s in sorted(consumer_services(services).items())]
        drains += [(n, s, producer_drain_seconds(s), "the producer's flush (KAFKA_DELIVERY_TIMEOUT)")
                   for n, s in sorted(airflow_services(services).items()) if runs_tasks(s)]
    except (OSError, ValueError) as e:
        return [str(e)]
    if not any("producer" in what for _, _, _, what in drains):
        problems.append("no Airflow service runs the DAG's tasks (command: scheduler)")
    for name, svc, drain, what in drains:
        grace = seconds(svc.get("stop_grace_period"))
        if grace is None:
            problems.append("service `%s` has no stop_grace_period: `docker compose stop` kills it after "
                            "10 s, inside %s of %gs" % (name, what, drain))
        elif grace < drain + MARGIN_SECONDS:
            problems.append("service `%s`: stop_grace_period %gs does not exceed %s of %gs by %ds"
                            % (name, grace, what, drain, MARGIN_SECONDS))
    return problems
