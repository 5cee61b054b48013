"""Prometheus Alertmanager from Debian's `prometheus-alertmanager` package (0.25, as Compose's pinned
image), with Compose's own configuration (docker/monitoring/alertmanager/alertmanager.yml: its
routes, inhibit rules and receivers) plus one thing: each receiver also posts to a webhook on
ALERT_RECEIVER_ADDR (127.0.0.1:9096, path /<receiver>), where the monitoring tests run their
receiver (tests/monitoring/src/receiver.rs) and read what was notified. Compose's receivers have no
notifier, so without this nothing would be sent. The copy is written to .stack/data/alertmanager/.
127.0.0.1:9093; gossip clustering off (it would bind 0.0.0.0:9094)."""
import os
import re

import plumbing
from service import PackagedHttpService

CONFIG = os.path.join(plumbing.ROOT, "docker", "monitoring", "alertmanager", "alertmanager.yml")
RECEIVER_ADDR = "127.0.0.1:9096"


def with_webhooks(text, addr):
    """Compose's configuration with a webhook to http://addr/<name> under each receiver. Compose's
    receivers are `  - name: X` lines with nothing under them (no notifier); the commented
    examples are left alone."""
    receivers = text.index("\nreceivers:\n")

    def webhook(m):
        return ("%s\n    webhook_configs:\n      - url: http://%s/%s\n        send_resolved: true"
                % (m.group(0), addr, m.group(1)))

    head, tail = text[:receivers], text[receivers:]
    tail, n = re.subn(r"^  - name: (\S+)$", webhook, tail, flags=re.M)
    if n == 0:
        raise plumbing.StackError("%s: no receiver (`  - name: ...` under `receivers:`)" % CONFIG)
    return head + tail


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
        # Each start forgets what an earlier one notified: an alert whose resolution it never
        # sent (a test stopped half-way) would otherwise not be notified again for hours
        # (repeat_interval), and the next test would wait for it in vain.
        for state in ("nflog", "silences"):
            try:
                os.remove(os.path.join(self.data, state))
            except FileNotFoundError:
                pass
        with open(CONFIG) as f:
            config = with_webhooks(f.read(), RECEIVER_ADDR)
        path = os.path.join(self.data, "alertmanager.yml")
        plumbing.write(path, config)
        return [self.binary, "--config.file=" + path, "--storage.path=" + self.data,
                "--web.listen-address=" + self.address(), "--cluster.listen-address="], self.data, None

    def env(self):
        return super().env() + ["export ALERT_RECEIVER_ADDR=%s" % RECEIVER_ADDR]
