"""PostgreSQL from Debian's `postgresql` package (installed by `tests/stack install-deps`): Airflow's
metadata database, as the Compose stack's postgres service. Its cluster lives in .stack/data/postgres,
listens on 127.0.0.1:15432 only (5432 stays free for a system PostgreSQL) with its socket in the data
dir, and runs as the `postgres` system user when tests/stack runs as root (postgres refuses root)."""
import glob
import os
import pwd
import signal
import subprocess

import plumbing
from plumbing import StackError, say
from service import Service

# Debian's layout: /usr/lib/postgresql/<major>/bin; the newest major installed
PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
PG_BIN = os.path.dirname(PG_BINS[-1]) if PG_BINS else None


class Postgres(Service):
    kind = "postgres"
    stop_signal = signal.SIGINT   # "fast" shutdown: roll back open transactions, then stop
    stop_grace = 30

    def __init__(self, name="postgres", host="127.0.0.1", port=15432, deps=(),
                 database="airflow", user="airflow", password="airflow"):
        super().__init__(name, host, port, deps)
        self.database, self.db_user, self.db_password = database, user, password
        self.user = "postgres" if os.geteuid() == 0 else None

    def url(self):
        return "postgresql+psycopg2://%s:%s@%s:%d/%s" % (self.db_user, self.db_password, self.host, self.port,
                                                         self.database)

    def installed(self):
        return PG_BIN is not None

    def _bin(self, name):
        if PG_BIN is None:
            raise StackError("postgres: no /usr/lib/postgresql/*/bin/postgres (tests/stack install-deps "
                             "installs Debian's postgresql)")
        return os.path.join(PG_BIN, name)

    def _as_owner(self, argv, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        if self.user:
            pw = pwd.getpwnam(self.user)
            kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        return subprocess.run(argv, text=True, cwd="/", **kw)

    def before_start(self):
        """A fresh cluster on first start: superuser `postgres` over the socket, passwords over TCP."""
        data = self.data
        if os.path.isfile(os.path.join(data, "PG_VERSION")):
            return
        os.makedirs(data, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(data, pw.pw_uid, pw.pw_gid)
        os.chmod(data, 0o700)
        say("postgres  initdb %s ..." % os.path.relpath(data))
        r = self._as_owner([self._bin("initdb"), "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C",
                            "--auth-local=trust", "--auth-host=scram-sha-256"])
        if r.returncode != 0:
            raise StackError("postgres: initdb failed:\n" + r.stdout[-3000:])

    def command(self):
        # fsync off: throwaway test data (a clean stop still writes everything out), like Cassandra's skip_sync
        return ([self._bin("postgres"), "-D", self.data, "-p", str(self.port), "-k", self.data,
                 "-c", "listen_addresses=" + self.host, "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=100"], "/", dict(os.environ, LC_ALL="C"))

    def psql(self, sql, db="postgres"):
        return self._as_owner([self._bin("psql") if os.path.exists(self._bin("psql")) else "psql",
                               "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.data,
                               "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql])

    def probe(self):
        return self.psql("SELECT 1").returncode == 0

    def after_ready(self):
        """The Airflow role and database (as Compose's POSTGRES_USER/POSTGRES_DB); idempotent."""
        r = self.psql("SELECT 1 FROM pg_roles WHERE rolname = '%s'" % self.db_user)
        if r.returncode == 0 and r.stdout.strip() != "1":
            r = self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (self.db_user, self.db_password))
        if r.returncode == 0:
            r = self.psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % self.database)
            if r.returncode == 0 and r.stdout.strip() != "1":
                r = self.psql("CREATE DATABASE %s OWNER %s" % (self.database, self.db_user))
        if r.returncode != 0:
            raise StackError("postgres: creating role/database %s failed:\n%s" % (self.database, r.stdout))

    def env(self):
        return []
