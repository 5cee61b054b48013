"""ZooKeeper 3.8 (the jar that comes with Kafka, see kafka/pom.xml), for Kafka in ZooKeeper mode."""
import os
import socket

import install
import jmx_exporter
import overrides
import plumbing
from service import JvmService
from services import kafka


class ZooKeeper(JvmService):
    kind = "zookeeper"

    def __init__(self, name="zookeeper", host="127.0.0.1", port=2181, deps=(), overrides=None):
        super().__init__(name, host, port, deps)
        self.overrides = overrides   # zookeeper.properties keys to replace (another bed's address)

    def installed(self):
        return kafka.jars_installed() and jmx_exporter.installed()

    def install(self):
        return any([kafka.install_jars(), jmx_exporter.install_agent()])

    def scrape_target(self):
        """(Prometheus job, host:port) of its /metrics: the JMX exporter agent."""
        return "zookeeper", jmx_exporter.target("zookeeper", self.host)

    def command(self):
        os.makedirs(self.data, exist_ok=True)
        cfg = overrides.render("zookeeper/zookeeper.properties", "%s.properties" % self.name, self.overrides or {},
                               "properties", DATA=self.data)
        return ([install.JAVA] + self.marker() + [jmx_exporter.agent("zookeeper", self.host),
            "-Xms64m", "-Xmx128m", "-XX:+UseSerialGC", kafka.LOG4J, "-Dzookeeper.jmx.log4j.disable=true",
            "-cp", kafka.classpath(), "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            self.data, kafka.java_env())

    def four_letter_word(self, cmd, timeout=2):
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(cmd)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk

    def probe(self):
        with socket.create_connection((self.host, self.port), timeout=2) as s:
            s.sendall(b"ruok")
            return s.recv(4) == b"imok"

    def env(self):
        return ["export ZOOKEEPER_CONNECT=%s" % self.address()]
