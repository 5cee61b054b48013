"""What a service of the test bed is: how it installs, starts, answers and stops.

A service instance has a name (its pid, log and data files are named after it), an address
(host, port) and the names of the services it needs started first. Subclasses (services/*.py) say
how to install it, its command line, and its readiness probe. A topology (topology.py) is a list of
such instances."""
import os
import signal
import time

import plumbing
from plumbing import StackError, say


class Service:
    kind = "?"            # the module that describes it: zookeeper, kafka, ...
    stop_grace = 20       # seconds between the stop signal and SIGKILL
    stop_signal = signal.SIGTERM
    whole_session = False   # signal the service's whole session (services that fork workers)
    user = None           # system user to run as (Postgres refuses root)
    probe_interval = 0.5

    def __init__(self, name, host="127.0.0.1", port=None, deps=()):
        self.name, self.host, self.port, self.deps = name, host, port, list(deps)

    # --- description, overridden by services/*.py
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def installed(self):
        return True

    def install(self):
        """Fetch what the service needs; True if something was installed."""
        return False

    def command(self):
        """(argv, cwd, env) of the service's process."""
        raise NotImplementedError

    def probe(self):
        """True once the service really answers (raise or return False: not yet)."""
        raise NotImplementedError

    def before_start(self):
        pass

    def after_ready(self):
        pass

    def env(self):
        """`export` lines for `tests/stack env`."""
        return []

    # --- process management
    @property
    def data(self):
        return os.path.join(plumbing.DATA, self.name)

    def ours(self, pid, recorded_start):
        """pid is alive and is the process we started (guards against PID reuse)."""
        return alive_and_same(pid, recorded_start)

    def running_pid(self):
        pid, started = plumbing.read_pidfile(self.name)
        if pid is None:
            return None
        if self.ours(pid, started):
            return pid
        plumbing.remove_pidfile(self.name)   # stale
        return None

    def rss_mib(self):
        pid = self.running_pid()
        return plumbing.tree_rss_mib(pid) if pid else None

    def spawn(self):
        argv, cwd, env = self.command()
        if self.port and plumbing.port_open(self.port, self.host):
            raise StackError("%s: port %s:%d is already in use by a process tests/stack did not start"
                             % (self.name, self.host, self.port))
        return plumbing.spawn(self.name, argv, cwd, env, user=self.user)

    def ready(self):
        return (not self.port or plumbing.port_open(self.port, self.host)) and self.probe()

    def stop(self, grace=None):
        pid = self.running_pid()
        if pid is None:
            plumbing.remove_pidfile(self.name)
            return False
        _, started = plumbing.read_pidfile(self.name)
        grace = grace or self.stop_grace
        t0 = time.time()
        plumbing.signal_session(pid, self.stop_signal, self.whole_session)
        while time.time() - t0 < grace and self.ours(pid, started):
            time.sleep(0.2)
        killed = False
        if self.ours(pid, started) or (self.whole_session and plumbing.session_pids(pid)):
            killed = True
            plumbing.signal_session(pid, signal.SIGKILL, self.whole_session)
            while self.ours(pid, started) and time.time() - t0 < grace + 10:
                time.sleep(0.1)
        plumbing.remove_pidfile(self.name)
        say("%-9s stopped (pid %d, %.1fs%s)" % (self.name, pid, time.time() - t0, ", SIGKILL" if killed else ""))
        return True


def alive_and_same(pid, recorded_start):
    if not plumbing.alive(pid):
        return False
    return recorded_start is None or plumbing.start_time(pid) == recorded_start


class JvmService(Service):
    """A JVM marked with -Dstack.service=<name> -Dstack.root=<.stack>: recognised by its command line
    (pid files of beds started before start times were recorded hold only the pid)."""

    def marker(self):
        return ["-Dstack.service=" + self.name, "-Dstack.root=" + plumbing.STACK]

    def ours(self, pid, recorded_start):
        if not plumbing.alive(pid):
            return False
        args = plumbing.cmdline(pid)
        return all(m.encode() in args for m in self.marker())


class PackagedHttpService(Service):
    """A single binary from a Debian package (installed by `tests/stack install-deps`) that answers
    `GET /-/ready` when ready, as the Prometheus family does. Subclasses set the binary, its package
    and the variable `tests/stack env` exports its URL in."""
    binary = None
    package = None
    url_var = None

    def url(self):
        return "http://%s/" % self.address()

    def installed(self):
        return os.access(self.binary, os.X_OK)

    def check_installed(self):
        if not self.installed():
            raise StackError("%s: no %s (tests/stack install-deps installs Debian's %s)"
                             % (self.name, self.binary, self.package))

    def probe(self):
        return plumbing.http("GET", self.url() + "-/ready")[0] == 200

    def env(self):
        return ["export %s=%s" % (self.url_var, self.url())]
