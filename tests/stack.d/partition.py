"""Black-holing a member of a bed (`tests/stack partition NAME...`, `tests/stack heal [NAME...]`):
its packets are dropped, not refused, as with a pulled cable or a dead switch port, so that peers and
clients see connections hang and time out instead of failing fast.

Everything runs on loopback, so every packet passes the `output` hook once: one nftables table per
partitioned member (`inet stack_partition_<member>`, a chain on hook output, priority 0) drops
  1. packets to the member's address on its listening ports (Kafka 9092; Cassandra CQL 9042 and storage
     7000) and the replies from them;
  2. the member's own new outgoing connections (a broker's ZooKeeper session and replica fetches, a
     Cassandra node's gossip): they leave from 127.0.0.1 (or the member's address) with an ephemeral
     port, so no address rule can tell them apart. The member's processes are moved into a cgroup v2
     of their own (`<cgroup2 mount>/stack-<member>`) and `socket cgroupv2` matches their sockets;
  3. the member's connections that exist at the time of the partition, by their 4-tuple (from
     /proc/<pid>/fd and /proc/<pid>/net/tcp{,6}): a socket keeps the cgroup it was created in, so
     moving the process does not bring its open connections under rule 2.
Only 127.0.0.0/8 is ever matched. Heal deletes the table (which is all it takes: nothing else drops),
moves the processes back to the cgroup they came from and removes the member's cgroup. Idempotent both
ways. Limits: a member restarted while partitioned is still black-holed for its address, not for its
own new outgoing connections (its new process is outside the cgroup): heal first."""
import ipaddress
import json
import os
import re
import shutil
import subprocess

import plumbing
from plumbing import StackError, say

PREFIX = "stack_partition_"
CGROUP_FS = "/sys/fs/cgroup"     # where nft resolves `socket cgroupv2` paths from
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


# ----------------------------------------------------------------------------------------------- nft
def _nft_bin():
    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)
    if path is None:
        raise StackError("nft not found: partition/heal need nftables (tests/stack install-deps installs it)")
    return path


def _nft(args, script=None, check=True):
    p = subprocess.run([_nft_bin()] + args, input=script, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise StackError("nft %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


def table(name):
    return PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", name)


def partitioned_names(bed):
    """Names of the bed's members that have a partition table now (empty if nft is missing)."""
    try:
        out = _nft(["list", "tables", "inet"], check=False).stdout
    except StackError:
        return set()
    tables = set(line.split()[-1] for line in out.splitlines() if line.startswith("table inet "))
    return {s.name for s in bed.instances if table(s.name) in tables}


# ----------------------------------------------------------------------------------------------- cgroup v2
def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    raise StackError("no cgroup2 file system mounted (see /proc/mounts): a member's own connections "
                     "cannot be matched")


def _cgroup_dir(name):
    return os.path.join(cgroup2_mount(), "stack-" + name)


def _cgroup_of(pid):
    """The cgroup v2 path of pid, relative to the cgroup2 mount ("/" = its root)."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


def _state_file(name):
    return os.path.join(os.path.dirname(plumbing.pidfile(name)), name + ".partition")


def _move(pids, cgdir):
    for p in pids:
        try:
            with open(os.path.join(cgdir, "cgroup.procs"), "w") as f:
                f.write(str(p))
        except ProcessLookupError:
            pass    # exited meanwhile


# ----------------------------------------------------------------------------------------------- sockets
def _addr(hexaddr):
    """An address of /proc/net/tcp{,6} as dotted IPv4 (v4-mapped IPv6 too), or None."""
    if len(hexaddr) == 8:
        return str(ipaddress.IPv4Address(bytes.fromhex(hexaddr)[::-1]))
    words = [hexaddr[i:i + 8] for i in range(0, 32, 8)]
    if words[:2] == ["00000000", "00000000"] and words[2].upper() == "FFFF0000":
        return str(ipaddress.IPv4Address(bytes.fromhex(words[3])[::-1]))
    return None


def open_connections(pids):
    """(local ip, local port, remote ip, remote port) of every connected loopback TCP socket the
    processes hold (listening sockets left out: rule 1 covers what they accept)."""
    inodes = set()
    for pid in pids:
        fds = "/proc/%d/fd" % pid
        try:
            for fd in os.listdir(fds):
                try:
                    link = os.readlink(os.path.join(fds, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = set()
    for proto in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pids[0], proto)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[9] not in inodes or f[3] == "0A":   # 0A: LISTEN
                continue
            (lh, lp), (rh, rp) = f[1].split(":"), f[2].split(":")
            local, remote = _addr(lh), _addr(rh)
            if local and remote and all(ipaddress.ip_address(a) in LOOPBACK for a in (local, remote)):
                out.add((local, int(lp, 16), remote, int(rp, 16)))
    return sorted(out)


# ----------------------------------------------------------------------------------------------- members
def ports(svc):
    """The ports a member listens on that its peers and clients reach."""
    return [p for p in (svc.port, getattr(svc, "storage_port", None)) if p]


def resolve(bed, args):
    """Members for names or host addresses (`127.0.0.3` = every member of the bed on it)."""
    out = []
    for a in args:
        if a in bed.by_name:
            found = [bed.by_name[a]]
        elif re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a):
            found = [s for s in bed.instances if s.host == a]
            if not found:
                import topology   # tests/stack.d/topology.py: which other bed has members there
                others = [t for t, make in topology.TOPOLOGIES.items()
                          if t != bed.name and any(s.host == a for s in make().instances)]
                raise StackError("no member of the %s bed on %s (hosts: %s)%s" % (
                    bed.name, a, " ".join(sorted(set(s.host for s in bed.instances))),
                    "".join("; --%s or STACK_TOPOLOGY=%s for the %s bed" % (t, t, t) for t in others)))
        else:
            raise StackError("unknown member %r: a name (%s) or a host address" % (
                a, " ".join(s.name for s in bed.instances)))
        out += [s for s in found if s not in out]
    return out


def partition(bed, args):
    if not args:
        raise StackError("partition: name the members (or host addresses) to black-hole")
    svcs = resolve(bed, args)
    _nft_bin()
    down = [s.name for s in svcs if s.running_pid() is None]
    if down:
        raise StackError("partition: not running: %s" % " ".join(down))
    already = partitioned_names(bed)
    for svc in svcs:
        if svc.name in already:
            say("%-9s already partitioned" % svc.name)
            continue
        _partition_one(svc)
    return 0


def _partition_one(svc):
    pid = svc.running_pid()
    host = ipaddress.ip_address(svc.host)
    if host not in LOOPBACK:
        raise StackError("%s is on %s: only loopback members can be partitioned" % (svc.name, svc.host))
    cg_root = cgroup2_mount()
    rel = os.path.relpath(_cgroup_dir(svc.name), CGROUP_FS)
    if rel.startswith(".."):
        raise StackError("cgroup2 is mounted at %s, outside %s where nft resolves cgroup paths" % (cg_root, CGROUP_FS))
    pids = plumbing.tree_pids(pid)
    origin = _cgroup_of(pid)
    os.makedirs(_cgroup_dir(svc.name), exist_ok=True)
    with open(_state_file(svc.name), "w") as f:
        json.dump({"origin": origin, "pids": pids}, f)
    _move(pids, _cgroup_dir(svc.name))
    # the connections that exist now, after the move: none can be opened outside the cgroup since
    conns = open_connections(pids)
    ps = ", ".join(str(p) for p in ports(svc))
    rules = []
    if ps:
        rules += ["ip daddr %s tcp dport { %s } drop" % (svc.host, ps),
                  "ip saddr %s tcp sport { %s } drop" % (svc.host, ps)]
    rules.append('socket cgroupv2 level 1 "%s" ip daddr %s drop' % (rel, LOOPBACK))
    for lh, lp, rh, rp in conns:
        rules += ["ip saddr %s tcp sport %d ip daddr %s tcp dport %d drop" % (lh, lp, rh, rp),
                  "ip saddr %s tcp sport %d ip daddr %s tcp dport %d drop" % (rh, rp, lh, lp)]
    script = "\n".join(["table inet %s {" % table(svc.name), "  chain output {",
                        "    type filter hook output priority 0; policy accept;"]
                       + ["    " + r for r in rules] + ["  }", "}", ""])
    try:
        _nft(["-f", "-"], script)
    except StackError:
        _restore(svc.name)
        raise
    say("%-9s partitioned (%s%s; own connections: cgroup %s, %d open dropped)" % (
        svc.name, svc.host, (":" + ps.replace(", ", ",")) if ps else "", rel, len(conns)))


def _restore(name):
    """Processes back into the cgroup they came from; the member's cgroup removed."""
    cgdir = _cgroup_dir(name)
    origin = "/"
    try:
        with open(_state_file(name)) as f:
            origin = json.load(f).get("origin", "/")
    except (OSError, ValueError):
        pass
    if os.path.isdir(cgdir):
        with open(os.path.join(cgdir, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
        target = os.path.join(cgroup2_mount(), origin.lstrip("/"))
        try:
            _move(pids, target if os.path.isdir(target) else cgroup2_mount())
        except OSError:
            _move(pids, cgroup2_mount())
        try:
            os.rmdir(cgdir)
        except OSError as e:
            say("%s: could not remove %s: %s" % (name, cgdir, e))
    try:
        os.unlink(_state_file(name))
    except OSError:
        pass


def heal(bed, args, quiet=False):
    """Heal the named members (all of the bed's without names); quiet: no word when nothing to do
    and no error without nft (`down`)."""
    if quiet and shutil.which("nft") is None and not os.access("/usr/sbin/nft", os.X_OK):
        return 0
    svcs = resolve(bed, args) if args else list(bed.instances)
    now = partitioned_names(bed)
    healed = []
    for svc in svcs:
        was = svc.name in now
        if was:
            _nft(["delete", "table", "inet", table(svc.name)])
        if was or os.path.exists(_state_file(svc.name)):
            _restore(svc.name)
        if was:
            healed.append(svc.name)
            say("%-9s healed" % svc.name)
        elif args and not quiet:
            say("%-9s was not partitioned" % svc.name)
    if not args and not healed and not quiet:
        say("nothing partitioned")
    return 0
