"""control-center: the broker feeds Confluent Control Center, and every internal topic fits one broker."""
import re

from .model import env_of, image_name, one_shots, services_of

BROKER_IMAGES = ("confluentinc/cp-server", "confluentinc/cp-kafka", "confluentinc/cp-enterprise-kafka")
CONTROL_CENTER_IMAGE = "confluentinc/cp-enterprise-control-center"
METRICS_REPORTER = "io.confluent.metrics.reporter.ConfluentMetricsReporter"
SINGLE_BROKER_RF = re.compile(r"(REPLICATION_FACTOR|_REPLICAS|_REPLICATION)$")


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
