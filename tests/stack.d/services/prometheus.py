"""Prometheus from Debian's `prometheus` package (2.42, as Compose's pinned image), evaluating
Compose's own rule files (docker/monitoring/prometheus/rules/) at Compose's intervals and sending to
the bed's Alertmanager. What differs from Compose is only how it finds consumers: no Docker DNS here,
so the `consumer` job reads file_sd target files that tests write into
.stack/data/prometheus/targets/ (PROMETHEUS_TARGETS_DIR), picked up within seconds. The services
themselves (ZooKeeper, Kafka, Cassandra: their JMX exporter agents; the registry's own /metrics; the
node exporter) are static targets, one job per kind as in Compose's prometheus.yml, at the bed's
addresses."""
import json
import os

import plumbing
from service import PackagedHttpService

RULES = os.path.join(plumbing.ROOT, "docker", "monitoring", "prometheus", "rules", "*.rules.yml")


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

    def config(self):
        """Compose's prometheus.yml with the bed's addresses; JSON, which is YAML too. A bed without
        an Alertmanager or a Pushgateway (the cluster's) leaves those parts out."""
        cfg = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [RULES],
            "scrape_configs": [
                {"job_name": "consumer",
                 "file_sd_configs": [{"files": [os.path.join(self.targets(), "*.json")], "refresh_interval": "5s"}]},
            ] + self.service_jobs(),
        }
        if self.alertmanager is not None:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager.address()]}]}]}
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
