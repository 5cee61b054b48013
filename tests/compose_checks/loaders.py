"""spec and config: the loaders of Compose accept the file (compose-go as `docker compose` v2 loads
it, and `docker-compose config -q`)."""
import shutil
import subprocess


def check_spec(m):
    if m["project"] is None:
        return ["compose-go rejects the file: %s" % m["spec_error"]]
    return []


def check_config(compose, env_file=None, profiles=()):
    """compose: a file or a list of files merged in order; env_file: instead of the .env beside it;
    profiles: activated as with `--profile` (docker-compose >= 1.28)."""
    files = [compose] if isinstance(compose, str) else list(compose)
    args = ([a for p in profiles for a in ("--profile", p)] + [a for f in files for a in ("-f", f)]
            + (["--env-file", env_file] if env_file else []))
    if shutil.which("docker-compose"):
        cmd = ["docker-compose"] + args + ["config", "-q"]
    elif shutil.which("docker"):
        cmd = ["docker", "compose"] + args + ["config", "-q"]
    else:
        return ["neither docker-compose nor docker found (Debian: apt-get install -y docker-compose)"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=120)
    print("     $ %s -> exit %d%s" % (" ".join(cmd), out.returncode,
                                       (": " + out.stdout.strip()) if out.stdout.strip() else ""))
    if out.returncode != 0:
        return ["`%s` exited %d: %s" % (" ".join(cmd), out.returncode, out.stdout.strip())]
    return []
