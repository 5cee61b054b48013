"""Prometheus Pushgateway from Debian's `prometheus-pushgateway` package (1.5, as Compose's pinned
image): where a producer run pushes its outcome (PRODUCER_PUSHGATEWAY_URL). 127.0.0.1:9091, in
memory only: a bed's runs need no persistence."""
import os

import plumbing
from plumbing import StackError
from service import Service

BIN = "/usr/bin/prometheus-pushgateway"


class Pushgateway(Service):
    kind = "pushgateway"

    def __init__(self, name="pushgateway", host="127.0.0.1", port=9091, deps=()):
        super().__init__(name, host, port, deps)

    def url(self):
        return "http://%s/" % self.address()

    def installed(self):
        return os.access(BIN, os.X_OK)

    def command(self):
        if not self.installed():
            raise StackError("pushgateway: no %s (tests/stack install-deps installs Debian's "
                             "prometheus-pushgateway)" % BIN)
        return [BIN, "--web.listen-address=" + self.address()], "/", None

    def probe(self):
        return plumbing.http("GET", self.url() + "-/ready")[0] == 200

    def env(self):
        return ["export PUSHGATEWAY_URL=%s" % self.url()]
