"""Prometheus Pushgateway from Debian's `prometheus-pushgateway` package (1.5, as Compose's pinned
image): where a producer run pushes its outcome (PRODUCER_PUSHGATEWAY_URL). 127.0.0.1:9091, in
memory only, unlike Compose's: a restart forgets the last run, the harder case for the alert rules,
which the alerts test restarts it to prove they survive."""
from service import PackagedHttpService


class Pushgateway(PackagedHttpService):
    kind = "pushgateway"
    binary = "/usr/bin/prometheus-pushgateway"
    package = "prometheus-pushgateway"
    url_var = "PUSHGATEWAY_URL"

    def __init__(self, name="pushgateway", host="127.0.0.1", port=9091, deps=()):
        super().__init__(name, host, port, deps)

    def command(self):
        self.check_installed()
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default (outside
        # .stack/, shared by anything on the machine): empty keeps it in memory.
        return [self.binary, "--web.listen-address=" + self.address(), "--persistence.file="], "/", None
