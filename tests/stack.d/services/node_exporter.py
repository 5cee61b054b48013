"""Prometheus node exporter from Debian's `prometheus-node-exporter` package (1.5; Compose runs
prom/node-exporter): the machine's filesystems, memory and load, for the disk alerts
(docker/monitoring/prometheus/rules/services.rules.yml) and the dashboard. Only those collectors: a
bed's Prometheus needs no hundreds of network and hardware series. A bed that has a Prometheus runs
one on its first address (every bed reads the same machine's disks)."""
import plumbing
from service import PackagedHttpService

# The collectors the alerts and the dashboard read; the same in docker-compose.yml's node-exporter.
COLLECTORS = ["filesystem", "meminfo", "loadavg"]


class NodeExporter(PackagedHttpService):
    kind = "node-exporter"
    binary = "/usr/bin/prometheus-node-exporter"
    package = "prometheus-node-exporter"
    url_var = None

    def __init__(self, name="node-exporter", host="127.0.0.1", port=9100, deps=()):
        super().__init__(name, host, port, deps)

    def command(self):
        self.check_installed()
        return [self.binary, "--web.listen-address=" + self.address(), "--collector.disable-defaults"]\
            + ["--collector." + c for c in COLLECTORS], "/", None

    def probe(self):
        return plumbing.http("GET", self.url() + "metrics")[0] == 200

    def scrape_target(self):
        return "node", self.address()

    def env(self):
        return []
