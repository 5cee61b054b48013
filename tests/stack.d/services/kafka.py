"""Kafka 3.9 in ZooKeeper mode (jars from Maven Central, kafka/pom.xml); ready when KafkaReady.java
has created `__stack_ready`, produced to it and fetched the record back."""
import os
import shutil
import subprocess
import time

import install
import jmx_exporter
import overrides
import plumbing
from plumbing import StackError, say
from service import JvmService

BASE = os.path.join(plumbing.STACK, "kafka")
POM = os.path.join(plumbing.CONF_SRC, "kafka", "pom.xml")
READY_SRC = os.path.join(plumbing.CONF_SRC, "kafka", "KafkaReady.java")
STAMP = os.path.join(BASE, ".installed")
LOG4J = "-Dlog4j.configuration=file:" + os.path.join(plumbing.CONF_SRC, "kafka", "log4j.properties")


def classpath():
    return os.path.join(BASE, "lib", "*")


def java_env():
    env = dict(os.environ, JAVA_HOME=install.JAVA_HOME)
    env.pop("JAVA_TOOL_OPTIONS", None)
    env.pop("_JAVA_OPTIONS", None)
    return env


def jars_installed():
    try:
        return install.stamp_ok(STAMP, install.sha(POM, READY_SRC)) and os.path.isdir(os.path.join(BASE, "lib"))
    except OSError:
        return False


def install_jars():
    """Kafka + ZooKeeper jars, and KafkaReady compiled against them."""
    digest = install.sha(POM, READY_SRC)
    if install.stamp_ok(STAMP, digest) and os.path.isdir(os.path.join(BASE, "lib")):
        return False
    say("install kafka + zookeeper jars (Maven) ...")
    install.mvn_copy(POM, os.path.join(BASE, "lib"))
    ready = os.path.join(BASE, "ready")
    shutil.rmtree(ready, ignore_errors=True)
    r = subprocess.run([install.JAVAC, "-nowarn", "-cp", classpath(), "-d", ready, READY_SRC],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise StackError("javac KafkaReady failed:\n" + r.stdout)
    install.stamp(STAMP, digest)
    return True


class Kafka(JvmService):
    kind = "kafka"
    stop_grace = 60
    probe_interval = 1.0   # each probe is a JVM

    def __init__(self, name="kafka", host="127.0.0.1", port=9092, deps=("zookeeper",), zookeeper=None,
                 broker_id=0, heap="512m", overrides=None):
        super().__init__(name, host, port, deps)
        self.zookeeper = zookeeper   # the ZooKeeper instance, to wait for a stale registration
        self.broker_id, self.heap = broker_id, heap
        self.overrides = overrides   # server.properties keys to replace (another bed: address, id, replication)

    def installed(self):
        return jars_installed() and jmx_exporter.installed()

    def install(self):
        return any([install_jars(), jmx_exporter.install_agent()])

    def scrape_target(self):
        """(Prometheus job, host:port) of its /metrics: the JMX exporter agent."""
        return "kafka", jmx_exporter.target("kafka", self.host)

    def command(self):
        os.makedirs(self.data, exist_ok=True)
        cfg = overrides.render("kafka/server.properties",
                               "server.properties" if self.name == "kafka" else "%s.properties" % self.name,
                               self.overrides or {}, "properties", DATA=self.data)
        return ([install.JAVA] + self.marker() + [jmx_exporter.agent("kafka", self.host),
            "-Xms128m", "-Xmx" + self.heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            LOG4J, "-cp", classpath(), "kafka.Kafka", cfg], self.data, java_env())

    def before_start(self):
        self.wait_stale_broker_gone()

    def wait_stale_broker_gone(self, timeout=20):
        """After a kill -9 the broker's ephemeral /brokers/ids/0 lives until its ZooKeeper session
        expires (zookeeper.session.timeout.ms=6000); a broker started before that dies with
        NodeExistsException."""
        if self.zookeeper is None:
            return
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                if self.zk_path() not in self.zookeeper.four_letter_word(b"dump"):
                    return
            except OSError:
                return
            time.sleep(0.5)
        say("%s: stale %s still registered in ZooKeeper after %ds; starting anyway"
            % (self.name, self.zk_path().decode(), timeout))

    def zk_path(self):
        return b"/brokers/ids/%d" % self.broker_id

    def probe(self, timeout_s=20):
        if not plumbing.port_open(self.port, self.host):
            return False
        cp = classpath() + os.pathsep + os.path.join(BASE, "ready")
        r = subprocess.run([install.JAVA, "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                            "-Dlog4j.configuration=file:"
                            + os.path.join(plumbing.CONF_SRC, "kafka", "log4j-tools.properties"),
                            "-cp", cp, "KafkaReady", self.address(), str(int(timeout_s))],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s + 30)
        if r.returncode != 0:
            raise StackError((r.stdout.strip().splitlines() or ["KafkaReady exit %d" % r.returncode])[-1])
        return True

    def env(self):
        return ["export KAFKA_BOOTSTRAP_SERVERS=%s" % self.address()]
