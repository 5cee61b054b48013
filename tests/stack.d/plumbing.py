"""Shared plumbing of the test bed: paths, output, processes started and stopped by recorded PID,
port and HTTP probes. Python 3 standard library only; every service module builds on this."""
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF_SRC = os.path.join(ROOT, "tests", "stack.d")
STACK = os.path.abspath(os.environ.get("STACK_DIR") or os.path.join(ROOT, ".stack"))
RUN, LOGS, DATA, CONF = (os.path.join(STACK, d) for d in ("run", "logs", "data", "conf"))
TIMEOUT = float(os.environ.get("STACK_TIMEOUT", "240"))
START_MARK = "===== tests/stack start "

_print_lock = threading.Lock()


def say(*a):
    with _print_lock:
        print("stack:", *a, flush=True)


class StackError(Exception):
    pass


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def render(src_rel, dst_name, **subst):
    """Copies tests/stack.d/<src_rel> to .stack/conf/<dst_name>, replacing each @KEY@."""
    with open(os.path.join(CONF_SRC, src_rel)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace("@%s@" % k, v)
    dst = os.path.join(CONF, dst_name)
    write(dst, text)
    return dst


# ----------------------------------------------------------------------------------------------- processes
def pidfile(name):
    return os.path.join(RUN, name + ".pid")


def logfile(name):
    return os.path.join(LOGS, name + ".log")


def read_pidfile(name):
    """(pid, start time in clock ticks or None). Files written before start times were recorded
    hold only the pid."""
    try:
        with open(pidfile(name)) as f:
            fields = f.read().split()
        return int(fields[0]), (int(fields[1]) if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


def remove_pidfile(name):
    try:
        os.unlink(pidfile(name))
    except OSError:
        pass


def _stat(pid):
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid):
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def start_time(pid):
    st = _stat(pid)
    return int(st[19]) if st else None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def session_pids(sid):
    """The processes of the session a service was started in (Airflow forks workers)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st[0] != "Z" and int(st[3]) == sid:
                out.append(int(d))
    return out


def tree_pids(pid):
    """pid and its descendants (Postgres's backends start sessions of their own)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st[0] != "Z":
                children.setdefault(int(st[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def tree_rss_mib(pid):
    """RSS of a process and its descendants (pages shared after fork count once per process)."""
    return sum(rss_mib(p) or 0 for p in tree_pids(pid)) if pid else None


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(name, n=40, current_run=False):
    """Last n lines of a service's log (with current_run: only lines of the latest start)."""
    try:
        with open(logfile(name), errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return "(no log)\n"
    if current_run:
        marks = [i for i, l in enumerate(lines) if l.startswith(START_MARK)]
        if marks:
            lines = lines[marks[-1]:]
    return "".join(lines[-n:])


def spawn(name, argv, cwd, env, user=None):
    """Starts argv in its own session with output appended to .stack/logs/<name>.log and records
    "pid starttime" in .stack/run/<name>.pid. user: run as that system user (e.g. postgres)."""
    os.makedirs(RUN, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    log = open(logfile(name), "ab")
    log.write(("\n" + START_MARK + "%s %s =====\n" % (name, time.strftime("%Y-%m-%d %H:%M:%S"))).encode())
    log.flush()
    extra = {}
    if user is not None:
        import pwd
        pw = pwd.getpwnam(user)
        os.fchown(log.fileno(), pw.pw_uid, pw.pw_gid)
        extra = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         env=env, start_new_session=True, **extra)
    log.close()
    write(pidfile(name), "%d %d\n" % (p.pid, start_time(p.pid) or 0))
    return p


def signal_session(pid, sig, whole_session):
    try:
        if whole_session:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------------------------- HTTP
def http(method, url, body=None, timeout=3, headers=None):
    """(status, body text); HTTP errors are answers too, connection errors raise OSError."""
    data = body.encode() if isinstance(body, str) else body
    h = {"Content-Type": "application/json", "Accept": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def signal_name(sig):
    return signal.Signals(sig).name
