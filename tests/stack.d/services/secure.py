"""The secure bed (STACK_TOPOLOGY=secure, `tests/stack up --secure`): the default bed's services with
authentication and TLS everywhere, on the loopback address 127.0.0.5, as a deployment would run them.

- Kafka: one SASL_SSL listener, SCRAM-SHA-512 users `admin` (inter-broker, the bed's probe) and `pipeline`
  (the binaries), created in ZooKeeper with kafka-configs before the broker starts.
- Registry: Apicurio on 127.0.0.5:18082 (plain HTTP, reached only through the proxy) behind nginx, which
  terminates TLS and checks basic auth (user `pipeline`) at https://127.0.0.5:8081.
- Cassandra: PasswordAuthenticator, CassandraAuthorizer and client TLS only; the role `pipeline` is created
  with the default superuser once the node answers.

The CA, the server certificate (SAN IP:127.0.0.5, DNS:localhost), its PKCS12 keystore, the htpasswd file and
the random passwords are made at the first start under .stack/data/secure/ (mode 0700, files 0600) and reused
by every later start (ZooKeeper and Cassandra keep the users they were created with; after `down --purge`
they are created again with the same passwords). Nothing of it is committed. `tests/stack env` exports every setting the binaries need."""
import json
import os
import secrets
import shlex
import shutil
import ssl
import base64
import socket
import struct
import subprocess
import threading
import urllib.error
import urllib.request

import install
import jmx_exporter
import plumbing
from plumbing import StackError
from service import Service
from services import kafka
from services.cassandra import Cassandra
from services.kafka import Kafka
from services.registry import Registry
from services.zookeeper import ZooKeeper

HOST = "127.0.0.5"
DIR = os.path.join(plumbing.DATA, "secure")
SECRETS = os.path.join(DIR, "secrets.json")
CA, CA_KEY = os.path.join(DIR, "ca.pem"), os.path.join(DIR, "ca.key")
CERT, KEY = os.path.join(DIR, "server.pem"), os.path.join(DIR, "server.key")
P12 = os.path.join(DIR, "server.p12")
HTPASSWD = os.path.join(DIR, "htpasswd")
ADMIN, APP = "admin", "pipeline"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_lock = threading.Lock()   # services start in parallel threads; the material is made once


def _write_private(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def _render_private(src_rel, dst_name, **subst):
    """plumbing.render for files holding secrets: mode 0600."""
    with open(os.path.join(plumbing.CONF_SRC, src_rel)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace("@%s@" % k, v)
    return _write_private(os.path.join(plumbing.CONF, dst_name), text)


def _run(argv, redact=(), **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        out = r.stdout.strip()[-2000:]
        for secret in redact:   # tools echo what they could not parse
            out = out.replace(secret, "***")
        raise StackError("%s failed: %s" % (os.path.basename(argv[0]), out))
    return r.stdout


def make_ca(directory, name):
    """A fresh CA (ca.pem, ca.key) in directory; also used by tests for an untrusted CA."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
          "-subj", "/CN=%s" % name, "-keyout", os.path.join(directory, "ca.key"),
          "-out", os.path.join(directory, "ca.pem"),
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    os.chmod(os.path.join(directory, "ca.key"), 0o600)


def _make_certs(keystore_password):
    make_ca(DIR, "tests-stack secure bed CA")
    csr = os.path.join(DIR, "server.csr")
    ext = _write_private(os.path.join(DIR, "server.ext"),
                         "subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                         "keyUsage=critical,digitalSignature,keyEncipherment\n"
                         "extendedKeyUsage=serverAuth,clientAuth\n" % HOST)
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", "/CN=%s" % HOST,
          "-keyout", KEY, "-out", csr])
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", CA, "-CAkey", CA_KEY, "-set_serial",
          str(secrets.randbits(63)), "-days", "30", "-sha256", "-extfile", ext, "-out", CERT])
    _run(["openssl", "pkcs12", "-export", "-in", CERT, "-inkey", KEY, "-certfile", CA, "-name", "server",
          "-out", P12, "-passout", "env:STACK_KEYSTORE_PASSWORD"],
         env=dict(os.environ, STACK_KEYSTORE_PASSWORD=keystore_password))
    for p in (KEY, P12, csr):
        os.chmod(p, 0o600)
    os.unlink(csr)


def ensure():
    """The bed's passwords, certificates and htpasswd: made once, then read back. Returns the passwords."""
    with _lock:
        if os.path.isfile(SECRETS) and all(os.path.isfile(p) for p in (CA, CERT, KEY, P12, HTPASSWD)):
            with open(SECRETS) as f:
                return json.load(f)
        os.makedirs(DIR, mode=0o700, exist_ok=True)
        os.chmod(DIR, 0o700)
        # URL-safe characters: no quoting trouble in JAAS, YAML, htpasswd or `user:password`
        pw = {k: secrets.token_urlsafe(18) for k in
              ("kafka_admin", "kafka_pipeline", "registry_pipeline", "cassandra_pipeline", "keystore")}
        _make_certs(pw["keystore"])
        hashed = _run(["openssl", "passwd", "-apr1", "-stdin"], input=pw["registry_pipeline"] + "\n").strip()
        _write_private(HTPASSWD, "%s:%s\n" % (APP, hashed))
        _write_private(SECRETS, json.dumps(pw, indent=1) + "\n")
        return pw


def passwords():
    """The passwords if the bed was started once (for `env`), else None."""
    try:
        with open(SECRETS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _export(name, value):
    return "export %s=%s" % (name, shlex.quote(value))


def tls_context():
    ctx = ssl.create_default_context(cafile=CA)
    return ctx


# ----------------------------------------------------------------------------------------------- ZooKeeper
class SecureZooKeeper(ZooKeeper):
    def __init__(self, name="secure-zookeeper", host=HOST, port=2181, deps=()):
        super().__init__(name, host, port, deps)

    def command(self):
        os.makedirs(self.data, exist_ok=True)
        cfg = plumbing.render("secure/zookeeper.properties", "%s.properties" % self.name, DATA=self.data,
                              HOST=self.host)
        return ([install.JAVA] + self.marker() + [jmx_exporter.agent("zookeeper", self.host),
            "-Xms64m", "-Xmx128m", "-XX:+UseSerialGC", kafka.LOG4J, "-Dzookeeper.jmx.log4j.disable=true",
            "-cp", kafka.classpath(), "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            self.data, kafka.java_env())


# ----------------------------------------------------------------------------------------------- Kafka
class SecureKafka(Kafka):
    def __init__(self, name="secure-kafka", host=HOST, port=9092, deps=("secure-zookeeper",), zookeeper=None):
        super().__init__(name, host, port, deps, zookeeper=zookeeper)

    def _tool(self, cls, args, timeout=120):
        return _run(redact=list((passwords() or {}).values()), argv=[install.JAVA, "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                     "-Dlog4j.configuration=file:" + os.path.join(plumbing.CONF_SRC, "kafka", "log4j-tools.properties"),
                     "-cp", kafka.classpath(), cls] + args, env=kafka.java_env(), timeout=timeout)

    def before_start(self):
        pw = ensure()
        super().before_start()
        # SCRAM credentials live in ZooKeeper; the broker needs its own (inter-broker) before it starts.
        # From a 0600 file, not the command line: no password in the process list.
        threads, errors = [], []
        for user, key in ((ADMIN, "kafka_admin"), (APP, "kafka_pipeline")):
            f = _write_private(os.path.join(DIR, "scram-%s.properties" % user),
                               "SCRAM-SHA-512=iterations=4096,password=%s\n" % pw[key])

            def create(user=user, f=f):
                try:
                    self._tool("kafka.admin.ConfigCommand", [
                        "--zookeeper", self.zookeeper.address(), "--alter", "--entity-type", "users",
                        "--entity-name", user, "--add-config-file", f])
                except Exception as e:  # noqa: BLE001
                    errors.append("SCRAM user %s: %s" % (user, e))
                finally:
                    os.unlink(f)
            threads.append(threading.Thread(target=create))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise StackError("; ".join(errors))

    def client_config(self):
        pw = ensure()
        return _write_private(os.path.join(plumbing.CONF, "%s-admin-client.properties" % self.name), "\n".join([
            "security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512",
            'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
            'username="%s" password="%s";' % (ADMIN, pw["kafka_admin"]),
            "ssl.truststore.type=PEM", "ssl.truststore.location=" + CA, ""]))

    def command(self):
        pw = ensure()
        os.makedirs(self.data, exist_ok=True)
        cfg = _render_private("secure/server.properties", "%s.properties" % self.name, DATA=self.data,
                              HOST=self.host, PORT=str(self.port), ZOOKEEPER=self.zookeeper.address(),
                              ADMIN_USER=ADMIN, ADMIN_PASSWORD=pw["kafka_admin"], KEYSTORE=P12,
                              KEYSTORE_PASSWORD=pw["keystore"], CA=CA)
        return ([install.JAVA] + self.marker() + [jmx_exporter.agent("kafka", self.host),
            "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            kafka.LOG4J, "-cp", kafka.classpath(), "kafka.Kafka", cfg], self.data, kafka.java_env())

    def probe(self, timeout_s=20):
        """An authenticated TLS round trip as `admin`: list the topics."""
        if not plumbing.port_open(self.port, self.host):
            return False
        self._tool("org.apache.kafka.tools.TopicCommand", [
            "--bootstrap-server", self.address(), "--command-config", self.client_config(), "--list"],
            timeout=timeout_s + 30)
        return True

    def env(self):
        pw = passwords() or {}
        lines = ["export KAFKA_BOOTSTRAP_SERVERS=%s" % self.address(),
                 "export KAFKA_SECURITY_PROTOCOL=sasl_ssl",
                 "export KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
                 "export KAFKA_SASL_USERNAME=%s" % APP,
                 "export KAFKA_SSL_CA_LOCATION=%s" % CA]
        if pw:
            lines.append(_export("KAFKA_SASL_PASSWORD", pw["kafka_pipeline"]))
        return lines


# ----------------------------------------------------------------------------------------------- registry
class InternalRegistry(Registry):
    """Apicurio on plain HTTP, reached only through the proxy (it has no auth of its own here)."""

    def __init__(self, name="secure-registry", host=HOST, port=18082, deps=(), management_port=18083):
        super().__init__(name, host, port, deps, management_port=management_port)

    def env(self):
        return []


class RegistryProxy(Service):
    """nginx (Debian's package): TLS with the bed's certificate, basic auth, proxy to the registry."""
    kind = "registry"

    def __init__(self, name="secure-registry-tls", host=HOST, port=8081, deps=("secure-registry",),
                 upstream=None):
        super().__init__(name, host, port, deps)
        self.upstream = upstream

    def address(self):
        return "https://%s:%d/apis/ccompat/v7" % (self.host, self.port)

    def installed(self):
        return os.access(NGINX, os.X_OK)

    def install(self):
        raise StackError("nginx not found: `tests/stack install-deps` installs it (Debian package nginx)")

    def command(self):
        ensure()
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.data, "tmp", d), exist_ok=True)
        cfg = plumbing.render("secure/nginx.conf", "%s.conf" % self.name, DATA=self.data, HOST=self.host,
                              PORT=str(self.port), CERT=CERT, KEY=KEY, HTPASSWD=HTPASSWD,
                              UPSTREAM="%s:%d" % (self.upstream.host, self.upstream.port),
                              # as root, nginx's workers would run as `nobody` and not read the 0600 htpasswd
                              USER="user root;" if os.geteuid() == 0 else "")
        return ([NGINX, "-e", "stderr", "-p", self.data, "-c", cfg, "-g", "daemon off;"], self.data,
                dict(os.environ))

    def probe(self):
        pw = ensure()
        token = base64.b64encode(("%s:%s" % (APP, pw["registry_pipeline"])).encode()).decode()
        req = urllib.request.Request(self.address() + "/subjects", headers={"Authorization": "Basic " + token})
        try:
            with urllib.request.urlopen(req, timeout=3, context=tls_context()) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            raise StackError("GET /subjects: HTTP %d" % e.code)

    def env(self):
        pw = passwords() or {}
        lines = ["export SCHEMA_REGISTRY_URL=%s" % self.address(),
                 "export SCHEMA_REGISTRY_SSL_CA_LOCATION=%s" % CA]
        if pw:
            lines.append(_export("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "%s:%s" % (APP, pw["registry_pipeline"])))
        return lines


# ----------------------------------------------------------------------------------------------- Cassandra
def cql_secure(host, port, statements, user, password, timeout=5.0):
    """Runs CQL statements over TLS as user (SASL PLAIN, as PasswordAuthenticator wants); raises on error."""
    import cql  # tests/stack.d/cql.py: framing and errors
    raw = socket.create_connection((host, port), timeout=timeout)
    with tls_context().wrap_socket(raw, server_hostname=host) as sock:
        sock.settimeout(timeout)
        op, _ = cql._request(sock, 0, cql.OP_STARTUP,
                             struct.pack(">H", 1) + cql._string("CQL_VERSION") + cql._string("3.0.0"))
        if op == cql.OP_AUTHENTICATE:
            token = b"\0" + user.encode() + b"\0" + password.encode()
            op, _ = cql._request(sock, 1, 0x0F, struct.pack(">i", len(token)) + token)   # AUTH_RESPONSE
            if op != 0x10:                                                                  # AUTH_SUCCESS
                raise cql.CqlError("authentication as %s: opcode 0x%02x" % (user, op))
        elif op != cql.OP_READY:
            raise cql.CqlError("unexpected STARTUP response opcode 0x%02x" % op)
        for i, stmt in enumerate(statements):
            # consistency ONE would do for data; role statements pick their own level
            op, _ = cql._request(sock, 2 + i, cql.OP_QUERY, cql._long_string(stmt) + struct.pack(">HB", 0x0001, 0))
            if op != cql.OP_RESULT:
                raise cql.CqlError("unexpected QUERY response opcode 0x%02x" % op)


class SecureCassandra(Cassandra):
    SUPERUSER = ("cassandra", "cassandra")   # Cassandra's default superuser, used only to create the app role

    def __init__(self, name="secure-cassandra", host=HOST, port=9042, deps=()):
        super().__init__(name, host, port, deps)

    def command(self):
        pw = ensure()
        argv, cwd, env = super().command()
        cfg = _render_private("secure/cassandra.yaml", "%s.yaml" % self.name, HOST=self.host, KEYSTORE=P12,
                              KEYSTORE_PASSWORD=pw["keystore"])
        argv = ["-Dcassandra.config=file://" + cfg if a.startswith("-Dcassandra.config=") else a for a in argv]
        return argv, cwd, env

    def probe(self):
        # the default superuser exists a moment after the port opens: until then, "not ready"
        cql_secure(self.host, self.port, ["SELECT release_version FROM system.local"], *self.SUPERUSER, timeout=3)
        return True

    def after_ready(self):
        pw = ensure()["cassandra_pipeline"]
        cql_secure(self.host, self.port, [
            "CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = '%s' AND LOGIN = true" % (APP, pw),
            # the consumer creates its keyspace (and so owns it); nothing else
            "GRANT CREATE ON ALL KEYSPACES TO %s" % APP,
        ], *self.SUPERUSER, timeout=10)

    def env(self):
        pw = passwords() or {}
        lines = ["export CASSANDRA_CONTACT_POINTS=%s" % self.address(),
                 "export CASSANDRA_USERNAME=%s" % APP,
                 "export CASSANDRA_SSL_CA_LOCATION=%s" % CA]
        if pw:
            lines.append(_export("CASSANDRA_PASSWORD", pw["cassandra_pipeline"]))
        return lines
