"""The Prometheus JMX exporter's Java agent on the beds' JVMs (ZooKeeper, Kafka, Cassandra), as in
Compose: io.prometheus.jmx:jmx_prometheus_javaagent from Maven Central (jmx/pom.xml), into .stack/jmx/,
checked against the SHA-256 below; each JVM serves /metrics on its own address at the port of its
kind, with Compose's rules (docker/monitoring/jmx/<kind>.yml), so that Prometheus, the alert rules and
the dashboard see the same series on a bed as under Compose. Apicurio (the beds' registry) needs no
agent: it serves Prometheus metrics on its management port."""
import os

import install
import plumbing
from plumbing import StackError, say

VERSION = "1.0.1"   # keep in sync with jmx/pom.xml and docker-compose.yml's JMX_EXPORTER_VERSION
SHA256 = "7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1"
JAR = "jmx_prometheus_javaagent-%s.jar" % VERSION
BASE = os.path.join(plumbing.STACK, "jmx")
POM = os.path.join(plumbing.CONF_SRC, "jmx", "pom.xml")
RULES = os.path.join(plumbing.ROOT, "docker", "monitoring", "jmx")
# One port per kind, the same on every bed address (as the services' own ports) and in Compose.
PORTS = {"zookeeper": 7071, "kafka": 7072, "cassandra": 7073}


def jar():
    return os.path.join(BASE, "lib", JAR)


def installed():
    return os.path.isfile(jar()) and install.stamp_ok(os.path.join(BASE, ".installed"), SHA256)


def install_agent():
    """The agent's jar, verified; idempotent (nothing to do when present). True if installed now."""
    if installed():
        return False
    say("install the Prometheus JMX exporter agent %s (Maven) ..." % VERSION)
    install.mvn_copy(POM, os.path.join(BASE, "lib"))
    if not os.path.isfile(jar()):
        raise StackError("jmx/pom.xml did not bring %s (its version and VERSION in jmx_exporter.py differ?)" % JAR)
    got = install.sha(jar())
    if got != SHA256:
        raise StackError("%s: SHA-256 %s, expected %s: not the published artifact; delete %s and retry"
                         % (JAR, got, SHA256, BASE))
    install.stamp(os.path.join(BASE, ".installed"), SHA256)
    return True


def agent(kind, host):
    """The -javaagent argument: /metrics on host:PORTS[kind] with the rules of that kind."""
    return "-javaagent:%s=%s:%d:%s" % (jar(), host, PORTS[kind], os.path.join(RULES, kind + ".yml"))


def target(kind, host):
    return "%s:%d" % (host, PORTS[kind])
