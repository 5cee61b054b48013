"""Prometheus Alertmanager from Debian's `prometheus-alertmanager` package (0.25, as Compose's pinned
image), with Compose's own configuration (docker/monitoring/alertmanager/alertmanager.yml: no
receivers, so alerts are only listed; the tests read them from its API). 127.0.0.1:9093; gossip
clustering off (it would bind 0.0.0.0:9094)."""
import os

import plumbing
from plumbing import StackError
from service import Service

BIN = "/usr/bin/prometheus-alertmanager"
CONFIG = os.path.join(plumbing.ROOT, "docker", "monitoring", "alertmanager", "alertmanager.yml")


class Alertmanager(Service):
    kind = "alertmanager"

    def __init__(self, name="alertmanager", host="127.0.0.1", port=9093, deps=()):
        super().__init__(name, host, port, deps)

    def url(self):
        return "http://%s/" % self.address()

    def installed(self):
        return os.access(BIN, os.X_OK)

    def command(self):
        if not self.installed():
            raise StackError("alertmanager: no %s (tests/stack install-deps installs Debian's "
                             "prometheus-alertmanager)" % BIN)
        os.makedirs(self.data, exist_ok=True)
        return [BIN, "--config.file=" + CONFIG, "--storage.path=" + self.data,
                "--web.listen-address=" + self.address(), "--cluster.listen-address="], self.data, None

    def probe(self):
        return plumbing.http("GET", self.url() + "-/ready")[0] == 200

    def env(self):
        return ["export ALERTMANAGER_URL=%s" % self.url()]
