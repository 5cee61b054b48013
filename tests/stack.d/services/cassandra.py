"""Cassandra 5.0 (cassandra-all from Maven Central, cassandra/pom.xml) on JDK 17; ready when CQL
`SELECT release_version FROM system.local` answers (cql.py)."""
import os

import install
import jmx_exporter
import overrides
import plumbing
from plumbing import StackError, say
from service import JvmService

BASE = os.path.join(plumbing.STACK, "cassandra")
POM = os.path.join(plumbing.CONF_SRC, "cassandra", "pom.xml")
STAMP = os.path.join(BASE, ".installed")


class Cassandra(JvmService):
    kind = "cassandra"
    stop_grace = 60
    storage_port = 7000   # internode (gossip, mutations): cassandra.yaml's default; `partition` drops it too

    def __init__(self, name="cassandra", host="127.0.0.1", port=9042, deps=(), heap="1g", overrides=None,
                 properties=None):
        super().__init__(name, host, port, deps)
        self.heap = heap
        self.properties = properties or {}   # -D system properties, after (so over) the ones below
        self.overrides = overrides   # cassandra.yaml top-level keys (and `seeds`) to replace: another bed

    def config_path(self):
        """cassandra.yaml as shipped, or rendered to .stack/conf/<name>.yaml with the overrides."""
        if not self.overrides:
            return os.path.join(plumbing.CONF_SRC, "cassandra", "cassandra.yaml")
        return overrides.render("cassandra/cassandra.yaml", "%s.yaml" % self.name, self.overrides, "yaml")

    def installed(self):
        try:
            return install.stamp_ok(STAMP, install.sha(POM)) and jmx_exporter.installed()
        except OSError:
            return False

    def install(self):
        agent = jmx_exporter.install_agent()
        digest = install.sha(POM)
        if install.stamp_ok(STAMP, digest) and os.path.isdir(os.path.join(BASE, "lib")):
            return agent
        say("install cassandra jars (Maven) ...")
        install.mvn_copy(POM, os.path.join(BASE, "lib"))
        install.stamp(STAMP, digest)
        return True

    def command(self):
        data = self.data
        os.makedirs(data, exist_ok=True)
        lib = os.path.join(BASE, "lib")
        jamm = sorted(f for f in os.listdir(lib) if f.startswith("jamm-") and f.endswith(".jar"))
        if not jamm:
            raise StackError("jamm jar missing in " + lib)
        tmp = os.path.join(data, "tmp")
        os.makedirs(tmp, exist_ok=True)
        os.makedirs(os.path.join(data, "triggers"), exist_ok=True)
        src = os.path.join(plumbing.CONF_SRC, "cassandra")
        env = dict(os.environ, JAVA_HOME=install.JAVA_HOME)
        env.pop("JAVA_TOOL_OPTIONS", None)
        env.pop("_JAVA_OPTIONS", None)
        return ([install.JAVA] + self.marker() + [
            "-Xms" + self.heap, "-Xmx" + self.heap, "-Xss256k", "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled",
            "-XX:MaxTenuringThreshold=1", "-XX:G1HeapRegionSize=16m", "-XX:MaxGCPauseMillis=300",
            "-XX:+UseStringDeduplication", "-Djava.net.preferIPv4Stack=true",
            "-javaagent:" + os.path.join(lib, jamm[-1]), "@" + os.path.join(src, "jvm17.args"),
            jmx_exporter.agent("cassandra", self.host),
            "-Djava.io.tmpdir=" + tmp,
            "-Dcassandra-foreground=yes",
            "-Dcassandra.config=file://" + self.config_path(),
            "-Dcassandra.storagedir=" + data,
            "-Dcassandra.logdir=" + os.path.join(data, "logs"),
            "-Dcassandra.triggers_dir=" + os.path.join(data, "triggers"),
            "-Dlogback.configurationFile=file://" + os.path.join(src, "logback.xml"),
            # fast single-node startup
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=100",
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-Dcassandra.consistent.rangemovement=false",
            # no fsync (throwaway test data; a clean stop still flushes to the OS)
            "-Dcassandra.skip_sync=true"] + ["-D%s=%s" % kv for kv in self.properties.items()] + [
            "-cp", os.path.join(lib, "*"), "org.apache.cassandra.service.CassandraDaemon"], data, env)

    def scrape_target(self):
        """(Prometheus job, host:port) of its /metrics: the JMX exporter agent."""
        return "cassandra", jmx_exporter.target("cassandra", self.host)

    def probe(self):
        import cql  # tests/stack.d/cql.py
        rows = cql.query(self.host, self.port, "SELECT release_version FROM system.local", timeout=3)
        return bool(rows and rows[0][0])

    def env(self):
        return ["export CASSANDRA_CONTACT_POINTS=%s" % self.address()]
