"""Install helpers: JDKs, stamps (reinstall only when a pinned input changed), Maven, apt, venvs."""
import hashlib
import os
import shutil
import subprocess

from plumbing import StackError, write

JAVA_HOME = os.environ.get("JAVA17_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
JAVA = os.path.join(JAVA_HOME, "bin", "java")
JAVAC = os.path.join(JAVA_HOME, "bin", "javac")


def find_jdk(min_major):
    """A JDK with major version >= min_major: $JAVA21_HOME, else the lowest such under /usr/lib/jvm."""
    if os.environ.get("JAVA21_HOME"):
        return os.environ["JAVA21_HOME"]
    found = []
    for d in sorted(os.listdir("/usr/lib/jvm")) if os.path.isdir("/usr/lib/jvm") else []:
        home = os.path.join("/usr/lib/jvm", d)
        try:
            with open(os.path.join(home, "release")) as f:
                ver = [l.split("=", 1)[1].strip().strip('"') for l in f if l.startswith("JAVA_VERSION=")][0]
            major = int(ver.split(".")[0])
        except (OSError, IndexError, ValueError):
            continue
        if major >= min_major and os.access(os.path.join(home, "bin", "java"), os.X_OK) \
                and not os.path.islink(home):
            found.append((major, home))
    return min(found)[1] if found else None


def check_java():
    if not os.access(JAVA, os.X_OK):
        raise StackError("JDK 17 not found at %s (set JAVA17_HOME; `tests/stack install-deps` installs "
                         "openjdk-17-jdk-headless)" % JAVA_HOME)


def sha(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def stamp_ok(stamp, digest):
    try:
        with open(stamp) as f:
            return f.read().strip() == digest
    except OSError:
        return False


def stamp(path, digest):
    write(path, digest)


def mvn_copy(pom, outdir):
    """mvn dependency:copy-dependencies (plugin version pinned in the pom) into a fresh outdir."""
    tmp = outdir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-B", "-q", "-f", pom, "dependency:copy-dependencies",
           "-DoutputDirectory=" + tmp, "-DincludeScope=runtime"]
    env = dict(os.environ, JAVA_HOME=JAVA_HOME)
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise StackError("maven failed for %s:\n%s" % (pom, r.stdout[-4000:]))
    shutil.rmtree(outdir, ignore_errors=True)
    os.rename(tmp, outdir)


def apt_missing(packages):
    missing = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if r.stdout.strip() != "install ok installed":
            missing.append(p)
    return missing


POLICY_RC_D = "/usr/sbin/policy-rc.d"


def apt_install(packages):
    """Installs without starting any daemon: Debian's prometheus, alertmanager, pushgateway, nginx and
    postgresql packages start theirs on the ports the beds use (9090, 9093, 9091, ...). A
    policy-rc.d that answers 101 ("action forbidden") is Debian's way to say so (invoke-rc.d(8));
    one the machine already has is left alone."""
    pre = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ours = not os.path.exists(POLICY_RC_D)
    if ours:
        subprocess.run(pre + ["sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > %s && chmod 755 %s"
                              % (POLICY_RC_D, POLICY_RC_D)], check=True)
    try:
        subprocess.run(pre + ["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(pre + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + packages,
                       check=True, env=env)
    finally:
        if ours:
            subprocess.run(pre + ["rm", "-f", POLICY_RC_D], check=False)


def requirements_venv(venv, requirements):
    """A venv with the pinned requirements file installed; reinstalled only when the file changed
    (its digest is the venv's stamp). Returns the venv's python."""
    py = os.path.join(venv, "bin", "python")
    stamp_file = os.path.join(venv, ".requirements.sha256")
    digest = sha(requirements)
    if os.access(py, os.X_OK) and stamp_ok(stamp_file, digest):
        return py
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(["python3", "-m", "venv", venv], check=True)
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", requirements])
    if r.returncode != 0:
        raise StackError("pip install -r %s failed (see above)" % requirements)
    stamp(stamp_file, digest)
    return py
