"""Prometheus Alertmanager from Debian's `prometheus-alertmanager` package (0.25, as Compose's pinned
image), with Compose's own configuration (docker/monitoring/alertmanager/alertmanager.yml: no
receivers, so alerts are only listed; the tests read them from its API). 127.0.0.1:9093; gossip
clustering off (it would bind 0.0.0.0:9094)."""
import os

import plumbing
from service import PackagedHttpService

CONFIG = os.path.join(plumbing.ROOT, "docker", "monitoring", "alertmanager", "alertmanager.yml")


class Alertmanager(PackagedHttpService):
    kind = "alertmanager"
    binary = "/usr/bin/prometheus-alertmanager"
    package = "prometheus-alertmanager"
    url_var = "ALERTMANAGER_URL"

    def __init__(self, name="alertmanager", host="127.0.0.1", port=9093, deps=()):
        super().__init__(name, host, port, deps)

    def command(self):
        self.check_installed()
        os.makedirs(self.data, exist_ok=True)
        return [self.binary, "--config.file=" + CONFIG, "--storage.path=" + self.data,
                "--web.listen-address=" + self.address(), "--cluster.listen-address="], self.data, None
