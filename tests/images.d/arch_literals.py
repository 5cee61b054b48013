"""Architecture-specific literals in the build files of docker/ (shared by tests/images and
tests/compose_check.py).

The Dockerfiles must build unchanged for linux/amd64 and linux/arm64 (Apple Silicon laptops),
so nothing in them may name one CPU architecture: no multiarch directory such as
/lib/<arch>-linux-gnu, no loader path such as /lib64/ld-linux-<arch>.so.2, no platform pin.
Paths that differ per architecture are found at build time instead (`ldd`, `dpkg
--print-architecture`, BuildKit's TARGETARCH). Markdown files are documentation and not scanned;
comments are, since they get copied into commands.
"""
import os
import re

# Architecture names as Debian, GNU triples, Docker platforms and the kernel spell them, and the
# loader/library paths that exist on one architecture only.
PATTERN = re.compile(
    r"x86[_-]64|\bamd64\b|\bi[3-6]86\b|aarch64|\barm64\b|\barmhf\b|\barmel\b|\barmv[5-8]|"
    r"ppc64|s390x|riscv64|mips64|/lib64\b|ld-linux|ld64\.so",
    re.IGNORECASE)


def scan(docker_dir):
    """[(relative path, line number, line)] for every architecture literal under docker_dir."""
    hits = []
    for dirpath, _, files in os.walk(docker_dir):
        for name in sorted(files):
            if name.endswith(".md"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8", errors="replace") as fh:
                for no, line in enumerate(fh, 1):
                    if PATTERN.search(line):
                        hits.append((os.path.relpath(path, os.path.dirname(docker_dir)), no, line.rstrip()))
    return hits
