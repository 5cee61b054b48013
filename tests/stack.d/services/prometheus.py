"""Prometheus from Debian's `prometheus` package (2.42, as Compose's pinned image), evaluating
Compose's own rule files (docker/monitoring/prometheus/rules/*.rules.yml) at Compose's intervals and
sending to the bed's Alertmanager. What differs from Compose:
- how it finds consumers: no Docker DNS here, so the `consumer` job reads file_sd target files
  that tests write into .stack/data/prometheus/targets/ (PROMETHEUS_TARGETS_DIR), picked up
  within seconds;
- the thresholds: thresholds.rules.yml is loaded as a copy with BED_THRESHOLDS' values, so that
  the tests' faults fire within minutes (the alert rules and their `for` are Compose's own);
- the services themselves (ZooKeeper, Kafka, Cassandra: their JMX exporter agents; the registry's
  own /metrics; the node exporter) are static targets at the bed's addresses, one job per kind as
  in Compose's prometheus.yml."""
import json
import os
import re

import plumbing
from service import PackagedHttpService

PROMETHEUS_DIR = os.path.join(plumbing.ROOT, "docker", "monitoring", "prometheus")
RULES_DIR = os.path.join(PROMETHEUS_DIR, "rules")
THRESHOLDS = "thresholds.rules.yml"

# Recording rule -> the bed's value. Two replicas: the healthy test runs two, the alerts test
# removes one (ConsumerReplicasMissing). A minute of lag: the alerts test's stuck record fires
# ConsumerLagging once two minutes old. Three minutes without a producer success: ProducerStale
# fires within the alerts test, after the healthy test's last run.
BED_THRESHOLDS = {
    "pipeline:consumer_replicas:expected": 2,
    "pipeline:consumer_lag_seconds:threshold": 60,
    "pipeline:producer_success_age_seconds:threshold": 180,
}


def bed_thresholds(text, values):
    """thresholds.rules.yml's text with the `expr: vector(...)` of each rule in `values` replaced;
    every name must be there exactly once, so a renamed threshold fails the bed's start."""
    for record, value in values.items():
        pattern = re.compile(r"(- record: %s\n\s+expr: )vector\([^)\n]*\)" % re.escape(record))
        text, n = pattern.subn(lambda m: "%svector(%s)" % (m.group(1), value), text)
        if n != 1:
            raise plumbing.StackError("%s: no rule `- record: %s` followed by `expr: vector(...)`"
                                      % (os.path.join(RULES_DIR, THRESHOLDS), record))
    return text


def external_labels():
    """Compose's external labels (prometheus.yml, `global.external_labels`, one `key: value` a
    line): the runbook links' base is defined there once."""
    with open(os.path.join(PROMETHEUS_DIR, "prometheus.yml")) as f:
        text = f.read()
    block = re.search(r"^  external_labels:\n((?:    \S+: .*\n)+)", text, re.M)
    if not block:
        raise plumbing.StackError("%s: no global.external_labels" % os.path.join(PROMETHEUS_DIR, "prometheus.yml"))
    return dict(re.match(r"\s+(\S+): (.*)", line).groups() for line in block.group(1).splitlines())


class Prometheus(PackagedHttpService):
    kind = "prometheus"
    binary = "/usr/bin/prometheus"
    package = "prometheus"
    url_var = "PROMETHEUS_URL"
    stop_grace = 30   # writes its head block out on SIGTERM

    def __init__(self, name="prometheus", host="127.0.0.1", port=9090, deps=(), alertmanager=None,
                 pushgateway=None, watched=()):
        super().__init__(name, host, port, deps)
        self.alertmanager, self.pushgateway = alertmanager, pushgateway
        self.watched = list(watched)   # services with a scrape_target(): (job, host:port)

    def targets(self):
        return os.path.join(self.data, "targets")

    def service_jobs(self):
        """One job per kind of watched service (kafka, cassandra, ...), its members as targets."""
        jobs = {}
        for svc in self.watched:
            job, target = svc.scrape_target()
            jobs.setdefault(job, []).append(target)
        return [{"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()]

    def rule_files(self):
        """Compose's rule files but the thresholds, and the bed's copy of those."""
        with open(os.path.join(RULES_DIR, THRESHOLDS)) as f:
            thresholds = bed_thresholds(f.read(), BED_THRESHOLDS)
        copy = os.path.join(self.data, "rules", THRESHOLDS)
        plumbing.write(copy, thresholds)
        rules = sorted(os.path.join(RULES_DIR, n) for n in os.listdir(RULES_DIR)
                       if n.endswith(".rules.yml") and n != THRESHOLDS)
        return rules + [copy]

    def config(self):
        """Compose's prometheus.yml with the bed's addresses; JSON, which is YAML too. A bed without
        an Alertmanager or a Pushgateway (the cluster's) leaves those parts out."""
        cfg = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s", "external_labels": external_labels()},
            "rule_files": self.rule_files(),
            "scrape_configs": [
                {"job_name": "consumer",
                 "file_sd_configs": [{"files": [os.path.join(self.targets(), "*.json")], "refresh_interval": "5s"}]},
                {"job_name": "prometheus", "static_configs": [{"targets": [self.address()]}]},
            ] + self.service_jobs(),
        }
        if self.alertmanager is not None:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager.address()]}]}]}
            cfg["scrape_configs"].append({"job_name": "alertmanager",
                                          "static_configs": [{"targets": [self.alertmanager.address()]}]})
        if self.pushgateway is not None:
            cfg["scrape_configs"].append({"job_name": "pushgateway", "honor_labels": True,
                                          "static_configs": [{"targets": [self.pushgateway.address()]}]})
        return cfg

    def command(self):
        self.check_installed()
        os.makedirs(self.targets(), exist_ok=True)
        cfg = os.path.join(self.data, "prometheus.yml")
        plumbing.write(cfg, json.dumps(self.config(), indent=1))
        return [self.binary, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.data, "tsdb"),
                "--storage.tsdb.retention.time=1d", "--web.listen-address=" + self.address()], self.data, None

    def env(self):
        return super().env() + ["export PROMETHEUS_TARGETS_DIR=%s" % self.targets()]
